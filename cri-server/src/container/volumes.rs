//! Image-defined volumes (`VOLUME` in the image config): one host dir per
//! volume under `<root>/containers/<id>/volumes/<64-hex>`, bind-mounted at
//! the volume's path unless a CRI mount already covers it
//! (containerd's `volumeMounts`).

use std::path::{Component, Path, PathBuf};

use cri_api::ids::IdGenerator;
use cri_api::v1::Mount as CriMount;
use oci_spec::image::ImageConfiguration;

/// `filepath.Clean` for the comparisons containerd makes (`isInCRIMounts`).
pub(crate) fn clean_path(p: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in Path::new(p).components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() && !out.has_root() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

fn in_cri_mounts(dst: &str, mounts: &[CriMount]) -> bool {
    let dst = clean_path(dst);
    mounts.iter().any(|m| clean_path(&m.container_path) == dst)
}

/// The mounts of the image's volumes: a fresh dir under
/// `<container root>/volumes/` for each volume no CRI mount covers, with
/// SELinux relabelling, as containerd makes them. The dirs themselves are
/// created when the spec's mounts are prepared (missing bind sources are
/// made) and go away with the container root dir. Sorted by container
/// path, so specs are stable (Go iterates a map).
pub fn image_volume_mounts(
    container_root_dir: &Path,
    cri_mounts: &[CriMount],
    image: &ImageConfiguration,
    ids: &dyn IdGenerator,
) -> Vec<CriMount> {
    let Some(volumes) = image.config().as_ref().and_then(|c| c.volumes().as_ref()) else {
        return Vec::new();
    };
    let mut destinations: Vec<&String> = volumes.iter().collect();
    destinations.sort();
    destinations
        .into_iter()
        .filter(|dst| !in_cri_mounts(dst, cri_mounts))
        .map(|dst| CriMount {
            container_path: dst.clone(),
            host_path: container_root_dir
                .join("volumes")
                .join(ids.generate())
                .display()
                .to_string(),
            selinux_relabel: true,
            ..CriMount::default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::{AtomicUsize, Ordering};

    use oci_spec::image::{ConfigBuilder, ImageConfigurationBuilder};

    use super::*;

    struct Counter(AtomicUsize);
    impl IdGenerator for Counter {
        fn generate(&self) -> String {
            format!("v{}", self.0.fetch_add(1, Ordering::SeqCst))
        }
    }

    fn image_with(volumes: &[&str]) -> ImageConfiguration {
        let config = ConfigBuilder::default()
            .volumes(volumes.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>())
            .build()
            .unwrap();
        ImageConfigurationBuilder::default()
            .config(config)
            .build()
            .unwrap()
    }

    fn check(volumes: &[&str], cri: &[&str], expected: &[(&str, &str)]) {
        let cri: Vec<CriMount> = cri
            .iter()
            .map(|p| CriMount {
                container_path: (*p).to_owned(),
                host_path: "/host".into(),
                ..CriMount::default()
            })
            .collect();
        let mounts = image_volume_mounts(
            Path::new("/root/containers/c1"),
            &cri,
            &image_with(volumes),
            &Counter(AtomicUsize::new(0)),
        );
        let got: Vec<(String, String)> = mounts
            .iter()
            .map(|m| (m.container_path.clone(), m.host_path.clone()))
            .collect();
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(c, h)| ((*c).to_owned(), (*h).to_owned()))
            .collect();
        assert_eq!(got, expected);
        assert!(mounts.iter().all(|m| m.selinux_relabel));
    }

    #[test]
    fn one_dir_per_volume() {
        check(
            &["/data", "/cache"],
            &[],
            &[
                ("/cache", "/root/containers/c1/volumes/v0"),
                ("/data", "/root/containers/c1/volumes/v1"),
            ],
        );
    }

    #[test]
    fn cri_mount_to_the_same_path_wins() {
        check(
            &["/data/", "/cache"],
            &["/data"],
            &[("/cache", "/root/containers/c1/volumes/v0")],
        );
        check(&["/a/./b"], &["/a/b/"], &[]);
    }

    #[test]
    fn no_volumes() {
        check(&[], &[], &[]);
        let empty = ImageConfigurationBuilder::default().build().unwrap();
        assert!(
            image_volume_mounts(Path::new("/r"), &[], &empty, &Counter(AtomicUsize::new(0)))
                .is_empty()
        );
    }

    #[test]
    fn clean() {
        assert_eq!(clean_path("/a/../b/./c/"), PathBuf::from("/b/c"));
        assert_eq!(clean_path("/.."), PathBuf::from("/"));
        assert_eq!(clean_path(""), PathBuf::from("."));
    }
}
