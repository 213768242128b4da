//! The store: everything crosspool keeps, behind one handle with two backends, SQLite (embedded,
//! the default) and PostgreSQL (shared by several stateless replicas).
//!
//! A transaction is a closure: `store.write(|tx| { … })` runs it on a blocking thread inside one
//! database transaction, commits when it returns `Ok`, rolls back on `Err`, and runs it again when
//! PostgreSQL reports a serialization failure or a deadlock. Concurrent `write` calls share one
//! commit (group commit), and each is answered only after that commit. Mutating methods exist
//! only on `WriteTx`; `ReadTx` has the reads, and a `WriteTx` can read too.

pub mod audit;
pub mod authorization;
pub mod backup;
mod batch;
pub mod cache;
mod checkpoint;
mod db;
pub mod error;
pub mod identity;
mod migrate;
pub mod pool;
pub mod resource;
pub mod telemetry;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rusqlite::config::DbConfig;
use tokio::runtime::RuntimeFlavor;

use crate::db::{Backend, Conn, Mode, Tx};
use crate::error::StoreError;

/// Milliseconds since the Unix epoch. The store never reads the clock: callers pass `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

/// Where the data lives.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// One SQLite file, `crosspool.db`, in this directory (created if missing).
    Sqlite {
        data_dir: PathBuf,
        /// How long a writer waits for another process's write lock before failing.
        busy_timeout: Duration,
    },
    /// A PostgreSQL database, e.g. `postgres://user@host:5432/db`.
    Postgres {
        url: String,
        /// Tables go in this schema (created if missing) instead of the default search path.
        /// Tests use one schema each.
        schema: Option<String>,
        /// Connections kept open at most.
        max_connections: usize,
    },
}

impl StoreConfig {
    /// SQLite in `data_dir` with a five-second busy timeout.
    pub fn sqlite(data_dir: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig::Sqlite { data_dir: data_dir.into(), busy_timeout: Duration::from_secs(5) }
    }

    /// PostgreSQL at `url`, in its default schema, with up to 16 connections.
    pub fn postgres(url: impl Into<String>) -> StoreConfig {
        StoreConfig::Postgres { url: url.into(), schema: None, max_connections: 16 }
    }
}

/// Creates `dir` (0700) and an empty `path` in it readable by its owner only (0600), unless they
/// exist. SQLite gives the WAL and shared-memory files the mode of the database file, so they
/// are private too: the store holds the signing keys and password hashes.
fn create_private_file(dir: &Path, path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}

/// The handle to the store. Cheap to clone; all clones share the connections.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("location", &self.inner.location).finish_non_exhaustive()
    }
}

struct Inner {
    location: String,
    opener: Opener,
    // SQLite has one writer at a time, so writes share one connection; reads use their own.
    // PostgreSQL uses one pool for both.
    writers: ConnPool,
    readers: ConnPool,
    // Concurrent `write` calls wait here for a leader to run them in a shared transaction.
    queues: batch::Queues,
    // SQLite: wakes the thread that copies the WAL back into the database.
    checkpoints: Option<checkpoint::Checkpointer>,
    // Rows authorization reads on nearly every request, valid for one generation (`cache`).
    cache: Arc<cache::Cache>,
}

/// Opens new connections of the configured kind.
enum Opener {
    Sqlite { path: PathBuf, busy_timeout: Duration },
    Postgres { config: Box<postgres::Config>, schema: Option<String> },
}

/// How many times a transaction is tried when PostgreSQL reports a transient conflict.
const MAX_ATTEMPTS: usize = 20;

/// How long opening a PostgreSQL connection may take, per host, unless the URL says
/// (`connect_timeout`).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Leaders running shared commits at once on PostgreSQL.
const MAX_BATCH_LEADERS: usize = 4;

