//! Errors in OpenAI's envelope: `{"error": {"message", "type", "param", "code"}}` with
//! the status OpenAI uses, so SDKs raise their usual exception classes.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};
use sandbox_core::contract::openai::{ErrorBody, ErrorObject, codes};
use sandbox_core::contract::ready::ModelErrorKind;
use sandbox_core::contract::retry::Wait;
use sandbox_core::{EngineError, ModelState};

/// An error answered to an API client.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    param: Option<String>,
    code: Option<&'static str>,
    retry_after: Option<Duration>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.status)
    }
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after: None,
        }
    }

    /// 400 for a malformed or out-of-range request; `param` names the field.
    pub fn invalid(param: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            param: param.map(str::to_owned),
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
        }
    }

    /// 400 for an input this server cannot handle (images, audio, ...).
    pub fn unsupported(param: &str, message: impl Into<String>) -> Self {
        Self {
            code: Some("unsupported_value"),
            ..Self::invalid(Some(param), message)
        }
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            code: Some("invalid_api_key"),
            ..Self::new(StatusCode::UNAUTHORIZED, "invalid_request_error", message)
        }
    }

    /// 404 for an unknown path.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "invalid_request_error", message)
    }

    /// 404 for an unknown model.
    pub fn model_not_found(model: &str) -> Self {
        Self {
            code: Some("model_not_found"),
            param: Some("model".into()),
            ..Self::not_found(format!(
                "The model `{model}` does not exist or you do not have access to it."
            ))
        }
    }

    /// 413.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("the request body exceeds the limit of {limit} bytes"),
        )
    }

    /// 503 while the model is not ready, with what it is doing.
    pub fn not_ready(state: &ModelState) -> Self {
        let message = match state {
            ModelState::Downloading(d) => {
                format!("the model is still downloading: {}", d.message)
            }
            ModelState::Loading { message } => format!("the model is loading: {message}"),
            ModelState::Error { message, .. } => format!("the model is not available: {message}"),
            ModelState::Ready => "the model is ready".into(),
        };
        Self {
            code: Some(codes::MODEL_NOT_READY),
            retry_after: Some(state.wait().after()),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", message)
        }
    }

    /// 503 while the server stops (SIGTERM): its service manager restarts it, so
    /// retrying soon is right.
    pub fn stopping(e: &EngineError) -> Self {
        Self {
            code: Some(codes::SERVER_STOPPING),
            retry_after: Some(Wait::Stopping.after()),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                e.to_string(),
            )
        }
    }

    /// 500 without internals; the request id lets an operator find the log line.
    pub fn internal(request_id: &str) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            format!(
                "The server had an error while processing your request (request id {request_id})."
            ),
        )
    }

    /// Maps an engine error; `request_id` goes into 500s.
    pub fn from_engine(e: &EngineError, request_id: &str) -> Self {
        match e {
            EngineError::QueueFull { retry_after, .. } => Self {
                code: Some(codes::QUEUE_FULL),
                retry_after: Some(*retry_after),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, "requests", e.to_string())
            },
            EngineError::ContextOverflow { .. } => Self {
                code: Some("context_length_exceeded"),
                ..Self::invalid(Some("messages"), e.to_string())
            },
            EngineError::Template(_) => Self::invalid(Some("messages"), e.to_string()),
            EngineError::InvalidRequest(_) => Self::invalid(None, e.to_string()),
            EngineError::QueueTimeout { .. } | EngineError::DeadlineExceeded(_) => Self {
                retry_after: Some(Wait::QueueTimeout.after()),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "server_error",
                    e.to_string(),
                )
            },
            EngineError::Cancelled | EngineError::Stopped => Self::stopping(e),
            EngineError::Resources(m) => Self::not_ready(&ModelState::Error {
                kind: ModelErrorKind::NotEnoughMemory,
                message: m.clone(),
            }),
            EngineError::Llama(inner) => match inner.as_ref() {
                sandbox_core::LlamaError::Grammar(m) => {
                    Self::invalid(Some("response_format"), m.clone())
                }
                sandbox_core::LlamaError::InvalidToken { .. }
                | sandbox_core::LlamaError::Tokenize(_) => Self::invalid(None, inner.to_string()),
                _ => {
                    tracing::error!(request_id, error = %inner, "inference failed");
                    Self::internal(request_id)
                }
            },
        }
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorObject {
                message: self.message.clone(),
                kind: self.kind.to_owned(),
                param: self.param.clone(),
                code: self.code.map(str::to_owned),
            },
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status).json(self.body());
        if let Some(after) = self.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                resp.headers_mut().insert(RETRY_AFTER, v);
            }
        }
        resp
    }
}
