//! Writable-layer usage of containers: the image filesystem's background
//! pass asks containerd's snapshotter for the usage of every active
//! snapshot every `stats_collect_period` seconds and hands it here
//! ([`FsUsageCache::record`]), one pass for both as containerd's snapshot
//! syncer does; stats requests only read the cache.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use cri_api::containerd::SnapshotUsage;

use super::Clock;

/// The snapshot holding a container's writable layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WritableLayer {
    pub snapshotter: String,
    /// The snapshot key (the container id for CRI containers).
    pub key: String,
}

/// The last known usage of a writable layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsUsage {
    pub used_bytes: u64,
    pub inodes_used: u64,
    /// When it was measured.
    pub timestamp: SystemTime,
}

#[derive(Debug)]
struct Entry {
    layer: WritableLayer,
    usage: Option<FsUsage>,
}

/// Cached writable-layer usage by container id.
pub struct FsUsageCache {
    containerd_root: PathBuf,
    clock: Arc<dyn Clock>,
    entries: Mutex<HashMap<String, Entry>>,
    /// Each snapshotter's filesystem as the last pass reported it.
    mountpoints: Mutex<HashMap<String, PathBuf>>,
}

impl std::fmt::Debug for FsUsageCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsUsageCache")
            .field("containerd_root", &self.containerd_root)
            .finish_non_exhaustive()
    }
}

impl FsUsageCache {
    /// `containerd_root` names the snapshotter directories reported as the
    /// filesystem id (`<root>/io.containerd.snapshotter.v1.<snapshotter>`).
    pub fn new(containerd_root: &Path, clock: Arc<dyn Clock>) -> Self {
        Self {
            containerd_root: containerd_root.to_owned(),
            clock,
            entries: Mutex::new(HashMap::new()),
            mountpoints: Mutex::default(),
        }
    }

    /// The directory of `snapshotter`, containerd's `imageFSPath`: where
    /// the last pass said it is (ImageFsInfo's mountpoint, so both report
    /// one filesystem), else its usual place under containerd's root.
    pub fn mountpoint(&self, snapshotter: &str) -> PathBuf {
        let known = self
            .mountpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(snapshotter)
            .cloned();
        known.unwrap_or_else(|| {
            self.containerd_root
                .join(format!("io.containerd.snapshotter.v1.{snapshotter}"))
        })
    }

    /// Starts tracking a container's writable layer (on create or recovery).
    pub fn register(&self, container_id: &str, layer: WritableLayer) {
        let mut entries = self.lock();
        match entries.get_mut(container_id) {
            Some(entry) if entry.layer == layer => {}
            _ => {
                entries.insert(container_id.to_owned(), Entry { layer, usage: None });
            }
        }
    }

    /// Stops tracking a container (on remove).
    pub fn unregister(&self, container_id: &str) {
        self.lock().remove(container_id);
    }

    /// The cached usage and the snapshot's filesystem, if registered.
    pub fn get(&self, container_id: &str) -> Option<(Option<FsUsage>, PathBuf)> {
        let entries = self.lock();
        let entry = entries.get(container_id)?;
        Some((entry.usage, self.mountpoint(&entry.layer.snapshotter)))
    }

    /// How many containers are tracked.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the usage of the tracked layers of `snapshotter`, whose
    /// filesystem is at `mountpoint`, from one pass over its active
    /// snapshots (`usages`, by snapshot key); a layer the pass did not
    /// measure keeps its last usage.
    pub fn record(
        &self,
        snapshotter: &str,
        mountpoint: &Path,
        usages: &HashMap<String, SnapshotUsage>,
    ) {
        self.mountpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(snapshotter.to_owned(), mountpoint.to_owned());
        let timestamp = self.clock.now();
        for entry in self
            .lock()
            .values_mut()
            .filter(|e| e.layer.snapshotter == snapshotter)
        {
            if let Some(usage) = usages.get(&entry.layer.key) {
                entry.usage = Some(FsUsage {
                    used_bytes: u64::try_from(usage.size).unwrap_or_default(),
                    inodes_used: u64::try_from(usage.inodes).unwrap_or_default(),
                    timestamp,
                });
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::tests_support::FixedClock;
    use std::time::Duration;

    fn layer(snapshotter: &str, key: &str) -> WritableLayer {
        WritableLayer {
            snapshotter: snapshotter.into(),
            key: key.into(),
        }
    }

    fn cache() -> FsUsageCache {
        FsUsageCache::new(
            Path::new("/var/lib/containerd"),
            Arc::new(FixedClock::at_secs(100)),
        )
    }

    fn usages(pairs: &[(&str, i64)]) -> HashMap<String, SnapshotUsage> {
        pairs
            .iter()
            .map(|(key, size)| {
                (
                    (*key).to_owned(),
                    SnapshotUsage {
                        size: *size,
                        inodes: 3,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn a_pass_fills_the_tracked_layers_of_its_snapshotter_only() {
        let cache = cache();
        cache.register("a", layer("overlayfs", "a"));
        cache.register("b", layer("overlayfs", "b"));
        cache.register("n", layer("native", "n"));
        assert_eq!(cache.get("a").unwrap().0, None, "nothing measured yet");
        assert_eq!(
            cache.get("a").unwrap().1,
            Path::new("/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs"),
            "before any pass: the usual place under containerd's root"
        );
        // The pause rootfs "p" is measured too but tracks no container.
        cache.record(
            "overlayfs",
            Path::new("/srv/overlay-root"),
            &usages(&[("a", 4096), ("n", 7), ("p", 9)]),
        );
        let (usage, mountpoint) = cache.get("a").unwrap();
        assert_eq!(
            usage,
            Some(FsUsage {
                used_bytes: 4096,
                inodes_used: 3,
                timestamp: SystemTime::UNIX_EPOCH + Duration::from_secs(100),
            })
        );
        assert_eq!(mountpoint, Path::new("/srv/overlay-root"), "the pass's");
        assert_eq!(cache.get("b").unwrap().0, None, "not measured by the pass");
        let (usage, mountpoint) = cache.get("n").unwrap();
        assert_eq!(usage, None, "another snapshotter's layer");
        assert_eq!(
            mountpoint,
            Path::new("/var/lib/containerd/io.containerd.snapshotter.v1.native")
        );
        assert_eq!(cache.len(), 3, "the pass tracks nothing new");
    }

    #[test]
    fn a_layer_the_next_pass_misses_keeps_its_usage_until_unregistered() {
        let cache = cache();
        cache.register("a", layer("overlayfs", "a"));
        let root = Path::new("/srv/overlay-root");
        cache.record("overlayfs", root, &usages(&[("a", 10)]));
        cache.record("overlayfs", root, &usages(&[]));
        assert_eq!(cache.get("a").unwrap().0.unwrap().used_bytes, 10);
        cache.record("overlayfs", root, &usages(&[("a", 20)]));
        assert_eq!(cache.get("a").unwrap().0.unwrap().used_bytes, 20);
        cache.unregister("a");
        assert!(cache.is_empty());
        assert!(cache.get("a").is_none());
    }
}
