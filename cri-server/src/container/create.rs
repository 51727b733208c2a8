//! CreateContainer, step by step as containerd's CRI plugin does it
//! (`container_create.go`). Every step after the name reservation pushes
//! its undo onto a [`Rollback`] once it succeeded; when a later step fails
//! the undos run newest first and the ones that fail are attached to the
//! error. If a containerd object could not be removed, the container stays
//! in the store as UNKNOWN (with its name) so RemoveContainer can retry.
//! The body runs in a task of its own: a cancelled RPC still completes or
//! unwinds.

use std::sync::Arc;
use std::time::Instant;

use cri_api::ids::ContainerId;
use cri_api::rollback::Rollback;
use cri_api::v1::{ContainerConfig, ContainerEventType, CreateContainerRequest, PodSandboxConfig};
use cri_store::container::{Container, ContainerMetadata, ContainerStatus};
use cri_store::sandbox::{Sandbox, SandboxState};
use tracing::Instrument;

use super::create_steps::{Steps, UNDO_DELETE_CONTAINER, UNDO_REMOVE_SNAPSHOT};
use super::error::{ContainerError, Result};
use super::live::ContainerHandle;
use super::ContainerService;
use super::{events, labels};
use crate::metrics::ContainerOp;

/// CreateContainer: runs the create in its own task and waits for it, so a
/// cancelled RPC still completes or unwinds.
pub async fn create_container(
    state: Arc<ContainerService>,
    request: CreateContainerRequest,
) -> Result<String> {
    let span = tracing::Span::current();
    tokio::spawn(async move { create(&state, request).await }.instrument(span))
        .await
        .map_err(|e| ContainerError::TaskFailed {
            rpc: "CreateContainer",
            message: e.to_string(),
        })?
}

fn invalid(message: &str) -> ContainerError {
    ContainerError::InvalidArgument(message.to_owned())
}

/// The request, checked, with the sandbox it names and what its
/// controller reports.
pub(crate) struct Checked {
    pub config: ContainerConfig,
    pub sandbox_config: PodSandboxConfig,
    pub sandbox: Sandbox,
    pub sandbox_pid: u32,
    pub platform: cri_spec::Platform,
}

async fn check(state: &ContainerService, request: CreateContainerRequest) -> Result<Checked> {
    let CreateContainerRequest {
        pod_sandbox_id,
        config,
        sandbox_config,
    } = request;
    if pod_sandbox_id.is_empty() {
        return Err(invalid("pod sandbox id must not be empty"));
    }
    let config = config.ok_or_else(|| invalid("container config must not be empty"))?;
    let sandbox = state
        .sandboxes
        .get(&pod_sandbox_id)
        .map_err(ContainerError::ContainerStore)?;
    if sandbox.status.state != SandboxState::Ready {
        return Err(ContainerError::ContainerSandboxNotReady {
            id: sandbox.metadata.id.to_string(),
        });
    }
    if config.metadata.is_none() {
        return Err(invalid("container config must include metadata"));
    }
    if config.image.as_ref().is_none_or(|i| i.image.is_empty()) {
        return Err(invalid("container config must include an image"));
    }
    // The sandbox's controller status: the pid to join and the platform.
    let (sandbox_pid, platform) = state.sandboxes.runtime(&sandbox).await?;
    // The kubelet always sends the pod config; fall back to the stored one.
    let sandbox_config = sandbox_config.unwrap_or_else(|| sandbox.metadata.config.clone());
    Ok(Checked {
        config,
        sandbox_config,
        sandbox_pid,
        platform,
        sandbox,
    })
}

/// CreateContainer's body.
pub(crate) async fn create(
    state: &ContainerService,
    request: CreateContainerRequest,
) -> Result<String> {
    let checked = check(state, request).await?;
    let config = &checked.config;
    let sandbox_id = checked.sandbox.metadata.id.clone();
    let id = ContainerId(state.host.ids.generate());
    tracing::Span::current().record("container_id", id.as_ref());
    let pod_metadata = checked.sandbox_config.metadata.as_ref();
    let container_metadata = config.metadata.clone().unwrap_or_default();
    let name = labels::container_name(&container_metadata, pod_metadata);
    let reservation = state
        .names
        .reserve(&name, id.as_ref())
        .map_err(ContainerError::ContainerStore)?;
    tracing::debug!(container_id = %id, name = %name, "reserved container name");

    let mut meta = ContainerMetadata {
        id: id.clone(),
        name,
        sandbox_id: sandbox_id.clone(),
        config: config.clone(),
        image_ref: String::new(),
        log_path: String::new(),
        stop_signal: String::new(),
        process_label: String::new(),
        image_digest: String::new(),
        image_name: String::new(),
    };
    let mut undo = Rollback::new();
    let mut steps = Steps {
        state,
        id: &id,
        checked: &checked,
        snapshotter: String::new(),
        runtime_type: String::new(),
    };
    let started = Instant::now();
    match steps.run(&mut meta, &mut undo).await {
        Ok(()) => {
            undo.commit();
            reservation.keep();
            events::emit(
                state,
                id.as_ref(),
                sandbox_id.as_ref(),
                ContainerEventType::ContainerCreatedEvent,
            )
            .await;
            let elapsed = started.elapsed();
            state
                .metrics
                .observe_container(ContainerOp::Create, &steps.runtime_type, elapsed);
            state.stats.fs_usage().register(
                id.as_ref(),
                cri_stats::WritableLayer {
                    snapshotter: steps.snapshotter.clone(),
                    key: id.to_string(),
                },
            );
            tracing::info!(container_id = %id, "container created");
            Ok(id.0)
        }
        Err(cause) => {
            let undo_failures = undo.unwind().await;
            let leftover = undo_failures
                .iter()
                .any(|f| f.step == UNDO_DELETE_CONTAINER || f.step == UNDO_REMOVE_SNAPSHOT);
            if leftover {
                keep_unknown(state, meta, &steps.snapshotter);
                reservation.keep();
            }
            Err(ContainerError::CreateContainer {
                id: id.0,
                source: Box::new(cause),
                undo_failures,
            })
        }
    }
}

/// Keeps a container whose containerd objects could not be removed, in
/// UNKNOWN state, so that RemoveContainer retries the removal.
fn keep_unknown(state: &ContainerService, meta: ContainerMetadata, snapshotter: &str) {
    let id = meta.id.clone();
    let status = ContainerStatus {
        created_at: super::now_nanos(),
        unknown: true,
        ..ContainerStatus::default()
    };
    let handle = ContainerHandle::new(None, snapshotter, "");
    if let Err(e) = state.store.add(Container::new(meta, status), handle) {
        tracing::error!(container_id = %id, error = %e, "keep half-created container as unknown");
    } else {
        tracing::warn!(container_id = %id, "containerd objects left behind; container kept as unknown for RemoveContainer");
    }
}

#[cfg(test)]
#[path = "create_tests.rs"]
mod tests;
