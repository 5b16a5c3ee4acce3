//! Login throttling: at most N attempts per minute per client address and per user
//! name (a success clears them), so that guessing is slow even from many addresses.
//! An attempt counts when it starts, so parallel guesses cannot all slip through
//! before the first one fails.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counts recent attempts by key.
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

    /// Counts an attempt against every key, or `Err(seconds to wait)` (counting
    /// nothing) when a key has used up its attempts.
    pub fn attempt(&self, keys: &[String]) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        // Every key is pruned, not just these: keys nobody asks about again must not
        // stay in memory.
        map.retain(|_, q| {
            while q
                .front()
                .is_some_and(|t| now.duration_since(*t) >= self.window)
            {
                q.pop_front();
            }
            !q.is_empty()
        });
        let wait = keys
            .iter()
            .filter_map(|k| map.get(k))
            .filter(|q| q.len() >= self.max)
            .filter_map(|q| q.front())
            .map(|oldest| self.window - now.duration_since(*oldest))
            .max();
        if let Some(wait) = wait {
            return Err(wait.as_secs().max(1));
        }
        for key in keys {
            map.entry(key.clone()).or_default().push_back(now);
        }
        Ok(())
    }

    /// Forgets the attempts of `keys` (after a successful login).
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
    fn blocks_after_max_attempts_until_the_window_passes() {
        let l = LoginLimiter::new(3, Duration::from_millis(300));
        let keys = vec!["ip:1".to_owned(), "user:a".to_owned()];
        for _ in 0..3 {
            assert!(l.attempt(&keys).is_ok());
        }
        assert!(l.attempt(&keys).is_err());
        // Another address is still refused for the same user name.
        assert!(
            l.attempt(&["ip:2".to_owned(), "user:a".to_owned()])
                .is_err()
        );
        assert!(l.attempt(&["ip:2".to_owned(), "user:b".to_owned()]).is_ok());
        std::thread::sleep(Duration::from_millis(350));
        assert!(l.attempt(&keys).is_ok());
        l.clear(&keys);
        for _ in 0..3 {
            assert!(l.attempt(&keys).is_ok());
        }
    }

    #[test]
    fn old_keys_are_forgotten() {
        let l = LoginLimiter::new(3, Duration::from_millis(50));
        for i in 0..100 {
            l.attempt(&[format!("user:{i}")]).unwrap();
        }
        std::thread::sleep(Duration::from_millis(60));
        l.attempt(&["user:x".to_owned()]).unwrap();
        assert_eq!(l.failures.lock().unwrap().len(), 1);
    }
}