impl Store {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub fn open(config: &StoreConfig) -> Result<Store, StoreError> {
        let (opener, location, n_writers, n_readers, n_leaders) = match config {
            StoreConfig::Sqlite { data_dir, busy_timeout } => {
                let path = backup::sqlite_file(data_dir);
                create_private_file(data_dir, &path).map_err(|error| StoreError::Open {
                    location: path.display().to_string(),
                    source: Box::new(error),
                })?;
                let location = path.display().to_string();
                (Opener::Sqlite { path, busy_timeout: *busy_timeout }, location, 1, 4, 1)
            }
            StoreConfig::Postgres { url, schema, max_connections } => {
                let mut config: postgres::Config =
                    url.parse().map_err(|error: postgres::Error| StoreError::InvalidConfig {
                        setting: redact_url(url),
                        reason: error.to_string(),
                    })?;
                // A server that does not answer fails a request in seconds, not minutes.
                if config.get_connect_timeout().is_none() {
                    config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
                }
                if let Some(schema) = schema
                    && !schema.bytes().all(|byte| {
                        byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_'
                    })
                {
                    return Err(StoreError::InvalidConfig {
                        setting: schema.clone(),
                        reason: "a schema name may hold only lower-case letters, digits and _"
                            .to_owned(),
                    });
                }
                let location = postgres_location(&config);
                let n_connections = (*max_connections).max(1);
                // A few leaders keep batches large (they queue on the same tree locks) while
                // writes to different trees still run side by side.
                let n_leaders = n_connections.min(MAX_BATCH_LEADERS);
                (
                    Opener::Postgres { config: Box::new(config), schema: schema.clone() },
                    location,
                    n_connections,
                    0,
                    n_leaders,
                )
            }
        };
        // SQLite's single writer runs every batch anyway: only PostgreSQL keys its queues.
        let keyed_queues = matches!(opener, Opener::Postgres { .. });
        let mut inner = Inner {
            opener,
            writers: ConnPool::new(n_writers),
            readers: ConnPool::new(n_readers),
            queues: batch::Queues::new(n_leaders, keyed_queues),
            checkpoints: None,
            location,
            cache: Arc::new(cache::Cache::new()),
        };
        // At start, say which database could not be reached.
        let mut conn = inner.open_conn().map_err(|error| match error {
            StoreError::Unavailable { .. } => {
                StoreError::Open { location: inner.location.clone(), source: Box::new(error) }
            }
            other => other,
        })?;
        migrate::run(&mut conn, &inner.location)?;
        inner.writers.put(conn);
        if matches!(inner.opener, Opener::Sqlite { .. })
            && let Conn::Sqlite(connection) = inner.open_conn()?
        {
            inner.checkpoints = Some(checkpoint::Checkpointer::start(connection, &inner.location)?);
        }
        Ok(Store { inner: Arc::new(inner) })
    }

    /// Which database this store uses.
    pub fn backend(&self) -> Backend {
        match self.inner.opener {
            Opener::Sqlite { .. } => Backend::Sqlite,
            Opener::Postgres { .. } => Backend::Postgres,
        }
    }

    /// Where the data lives, for messages (no password).
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// Runs `f` in a write transaction and answers once it has committed; the transaction runs
    /// on the caller's thread (which then blocks, as in `block_in_place`) or on a blocking
    /// thread, never on an async worker that goes on polling other tasks. Concurrent calls
    /// share transactions (group commit, see `batch`): an `Err` from `f` rolls back only its own
    /// changes (`f` may run again, as on a retry).
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnMut(&mut WriteTx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.write_queued(None, f).await
    }

    /// `write` for a transaction that will lock the pool tree (or another hot row) that `key`
    /// names, e.g. the id of the network manager whose pool it allocates from. On PostgreSQL
    /// the writes with one key share transactions led by one leader at a time, instead of
    /// splitting into several transactions that wait for each other's lock (see `batch`).
    /// The key only groups writes: what `f` locks is still locked, whatever the key.
    pub async fn write_on<T, E, F>(&self, key: &str, f: F) -> Result<T, E>
    where
        F: FnMut(&mut WriteTx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.write_queued(Some(&key.to_ascii_lowercase()), f).await
    }

    async fn write_queued<T, E, F>(&self, key: Option<&str>, f: F) -> Result<T, E>
    where
        F: FnMut(&mut WriteTx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Box::new(batch::TypedJob { f, result: None, reply });
        let batcher = self.inner.queues.get(key);
        if batcher.push(job) {
            let multi_thread = tokio::runtime::Handle::try_current()
                .is_ok_and(|runtime| runtime.runtime_flavor() == RuntimeFlavor::MultiThread);
            if multi_thread {
                // The writer that finds no leader leads one batch itself, on its own thread (its
                // worker's other tasks move to another thread meanwhile): a lone writer's
                // transaction then costs no hand-off to a blocking thread and back.
                tokio::task::block_in_place(|| self.lead_one_batch(&batcher));
            } else {
                let store = self.clone();
                tokio::task::spawn_blocking(move || store.lead_batches(&batcher));
            }
        }
        answer.await.unwrap_or_else(|_| Err(StoreError::WorkerStopped.into()))
    }

