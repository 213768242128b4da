//! What the store can fail with, in storage words. `arm` maps these to responses; `server` prints
//! the opening errors and exits.

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The seconds a client is told to wait (`Retry-After`) while the database is unavailable.
pub const UNAVAILABLE_RETRY_AFTER_SECONDS: u64 = 3;

/// Every failure of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The configuration names a database that can't be used as given.
    #[error("invalid database setting {setting:?}: {reason}")]
    InvalidConfig { setting: String, reason: String },

    /// The database could not be opened or reached.
    #[error("cannot open the database at {location}")]
    Open { location: String, source: Source },

    /// The database was written by a newer crosspool.
    #[error(
        "the database at {location} has schema version {found}, but this crosspool supports up to {supported}; run a newer crosspool"
    )]
    NewerSchema { location: String, found: i64, supported: i64 },

    /// Another process holds the database's write lock for longer than the busy timeout.
    #[error("the database is locked by another process")]
    Busy { source: Source },

    /// The disk or the database's storage is full.
    #[error("the database's disk is full")]
    DiskFull { source: Source },

    /// A uniqueness, exclusion or reference rule of the schema refused a write.
    #[error("the database refused a write that breaks one of its rules")]
    Constraint { source: Source },

    /// The database can't be reached now: stopped, restarting, failing over, or refusing
    /// connections. Nothing was committed unless the connection was lost during the commit
    /// itself; a client may try again shortly.
    #[error("the database is unavailable")]
    Unavailable { source: Source },

    /// A transient conflict between concurrent transactions; the store retries these itself.
    #[error("a concurrent transaction conflicted with this one")]
    Retryable { source: Source },

    /// Any other database failure.
    #[error("database failure")]
    Database { source: Source },

    /// A write's `If-Match` etag no longer matches the stored one.
    #[error("{id} has changed: its etag is no longer {expected}")]
    EtagMismatch { id: String, expected: String },

    /// A resource, pool or allocation that isn't there.
    #[error("{what} {id} does not exist")]
    NotFound { what: &'static str, id: String },

    /// Something that must be unique already exists.
    #[error("{what} {id} already exists")]
    AlreadyExists { what: &'static str, id: String },

    /// The IPAM domain refused the change.
    #[error(transparent)]
    Ipam(#[from] ipam::error::Error),

    /// The blocking task running a transaction panicked or was cancelled.
    #[error("the database worker stopped")]
    WorkerStopped,
}

impl StoreError {
    /// Whether the database could not be reached (`Unavailable`): a 503 for the client, not a
    /// 500.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }

    /// The same failure for another receiver (every job of a batch hears its commit's error):
    /// the variant and fields are kept, a source is kept as its text.
    pub(crate) fn duplicate(&self) -> StoreError {
        let text = |source: &Source| -> Source { source.to_string().into() };
        match self {
            StoreError::InvalidConfig { setting, reason } => {
                StoreError::InvalidConfig { setting: setting.clone(), reason: reason.clone() }
            }
            StoreError::Open { location, source } => {
                StoreError::Open { location: location.clone(), source: text(source) }
            }
            StoreError::NewerSchema { location, found, supported } => StoreError::NewerSchema {
                location: location.clone(),
                found: *found,
                supported: *supported,
            },
            StoreError::Busy { source } => StoreError::Busy { source: text(source) },
            StoreError::DiskFull { source } => StoreError::DiskFull { source: text(source) },
            StoreError::Constraint { source } => StoreError::Constraint { source: text(source) },
            StoreError::Unavailable { source } => StoreError::Unavailable { source: text(source) },
            StoreError::Retryable { source } => StoreError::Retryable { source: text(source) },
            StoreError::Database { source } => StoreError::Database { source: text(source) },
            StoreError::EtagMismatch { id, expected } => {
                StoreError::EtagMismatch { id: id.clone(), expected: expected.clone() }
            }
            StoreError::NotFound { what, id } => StoreError::NotFound { what, id: id.clone() },
            StoreError::AlreadyExists { what, id } => {
                StoreError::AlreadyExists { what, id: id.clone() }
            }
            StoreError::Ipam(error) => StoreError::Ipam(error.clone()),
            StoreError::WorkerStopped => StoreError::WorkerStopped,
        }
    }
}
