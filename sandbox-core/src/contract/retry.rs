//! How long a client waits before asking again, for every situation in which the API
//! or the UI tells it to: the one table (`Retry-After` headers, the `/ready` poll of
//! the chat page, the UI's own banner).

use std::time::Duration;

/// A situation in which a client is told to come back later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The model is downloading (minutes; progress is shown meanwhile).
    Downloading,
    /// The model is loading (seconds).
    Loading,
    /// The model failed; it needs an administrator.
    Failed,
    /// The server is stopping; its service manager starts it again.
    Stopping,
    /// A job waited too long in the queue.
    QueueTimeout,
    /// The API does not answer at all (the chat page should notice its return soon).
    Unreachable,
    /// The model is ready: the chat page checks again every couple of seconds, so that
    /// an outage shows within 2–3 s (a `/ready` costs the API microseconds).
    Ready,
}

impl Wait {
    /// How long.
    pub fn after(self) -> Duration {
        Duration::from_secs(match self {
            Self::Downloading => 5,
            Self::Loading | Self::Unreachable | Self::Ready => 2,
            Self::Failed => 30,
            Self::Stopping | Self::QueueTimeout => 5,
        })
    }

    /// Whole seconds, at least 1 (for a `Retry-After` header).
    pub fn seconds(self) -> u64 {
        self.after().as_secs().max(1)
    }
}
