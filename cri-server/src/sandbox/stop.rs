//! StopPodSandbox: stop every container of the pod (forcibly), then, at
//! the same time, stop the sandbox through its controller (shm unmounted,
//! pause task killed and reaped; marked NOTREADY) and tear the pod network
//! down with the cached CNI result; then remove the netns pin. The record
//! stays. Each step tolerates what an earlier stop (or an outside kill)
//! already did, and a network torn down by an earlier stop is left alone.

use std::path::PathBuf;
use std::time::Duration;

use cri_sandbox::cni::SandboxNetwork;
use cri_store::sandbox::{Sandbox, SandboxState};
use tracing::Instrument;

use super::error::SandboxError;
use super::exit_monitor::mark_not_ready;
use super::lookup;
use super::{PodContainers, SandboxService};

type Result<T, E = SandboxError> = std::result::Result<T, E>;

/// StopPodSandbox for a full id or unique prefix.
pub async fn stop_pod_sandbox(
    state: &SandboxService,
    containers: &dyn PodContainers,
    id_or_prefix: &str,
) -> Result<()> {
    let sandbox = lookup(state, id_or_prefix)?;
    tracing::Span::current().record(
        "pod_sandbox_id",
        tracing::field::display(&sandbox.metadata.id),
    );
    stop_sandbox(state, containers, &sandbox).await
}

/// Stops `sandbox`; RemovePodSandbox runs this first too.
pub(crate) async fn stop_sandbox(
    state: &SandboxService,
    containers: &dyn PodContainers,
    sandbox: &Sandbox,
) -> Result<()> {
    let meta = &sandbox.metadata;
    let id = &meta.id;
    containers
        .stop_all(id)
        .await
        .map_err(|source| SandboxError::StopContainer {
            id: id.to_string(),
            container_id: source.container_id.clone(),
            source,
        })?;

    // containerd stops the sandbox only while it is READY or UNKNOWN: a
    // NOTREADY one was stopped before (or its pause task exited and was
    // deleted), so a second stop, and RemovePodSandbox's, ask nothing of
    // the controller.
    let controller = if sandbox.status.state != SandboxState::NotReady {
        Some(
            state
                .manager
                .controller_of(&state.config, &meta.runtime_handler)?,
        )
    } else {
        None
    };
    let stop_pause = async {
        let Some(controller) = controller else {
            return Ok(());
        };
        match controller.stop(id, Duration::ZERO).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {
                tracing::warn!("sandbox not found by its controller while stopping it")
            }
            Err(source) => {
                return Err(SandboxError::Controller {
                    id: id.to_string(),
                    source,
                })
            }
        }
        mark_not_ready(state, id);
        Ok(())
    };
    // CNI DEL runs while the pause stops: the app containers are stopped
    // already, and the netns lives on its pin, not on the pause process.
    // The pin goes once both are done. A network this daemon tore down
    // already is not torn down again: containerd runs DEL on every stop,
    // RemovePodSandbox's included, with an empty netns path; DEL is
    // idempotent, so the second one does nothing but cost a run of every
    // plugin (CRI-O runs it once as well).
    let teardown = async {
        if sandbox.status.network_down {
            return Ok(None);
        }
        teardown_network(state, sandbox).await
    };
    let (network, stopped) = tokio::join!(teardown, stop_pause);
    stopped?;
    if let Some(path) = network? {
        state
            .manager
            .netns()
            .remove(&path)
            .await
            .map_err(|source| SandboxError::Netns {
                id: id.to_string(),
                source,
            })?;
        mark_network_down(state, id);
        tracing::info!("tore down the pod network");
    }
    Ok(())
}

/// Remembers that the pod's network is down; a sandbox removed meanwhile
/// is fine.
fn mark_network_down(state: &SandboxService, id: &cri_api::ids::SandboxId) {
    let updated = state.store.update_status(id, |s| {
        s.network_down = true;
        Ok::<(), cri_store::StoreError>(())
    });
    if let Err(e) = updated {
        tracing::debug!(error = %e, "sandbox not in the store any more");
    }
}

/// CNI DEL of the sandbox's network, with the cached CNI result; returns
/// the netns pin to remove, `None` for host-network pods.
async fn teardown_network(state: &SandboxService, sandbox: &Sandbox) -> Result<Option<PathBuf>> {
    let meta = &sandbox.metadata;
    let id = &meta.id;
    if meta.netns_path.is_empty() {
        return Ok(None);
    }
    let path = PathBuf::from(&meta.netns_path);
    let closed = state
        .manager
        .netns()
        .is_closed(&path)
        .await
        .map_err(|source| SandboxError::Netns {
            id: id.to_string(),
            source,
        })?;
    // CNI wants an empty netns path once the namespace is gone.
    let cni_path = if closed { PathBuf::new() } else { path.clone() };
    let network =
        SandboxNetwork::from_pod_config(id.clone(), cni_path, &meta.config).map_err(|source| {
            SandboxError::NetworkTeardown {
                id: id.to_string(),
                source,
            }
        })?;
    let cni_started = std::time::Instant::now();
    state
        .manager
        .cni_for(&meta.runtime_handler)
        .teardown(&network)
        .instrument(tracing::info_span!("cni.teardown"))
        .await
        .map_err(|source| SandboxError::NetworkTeardown {
            id: id.to_string(),
            source,
        })?;
    state.metrics.observe_cni_teardown(cni_started.elapsed());
    Ok(Some(path))
}
