//! Why an image operation failed; `status.rs` maps each variant to a gRPC code.

use std::sync::Arc;
use std::time::Duration;

use cri_api::containerd::ContainerdError;

/// An image pull, lookup, removal or load failure. Messages name the
/// reference and the registry host involved, never credentials.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The reference does not parse.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    /// No such image locally.
    #[error("image {reference} not found")]
    NotFound { reference: String },
    /// An id prefix that matches more than one image.
    #[error("image id prefix {prefix} matches more than one image")]
    Ambiguous { prefix: String },
    /// Every host answered 404 for the manifest.
    #[error("pull {reference}: not found (tried {hosts})")]
    RemoteNotFound { reference: String, hosts: String },
    /// The registry refused the credentials (or wants some).
    #[error("pull {reference}: registry {registry} refused authorization: {message}")]
    Unauthorized {
        reference: String,
        registry: String,
        message: String,
    },
    /// The host could not be reached or the connection broke.
    #[error("pull {reference}: registry host {host}: {message}")]
    Network {
        reference: String,
        host: String,
        message: String,
    },
    /// The host answered with an error status or a broken reply.
    #[error("pull {reference}: registry host {host} answered: {message}")]
    Registry {
        reference: String,
        host: String,
        message: String,
    },
    /// Nothing was received for `timeout` while requests were open.
    #[error(
        "pull {reference}: cancelled, no progress for {timeout:?} (image_pull_progress_timeout)"
    )]
    ProgressTimeout {
        reference: String,
        timeout: Duration,
    },
    /// A blob that is not what its descriptor or the image says.
    #[error("pull {reference}: {digest}: {message}")]
    BadContent {
        reference: String,
        digest: String,
        message: String,
    },
    /// An index without a manifest for this node.
    #[error("pull {reference}: index {digest} has no manifest for platform {platform}")]
    NoMatchingPlatform {
        reference: String,
        digest: String,
        platform: String,
    },
    /// A manifest or layer kind this runtime does not handle.
    #[error("pull {reference}: unsupported media type {media_type}")]
    UnsupportedMediaType {
        reference: String,
        media_type: String,
    },
    /// The registry configuration or the credentials cannot be used.
    #[error("pull {reference}: registry configuration: {message}")]
    Config { reference: String, message: String },
    /// containerd failed.
    #[error("{op} {what}")]
    Containerd {
        op: &'static str,
        what: String,
        #[source]
        source: ContainerdError,
    },
    /// The outcome of a pull shared with concurrent callers.
    #[error(transparent)]
    Shared(Arc<ImageError>),
    /// The pull task ended abnormally.
    #[error("pull {reference}: pull task failed: {message}")]
    Task { reference: String, message: String },
}

impl ImageError {
    /// Wraps a containerd failure of `op` on `what`.
    pub fn containerd(
        op: &'static str,
        what: impl Into<String>,
    ) -> impl FnOnce(ContainerdError) -> Self {
        let what = what.into();
        move |source| ImageError::Containerd { op, what, source }
    }

    /// The error itself, looking through [`ImageError::Shared`].
    pub fn root(&self) -> &ImageError {
        match self {
            ImageError::Shared(inner) => inner.root(),
            other => other,
        }
    }

    /// Whether containerd could not be reached.
    pub fn is_unavailable(&self) -> bool {
        matches!(self.root(), ImageError::Containerd { source, .. } if source.is_unavailable())
    }
}

/// Result of an image operation.
pub type Result<T, E = ImageError> = std::result::Result<T, E>;
