//! [`ControllerError`]: why a sandbox controller call failed, naming the
//! sandbox and the failed step.

use cri_api::containerd::ContainerdError;
use cri_api::ids::SandboxId;
use cri_api::rollback::UndoFailure;

use crate::files::FilesError;

/// Why a sandbox controller call failed.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("sandbox {id} was not created before start")]
    NotCreated { id: SandboxId },
    #[error("{op} for sandbox {id}")]
    Containerd {
        op: &'static str,
        id: SandboxId,
        #[source]
        source: ContainerdError,
    },
    #[error("sandbox files of {id}")]
    Files {
        id: SandboxId,
        #[source]
        source: FilesError,
    },
    #[error("generate the pause container spec of sandbox {id}")]
    Spec {
        id: SandboxId,
        #[source]
        source: cri_spec::Error,
    },
    #[error("read the user database of the sandbox image for {id}")]
    UserDb {
        id: SandboxId,
        #[source]
        source: std::io::Error,
    },
    #[error("encode the {what} of sandbox {id}: {message}")]
    Encode {
        id: SandboxId,
        what: &'static str,
        message: String,
    },
    #[error("a blocking step for sandbox {id} did not finish")]
    Blocking { id: SandboxId },
    /// A step failed, and undoing the steps before it also failed.
    #[error("{source} (undo also failed: {})", undo.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    WithUndo {
        #[source]
        source: Box<ControllerError>,
        undo: Vec<UndoFailure>,
    },
}

impl ControllerError {
    /// The containerd error behind this one, if any.
    pub fn containerd(&self) -> Option<&ContainerdError> {
        match self {
            Self::Containerd { source, .. } => Some(source),
            Self::WithUndo { source, .. } => source.containerd(),
            _ => None,
        }
    }

    /// Whether containerd said the object was missing.
    pub fn is_not_found(&self) -> bool {
        self.containerd().is_some_and(ContainerdError::is_not_found)
    }

    /// The error without the undo failures attached to it.
    pub fn root(&self) -> &ControllerError {
        match self {
            Self::WithUndo { source, .. } => source.root(),
            other => other,
        }
    }

    pub(crate) fn containerd_op(
        op: &'static str,
        id: &SandboxId,
    ) -> impl FnOnce(ContainerdError) -> Self {
        let id = id.clone();
        move |source| Self::Containerd { op, id, source }
    }
}
