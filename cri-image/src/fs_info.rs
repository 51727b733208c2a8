//! ImageFsInfo as containerd's CRI plugin answers it: one filesystem per
//! snapshotter in use, the default first (the kubelet reads the first),
//! each at the directory the snapshotter exports as its `root` through
//! containerd's Introspection service (its usual place under containerd's
//! root when it exports none), with the bytes and inodes of its snapshots
//! summed as containerd's snapshot syncer computes them. A handler's own
//! snapshotter is listed once it holds snapshots. Committed snapshots never
//! change, so their usage is cached.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use cri_api::containerd::{SnapshotKind, SnapshotUsage};
use cri_api::v1::{FilesystemIdentifier, FilesystemUsage, ImageFsInfoResponse, UInt64Value};
use futures::StreamExt;

use super::error::{ImageError, Result};
use super::ImageManager;

const USAGE_CONCURRENCY: usize = 8;
/// containerd's plugin type of snapshotters.
const SNAPSHOTTER_PLUGIN_FILTER: &str = r#"type=="io.containerd.snapshotter.v1""#;

/// Told, after each pass over a snapshotter, the usage of its active
/// snapshots, among them the containers' writable layers that the
/// container stats report: one pass serves ImageFsInfo and the stats, as
/// containerd's snapshot syncer does, instead of a second
/// `Snapshots/Usage` per container.
pub trait ActiveUsageObserver: Send + Sync + std::fmt::Debug {
    /// `usages` maps the key of each active snapshot of `snapshotter`
    /// that reported its usage; `mountpoint` is the snapshotter's
    /// filesystem as ImageFsInfo reports it.
    fn active_usages(
        &self,
        snapshotter: &str,
        mountpoint: &Path,
        usages: &HashMap<String, SnapshotUsage>,
    );
}

/// Usage of committed snapshots by snapshotter and name, the
/// snapshotters' exported roots, the last answer, and who else is told
/// the active snapshots' usage.
#[derive(Debug)]
pub struct UsageCache {
    committed: Mutex<HashMap<(String, String), SnapshotUsage>>,
    roots: Mutex<HashMap<String, PathBuf>>,
    answer: Mutex<Option<ImageFsInfoResponse>>,
    /// Images changed since the answer was computed.
    stale: AtomicBool,
    observer: OnceLock<Arc<dyn ActiveUsageObserver>>,
}

impl Default for UsageCache {
    fn default() -> Self {
        Self {
            committed: Mutex::default(),
            roots: Mutex::default(),
            answer: Mutex::default(),
            stale: AtomicBool::new(true),
            observer: OnceLock::new(),
        }
    }
}

/// What one snapshotter's snapshots use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Usage {
    snapshots: usize,
    bytes: u64,
    inodes: u64,
}

impl ImageManager {
    /// ImageFsInfo: the last answer, as containerd's plugin answers from
    /// what its snapshot syncer stored. It is computed here only when there
    /// is none yet or images changed since (a pull, a removal, an image
    /// event); [`spawn_fs_info_syncer`](Self::spawn_fs_info_syncer) keeps
    /// the writable layers' share current.
    pub async fn fs_info(&self) -> Result<ImageFsInfoResponse> {
        if !self.fs_usage.stale.load(Ordering::SeqCst) {
            let answer = self
                .fs_usage
                .answer
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if let Some(answer) = answer {
                return Ok(answer);
            }
        }
        self.refresh_fs_info().await
    }

