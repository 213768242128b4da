//! Failed sign-ins are limited per user and per client address: after `MAX_FAILURES` within
//! `WINDOW_MS`, further attempts for that key are refused until the window passes. The counts are
//! per process; each replica limits on its own.

use std::collections::HashMap;
use std::sync::Mutex;

use store::Timestamp;

pub const MAX_FAILURES: u32 = 10;
pub const WINDOW_MS: i64 = 5 * 60 * 1000;

/// Failure counts per key (`user:<upn>` or `ip:<address>`).
#[derive(Debug, Default)]
pub struct FailureLimiter {
    // Invariant: each entry is (start of its window, failures since then).
    failures: Mutex<HashMap<String, (Timestamp, u32)>>,
}

impl FailureLimiter {
    /// Whether any of `keys` is locked out at `now`.
    pub fn is_locked(&self, keys: &[String], now: Timestamp) -> bool {
        let failures = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        keys.iter().any(|key| {
            failures
                .get(key)
                .is_some_and(|(since, count)| *count >= MAX_FAILURES && now.0 - since.0 < WINDOW_MS)
        })
    }

    /// Counts one failure against each key.
    pub fn record_failure(&self, keys: &[String], now: Timestamp) {
        let mut failures = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Forget windows that have passed, so the map does not grow without bound.
        failures.retain(|_, (since, _)| now.0 - since.0 < WINDOW_MS);
        for key in keys {
            let entry = failures.entry(key.clone()).or_insert((now, 0));
            entry.1 += 1;
        }
    }

    /// Clears a key after a successful sign-in.
    pub fn record_success(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_the_limit_and_unlocks_after_the_window() {
        let limiter = FailureLimiter::default();
        let keys = vec!["user:a@x".to_owned()];
        for failure_idx in 0..MAX_FAILURES {
            assert!(!limiter.is_locked(&keys, Timestamp(0)), "after {failure_idx} failures");
            limiter.record_failure(&keys, Timestamp(0));
        }
        assert!(limiter.is_locked(&keys, Timestamp(1)));
        assert!(!limiter.is_locked(&["user:b@x".to_owned()], Timestamp(1)));
        assert!(!limiter.is_locked(&keys, Timestamp(WINDOW_MS)));
        limiter.record_success("user:a@x");
        assert!(!limiter.is_locked(&keys, Timestamp(1)));
    }
}
