//! [`SandboxError`]: why a pod sandbox RPC failed, naming the sandbox and
//! the failed step. `status.rs` picks the gRPC code.

use cri_api::rollback::UndoFailure;
use cri_sandbox::cni::{CniError, TemplateError};
use cri_sandbox::controller::ControllerError;
use cri_sandbox::files::FilesError;
use cri_sandbox::netns::NetnsError;

use cri_image::ImageError;
use cri_metadata::MetadataError;

/// Why a sandbox RPC failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("sandbox config must include metadata")]
    MissingMetadata,
    #[error("failed to reserve sandbox name {name:?}: name {name:?} is reserved for {owner:?}")]
    NameReserved { name: String, owner: String },
    #[error("no runtime for {handler:?} is configured")]
    UnknownRuntimeHandler { handler: String },
    #[error("runtime {handler:?} uses sandbox mode {mode:?}, which this version does not serve")]
    UnsupportedSandboxMode { handler: String, mode: String },
    #[error("an error occurred when try to find sandbox {id:?}: not found")]
    NotFound { id: String },
    #[error("sandbox id prefix {prefix:?} is ambiguous")]
    Ambiguous { prefix: String },
    #[error("failed to get sandbox image {image:?}")]
    SandboxImage {
        image: String,
        #[source]
        source: ImageError,
    },
    #[error("encode runtime options of runtime {handler:?}: {message}")]
    RuntimeOptions { handler: String, message: String },
    #[error("network namespace for sandbox {id}")]
    Netns {
        id: String,
        #[source]
        source: NetnsError,
    },
    #[error("failed to setup network for sandbox {id}")]
    NetworkSetup {
        id: String,
        #[source]
        source: CniError,
    },
    #[error("failed to find network info for sandbox {id}")]
    NoPodIp { id: String },
    #[error("failed to destroy network for sandbox {id}")]
    NetworkTeardown {
        id: String,
        #[source]
        source: CniError,
    },
    #[error("sandbox network namespace {path:?} is not fully closed")]
    NetnsNotClosed { path: String },
    #[error("sandbox {id}")]
    Controller {
        id: String,
        #[source]
        source: ControllerError,
    },
    #[error("sandbox files of {id}")]
    Files {
        id: String,
        #[source]
        source: FilesError,
    },
    #[error("sandbox metadata of {id}")]
    Metadata {
        id: String,
        #[source]
        source: MetadataError,
    },
    #[error("failed to stop container {container_id:?} of sandbox {id}")]
    StopContainer {
        id: String,
        container_id: String,
        #[source]
        source: super::PodContainerError,
    },
    #[error("failed to remove container {container_id:?} of sandbox {id}")]
    RemoveContainer {
        id: String,
        container_id: String,
        #[source]
        source: super::PodContainerError,
    },
    /// Connecting to or copying from a port in the pod failed.
    #[error("forward port {port} of sandbox {sandbox_id}")]
    PortForward {
        sandbox_id: String,
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("add sandbox {id} to the store: {message}")]
    Store { id: String, message: String },
    #[error("encode the verbose info of sandbox {id}: {message}")]
    VerboseInfo { id: String, message: String },
    #[error("generate cni config from the template")]
    ConfTemplate(#[source] TemplateError),
    #[error("{what} did not finish")]
    Aborted { what: String },
    /// A step failed, and undoing the steps before it also failed; the
    /// sandbox is kept (state unknown) for RemovePodSandbox to retry.
    #[error("{source} (undo also failed: {})", undo.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    WithUndo {
        #[source]
        source: Box<SandboxError>,
        undo: Vec<UndoFailure>,
    },
}

impl SandboxError {
    /// The error without the undo failures attached to it.
    pub fn root(&self) -> &SandboxError {
        match self {
            Self::WithUndo { source, .. } => source.root(),
            other => other,
        }
    }
}
