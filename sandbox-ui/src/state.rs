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

/// Runs store work that blocks (argon2 hashing, sled scans and writes) on actix's
/// blocking pool, off the event loop.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, crate::error::UiError> {
    actix_web::web::block(work)
        .await
        .map_err(|e| crate::error::UiError::Internal(e.to_string()))
}
