//! The engine thread's heartbeat: a timestamp it refreshes on every turn of its loop
//! (idle waits included), so a watchdog can tell a working engine from a hung one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The last time the owning thread showed progress, readable from any thread.
#[derive(Debug)]
pub(crate) struct Heartbeat {
    origin: Instant,
    /// Nanoseconds from `origin` to the last beat.
    last: AtomicU64,
}

impl Heartbeat {
    /// A heartbeat that has just beaten.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    /// Records progress now.
    pub fn beat(&self) {
        let nanos = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last.fetch_max(nanos, Ordering::Relaxed);
    }

    /// Time since the last beat.
    pub fn age(&self) -> Duration {
        let last = Duration::from_nanos(self.last.load(Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_grows_until_the_next_beat() {
        let h = Heartbeat::new();
        std::thread::sleep(Duration::from_millis(60));
        let before = h.age();
        assert!(before >= Duration::from_millis(60), "{before:?}");
        h.beat();
        assert!(
            h.age() < before,
            "{:?} after a beat, {before:?} before",
            h.age()
        );
        assert!(h.age() < Duration::from_millis(50));
    }

    #[test]
    fn beats_from_another_thread_are_seen() {
        let h = std::sync::Arc::new(Heartbeat::new());
        std::thread::sleep(Duration::from_millis(60));
        let beater = std::sync::Arc::clone(&h);
        std::thread::spawn(move || beater.beat())
            .join()
            .expect("thread");
        assert!(h.age() < Duration::from_millis(50), "{:?}", h.age());
    }
}
