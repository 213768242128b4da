//! The two database drivers behind one small interface: statements written once with `$1`-style
//! parameters, values and rows in one type, and a transaction that remembers whether PostgreSQL
//! asked for the whole transaction to be retried.

use std::collections::HashMap;
use std::error::Error as StdError;

use postgres::GenericClient;
use postgres::types::{IsNull, ToSql as PgToSql, Type, to_sql_checked};

use crate::error::StoreError;

/// Which database a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A value bound to a statement or read from a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Value::Int(value)
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Value::Text(value.to_owned())
    }
}

impl From<&String> for Value {
    fn from(value: &String) -> Self {
        Value::Text(value.clone())
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Value::Text(value)
    }
}

impl From<Vec<u8>> for Value {
    fn from(value: Vec<u8>) -> Self {
        Value::Blob(value)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Null, Into::into)
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(value) => ToSqlOutput::Borrowed(ValueRef::Integer(*value)),
            Value::Text(value) => ToSqlOutput::Borrowed(ValueRef::Text(value.as_bytes())),
            Value::Blob(value) => ToSqlOutput::Borrowed(ValueRef::Blob(value)),
        })
    }
}

impl PgToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(value) => value.to_sql(ty, out),
            Value::Text(value) => value.to_sql(ty, out),
            Value::Blob(value) => value.to_sql(ty, out),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        // Each variant checks the column type when it is written.
        true
    }

    to_sql_checked!();
}

/// One row, with its columns in statement order.
#[derive(Debug)]
pub(crate) struct Row(Vec<Value>);

impl Row {
    pub(crate) fn int(&self, idx: usize) -> i64 {
        match &self.0[idx] {
            Value::Int(value) => *value,
            other => panic!(
                "column {idx} is {other:?}, not an integer: the schema and the query disagree"
            ),
        }
    }

    pub(crate) fn opt_int(&self, idx: usize) -> Option<i64> {
        match &self.0[idx] {
            Value::Null => None,
            _ => Some(self.int(idx)),
        }
    }

    pub(crate) fn opt_blob(&self, idx: usize) -> Option<&[u8]> {
        match &self.0[idx] {
            Value::Null => None,
            _ => Some(self.blob(idx)),
        }
    }

    pub(crate) fn opt_text(&self, idx: usize) -> Option<&str> {
        match &self.0[idx] {
            Value::Null => None,
            _ => Some(self.text(idx)),
        }
    }

    pub(crate) fn text(&self, idx: usize) -> &str {
        match &self.0[idx] {
            Value::Text(value) => value,
            other => {
                panic!("column {idx} is {other:?}, not text: the schema and the query disagree")
            }
        }
    }

    pub(crate) fn blob(&self, idx: usize) -> &[u8] {
        match &self.0[idx] {
            Value::Blob(value) => value,
            other => {
                panic!("column {idx} is {other:?}, not a blob: the schema and the query disagree")
            }
        }
    }
}

/// An open connection of either kind.
pub(crate) enum Conn {
    Sqlite(rusqlite::Connection),
    // Statements are prepared once per connection: the client would otherwise spend a round
    // trip preparing every statement before running it.
    Postgres(Box<postgres::Client>, HashMap<String, postgres::Statement>),
}

/// A transaction in progress. Statements that fail in a way the database says is transient
/// (a serialization failure or a deadlock) mark it for a retry of the whole transaction.
pub(crate) struct Tx<'conn> {
    // Invariant: `Some` until `finish` takes it; `Drop` rolls back what was never finished.
    inner: Option<TxInner<'conn>>,
    retry: bool,
    // Written before any other statement runs, or by the next statement (`take_deferred`).
    deferred: Option<Deferred>,
}

/// A write held back to go with a transaction's next statement (PostgreSQL), a round trip
/// fewer: data-modifying common table expressions, numbered from `$1`, and a check of what
/// they did. Any statement but one that takes it (`Tx::take_deferred`) first writes it alone.
pub(crate) struct Deferred {
    /// `name AS (…), …`.
    pub(crate) ctes: String,
    pub(crate) params: Vec<Value>,
    /// A scalar expression over the CTEs and the value it must have; anything else means that
    /// the store misread the database under its own lock, a bug (`broken` says which), and
    /// fails the transaction.
    pub(crate) check: String,
    pub(crate) expect: i64,
    pub(crate) broken: String,
}