    /// Runs `f` in a read transaction. On SQLite, when a reader connection is idle, it runs on
    /// the calling thread: a read there is a few page look-ups in memory, which costs less than
    /// the two thread wake-ups of handing it to a blocking thread (and WAL readers never wait
    /// for the writer). Otherwise, and always on PostgreSQL (its client blocks on network round
    /// trips), it runs on a blocking thread.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnMut(&mut ReadTx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.read_with(None, f).await
    }

    /// `read` for one of a request's reads: subscriptions, role assignments, pools, and
    /// resources of the cached types come from the cache when it is at the generation of the
    /// request's `ticket` (see `cache`). The ticket's first read reads the generation.
    pub async fn read_cached<T, E, F>(&self, ticket: &Arc<cache::Ticket>, f: F) -> Result<T, E>
    where
        F: FnMut(&mut ReadTx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.read_with(Some(ticket.clone()), f).await
    }

    async fn read_with<T, E, F>(&self, ticket: Option<Arc<cache::Ticket>>, mut f: F) -> Result<T, E>
    where
        F: FnMut(&mut ReadTx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        if self.backend() == Backend::Sqlite
            && let Some(conn) = self.inner.readers.take_idle()
        {
            // A panicking closure fails its caller as it would on a blocking thread.
            let inline = AssertUnwindSafe(|| self.run_read(Some(conn), ticket.as_deref(), &mut f));
            return catch_unwind(inline).unwrap_or_else(|_| Err(StoreError::WorkerStopped.into()));
        }
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.run_read(None, ticket.as_deref(), &mut f))
            .await
            .unwrap_or_else(|_| Err(StoreError::WorkerStopped.into()))
    }

    /// `write` for callers that are not async (the admin command line, tests, benchmarks). Must
    /// not be called on an async runtime's worker thread.
    pub fn write_blocking<T, E, F>(&self, mut f: F) -> Result<T, E>
    where
        F: FnMut(&mut WriteTx<'_>) -> Result<T, E>,
        E: From<StoreError>,
    {
        let mut generation = None;
        let mut events = Vec::new();
        let result = self.run(Mode::Write, None, |tx| {
            let mut write_tx = WriteTx::new(tx);
            let mut result = f(&mut write_tx);
            if result.is_ok() {
                match cache::generation(&mut write_tx.tx) {
                    Ok(read) => generation = Some(read),
                    Err(error) => result = Err(error.into()),
                }
            }
            events = std::mem::take(&mut write_tx.events);
            (write_tx.read.tx, result)
        });
        if let (Ok(_), Some(generation)) = (&result, generation) {
            self.inner.cache.advance(generation);
            telemetry::committed(&events);
        }
        result
    }

    /// The database's schema version, read now: what `/readyz` asks to tell that the database
    /// answers, and that its migrations are this build's (`schema_version_supported`).
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        self.read(|tx| {
            Ok(tx
                .tx
                .query_opt("SELECT max(version) FROM crosspool_schema", &[])?
                .and_then(|row| row.opt_int(0))
                .unwrap_or(0))
        })
        .await
    }

    /// The schema version this build writes and reads.
    pub fn schema_version_supported() -> i64 {
        migrate::latest_version()
    }

    /// `read` for callers that are not async.
    pub fn read_blocking<T, E, F>(&self, mut f: F) -> Result<T, E>
    where
        F: FnMut(&mut ReadTx<'_>) -> Result<T, E>,
        E: From<StoreError>,
    {
        self.run_read(None, None, &mut f)
    }

    /// A read transaction, on `first` if given (a connection taken from the readers), through
    /// the cache if `ticket` is given.
    fn run_read<T, E>(
        &self,
        first: Option<Conn>,
        ticket: Option<&cache::Ticket>,
        f: &mut impl FnMut(&mut ReadTx<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        self.run(Mode::Read, first, |mut tx| {
            let view = match ticket.map(|ticket| cache::view(&self.inner.cache, ticket, &mut tx)) {
                Some(Err(error)) => return (tx, Err(error.into())),
                Some(Ok(view)) => Some(view),
                None => None,
            };
            let mut read_tx = ReadTx { tx, cache: view };
            let result = f(&mut read_tx);
            (read_tx.tx, result)
        })
    }

    /// Runs a transaction, retrying transient failures; its first attempt uses `first` when
    /// given (a connection taken from the pool this mode uses).
    fn run<T, E>(
        &self,
        mode: Mode,
        mut first: Option<Conn>,
        mut f: impl FnMut(Tx<'_>) -> (Tx<'_>, Result<T, E>),
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let pool = if mode == Mode::Read && self.backend() == Backend::Sqlite {
            &self.inner.readers
        } else {
            &self.inner.writers
        };
        let mut attempt = 1;
        loop {
            let mut conn = match first.take() {
                Some(conn) => conn,
                None => pool.get(|| self.inner.open_conn())?,
            };
            let outcome = (|| {
                let tx = conn.begin(mode)?;
                let (tx, result) = f(tx);
                let retry = tx.should_retry();
                let finished = tx.finish(result.is_ok());
                Ok::<_, StoreError>((result, retry, finished))
            })();
            pool.give_back(conn);
            let (result, retry, finished) = match outcome {
                Ok(outcome) => outcome,
                // Only `BEGIN` fails here with a lost connection (one kept open while the
                // database restarted): nothing was sent, so it runs again on another.
                Err(StoreError::Retryable { .. } | StoreError::Unavailable { .. })
                    if attempt < MAX_ATTEMPTS =>
                {
                    attempt += 1;
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            // A statement failed transiently (`retry`), or the commit did: run it all again.
            let retryable = attempt < MAX_ATTEMPTS
                && (retry || matches!(finished, Err(StoreError::Retryable { .. })));
            match (result, finished) {
                (Ok(value), Ok(())) => {
                    if mode == Mode::Write {
                        self.inner.committed();
                        self.inner.catch_up_checkpoint();
                    }
                    return Ok(value);
                }
                _ if retryable => attempt += 1,
                (Ok(_), Err(error)) => return Err(error.into()),
                (Err(error), _) => return Err(error),
            }
        }
    }
}

/// A read transaction.
pub struct ReadTx<'conn> {
    tx: Tx<'conn>,
    /// The cache this transaction may read through (`Store::read_cached`); never in a write.
    cache: Option<cache::View>,
}

/// A write transaction; it can read as well.
pub struct WriteTx<'conn> {
    read: ReadTx<'conn>,
    /// The pools whose trees this transaction has locked, as read under the lock (`pool`):
    /// while the lock is held only this transaction can change them, so a later job of the
    /// same batch needs no round trip to lock and read them again. Forgotten when this
    /// transaction changes a pool and when a job's savepoint rolls back (which releases the
    /// locks taken since).
    locked_pools: Vec<pool::PoolRecord>,
    /// What this transaction knows of locked pools' free blocks (`pool::free::KnownFree`); forgotten
    /// with `locked_pools`.
    known_free: Vec<pool::free::KnownFree>,
    /// What it did to pools, counted once it commits (`telemetry`).
    events: Vec<telemetry::PoolEvent>,
}

impl<'conn> WriteTx<'conn> {
    fn new(tx: Tx<'conn>) -> WriteTx<'conn> {
        WriteTx {
            read: ReadTx { tx, cache: None },
            locked_pools: Vec::new(),
            known_free: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Forgets the pools read under their locks and what is known of their free blocks, when
    /// a savepoint rolls back the changes made since.
    fn forget_pools(&mut self) {
        self.locked_pools.clear();
        self.known_free.clear();
    }
}

impl<'conn> std::ops::Deref for WriteTx<'conn> {
    type Target = ReadTx<'conn>;

    fn deref(&self) -> &Self::Target {
        &self.read
    }
}

impl std::ops::DerefMut for WriteTx<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.read
    }
}

impl std::fmt::Debug for ReadTx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadTx").field("backend", &self.tx.backend()).finish()
    }
}