    /// Recomputes the ImageFsInfo answer from containerd and keeps it.
    pub async fn refresh_fs_info(&self) -> Result<ImageFsInfoResponse> {
        self.fs_usage.stale.store(false, Ordering::SeqCst);
        match self.compute_fs_info().await {
            Ok(answer) => {
                *self
                    .fs_usage
                    .answer
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(answer.clone());
                Ok(answer)
            }
            Err(e) => {
                self.fs_usage.stale.store(true, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// Has every pass tell `observer` the usage of the active snapshots.
    /// Set once: a second observer is refused and handed back.
    pub fn set_active_usage_observer(
        &self,
        observer: Arc<dyn ActiveUsageObserver>,
    ) -> std::result::Result<(), Arc<dyn ActiveUsageObserver>> {
        self.fs_usage.observer.set(observer)
    }

    /// Images changed: the next ImageFsInfo recomputes its answer.
    pub fn mark_fs_info_stale(&self) {
        self.fs_usage.stale.store(true, Ordering::SeqCst);
    }

    /// Refreshes the answer every `period` (containerd's
    /// `stats_collect_period`) until `stop`.
    pub fn spawn_fs_info_syncer(
        self: &std::sync::Arc<Self>,
        period: std::time::Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let manager = std::sync::Arc::clone(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period.max(std::time::Duration::from_secs(1)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                if let Err(e) = manager.refresh_fs_info().await {
                    tracing::debug!(error = %e, "image filesystem usage");
                }
            }
        });
    }

    async fn compute_fs_info(&self) -> Result<ImageFsInfoResponse> {
        let roots = self.snapshotter_roots().await;
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or_default();
        let mut image_filesystems = Vec::new();
        for (i, snapshotter) in self.settings.snapshotters.iter().enumerate() {
            let mountpoint = roots
                .get(snapshotter)
                .cloned()
                .unwrap_or_else(|| self.default_snapshotter_root(snapshotter));
            let usage = self.snapshotter_usage(snapshotter, &mountpoint).await?;
            if i > 0 && usage.snapshots == 0 {
                continue;
            }
            image_filesystems.push(FilesystemUsage {
                timestamp,
                fs_id: Some(FilesystemIdentifier {
                    mountpoint: mountpoint.display().to_string(),
                }),
                used_bytes: Some(UInt64Value { value: usage.bytes }),
                inodes_used: Some(UInt64Value {
                    value: usage.inodes,
                }),
            });
        }
        Ok(ImageFsInfoResponse {
            image_filesystems,
            container_filesystems: Vec::new(),
        })
    }

    /// Where containerd keeps a snapshotter's data by default.
    fn default_snapshotter_root(&self, snapshotter: &str) -> PathBuf {
        self.settings
            .containerd_root_dir
            .join(format!("io.containerd.snapshotter.v1.{snapshotter}"))
    }

    /// The `root` each snapshotter in use exports, asked of containerd
    /// until every one is known (a snapshotter's root never changes while
    /// containerd runs with the same config).
    async fn snapshotter_roots(&self) -> HashMap<String, PathBuf> {
        let known = self
            .fs_usage
            .roots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if self
            .settings
            .snapshotters
            .iter()
            .all(|s| known.contains_key(s))
        {
            return known;
        }
        let plugins = match self
            .containerd
            .introspection
            .plugins(vec![SNAPSHOTTER_PLUGIN_FILTER.to_owned()])
            .await
        {
            Ok(plugins) => plugins,
            Err(e) => {
                tracing::debug!(error = %e, "snapshotter roots from containerd's introspection");
                return known;
            }
        };
        let mut roots = self
            .fs_usage
            .roots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for plugin in plugins {
            if let Some(root) = plugin.exports.get("root") {
                if self.settings.snapshotters.contains(&plugin.id) {
                    roots.insert(plugin.id, PathBuf::from(root));
                }
            }
        }
        roots.clone()
    }

    /// The usage of `snapshotter`'s snapshots, whose filesystem is at
    /// `mountpoint` (told to the observer with the active ones).
    async fn snapshotter_usage(&self, snapshotter: &str, mountpoint: &Path) -> Result<Usage> {
        let snapshots = self
            .containerd
            .snapshots
            .list(snapshotter, Vec::new())
            .await
            .map_err(ImageError::containerd(
                "list snapshots of",
                snapshotter.to_owned(),
            ))?;
        let cached = self
            .fs_usage
            .committed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let count = snapshots.len();
        let usages: Vec<(String, bool, Option<SnapshotUsage>)> = futures::stream::iter(snapshots)
            .map(|info| {
                let key = (snapshotter.to_owned(), info.name.clone());
                let cached = cached.get(&key).copied();
                async move {
                    let committed = info.kind == SnapshotKind::Committed;
                    if let (true, Some(usage)) = (committed, cached) {
                        return (info.name, committed, Some(usage));
                    }
                    match self.containerd.snapshots.usage(snapshotter, &info.name).await {
                        Ok(usage) => (info.name, committed, Some(usage)),
                        Err(e) => {
                            // A snapshot removed meanwhile, or one being written.
                            tracing::debug!(snapshot = %info.name, error = %e, "no usage for snapshot");
                            (info.name, committed, None)
                        }
                    }
                }
            })
            .buffer_unordered(USAGE_CONCURRENCY)
            .collect()
            .await;
        let mut usage = Usage {
            snapshots: count,
            ..Usage::default()
        };
        let mut committed = self
            .fs_usage
            .committed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        committed.retain(|(s, _), _| s != snapshotter);
        let mut active = HashMap::new();
        for (name, is_committed, snapshot_usage) in usages {
            let Some(snapshot_usage) = snapshot_usage else {
                continue;
            };
            usage.bytes += u64::try_from(snapshot_usage.size).unwrap_or_default();
            usage.inodes += u64::try_from(snapshot_usage.inodes).unwrap_or_default();
            if is_committed {
                committed.insert((snapshotter.to_owned(), name), snapshot_usage);
            } else {
                active.insert(name, snapshot_usage);
            }
        }
        drop(committed);
        if let Some(observer) = self.fs_usage.observer.get() {
            observer.active_usages(snapshotter, mountpoint, &active);
        }
        Ok(usage)
    }
}

#[cfg(test)]
#[path = "fs_info_tests.rs"]
mod tests;
