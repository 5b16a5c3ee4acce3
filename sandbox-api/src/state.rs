//! What every handler shares.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::HttpMessage;
use actix_web::HttpRequest;
use actix_web::web;
use sandbox_core::{Engine, Service, Timings, TokenLogprob};
use serde_json::{Value, json};

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

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A chat-format logprob entry.
pub fn logprob_json(engine: &Engine, lp: &TokenLogprob) -> Value {
    let entry = |id, logprob: f32| {
        json!({
            "token": engine.token_text(id),
            "logprob": logprob,
            "bytes": engine.token_bytes(id),
        })
    };
    let mut e = entry(lp.token, lp.logprob);
    e["top_logprobs"] = Value::Array(lp.top.iter().map(|&(id, l)| entry(id, l)).collect());
    e
}

/// Server timings of one generation (a llama.cpp-style extension field): lets clients
/// and tests see queue wait and that generations never overlap.
pub fn timings_json(t: &Timings) -> Value {
    let secs = |st: SystemTime| {
        st.duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    };
    json!({
        "queue_ms": t.queue_wait.as_secs_f64() * 1e3,
        "prefill_ms": t.prefill.as_secs_f64() * 1e3,
        "decode_ms": t.decode.as_secs_f64() * 1e3,
        "started_at": secs(t.started_at),
        "finished_at": secs(t.finished_at),
    })
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
