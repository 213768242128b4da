//! What the identity service tells the process's metrics, through the `metrics` facade (the
//! server installs the Prometheus recorder): tokens issued, failed sign-ins and lockouts. Labels
//! come from short fixed lists, never from what a client sent.

/// Tokens issued, by grant (`client_credentials`, `password`, `refresh_token`,
/// `authorization_code`, `device_code`).
pub const TOKENS_ISSUED: &str = "crosspool_tokens_issued_total";
/// Sign-ins refused, by reason (`bad_credentials`, `locked_out`, `disabled`, `not_in_tenant`,
/// `throttled`, `unavailable`).
pub const SIGN_IN_FAILURES: &str = "crosspool_sign_in_failures_total";
/// Lockouts begun: the failure that brought an account, an address or the pair of both to its
/// limit (`limiter`), by what is locked (`account`, `address`, `account_and_address`).
pub const LOCKOUTS: &str = "crosspool_sign_in_lockouts_total";

pub(crate) fn token_issued(grant: &'static str) {
    metrics::counter!(TOKENS_ISSUED, "grant" => grant).increment(1);
}

pub(crate) fn sign_in_failed(reason: &'static str) {
    metrics::counter!(SIGN_IN_FAILURES, "reason" => reason).increment(1);
}

pub(crate) fn lockout(locked: &'static str) {
    metrics::counter!(LOCKOUTS, "locked" => locked).increment(1);
}
