//! The watchdog, `STATUS=` lines that follow a state, and `STOPPING=1` on a stop
//! signal. Each runs as a task on the caller's runtime, so a stalled runtime also
//! stops the pings.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::Notifier;

/// Whether the watchdog may vouch for the process right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It shows progress: send `WATCHDOG=1`.
    Ping,
    /// It does not: send nothing, so systemd kills and restarts the service once the
    /// watchdog period has passed without a ping.
    Withhold {
        /// Why, for the log.
        reason: String,
    },
}

/// The verdict for a process whose worker thread records a heartbeat.
///
/// `heartbeat_age` is the time since the worker last showed progress, or `None` while
/// there is no worker to vouch for (a model still downloading or loading, or one that
/// failed to load): then the runtime that runs this check answering is all there is to
/// prove, and it pings. A heartbeat younger than `period` pings; one as old as
/// `period` or older withholds, naming the age.
///
/// Engine glue (`Service::heartbeat_age` is its input): only with the `engine`
/// feature.
#[cfg(feature = "engine")]
pub fn heartbeat_verdict(heartbeat_age: Option<Duration>, period: Duration) -> Verdict {
    match heartbeat_age {
        None => Verdict::Ping,
        Some(age) if age < period => Verdict::Ping,
        Some(age) => Verdict::Withhold {
            reason: format!(
                "the engine thread has shown no progress for {:.1} s (watchdog period {:.1} s)",
                age.as_secs_f64(),
                period.as_secs_f64()
            ),
        },
    }
}

/// What one watchdog tick does.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Ping; `recovered` after a run of withheld pings.
    Ping { recovered: bool },
    /// Do not ping; `first` of a run (the one that is logged).
    Withhold { first: bool },
}

/// The next step given the verdict; `withholding` carries the run between ticks.
fn step(withholding: &mut bool, verdict: &Verdict) -> Step {
    let was = *withholding;
    match verdict {
        Verdict::Ping => {
            *withholding = false;
            Step::Ping { recovered: was }
        }
        Verdict::Withhold { .. } => {
            *withholding = true;
            Step::Withhold { first: !was }
        }
    }
}

/// Sends `WATCHDOG=1` every half watchdog period while `check` (given the period)
/// says [`Verdict::Ping`]; returns at once when systemd set no watchdog (no
/// `WATCHDOG_USEC`, or no `NOTIFY_SOCKET`). The first withheld ping of a run is
/// logged as a warning with its reason; pings resume (logged) if `check` recovers
/// before systemd acts. Runs until the task is dropped.
pub async fn run_watchdog<F>(notifier: Notifier, mut check: F)
where
    F: FnMut(Duration) -> Verdict,
{
    let Some(period) = notifier.watchdog_period() else {
        return;
    };
    let every = (period / 2).max(Duration::from_millis(1));
    tracing::info!(
        period_ms = period.as_millis() as u64,
        every_ms = every.as_millis() as u64,
        "systemd watchdog: pinging every half period while the service shows progress"
    );
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut withholding = false;
    loop {
        ticks.tick().await;
        let verdict = check(period);
        match step(&mut withholding, &verdict) {
            Step::Ping { recovered } => {
                notifier.ping();
                if recovered {
                    tracing::info!("systemd watchdog: progress again, pings resume");
                }
            }
            Step::Withhold { first: true } => {
                if let Verdict::Withhold { reason } = &verdict {
                    tracing::warn!(
                        %reason,
                        period_ms = period.as_millis() as u64,
                        "systemd watchdog: pings stopped, systemd will restart the service"
                    );
                }
            }
            Step::Withhold { first: false } => {}
        }
    }
}

/// Sends `STATUS=line(state)` for the current state and again whenever `states`
/// changes to a state with a different line (so a line that only changes per percent
/// is sent once per percent). Returns when the sender is dropped, or at once when
/// notifications are disabled.
pub async fn forward_status<T, F>(notifier: Notifier, mut states: watch::Receiver<T>, line: F)
where
    F: Fn(&T) -> String,
{
    if !notifier.is_enabled() {
        return;
    }
    let mut last: Option<String> = None;
    loop {
        let current = line(&states.borrow_and_update());
        if last.as_deref() != Some(current.as_str()) {
            tracing::debug!(status = %current, "systemd status");
            notifier.status(&current);
            last = Some(current);
        }
        if states.changed().await.is_err() {
            return;
        }
    }
}

