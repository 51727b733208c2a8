//! The error every CRI handler returns; `status.rs` maps it to gRPC.

use cri_api::containerd::ContainerdError;

use crate::image::ImageError;

/// Why a CRI call failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// containerd answered with an error (or could not be reached).
    #[error(transparent)]
    Containerd(#[from] ContainerdError),
    /// The request is malformed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An image pull, lookup or removal failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The RPC is not served by this version of cri-server.
    #[error("{rpc} is not implemented by this version of cri-server")]
    NotImplemented { rpc: &'static str },
}

/// Result of a CRI handler.
pub type Result<T, E = ServerError> = std::result::Result<T, E>;
