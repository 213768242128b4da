//! Failed sign-ins are limited like Entra's smart lockout: per account *and* source address
//! first, so that one address guessing at an account locks that account for that address only,
//! not for the account's owner elsewhere nor for every other user behind the same address.
//! Looser limits per account (guessing from many addresses) and per address (one address
//! spraying many accounts) bound what a distributed or spraying attacker gets.
//!
//! An attempt is reserved before its password is hashed and counts as a failure until it is
//! known to have succeeded, so parallel attempts cannot pass the limit while their hashes run.
//! Counts are per process; each replica limits on its own.
//!
//! Each Argon2id check holds 19 MiB for tens of milliseconds. The hashing gate lets as many run
//! at once as the machine has cores; a sign-in that cannot start within `HASH_WAIT` is refused
//! with the platform's throttling answer (429 and `Retry-After`), so a flood of sign-ins costs
//! waiting, not memory. Device codes are rate-limited per address (`RequestRate`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use store::Timestamp;

/// Failures of one account from one address within `WINDOW_MS` that lock that pair.
pub const MAX_FAILURES_PER_ACCOUNT_AND_SOURCE: u32 = 10;
/// Failures of one account from all addresses within `WINDOW_MS` that lock the account.
pub const MAX_FAILURES_PER_ACCOUNT: u32 = 50;
/// Failures from one address for all accounts within `WINDOW_MS` that lock the address.
pub const MAX_FAILURES_PER_SOURCE: u32 = 100;
pub const WINDOW_MS: i64 = 5 * 60 * 1000;

/// How long a sign-in waits for a place at the hashing gate before it is throttled.
pub const HASH_WAIT: Duration = Duration::from_secs(1);

/// What a throttled client is told to wait, in seconds.
pub const THROTTLE_RETRY_AFTER_SECONDS: u64 = 5;

/// Device codes one client address may ask for per minute.
pub const MAX_DEVICE_CODES_PER_MINUTE: u32 = 10;

/// The most keys kept; past it, windows that have ended are forgotten first, then everything.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    AccountAndSource(String, String),
    Account(String),
    Source(String),
}

impl Key {
    /// What it locks, as a metric label (`telemetry::LOCKOUTS`).
    fn label(&self) -> &'static str {
        match self {
            Key::AccountAndSource(..) => "account_and_address",
            Key::Account(_) => "account",
            Key::Source(_) => "address",
        }
    }

    fn limit(&self) -> u32 {
        match self {
            Key::AccountAndSource(..) => MAX_FAILURES_PER_ACCOUNT_AND_SOURCE,
            Key::Account(_) => MAX_FAILURES_PER_ACCOUNT,
            Key::Source(_) => MAX_FAILURES_PER_SOURCE,
        }
    }
}

/// Failure counts per key.
#[derive(Debug, Default)]
pub struct FailureLimiter {
    // Invariant: each entry is (start of its window, failures and reserved attempts since then).
    failures: Mutex<HashMap<Key, (Timestamp, u32)>>,
}

/// Refused: too many failures lately for this account, address or pair (AADSTS50053).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked;

/// A reserved attempt: it counts as a failure unless `succeeded` or `withdrawn` says otherwise.
#[derive(Debug)]
#[must_use = "an attempt counts as a failure unless it is settled"]
pub struct Attempt<'a> {
    limiter: &'a FailureLimiter,
    keys: Vec<Key>,
}

impl FailureLimiter {
    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (Timestamp, u32)>> {
        self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reserves an attempt to sign in to `account` (a lower-case UPN) from `source` (the
    /// client's address), or refuses it if any of its keys is at its limit.
    pub fn reserve(
        &self,
        account: &str,
        source: Option<&str>,
        now: Timestamp,
    ) -> Result<Attempt<'_>, Locked> {
        let mut keys = vec![Key::Account(account.to_owned())];
        if let Some(source) = source {
            keys.push(Key::AccountAndSource(account.to_owned(), source.to_owned()));
            keys.push(Key::Source(source.to_owned()));
        }
        let mut failures = self.failures();
        let live = |entry: Option<&(Timestamp, u32)>| {
            entry.filter(|(since, _)| now.0 - since.0 < WINDOW_MS).map_or(0, |(_, count)| *count)
        };
        if keys.iter().any(|key| live(failures.get(key)) >= key.limit()) {
            return Err(Locked);
        }
        if failures.len() >= MAX_KEYS {
            failures.retain(|_, (since, _)| now.0 - since.0 < WINDOW_MS);
            if failures.len() >= MAX_KEYS {
                failures.clear();
            }
        }
        for key in &keys {
            let entry = failures.entry(key.clone()).or_insert((now, 0));
            if now.0 - entry.0.0 >= WINDOW_MS {
                *entry = (now, 0);
            }
            entry.1 += 1;
        }
        Ok(Attempt { limiter: self, keys })
    }
}

impl Attempt<'_> {
    /// The password was right: the attempt is no failure, and the account's failures from this
    /// address are forgiven.
    pub fn succeeded(self) {
        let mut failures = self.limiter.failures();
        for key in &self.keys {
            match key {
                Key::AccountAndSource(..) => {
                    failures.remove(key);
                }
                _ => {
                    if let Some(entry) = failures.get_mut(key) {
                        entry.1 = entry.1.saturating_sub(1);
                    }
                }
            }
        }
    }

    /// The attempt was never checked (the server was too busy): it counts for nothing.
    pub fn withdrawn(self) {
        let mut failures = self.limiter.failures();
        for key in &self.keys {
            if let Some(entry) = failures.get_mut(key) {
                entry.1 = entry.1.saturating_sub(1);
            }
        }
    }

