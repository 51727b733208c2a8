//! [`ContainerError`]: why a container RPC failed; the tonic layer
//! (`status.rs`) picks its gRPC code.

use std::path::PathBuf;

use cri_api::containerd::ContainerdError;
use cri_api::rollback::UndoFailure;

use cri_image::ImageError;

/// Why a container RPC failed.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// containerd answered with an error (or could not be reached).
    #[error(transparent)]
    Containerd(#[from] ContainerdError),
    /// The request is malformed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An image pull, lookup or removal failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A container lookup or container name reservation failed.
    #[error(transparent)]
    ContainerStore(cri_store::StoreError),
    /// The container is not in a state the call can act on.
    #[error("container {id} is in {state} state: {reason}")]
    ContainerState {
        id: String,
        state: &'static str,
        reason: String,
    },
    /// The container's pod sandbox is not ready.
    #[error("sandbox {id} of the container is not ready")]
    ContainerSandboxNotReady { id: String },
    /// No runtime is configured for the sandbox's runtime handler.
    #[error("no runtime for handler {handler:?} is configured")]
    UnknownRuntimeHandler { handler: String },
    /// The OCI spec of a container could not be built.
    #[error("build spec of container {id}")]
    ContainerSpec {
        id: String,
        #[source]
        source: cri_spec::Error,
    },
    /// The stdio FIFOs or the log file of a container failed.
    #[error("io of container {id}")]
    ContainerIo {
        id: String,
        #[source]
        source: cri_io::Error,
    },
    /// A container metadata record or status checkpoint failed.
    #[error(transparent)]
    Metadata(#[from] cri_metadata::MetadataError),
    /// The OCI spec of a container could not be encoded or decoded.
    #[error("{op} the OCI spec of container {id}")]
    SpecJson {
        id: String,
        op: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// The image's `/etc/passwd` and `/etc/group` could not be read.
    #[error("read the user database of the image of container {id}")]
    ImageUserDb {
        id: String,
        #[source]
        source: std::io::Error,
    },
    /// A file or directory operation on the host failed.
    #[error("{op} {}", path.display())]
    HostPath {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// CreateContainer failed; what it had made was undone, except the
    /// undos listed.
    #[error("create container {id}{}", undo_suffix(undo_failures))]
    CreateContainer {
        id: String,
        #[source]
        source: Box<ContainerError>,
        undo_failures: Vec<UndoFailure>,
    },
    /// A container did not stop in time.
    #[error("container {id} did not stop within {timeout:?}")]
    StopTimeout {
        id: String,
        timeout: std::time::Duration,
    },
    /// The task running an RPC's work ended without an answer (it panicked).
    #[error("{rpc} did not complete: {message}")]
    TaskFailed { rpc: &'static str, message: String },
    /// The container's pod sandbox could not be asked (`crate::sandbox`).
    #[error(transparent)]
    Sandbox(Box<crate::sandbox::SandboxError>),
    /// An ExecSync command ran past its timeout and was killed.
    #[error("exec in container {id}: timeout {timeout:?} exceeded (stdout so far: {stdout:?}, stderr so far: {stderr:?})")]
    ExecTimeout {
        id: String,
        timeout: std::time::Duration,
        stdout: String,
        stderr: String,
    },
    /// An exec process exited but its output was still held open.
    #[error("drain io of exec {exec_id} in container {id}: still held by other processes after {timeout:?}")]
    ExecIoDrain {
        id: String,
        exec_id: String,
        timeout: std::time::Duration,
    },
}

/// The failed undos, for an error message.
fn undo_suffix(failures: &[UndoFailure]) -> String {
    if failures.is_empty() {
        return String::new();
    }
    let list: Vec<String> = failures.iter().map(ToString::to_string).collect();
    format!(" (cleanup failed: {})", list.join("; "))
}

/// Result of a container handler.
pub type Result<T, E = ContainerError> = std::result::Result<T, E>;

impl From<crate::sandbox::SandboxError> for ContainerError {
    fn from(e: crate::sandbox::SandboxError) -> Self {
        ContainerError::Sandbox(Box::new(e))
    }
}
