//! Sending notifications to the service manager.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;

/// Longest `STATUS=` text sent; longer texts are cut (on a character boundary).
const MAX_STATUS_CHARS: usize = 400;

/// One notification, as systemd's `sd_notify(3)` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// `READY=1`: start-up is complete (a `Type=notify` unit becomes active).
    Ready,
    /// `STATUS=…`: a one-line status that `systemctl status` shows.
    Status(&'a str),
    /// `STOPPING=1`: the service is shutting down.
    Stopping,
    /// `WATCHDOG=1`: the service is alive (resets `WatchdogSec=`'s timer).
    Watchdog,
}

impl fmt::Display for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ready => f.write_str("READY=1"),
            Self::Status(s) => write!(f, "STATUS={}", one_line(s)),
            Self::Stopping => f.write_str("STOPPING=1"),
            Self::Watchdog => f.write_str("WATCHDOG=1"),
        }
    }
}

/// A notification could not be delivered.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// Sending the datagram to `$NOTIFY_SOCKET` failed.
    #[error("cannot send {message} to systemd's notify socket: {source}")]
    Send {
        /// The notification (`READY=1`, `STATUS`, `STOPPING=1`, `WATCHDOG=1`).
        message: &'static str,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
}

/// `text` as one line of at most [`MAX_STATUS_CHARS`] characters: the protocol
/// separates assignments with newlines, so control characters become spaces.
pub(crate) fn one_line(text: &str) -> String {
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_STATUS_CHARS + 1)
        .collect();
    if line.chars().count() > MAX_STATUS_CHARS {
        line = line.chars().take(MAX_STATUS_CHARS - 1).collect();
        line.push('…');
    }
    line
}

#[derive(Debug)]
struct Inner {
    enabled: bool,
    watchdog: Option<Duration>,
    stopping_sent: AtomicBool,
    ping_failing: AtomicBool,
}

/// Talks to systemd through `$NOTIFY_SOCKET`. Cheap to clone (clones share state).
///
/// The sending methods log failures (with `tracing`) instead of returning them: a
/// lost notification must not stop the service. [`Notifier::send`] returns the error
/// for callers that want it.
#[derive(Debug, Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

impl Notifier {
    /// Reads this process's environment: enabled when `NOTIFY_SOCKET` is set and not
    /// empty; the watchdog period is `WATCHDOG_USEC` when it is set (non-zero) and
    /// `WATCHDOG_PID`, if set, is this process.
    pub fn from_env() -> Self {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty());
        let watchdog = if enabled {
            sd_notify::watchdog_enabled().filter(|d| !d.is_zero())
        } else {
            None
        };
        if enabled {
            tracing::info!(
                watchdog_ms = watchdog.map(|d| d.as_millis() as u64),
                "systemd notifications enabled (NOTIFY_SOCKET)"
            );
        }
        Self::new(enabled, watchdog)
    }

    /// A notifier that sends nothing (as without `NOTIFY_SOCKET`).
    pub fn disabled() -> Self {
        Self::new(false, None)
    }

    fn new(enabled: bool, watchdog: Option<Duration>) -> Self {
        Self {
            inner: Arc::new(Inner {
                enabled,
                watchdog,
                stopping_sent: AtomicBool::new(false),
                ping_failing: AtomicBool::new(false),
            }),
        }
    }

    /// Whether notifications are sent at all.
    pub fn is_enabled(&self) -> bool {
        self.inner.enabled
    }

    /// The watchdog period systemd expects pings within (`WATCHDOG_USEC`), if any.
    pub fn watchdog_period(&self) -> Option<Duration> {
        self.inner.watchdog
    }

    /// Sends one notification; `Ok` without doing anything when disabled.
    pub fn send(&self, message: Message<'_>) -> Result<(), NotifyError> {
        if !self.inner.enabled {
            return Ok(());
        }
        let (name, result) = match message {
            Message::Ready => ("READY=1", sd_notify::notify(&[NotifyState::Ready])),
            Message::Status(text) => (
                "STATUS",
                sd_notify::notify(&[NotifyState::Status(&one_line(text))]),
            ),
            Message::Stopping => ("STOPPING=1", sd_notify::notify(&[NotifyState::Stopping])),
            Message::Watchdog => ("WATCHDOG=1", sd_notify::notify(&[NotifyState::Watchdog])),
        };
        result.map_err(|source| NotifyError::Send {
            message: name,
            source,
        })
    }

    /// `READY=1`: call once the service answers (its port is bound).
    pub fn ready(&self) {
        match self.send(Message::Ready) {
            Ok(()) if self.is_enabled() => tracing::info!("told systemd: ready"),
            Ok(()) => {}
            Err(e) => tracing::error!(error = %e, "systemd will time the start out"),
        }
    }

    /// `STATUS=text` (one line; see [`Message::Status`]).
    pub fn status(&self, text: &str) {
        if let Err(e) = self.send(Message::Status(text)) {
            tracing::warn!(error = %e, "status not shown by systemd");
        }
    }

    /// `STOPPING=1`, once: later calls do nothing.
    pub fn stopping(&self) {
        if !self.inner.enabled || self.inner.stopping_sent.swap(true, Ordering::Relaxed) {
            return;
        }
        match self.send(Message::Stopping) {
            Ok(()) => tracing::info!("told systemd: stopping"),
            Err(e) => tracing::warn!(error = %e, "systemd not told about the stop"),
        }
    }

    /// `WATCHDOG=1`. Returns whether it was sent; the first of a run of failures is
    /// logged.
    pub fn ping(&self) -> bool {
        if !self.inner.enabled {
            return false;
        }
        match self.send(Message::Watchdog) {
            Ok(()) => {
                self.inner.ping_failing.store(false, Ordering::Relaxed);
                true
            }
            Err(e) => {
                if !self.inner.ping_failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "watchdog ping failed");
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_the_protocol_lines() {
        assert_eq!(Message::Ready.to_string(), "READY=1");
        assert_eq!(Message::Stopping.to_string(), "STOPPING=1");
        assert_eq!(Message::Watchdog.to_string(), "WATCHDOG=1");
        assert_eq!(Message::Status("ready").to_string(), "STATUS=ready");
    }

    #[test]
    fn status_is_one_bounded_line() {
        assert_eq!(one_line("error: a\nb\r\tc"), "error: a b  c");
        let long = "é".repeat(1000);
        let cut = one_line(&long);
        assert_eq!(cut.chars().count(), MAX_STATUS_CHARS);
        assert!(cut.ends_with('…'));
        assert_eq!(
            one_line(&"x".repeat(MAX_STATUS_CHARS)).len(),
            MAX_STATUS_CHARS
        );
    }

    #[test]
    fn a_disabled_notifier_sends_nothing_and_succeeds() {
        let n = Notifier::disabled();
        assert!(!n.is_enabled());
        assert_eq!(n.watchdog_period(), None);
        assert!(n.send(Message::Ready).is_ok());
        assert!(!n.ping());
        n.ready();
        n.status("x");
        n.stopping();
    }
}
