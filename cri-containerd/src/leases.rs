//! containerd's Leases service: leases that keep content and snapshots
//! from garbage collection, and their resources.

use std::collections::HashMap;

use crate::traced::TracedChannel;
use async_trait::async_trait;
use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::{
    AddResourceRequest, CreateRequest, DeleteRequest, DeleteResourceRequest, ListRequest,
};
use cri_api::containerd::{Lease, LeaseResource, Leases, Result};

use super::convert::{lease_from_proto, lease_resource_to_proto};
use super::{ContainerdClient, Deadline, MAX_MESSAGE_SIZE};

/// [`Leases`] over containerd's gRPC API.
#[derive(Clone, Debug)]
pub struct ContainerdLeases {
    client: ContainerdClient,
}

impl ContainerdLeases {
    pub fn new(client: ContainerdClient) -> Self {
        Self { client }
    }

    fn api(&self) -> LeasesClient<TracedChannel> {
        LeasesClient::new(self.client.channel())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }
}

/// Names a lease resource in errors.
fn resource_name(lease: &str, resource: &LeaseResource) -> String {
    format!("lease {lease} resource {}/{}", resource.kind, resource.id)
}

#[async_trait]
impl Leases for ContainerdLeases {
    async fn create(&self, id: &str, labels: HashMap<String, String>) -> Result<Lease> {
        const OP: &str = "create lease";
        let request = CreateRequest {
            id: id.to_owned(),
            labels,
        };
        let reply = self
            .api()
            .create(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, id, &s))?;
        let lease = reply
            .into_inner()
            .lease
            .ok_or_else(|| ContainerdClient::missing(OP, "lease"))?;
        Ok(lease_from_proto(lease))
    }

    async fn delete(&self, id: &str, sync: bool) -> Result<()> {
        const OP: &str = "delete lease";
        let request = DeleteRequest {
            id: id.to_owned(),
            sync,
        };
        self.api()
            .delete(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, id, &s))?;
        Ok(())
    }

    async fn list(&self, filters: Vec<String>) -> Result<Vec<Lease>> {
        const OP: &str = "list leases";
        let what = filters.join(" or ");
        let request = ListRequest { filters };
        let reply = self
            .api()
            .list(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, &what, &s))?;
        Ok(reply
            .into_inner()
            .leases
            .into_iter()
            .map(lease_from_proto)
            .collect())
    }

    async fn add_resource(&self, lease: &str, resource: LeaseResource) -> Result<()> {
        const OP: &str = "add lease resource";
        let what = resource_name(lease, &resource);
        let request = AddResourceRequest {
            id: lease.to_owned(),
            resource: Some(lease_resource_to_proto(resource)),
        };
        self.api()
            .add_resource(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, &what, &s))?;
        Ok(())
    }

    async fn delete_resource(&self, lease: &str, resource: LeaseResource) -> Result<()> {
        const OP: &str = "delete lease resource";
        let what = resource_name(lease, &resource);
        let request = DeleteResourceRequest {
            id: lease.to_owned(),
            resource: Some(lease_resource_to_proto(resource)),
        };
        self.api()
            .delete_resource(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, &what, &s))?;
        Ok(())
    }
}
