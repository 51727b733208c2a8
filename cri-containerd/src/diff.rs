//! containerd's Diff service: applying a layer onto mounts.

use std::collections::HashMap;

use crate::traced::TracedChannel;
use async_trait::async_trait;
use containerd_client::services::v1::diff_client::DiffClient;
use containerd_client::services::v1::ApplyRequest;
use cri_api::containerd::{Descriptor, Diff, Mount, Result};

use super::convert::{descriptor_from_proto, descriptor_to_proto, mounts_to_proto};
use super::{ContainerdClient, Deadline, MAX_MESSAGE_SIZE};

/// [`Diff`] over containerd's gRPC API.
#[derive(Clone, Debug)]
pub struct ContainerdDiff {
    client: ContainerdClient,
}

impl ContainerdDiff {
    pub fn new(client: ContainerdClient) -> Self {
        Self { client }
    }

    fn api(&self) -> DiffClient<TracedChannel> {
        DiffClient::new(self.client.channel())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }
}

#[async_trait]
impl Diff for ContainerdDiff {
    async fn apply(&self, diff: Descriptor, mounts: Vec<Mount>) -> Result<Descriptor> {
        const OP: &str = "apply layer";
        let digest = diff.digest.clone();
        let request = ApplyRequest {
            diff: Some(descriptor_to_proto(diff)),
            mounts: mounts_to_proto(mounts),
            payloads: HashMap::new(),
            sync_fs: false,
        };
        // Unpacking a large layer takes as long as it takes: no deadline.
        let reply = self
            .api()
            .apply(self.client.request(request, Deadline::Unbounded))
            .await
            .map_err(|s| self.client.error(OP, &digest, &s))?;
        let applied = reply
            .into_inner()
            .applied
            .ok_or_else(|| ContainerdClient::missing(OP, "applied descriptor"))?;
        Ok(descriptor_from_proto(applied))
    }
}
