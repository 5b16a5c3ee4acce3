//! What every handler shares.

use crate::api_client::ApiClient;
use crate::config::UiConfig;
use crate::generation::Generations;
use crate::login_limit::LoginLimiter;
use crate::pages::Pages;
use crate::store::Store;

/// The application state.
#[derive(Debug)]
pub struct AppState {
    /// Configuration.
    pub cfg: UiConfig,
    /// History.
    pub store: Store,
    /// sandbox-api.
    pub api: ApiClient,
    /// Answers being written now.
    pub generations: std::sync::Arc<Generations>,
    /// Failed-login throttle.
    pub login_limit: LoginLimiter,
    /// Templates.
    pub pages: &'static Pages,
}
