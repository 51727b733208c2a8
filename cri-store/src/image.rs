//! Images known to the runtime: id (`sha256:<config digest>`) to its
//! references (normalized repo tags and repo digests), and back.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use oci_spec::image::ImageConfiguration;

use crate::error::{Result, StoreError};
use crate::prefix::PrefixIndex;

const KIND: &str = "image";
const SHA256: &str = "sha256:";

/// One image as the CRI sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// `sha256:<config digest>`.
    pub id: String,
    /// Normalized references: repo tags (`docker.io/library/busybox:1.35`)
    /// and repo digests (`docker.io/library/busybox@sha256:...`).
    pub references: Vec<String>,
    /// The chain id of the rootfs layers: the snapshot parent of containers.
    pub chain_id: String,
    /// Bytes of the manifest's config and layers, compressed.
    pub size: u64,
    /// The image configuration (entrypoint, env, user, volumes, ...).
    pub config: ImageConfiguration,
    /// Whether the image is pinned (the sandbox image): never garbage
    /// collected by the kubelet.
    pub pinned: bool,
    /// The annotations of the image manifest, reported in the CRI spec.
    pub annotations: HashMap<String, String>,
}

impl Image {
    /// References with a tag, in order.
    pub fn repo_tags(&self) -> Vec<String> {
        self.references
            .iter()
            .filter(|r| !r.contains('@'))
            .cloned()
            .collect()
    }

    /// References with a digest, in order.
    pub fn repo_digests(&self) -> Vec<String> {
        self.references
            .iter()
            .filter(|r| r.contains('@'))
            .cloned()
            .collect()
    }
}

#[derive(Debug, Default)]
struct Inner {
    images: HashMap<String, Image>,
    by_reference: HashMap<String, String>,
    ids: PrefixIndex,
}

/// The image store. All methods take `&self`; it is shared behind an `Arc`.
#[derive(Debug, Default)]
pub struct ImageStore {
    inner: RwLock<Inner>,
}

impl ImageStore {
    /// Adds `image`, or merges its references into the stored image with
    /// the same id. A reference that pointed at another image moves here.
    pub fn upsert(&self, mut image: Image) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        for reference in &image.references {
            let previous = inner
                .by_reference
                .insert(reference.clone(), image.id.clone());
            if let Some(old_id) = previous.filter(|old| *old != image.id) {
                if let Some(old) = inner.images.get_mut(&old_id) {
                    old.references.retain(|r| r != reference);
                }
            }
        }
        if let Some(existing) = inner.images.get(&image.id) {
            for reference in &existing.references {
                if !image.references.contains(reference) {
                    image.references.push(reference.clone());
                }
            }
            image.pinned |= existing.pinned;
        }
        sort_references(&mut image.references);
        inner.ids.insert(hex(&image.id));
        inner.images.insert(image.id.clone(), image);
    }

    /// Drops `reference`; returns the image it pointed at.
    pub fn remove_reference(&self, reference: &str) -> Option<Image> {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let id = inner.by_reference.remove(reference)?;
        let image = inner.images.get_mut(&id)?;
        image.references.retain(|r| r != reference);
        Some(image.clone())
    }

    /// Removes the image and all its references.
    pub fn remove(&self, id: &str) -> Option<Image> {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let image = inner.images.remove(id)?;
        for reference in &image.references {
            inner.by_reference.remove(reference);
        }
        inner.ids.remove(hex(id));
        Some(image)
    }

    /// The image with this id: full (`sha256:<hex>`), bare hex, or a
    /// unique prefix of either.
    pub fn get(&self, id_or_prefix: &str) -> Result<Image> {
        self.inspect(id_or_prefix, Image::clone)
    }

    /// `f` applied to the image with this id (as [`get`](Self::get)
    /// finds it) without copying the image.
    pub fn inspect<T>(&self, id_or_prefix: &str, f: impl FnOnce(&Image) -> T) -> Result<T> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let full = inner.ids.resolve(KIND, hex(id_or_prefix))?;
        inner
            .images
            .get(&format!("{SHA256}{full}"))
            .map(f)
            .ok_or_else(|| StoreError::NotFound {
                kind: KIND,
                id: id_or_prefix.to_owned(),
            })
    }

    /// The image a normalized reference points at.
    pub fn resolve(&self, reference: &str) -> Option<Image> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let id = inner.by_reference.get(reference)?;
        inner.images.get(id).cloned()
    }

    /// Every image, sorted by id.
    pub fn list(&self) -> Vec<Image> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let mut images: Vec<Image> = inner.images.values().cloned().collect();
        images.sort_by(|a, b| a.id.cmp(&b.id));
        images
    }

    /// Replaces the whole content, e.g. after reloading from containerd.
    pub fn replace_all(&self, images: Vec<Image>) {
        *self.inner.write().unwrap_or_else(PoisonError::into_inner) = Inner::default();
        for image in images {
            self.upsert(image);
        }
    }
}

