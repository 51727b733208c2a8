//! containerd's Snapshots service: prepare, view, commit, stat and remove
//! snapshots of a snapshotter named per call.

use std::collections::HashMap;

use crate::traced::TracedChannel;
use async_trait::async_trait;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, ListSnapshotsRequest, MountsRequest, PrepareSnapshotRequest,
    RemoveSnapshotRequest, StatSnapshotRequest, UsageRequest, ViewSnapshotRequest,
};
use cri_api::containerd::{Mount, Result, SnapshotInfo, SnapshotUsage, Snapshots};

use super::convert::{mounts_from_proto, snapshot_info_from_proto};
use super::{ContainerdClient, Deadline, MAX_MESSAGE_SIZE};

/// [`Snapshots`] over containerd's gRPC API.
#[derive(Clone, Debug)]
pub struct ContainerdSnapshots {
    client: ContainerdClient,
}

impl ContainerdSnapshots {
    pub fn new(client: ContainerdClient) -> Self {
        Self { client }
    }

    fn api(&self) -> SnapshotsClient<TracedChannel> {
        SnapshotsClient::new(self.client.channel())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }
}

/// Names a snapshot in errors: `snapshotter/key`.
fn snapshot_name(snapshotter: &str, key: &str) -> String {
    format!("{snapshotter}/{key}")
}

#[async_trait]
impl Snapshots for ContainerdSnapshots {
    async fn prepare(
        &self,
        snapshotter: &str,
        key: &str,
        parent: &str,
        labels: HashMap<String, String>,
        lease: Option<String>,
    ) -> Result<Vec<Mount>> {
        const OP: &str = "prepare snapshot";
        let request = PrepareSnapshotRequest {
            snapshotter: snapshotter.to_owned(),
            key: key.to_owned(),
            parent: parent.to_owned(),
            labels,
        };
        let request =
            self.client
                .leased_request(OP, request, lease.as_deref(), Deadline::Default)?;
        let reply = self
            .api()
            .prepare(request)
            .await
            .map_err(|s| self.client.error(OP, &snapshot_name(snapshotter, key), &s))?;
        Ok(mounts_from_proto(reply.into_inner().mounts))
    }

    async fn view(
        &self,
        snapshotter: &str,
        key: &str,
        parent: &str,
        lease: Option<String>,
    ) -> Result<Vec<Mount>> {
        const OP: &str = "view snapshot";
        let request = ViewSnapshotRequest {
            snapshotter: snapshotter.to_owned(),
            key: key.to_owned(),
            parent: parent.to_owned(),
            labels: HashMap::new(),
        };
        let request =
            self.client
                .leased_request(OP, request, lease.as_deref(), Deadline::Default)?;
        let reply = self
            .api()
            .view(request)
            .await
            .map_err(|s| self.client.error(OP, &snapshot_name(snapshotter, key), &s))?;
        Ok(mounts_from_proto(reply.into_inner().mounts))
    }

    async fn mounts(&self, snapshotter: &str, key: &str) -> Result<Vec<Mount>> {
        const OP: &str = "snapshot mounts";
        let request = MountsRequest {
            snapshotter: snapshotter.to_owned(),
            key: key.to_owned(),
        };
        let reply = self
            .api()
            .mounts(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, &snapshot_name(snapshotter, key), &s))?;
        Ok(mounts_from_proto(reply.into_inner().mounts))
    }

    async fn commit(
        &self,
        snapshotter: &str,
        name: &str,
        key: &str,
        labels: HashMap<String, String>,
        lease: Option<String>,
    ) -> Result<()> {
        const OP: &str = "commit snapshot";
        let request = CommitSnapshotRequest {
            snapshotter: snapshotter.to_owned(),
            name: name.to_owned(),
            key: key.to_owned(),
            labels,
        };
        let request =
            self.client
                .leased_request(OP, request, lease.as_deref(), Deadline::Default)?;
        self.api()
            .commit(request)
            .await
            .map_err(|s| self.client.error(OP, &snapshot_name(snapshotter, name), &s))?;
        Ok(())
    }

    async fn remove(&self, snapshotter: &str, key: &str) -> Result<()> {
        const OP: &str = "remove snapshot";
        let request = RemoveSnapshotRequest {
            snapshotter: snapshotter.to_owned(),
            key: key.to_owned(),
        };
        self.api()
            .remove(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, &snapshot_name(snapshotter, key), &s))?;
        Ok(())
    }

    async fn stat(&self, snapshotter: &str, key: &str) -> Result<SnapshotInfo> {
        const OP: &str = "stat snapshot";
        let request = StatSnapshotRequest {
            snapshotter: snapshotter.to_owned(),
            key: key.to_owned(),
        };
        let reply = self
            .api()
            .stat(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, &snapshot_name(snapshotter, key), &s))?;
        let info = reply
            .into_inner()
            .info
            .ok_or_else(|| ContainerdClient::missing(OP, "info"))?;
        Ok(snapshot_info_from_proto(info))
    }

    async fn usage(&self, snapshotter: &str, key: &str) -> Result<SnapshotUsage> {
        const OP: &str = "snapshot usage";
        let request = UsageRequest {
            snapshotter: snapshotter.to_owned(),
            key: key.to_owned(),
        };
        let reply = self
            .api()
            .usage(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, &snapshot_name(snapshotter, key), &s))?
            .into_inner();
        Ok(SnapshotUsage {
            size: reply.size,
            inodes: reply.inodes,
        })
    }

    async fn list(&self, snapshotter: &str, filters: Vec<String>) -> Result<Vec<SnapshotInfo>> {
        const OP: &str = "list snapshots";
        let what = format!("snapshotter {snapshotter}");
        let request = ListSnapshotsRequest {
            snapshotter: snapshotter.to_owned(),
            filters,
        };
        let mut stream = self
            .api()
            .list(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, &what, &s))?
            .into_inner();
        let mut infos = Vec::new();
        while let Some(reply) = stream
            .message()
            .await
            .map_err(|s| self.client.error(OP, &what, &s))?
        {
            infos.extend(reply.info.into_iter().map(snapshot_info_from_proto));
        }
        Ok(infos)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn names_snapshots() {
        assert_eq!(snapshot_name("overlayfs", "k"), "overlayfs/k");
    }
}
