//! [`ContainerService`]: what the container RPCs own (the container store
//! with each container's runtime handle, the name index, the event stream
//! and the OS seams). Sandboxes are reached only through
//! [`SandboxLookup`]; the sandbox RPCs reach containers only through the
//! [`PodContainers`] implementation here.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cri_api::containerd::Containerd;
use cri_api::ids::SandboxId;
use cri_store::container::ContainerStore;
use cri_store::name_index::NameIndex;

use super::{ContainerEvents, ContainerHandle, ContainerHost};
use crate::metrics::Metrics;
use crate::sandbox::{PodContainerError, PodContainers, SandboxLookup};
use cri_config::Config;
use cri_image::ImageManager;
use cri_stats::StatsCollector;

/// The container RPCs' state.
#[derive(Debug)]
pub struct ContainerService {
    pub config: Arc<Config>,
    pub containerd: Containerd,
    /// Images are resolved through it at create and status.
    pub images: Arc<ImageManager>,
    /// App containers by id: metadata, status (checkpointed on disk) and
    /// the runtime handle (IO, snapshotter, stop signal), in one record.
    pub store: Arc<ContainerStore<ContainerHandle>>,
    /// Container names (`ctr_pod_namespace_uid_attempt`) reserved to ids.
    pub names: NameIndex,
    /// CRI container events for GetContainerEvents subscribers.
    pub events: ContainerEvents,
    /// The OS seams (spec host, SELinux, user db, ids).
    pub host: ContainerHost,
    pub metrics: Arc<Metrics>,
    /// Writable-layer usage is registered at create, forgotten at remove.
    pub stats: Arc<StatsCollector>,
    /// The user databases of images already read (no view mount for the
    /// next container of the same image).
    pub user_dbs: super::spec::UserDbCache,
    /// The pods the containers belong to, read-only.
    pub sandboxes: Arc<dyn SandboxLookup>,
}

#[async_trait]
impl PodContainers for ContainerService {
    async fn stop_all(&self, sandbox_id: &SandboxId) -> Result<(), PodContainerError> {
        for container in self.store.list_by_sandbox(sandbox_id) {
            let container_id = container.metadata.id.to_string();
            if let Err(e) = super::stop_container(self, &container_id, Duration::ZERO).await {
                return Err(PodContainerError {
                    container_id,
                    source: Box::new(e),
                });
            }
        }
        Ok(())
    }

    async fn remove_all(&self, sandbox_id: &SandboxId) -> Result<(), PodContainerError> {
        for container in self.store.list_by_sandbox(sandbox_id) {
            let container_id = container.metadata.id.to_string();
            if let Err(e) = super::remove_container(self, &container_id).await {
                return Err(PodContainerError {
                    container_id,
                    source: Box::new(e),
                });
            }
        }
        Ok(())
    }
}
