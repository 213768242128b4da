//! Resources: ARM-style JSON documents keyed by their id (compared case-insensitively, returned as
//! created), each with an etag that changes on every write, for optimistic concurrency.

use std::hash::{Hash, Hasher};

use crate::db::{Backend, Row, Value, shift_params};
use crate::error::StoreError;
use crate::{ReadTx, Timestamp, WriteTx};

/// A stored resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResource {
    pub id: String,
    pub resource_type: String,
    pub tenant_id: String,
    /// The document, as JSON text.
    pub body: String,
    pub etag: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What a write requires of the stored resource (`If-Match` / `If-None-Match`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// Write whatever is there.
    None,
    /// Only if the stored etag is this one.
    IfMatch(String),
    /// Only if it exists (`If-Match: *`).
    Exists,
    /// Only if it does not exist (`If-None-Match: *`).
    Absent,
}

/// A resource to write.
#[derive(Debug, Clone, Copy)]
pub struct ResourceWrite<'a> {
    pub id: &'a str,
    pub resource_type: &'a str,
    pub tenant_id: &'a str,
    pub body: &'a str,
}

const COLUMNS: &str = "id, resource_type, tenant_id, body, etag, created_at, updated_at";

/// A resource from a row of `COLUMNS`.
fn resource_from(row: &Row) -> StoredResource {
    StoredResource {
        id: row.text(0).to_owned(),
        resource_type: row.text(1).to_owned(),
        tenant_id: row.text(2).to_owned(),
        body: row.text(3).to_owned(),
        etag: row.text(4).to_owned(),
        created_at: Timestamp(row.int(5)),
        updated_at: Timestamp(row.int(6)),
    }
}

