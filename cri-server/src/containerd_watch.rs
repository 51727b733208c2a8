//! The containerd connection watcher: probes containerd's Version service
//! (every few seconds while it answers, with backoff while it does not),
//! logs each down and up transition, and after containerd comes back
//! re-checks the tasks of RUNNING containers and READY sandboxes, so an
//! exit that happened while the connection was down (a stopped task) is
//! recorded at once
//! rather than when an exit monitor's backoff next fires. The monitors
//! (`container/exit.rs`, `sandbox/exit_monitor.rs`) keep retrying their
//! waits and the OOM subscription resubscribes on its own; recording an
//! exit twice is harmless (the first one wins).

use std::sync::Arc;
use std::time::Duration;

use cri_api::containerd::{ExitStatus, TaskStatus};
use cri_api::v1::ContainerState;
use cri_store::sandbox::SandboxState;

use crate::service::ServerState;

/// How often a reachable containerd is probed.
const PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_INITIAL: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Watches the connection for the life of the daemon.
pub fn spawn_containerd_watch(state: Arc<ServerState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut up = true;
        let mut delay = BACKOFF_INITIAL;
        loop {
            let probe = tokio::time::timeout(PROBE_TIMEOUT, state.containerd.version.version());
            let reachable = match probe.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) if e.is_unavailable() => Err(e.to_string()),
                // containerd answered, if only with an error.
                Ok(Err(_)) => Ok(()),
                Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
            };
            match (up, reachable) {
                (true, Ok(())) => {
                    tokio::time::sleep(PROBE_INTERVAL).await;
                }
                (false, Ok(())) => {
                    tracing::info!(address = %state.containerd_address(), "containerd is back; re-checking tasks");
                    up = true;
                    delay = BACKOFF_INITIAL;
                    recheck_tasks(&state).await;
                }
                (_, Err(error)) => {
                    if up {
                        tracing::warn!(address = %state.containerd_address(), %error, "lost containerd; serving from memory and reconnecting");
                        up = false;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(BACKOFF_MAX);
                }
            }
        }
    })
}

/// Records the exits of RUNNING containers whose task stopped (a vanished
/// task is left to the exit monitor, which may be deleting it right now),
/// and turns READY sandboxes whose pause task stopped or vanished NOTREADY.
pub(crate) async fn recheck_tasks(state: &Arc<ServerState>) {
    for container in state.containers.store.list() {
        if container.status.state() != ContainerState::ContainerRunning {
            continue;
        }
        let id = &container.metadata.id;
        let exit = match state.containerd.tasks.get(id.as_ref(), "").await {
            Ok(task) if task.status == TaskStatus::Stopped => ExitStatus {
                code: task.exit_status,
                exited_at: task.exited_at,
            },
            // Gone: the exit monitor (or a concurrent handler that
            // deleted it) records the exit.
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!(container_id = %id, error = %e, "re-check task");
                continue;
            }
        };
        tracing::info!(container_id = %id, exit_code = exit.code, "container exited while containerd was away");
        if let Err(e) =
            crate::container::exit::handle_container_exit(&state.containers, id, exit).await
        {
            tracing::warn!(container_id = %id, error = %e, "record exit; the exit monitor retries");
        }
    }
    for sandbox in state.sandboxes.store.list() {
        if sandbox.status.state != SandboxState::Ready {
            continue;
        }
        let id = &sandbox.metadata.id;
        let gone = match state.containerd.tasks.get(id.as_ref(), "").await {
            Ok(task) => task.status == TaskStatus::Stopped,
            Err(e) => e.is_not_found(),
        };
        if gone {
            tracing::info!(pod_sandbox_id = %id, "sandbox exited while containerd was away");
            crate::sandbox::exit_monitor::mark_not_ready(&state.sandboxes, id);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cri_api::containerd::{ContainerdError, TaskInfo};
    use std::time::UNIX_EPOCH;

    use crate::container::testutil::{
        add_live_container, add_sandbox, running_status, Mocks, TestEnv,
    };

    #[tokio::test]
    async fn exits_while_away_are_recorded_on_reconnect() {
        let mut mocks = Mocks::default();
        mocks
            .services
            .tasks
            .expect_get()
            .returning(|id, _| match id {
                "stopped" => Ok(TaskInfo {
                    status: TaskStatus::Stopped,
                    exit_status: 7,
                    exited_at: Some(UNIX_EPOCH + Duration::from_secs(9)),
                    ..TaskInfo::default()
                }),
                "alive" | "s-alive" => Ok(TaskInfo {
                    status: TaskStatus::Running,
                    ..TaskInfo::default()
                }),
                other => Err(ContainerdError::NotFound {
                    op: "get task",
                    what: other.into(),
                }),
            });
        mocks.services.tasks.expect_delete().returning(|_, _| {
            Ok(ExitStatus {
                code: 7,
                exited_at: None,
            })
        });
        let env = TestEnv::with(mocks, "");
        add_sandbox(&env, "s-alive", true);
        add_sandbox(&env, "s-gone", true);
        for id in ["stopped", "vanished", "alive"] {
            add_live_container(&env, id, "s-alive", running_status());
        }
        recheck_tasks(&env.server).await;
        let status = |id: &str| env.server.containers.store.get(id).unwrap().status;
        assert_eq!(status("stopped").exit_code, 7);
        assert_eq!(status("stopped").state(), ContainerState::ContainerExited);
        assert_eq!(status("vanished").state(), ContainerState::ContainerRunning);
        assert_eq!(status("alive").state(), ContainerState::ContainerRunning);
        let sandbox = |id: &str| env.server.sandboxes.store.get(id).unwrap().status.state;
        assert_eq!(sandbox("s-alive"), SandboxState::Ready);
        assert_eq!(sandbox("s-gone"), SandboxState::NotReady);
    }
}