impl Deferred {
    /// Checks the value of `check` that the statement writing it returned.
    pub(crate) fn verify(&self, value: Option<i64>) -> Result<(), StoreError> {
        if value == Some(self.expect) {
            return Ok(());
        }
        Err(StoreError::Database { source: format!("{} (found {value:?})", self.broken).into() })
    }
}

/// `sql` with each parameter `$n` renumbered `$(n + by)`, to follow `by` parameters of another
/// part of the same statement. The store's statements hold no `$` but in parameters.
pub(crate) fn shift_params(sql: &str, by: usize) -> String {
    let mut shifted = String::with_capacity(sql.len() + 8);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        shifted.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if let Ok(n) = rest[..digits].parse::<usize>() {
            shifted.push_str(&(n + by).to_string());
            rest = &rest[digits..];
        }
    }
    shifted.push_str(rest);
    shifted
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        // An early return left the transaction open: roll it back, or the connection would go
        // back to the pool still inside `BEGIN`.
        match self.inner.take() {
            Some(TxInner::Sqlite(connection)) => {
                let _ = connection.execute_batch("ROLLBACK");
            }
            Some(TxInner::Postgres(client, _)) => {
                let _ = client.batch_execute("ROLLBACK");
            }
            Some(TxInner::PostgresRead(..)) | None => {}
        }
    }
}

enum TxInner<'conn> {
    // The connection is inside `BEGIN` or `BEGIN IMMEDIATE`; `finish` ends it.
    Sqlite(&'conn rusqlite::Connection),
    // The connection is inside `BEGIN`, sent by hand rather than through `postgres::Transaction`
    // so that `commit_reading` can send its query and the `COMMIT` in one round trip.
    Postgres(&'conn mut postgres::Client, &'conn mut HashMap<String, postgres::Statement>),
    // A PostgreSQL read runs its statements on their own: under READ COMMITTED each statement
    // takes its own snapshot inside a transaction too, so `BEGIN` and `COMMIT` would only add
    // two round trips.
    PostgresRead(&'conn mut postgres::Client, &'conn mut HashMap<String, postgres::Statement>),
}

/// How a transaction starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Read,
    Write,
}

impl Conn {
    pub(crate) fn backend(&self) -> Backend {
        match self {
            Conn::Sqlite(_) => Backend::Sqlite,
            Conn::Postgres(..) => Backend::Postgres,
        }
    }

    pub(crate) fn begin(&mut self, mode: Mode) -> Result<Tx<'_>, StoreError> {
        let inner = match self {
            Conn::Sqlite(connection) => {
                // BEGIN IMMEDIATE takes the write lock at once, so a transaction that reads free
                // space and then takes it can never be overtaken by another writer in between.
                let begin = if mode == Mode::Write { "BEGIN IMMEDIATE" } else { "BEGIN" };
                run_cached(connection, begin)?;
                TxInner::Sqlite(connection)
            }
            Conn::Postgres(client, statements) => {
                if mode == Mode::Read {
                    TxInner::PostgresRead(client, statements)
                } else {
                    client.batch_execute("BEGIN").map_err(postgres_error)?;
                    TxInner::Postgres(client, statements)
                }
            }
        };
        Ok(Tx { inner: Some(inner), retry: false, deferred: None })
    }
}

