//! Why collecting a container's or a pod's stats failed.

use std::path::PathBuf;

/// A failed cgroup, netns or snapshot read.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// The cgroup does not exist (the container is gone or never started).
    #[error("cgroup {} not found", path.display())]
    CgroupNotFound { path: PathBuf },
    /// A cgroup file could not be read.
    #[error("read cgroup file {}", path.display())]
    ReadCgroup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A cgroup file held something that is not a number where one belongs.
    #[error("parse cgroup file {}: unexpected value {value:?}", path.display())]
    ParseCgroup { path: PathBuf, value: String },
    /// A cgroups path that names no cgroup we can read.
    #[error("invalid cgroup path {path:?}: {reason}")]
    InvalidCgroupPath { path: String, reason: &'static str },
    /// The network namespace could not be opened or entered.
    #[error("enter network namespace {}", path.display())]
    EnterNetns {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The interface counters could not be read inside a network namespace.
    #[error("read interface counters in network namespace {}", path.display())]
    ReadNetDev {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The thread that reads network namespaces could not run.
    #[error("network stats thread: {0}")]
    NetnsThread(&'static str),
    /// The container has no task to measure (created, exited or unknown);
    /// containerd's plugin has no stats for it either.
    #[error("container {id} is not running: it has no task to measure")]
    ContainerNotRunning { id: String },
    /// The pod sandbox is stopped: its cgroup and netns are gone.
    #[error("pod sandbox {id} is not ready: it has nothing left to measure")]
    SandboxNotReady { id: String },
    /// A blocking read task was cancelled or panicked.
    #[error("stats collection task failed")]
    Collection,
}

impl StatsError {
    /// Whether the error means the object is gone, not that reading broke.
    pub fn is_not_found(&self) -> bool {
        match self {
            Self::CgroupNotFound { .. }
            | Self::ContainerNotRunning { .. }
            | Self::SandboxNotReady { .. } => true,
            Self::ReadCgroup { source, .. }
            | Self::EnterNetns { source, .. }
            | Self::ReadNetDev { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }
}

/// Results of stats collection.
pub type Result<T, E = StatsError> = std::result::Result<T, E>;
