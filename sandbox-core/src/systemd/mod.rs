//! `sandbox-systemd`: what the AI Sandbox services tell systemd when they run as
//! `Type=notify` units with `WatchdogSec=`.
//!
//! - [`Notifier`]: `READY=1`, `STATUS=…`, `STOPPING=1` and `WATCHDOG=1` through
//!   `$NOTIFY_SOCKET` (with [`sd_notify`]); without `NOTIFY_SOCKET` every call is a
//!   no-op, so the binaries run the same outside systemd.
//! - [`run_watchdog`]: pings every half watchdog period, but only while a check says
//!   the process makes progress ([`Verdict`]); [`heartbeat_verdict`] is that check for
//!   a worker thread that records a heartbeat. A stalled runtime, a stopped process or
//!   a stale heartbeat stops the pings, so systemd kills and restarts the service.
//! - [`forward_status`] and [`notify_stopping_on_signal`]: `STATUS=` lines that follow
//!   a state, and `STOPPING=1` as soon as a stop signal arrives.
//! - [`testing::NotifySocket`]: a stand-in for systemd's socket, for tests.
//!
//! It has no llama.cpp below it, so the chat UI uses it as well as the API server.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod notify;
pub mod testing;
mod watchdog;

pub use notify::{Message, Notifier, NotifyError};
pub use watchdog::{
    Verdict, forward_status, heartbeat_verdict, notify_stopping_on_signal, run_watchdog,
};