impl Tx<'_> {
    pub(crate) fn backend(&self) -> Backend {
        match self.open_ref() {
            TxInner::Sqlite(_) => Backend::Sqlite,
            TxInner::Postgres(..) | TxInner::PostgresRead(..) => Backend::Postgres,
        }
    }

    fn open_ref(&self) -> &TxInner<'_> {
        self.inner.as_ref().expect("a transaction is open until finish consumes it")
    }

    /// Whether a statement failed in a way that a fresh attempt of the transaction may not.
    pub(crate) fn should_retry(&self) -> bool {
        self.retry
    }

    /// Marks the transaction for a retry of the whole: what it read is already out of date.
    pub(crate) fn retry_later(&mut self) -> StoreError {
        self.retry = true;
        StoreError::Retryable { source: "a row this transaction read has changed".into() }
    }

    /// Holds `write` back to go with the next statement; a write held back already is written
    /// first.
    pub(crate) fn defer(&mut self, write: Deferred) -> Result<(), StoreError> {
        self.flush()?;
        self.deferred = Some(write);
        Ok(())
    }

    /// The write held back, for the caller's statement to write with its own and `verify`.
    pub(crate) fn take_deferred(&mut self) -> Option<Deferred> {
        self.deferred.take()
    }

    /// Writes the write held back, if any, alone.
    fn flush(&mut self) -> Result<(), StoreError> {
        let Some(write) = self.deferred.take() else { return Ok(()) };
        let sql = format!("WITH {} SELECT {}", write.ctes, write.check);
        let row = self.query_now(&sql, &write.params)?.into_iter().next();
        write.verify(row.and_then(|row| row.opt_int(0)))
    }

    /// Runs a statement and returns the number of rows it changed.
    pub(crate) fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        self.flush()?;
        let result =
            match self.inner.as_mut().expect("a transaction is open until finish consumes it") {
                TxInner::Sqlite(connection) => connection
                    .prepare_cached(&sqlite_sql(sql))
                    .and_then(|mut statement| {
                        statement.execute(rusqlite::params_from_iter(params.iter()))
                    })
                    .map(|n_rows| n_rows as u64)
                    .map_err(sqlite_error),
                TxInner::Postgres(client, statements) => {
                    postgres_execute(*client, statements, sql, params)
                }
                TxInner::PostgresRead(client, statements) => {
                    postgres_execute(*client, statements, sql, params)
                }
            };
        self.note(result)
    }

    /// Runs a query and returns all its rows.
    pub(crate) fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        self.flush()?;
        self.query_now(sql, params)
    }

    fn query_now(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        let result =
            match self.inner.as_mut().expect("a transaction is open until finish consumes it") {
                TxInner::Sqlite(connection) => sqlite_query(connection, sql, params),
                TxInner::Postgres(client, statements) => {
                    postgres_query(*client, statements, sql, params)
                }
                TxInner::PostgresRead(client, statements) => {
                    postgres_query(*client, statements, sql, params)
                }
            };
        self.note(result)
    }

    /// Runs a query that returns at most one row.
    pub(crate) fn query_opt(
        &mut self,
        sql: &str,
        params: &[Value],
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Runs several statements without parameters (migrations).
    pub(crate) fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.flush()?;
        let result =
            match self.inner.as_mut().expect("a transaction is open until finish consumes it") {
                TxInner::Sqlite(connection) => connection.execute_batch(sql).map_err(sqlite_error),
                TxInner::Postgres(client, _) | TxInner::PostgresRead(client, _) => {
                    client.batch_execute(sql).map_err(postgres_error)
                }
            };
        self.note(result)
    }

    /// Runs transaction-control statements without parameters (savepoints): on SQLite each
    /// from the statement cache, on PostgreSQL all in one round trip.
    pub(crate) fn control(&mut self, statements: &[&str]) -> Result<(), StoreError> {
        self.flush()?;
        match self.inner.as_mut().expect("a transaction is open until finish consumes it") {
            TxInner::Sqlite(connection) => {
                let result = statements.iter().try_for_each(|sql| run_cached(connection, sql));
                self.note(result)
            }
            TxInner::Postgres(..) | TxInner::PostgresRead(..) => self.batch(&statements.join("; ")),
        }
    }

    /// Commits, or rolls back when `commit` is false.
    pub(crate) fn finish(mut self, commit: bool) -> Result<(), StoreError> {
        if commit {
            self.flush()?;
        }
        match self.inner.take().expect("a transaction is finished once") {
            TxInner::Sqlite(connection) => {
                run_cached(connection, if commit { "COMMIT" } else { "ROLLBACK" })
            }
            TxInner::Postgres(client, _) => client
                .batch_execute(if commit { "COMMIT" } else { "ROLLBACK" })
                .map_err(postgres_error),
            TxInner::PostgresRead(..) => Ok(()),
        }
    }

    /// Runs `sql`, a query of one integer, and commits; returns the integer. On PostgreSQL the
    /// query and the `COMMIT` go in one round trip.
    pub(crate) fn commit_reading(mut self, sql: &str) -> Result<Option<i64>, StoreError> {
        self.flush()?;
        match self.inner.take().expect("a transaction is finished once") {
            TxInner::Sqlite(connection) => {
                let value = sqlite_query(connection, sql, &[])
                    .map(|rows| rows.first().and_then(|row| row.opt_int(0)));
                let value = match value {
                    Ok(value) => value,
                    Err(error) => {
                        let _ = connection.execute_batch("ROLLBACK");
                        return Err(error);
                    }
                };
                run_cached(connection, "COMMIT")?;
                Ok(value)
            }
            TxInner::Postgres(client, _) => {
                let messages = client.simple_query(&format!("{sql}; COMMIT")).map_err(|error| {
                    // The query failed and the COMMIT never ran, or the COMMIT failed and
                    // ended the transaction: either way nothing stays open.
                    let _ = client.batch_execute("ROLLBACK");
                    postgres_error(error)
                })?;
                Ok(messages.iter().find_map(|message| match message {
                    postgres::SimpleQueryMessage::Row(row) => {
                        row.get(0).and_then(|text| text.parse().ok())
                    }
                    _ => None,
                }))
            }
            TxInner::PostgresRead(..) => Ok(None),
        }
    }

    /// Marks the transaction for another attempt after a transient conflict, or after its
    /// connection was lost: the database rolls back what a lost connection had not committed,
    /// and the next attempt takes another connection (or fails at once while the database is
    /// down). A commit whose connection is lost is never noted here: its outcome is unknown.
    fn note<T>(&mut self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(StoreError::Retryable { .. } | StoreError::Unavailable { .. }) = &result {
            self.retry = true;
        }
        result
    }
}

