//! SQLite checkpoints off the write path. With automatic checkpoints the writer that crosses
//! the WAL's threshold copies the WAL back into the database inside its own commit, and every
//! request waiting on that commit waits for the copy. Here a thread of its own does it, with
//! its own connection, at most every `INTERVAL` while writes keep coming.
//!
//! That thread alone never lets the WAL start over under steady writes: a write transaction
//! restarts the WAL from its beginning only when every frame in it has been copied, and the
//! writer always commits more frames while the thread copies. The WAL then grew without bound
//! (100 MB in 4 s with 16 writers), and every commit appended to new file space, whose sync
//! costs more than an overwrite. So after a round the writer, between transactions and after
//! answering its callers, copies the frames committed during that round (`catch_up_due`);
//! nothing else writes meanwhile, so that copy completes and the next write transaction starts
//! the WAL over. The writer waits for that copy, so it is done only after a cheap round
//! (`CHEAP_ROUND`), or whatever it costs once the WAL reaches `MAX_WAL_FRAMES`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::StoreError;

/// The least time between two checkpoints. Under load a checkpoint then covers many commits,
/// and a page that each of them wrote (an index's root, a pool's free-space page) is copied
/// once instead of once per commit.
const INTERVAL: Duration = Duration::from_millis(500);

/// A round at most this long leaves a catch-up short enough to keep the writer waiting for. A
/// round takes longer when the pages written since the last one are many and scattered (a
/// catch-up then took 5–40 ms in the VNet PUT benchmark); the WAL may then grow, up to
/// `MAX_WAL_FRAMES`.
const CHEAP_ROUND: Duration = Duration::from_millis(10);

/// The most frames (of 1 KiB pages) the WAL holds before the writer catches up whatever a
/// round costs: 256 MiB. `journal_size_limit` trims the file back to this when the WAL starts
/// over.
pub(crate) const MAX_WAL_FRAMES: i64 = 256 * 1024;

/// The handle that wakes the checkpoint thread; dropping it stops the thread.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    wake: SyncSender<()>,
    /// Set after a round that leaves a catch-up worth its wait: the writer's catch-up is due.
    catch_up: Arc<AtomicBool>,
    // Reason: only tests read it, to wait for checkpoints instead of for time.
    #[cfg_attr(not(test), allow(dead_code))]
    rounds: Arc<Rounds>,
}

/// How many checkpoints the thread has run.
#[derive(Debug, Default)]
struct Rounds {
    done: Mutex<u64>,
    changed: Condvar,
}

