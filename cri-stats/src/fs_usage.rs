//! Writable-layer usage of containers: a background task asks containerd's
//! snapshotter for the usage of each registered container's snapshot every
//! `stats_collect_period` seconds and caches it, as containerd's snapshot
//! syncer does; stats requests only read the cache.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use cri_api::containerd::Snapshots;
use tokio_util::sync::CancellationToken;

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
    snapshots: Arc<dyn Snapshots>,
    containerd_root: PathBuf,
    clock: Arc<dyn Clock>,
    entries: Mutex<HashMap<String, Entry>>,
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
    pub fn new(
        snapshots: Arc<dyn Snapshots>,
        containerd_root: &Path,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            snapshots,
            containerd_root: containerd_root.to_owned(),
            clock,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The directory of `snapshotter`, containerd's `imageFSPath`.
    pub fn mountpoint(&self, snapshotter: &str) -> PathBuf {
        self.containerd_root
            .join(format!("io.containerd.snapshotter.v1.{snapshotter}"))
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

    /// One pass: asks the snapshotter for every tracked layer, one at a
    /// time so a node with many containers does not flood containerd.
    pub async fn refresh(&self) {
        let layers: Vec<(String, WritableLayer)> = self
            .lock()
            .iter()
            .map(|(id, e)| (id.clone(), e.layer.clone()))
            .collect();
        for (id, layer) in layers {
            let result = self.snapshots.usage(&layer.snapshotter, &layer.key).await;
            let usage = match result {
                Ok(u) => FsUsage {
                    used_bytes: u64::try_from(u.size).unwrap_or_default(),
                    inodes_used: u64::try_from(u.inodes).unwrap_or_default(),
                    timestamp: self.clock.now(),
                },
                Err(e) => {
                    tracing::debug!(container_id = %id, snapshot = %layer.key, error = %e, "no writable layer usage");
                    continue;
                }
            };
            // Still tracked, and still the same layer?
            if let Some(entry) = self.lock().get_mut(&id).filter(|e| e.layer == layer) {
                entry.usage = Some(usage);
            }
        }
    }

    /// Refreshes every `period` until `cancel` fires.
    pub fn spawn_refresher(
        self: &Arc<Self>,
        period: Duration,
        cancel: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let cache = Arc::clone(self);
        let period = period.max(Duration::from_secs(1));
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = ticker.tick() => cache.refresh().await,
                }
            }
        })
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
    use cri_api::containerd::{ContainerdError, MockSnapshots, SnapshotUsage};

    fn layer(key: &str) -> WritableLayer {
        WritableLayer {
            snapshotter: "overlayfs".into(),
            key: key.into(),
        }
    }

    fn cache(snapshots: MockSnapshots) -> Arc<FsUsageCache> {
        Arc::new(FsUsageCache::new(
            Arc::new(snapshots),
            Path::new("/var/lib/containerd"),
            Arc::new(FixedClock::at_secs(100)),
        ))
    }

    #[tokio::test]
    async fn refresh_fills_the_cache_and_requests_only_read_it() {
        let mut snapshots = MockSnapshots::new();
        snapshots
            .expect_usage()
            .withf(|s, k| s == "overlayfs" && k == "a")
            .times(1)
            .returning(|_, _| {
                Ok(SnapshotUsage {
                    size: 4096,
                    inodes: 3,
                })
            });
        snapshots
            .expect_usage()
            .withf(|_, k| k == "gone")
            .times(1)
            .returning(|_, k| {
                Err(ContainerdError::NotFound {
                    op: "usage",
                    what: k.to_owned(),
                })
            });
        let cache = cache(snapshots);
        cache.register("a", layer("a"));
        cache.register("gone", layer("gone"));
        assert_eq!(cache.get("a").unwrap().0, None, "nothing measured yet");
        cache.refresh().await;
        let (usage, mountpoint) = cache.get("a").unwrap();
        assert_eq!(
            usage,
            Some(FsUsage {
                used_bytes: 4096,
                inodes_used: 3,
                timestamp: SystemTime::UNIX_EPOCH + Duration::from_secs(100),
            })
        );
        assert_eq!(
            mountpoint,
            Path::new("/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs")
        );
        assert_eq!(cache.get("gone").unwrap().0, None);
        // Reading again does not call containerd (times(1) above).
        assert!(cache.get("a").unwrap().0.is_some());
        cache.unregister("a");
        cache.unregister("gone");
        assert!(cache.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn refresher_runs_every_period_until_cancelled() {
        let mut snapshots = MockSnapshots::new();
        snapshots
            .expect_usage()
            .times(3)
            .returning(|_, _| Ok(SnapshotUsage { size: 1, inodes: 1 }));
        let cache = cache(snapshots);
        cache.register("a", layer("a"));
        let cancel = CancellationToken::new();
        let task = cache.spawn_refresher(Duration::from_secs(10), cancel.clone());
        // Ticks at 0, 10 and 20 s.
        tokio::time::sleep(Duration::from_secs(25)).await;
        cancel.cancel();
        task.await.unwrap();
    }
}
