//! What the model server is doing, in the UI's terms: the API's `/ready` state, or
//! that the API does not answer, with when to ask again and a headline for a chat user.

use sandbox_core::contract::ready::ModelErrorKind;
use sandbox_core::contract::retry::Wait;
use serde::Serialize;

/// What the model server is doing, as the UI shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum ModelStatus {
    /// Answering; `waiting` requests queue behind the running one.
    Ready {
        /// Served model id.
        model: String,
        /// Requests waiting.
        waiting: u64,
        /// Whether one is running.
        running: bool,
    },
    /// Fetching the model.
    Downloading {
        /// 0..1 when known.
        progress: Option<f64>,
        /// The server's words.
        message: String,
    },
    /// Loading the model into memory.
    Loading {
        /// The server's words.
        message: String,
    },
    /// The model could not be made ready.
    Error {
        /// What failed.
        kind: ModelErrorKind,
        /// The server's words (what failed and what to do, for an administrator).
        message: String,
    },
    /// sandbox-api does not answer.
    Unreachable {
        /// Where and why, for an administrator.
        message: String,
    },
}

impl ModelStatus {
    /// Seconds after which the browser should ask again.
    pub fn retry_seconds(&self) -> u64 {
        match self {
            Self::Ready { .. } => Wait::Ready,
            Self::Downloading { .. } => Wait::Downloading,
            Self::Loading { .. } => Wait::Loading,
            Self::Unreachable { .. } => Wait::Unreachable,
            Self::Error { .. } => Wait::Failed,
        }
        .seconds()
    }

    /// What a failed or unreachable model means for a chat user, in one sentence (the
    /// server's own words are for an administrator, behind "Details").
    pub fn headline(&self) -> Option<&'static str> {
        let kind = match self {
            Self::Error { kind, .. } => kind,
            Self::Unreachable { .. } => {
                return Some(
                    "The AI model is not answering right now. It restarts by itself; this page reconnects as soon as it is back.",
                );
            }
            _ => return None,
        };
        Some(match kind {
            ModelErrorKind::DownloadFailed => "The model could not be downloaded.",
            ModelErrorKind::LoadFailed => "The model could not be loaded.",
            ModelErrorKind::NotEnoughMemory => {
                "The model could not be loaded: it does not fit in this machine's GPU memory."
            }
            ModelErrorKind::Internal => "The model server could not start the model.",
        })
    }
}
