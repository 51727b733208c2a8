//! RemovePodSandbox: stop the sandbox (forcibly), make sure its netns is
//! gone, remove the pod's containers, have the controller remove the pause
//! container, its snapshot, task and files, then drop the record and
//! release the name. An id that is already gone is success.

use std::path::Path;

use cri_api::v1::ContainerEventType;
use cri_store::StoreError;

use super::error::SandboxError;
use super::stop::stop_sandbox;
use super::{PodContainers, SandboxService};

type Result<T, E = SandboxError> = std::result::Result<T, E>;

/// RemovePodSandbox for a full id or unique prefix.
pub async fn remove_pod_sandbox(
    state: &SandboxService,
    containers: &dyn PodContainers,
    id_or_prefix: &str,
) -> Result<()> {
    let sandbox = match state.store.get(id_or_prefix) {
        Ok(s) => s,
        Err(StoreError::Ambiguous { prefix, .. }) => {
            return Err(SandboxError::Ambiguous { prefix })
        }
        Err(_) => {
            tracing::debug!(
                id = id_or_prefix,
                "RemovePodSandbox of a sandbox that does not exist"
            );
            return Ok(());
        }
    };
    let meta = &sandbox.metadata;
    let id = &meta.id;
    tracing::Span::current().record("pod_sandbox_id", tracing::field::display(id));

    stop_sandbox(state, containers, &sandbox).await?;
    if !meta.netns_path.is_empty() {
        let closed = state
            .manager
            .netns()
            .is_closed(Path::new(&meta.netns_path))
            .await
            .map_err(|source| SandboxError::Netns {
                id: id.to_string(),
                source,
            })?;
        if !closed {
            return Err(SandboxError::NetnsNotClosed {
                path: meta.netns_path.clone(),
            });
        }
    }

    containers
        .remove_all(id)
        .await
        .map_err(|source| SandboxError::RemoveContainer {
            id: id.to_string(),
            container_id: source.container_id.clone(),
            source,
        })?;

    let controller = state
        .manager
        .controller_of(&state.config, &meta.runtime_handler)?;
    match controller.shutdown(id).await {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(source) => {
            return Err(SandboxError::Controller {
                id: id.to_string(),
                source,
            })
        }
    }

    if state.store.remove(id).is_ok() {
        state.names.release(&meta.name);
        state
            .send_pod_event(id, ContainerEventType::ContainerDeletedEvent)
            .await;
    }
    state.stats.forget(id.as_ref());
    tracing::info!("sandbox removed");
    Ok(())
}
