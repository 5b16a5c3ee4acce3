//! What every handler shares.

use std::sync::Arc;

use actix_web::HttpMessage;
use actix_web::HttpRequest;
use actix_web::web;
use sandbox_core::{Engine, Service};

use crate::auth::ApiKeys;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// Shared by all workers.
#[derive(Debug, Clone)]
pub struct AppState {
    pub service: Arc<Service>,
    pub model_id: String,
    pub strict_model_ids: bool,
    pub keys: ApiKeys,
    pub metrics: Arc<Metrics>,
    /// When the server started (the model's `created`).
    pub started: u64,
}

/// The id of the request being handled (set by the logging middleware).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl AppState {
    /// The engine, or 503 with the model's state.
    pub fn engine(&self) -> Result<&Engine, ApiError> {
        self.service
            .engine()
            .map_err(|state| ApiError::not_ready(&state))
    }

    /// Accepts any model name unless strict ids are configured.
    pub fn check_model(&self, model: &str) -> Result<(), ApiError> {
        if self.strict_model_ids && model != self.model_id {
            return Err(ApiError::model_not_found(model));
        }
        Ok(())
    }
}

/// The request id of `req`.
pub fn request_id(req: &HttpRequest) -> String {
    req.extensions()
        .get::<RequestId>()
        .map_or_else(|| "-".into(), |r| r.0.clone())
}

/// Runs a request's CPU-bound preparation (schema conversion, chat template, tokenizing)
/// on actix's blocking pool, so that an I/O thread never waits on it and `/health` and
/// other connections on that thread stay prompt.
pub async fn off_io<T: Send + 'static>(
    request_id: &str,
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    web::block(f)
        .await
        .map_err(|_| ApiError::internal(request_id))?
}
