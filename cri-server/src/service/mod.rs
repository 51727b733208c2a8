//! The tonic services. These files only convert between tonic requests and
//! the handler functions elsewhere in the crate, each in one RPC span.

mod image;
mod runtime;

use std::sync::Arc;

use cri_api::containerd::Containerd;

use crate::config::Config;
use crate::image::ImageManager;

pub use image::CriImageService;
pub use runtime::CriRuntimeService;

/// What every handler shares: the effective config and containerd.
#[derive(Debug)]
pub struct ServerState {
    pub config: Arc<Config>,
    pub containerd: Containerd,
    /// The image store, puller and image RPC logic.
    pub images: Arc<ImageManager>,
}

impl ServerState {
    /// The containerd socket, for error messages.
    pub fn containerd_address(&self) -> String {
        self.config.server.containerd_address.display().to_string()
    }
}

/// Answers an RPC that a later version will serve. Expands to the
/// signature `#[async_trait]` gives trait methods, since the attribute does
/// not see inside macro invocations.
macro_rules! not_implemented {
    ($($method:ident($req:ty) -> $resp:ty = $rpc:literal;)*) => {
        $(
            fn $method<'life0, 'async_trait>(
                &'life0 self,
                _request: tonic::Request<$req>,
            ) -> std::pin::Pin<Box<dyn std::future::Future<
                Output = Result<tonic::Response<$resp>, tonic::Status>,
            > + Send + 'async_trait>>
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                let span = tracing::info_span!("rpc", rpc = $rpc);
                Box::pin(tracing::Instrument::instrument(
                    async move { Err(crate::error::ServerError::NotImplemented { rpc: $rpc }.into()) },
                    span,
                ))
            }
        )*
    };
}
pub(crate) use not_implemented;
