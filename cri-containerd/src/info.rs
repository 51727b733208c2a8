//! containerd's Namespaces, Version and Introspection services: facts
//! about the daemon rather than about containers.

use std::collections::HashMap;

use crate::traced::TracedChannel;
use async_trait::async_trait;
use containerd_client::services::v1::introspection_client::IntrospectionClient;
use containerd_client::services::v1::namespaces_client::NamespacesClient;
use containerd_client::services::v1::version_client::VersionClient;
use containerd_client::services::v1::{
    CreateNamespaceRequest, ListNamespacesRequest, Namespace, PluginsRequest,
};
use cri_api::containerd::{
    ContainerdError, Introspection, Namespaces, PluginInfo, Result, Version, VersionInfo,
};

use super::convert::plugin_from_proto;
use super::{ContainerdClient, Deadline, MAX_MESSAGE_SIZE};

/// [`Namespaces`] over containerd's gRPC API.
#[derive(Clone, Debug)]
pub struct ContainerdNamespaces {
    client: ContainerdClient,
}

impl ContainerdNamespaces {
    pub fn new(client: ContainerdClient) -> Self {
        Self { client }
    }

    fn api(&self) -> NamespacesClient<TracedChannel> {
        NamespacesClient::new(self.client.channel())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }
}

#[async_trait]
impl Namespaces for ContainerdNamespaces {
    async fn ensure(&self, name: &str, labels: HashMap<String, String>) -> Result<()> {
        const OP: &str = "create namespace";
        let request = CreateNamespaceRequest {
            namespace: Some(Namespace {
                name: name.to_owned(),
                labels,
            }),
        };
        match self
            .api()
            .create(self.client.request(request, Deadline::Default))
            .await
        {
            Ok(_) => Ok(()),
            Err(status) => match self.client.error(OP, name, &status) {
                ContainerdError::AlreadyExists { .. } => Ok(()),
                e => Err(e),
            },
        }
    }

    async fn list(&self) -> Result<Vec<String>> {
        const OP: &str = "list namespaces";
        let request = ListNamespacesRequest {
            filter: String::new(),
        };
        let reply = self
            .api()
            .list(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, "", &s))?;
        Ok(reply
            .into_inner()
            .namespaces
            .into_iter()
            .map(|n| n.name)
            .collect())
    }
}

/// [`Version`] over containerd's gRPC API.
#[derive(Clone, Debug)]
pub struct ContainerdVersion {
    client: ContainerdClient,
}

impl ContainerdVersion {
    pub fn new(client: ContainerdClient) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Version for ContainerdVersion {
    async fn version(&self) -> Result<VersionInfo> {
        const OP: &str = "version";
        let reply = VersionClient::new(self.client.channel())
            .version(self.client.request((), Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, "containerd", &s))?
            .into_inner();
        Ok(VersionInfo {
            version: reply.version,
            revision: reply.revision,
        })
    }
}

/// [`Introspection`] over containerd's gRPC API.
#[derive(Clone, Debug)]
pub struct ContainerdIntrospection {
    client: ContainerdClient,
}

impl ContainerdIntrospection {
    pub fn new(client: ContainerdClient) -> Self {
        Self { client }
    }

    fn api(&self) -> IntrospectionClient<TracedChannel> {
        IntrospectionClient::new(self.client.channel())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }
}

#[async_trait]
impl Introspection for ContainerdIntrospection {
    async fn plugins(&self, filters: Vec<String>) -> Result<Vec<PluginInfo>> {
        const OP: &str = "list plugins";
        let what = filters.join(" or ");
        let request = PluginsRequest { filters };
        let reply = self
            .api()
            .plugins(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, &what, &s))?;
        Ok(reply
            .into_inner()
            .plugins
            .into_iter()
            .map(plugin_from_proto)
            .collect())
    }

    async fn server_uuid(&self) -> Result<String> {
        const OP: &str = "server info";
        let reply = self
            .api()
            .server(self.client.request((), Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, "containerd", &s))?;
        Ok(reply.into_inner().uuid)
    }
}
