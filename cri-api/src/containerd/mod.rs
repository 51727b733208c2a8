//! The containerd seam: one trait per containerd v1 service the runtime
//! uses, shaped around what the CRI needs rather than around the protos.
//!
//! Only the v1 services that containerd 1.6, 1.7 and 2.x all serve are
//! used (no Sandbox, no Transfer). The real implementation lives in
//! `cri-server::containerd`; with the `mocks` feature every trait gets a
//! mockall `Mock*` twin for unit tests. Implementations carry the
//! containerd namespace (`k8s.io` by default) themselves.

mod armed;
mod error;
mod types;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

pub use armed::ArmedWait;
pub use error::{ContainerdError, Result};
pub use types::*;

/// containerd's container metadata service.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Containers: Send + Sync {
    async fn get(&self, id: &str) -> Result<ContainerRecord>;
    /// Lists containers matching any of containerd's filter strings
    /// (e.g. `labels."io.cri-containerd.kind"=="sandbox"`).
    async fn list(&self, filters: Vec<String>) -> Result<Vec<ContainerRecord>>;
    async fn create(&self, record: ContainerRecord) -> Result<ContainerRecord>;
    /// Updates the record; an empty `fieldpaths` replaces it wholesale.
    async fn update(
        &self,
        record: ContainerRecord,
        fieldpaths: Vec<String>,
    ) -> Result<ContainerRecord>;
    async fn delete(&self, id: &str) -> Result<()>;
}

/// containerd's task service: processes of containers.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Tasks: Send + Sync {
    /// Creates the task and returns its pid.
    async fn create(&self, task: CreateTask) -> Result<u32>;
    /// Starts the task (`exec_id` empty) or an exec process; returns its pid.
    async fn start(&self, container_id: &str, exec_id: &str) -> Result<u32>;
    async fn get(&self, container_id: &str, exec_id: &str) -> Result<TaskInfo>;
    async fn list(&self) -> Result<Vec<TaskInfo>>;
    /// Deletes the task (`exec_id` empty) or an exec process.
    async fn delete(&self, container_id: &str, exec_id: &str) -> Result<ExitStatus>;
    async fn kill(&self, container_id: &str, exec_id: &str, signal: u32, all: bool) -> Result<()>;
    /// Waits until the process exits.
    async fn wait(&self, container_id: &str, exec_id: &str) -> Result<ExitStatus>;
    async fn exec(&self, process: ExecProcess) -> Result<()>;
    async fn resize_pty(
        &self,
        container_id: &str,
        exec_id: &str,
        width: u32,
        height: u32,
    ) -> Result<()>;
    async fn close_io(&self, container_id: &str, exec_id: &str) -> Result<()>;
    async fn metrics(&self, container_ids: Vec<String>) -> Result<Vec<TaskMetric>>;
    async fn pids(&self, container_id: &str) -> Result<Vec<u32>>;
    async fn update(&self, container_id: &str, resources: Any) -> Result<()>;
}

/// containerd's content store.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Content: Send + Sync {
    async fn info(&self, digest: &str) -> Result<ContentInfo>;
    async fn list(&self, filters: Vec<String>) -> Result<Vec<ContentInfo>>;
    /// Replaces the labels named in `fieldpaths` (`labels.<key>`), or all.
    async fn update(&self, info: ContentInfo, fieldpaths: Vec<String>) -> Result<ContentInfo>;
    /// Reads `size` bytes from `offset` (size 0 = to the end).
    async fn read(&self, digest: &str, offset: i64, size: i64) -> Result<Bytes>;
    /// Writes a blob under the ingest `reference`, verifies it against
    /// `expected` and commits it with `labels`; under `lease` if given.
    async fn write(
        &self,
        reference: &str,
        expected: Descriptor,
        labels: HashMap<String, String>,
        data: BoxStream<'static, std::io::Result<Bytes>>,
        lease: Option<String>,
    ) -> Result<()>;
    async fn delete(&self, digest: &str) -> Result<()>;
}

/// containerd's image metadata service.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Images: Send + Sync {
    async fn get(&self, name: &str) -> Result<ImageRecord>;
    async fn list(&self, filters: Vec<String>) -> Result<Vec<ImageRecord>>;
    async fn create(&self, image: ImageRecord) -> Result<ImageRecord>;
    async fn update(&self, image: ImageRecord, fieldpaths: Vec<String>) -> Result<ImageRecord>;
    /// Deletes the record; `sync` waits for garbage collection.
    async fn delete(&self, name: &str, sync: bool) -> Result<()>;
}