/// SIGTERM, SIGINT and SIGQUIT: the signals a server stops on.
#[derive(Debug)]
pub struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Starts watching (on the current Tokio runtime).
    pub fn watch() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            quit: signal(SignalKind::quit())?,
        })
    }

    /// Waits for the next one and names it.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
            _ = self.quit.recv() => "SIGQUIT",
        }
    }
}

/// Waits for SIGTERM, SIGINT or SIGQUIT (the signals the HTTP server stops on), then
/// sends `STOPPING=1` and `STATUS=stopping`. Returns at once when notifications are
/// disabled, or (logged) when the signals cannot be watched.
pub async fn notify_stopping_on_signal(notifier: Notifier) {
    if !notifier.is_enabled() {
        return;
    }
    let mut signals = match StopSignals::watch() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch stop signals; STOPPING=1 is sent when the server has stopped");
            return;
        }
    };
    signals.recv().await;
    notifier.stopping();
    notifier.status("stopping");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "engine")]
    const PERIOD: Duration = Duration::from_secs(2);

    #[cfg(feature = "engine")]
    #[test]
    fn a_stale_heartbeat_withholds_the_ping() {
        for age in [
            PERIOD,
            PERIOD + Duration::from_millis(1),
            Duration::from_secs(3600),
        ] {
            match heartbeat_verdict(Some(age), PERIOD) {
                Verdict::Withhold { reason } => {
                    assert!(reason.contains("no progress"), "{reason}");
                    assert!(
                        reason.contains(&format!("{:.1} s", age.as_secs_f64())),
                        "{reason}"
                    );
                }
                Verdict::Ping => panic!("pinged with a heartbeat {age:?} old"),
            }
        }
    }

    #[cfg(feature = "engine")]
    #[test]
    fn a_fresh_heartbeat_pings() {
        for age in [
            Duration::ZERO,
            Duration::from_millis(300),
            PERIOD - Duration::from_millis(1),
        ] {
            assert_eq!(
                heartbeat_verdict(Some(age), PERIOD),
                Verdict::Ping,
                "{age:?}"
            );
        }
    }

    #[cfg(feature = "engine")]
    #[test]
    fn no_worker_yet_pings() {
        assert_eq!(heartbeat_verdict(None, PERIOD), Verdict::Ping);
        assert_eq!(heartbeat_verdict(None, Duration::ZERO), Verdict::Ping);
    }

    #[test]
    fn a_stall_is_reported_once_and_recovery_once() {
        let stale = Verdict::Withhold { reason: "x".into() };
        let mut w = false;
        assert_eq!(
            step(&mut w, &Verdict::Ping),
            Step::Ping { recovered: false }
        );
        assert_eq!(step(&mut w, &stale), Step::Withhold { first: true });
        assert_eq!(step(&mut w, &stale), Step::Withhold { first: false });
        assert_eq!(step(&mut w, &stale), Step::Withhold { first: false });
        assert_eq!(step(&mut w, &Verdict::Ping), Step::Ping { recovered: true });
        assert_eq!(
            step(&mut w, &Verdict::Ping),
            Step::Ping { recovered: false }
        );
        assert_eq!(step(&mut w, &stale), Step::Withhold { first: true });
    }

    #[tokio::test]
    async fn without_a_watchdog_the_loop_returns_at_once() {
        let checked = std::cell::Cell::new(0);
        run_watchdog(Notifier::disabled(), |_| {
            checked.set(checked.get() + 1);
            Verdict::Ping
        })
        .await;
        assert_eq!(checked.get(), 0);
    }

    #[tokio::test]
    async fn status_forwarding_is_a_no_op_when_disabled() {
        let (_tx, rx) = watch::channel(1);
        // Would wait for changes forever if it did not return at once.
        tokio::time::timeout(
            Duration::from_secs(5),
            forward_status(Notifier::disabled(), rx, |n: &i32| n.to_string()),
        )
        .await
        .expect("returns at once");
    }
}