/// The prepared form of `sql` on this connection, prepared on first use.
fn prepared(
    client: &mut impl GenericClient,
    statements: &mut HashMap<String, postgres::Statement>,
    sql: &str,
) -> Result<postgres::Statement, StoreError> {
    if let Some(statement) = statements.get(sql) {
        return Ok(statement.clone());
    }
    let statement = client.prepare(sql).map_err(postgres_error)?;
    statements.insert(sql.to_owned(), statement.clone());
    Ok(statement)
}

fn postgres_execute(
    client: &mut impl GenericClient,
    statements: &mut HashMap<String, postgres::Statement>,
    sql: &str,
    params: &[Value],
) -> Result<u64, StoreError> {
    let params: Vec<&(dyn PgToSql + Sync)> = params.iter().map(|value| value as _).collect();
    let statement = prepared(client, statements, sql)?;
    client.execute(&statement, &params).map_err(postgres_error)
}

fn postgres_query(
    client: &mut impl GenericClient,
    statements: &mut HashMap<String, postgres::Statement>,
    sql: &str,
    params: &[Value],
) -> Result<Vec<Row>, StoreError> {
    let params: Vec<&(dyn PgToSql + Sync)> = params.iter().map(|value| value as _).collect();
    let statement = prepared(client, statements, sql)?;
    let rows = client.query(&statement, &params).map_err(postgres_error)?;
    rows.iter().map(postgres_row).collect()
}

/// SQLite spells positional parameters `?1`; the statements here use PostgreSQL's `$1`.
fn sqlite_sql(sql: &str) -> String {
    sql.replace('$', "?")
}

/// Runs a statement without parameters or rows from the connection's statement cache:
/// `execute_batch` would parse and plan it again on every call, and transactions begin and end
/// thousands of times a second.
fn run_cached(connection: &rusqlite::Connection, sql: &str) -> Result<(), StoreError> {
    connection
        .prepare_cached(sql)
        .and_then(|mut statement| statement.execute([]))
        .map(drop)
        .map_err(sqlite_error)
}

fn sqlite_query(
    connection: &rusqlite::Connection,
    sql: &str,
    params: &[Value],
) -> Result<Vec<Row>, StoreError> {
    let mut statement = connection.prepare_cached(&sqlite_sql(sql)).map_err(sqlite_error)?;
    let n_columns = statement.column_count();
    let mut rows =
        statement.query(rusqlite::params_from_iter(params.iter())).map_err(sqlite_error)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sqlite_error)? {
        let mut values = Vec::with_capacity(n_columns);
        for column_idx in 0..n_columns {
            use rusqlite::types::ValueRef;
            values.push(match row.get_ref(column_idx).map_err(sqlite_error)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(value) => Value::Int(value),
                ValueRef::Real(value) => Value::Int(value as i64),
                ValueRef::Text(text) => Value::Text(String::from_utf8_lossy(text).into_owned()),
                ValueRef::Blob(blob) => Value::Blob(blob.to_vec()),
            });
        }
        out.push(Row(values));
    }
    Ok(out)
}