/// containerd's snapshot service, for one snapshotter at a time.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Snapshots: Send + Sync {
    async fn prepare(
        &self,
        snapshotter: &str,
        key: &str,
        parent: &str,
        labels: HashMap<String, String>,
        lease: Option<String>,
    ) -> Result<Vec<Mount>>;
    async fn view(
        &self,
        snapshotter: &str,
        key: &str,
        parent: &str,
        lease: Option<String>,
    ) -> Result<Vec<Mount>>;
    async fn mounts(&self, snapshotter: &str, key: &str) -> Result<Vec<Mount>>;
    async fn commit(
        &self,
        snapshotter: &str,
        name: &str,
        key: &str,
        labels: HashMap<String, String>,
        lease: Option<String>,
    ) -> Result<()>;
    async fn remove(&self, snapshotter: &str, key: &str) -> Result<()>;
    async fn stat(&self, snapshotter: &str, key: &str) -> Result<SnapshotInfo>;
    async fn usage(&self, snapshotter: &str, key: &str) -> Result<SnapshotUsage>;
    async fn list(&self, snapshotter: &str, filters: Vec<String>) -> Result<Vec<SnapshotInfo>>;
}

/// containerd's diff service: applies layers onto mounts.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Diff: Send + Sync {
    /// Applies the layer `diff` to `mounts`; returns the uncompressed
    /// layer's descriptor (its digest is the diff id).
    async fn apply(&self, diff: Descriptor, mounts: Vec<Mount>) -> Result<Descriptor>;
}

/// containerd's lease service.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Leases: Send + Sync {
    async fn create(&self, id: &str, labels: HashMap<String, String>) -> Result<Lease>;
    async fn delete(&self, id: &str, sync: bool) -> Result<()>;
    async fn list(&self, filters: Vec<String>) -> Result<Vec<Lease>>;
    async fn add_resource(&self, lease: &str, resource: LeaseResource) -> Result<()>;
    async fn delete_resource(&self, lease: &str, resource: LeaseResource) -> Result<()>;
}

/// containerd's event service.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Events: Send + Sync {
    /// Subscribes with containerd filter strings (e.g. `topic=="/tasks/oom"`).
    /// On containerd 1.6 the call itself returns only once the first event
    /// arrives, so callers run it in a task of its own.
    async fn subscribe(&self, filters: Vec<String>)
        -> Result<BoxStream<'static, Result<Envelope>>>;
    /// Publishes `event` on `topic` in the client's namespace.
    async fn publish(&self, topic: &str, event: Any) -> Result<()>;
}

/// containerd's namespace service.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Namespaces: Send + Sync {
    /// Creates the namespace unless it exists.
    async fn ensure(&self, name: &str, labels: HashMap<String, String>) -> Result<()>;
    async fn list(&self) -> Result<Vec<String>>;
}

/// containerd's version service.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Version: Send + Sync {
    async fn version(&self) -> Result<VersionInfo>;
}

/// containerd's introspection service.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Introspection: Send + Sync {
    async fn plugins(&self, filters: Vec<String>) -> Result<Vec<PluginInfo>>;
    /// The daemon's UUID.
    async fn server_uuid(&self) -> Result<String>;
}

/// Every containerd service, held as trait objects. Cheap to clone.
#[derive(Clone)]
pub struct Containerd {
    pub containers: Arc<dyn Containers>,
    pub tasks: Arc<dyn Tasks>,
    pub content: Arc<dyn Content>,
    pub images: Arc<dyn Images>,
    pub snapshots: Arc<dyn Snapshots>,
    pub diff: Arc<dyn Diff>,
    pub leases: Arc<dyn Leases>,
    pub events: Arc<dyn Events>,
    pub namespaces: Arc<dyn Namespaces>,
    pub version: Arc<dyn Version>,
    pub introspection: Arc<dyn Introspection>,
}

impl std::fmt::Debug for Containerd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Containerd").finish_non_exhaustive()
    }
}

/// One mock per service, for unit tests: set expectations on the fields,
/// then [`MockServices::build`] the facade. A call without an expectation
/// panics, so a test also proves which services were not touched.
#[cfg(any(test, feature = "mocks"))]
#[derive(Default)]
pub struct MockServices {
    pub containers: MockContainers,
    pub tasks: MockTasks,
    pub content: MockContent,
    pub images: MockImages,
    pub snapshots: MockSnapshots,
    pub diff: MockDiff,
    pub leases: MockLeases,
    pub events: MockEvents,
    pub namespaces: MockNamespaces,
    pub version: MockVersion,
    pub introspection: MockIntrospection,
}

#[cfg(any(test, feature = "mocks"))]
impl MockServices {
    /// The facade over these mocks.
    pub fn build(self) -> Containerd {
        Containerd {
            containers: Arc::new(self.containers),
            tasks: Arc::new(self.tasks),
            content: Arc::new(self.content),
            images: Arc::new(self.images),
            snapshots: Arc::new(self.snapshots),
            diff: Arc::new(self.diff),
            leases: Arc::new(self.leases),
            events: Arc::new(self.events),
            namespaces: Arc::new(self.namespaces),
            version: Arc::new(self.version),
            introspection: Arc::new(self.introspection),
        }
    }
}