impl ReadTx<'_> {
    /// The resource with this id, compared case-insensitively.
    pub fn resource_get(&mut self, id: &str) -> Result<Option<StoredResource>, StoreError> {
        let row = self.tx.query_opt(
            &format!("SELECT {COLUMNS} FROM resources WHERE id_key = $1"),
            &[id.to_ascii_lowercase().into()],
        )?;
        Ok(row.as_ref().map(resource_from))
    }

    /// The resource with this id if it is of this type (any case); cached for the
    /// `cache::CACHED_TYPES`.
    pub fn resource_of_type(
        &mut self,
        resource_type: &str,
        id: &str,
    ) -> Result<Option<StoredResource>, StoreError> {
        let load = |read: &mut Self| {
            Ok(read
                .resource_get(id)?
                .filter(|stored| stored.resource_type.eq_ignore_ascii_case(resource_type)))
        };
        if !crate::cache::is_cached_type(resource_type) {
            return load(self);
        }
        let key = || {
            format!("resource {:?}", (resource_type.to_ascii_lowercase(), id.to_ascii_lowercase()))
        };
        self.cached(key, load)
    }

    /// Up to `limit` resources of a type whose ids start with `id_prefix` (case-insensitive),
    /// after the id `after` in id order. Paging by the last id seen is stable under concurrent
    /// writes: nothing is skipped or repeated.
    pub fn resources_list(
        &mut self,
        resource_type: &str,
        id_prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredResource>, StoreError> {
        let lower = id_prefix.to_ascii_lowercase();
        // Every key that starts with `lower` sorts before `lower` followed by the highest char.
        let upper = format!("{lower}\u{10FFFF}");
        let after = after.map(str::to_ascii_lowercase).unwrap_or_default();
        let resource_type = resource_type.to_ascii_lowercase();
        let load = |read: &mut Self| {
            read.resources_in_range(&resource_type, &lower, &upper, &after, limit)
        };
        if !crate::cache::is_cached_type(&resource_type) {
            return load(self);
        }
        self.cached(|| format!("list {:?}", (&resource_type, &lower, &after, limit)), load)
    }

    fn resources_in_range(
        &mut self,
        resource_type: &str,
        lower: &str,
        upper: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<StoredResource>, StoreError> {
        let rows = self.tx.query(
            &format!(
                "SELECT {COLUMNS} FROM resources WHERE resource_type = $1 AND id_key >= $2 AND id_key < $3 \
                 AND id_key > $4 ORDER BY id_key LIMIT $5"
            ),
            &[
                resource_type.into(),
                lower.into(),
                upper.into(),
                after.into(),
                Value::Int(i64::try_from(limit).unwrap_or(i64::MAX)),
            ],
        )?;
        Ok(rows.iter().map(resource_from).collect())
    }

    /// Every resource whose id starts with `id_prefix` (case-insensitive), of any type, in id
    /// order: what a resource group holds.
    pub fn resources_under(&mut self, id_prefix: &str) -> Result<Vec<StoredResource>, StoreError> {
        let lower = id_prefix.to_ascii_lowercase();
        let upper = format!("{lower}\u{10FFFF}");
        let rows = self.tx.query(
            &format!(
                "SELECT {COLUMNS} FROM resources WHERE id_key >= $1 AND id_key < $2 ORDER BY id_key"
            ),
            &[lower.into(), upper.into()],
        )?;
        Ok(rows.iter().map(resource_from).collect())
    }
}

impl WriteTx<'_> {
    /// The resource with this id, locked until the transaction ends: on PostgreSQL
    /// `SELECT … FOR UPDATE`, which waits for a transaction that is changing the row and then
    /// reads what it committed; SQLite's write transaction holds the whole database anyway.
    /// Writes that read a resource this way before writing it take turns, across processes.
    /// A missing resource locks nothing: of two transactions creating it at once, the second
    /// finds it created when it inserts, and runs again from the start (`resource_put_over`).
    pub fn resource_get_locked(&mut self, id: &str) -> Result<Option<StoredResource>, StoreError> {
        let lock = if self.tx.backend() == Backend::Postgres { " FOR UPDATE" } else { "" };
        let row = self.tx.query_opt(
            &format!("SELECT {COLUMNS} FROM resources WHERE id_key = $1{lock}"),
            &[id.to_ascii_lowercase().into()],
        )?;
        Ok(row.as_ref().map(resource_from))
    }

    /// Creates or replaces a resource if `precondition` holds, with a new etag. Returns what is
    /// stored and whether it was created.
    pub fn resource_put(
        &mut self,
        write: ResourceWrite<'_>,
        precondition: &Precondition,
        now: Timestamp,
    ) -> Result<(StoredResource, bool), StoreError> {
        // A create-only write needs no read first: the insert itself refuses an existing row
        // (one round trip fewer, e.g. for every operation record).
        let existing =
            if *precondition == Precondition::Absent { None } else { self.resource_get(write.id)? };
        self.resource_put_over(write, existing, precondition, now)
    }

    /// `resource_put` over `existing`, what the caller read at `write.id` earlier in this
    /// transaction (after the lock that serialises writes to it): spares reading it again.
    pub fn resource_put_over(
        &mut self,
        write: ResourceWrite<'_>,
        existing: Option<StoredResource>,
        precondition: &Precondition,
        now: Timestamp,
    ) -> Result<(StoredResource, bool), StoreError> {
        self.resource_put_over_creating(write, existing, precondition, now, None)
    }

    /// `resource_put_over` that also creates `create`, a resource that must not exist yet (the
    /// record of the operation making this write), on PostgreSQL in the same statement: one
    /// round trip fewer for every VNet write.
    pub fn resource_put_over_creating(
        &mut self,
        write: ResourceWrite<'_>,
        existing: Option<StoredResource>,
        precondition: &Precondition,
        now: Timestamp,
        create: Option<ResourceWrite<'_>>,
    ) -> Result<(StoredResource, bool), StoreError> {
        check(write.id, existing.as_ref(), precondition)?;
        let create = match create {
            Some(create) if self.tx.backend() == Backend::Sqlite => {
                self.resource_put_over(create, None, &Precondition::Absent, now)?;
                None
            }
            create => create,
        };
        let etag = next_etag(
            write.id,
            existing.as_ref().map(|stored| stored.etag.as_str()),
            write.body,
            now,
        );
        let key = write.id.to_ascii_lowercase();
        let stored = match existing {
            Some(existing) => {
                self.execute_creating(
                    "UPDATE resources SET body = $1, etag = $2, updated_at = $3, tenant_id = $4 WHERE id_key = $5",
                    vec![write.body.into(), etag.as_str().into(), Value::Int(now.0), write.tenant_id.into(), key.into()],
                    create,
                    (3, now),
                )?;
                StoredResource {
                    body: write.body.to_owned(),
                    etag,
                    updated_at: now,
                    tenant_id: write.tenant_id.to_owned(),
                    ..existing
                }
            }
            None => {
                // A row that is there (create-only), or that another transaction inserted
                // since the read, makes this insert nothing and leaves the transaction usable.
                let n_inserted = self.execute_creating(
                    "INSERT INTO resources (id_key, id, resource_type, tenant_id, body, etag, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (id_key) DO NOTHING",
                    vec![
                        key.into(),
                        write.id.into(),
                        write.resource_type.to_ascii_lowercase().into(),
                        write.tenant_id.into(),
                        write.body.into(),
                        etag.as_str().into(),
                        Value::Int(now.0),
                    ],
                    create,
                    (7, now),
                )?;
                if n_inserted == 0 {
                    let id = write.id.to_owned();
                    return Err(match precondition {
                        Precondition::Absent => StoreError::AlreadyExists { what: "resource", id },
                        // Created by another transaction since this one found nothing: running
                        // again, it finds the resource and writes over it.
                        _ => self.tx.retry_later(),
                    });
                }
                return Ok((
                    StoredResource {
                        id: write.id.to_owned(),
                        resource_type: write.resource_type.to_ascii_lowercase(),
                        tenant_id: write.tenant_id.to_owned(),
                        body: write.body.to_owned(),
                        etag,
                        created_at: now,
                        updated_at: now,
                    },
                    true,
                ));
            }
        };
        Ok((stored, false))
    }

    /// Runs `sql`, a write of one resource row, and returns the number of rows it wrote; with
    /// `create`, a new resource is inserted in the same statement (PostgreSQL), its times the
    /// parameter numbered `time.0`, and refused if it exists. A write the transaction held back
    /// (`Tx::defer`, e.g. the allocation whose blocks this resource holds) goes with it too.
    fn execute_creating(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        create: Option<ResourceWrite<'_>>,
        time: (usize, Timestamp),
    ) -> Result<u64, StoreError> {
        let mut deferred = self.tx.take_deferred();
        if create.is_none() && deferred.is_none() {
            return self.tx.execute(sql, &params);
        }
        // The held-back write's parameters come first, then this write's, then the created
        // resource's.
        let (mut ctes, mut all, check) = match &mut deferred {
            Some(write) => (
                vec![std::mem::take(&mut write.ctes)],
                std::mem::take(&mut write.params),
                write.check.as_str(),
            ),
            None => (Vec::new(), Vec::new(), "NULL"),
        };
        let shift = all.len();
        ctes.push(format!("written AS ({} RETURNING 1)", shift_params(sql, shift)));
        all.extend(params);
        if let Some(create) = &create {
            let first = all.len() + 1;
            let slots: Vec<String> = (first..first + 6).map(|n| format!("${n}")).collect();
            ctes.push(format!(
                "created AS (INSERT INTO resources (id_key, id, resource_type, tenant_id, body, etag, created_at, updated_at) \
                 VALUES ({}, ${t}, ${t}) ON CONFLICT (id_key) DO NOTHING RETURNING 1)",
                slots.join(", "),
                t = time.0 + shift,
            ));
            all.extend([
                create.id.to_ascii_lowercase().into(),
                create.id.into(),
                create.resource_type.to_ascii_lowercase().into(),
                create.tenant_id.into(),
                create.body.into(),
                next_etag(create.id, None, create.body, time.1).into(),
            ]);
        }
        let created = if create.is_some() { "(SELECT count(*) FROM created)" } else { "NULL" };
        let statement = format!(
            "WITH {} SELECT (SELECT count(*) FROM written), {created}, {check}",
            ctes.join(", ")
        );
        let row = self.tx.query_opt(&statement, &all)?.expect("a SELECT of counts returns one row");
        if let Some(write) = &deferred {
            write.verify(row.opt_int(2))?;
        }
        let n_written = row.int(0);
        if let Some(create) = create
            && n_written > 0
            && row.opt_int(1) != Some(1)
        {
            return Err(StoreError::AlreadyExists { what: "resource", id: create.id.to_owned() });
        }
        Ok(u64::try_from(n_written).expect("a count is not negative"))
    }

    /// Deletes a resource if `precondition` holds. Returns what was deleted, if anything. The
    /// resource is read locked (`resource_get_locked`), so a delete takes its turn with the
    /// writes that lock it, and its precondition is checked against what they committed.
    pub fn resource_delete(
        &mut self,
        id: &str,
        precondition: &Precondition,
    ) -> Result<Option<StoredResource>, StoreError> {
        let existing = self.resource_get_locked(id)?;
        check(id, existing.as_ref(), precondition)?;
        if existing.is_some() {
            self.tx.execute(
                "DELETE FROM resources WHERE id_key = $1",
                &[id.to_ascii_lowercase().into()],
            )?;
        }
        Ok(existing)
    }
}

