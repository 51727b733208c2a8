//! Reservation of CRI names (`name_namespace_uid_attempt` for sandboxes,
//! `name_pod_namespace_uid_attempt` for containers) to one id at a time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{Result, StoreError};

/// Names and the ids that hold them. Cheap to clone; clones share state.
#[derive(Debug, Default, Clone)]
pub struct NameIndex {
    names: Arc<Mutex<HashMap<String, String>>>,
}

impl NameIndex {
    /// Reserves `name` for `id`. Reserving it again for the same id is
    /// fine; for another id it fails with `NameReserved`. The returned
    /// guard releases the name on drop unless [`NameReservation::keep`].
    pub fn reserve(&self, name: &str, id: &str) -> Result<NameReservation> {
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        match names.get(name) {
            Some(owner) if owner != id => {
                return Err(StoreError::NameReserved {
                    name: name.to_owned(),
                    owner: owner.clone(),
                })
            }
            _ => {
                names.insert(name.to_owned(), id.to_owned());
            }
        }
        Ok(NameReservation {
            index: self.clone(),
            name: name.to_owned(),
            kept: false,
        })
    }

    /// Releases `name` whoever holds it.
    pub fn release(&self, name: &str) {
        self.names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
    }

    /// The id holding `name`.
    pub fn owner(&self, name: &str) -> Option<String> {
        self.names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }
}

/// A held name; released on drop unless kept.
#[derive(Debug)]
#[must_use = "the name is released when the reservation is dropped"]
pub struct NameReservation {
    index: NameIndex,
    name: String,
    kept: bool,
}

impl NameReservation {
    /// Keeps the name reserved past this guard.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for NameReservation {
    fn drop(&mut self) {
        if !self.kept {
            self.index.release(&self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn dropped_reservation_releases() {
        let index = NameIndex::default();
        drop(index.reserve("n", "a").unwrap());
        assert_eq!(index.owner("n"), None);
        index.reserve("n", "b").unwrap().keep();
        assert_eq!(index.owner("n").as_deref(), Some("b"));
    }

    #[test]
    fn name_held_by_another_id_fails() {
        let index = NameIndex::default();
        index.reserve("n", "a").unwrap().keep();
        let err = index.reserve("n", "b").unwrap_err();
        assert_eq!(
            err,
            StoreError::NameReserved {
                name: "n".into(),
                owner: "a".into()
            }
        );
        index.reserve("n", "a").unwrap().keep();
    }

    #[test]
    fn release_frees_a_kept_name() {
        let index = NameIndex::default();
        index.reserve("n", "a").unwrap().keep();
        index.release("n");
        index.reserve("n", "b").unwrap().keep();
        assert_eq!(index.owner("n").as_deref(), Some("b"));
    }
}
