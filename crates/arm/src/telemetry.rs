//! What the ARM API tells the process's metrics, through the `metrics` facade (the server
//! installs the Prometheus recorder): refusals of auxiliary tokens and of linked checks, by
//! error code. Request counts and latencies are the server's (`server::metrics`); allocations
//! and releases are the store's (`store::telemetry`).

use crate::error::ArmError;

/// Cross-tenant refusals, by check (`auxiliary`: a token in `x-ms-authorization-auxiliary` was
/// refused; `linked`: the linked permission on a pool was missing) and error code.
pub const LINKED_REFUSALS: &str = "crosspool_linked_refusals_total";

/// Which cross-tenant check refused.
#[derive(Debug, Clone, Copy)]
pub enum Refusal {
    Auxiliary,
    Linked,
}

/// Counts a refusal; gives the error back.
pub fn refused(check: Refusal, error: ArmError) -> ArmError {
    let check = match check {
        Refusal::Auxiliary => "auxiliary",
        Refusal::Linked => "linked",
    };
    metrics::counter!(LINKED_REFUSALS, "check" => check, "code" => error.code.as_str())
        .increment(1);
    error
}