impl Checkpointer {
    /// Starts the thread on `connection`, a connection of its own to the store's database.
    pub(crate) fn start(
        connection: rusqlite::Connection,
        location: &str,
    ) -> Result<Checkpointer, StoreError> {
        let (wake, woken) = sync_channel::<()>(1);
        let rounds = Arc::new(Rounds::default());
        let counted = rounds.clone();
        let catch_up = Arc::new(AtomicBool::new(false));
        let due = catch_up.clone();
        std::thread::Builder::new()
            .name("crosspool-checkpoint".to_owned())
            .spawn(move || {
                while woken.recv().is_ok() {
                    // PASSIVE copies what no reader still needs and never waits: the writer
                    // goes on committing meanwhile. A failure (a full disk, say) leaves the
                    // frames in the WAL, where they stay durable; the next round tries again.
                    // Reason: the round's duration foretells the catch-up's.
                    #[allow(clippy::disallowed_methods)]
                    let started = Instant::now();
                    let frames = connection
                        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get::<_, i64>(1))
                        .unwrap_or(0);
                    if started.elapsed() <= CHEAP_ROUND || frames >= MAX_WAL_FRAMES {
                        due.store(true, Ordering::Release);
                    }
                    *counted.done.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) += 1;
                    counted.changed.notify_all();
                    // Reason: this pause is the point: the commits meanwhile share the next round.
                    #[allow(clippy::disallowed_methods)]
                    std::thread::sleep(INTERVAL);
                }
            })
            .map_err(|error| StoreError::Open {
                location: location.to_owned(),
                source: Box::new(error),
            })?;
        Ok(Checkpointer { wake, catch_up, rounds })
    }

    /// Says that a write transaction committed: a checkpoint is due after the current interval.
    pub(crate) fn committed(&self) {
        // Full means a wake-up is already pending.
        let _ = self.wake.try_send(());
    }

    /// Whether the writer should copy what the last round left: true at most once per round.
    pub(crate) fn catch_up_due(&self) -> bool {
        self.catch_up.swap(false, Ordering::AcqRel)
    }

    /// Whether a catch-up is due, leaving it due.
    pub(crate) fn catch_up_pending(&self) -> bool {
        self.catch_up.load(Ordering::Acquire)
    }

    /// Says that a due catch-up could not run (the writer connection was busy).
    pub(crate) fn catch_up_missed(&self) {
        self.catch_up.store(true, Ordering::Release);
    }

    /// How many rounds have run.
    #[cfg(test)]
    fn rounds_done(&self) -> u64 {
        *self.rounds.done.lock().unwrap()
    }

    /// Waits up to `timeout` for the checkpoint after the `seen`-th; returns how many have run.
    #[cfg(test)]
    fn wait_after(&self, seen: u64, timeout: Duration) -> u64 {
        let done = self.rounds.done.lock().unwrap();
        let (done, _) =
            self.rounds.changed.wait_timeout_while(done, timeout, |done| *done <= seen).unwrap();
        *done
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::resource::{Precondition, ResourceWrite};
    use crate::{Store, StoreConfig, Timestamp};

    /// How many of the test's resources the database file holds on its own, without its WAL:
    /// a copy of the file alone is a database of what checkpoints have copied into it.
    fn checkpointed(dir: &std::path::Path) -> Option<i64> {
        let copy = tempfile::tempdir().unwrap();
        std::fs::copy(dir.join("crosspool.db"), copy.path().join("copy.db")).ok()?;
        let connection = rusqlite::Connection::open(copy.path().join("copy.db")).ok()?;
        connection
            .query_row("SELECT count(*) FROM resources WHERE resource_type = 't'", [], |row| {
                row.get(0)
            })
            .ok()
    }

    #[test]
    fn commits_reach_the_database_file_through_the_checkpoint_thread() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::sqlite(dir.path())).unwrap();
        for n in 0..50 {
            let id = format!("/test/{n}");
            let write = ResourceWrite { id: &id, resource_type: "t", tenant_id: "t", body: "{}" };
            store
                .write_blocking(|tx| tx.resource_put(write, &Precondition::None, Timestamp(0)))
                .unwrap();
        }
        // Writers never checkpoint (wal_autocheckpoint is off), and the store stays open, so
        // only the checkpoint thread can put the rows into the file. A round that starts after
        // the last commit comes (that commit woke the thread or found it already woken); wait
        // for rounds until one has copied everything, and fail if they stop first.
        let checkpoints = store.inner.checkpoints.as_ref().unwrap();
        let mut seen = 0;
        while checkpointed(dir.path()) != Some(50) {
            let done = checkpoints.wait_after(seen, Duration::from_secs(10));
            assert!(done > seen, "no checkpoint copied the last commits into the file");
            seen = done;
        }
        drop(store);
    }

    /// The WAL header's checkpoint sequence: how many times the WAL has started over.
    fn wal_restarts(dir: &std::path::Path) -> u32 {
        let header = std::fs::read(dir.join("crosspool.db-wal")).unwrap();
        u32::from_be_bytes(header[12..16].try_into().unwrap())
    }

    #[test]
    fn the_wal_starts_over_while_writes_keep_coming() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::sqlite(dir.path())).unwrap();
        let checkpoints = store.inner.checkpoints.as_ref().unwrap();
        // One writer with no pause between transactions, through two checkpoint rounds: each
        // round copies while the writer commits more, so only the writer's catch-up after a
        // round lets a later write transaction start the WAL over.
        let mut n = 0;
        while checkpoints.rounds_done() < 2 {
            let id = format!("/test/{n}");
            let write = ResourceWrite { id: &id, resource_type: "t", tenant_id: "t", body: "{}" };
            store
                .write_blocking(|tx| tx.resource_put(write, &Precondition::None, Timestamp(0)))
                .unwrap();
            n += 1;
        }
        assert!(wal_restarts(dir.path()) >= 1, "the WAL never started over in {n} writes");
        drop(store);
    }
}
