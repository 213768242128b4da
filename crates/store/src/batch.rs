//! Group commit: concurrent `Store::write` calls share transactions. A leader thread takes the
//! waiting jobs, runs them in one transaction (if one fails, again with each inside its own
//! savepoint, so that a failing job rolls back only itself), commits once, and only then answers
//! every job. No job is acknowledged before the commit that made it durable, so this changes
//! throughput, not meaning: the batch is the same as running its jobs one after another.
//!
//! On PostgreSQL, writes that will lock the same pool tree (`Store::write_on`) wait in a queue
//! of their own with a single leader: several leaders would each take a few of them and then
//! queue on the tree's row lock, each paying its own commit while holding it; one leader runs
//! them all in one transaction instead. Other writes keep several leaders, so writes to
//! different trees still run side by side.

use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use crate::db::Mode;
use crate::error::StoreError;
use crate::{Store, WriteTx};

/// The most jobs one transaction carries.
const MAX_BATCH: usize = 64;

/// How many times a batch is tried when PostgreSQL reports a transient conflict.
const MAX_ATTEMPTS: usize = 20;

/// One caller's transaction closure with the place its answer goes.
pub(crate) trait Job: Send {
    /// Runs the closure in the batch's transaction; returns whether it succeeded.
    fn run(&mut self, tx: &mut WriteTx<'_>) -> bool;
    /// Answers the caller once the batch's fate is known: its own result if the batch
    /// committed, else the commit's error.
    fn deliver(self: Box<Self>, commit_error: Option<&StoreError>);
}

/// A typed job: the closure, its last result, and the caller waiting for it.
pub(crate) struct TypedJob<T, E, F> {
    pub(crate) f: F,
    pub(crate) result: Option<Result<T, E>>,
    pub(crate) reply: tokio::sync::oneshot::Sender<Result<T, E>>,
}

impl<T, E, F> Job for TypedJob<T, E, F>
where
    F: FnMut(&mut WriteTx<'_>) -> Result<T, E> + Send,
    T: Send,
    E: From<StoreError> + Send,
{
    fn run(&mut self, tx: &mut WriteTx<'_>) -> bool {
        let result = (self.f)(tx);
        let succeeded = result.is_ok();
        self.result = Some(result);
        succeeded
    }

    fn deliver(self: Box<Self>, commit_error: Option<&StoreError>) {
        let outcome = match (self.result, commit_error) {
            (Some(Ok(value)), None) => Ok(value),
            (Some(Ok(_)), Some(error)) => Err(error.duplicate().into()),
            (Some(Err(error)), _) => Err(error),
            (None, Some(error)) => Err(error.duplicate().into()),
            (None, None) => Err(StoreError::WorkerStopped.into()),
        };
        // The caller may have stopped waiting; then nobody needs the answer.
        let _ = self.reply.send(outcome);
    }
}

/// What an attempt at a batch came to.
enum Attempt {
    /// Committed, or rolled back because its only job failed.
    Finished,
    /// A job failed without a savepoint of its own: the batch must run again with savepoints.
    NeedsSavepoints,
    /// The connection was lost before the batch began (one kept open while the database
    /// restarted): nothing was sent, so it runs again on another connection.
    LostBeforeBegin(StoreError),
}

/// Jobs waiting for a leader.
pub(crate) struct Batcher {
    queue: Mutex<Queue>,
    max_leaders: usize,
    /// The key of a keyed queue (`Queues::keyed`), which is forgotten when it falls idle.
    key: Option<String>,
}

struct Queue {
    jobs: VecDeque<Box<dyn Job>>,
    n_leaders: usize,
}

impl Batcher {
    pub(crate) fn new(max_leaders: usize, key: Option<String>) -> Batcher {
        Batcher {
            queue: Mutex::new(Queue { jobs: VecDeque::new(), n_leaders: 0 }),
            max_leaders: max_leaders.max(1),
            key,
        }
    }

    /// Whether no job waits and no leader runs.
    fn is_idle(&self) -> bool {
        let queue = self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        queue.jobs.is_empty() && queue.n_leaders == 0
    }

    /// Queues a job; returns whether the caller must start a new leader.
    pub(crate) fn push(&self, job: Box<dyn Job>) -> bool {
        let mut queue = self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        queue.jobs.push_back(job);
        if queue.n_leaders < self.max_leaders {
            queue.n_leaders += 1;
            true
        } else {
            false
        }
    }

    /// After a batch: whether jobs wait, which the caller then leads; else it stops leading.
    fn keep_leading(&self) -> bool {
        let mut queue = self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if queue.jobs.is_empty() {
            queue.n_leaders -= 1;
            false
        } else {
            true
        }
    }

    /// The next batch, or `None` when the queue is empty (and this leader stops).
    fn next_batch(&self) -> Option<Vec<Box<dyn Job>>> {
        let mut queue = self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if queue.jobs.is_empty() {
            queue.n_leaders -= 1;
            return None;
        }
        let n_jobs = queue.jobs.len().min(MAX_BATCH);
        Some(queue.jobs.drain(..n_jobs).collect())
    }
}

/// Where writes wait: one shared queue, and on PostgreSQL a queue per key.
pub(crate) struct Queues {
    shared: Arc<Batcher>,
    /// `None` on SQLite, whose single writer runs every batch anyway.
    keyed: Option<Mutex<HashMap<String, Arc<Batcher>>>>,
}

impl Queues {
    pub(crate) fn new(shared_leaders: usize, keyed: bool) -> Queues {
        Queues {
            shared: Arc::new(Batcher::new(shared_leaders, None)),
            keyed: keyed.then(Default::default),
        }
    }

    /// The queue for writes with this key (`None`: the shared one).
    pub(crate) fn get(&self, key: Option<&str>) -> Arc<Batcher> {
        let (Some(key), Some(keyed)) = (key, &self.keyed) else { return self.shared.clone() };
        let mut keyed = keyed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        keyed
            .entry(key.to_owned())
            .or_insert_with(|| Arc::new(Batcher::new(1, Some(key.to_owned()))))
            .clone()
    }

    /// Drops a keyed queue that fell idle, so that the map holds only queues in use. A writer
    /// that took it from the map just before still finds it working (it leads it itself), so a
    /// key can briefly have two queues: their batches then queue on the tree's lock, as
    /// batches of the shared queue do.
    fn forget_if_idle(&self, batcher: &Arc<Batcher>) {
        let (Some(key), Some(keyed)) = (&batcher.key, &self.keyed) else { return };
        let mut keyed = keyed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if keyed.get(key).is_some_and(|current| Arc::ptr_eq(current, batcher)) && batcher.is_idle()
        {
            keyed.remove(key);
        }
    }
}

impl Store {
    /// A leader: runs batches until no job waits.
    pub(crate) fn lead_batches(&self, batcher: &Arc<Batcher>) {
        while let Some(jobs) = batcher.next_batch() {
            self.run_batch(jobs);
            self.inner.catch_up_checkpoint();
        }
        self.inner.queues.forget_if_idle(batcher);
    }

    /// A leader on a caller's thread: runs one batch (the caller's job is in it unless
    /// `MAX_BATCH` jobs were waiting ahead), then leaves what is left, the jobs that came
    /// meanwhile and a due checkpoint catch-up, to a leader on a blocking thread, so that the
    /// caller's answer waits for its own batch only.
    pub(crate) fn lead_one_batch(&self, batcher: &Arc<Batcher>) {
        let Some(jobs) = batcher.next_batch() else {
            self.inner.queues.forget_if_idle(batcher);
            return;
        };
        self.run_batch(jobs);
        if batcher.keep_leading() {
            let (store, batcher) = (self.clone(), batcher.clone());
            tokio::task::spawn_blocking(move || store.lead_batches(&batcher));
            return;
        }
        self.inner.queues.forget_if_idle(batcher);
        if self.inner.catch_up_pending() {
            let store = self.clone();
            tokio::task::spawn_blocking(move || store.inner.catch_up_checkpoint());
        }
    }

    fn run_batch(&self, mut jobs: Vec<Box<dyn Job>>) {
        // First the jobs run one after another in the transaction, without savepoints: nearly
        // every batch succeeds whole, and a savepoint costs a round trip per job on PostgreSQL.
        // When a job fails, that attempt rolls back and the batch runs again with a savepoint
        // per job, so that the failing job rolls back alone (every closure then runs again, as
        // on a retry).
        let mut savepoints = false;
        let mut attempt = 1;
        let commit = loop {
            match self.try_batch(&mut jobs, savepoints) {
                Err(StoreError::Retryable { .. }) | Ok(Attempt::LostBeforeBegin(_))
                    if attempt < MAX_ATTEMPTS =>
                {
                    attempt += 1
                }
                Ok(Attempt::NeedsSavepoints) => savepoints = true,
                Ok(Attempt::LostBeforeBegin(error)) => break Err(error),
                outcome => break outcome.map(|_| ()),
            }
        };
        for job in jobs {
            job.deliver(commit.as_ref().err());
        }
    }

    /// One attempt at a batch: every job (in its own savepoint if `savepoints`), then one
    /// commit.
    fn try_batch(
        &self,
        jobs: &mut [Box<dyn Job>],
        savepoints: bool,
    ) -> Result<Attempt, StoreError> {
        let pool = &self.inner.writers;
        let mut conn = pool.get(|| self.inner.open_conn())?;
        let outcome = (|| {
            let tx = match conn.begin(Mode::Write) {
                Err(error) if error.is_unavailable() => return Ok(Attempt::LostBeforeBegin(error)),
                begun => begun?,
            };
            let mut write_tx = WriteTx::new(tx);
            // A lone job needs no savepoint: if it fails, the whole transaction rolls back.
            let n_jobs = jobs.len();
            let use_savepoints = savepoints && n_jobs > 1;
            let mut must_retry = false;
            let mut succeeded_jobs = 0;
            // Whether the previous job succeeded: its savepoint's end goes with the next job's
            // SAVEPOINT, in one round trip. The last one, if it succeeded, needs nothing:
            // COMMIT releases it.
            let mut previous: Option<bool> = None;
            for job in jobs.iter_mut() {
                if previous == Some(false) {
                    write_tx.forget_pools();
                }
                if use_savepoints {
                    write_tx.tx.control(match previous {
                        None => &["SAVEPOINT job"],
                        Some(true) => &["RELEASE SAVEPOINT job", "SAVEPOINT job"],
                        Some(false) => {
                            &["ROLLBACK TO SAVEPOINT job", "RELEASE SAVEPOINT job", "SAVEPOINT job"]
                        }
                    })?;
                }
                // A panicking job fails alone; its caller hears that the worker stopped.
                let events_before = write_tx.events.len();
                let succeeded =
                    catch_unwind(AssertUnwindSafe(|| job.run(&mut write_tx))).unwrap_or(false);
                if !succeeded {
                    // Whatever the job held back to write, or did, goes with its rollback.
                    let _ = write_tx.tx.take_deferred();
                    write_tx.events.truncate(events_before);
                } else {
                    succeeded_jobs += 1;
                }
                if write_tx.tx.should_retry() {
                    must_retry = true;
                    break;
                }
                if !succeeded && !use_savepoints && n_jobs > 1 {
                    let _ = write_tx.read.tx.finish(false);
                    return Ok(Attempt::NeedsSavepoints);
                }
                if use_savepoints {
                    previous = Some(succeeded);
                }
            }
            if previous == Some(false) && succeeded_jobs > 0 && !must_retry {
                write_tx.tx.control(&["ROLLBACK TO SAVEPOINT job", "RELEASE SAVEPOINT job"])?;
            }
            let events = std::mem::take(&mut write_tx.events);
            let tx = write_tx.read.tx;
            if must_retry {
                let _ = tx.finish(false);
                return Err(StoreError::Retryable {
                    source: "a job in the batch hit a transient conflict".into(),
                });
            }
            if succeeded_jobs == 0 {
                tx.finish(false)?;
                return Ok(Attempt::Finished);
            }
            // The generation the commit brings moves this process's cache (`cache`).
            let timer = crate::telemetry::CommitTimer::start();
            let generation = crate::cache::commit(tx)?;
            timer.committed(succeeded_jobs);
            crate::telemetry::committed(&events);
            self.inner.committed();
            self.inner.cache.advance(generation);
            Ok(Attempt::Finished)
        })();
        pool.give_back(conn);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Box<dyn Job> {
        let (reply, _answer) = tokio::sync::oneshot::channel::<Result<(), StoreError>>();
        Box::new(TypedJob { f: |_: &mut WriteTx<'_>| Ok(()), result: None, reply })
    }

    #[test]
    fn writes_with_one_key_share_a_queue_with_one_leader_until_it_falls_idle() {
        let queues = Queues::new(4, true);
        let first = queues.get(Some("/nm"));
        assert!(Arc::ptr_eq(&first, &queues.get(Some("/nm"))));
        assert!(!Arc::ptr_eq(&first, &queues.get(Some("/other"))));
        assert!(Arc::ptr_eq(&queues.shared, &queues.get(None)));
        assert!(first.push(job()), "the first writer leads");
        assert!(!first.push(job()), "a keyed queue has one leader");
        // A queue at work stays; once its leader has run every job, it is forgotten.
        queues.forget_if_idle(&first);
        assert!(Arc::ptr_eq(&first, &queues.get(Some("/nm"))));
        assert_eq!(first.next_batch().map(|jobs| jobs.len()), Some(2));
        assert!(first.next_batch().is_none(), "the leader stops");
        queues.forget_if_idle(&first);
        assert!(!Arc::ptr_eq(&first, &queues.get(Some("/nm"))));
    }

    #[test]
    fn sqlite_queues_ignore_keys() {
        let queues = Queues::new(1, false);
        assert!(Arc::ptr_eq(&queues.shared, &queues.get(Some("/nm"))));
    }
}
