//! The error envelope of every refusal and of a failed stream's last event.

use serde::{Deserialize, Serialize};

/// `{"error": {...}}`, the body of every refusal and the event that ends a failed
/// stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for people and for programs.
    pub error: ErrorObject,
}

/// An OpenAI error object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// What went wrong, in words.
    pub message: String,
    /// `invalid_request_error`, `server_error`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The request field at fault.
    pub param: Option<String>,
    /// For programs: `rate_limit_exceeded`, `model_not_ready`, [`codes::SERVER_STOPPING`], ...
    pub code: Option<String>,
}

/// The `code`s this server uses beyond OpenAI's own.
pub mod codes {
    /// The model is downloading, loading or failed (503).
    pub const MODEL_NOT_READY: &str = "model_not_ready";
    /// The server is stopping and restarts by itself (503).
    pub const SERVER_STOPPING: &str = "server_stopping";
    /// The queue is full (429).
    pub const QUEUE_FULL: &str = "rate_limit_exceeded";
}
