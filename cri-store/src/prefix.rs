//! Resolution of a full id from a unique prefix, as containerd's
//! `truncindex` does for `crictl inspect 3f2a`.

use std::collections::BTreeSet;

use crate::error::{Result, StoreError};

/// Ids kept sorted so a prefix lookup is a range scan.
#[derive(Debug, Default, Clone)]
pub struct PrefixIndex {
    ids: BTreeSet<String>,
}

impl PrefixIndex {
    pub fn insert(&mut self, id: &str) {
        self.ids.insert(id.to_owned());
    }

    pub fn remove(&mut self, id: &str) {
        self.ids.remove(id);
    }

    /// The one id that starts with `prefix`.
    pub fn resolve(&self, kind: &'static str, prefix: &str) -> Result<String> {
        if prefix.is_empty() {
            return Err(StoreError::EmptyId { kind });
        }
        let mut matches = self
            .ids
            .range(prefix.to_owned()..)
            .take_while(|id| id.starts_with(prefix));
        match (matches.next(), matches.next()) {
            (Some(id), None) => Ok(id.clone()),
            (Some(_), Some(_)) => Err(StoreError::Ambiguous {
                kind,
                prefix: prefix.to_owned(),
            }),
            (None, _) => Err(StoreError::NotFound {
                kind,
                id: prefix.to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ids: &[&str], prefix: &str, expected: Result<&str>) {
        let mut index = PrefixIndex::default();
        for id in ids {
            index.insert(id);
        }
        assert_eq!(
            index.resolve("container", prefix),
            expected.map(str::to_owned)
        );
    }

    #[test]
    fn unique_prefix() {
        check(&["abc1", "abd2"], "abc", Ok("abc1"));
        check(&["abc1", "abd2"], "abd2", Ok("abd2"));
    }

    #[test]
    fn ambiguous_prefix() {
        check(
            &["abc1", "abc2"],
            "ab",
            Err(StoreError::Ambiguous {
                kind: "container",
                prefix: "ab".into(),
            }),
        );
    }

    #[test]
    fn missing_and_empty() {
        check(
            &["abc1"],
            "x",
            Err(StoreError::NotFound {
                kind: "container",
                id: "x".into(),
            }),
        );
        check(
            &["abc1"],
            "",
            Err(StoreError::EmptyId { kind: "container" }),
        );
    }

    #[test]
    fn removed_ids_do_not_match() {
        let mut index = PrefixIndex::default();
        index.insert("abc1");
        index.insert("abc2");
        index.remove("abc2");
        assert_eq!(index.resolve("sandbox", "abc"), Ok("abc1".to_owned()));
    }
}
