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
    /// Pod sandboxes by id: metadata (config, netns path, IPs, runtime
    /// handler) and status (READY/NOTREADY, pause pid, creation time).
    pub sandboxes: Arc<cri_store::sandbox::SandboxStore>,
    /// Sandbox names (`name_namespace_uid_attempt`) reserved to their ids.
    pub sandbox_names: cri_store::name_index::NameIndex,
    /// Sandbox controllers, netns, CNI and the sandbox files.
    pub sandbox: Arc<crate::sandbox::SandboxManager>,
    /// App containers by id: metadata and status (checkpointed on disk).
    pub containers: Arc<cri_store::container::ContainerStore>,
    /// Container names (`ctr_pod_namespace_uid_attempt`) reserved to their ids.
    pub container_names: cri_store::name_index::NameIndex,
    /// Per-container runtime handles: IO, snapshotter, stop notification.
    pub live_containers: Arc<crate::container::LiveContainers>,
    /// CRI container events for GetContainerEvents subscribers.
    pub container_events: crate::container::ContainerEvents,
    /// The OS seams of the container RPCs (spec host, SELinux, user db, ids).
    pub container_host: crate::container::ContainerHost,
    /// The daemon's Prometheus instruments (RPC latencies, container
    /// create, image pulls, CNI).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Container and pod stats (cgroups, netns, writable layers).
    pub stats: Arc<crate::stats::StatsCollector>,
    /// The exec/attach/port-forward streaming server, once started
    /// (`crate::streaming_runtime::start_streaming`).
    pub streaming: std::sync::OnceLock<cri_streaming::StreamingServer>,
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