fn postgres_row(row: &postgres::Row) -> Result<Row, StoreError> {
    let mut values = Vec::with_capacity(row.len());
    for (column_idx, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let value = if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(column_idx).map(Value::from)
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(column_idx).map(|value| Value::from(value.map(i64::from)))
        } else if *ty == Type::INT2 {
            row.try_get::<_, Option<i16>>(column_idx).map(|value| Value::from(value.map(i64::from)))
        } else if *ty == Type::BOOL {
            row.try_get::<_, Option<bool>>(column_idx)
                .map(|value| Value::from(value.map(i64::from)))
        } else if *ty == Type::BYTEA {
            row.try_get::<_, Option<Vec<u8>>>(column_idx).map(Value::from)
        } else {
            row.try_get::<_, Option<String>>(column_idx).map(Value::from)
        };
        values.push(value.map_err(postgres_error)?);
    }
    Ok(Row(values))
}

pub(crate) fn sqlite_error(error: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Busy { source: Box::new(error) }
        }
        Some(ErrorCode::DiskFull) => StoreError::DiskFull { source: Box::new(error) },
        Some(ErrorCode::ConstraintViolation) => StoreError::Constraint { source: Box::new(error) },
        _ => StoreError::Database { source: Box::new(error) },
    }
}

pub(crate) fn postgres_error(error: postgres::Error) -> StoreError {
    use postgres::error::SqlState;
    let code = error.code().cloned();
    // The connection is gone, the server is shutting down or starting, or it is a standby that
    // can't take writes (until it is promoted).
    let lost = error.is_closed()
        || error.source().is_some_and(|source| source.is::<std::io::Error>())
        || code.as_ref().is_some_and(|code| {
            code.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::READ_ONLY_SQL_TRANSACTION,
                    SqlState::TOO_MANY_CONNECTIONS,
                ]
                .contains(code)
        });
    if lost {
        return StoreError::Unavailable { source: Box::new(error) };
    }
    match code {
        Some(code)
            if code == SqlState::T_R_SERIALIZATION_FAILURE
                || code == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            StoreError::Retryable { source: Box::new(error) }
        }
        Some(code) if code == SqlState::DISK_FULL => {
            StoreError::DiskFull { source: Box::new(error) }
        }
        Some(code)
            if code == SqlState::UNIQUE_VIOLATION
                || code == SqlState::EXCLUSION_VIOLATION
                || code == SqlState::FOREIGN_KEY_VIOLATION =>
        {
            StoreError::Constraint { source: Box::new(error) }
        }
        _ => StoreError::Database { source: Box::new(error) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite() -> Conn {
        Conn::Sqlite(rusqlite::Connection::open_in_memory().unwrap())
    }

    #[test]
    fn parameters_are_renumbered_and_nothing_else() {
        assert_eq!(
            shift_params("UPDATE t SET a = $1, b = $12 WHERE c = $2 AND d = '$'", 9),
            "UPDATE t SET a = $10, b = $21 WHERE c = $11 AND d = '$'"
        );
        assert_eq!(shift_params("SELECT 1", 3), "SELECT 1");
    }

    #[test]
    fn a_transaction_dropped_unfinished_rolls_back_and_frees_the_connection() {
        let mut conn = sqlite();
        {
            let mut tx = conn.begin(Mode::Write).unwrap();
            tx.batch("CREATE TABLE t (v INTEGER)").unwrap();
            // Dropped without `finish`, as an early `?` would.
        }
        let mut tx = conn
            .begin(Mode::Write)
            .expect("the connection is not stuck inside the old transaction");
        assert!(
            tx.query("SELECT count(*) FROM t", &[]).is_err(),
            "the dropped transaction's table was rolled back"
        );
        tx.finish(false).unwrap();
    }
}