impl std::fmt::Debug for WriteTx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTx").field("backend", &self.tx.backend()).finish()
    }
}

impl Inner {
    /// Called after each committed write transaction.
    fn committed(&self) {
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.committed();
        }
    }

    /// Whether `catch_up_checkpoint` has work to do.
    fn catch_up_pending(&self) -> bool {
        self.checkpoints.as_ref().is_some_and(|checkpoints| checkpoints.catch_up_pending())
    }

    /// Called by a writer after it has answered its callers: on SQLite, once per checkpoint
    /// round, copies the frames the round left in the WAL, so that the next write transaction
    /// starts the WAL over (`checkpoint`). Skipped when the writer connection is busy; the
    /// next writer does it.
    fn catch_up_checkpoint(&self) {
        let Some(checkpoints) = &self.checkpoints else { return };
        if !checkpoints.catch_up_due() {
            return;
        }
        let Some(conn) = self.writers.take_idle() else {
            checkpoints.catch_up_missed();
            return;
        };
        if let Conn::Sqlite(connection) = &conn {
            // PASSIVE never waits; a failure leaves the frames in the WAL, durable.
            let _ = connection.execute_batch("PRAGMA wal_checkpoint(PASSIVE)");
        }
        self.writers.put(conn);
    }

    fn open_conn(&self) -> Result<Conn, StoreError> {
        let open_error = |error: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            location: self.location.clone(),
            source: error,
        };
        match &self.opener {
            Opener::Sqlite { path, busy_timeout } => {
                let connection = rusqlite::Connection::open(path)
                    .map_err(|error| open_error(Box::new(error)))?;
                connection
                    .busy_timeout(*busy_timeout)
                    .map_err(|error| open_error(Box::new(error)))?;
                // The store has more distinct statements than rusqlite's default cache of 16, and
                // one VNet PUT alone runs about that many.
                connection.set_prepared_statement_cache_capacity(256);
                // Without the query planner stability guarantee SQLite re-plans a cached
                // statement whenever a new value bound to certain parameters could change its
                // plan (LIMIT $n, comparisons with 0 or 1, ranges under STAT4): most of the
                // store's statements were being parsed and planned again on every run.
                connection
                    .set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
                    .map_err(|error| open_error(Box::new(error)))?;
                // WAL lets readers run beside the writer; FULL syncs the WAL on every commit, so
                // an acknowledged write survives power loss. Checkpoints run on a thread of
                // their own (`checkpoint`), not in the committing writer. 1 KiB pages (set when
                // the file is created): an allocation changes about ten small index entries,
                // and each changed page is written whole to the WAL and synced; with 4 KiB pages
                // one writer's allocations were 40% slower. Savepoints' sub-journals stay in
                // memory.
                connection
                    .execute_batch(
                        "PRAGMA page_size = 1024; PRAGMA journal_mode = WAL; \
                         PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
                         PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 0;",
                    )
                    .and_then(|()| {
                        connection.pragma_update(
                            None,
                            "journal_size_limit",
                            checkpoint::MAX_WAL_FRAMES * 1024,
                        )
                    })
                    .map_err(|error| match db::sqlite_error(error) {
                        StoreError::Database { source } => open_error(source),
                        other => other,
                    })?;
                Ok(Conn::Sqlite(connection))
            }
            Opener::Postgres { config, schema } => {
                // No server to be reached is a database that is unavailable (`postgres_error`),
                // unless the server refused the credentials or the database name.
                let mut client = config.connect(postgres::NoTls).map_err(|error| {
                    let refused = error.code().is_some_and(|code| {
                        !code.code().starts_with("08") && !code.code().starts_with("57")
                    });
                    if refused { open_error(Box::new(error)) } else { db::postgres_error(error) }
                })?;
                if let Some(schema) = schema {
                    client
                        .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema}, public;"))
                        .map_err(db::postgres_error)?;
                }
                Ok(Conn::Postgres(Box::new(client), std::collections::HashMap::new()))
            }
        }
    }
}