fn hex(id: &str) -> &str {
    id.strip_prefix(SHA256).unwrap_or(id)
}

/// Tags first, then digests, each sorted: containerd's `reference.Sort`.
fn sort_references(references: &mut [String]) {
    references.sort_by(|a, b| (a.contains('@'), a).cmp(&(b.contains('@'), b)));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn image(id_hex: &str, refs: &[&str]) -> Image {
        Image {
            id: format!("sha256:{id_hex}"),
            references: refs.iter().map(|r| r.to_string()).collect(),
            chain_id: String::new(),
            size: 0,
            config: ImageConfiguration::default(),
            pinned: false,
            annotations: HashMap::new(),
        }
    }

    const BB_TAG: &str = "docker.io/library/busybox:latest";
    const BB_DIGEST: &str = "docker.io/library/busybox@sha256:1111";

    #[test]
    fn resolves_by_reference_id_and_prefix() {
        let store = ImageStore::default();
        store.upsert(image("aaaa1111", &[BB_DIGEST, BB_TAG]));
        store.upsert(image("aaab2222", &["docker.io/library/pause:3.8"]));
        assert_eq!(store.resolve(BB_TAG).unwrap().id, "sha256:aaaa1111");
        assert_eq!(store.get("sha256:aaaa1111").unwrap().id, "sha256:aaaa1111");
        assert_eq!(store.get("aaaa").unwrap().id, "sha256:aaaa1111");
        assert_eq!(store.get("sha256:aaab").unwrap().id, "sha256:aaab2222");
        assert!(matches!(
            store.get("aaa"),
            Err(StoreError::Ambiguous { .. })
        ));
        assert!(matches!(
            store.get("ffff"),
            Err(StoreError::NotFound { .. })
        ));
    }

    #[test]
    fn inspect_finds_as_get_does() {
        let store = ImageStore::default();
        store.upsert(image("aaaa1111", &[BB_DIGEST, BB_TAG]));
        let refs = store.inspect("aaaa", |i| i.references.len()).unwrap();
        assert_eq!(refs, 2);
        assert!(matches!(
            store.inspect("ffff", |_| ()),
            Err(StoreError::NotFound { .. })
        ));
    }

    #[test]
    fn references_sorted_tags_first() {
        let store = ImageStore::default();
        store.upsert(image(
            "aa",
            &[BB_DIGEST, BB_TAG, "docker.io/library/busybox:1.35"],
        ));
        let img = store.get("aa").unwrap();
        assert_eq!(
            img.references,
            ["docker.io/library/busybox:1.35", BB_TAG, BB_DIGEST]
        );
        assert_eq!(img.repo_tags(), ["docker.io/library/busybox:1.35", BB_TAG]);
        assert_eq!(img.repo_digests(), [BB_DIGEST]);
    }

    #[test]
    fn upsert_merges_references() {
        let store = ImageStore::default();
        store.upsert(image("aa", &[BB_TAG]));
        store.upsert(image("aa", &["docker.io/library/busybox:1.35"]));
        assert_eq!(store.get("aa").unwrap().references.len(), 2);
    }

    #[test]
    fn a_moved_tag_leaves_the_old_image() {
        let store = ImageStore::default();
        store.upsert(image("aa", &[BB_TAG]));
        store.upsert(image("bb", &[BB_TAG]));
        assert_eq!(store.resolve(BB_TAG).unwrap().id, "sha256:bb");
        assert!(store.get("aa").unwrap().references.is_empty());
    }

    #[test]
    fn remove_drops_references() {
        let store = ImageStore::default();
        store.upsert(image("aa", &[BB_TAG]));
        assert!(store.remove("sha256:aa").is_some());
        assert!(store.resolve(BB_TAG).is_none());
        assert!(store.get("aa").is_err());
        assert!(store.list().is_empty());
    }

    #[test]
    fn remove_reference_keeps_image() {
        let store = ImageStore::default();
        store.upsert(image("aa", &[BB_TAG, BB_DIGEST]));
        let left = store.remove_reference(BB_TAG).unwrap();
        assert_eq!(left.references, [BB_DIGEST]);
        assert!(store.resolve(BB_TAG).is_none());
    }
}
