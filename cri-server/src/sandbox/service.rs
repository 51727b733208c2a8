//! [`SandboxService`]: what the sandbox RPCs own (the sandbox store, the
//! name index, the controllers, netns and CNI), and the two seams between
//! sandboxes and containers. The sandbox side sees a pod's containers only
//! through [`PodContainers`]; the container side sees sandboxes only
//! through [`SandboxLookup`], which this service implements, and sends the
//! pod's own events through [`PodEvents`]. The traits live here, so the
//! module edge points one way: `container` → `sandbox`.

use std::sync::{Arc, OnceLock, Weak};

use async_trait::async_trait;
use cri_api::ids::SandboxId;
use cri_api::v1::{ContainerEventType, PodSandboxStatus};
use cri_spec::Platform;
use cri_store::name_index::NameIndex;
use cri_store::sandbox::{Sandbox, SandboxMetadata, SandboxState, SandboxStore};

use super::{SandboxError, SandboxManager};
use crate::metrics::Metrics;
use cri_config::Config;
use cri_image::ImageManager;
use cri_stats::StatsCollector;

/// The sandbox RPCs' state.
#[derive(Debug)]
pub struct SandboxService {
    pub config: Arc<Config>,
    /// The pause image is pulled through it.
    pub images: Arc<ImageManager>,
    /// Pod sandboxes by id: metadata (config, netns path, IPs, runtime
    /// handler) and status (READY/NOTREADY, pause pid, creation time).
    pub store: Arc<SandboxStore>,
    /// Sandbox names (`name_namespace_uid_attempt`) reserved to their ids.
    pub names: NameIndex,
    /// Sandbox controllers, netns, CNI and the sandbox files.
    pub manager: Arc<SandboxManager>,
    pub metrics: Arc<Metrics>,
    /// Forgets a removed pod's stats.
    pub stats: Arc<StatsCollector>,
    /// The last unfiltered ListPodSandbox answer, encoded.
    pub list_cache: crate::list_cache::ListCache,
    /// Where the pod's own events go (the container service, set once both
    /// services exist).
    pub pod_events: OnceLock<Weak<dyn PodEvents>>,
}

impl SandboxService {
    /// containerd's `generateAndSendContainerEvent(id, id, kind)`: an event
    /// about the pod itself, its id as the container id, for the kubelet's
    /// evented PLEG.
    pub(crate) async fn send_pod_event(&self, id: &SandboxId, kind: ContainerEventType) {
        if let Some(events) = self.pod_events.get().and_then(Weak::upgrade) {
            events.pod_event(id, kind).await;
        }
    }
}

/// A container of a pod that could not be stopped or removed.
#[derive(Debug, thiserror::Error)]
#[error("container {container_id}")]
pub struct PodContainerError {
    pub container_id: String,
    /// The container side's own error; the tonic layer reads its code.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// What StopPodSandbox and RemovePodSandbox need of a pod's containers.
#[async_trait]
pub trait PodContainers: Send + Sync {
    /// Stops every container of the pod at once (no grace period),
    /// stopping at the first failure.
    async fn stop_all(&self, sandbox_id: &SandboxId) -> Result<(), PodContainerError>;
    /// Removes every container of the pod, stopping at the first failure.
    async fn remove_all(&self, sandbox_id: &SandboxId) -> Result<(), PodContainerError>;
}

/// The CRI container events stream, for events about a pod itself
/// (CREATED and STARTED when it runs, STOPPED when its sandbox exits,
/// DELETED when it is removed), which carry the pod's status and its
/// containers' statuses as container events do.
#[async_trait]
pub trait PodEvents: Send + Sync {
    async fn pod_event(&self, sandbox_id: &SandboxId, kind: ContainerEventType);
}

/// What the container RPCs need of sandboxes: read-only.
#[async_trait]
pub trait SandboxLookup: Send + Sync + std::fmt::Debug {
    /// The sandbox with this full id or unique prefix.
    fn get(&self, id_or_prefix: &str) -> Result<Sandbox, cri_store::StoreError>;
    /// The host files an app container of the sandbox bind-mounts.
    fn files(&self, sandbox: &SandboxMetadata) -> cri_spec::SandboxFiles;
    /// The pid of the sandbox's init process (whose namespaces app
    /// containers join) and the platform its containers are built for:
    /// the pid from the store while the sandbox is ready, else from its
    /// controller.
    async fn runtime(&self, sandbox: &Sandbox) -> Result<(u32, Platform), SandboxError>;
    /// The (non-verbose) PodSandboxStatus, as container events carry it.
    async fn status(&self, id: &str) -> Result<PodSandboxStatus, SandboxError>;
}

#[async_trait]
impl SandboxLookup for SandboxService {
    fn get(&self, id_or_prefix: &str) -> Result<Sandbox, cri_store::StoreError> {
        self.store.get(id_or_prefix)
    }

    fn files(&self, sandbox: &SandboxMetadata) -> cri_spec::SandboxFiles {
        super::sandbox_files(self, sandbox)
    }

    async fn runtime(&self, sandbox: &Sandbox) -> Result<(u32, Platform), SandboxError> {
        let id = &sandbox.metadata.id;
        let controller = self
            .manager
            .controller_of(&self.config, &sandbox.metadata.runtime_handler)?;
        let controller_error = |source| SandboxError::Controller {
            id: id.to_string(),
            source,
        };
        // A ready sandbox's pid is in the store (set at run and recovery,
        // cleared at exit), as containerd's controller keeps it in memory.
        let pid = if sandbox.status.state == SandboxState::Ready && sandbox.status.pid != 0 {
            sandbox.status.pid
        } else {
            controller
                .status(id, false)
                .await
                .map_err(controller_error)?
                .pid
        };
        let platform = controller.platform(id).await.map_err(controller_error)?;
        Ok((pid, platform))
    }

    async fn status(&self, id: &str) -> Result<PodSandboxStatus, SandboxError> {
        let response = super::pod_sandbox_status(self, id, false).await?;
        response
            .status
            .ok_or_else(|| SandboxError::NotFound { id: id.to_owned() })
    }
}