/// A bounded set of connections, opened on demand.
struct ConnPool {
    state: Mutex<PoolState>,
    returned: Condvar,
    max: usize,
}

struct PoolState {
    idle: Vec<Conn>,
    n_open: usize,
}

impl Drop for ConnPool {
    /// The PostgreSQL client closes its connection by blocking on its own runtime, which panics
    /// on a thread that drives async tasks; the last handle to a store is often dropped on one
    /// (a server shutting down). So idle connections are closed on a thread of their own.
    fn drop(&mut self) {
        let idle = match self.state.get_mut() {
            Ok(state) => std::mem::take(&mut state.idle),
            Err(poisoned) => std::mem::take(&mut poisoned.into_inner().idle),
        };
        if !idle.is_empty() {
            let _ = std::thread::spawn(move || drop(idle)).join();
        }
    }
}

impl ConnPool {
    fn new(max: usize) -> ConnPool {
        ConnPool {
            state: Mutex::new(PoolState { idle: Vec::new(), n_open: 0 }),
            returned: Condvar::new(),
            max,
        }
    }

    fn get(&self, open: impl FnOnce() -> Result<Conn, StoreError>) -> Result<Conn, StoreError> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok(conn);
            }
            if state.n_open < self.max {
                state.n_open += 1;
                drop(state);
                return open().inspect_err(|_| self.discard());
            }
            state = self.returned.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// An idle connection, if one is open and free; never opens one or waits.
    fn take_idle(&self) -> Option<Conn> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).idle.pop()
    }

    fn put(&self, conn: Conn) {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.n_open > self.max {
            state.n_open -= 1;
        } else {
            state.idle.push(conn);
        }
        drop(state);
        self.returned.notify_one();
    }

    /// Returns a connection after use. One the server closed is forgotten, and so are the idle
    /// ones: they went to the same server, which has most likely closed them too (it stopped,
    /// restarted or failed over), and each would fail its next transaction.
    fn give_back(&self, conn: Conn) {
        if !matches!(&conn, Conn::Postgres(client, _) if client.is_closed()) {
            return self.put(conn);
        }
        let idle = {
            let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let idle = std::mem::take(&mut state.idle);
            state.n_open = state.n_open.saturating_sub(1 + idle.len());
            idle
        };
        self.returned.notify_all();
        drop(idle);
    }

    /// Forgets a connection that was taken and is gone (failed to open, or closed by the server).
    fn discard(&self) {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.n_open = state.n_open.saturating_sub(1);
        drop(state);
        self.returned.notify_one();
    }
}

