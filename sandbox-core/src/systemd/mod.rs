//! What the AI Sandbox services tell systemd when they run as `Type=notify` units
//! with `WatchdogSec=`.
//!
//! - [`Notifier`]: `READY=1`, `STATUS=…`, `STOPPING=1` and `WATCHDOG=1` through
//!   `$NOTIFY_SOCKET` (with [`sd_notify`]); without `NOTIFY_SOCKET` every call is a
//!   no-op, so the binaries run the same outside systemd.
//! - [`run_watchdog`]: pings every half watchdog period, but only while a check says
//!   the process makes progress ([`Verdict`]). A stalled runtime, a stopped process or
//!   a failing check stops the pings, so systemd kills and restarts the service.
#![cfg_attr(
    feature = "engine",
    doc = r#"- [`heartbeat_verdict`] (only with the `engine` feature): that check for the engine
  thread's heartbeat ([`Service::heartbeat_age`](crate::Service::heartbeat_age))."#
)]
#![cfg_attr(
    not(feature = "engine"),
    doc = r#"- `heartbeat_verdict` (only with the `engine` feature): that check for the engine
  thread's heartbeat."#
)]
//! - [`forward_status`] and [`notify_stopping_on_signal`]: `STATUS=` lines that follow
//!   a state, and `STOPPING=1` as soon as a stop signal arrives; [`StopSignals`] for a
//!   server that runs its own shutdown sequence.
//! - [`testing::NotifySocket`]: a stand-in for systemd's socket, for tests.
//!
//! This module is compiled with and without the `engine` feature and needs nothing of
//! llama.cpp, so the chat UI (which depends on `sandbox-core` with
//! `default-features = false`) uses it as well as the API server.

mod notify;
pub mod testing;
mod watchdog;

pub use notify::{Message, Notifier, NotifyError};
#[cfg(feature = "engine")]
pub use watchdog::heartbeat_verdict;
pub use watchdog::{StopSignals, Verdict, forward_status, notify_stopping_on_signal, run_watchdog};
