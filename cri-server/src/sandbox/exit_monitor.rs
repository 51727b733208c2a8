//! Watching a sandbox's exit (compat.md §8): a task per sandbox waits on
//! its controller; when the sandbox exits (its task reaped by the
//! controller) or its task is found gone, the sandbox turns NOTREADY.
//! Failed waits (containerd restarting) are retried with backoff; the
//! watcher ends with the sandbox's removal or the daemon.

use std::sync::Arc;
use std::time::Duration;

use cri_api::ids::SandboxId;
use cri_api::v1::ContainerEventType;
use cri_store::sandbox::SandboxState;
use cri_store::StoreError;
use tracing::Instrument;

use super::SandboxService;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Starts watching `id`, which must be in the sandbox store.
pub fn spawn_exit_monitor(state: Arc<SandboxService>, id: SandboxId) {
    // Its own root: as a child it would keep the RPC's span open (and
    // unexported) for the sandbox's whole life.
    let span = tracing::info_span!(parent: None, "sandbox_exit_monitor", pod_sandbox_id = %id);
    span.follows_from(tracing::Span::current());
    tokio::spawn(monitor(state, id).instrument(span));
}

async fn monitor(state: Arc<SandboxService>, id: SandboxId) {
    let mut delay = MIN_BACKOFF;
    loop {
        let Ok(sandbox) = state.store.get(id.as_ref()) else {
            tracing::debug!("sandbox removed; exit monitor done");
            return;
        };
        let controller = match state
            .manager
            .controller_of(&state.config, &sandbox.metadata.runtime_handler)
        {
            Ok(c) => Arc::clone(c),
            Err(e) => {
                tracing::error!(error = %e, "no controller to watch the sandbox with");
                return;
            }
        };
        match controller.wait(&id).await {
            Ok(exit) => tracing::info!(exit_code = exit.code, "sandbox exited"),
            Err(e) if e.is_not_found() => tracing::info!("sandbox task is gone"),
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "wait for sandbox exit failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_BACKOFF);
                continue;
            }
        }
        mark_not_ready(&state, &id);
        state
            .send_pod_event(&id, ContainerEventType::ContainerStoppedEvent)
            .await;
        return;
    }
}

/// NOTREADY without a pid; a sandbox removed meanwhile is fine.
pub(crate) fn mark_not_ready(state: &SandboxService, id: &SandboxId) {
    let updated = state.store.update_status(id, |s| {
        s.state = SandboxState::NotReady;
        s.pid = 0;
        Ok::<(), StoreError>(())
    });
    if let Err(e) = updated {
        tracing::debug!(error = %e, "sandbox not in the store any more");
    }
}
