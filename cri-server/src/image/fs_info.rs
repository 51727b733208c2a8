//! ImageFsInfo: the snapshotter's usage (bytes and inodes summed over its snapshots, as containerd's snapshot syncer computes it) reported for the snapshotter's directory. Committed snapshots never change, so their usage is cached.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use cri_api::containerd::{SnapshotKind, SnapshotUsage};
use cri_api::v1::{FilesystemIdentifier, FilesystemUsage, ImageFsInfoResponse, UInt64Value};
use futures::StreamExt;

use super::error::{ImageError, Result};
use super::ImageManager;

const USAGE_CONCURRENCY: usize = 8;

/// Usage of committed snapshots by name.
#[derive(Debug, Default)]
pub struct UsageCache {
    committed: Mutex<HashMap<String, SnapshotUsage>>,
}

impl ImageManager {
    /// ImageFsInfo.
    pub async fn fs_info(&self) -> Result<ImageFsInfoResponse> {
        let snapshotter = &self.settings.snapshotter;
        let snapshots = self
            .containerd
            .snapshots
            .list(snapshotter, Vec::new())
            .await
            .map_err(ImageError::containerd(
                "list snapshots of",
                snapshotter.clone(),
            ))?;
        let cached = self
            .fs_usage
            .committed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let usages: Vec<(String, bool, Option<SnapshotUsage>)> = futures::stream::iter(snapshots)
            .map(|info| {
                let cached = cached.get(&info.name).copied();
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
        let (mut bytes, mut inodes) = (0u64, 0u64);
        let mut committed = HashMap::new();
        for (name, is_committed, usage) in usages {
            let Some(usage) = usage else { continue };
            bytes += u64::try_from(usage.size).unwrap_or_default();
            inodes += u64::try_from(usage.inodes).unwrap_or_default();
            if is_committed {
                committed.insert(name, usage);
            }
        }
        *self
            .fs_usage
            .committed
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = committed;
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or_default();
        Ok(ImageFsInfoResponse {
            image_filesystems: vec![FilesystemUsage {
                timestamp,
                fs_id: Some(FilesystemIdentifier {
                    mountpoint: self.settings.image_fs_path.display().to_string(),
                }),
                used_bytes: Some(UInt64Value { value: bytes }),
                inodes_used: Some(UInt64Value { value: inodes }),
            }],
            container_filesystems: Vec::new(),
        })
    }
}
