//! The tonic services. These files only convert between tonic requests and
//! the handler functions of the services, each in one RPC span, and map
//! the services' errors to gRPC statuses (`crate::status`).

mod encoded;
mod image;
mod runtime;
mod stats;

#[cfg(test)]
mod read_rpc_tests;

use std::sync::{Arc, Weak};

use cri_api::containerd::Containerd;

use crate::container::{ContainerHost, ContainerService};
use crate::sandbox::{PodEvents, SandboxLookup, SandboxManager, SandboxService};
use cri_config::Config;
use cri_image::ImageManager;

pub use encoded::EncodedLists;
pub use image::CriImageService;
pub use runtime::CriRuntimeService;
pub use stats::StatsRequestError;

/// What the tonic services hold: the sandbox, container and image
/// services side by side, and what serves them all. This is the only
/// place that holds both sandbox and container state; neither service
/// holds this.
#[derive(Debug)]
pub struct ServerState {
    pub config: Arc<Config>,
    pub containerd: Containerd,
    /// The image store, puller and image RPC logic.
    pub images: Arc<ImageManager>,
    /// The sandbox RPCs' state (store, names, controllers, netns, CNI).
    pub sandboxes: Arc<SandboxService>,
    /// The container RPCs' state (store with runtime handles, names,
    /// events, OS seams); sees sandboxes through `SandboxLookup`.
    pub containers: Arc<ContainerService>,
    /// The daemon's Prometheus instruments.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Container and pod stats (cgroups, netns, writable layers).
    pub stats: Arc<cri_stats::StatsCollector>,
    /// The exec/attach/port-forward streaming server, once started
    /// (`crate::streaming_runtime::start_streaming`). Its runtime holds the
    /// two services, not this, so nothing here refers back to itself.
    pub streaming: std::sync::OnceLock<cri_streaming::StreamingServer>,
}

/// What [`ServerState::new`] assembles the services from.
#[derive(Debug)]
pub struct ServerParts {
    pub config: Arc<Config>,
    pub containerd: Containerd,
    pub images: Arc<ImageManager>,
    pub sandbox_manager: SandboxManager,
    pub container_host: ContainerHost,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub stats: Arc<cri_stats::StatsCollector>,
}

impl ServerState {
    /// The services over empty stores (recovery fills them).
    pub fn new(parts: ServerParts) -> Arc<Self> {
        let ServerParts {
            config,
            containerd,
            images,
            sandbox_manager,
            container_host,
            metrics,
            stats,
        } = parts;
        let sandboxes = Arc::new(SandboxService {
            config: Arc::clone(&config),
            images: Arc::clone(&images),
            store: Arc::default(),
            names: Default::default(),
            manager: Arc::new(sandbox_manager),
            metrics: Arc::clone(&metrics),
            stats: Arc::clone(&stats),
            list_cache: Default::default(),
            pod_events: Default::default(),
        });
        let containers = Arc::new(ContainerService {
            config: Arc::clone(&config),
            containerd: containerd.clone(),
            images: Arc::clone(&images),
            store: Arc::default(),
            names: Default::default(),
            events: Default::default(),
            host: container_host,
            metrics: Arc::clone(&metrics),
            stats: Arc::clone(&stats),
            user_dbs: Default::default(),
            sandbox_runtimes: Default::default(),
            sandboxes: Arc::clone(&sandboxes) as Arc<dyn SandboxLookup>,
            list_cache: Default::default(),
        });
        let pod_events = Arc::downgrade(&containers) as Weak<dyn PodEvents>;
        if sandboxes.pod_events.set(pod_events).is_err() {
            unreachable!("a new sandbox service has no pod event sink yet");
        }
        Arc::new(Self {
            config,
            containerd,
            images,
            sandboxes,
            containers,
            metrics,
            stats,
            streaming: Default::default(),
        })
    }

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
                    async move { Err(crate::status::not_implemented($rpc)) },
                    span,
                ))
            }
        )*
    };
}
pub(crate) use not_implemented;
