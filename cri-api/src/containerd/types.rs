//! Plain records exchanged over the containerd seam. They mirror
//! containerd's objects without tying callers to its generated proto types.

use std::collections::HashMap;
use std::time::SystemTime;

pub use prost_types::Any;

/// An OCI content descriptor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    pub annotations: HashMap<String, String>,
}

/// A mount as containerd hands it to a runtime (`type`, `source`, options).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mount {
    pub kind: String,
    pub source: String,
    pub target: String,
    pub options: Vec<String>,
}

/// The runtime a container runs with (`io.containerd.runc.v2` and its
/// options, e.g. `containerd.runc.v1.Options`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuntimeInfo {
    pub name: String,
    pub options: Option<Any>,
}

/// A containerd container record.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerRecord {
    pub id: String,
    pub labels: HashMap<String, String>,
    pub image: String,
    pub runtime: RuntimeInfo,
    pub spec: Option<Any>,
    pub snapshotter: String,
    pub snapshot_key: String,
    pub extensions: HashMap<String, Any>,
    pub sandbox: String,
    pub created_at: Option<SystemTime>,
    pub updated_at: Option<SystemTime>,
}

/// A containerd image record: a name pointing at a manifest or index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageRecord {
    pub name: String,
    pub labels: HashMap<String, String>,
    pub target: Descriptor,
    pub created_at: Option<SystemTime>,
    pub updated_at: Option<SystemTime>,
}

/// What the content store knows of a blob.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContentInfo {
    pub digest: String,
    pub size: i64,
    pub labels: HashMap<String, String>,
    pub created_at: Option<SystemTime>,
    pub updated_at: Option<SystemTime>,
}

/// The kind of a snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SnapshotKind {
    #[default]
    Unknown,
    View,
    Active,
    Committed,
}

/// What a snapshotter knows of a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub name: String,
    pub parent: String,
    pub kind: SnapshotKind,
    pub labels: HashMap<String, String>,
}

/// Disk usage of a snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotUsage {
    pub size: i64,
    pub inodes: i64,
}

/// The state of a task or process as containerd reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TaskStatus {
    #[default]
    Unknown,
    Created,
    Running,
    Stopped,
    Paused,
    Pausing,
}

/// A task (the container's init process) or an exec process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskInfo {
    pub id: String,
    pub container_id: String,
    pub pid: u32,
    pub status: TaskStatus,
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
    pub exit_status: u32,
    pub exited_at: Option<SystemTime>,
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitStatus {
    pub code: u32,
    pub exited_at: Option<SystemTime>,
}

/// Everything needed to create a task for a container.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CreateTask {
    pub container_id: String,
    pub rootfs: Vec<Mount>,
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
    pub options: Option<Any>,
    /// The shim binary to start instead of the one containerd finds by the
    /// runtime's name (the runtime's `runtime_path`); empty for the lookup.
    pub runtime_path: String,
}

/// Everything needed to start an extra process in a running task.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExecProcess {
    pub container_id: String,
    pub exec_id: String,
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
    /// The OCI process spec, as an `Any`.
    pub spec: Option<Any>,
}

/// Task metrics as containerd returns them (cgroup v1 or v2 payload).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskMetric {
    pub id: String,
    pub timestamp: Option<SystemTime>,
    pub data: Option<Any>,
}

/// One event from containerd's event stream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Envelope {
    pub timestamp: Option<SystemTime>,
    pub namespace: String,
    pub topic: String,
    pub event: Option<Any>,
}

/// containerd's version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionInfo {
    pub version: String,
    pub revision: String,
}

/// One plugin as the introspection service lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PluginInfo {
    pub kind: String,
    pub id: String,
    pub requires: Vec<String>,
    pub capabilities: Vec<String>,
    /// Set when the plugin failed to initialise.
    pub init_error: Option<String>,
    /// What the plugin exports, e.g. a snapshotter's `root` directory.
    pub exports: HashMap<String, String>,
}

/// A lease that keeps content and snapshots from garbage collection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lease {
    pub id: String,
    pub labels: HashMap<String, String>,
}

/// A resource held by a lease (`kind` is e.g. `content`, or
/// `snapshots/overlayfs`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseResource {
    pub id: String,
    pub kind: String,
}