    /// The password was wrong: the reservation stays as a failure. A key it brings to its
    /// limit is locked from now on, which the metrics count.
    pub fn failed(self) {
        let failures = self.limiter.failures();
        for key in &self.keys {
            if failures.get(key).is_some_and(|(_, count)| *count == key.limit()) {
                crate::telemetry::lockout(key.label());
            }
        }
    }
}

/// Bounds how many password hashes run at once.
#[derive(Debug)]
pub struct HashingGate {
    permits: tokio::sync::Semaphore,
}

impl HashingGate {
    /// A gate with a place per core.
    pub fn for_this_machine() -> HashingGate {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        HashingGate { permits: tokio::sync::Semaphore::new(cores) }
    }

    /// Runs `check` on a blocking thread once a place is free, or refuses after `HASH_WAIT`.
    pub async fn run<T: Send + 'static>(
        &self,
        check: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Throttled> {
        let permit = tokio::time::timeout(HASH_WAIT, self.permits.acquire())
            .await
            .map_err(|_| Throttled::Busy)?
            .map_err(|_| Throttled::Stopped)?;
        let result = tokio::task::spawn_blocking(check).await.map_err(|_| Throttled::Stopped);
        drop(permit);
        result
    }
}

/// Why the hashing gate refused to run a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttled {
    /// No place freed up within `HASH_WAIT`.
    Busy,
    /// The runtime is stopping.
    Stopped,
}

/// A fixed-window count of requests per key (a client address): at most `max` per window.
#[derive(Debug)]
pub struct RequestRate {
    max: u32,
    window_ms: i64,
    // Invariant: each entry is (start of its window, requests since then).
    counts: Mutex<HashMap<String, (Timestamp, u32)>>,
}

impl RequestRate {
    pub fn new(max: u32, window_ms: i64) -> RequestRate {
        RequestRate { max, window_ms, counts: Mutex::default() }
    }

    /// Counts a request for `key` and says whether it is within the rate.
    pub fn allow(&self, key: &str, now: Timestamp) -> bool {
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if counts.len() >= MAX_KEYS {
            counts.retain(|_, (since, _)| now.0 - since.0 < self.window_ms);
            if counts.len() >= MAX_KEYS {
                counts.clear();
            }
        }
        let entry = counts.entry(key.to_owned()).or_insert((now, 0));
        if now.0 - entry.0.0 >= self.window_ms {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1 <= self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_000_000);

    #[test]
    fn a_request_rate_allows_max_per_window_and_key() {
        let rate = RequestRate::new(3, 60_000);
        assert!((0..3).all(|_| rate.allow("10.0.0.1", NOW)));
        assert!(!rate.allow("10.0.0.1", NOW));
        assert!(rate.allow("10.0.0.2", NOW));
        assert!(rate.allow("10.0.0.1", Timestamp(NOW.0 + 60_000)));
    }

    #[test]
    fn an_account_locks_for_the_guessing_address_only() {
        let limiter = FailureLimiter::default();
        for _ in 0..MAX_FAILURES_PER_ACCOUNT_AND_SOURCE {
            limiter.reserve("a@x", Some("10.0.0.1"), NOW).unwrap().failed();
        }
        assert_eq!(limiter.reserve("a@x", Some("10.0.0.1"), NOW).unwrap_err(), Locked);
        // The owner elsewhere, and other users behind the same address, go on.
        limiter.reserve("a@x", Some("10.0.0.2"), NOW).unwrap().succeeded();
        limiter.reserve("b@x", Some("10.0.0.1"), NOW).unwrap().succeeded();
        // The window passes.
        limiter.reserve("a@x", Some("10.0.0.1"), Timestamp(NOW.0 + WINDOW_MS)).unwrap().failed();
    }

    #[test]
    fn reserved_attempts_count_before_their_outcome_is_known() {
        let limiter = FailureLimiter::default();
        let in_flight: Vec<Attempt<'_>> = (0..MAX_FAILURES_PER_ACCOUNT_AND_SOURCE)
            .map(|_| limiter.reserve("a@x", Some("10.0.0.1"), NOW).unwrap())
            .collect();
        assert_eq!(limiter.reserve("a@x", Some("10.0.0.1"), NOW).unwrap_err(), Locked);
        for attempt in in_flight {
            attempt.withdrawn();
        }
        limiter.reserve("a@x", Some("10.0.0.1"), NOW).unwrap().succeeded();
    }

    #[test]
    fn an_account_guessed_from_many_addresses_locks_everywhere() {
        let limiter = FailureLimiter::default();
        for source_idx in 0..MAX_FAILURES_PER_ACCOUNT {
            limiter.reserve("a@x", Some(&format!("10.0.1.{source_idx}")), NOW).unwrap().failed();
        }
        assert_eq!(limiter.reserve("a@x", Some("10.9.9.9"), NOW).unwrap_err(), Locked);
        assert!(limiter.reserve("b@x", Some("10.9.9.9"), NOW).is_ok());
    }

    #[test]
    fn an_address_spraying_many_accounts_locks_itself() {
        let limiter = FailureLimiter::default();
        for account_idx in 0..MAX_FAILURES_PER_SOURCE {
            limiter.reserve(&format!("u{account_idx}@x"), Some("10.0.0.1"), NOW).unwrap().failed();
        }
        assert_eq!(limiter.reserve("fresh@x", Some("10.0.0.1"), NOW).unwrap_err(), Locked);
        assert!(limiter.reserve("fresh@x", Some("10.0.0.2"), NOW).is_ok());
    }
}
