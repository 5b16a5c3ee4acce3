//! Failed-login throttling: at most N failures per minute per client address and per
//! user name, so that guessing is slow even from many addresses.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counts recent failures by key.
#[derive(Debug)]
pub struct LoginLimiter {
    max: usize,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginLimiter {
    /// At most `max` failures per `window` for each key.
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max: max.max(1) as usize,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds to wait)` when any key has used up its failures.
    pub fn check(&self, keys: &[String]) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = Duration::ZERO;
        for key in keys {
            if let Some(q) = map.get_mut(key) {
                while q
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.window)
                {
                    q.pop_front();
                }
                if q.len() >= self.max
                    && let Some(oldest) = q.front()
                {
                    wait = wait.max(self.window - now.duration_since(*oldest));
                }
            }
        }
        map.retain(|_, q| !q.is_empty());
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait.as_secs().max(1))
        }
    }

    /// Records a failure against every key.
    pub fn fail(&self, keys: &[String]) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for key in keys {
            map.entry(key.clone()).or_default().push_back(now);
        }
    }

    /// Forgets the failures of `keys` (after a successful login).
    pub fn clear(&self, keys: &[String]) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for key in keys {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_failures_until_the_window_passes() {
        let l = LoginLimiter::new(3, Duration::from_millis(300));
        let keys = vec!["ip:1".to_owned(), "user:a".to_owned()];
        for _ in 0..3 {
            assert!(l.check(&keys).is_ok());
            l.fail(&keys);
        }
        assert!(l.check(&keys).is_err());
        // Another address is still refused for the same user name.
        assert!(l.check(&["ip:2".to_owned(), "user:a".to_owned()]).is_err());
        assert!(l.check(&["ip:2".to_owned(), "user:b".to_owned()]).is_ok());
        std::thread::sleep(Duration::from_millis(350));
        assert!(l.check(&keys).is_ok());
        l.fail(&keys);
        l.clear(&keys);
        assert!(l.check(&keys).is_ok());
    }
}
