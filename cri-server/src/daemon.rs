//! The daemon: connect to containerd, bind the CRI socket, serve
//! `RuntimeService` and `ImageService` until SIGTERM/SIGINT.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use cri_api::containerd::ContainerdError;
use cri_api::v1::image_service_server::ImageServiceServer;
use cri_api::v1::runtime_service_server::RuntimeServiceServer;
use cri_store::image::ImageStore;
use h2_authority::AuthorityShim;
use tokio_stream::wrappers::UnixListenerStream;

use crate::metrics::{self, Metrics, MetricsError};
use crate::passthrough::{Forwarder, PassthroughLayer};
use crate::preflight::{self, ContainerdProbe, Report};
use crate::service::{CriImageService, CriRuntimeService, EncodedLists, ServerParts, ServerState};
use crate::socket::{BoundSocket, SocketError};
use cri_config::Config;
use cri_containerd as containerd;
use cri_image::{ImageManager, ImageSettings};

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Socket(#[from] SocketError),
    #[error("set up containerd client for {address}")]
    Containerd {
        address: String,
        #[source]
        source: ContainerdError,
    },
    #[error("create directory {path}")]
    CreateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("set up pod networking")]
    Sandbox(#[source] cri_sandbox::cni::CniError),
    #[error("install signal handler")]
    Signal(#[source] std::io::Error),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error("start the streaming server")]
    Streaming(#[source] cri_streaming::StreamingError),
    #[error("serve cri")]
    Serve(#[source] tonic::transport::Error),
    #[error("registry configuration")]
    Registry(#[source] cri_image::hosts::HostsError),
    #[error("preflight failed:\n{0}")]
    Preflight(Report),
}

/// Runs the daemon until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), DaemonError> {
    let config = Arc::new(config);
    let server = &config.server;
    // Locks on the root and state dirs (held until we return), dirs, CNI.
    let (_locks, report) = preflight::local_checks(&config);
    report.log();
    if report.failed() {
        return Err(DaemonError::Preflight(report.failures()));
    }
    for dir in [&server.root_dir, &server.state_dir] {
        std::fs::create_dir_all(dir).map_err(|source| DaemonError::CreateDir {
            path: dir.display().to_string(),
            source,
        })?;
    }

    let containerd =
        containerd::connect_lazy(&server.containerd_address, &server.containerd_namespace)
            .map_err(|source| DaemonError::Containerd {
                address: server.containerd_address.display().to_string(),
                source,
            })?;
    // containerd's checks now if it answers; else once it does, before
    // recovery touches anything.
    let containerd_checked = match preflight::check_containerd(
        &*containerd.version,
        &*containerd.introspection,
        &config,
    )
    .await
    {
        ContainerdProbe::Checked(checks) => {
            let report = Report { checks };
            report.log();
            if report.failed() {
                return Err(DaemonError::Preflight(report.failures()));
            }
            true
        }
        ContainerdProbe::Unreachable(e) => {
            tracing::warn!(error = %e, "containerd not reachable yet; its preflight checks run once it answers");
            false
        }
    };
    match containerd
        .namespaces
        .ensure(&server.containerd_namespace, HashMap::new())
        .await
    {
        Ok(()) => {
            tracing::info!(namespace = %server.containerd_namespace, "containerd namespace ready")
        }
        Err(e) => {
            tracing::warn!(error = %e, "containerd not reachable yet; serving and retrying on demand")
        }
    }

    // Registry settings the pull client cannot honour stop start-up here,
    // not a pull later.
    cri_image::hosts::check_supported(&config.cri.registry).map_err(DaemonError::Registry)?;
    let images = Arc::new(ImageManager::new(
        containerd.clone(),
        ImageSettings::from_config(&config.cri),
        Arc::new(ImageStore::default()),
    ));
    // The image store is loaded by recovery (retried while containerd is
    // down), before any RPC is served.
    let sandbox = crate::sandbox::SandboxManager::new(&config, containerd.clone())
        .map_err(DaemonError::Sandbox)?;
    let metrics = Arc::new(Metrics::new());
    images.set_metrics(Arc::clone(&metrics) as Arc<dyn cri_image::PullObserver>);
    let stats = cri_stats::StatsCollector::host(&config.cri.containerd_root_dir);
    // One usage pass for ImageFsInfo and the stats' writable layers.
    let layers = Arc::new(WritableLayers(Arc::clone(stats.fs_usage())));
    if images.set_active_usage_observer(layers).is_err() {
        tracing::warn!("writable layer usage already observed");
    }
    let stop_stats = tokio_util::sync::CancellationToken::new();
    let state = ServerState::new(ServerParts {
        config: config.clone(),
        containerd,
        images,
        sandbox_manager: sandbox,
        container_host: crate::container::ContainerHost::linux(&server.state_dir),
        metrics: Arc::clone(&metrics),
        stats,
    });
    crate::streaming_runtime::start_streaming(&state)
        .await
        .map_err(DaemonError::Streaming)?;
    crate::event_monitor::spawn_event_monitor(Arc::clone(&state));
    crate::containerd_watch::spawn_containerd_watch(Arc::clone(&state));
    metrics.set_object_counts({
        let (sandboxes, containers) = (
            Arc::clone(&state.sandboxes.store),
            Arc::clone(&state.containers.store),
        );
        move || metrics::count_objects(&sandboxes, &containers)
    });
    let stop_metrics = tokio_util::sync::CancellationToken::new();
    if let Some(address) = &server.metrics_address {
        let listener = metrics::bind(address).await?;
        tracing::info!(address = %address, "serving metrics on /v1/metrics");
        tokio::spawn(metrics::serve(
            listener,
            Arc::clone(&metrics),
            stop_metrics.clone(),
        ));
    }
    let (socket, listener) = BoundSocket::bind(&server.listen, server.socket_group.as_deref())?;
    tracing::info!(
        listen = %server.listen.display(),
        containerd = %server.containerd_address.display(),
        "serving CRI v1"
    );
    // Every RPC but Version answers Unavailable until the stores are
    // rebuilt from containerd (retried while containerd is down).
    let readiness = crate::recovery::Readiness::new();
    // A failed deferred preflight stops the daemon with its report.
    let fatal = tokio_util::sync::CancellationToken::new();
    let fatal_report = Arc::new(std::sync::OnceLock::new());
    tokio::spawn({
        let (state, readiness) = (Arc::clone(&state), readiness.clone());
        let (fatal, fatal_report) = (fatal.clone(), Arc::clone(&fatal_report));
        let stop_stats = stop_stats.clone();
        async move {
            if !containerd_checked {
                crate::systemd::notify_status("waiting for containerd");
                if let Err(report) =
                    preflight::wait_for_containerd(&state.containerd, &state.config).await
                {
                    let _ = fatal_report.set(report);
                    fatal.cancel();
                    return;
                }
            }
            crate::recovery::recover_then_serve(Arc::clone(&state), readiness).await;
            crate::systemd::notify_ready("serving CRI");
            start_usage_pass(&state, &stop_stats);
        }
    });
    let shutdown = async {
        tokio::select! {
            () = shutdown => {}
            () = fatal.cancelled() => {}
        }
        crate::systemd::notify_stopping();
    };

    // containerd's own API on the same socket: every non-CRI call is
    // forwarded to containerd (outermost: no recovery gate, no CRI metrics).
    let forwarder = server.containerd_passthrough.then(|| {
        Arc::new(Forwarder::new(
            &server.containerd_address,
            metrics.passthrough_open_streams(),
        ))
    });
    tracing::info!(
        enabled = server.containerd_passthrough,
        "containerd API passthrough on the CRI socket"
    );

    let result = tonic::transport::Server::builder()
        .layer(PassthroughLayer::new(forwarder))
        .layer(metrics.grpc_layer())
        .layer(readiness.layer())
        .add_service(EncodedLists::new(
            RuntimeServiceServer::new(CriRuntimeService::new(state.clone())),
            state.clone(),
        ))
        .add_service(ImageServiceServer::new(CriImageService::new(state.clone())))
        .serve_with_incoming_shutdown(front_door(listener), shutdown)
        .await
        .map_err(DaemonError::Serve);
    stop_metrics.cancel();
    stop_stats.cancel();
    if let Some(streaming) = state.streaming.get() {
        streaming.shutdown().await;
    }
    drop(socket);
    tracing::info!("stopped");
    if let Some(report) = fatal_report.get() {
        return Err(DaemonError::Preflight(report.clone()));
    }
    result
}

/// Starts the background disk usage pass (ImageFsInfo's answer and the
/// writable layers of the container stats) every `stats_collect_period`.
/// It starts once recovery is done, as containerd's snapshot syncer does:
/// its first pass asks containerd for the usage of every snapshot, which
/// would compete with recovery.
fn start_usage_pass(state: &ServerState, stop: &tokio_util::sync::CancellationToken) {
    let period = std::time::Duration::from_secs(u64::from(state.config.cri.stats_collect_period));
    state.images.spawn_fs_info_syncer(period, stop.clone());
}

/// The container stats' writable layers, told the usage of the active
/// snapshots by each ImageFsInfo pass.
#[derive(Debug)]
struct WritableLayers(Arc<cri_stats::FsUsageCache>);

impl cri_image::ActiveUsageObserver for WritableLayers {
    fn active_usages(
        &self,
        snapshotter: &str,
        mountpoint: &std::path::Path,
        usages: &HashMap<String, cri_api::containerd::SnapshotUsage>,
    ) {
        self.0.record(snapshotter, mountpoint, usages);
    }
}

/// The accepted CRI connections, each behind an [`AuthorityShim`]: clients
/// send the socket path, a percent-encoded path or an empty value as
/// `:authority` (crictl, critest, grpc-java, grpcio), which h2 refuses on
/// its own (see ARCHITECTURE.md, "The front door").
fn front_door(
    listener: tokio::net::UnixListener,
) -> impl futures::Stream<Item = std::io::Result<AuthorityShim<tokio::net::UnixStream>>> {
    use futures::TryStreamExt;
    UnixListenerStream::new(listener).map_ok(AuthorityShim::new)
}

/// Resolves on the first SIGTERM or SIGINT.
pub fn termination_signal() -> Result<impl Future<Output = ()> + Send, DaemonError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
    })
}
