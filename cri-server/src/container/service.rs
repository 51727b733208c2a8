//! [`ContainerService`]: what the container RPCs own (the container store
//! with each container's runtime handle, the name index, the event stream
//! and the OS seams). Sandboxes are reached only through
//! [`SandboxLookup`]; the sandbox RPCs reach containers only through the
//! [`PodContainers`] implementation here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cri_api::containerd::{Containerd, ContainerdError, RuntimeInfo};
use cri_api::ids::SandboxId;
use cri_api::v1::ContainerEventType;
use cri_store::container::ContainerStore;
use cri_store::name_index::NameIndex;

use super::{ContainerEvents, ContainerHandle, ContainerHost};
use crate::metrics::Metrics;
use crate::sandbox::{PodContainerError, PodContainers, PodEvents, SandboxLookup};
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
    /// The runtime of each pod's containerd container, which its app
    /// containers are created with: read once per pod.
    pub sandbox_runtimes: SandboxRuntimes,
    /// The pods the containers belong to, read-only.
    pub sandboxes: Arc<dyn SandboxLookup>,
    /// The last unfiltered ListContainers answer, encoded.
    pub list_cache: crate::list_cache::ListCache,
}

#[async_trait]
impl PodEvents for ContainerService {
    async fn pod_event(&self, sandbox_id: &SandboxId, kind: ContainerEventType) {
        super::events::emit(self, sandbox_id.as_ref(), sandbox_id.as_ref(), kind).await;
    }
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
        self.sandbox_runtimes.forget(sandbox_id);
        Ok(())
    }
}

/// The containerd runtime (name and options) of each pod's sandbox
/// container, as containerd's CRI plugin reads it from the sandbox store
/// for every CreateContainer. Recorded when the pod runs or is recovered
/// (else read from containerd once), kept until the pod's containers are
/// all removed; sandbox ids are never reused.
#[derive(Debug, Default)]
pub struct SandboxRuntimes {
    runtimes: std::sync::Mutex<HashMap<SandboxId, RuntimeInfo>>,
}

impl SandboxRuntimes {
    /// The runtime of `sandbox_id`'s containerd container, read from
    /// containerd the first time.
    pub async fn get(
        &self,
        containerd: &Containerd,
        sandbox_id: &SandboxId,
    ) -> Result<RuntimeInfo, ContainerdError> {
        if let Some(runtime) = self.lock().get(sandbox_id) {
            return Ok(runtime.clone());
        }
        let record = containerd.containers.get(sandbox_id.as_ref()).await?;
        self.lock()
            .insert(sandbox_id.clone(), record.runtime.clone());
        Ok(record.runtime)
    }

    /// Records the runtime of `sandbox_id`'s containerd container, as it
    /// was created or recovered.
    pub fn remember(&self, sandbox_id: SandboxId, runtime: RuntimeInfo) {
        self.lock().insert(sandbox_id, runtime);
    }

    fn forget(&self, sandbox_id: &SandboxId) {
        self.lock().remove(sandbox_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SandboxId, RuntimeInfo>> {
        self.runtimes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use cri_api::containerd::{ContainerRecord, MockServices};
    use mockall::predicate::eq;

    use super::*;

    #[tokio::test]
    async fn a_pods_runtime_is_read_once_until_its_containers_are_removed() {
        let mut services = MockServices::default();
        services
            .containers
            .expect_get()
            .with(eq("s1"))
            .times(2)
            .returning(|id| {
                Ok(ContainerRecord {
                    id: id.to_owned(),
                    runtime: RuntimeInfo {
                        name: "io.containerd.runc.v2".into(),
                        options: None,
                    },
                    ..ContainerRecord::default()
                })
            });
        let containerd = services.build();
        let runtimes = SandboxRuntimes::default();
        let sandbox = SandboxId::from("s1".to_owned());
        for _ in 0..3 {
            let runtime = runtimes.get(&containerd, &sandbox).await.unwrap();
            assert_eq!(runtime.name, "io.containerd.runc.v2");
        }
        // Forgotten with the pod's containers: the next read asks again.
        runtimes.forget(&sandbox);
        runtimes.get(&containerd, &sandbox).await.unwrap();
    }
}