/// `host:port/dbname` of a PostgreSQL configuration, without credentials.
fn postgres_location(config: &postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(host)) => host.clone(),
        Some(postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("postgres://{host}:{port}/{}", config.get_dbname().unwrap_or(""))
}

/// A database URL with any password replaced, for error messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _password)) => {
                    format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
                }
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::StatementStatus;

    use super::*;

    fn sqlite_conn(dir: &std::path::Path) -> rusqlite::Connection {
        let store = Store::open(&StoreConfig::sqlite(dir)).unwrap();
        match store.inner.open_conn().unwrap() {
            Conn::Sqlite(connection) => connection,
            Conn::Postgres(..) => unreachable!("a SQLite store opens SQLite connections"),
        }
    }

    #[test]
    fn a_cached_statement_is_not_planned_again_for_new_bindings() {
        let dir = tempfile::tempdir().unwrap();
        let connection = sqlite_conn(dir.path());
        // A bound LIMIT and a bound 0/1 each made SQLite re-prepare on every new value.
        let sql = "SELECT id FROM resources WHERE tenant_id = ?1 AND created_at > ?2 LIMIT ?3";
        for (created_after, limit) in [(0, 1), (1, 5), (0, 10), (1, 1)] {
            let mut statement = connection.prepare_cached(sql).unwrap();
            let mut rows = statement.query(rusqlite::params!["t", created_after, limit]).unwrap();
            while rows.next().unwrap().is_some() {}
        }
        let statement = connection.prepare_cached(sql).unwrap();
        assert_eq!(statement.get_status(StatementStatus::RePrepare), 0);
    }

    #[test]
    fn a_new_sqlite_database_uses_1_kib_pages() {
        let dir = tempfile::tempdir().unwrap();
        let connection = sqlite_conn(dir.path());
        let page_size: i64 =
            connection.query_row("PRAGMA page_size", [], |row| row.get(0)).unwrap();
        assert_eq!(page_size, 1024);
    }
}
