//! The [`SandboxController`] seam: what the CRI server asks of whatever
//! runs a pod's sandbox (create, start, stop, wait, status, platform,
//! shutdown, metrics), shaped as containerd's `sandbox.Controller`. The
//! pause-container implementation is [`podsandbox::PodSandboxController`];
//! a shim-mode controller over containerd's sandbox API fits the same
//! trait.

mod error;
pub mod podsandbox;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use cri_api::containerd::{Any, ContainerRecord, ExitStatus, RuntimeInfo, TaskMetric};
use cri_api::ids::SandboxId;
use cri_api::v1::PodSandboxConfig;
use cri_spec::{Platform, RuntimeOptions};
use oci_spec::image::ImageConfiguration;

pub use error::ControllerError;

/// Encodes the sandbox metadata extension of the pause container once the
/// SELinux process label is known: returns the extension key and value.
/// What it encodes at create time lacks the pod's network (IP, CNI
/// result), which is set up meanwhile and written later with
/// [`SandboxController::update_metadata`], as containerd 1.7 does.
pub type MetadataExtension =
    Arc<dyn Fn(&str) -> Result<(String, Any), String> + Send + Sync + 'static>;

/// The image a sandbox runs (the pause image), as the image store has it.
#[derive(Clone, Debug, PartialEq)]
pub struct SandboxImage {
    /// The containerd image name (the first of its references).
    pub name: String,
    /// The chain id of its layers: the parent of the rootfs snapshot.
    pub chain_id: String,
    pub config: ImageConfiguration,
}

/// Everything a controller needs to make one sandbox.
#[derive(Clone)]
pub struct CreateSandbox {
    pub id: SandboxId,
    pub config: PodSandboxConfig,
    /// The pinned network namespace; `None` with host networking.
    pub netns_path: Option<PathBuf>,
    pub image: SandboxImage,
    /// containerd runtime name (`io.containerd.runc.v2`) and options.
    pub runtime: RuntimeInfo,
    /// The runtime's `runtime_path`, for the task; empty for none.
    pub runtime_path: String,
    pub snapshotter: String,
    /// Config keys that shape the spec.
    pub spec_options: RuntimeOptions,
    /// The labels of the sandbox's containerd container.
    pub labels: HashMap<String, String>,
    pub metadata: MetadataExtension,
}

impl fmt::Debug for CreateSandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateSandbox")
            .field("id", &self.id)
            .field("netns_path", &self.netns_path)
            .field("image", &self.image.name)
            .field("runtime", &self.runtime.name)
            .field("snapshotter", &self.snapshotter)
            .finish_non_exhaustive()
    }
}

/// A started sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxInstance {
    pub id: SandboxId,
    /// The pause process.
    pub pid: u32,
    pub created_at: SystemTime,
    /// `oci_runtime_type` and `selinux_label`, as containerd's controller.
    pub labels: HashMap<String, String>,
}

/// What the controller knows about a sandbox right now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ControllerStatus {
    pub pid: u32,
    /// containerd's process status of the sandbox task (`running`,
    /// `created`, `stopped`, `paused`, `pausing`, `unknown`), or `deleted`
    /// when there is no task.
    pub process_status: String,
    /// The sandbox's containerd container, with `verbose` only.
    pub container: Option<ContainerRecord>,
}

/// Told by `create` once the sandbox's record exists (before its task is
/// created), so that [`SandboxController::update_metadata`] can be sent
/// while the rest of `create` runs. Dropped unsent when `create` fails
/// first.
pub type RecordMade = tokio::sync::oneshot::Sender<()>;

/// Runs pod sandboxes. Each method names the sandbox by id; `create` must
/// come before `start`. `shutdown` also removes a sandbox created and not
/// started.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SandboxController: Send + Sync {
    /// Makes the sandbox, ready to start (the pause container: files,
    /// rootfs, container record and task, not started), telling
    /// `record_made` once the record exists. On failure everything it made
    /// is removed again before the error is returned.
    async fn create(
        &self,
        request: CreateSandbox,
        record_made: RecordMade,
    ) -> Result<(), ControllerError>;
    /// Starts the created sandbox. On failure everything `create` made is
    /// removed again before the error is returned.
    async fn start(&self, id: &SandboxId) -> Result<SandboxInstance, ControllerError>;
    /// Rewrites the sandbox metadata extension of the sandbox's record
    /// with `metadata` (called with the process label `create` gave it),
    /// leaving the rest of the record as it is: the metadata once the pod
    /// network is known, written before `start` so that a running
    /// sandbox's record always has it. May be called from the moment
    /// `create` told `record_made`, while `create` still runs.
    async fn update_metadata(
        &self,
        id: &SandboxId,
        metadata: MetadataExtension,
    ) -> Result<(), ControllerError>;
    /// The platform the sandbox's containers are built for.
    async fn platform(&self, id: &SandboxId) -> Result<Platform, ControllerError>;
    /// Stops the sandbox (its process); idempotent.
    async fn stop(&self, id: &SandboxId, timeout: Duration) -> Result<(), ControllerError>;
    /// Waits until the sandbox exits, and reaps what it leaves behind.
    async fn wait(&self, id: &SandboxId) -> Result<ExitStatus, ControllerError>;
    async fn status(
        &self,
        id: &SandboxId,
        verbose: bool,
    ) -> Result<ControllerStatus, ControllerError>;
    /// Removes everything of the sandbox; idempotent.
    async fn shutdown(&self, id: &SandboxId) -> Result<(), ControllerError>;
    /// The sandbox's resource metrics, if it has a task.
    async fn metrics(&self, id: &SandboxId) -> Result<Option<TaskMetric>, ControllerError>;
}
