//! The map behind the container and sandbox stores: id to immutable
//! metadata plus a status that changes under its own lock, with lookup by
//! full id or unique prefix.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crate::error::{Result, StoreError};
use crate::prefix::PrefixIndex;

/// A snapshot of one stored record: the shared metadata and a copy of the
/// status at the time of the lookup.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<M, S> {
    /// Immutable once stored; shared, so snapshots are cheap.
    pub metadata: Arc<M>,
    /// A copy: changing it does not change the store.
    pub status: S,
}

impl<M, S> Record<M, S> {
    pub fn new(metadata: M, status: S) -> Self {
        Self {
            metadata: Arc::new(metadata),
            status,
        }
    }
}

/// What a record is keyed by.
pub(crate) trait Keyed {
    fn key(&self) -> &str;
}

#[derive(Debug)]
struct Entry<M, S> {
    metadata: Arc<M>,
    /// Per record, so a slow update (one that writes a checkpoint) does not
    /// block lookups of other records.
    status: Mutex<S>,
}

impl<M, S: Clone> Entry<M, S> {
    fn snapshot(&self) -> Record<M, S> {
        Record {
            metadata: Arc::clone(&self.metadata),
            status: self
                .status
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}

#[derive(Debug)]
struct Inner<M, S> {
    entries: HashMap<String, Arc<Entry<M, S>>>,
    ids: PrefixIndex,
}

/// Records by id. No lock is held across a call boundary.
#[derive(Debug)]
pub(crate) struct Records<M, S> {
    kind: &'static str,
    inner: RwLock<Inner<M, S>>,
}

impl<M: Keyed, S: Clone> Records<M, S> {
    pub(crate) fn new(kind: &'static str) -> Self {
        Self {
            kind,
            inner: RwLock::new(Inner {
                entries: HashMap::new(),
                ids: PrefixIndex::default(),
            }),
        }
    }

    pub(crate) fn add(&self, record: Record<M, S>) -> Result<()> {
        let id = record.metadata.key().to_owned();
        if id.is_empty() {
            return Err(StoreError::EmptyId { kind: self.kind });
        }
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if inner.entries.contains_key(&id) {
            return Err(StoreError::AlreadyExists {
                kind: self.kind,
                id,
            });
        }
        inner.ids.insert(&id);
        let entry = Entry {
            metadata: record.metadata,
            status: Mutex::new(record.status),
        };
        inner.entries.insert(id, Arc::new(entry));
        Ok(())
    }

    pub(crate) fn get(&self, id_or_prefix: &str) -> Result<Record<M, S>> {
        let entry = {
            let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
            let id = inner.ids.resolve(self.kind, id_or_prefix)?;
            inner.entries.get(&id).cloned()
        };
        entry
            .map(|e| e.snapshot())
            .ok_or_else(|| self.not_found(id_or_prefix))
    }

    /// Every record matching `keep`, sorted by id.
    pub(crate) fn list_where(&self, keep: impl Fn(&M) -> bool) -> Vec<Record<M, S>> {
        let mut entries: Vec<(String, Arc<Entry<M, S>>)> = {
            let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
            inner
                .entries
                .iter()
                .filter(|(_, e)| keep(&e.metadata))
                .map(|(id, e)| (id.clone(), Arc::clone(e)))
                .collect()
        };
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.iter().map(|(_, e)| e.snapshot()).collect()
    }

    pub(crate) fn update_status<E>(
        &self,
        id: &str,
        update: impl FnOnce(&mut S) -> Result<(), E>,
    ) -> Result<S, E>
    where
        E: From<StoreError>,
    {
        let entry = self
            .inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .get(id)
            .cloned()
            .ok_or_else(|| self.not_found(id))?;
        let mut status = entry.status.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = status.clone();
        update(&mut next)?;
        *status = next.clone();
        Ok(next)
    }

    pub(crate) fn remove(&self, id: &str) -> Result<Record<M, S>> {
        let entry = {
            let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
            let entry = inner.entries.remove(id).ok_or_else(|| self.not_found(id))?;
            inner.ids.remove(id);
            entry
        };
        Ok(entry.snapshot())
    }

    fn not_found(&self, id: &str) -> StoreError {
        StoreError::NotFound {
            kind: self.kind,
            id: id.to_owned(),
        }
    }
}
