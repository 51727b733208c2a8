//! Container names and the labels containerd's CRI plugin puts on app
//! containers and their snapshots (`makeContainerName`, `buildLabels`,
//! `snapshots.FilterInheritedLabels`).

use std::collections::HashMap;

use cri_api::v1::{ContainerMetadata, PodSandboxMetadata};

/// The containerd label that tells sandboxes and app containers apart.
pub const CONTAINER_KIND_LABEL: &str = "io.cri-containerd.kind";
/// [`CONTAINER_KIND_LABEL`] on app containers.
pub const CONTAINER_KIND_CONTAINER: &str = "container";
/// Annotations with this prefix become labels of the rootfs snapshot.
pub const SNAPSHOT_LABEL_PREFIX: &str = "containerd.io/snapshot/";
/// containerd's `labels.Validate`: key and value together at most this long.
pub const MAX_LABEL_SIZE: usize = 4096;

/// `<ctr>_<pod>_<namespace>_<uid>_<attempt>`, containerd's
/// `makeContainerName`; a missing pod metadata leaves its parts empty.
pub fn container_name(container: &ContainerMetadata, pod: Option<&PodSandboxMetadata>) -> String {
    let (name, namespace, uid) = pod.map_or(("", "", ""), |p| {
        (p.name.as_str(), p.namespace.as_str(), p.uid.as_str())
    });
    [
        container.name.as_str(),
        name,
        namespace,
        uid,
        &container.attempt.to_string(),
    ]
    .join("_")
}

/// Keys containerd reserves for itself (`labels.IsReserved`-like): image
/// labels with these prefixes are not copied onto containers.
fn is_reserved(key: &str) -> bool {
    key.starts_with("containerd.io/") || key.starts_with("io.cri-containerd")
}

/// containerd's `buildLabels`: the image config's labels (minus reserved
/// keys and oversized pairs), overridden by the CRI config's labels, plus
/// `io.cri-containerd.kind=<kind>`.
pub fn build_labels(
    config_labels: &HashMap<String, String>,
    image_labels: Option<&HashMap<String, String>>,
    kind: &str,
) -> HashMap<String, String> {
    let mut labels = HashMap::new();
    for (key, value) in image_labels.into_iter().flatten() {
        if is_reserved(key) {
            tracing::debug!(key = %key, "skipping reserved image label");
        } else if key.len() + value.len() > MAX_LABEL_SIZE {
            tracing::warn!(key = %key, "unable to add image label to the container: too long");
        } else {
            labels.insert(key.clone(), value.clone());
        }
    }
    for (key, value) in config_labels {
        labels.insert(key.clone(), value.clone());
    }
    labels.insert(CONTAINER_KIND_LABEL.to_owned(), kind.to_owned());
    labels
}

/// The annotations that become rootfs snapshot labels
/// (`snapshots.FilterInheritedLabels`).
pub fn snapshot_labels(annotations: &HashMap<String, String>) -> HashMap<String, String> {
    annotations
        .iter()
        .filter(|(k, _)| k.starts_with(SNAPSHOT_LABEL_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn check_name(container: (&str, u32), pod: Option<(&str, &str, &str)>, expected: &str) {
        let c = ContainerMetadata {
            name: container.0.into(),
            attempt: container.1,
        };
        let p = pod.map(|(name, namespace, uid)| PodSandboxMetadata {
            name: name.into(),
            namespace: namespace.into(),
            uid: uid.into(),
            attempt: 7,
        });
        assert_eq!(container_name(&c, p.as_ref()), expected);
    }

    #[test]
    fn names() {
        check_name(("web", 2), Some(("pod", "ns", "u1")), "web_pod_ns_u1_2");
        check_name(("web", 0), None, "web____0");
    }

    #[test]
    fn config_labels_win_and_kind_is_set() {
        let image = map(&[
            ("a", "image"),
            ("b", "image"),
            ("containerd.io/x", "1"),
            ("io.cri-containerd.kind", "sandbox"),
        ]);
        let labels = build_labels(
            &map(&[("b", "config"), ("c", "config")]),
            Some(&image),
            CONTAINER_KIND_CONTAINER,
        );
        assert_eq!(
            labels,
            map(&[
                ("a", "image"),
                ("b", "config"),
                ("c", "config"),
                ("io.cri-containerd.kind", "container"),
            ])
        );
    }

    #[test]
    fn oversized_image_labels_are_dropped_but_config_labels_kept() {
        let big = "v".repeat(MAX_LABEL_SIZE);
        let image = map(&[("k", &big), ("ok", "1")]);
        let labels = build_labels(&map(&[("mine", &big)]), Some(&image), "container");
        assert!(!labels.contains_key("k"));
        assert_eq!(labels.get("ok").map(String::as_str), Some("1"));
        assert_eq!(labels.get("mine"), Some(&big));
    }

    #[test]
    fn snapshot_labels_from_annotations() {
        let annotations = map(&[
            ("containerd.io/snapshot/remote", "yes"),
            ("containerd.io/other", "no"),
            ("x", "no"),
        ]);
        assert_eq!(
            snapshot_labels(&annotations),
            map(&[("containerd.io/snapshot/remote", "yes")])
        );
    }
}
