//! The labels containerd's pull writes and its garbage collector reads: image record labels, content GC references from parent to child blobs, the distribution source label, the uncompressed digest of layers, and snapshot labels.

use std::collections::HashMap;

use super::manifest::{is_config_type, is_layer_type, is_manifest_type};

/// On every image record the CRI creates.
pub const IMAGE_LABEL_KEY: &str = "io.cri-containerd.image";
pub const IMAGE_LABEL_VALUE: &str = "managed";
/// On the records of the sandbox image.
pub const PINNED_LABEL_KEY: &str = "io.cri-containerd.pinned";
pub const PINNED_LABEL_VALUE: &str = "pinned";

/// On a lease: when the garbage collector may drop it.
pub const GC_EXPIRE: &str = "containerd.io/gc.expire";
/// On a compressed layer: its diff id.
pub const UNCOMPRESSED: &str = "containerd.io/uncompressed";
/// On a committed unpack snapshot: its chain id.
pub const SNAPSHOT_REF: &str = "containerd.io/snapshot.ref";
/// Descriptor annotations with this prefix become snapshot labels.
pub const SNAPSHOT_LABEL_PREFIX: &str = "containerd.io/snapshot/";
const DISTRIBUTION_SOURCE_PREFIX: &str = "containerd.io/distribution.source.";
/// containerd refuses labels whose key and value exceed this together.
const MAX_LABEL_SIZE: usize = 4096;

/// The CRI snapshot annotations (`disable_snapshot_annotations = false`).
pub const TARGET_REF: &str = "containerd.io/snapshot/cri.image-ref";
pub const TARGET_MANIFEST_DIGEST: &str = "containerd.io/snapshot/cri.manifest-digest";
pub const TARGET_LAYER_DIGEST: &str = "containerd.io/snapshot/cri.layer-digest";
pub const TARGET_IMAGE_LAYERS: &str = "containerd.io/snapshot/cri.image-layers";

/// The labels of an image record the CRI manages.
pub fn image_record_labels(pinned: bool) -> HashMap<String, String> {
    let mut labels = HashMap::from([(IMAGE_LABEL_KEY.to_owned(), IMAGE_LABEL_VALUE.to_owned())]);
    if pinned {
        labels.insert(PINNED_LABEL_KEY.to_owned(), PINNED_LABEL_VALUE.to_owned());
    }
    labels
}

/// `containerd.io/gc.ref.snapshot.<snapshotter>`, on the image config.
pub fn gc_snapshot_key(snapshotter: &str) -> String {
    format!("containerd.io/gc.ref.snapshot.{snapshotter}")
}

/// containerd's `ChildGCLabels`: the key prefix a parent uses for a child
/// of `media_type`; `None` for layers when unpacked layers are discarded
/// (`ChildGCLabelsFilterLayers`).
fn child_gc_key(media_type: &str, discard_layers: bool) -> Option<&'static str> {
    if is_config_type(media_type) {
        Some("containerd.io/gc.ref.content.config")
    } else if is_manifest_type(media_type) {
        Some("containerd.io/gc.ref.content.m.")
    } else if is_layer_type(media_type) {
        (!discard_layers).then_some("containerd.io/gc.ref.content.l.")
    } else {
        Some("containerd.io/gc.ref.content.")
    }
}

/// containerd's `SetChildrenMappedLabels`: one label per child, numbered
/// per key from 0 (a key not ending in `.` has no number the first time).
pub fn children_gc_labels<'a>(
    children: impl IntoIterator<Item = (&'a str, &'a str)>,
    discard_layers: bool,
) -> HashMap<String, String> {
    let mut counts: HashMap<&'static str, usize> = HashMap::new();
    let mut labels = HashMap::new();
    for (media_type, digest) in children {
        let Some(key) = child_gc_key(media_type, discard_layers) else {
            continue;
        };
        let index = counts.entry(key).or_insert(0);
        let name = if *index > 0 || key.ends_with('.') {
            format!("{key}{index}")
        } else {
            key.to_owned()
        };
        *index += 1;
        labels.insert(name, digest.to_owned());
    }
    labels
}

