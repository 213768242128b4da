//! A cache, shared by a store's requests, of what authorization reads on nearly every request
//! and what rarely changes: subscriptions, role assignments, pools, and resources of the
//! `CACHED_TYPES` (resource groups, network managers and their connections). A cross-tenant
//! VNet PUT reads eight such rows or lists before it writes; on PostgreSQL each is a round trip.
//!
//! The cache is valid while one number stays the same: `cache_generation.n`, which the
//! database's own triggers move in every transaction that changes a cached table or type
//! (migration 0007), whichever process or code path writes. A request reads that number once
//! (its `Ticket`, with its first cached read) and uses the cache only while the cache is at the
//! same generation; otherwise it reads the database. What a request reads through the cache is
//! therefore what it would have read from the database at that moment or later:
//! - an entry is stored only under the generation its reader's ticket saw, and read after the
//!   ticket, so it is at least as new as that generation;
//! - the cache moves only forward, and moving drops every entry;
//! - each write transaction reads the number before it commits and moves the cache after, so a
//!   request that wrote no longer matches the cache and reads its own writes from the database.
//!
//! Reads inside a write transaction never use the cache.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::ReadTx;
use crate::db::Tx;
use crate::error::StoreError;

/// The resource types whose rows are cached (lower-case, as stored). Migration 0007's triggers
/// move the generation when a resource of one of these types is written; a store test checks
/// each.
pub const CACHED_TYPES: &[&str] = &[
    "microsoft.resources/resourcegroups",
    "microsoft.network/networkmanagers",
    "microsoft.network/networkmanagers/scopeconnections",
    "microsoft.network/networkmanagerconnections",
];

/// Entries kept at most; when full, the cache starts over.
const MAX_ENTRIES: usize = 10_000;

/// One request's use of the cache: the generation it read first, for all its reads
/// (`Store::read_cached`). A fresh ticket per request.
#[derive(Debug, Default)]
pub struct Ticket {
    generation: OnceLock<i64>,
}

/// The cached rows of one generation.
pub(crate) struct Cache {
    state: Mutex<State>,
}

struct State {
    generation: i64,
    entries: HashMap<String, Arc<dyn Any + Send + Sync>>,
}

impl Cache {
    pub(crate) fn new() -> Cache {
        Cache { state: Mutex::new(State { generation: i64::MIN, entries: HashMap::new() }) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Moves the cache to `generation` if that is newer, dropping what it held.
    pub(crate) fn advance(&self, generation: i64) {
        let mut state = self.state();
        if generation > state.generation {
            state.generation = generation;
            state.entries.clear();
        }
    }

    fn get<T: Clone + 'static>(&self, generation: i64, key: &str) -> Option<T> {
        let state = self.state();
        if state.generation != generation {
            return None;
        }
        state.entries.get(key).and_then(|entry| entry.downcast_ref::<T>()).cloned()
    }

    fn put<T: Send + Sync + 'static>(&self, generation: i64, key: String, value: T) {
        let mut state = self.state();
        if state.generation != generation {
            return;
        }
        if state.entries.len() >= MAX_ENTRIES {
            state.entries.clear();
        }
        state.entries.insert(key, Arc::new(value));
    }
}

/// The cache as one read transaction may use it.
pub(crate) struct View {
    cache: Arc<Cache>,
    generation: i64,
}

/// The query of the database's generation.
pub(crate) const GENERATION: &str = "SELECT n FROM cache_generation WHERE id = 1";

/// The database's generation, read in `tx`.
pub(crate) fn generation(tx: &mut Tx<'_>) -> Result<i64, StoreError> {
    Ok(tx.query_opt(GENERATION, &[])?.map_or(0, |row| row.int(0)))
}

/// Commits `tx` and returns the generation it committed (read in the same round trip).
pub(crate) fn commit(tx: Tx<'_>) -> Result<i64, StoreError> {
    Ok(tx.commit_reading(GENERATION)?.unwrap_or(0))
}

/// The view a read transaction of the request holding `ticket` uses: at the ticket's
/// generation, read now (and the cache moved to it) if the ticket is new.
pub(crate) fn view(
    cache: &Arc<Cache>,
    ticket: &Ticket,
    tx: &mut Tx<'_>,
) -> Result<View, StoreError> {
    let generation = match ticket.generation.get() {
        Some(generation) => *generation,
        None => {
            let read = generation(tx)?;
            cache.advance(read);
            *ticket.generation.get_or_init(|| read)
        }
    };
    Ok(View { cache: cache.clone(), generation })
}

impl ReadTx<'_> {
    /// What `load` reads, from the cache when this transaction has a view of it. `key` names
    /// the read and its arguments unambiguously (they are formatted with `{:?}`, so that no two
    /// reads share a key, whatever their arguments hold).
    pub(crate) fn cached<T>(
        &mut self,
        key: impl FnOnce() -> String,
        load: impl FnOnce(&mut Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError>
    where
        T: Clone + Send + Sync + 'static,
    {
        let Some((cache, generation)) =
            self.cache.as_ref().map(|v| (v.cache.clone(), v.generation))
        else {
            return load(self);
        };
        let key = key();
        if let Some(value) = cache.get(generation, &key) {
            return Ok(value);
        }
        let value = load(self)?;
        cache.put(generation, key, value.clone());
        Ok(value)
    }
}

/// Whether resources of this type (any case) are cached.
pub(crate) fn is_cached_type(resource_type: &str) -> bool {
    CACHED_TYPES.iter().any(|cached| cached.eq_ignore_ascii_case(resource_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_in_one_generation_and_the_cache_only_moves_forward() {
        let cache = Cache::new();
        cache.advance(3);
        cache.put(3, "a".to_owned(), 1u32);
        assert_eq!(cache.get::<u32>(3, "a"), Some(1));
        assert_eq!(cache.get::<u32>(2, "a"), None, "an older ticket reads the database");
        cache.put(2, "b".to_owned(), 2u32);
        assert_eq!(cache.get::<u32>(3, "b"), None, "an older ticket's reads are not kept");
        cache.advance(2);
        assert_eq!(cache.get::<u32>(3, "a"), Some(1), "moving back is ignored");
        cache.advance(4);
        assert_eq!(cache.get::<u32>(4, "a"), None, "moving forward drops every entry");
        assert_eq!(cache.get::<u32>(3, "a"), None);
    }

    #[test]
    fn a_full_cache_starts_over() {
        let cache = Cache::new();
        cache.advance(0);
        for idx in 0..MAX_ENTRIES {
            cache.put(0, idx.to_string(), idx);
        }
        cache.put(0, "last".to_owned(), 0usize);
        assert_eq!(cache.get::<usize>(0, "0"), None);
        assert_eq!(cache.get::<usize>(0, "last"), Some(0));
    }
}
