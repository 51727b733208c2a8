//! Errors of the metadata codecs and the status checkpoint files.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Which record a codec error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// The `io.cri-containerd.container.metadata` extension.
    ContainerMetadata,
    /// The `io.cri-containerd.sandbox.metadata` extension.
    SandboxMetadata,
    /// The `status` checkpoint of a container.
    ContainerStatus,
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecordKind::ContainerMetadata => "container metadata",
            RecordKind::SandboxMetadata => "sandbox metadata",
            RecordKind::ContainerStatus => "container status",
        })
    }
}

/// Why metadata or a status checkpoint could not be encoded, decoded,
/// written, read or deleted. `id` is the container or sandbox id.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("{kind} of {id} has type url {found:?}, want {expected:?}")]
    TypeUrl {
        kind: RecordKind,
        id: String,
        expected: &'static str,
        found: String,
    },
    #[error("{kind} of {id} has unsupported version {version:?}, want \"v1\"")]
    UnsupportedVersion {
        kind: RecordKind,
        id: String,
        version: String,
    },
    #[error("decode {kind} of {id}")]
    Decode {
        kind: RecordKind,
        id: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("encode {kind} of {id}")]
    Encode {
        kind: RecordKind,
        id: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("status checkpoint {} does not exist", path.display())]
    StatusNotFound { path: PathBuf },
    #[error("read status checkpoint {}", path.display())]
    ReadStatus {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("write status checkpoint {}", path.display())]
    WriteStatus {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("delete status checkpoint {}", path.display())]
    DeleteStatus {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Result of a metadata operation.
pub type Result<T, E = MetadataError> = std::result::Result<T, E>;