/// `containerd.io/distribution.source.<registry host without port>`.
pub fn distribution_source_key(domain: &str) -> String {
    let host = if let Some(rest) = domain.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        domain.rsplit_once(':').map_or(domain, |(h, _)| h)
    };
    format!("{DISTRIBUTION_SOURCE_PREFIX}{host}")
}

/// Adds `repo` to a comma-separated source list: sorted, deduplicated.
pub fn append_distribution_source(existing: Option<&str>, repo: &str) -> String {
    let mut repos: Vec<&str> = existing
        .filter(|e| !e.is_empty())
        .map(|e| e.split(',').collect())
        .unwrap_or_default();
    repos.push(repo);
    repos.sort_unstable();
    repos.dedup();
    repos.retain(|r| !r.is_empty());
    repos.join(",")
}

/// Whether containerd accepts a label of this size.
pub fn label_fits(key: &str, value: &str) -> bool {
    key.len() + value.len() <= MAX_LABEL_SIZE
}

/// The comma-separated layer digests for `cri.image-layers`, as many as
/// fit in one label.
pub fn image_layers_label(digests: &[&str]) -> String {
    let mut value = String::new();
    for digest in digests {
        let item = if value.is_empty() {
            (*digest).to_owned()
        } else {
            format!(",{digest}")
        };
        if !label_fits(TARGET_IMAGE_LAYERS, &format!("{value}{item}")) {
            break;
        }
        value.push_str(&item);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::media;

    #[test]
    fn manifest_children_labels() {
        let labels = children_gc_labels(
            [
                (media::OCI_CONFIG, "sha256:c"),
                (media::OCI_LAYER_GZIP, "sha256:l0"),
                (media::DOCKER_LAYER_GZIP, "sha256:l1"),
            ],
            false,
        );
        assert_eq!(labels.len(), 3);
        assert_eq!(labels["containerd.io/gc.ref.content.config"], "sha256:c");
        assert_eq!(labels["containerd.io/gc.ref.content.l.0"], "sha256:l0");
        assert_eq!(labels["containerd.io/gc.ref.content.l.1"], "sha256:l1");
        let discarded = children_gc_labels(
            [
                (media::OCI_CONFIG, "sha256:c"),
                (media::OCI_LAYER, "sha256:l"),
            ],
            true,
        );
        assert_eq!(discarded.len(), 1);
    }

    #[test]
    fn index_children_labels() {
        let labels = children_gc_labels(
            [
                (media::OCI_MANIFEST, "sha256:a"),
                (media::DOCKER_MANIFEST, "sha256:b"),
                (media::OCI_INDEX, "sha256:i"),
            ],
            false,
        );
        assert_eq!(labels["containerd.io/gc.ref.content.m.0"], "sha256:a");
        assert_eq!(labels["containerd.io/gc.ref.content.m.1"], "sha256:b");
        assert_eq!(labels["containerd.io/gc.ref.content.0"], "sha256:i");
    }

    #[test]
    fn distribution_source() {
        assert_eq!(
            distribution_source_key("127.0.0.1:5000"),
            "containerd.io/distribution.source.127.0.0.1"
        );
        assert_eq!(
            distribution_source_key("docker.io"),
            "containerd.io/distribution.source.docker.io"
        );
        assert_eq!(
            append_distribution_source(None, "library/busybox"),
            "library/busybox"
        );
        assert_eq!(
            append_distribution_source(Some("z/b,a/b"), "m/x"),
            "a/b,m/x,z/b"
        );
        assert_eq!(append_distribution_source(Some("a/b"), "a/b"), "a/b");
    }

    #[test]
    fn record_labels() {
        assert_eq!(image_record_labels(false).len(), 1);
        assert_eq!(image_record_labels(true)[PINNED_LABEL_KEY], "pinned");
    }

    #[test]
    fn image_layers_are_truncated_to_fit() {
        let d = format!("sha256:{}", "a".repeat(64));
        let many: Vec<&str> = std::iter::repeat_n(d.as_str(), 100).collect();
        let value = image_layers_label(&many);
        assert!(label_fits(TARGET_IMAGE_LAYERS, &value));
        assert!(value.split(',').count() < 100);
        assert_eq!(image_layers_label(&many[..2]), format!("{d},{d}"));
    }
}