fn check(
    id: &str,
    existing: Option<&StoredResource>,
    precondition: &Precondition,
) -> Result<(), StoreError> {
    match (precondition, existing) {
        (Precondition::None, _) => Ok(()),
        (Precondition::IfMatch(expected), Some(stored)) if stored.etag == *expected => Ok(()),
        (Precondition::IfMatch(expected), _) => {
            Err(StoreError::EtagMismatch { id: id.to_owned(), expected: expected.clone() })
        }
        (Precondition::Exists, Some(_)) | (Precondition::Absent, None) => Ok(()),
        (Precondition::Exists, None) => {
            Err(StoreError::NotFound { what: "resource", id: id.to_owned() })
        }
        (Precondition::Absent, Some(_)) => {
            Err(StoreError::AlreadyExists { what: "resource", id: id.to_owned() })
        }
    }
}

/// A new etag, different from the previous one: a hash of the id, the previous etag, the body and
/// the time, shaped as ARM's quoted GUIDs.
fn next_etag(id: &str, previous: Option<&str>, body: &str, now: Timestamp) -> String {
    let mut attempt = 0u64;
    loop {
        let mut high = std::hash::DefaultHasher::new();
        (id, previous, body, now.0, attempt, "high").hash(&mut high);
        let mut low = std::hash::DefaultHasher::new();
        (id, previous, body, now.0, attempt, "low").hash(&mut low);
        let (high, low) = (high.finish(), low.finish());
        let etag = format!(
            "\"{:08x}-{:04x}-{:04x}-{:04x}-{:012x}\"",
            high >> 32,
            (high >> 16) & 0xffff,
            high & 0xffff,
            low >> 48,
            low & 0xffff_ffff_ffff
        );
        if Some(etag.as_str()) != previous {
            return etag;
        }
        attempt += 1;
    }
}
