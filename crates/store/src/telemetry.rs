//! What the store tells the process's metrics, through the `metrics` facade (the server installs
//! the Prometheus recorder; without one, recording costs nothing): how long commits take and how
//! many writes each carries, and allocations and releases by pool — counted once their
//! transaction has committed, never for one that rolled back or ran again.

use std::time::Instant;

use ipam::usage::Holder;

/// Seconds a write transaction's commit took (group commit: one per batch).
pub const COMMIT_SECONDS: &str = "crosspool_store_commit_seconds";
/// Writes (`Store::write` calls) per committed transaction.
pub const BATCH_WRITES: &str = "crosspool_store_batch_writes";
/// Allocations made, by pool (its lower-cased resource id) and holder.
pub const ALLOCATIONS: &str = "crosspool_ipam_allocations_total";
/// Allocations released, by pool and holder.
pub const RELEASES: &str = "crosspool_ipam_releases_total";

/// A change to a pool's space, counted when its transaction commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PoolEvent {
    Allocated { pool: String, holder: Holder },
    Released { pool: String, holder: Holder },
}

fn holder_label(holder: Holder) -> &'static str {
    match holder {
        Holder::Resource => "resource",
        Holder::StaticCidr => "static_cidr",
        Holder::Reservation => "reservation",
    }
}

/// Counts what a committed transaction did to pools.
pub(crate) fn committed(events: &[PoolEvent]) {
    for event in events {
        let (name, pool, holder) = match event {
            PoolEvent::Allocated { pool, holder } => (ALLOCATIONS, pool, holder),
            PoolEvent::Released { pool, holder } => (RELEASES, pool, holder),
        };
        metrics::counter!(name, "pool" => pool.clone(), "holder" => holder_label(*holder))
            .increment(1);
    }
}

/// When a commit began, to record how long it took.
pub(crate) struct CommitTimer(Instant);

impl CommitTimer {
    #[allow(clippy::disallowed_methods)] // Reason: a measurement for metrics, not logic's time.
    pub(crate) fn start() -> CommitTimer {
        CommitTimer(Instant::now())
    }

    /// Records the commit: how long it took and how many writes it carried.
    pub(crate) fn committed(self, writes: usize) {
        metrics::histogram!(COMMIT_SECONDS).record(self.0.elapsed().as_secs_f64());
        metrics::histogram!(BATCH_WRITES).record(writes as f64);
    }
}
