//! The last encoded answer to an unfiltered list RPC (ListContainers,
//! ListPodSandbox), kept with the store generation it was built at. The
//! kubelet relists pods and containers every second, mostly over stores
//! that have not changed since: such a relist is answered with the kept
//! bytes, neither copied into CRI messages again nor encoded again.

use std::sync::{Mutex, PoisonError};

use bytes::Bytes;

/// One list RPC's kept answer (see the module).
#[derive(Debug, Default)]
pub struct ListCache {
    last: Mutex<Option<(u64, Bytes)>>,
}

impl ListCache {
    /// The answer kept for `generation`, else `build`'s, kept for next
    /// time. The caller reads the store's generation before `build`
    /// reads its records, so a change made while the answer is built
    /// makes the kept answer stale (rebuilt by the next call), never
    /// wrong.
    pub fn get_or_build(&self, generation: u64, build: impl FnOnce() -> Bytes) -> Bytes {
        if let Some(bytes) = self.get(generation) {
            return bytes;
        }
        let bytes = build();
        self.put(generation, bytes.clone());
        bytes
    }

    fn get(&self, generation: u64) -> Option<Bytes> {
        match &*self.last.lock().unwrap_or_else(PoisonError::into_inner) {
            Some((built_at, bytes)) if *built_at == generation => Some(bytes.clone()),
            _ => None,
        }
    }

    /// Keeps `bytes` unless an answer of a later generation is kept.
    fn put(&self, generation: u64, bytes: Bytes) {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.as_ref().is_none_or(|(kept, _)| *kept <= generation) {
            *last = Some((generation, bytes));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_once_per_generation() {
        let cache = ListCache::default();
        let mut builds = 0;
        let mut answer = |generation, text: &'static str| {
            cache.get_or_build(generation, || {
                builds += 1;
                Bytes::from_static(text.as_bytes())
            })
        };
        assert_eq!(answer(1, "a"), "a");
        assert_eq!(answer(1, "b"), "a");
        assert_eq!(answer(2, "c"), "c");
        assert_eq!(builds, 2);
    }

    #[test]
    fn a_kept_answer_is_not_replaced_by_an_older_one() {
        let cache = ListCache::default();
        cache.put(2, Bytes::from_static(b"new"));
        cache.put(1, Bytes::from_static(b"old"));
        assert_eq!(cache.get(2), Some(Bytes::from_static(b"new")));
        assert_eq!(cache.get(1), None);
    }
}
