//! containerd's Containers service: container metadata records.

use crate::traced::TracedChannel;
use async_trait::async_trait;
use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::{
    CreateContainerRequest, DeleteContainerRequest, GetContainerRequest, ListContainersRequest,
    UpdateContainerRequest,
};
use cri_api::containerd::{ContainerRecord, Containers, Result};

use super::convert::{container_from_proto, container_to_proto, field_mask};
use super::{ContainerdClient, Deadline, MAX_MESSAGE_SIZE};

/// [`Containers`] over containerd's gRPC API.
#[derive(Clone, Debug)]
pub struct ContainerdContainers {
    client: ContainerdClient,
}

impl ContainerdContainers {
    pub fn new(client: ContainerdClient) -> Self {
        Self { client }
    }

    fn api(&self) -> ContainersClient<TracedChannel> {
        ContainersClient::new(self.client.channel())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }
}

#[async_trait]
impl Containers for ContainerdContainers {
    async fn get(&self, id: &str) -> Result<ContainerRecord> {
        const OP: &str = "get container";
        let request = GetContainerRequest { id: id.to_owned() };
        let reply = self
            .api()
            .get(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, id, &s))?
            .into_inner();
        let container = reply
            .container
            .ok_or_else(|| ContainerdClient::missing(OP, "container"))?;
        Ok(container_from_proto(container))
    }

    async fn list(&self, filters: Vec<String>) -> Result<Vec<ContainerRecord>> {
        const OP: &str = "list containers";
        let what = filters.join(" or ");
        let request = ListContainersRequest { filters };
        let reply = self
            .api()
            .list(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, &what, &s))?
            .into_inner();
        Ok(reply
            .containers
            .into_iter()
            .map(container_from_proto)
            .collect())
    }

    async fn create(&self, record: ContainerRecord) -> Result<ContainerRecord> {
        const OP: &str = "create container";
        let id = record.id.clone();
        let request = CreateContainerRequest {
            container: Some(container_to_proto(record)),
        };
        let reply = self
            .api()
            .create(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, &id, &s))?
            .into_inner();
        let container = reply
            .container
            .ok_or_else(|| ContainerdClient::missing(OP, "container"))?;
        Ok(container_from_proto(container))
    }

    async fn update(
        &self,
        record: ContainerRecord,
        fieldpaths: Vec<String>,
    ) -> Result<ContainerRecord> {
        const OP: &str = "update container";
        let id = record.id.clone();
        let request = UpdateContainerRequest {
            container: Some(container_to_proto(record)),
            update_mask: field_mask(fieldpaths),
        };
        let reply = self
            .api()
            .update(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, &id, &s))?
            .into_inner();
        let container = reply
            .container
            .ok_or_else(|| ContainerdClient::missing(OP, "container"))?;
        Ok(container_from_proto(container))
    }

    async fn delete(&self, id: &str) -> Result<()> {
        const OP: &str = "delete container";
        let request = DeleteContainerRequest { id: id.to_owned() };
        self.api()
            .delete(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, id, &s))?;
        Ok(())
    }
}
