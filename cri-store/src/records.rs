//! The map behind the container and sandbox stores: id to immutable
//! metadata plus a status that changes under its own lock, with lookup by
//! full id or unique prefix.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
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
struct Entry<M, S, A> {
    metadata: Arc<M>,
    /// Per record, so a slow update (one that writes a checkpoint) does not
    /// block lookups of other records.
    status: Mutex<S>,
    /// What the owner keeps with the record (the container store: the
    /// runtime handle); added and removed with it, so the two cannot drift.
    attached: Arc<A>,
}

impl<M, S: Clone, A> Entry<M, S, A> {
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

/// An id and its entry.

#[derive(Debug)]
struct Inner<M, S, A> {
    /// By id: iteration is in id order, so lists need no sort.
    entries: BTreeMap<String, Arc<Entry<M, S, A>>>,
    ids: PrefixIndex,
}

/// Records by id, each with an attachment of type `A`. No lock is held
/// across a call boundary.
#[derive(Debug)]
pub(crate) struct Records<M, S, A = ()> {
    kind: &'static str,
    inner: RwLock<Inner<M, S, A>>,
    /// Counts changes: bumped after each add, remove and status update
    /// has taken effect, so a reader that saw a value and then read the
    /// records saw at least every change counted up to it.
    generation: AtomicU64,
}

impl<M: Keyed, S: Clone, A> Records<M, S, A> {
    pub(crate) fn new(kind: &'static str) -> Self {
        Self {
            kind,
            inner: RwLock::new(Inner {
                entries: BTreeMap::new(),
                ids: PrefixIndex::default(),
            }),
            generation: AtomicU64::new(0),
        }
    }

    /// The change count (see the field).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn add(&self, record: Record<M, S>, attached: A) -> Result<Arc<A>> {
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
        let attached = Arc::new(attached);
        let entry = Entry {
            metadata: record.metadata,
            status: Mutex::new(record.status),
            attached: Arc::clone(&attached),
        };
        inner.entries.insert(id, Arc::new(entry));
        drop(inner);
        self.changed();
        Ok(attached)
    }

    fn entry(&self, id_or_prefix: &str) -> Result<Arc<Entry<M, S, A>>> {
        let entry = {
            let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
            let id = inner.ids.resolve(self.kind, id_or_prefix)?;
            inner.entries.get(&id).cloned()
        };
        entry.ok_or_else(|| self.not_found(id_or_prefix))
    }

    pub(crate) fn get(&self, id_or_prefix: &str) -> Result<Record<M, S>> {
        self.entry(id_or_prefix).map(|e| e.snapshot())
    }

    /// The record with this full id or unique prefix and its attachment.
    pub(crate) fn get_attached(&self, id_or_prefix: &str) -> Result<(Record<M, S>, Arc<A>)> {
        self.entry(id_or_prefix)
            .map(|e| (e.snapshot(), Arc::clone(&e.attached)))
    }

    /// The attachment of the record with this full id.
    pub(crate) fn attached(&self, id: &str) -> Option<Arc<A>> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .get(id)
            .map(|e| Arc::clone(&e.attached))
    }

    /// Every record matching `keep`, sorted by id.
    pub(crate) fn list_where(&self, keep: impl Fn(&M) -> bool) -> Vec<Record<M, S>> {
        self.filter_map(|metadata, status| {
            keep(metadata).then(|| Record {
                metadata: Arc::clone(metadata),
                status: status.clone(),
            })
        })
    }

    /// `f` applied to every record in id order, keeping what it returns:
    /// no record is copied, and each status is read under its own lock
    /// (not the store's).
    pub(crate) fn filter_map<T>(&self, mut f: impl FnMut(&Arc<M>, &S) -> Option<T>) -> Vec<T> {
        let entries: Vec<Arc<Entry<M, S, A>>> = self
            .inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .values()
            .cloned()
            .collect();
        entries
            .iter()
            .filter_map(|e| {
                let status = e.status.lock().unwrap_or_else(PoisonError::into_inner);
                f(&e.metadata, &status)
            })
            .collect()
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
        drop(status);
        self.changed();
        Ok(next)
    }

    pub(crate) fn remove(&self, id: &str) -> Result<Record<M, S>> {
        let entry = {
            let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
            let entry = inner.entries.remove(id).ok_or_else(|| self.not_found(id))?;
            inner.ids.remove(id);
            entry
        };
        self.changed();
        Ok(entry.snapshot())
    }

    fn not_found(&self, id: &str) -> StoreError {
        StoreError::NotFound {
            kind: self.kind,
            id: id.to_owned(),
        }
    }
}
