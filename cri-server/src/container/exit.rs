//! Container exits (containerd's `startContainerExitMonitor`,
//! `handleContainerExit` and the `/tasks/oom` handler): a task's `Wait`
//! is armed when it starts; on exit the output is drained, the task
//! deleted, the exit recorded in the status checkpoint, the IO closed and
//! CONTAINER_STOPPED sent. Failed handling is retried with backoff. OOM
//! kills are learnt from the memory cgroup at exit and from containerd's
//! `/tasks/oom` events.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cri_api::containerd::{ArmedWait, ExitStatus};
use cri_api::ids::ContainerId;
use cri_api::v1::ContainerEventType;

use super::error::Result;
use super::status::REASON_OOM_KILLED;
use super::ContainerService;
use super::{events, to_nanos, update_status_sync};

/// The exit code recorded when the real one is unknown.
pub const UNKNOWN_EXIT_CODE: u32 = 255;
/// How long the output may take to drain after the process exited
/// (a leftover child can hold the pipe open).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Waits for the task of container `id` to exit (through `armed` first,
/// when the start sent one), then handles the exit, in a task of its own.
/// Only one monitor runs per container.
pub(crate) fn spawn_exit_monitor(
    state: Arc<ContainerService>,
    id: ContainerId,
    armed: Option<ArmedWait>,
) {
    if let Some(handle) = state.store.handle(id.as_ref()) {
        if !handle.claim_exit_monitor() {
            if let Some(armed) = armed {
                armed.abort();
            }
            return;
        }
    }
    tokio::spawn(async move {
        let exit = wait_for_exit(&state, &id, armed).await;
        handle_exit_with_retry(&state, &id, exit).await;
    });
}

async fn wait_for_exit(
    state: &ContainerService,
    id: &ContainerId,
    mut armed: Option<ArmedWait>,
) -> ExitStatus {
    let mut delay = BACKOFF_INITIAL;
    loop {
        match ArmedWait::answer(armed.take(), state.containerd.tasks.as_ref(), id.as_ref()).await {
            Ok(exit) => return exit,
            // containerd restarting: the shim keeps the exit for us.
            Err(e) if e.is_unavailable() => {
                tracing::warn!(container_id = %id, error = %e, retry_in = ?delay, "wait for task");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(e) => {
                tracing::error!(container_id = %id, error = %e, "failed to get task exit status");
                return ExitStatus {
                    code: UNKNOWN_EXIT_CODE,
                    exited_at: Some(SystemTime::now()),
                };
            }
        }
    }
}

async fn handle_exit_with_retry(state: &ContainerService, id: &ContainerId, exit: ExitStatus) {
    let mut delay = BACKOFF_INITIAL;
    loop {
        match handle_container_exit(state, id, exit).await {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(container_id = %id, error = %e, retry_in = ?delay, "failed to handle container exit");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// containerd's `handleContainerExit`. Idempotent: the first recorded
/// exit wins, and a container no longer stored is ignored.
pub(crate) async fn handle_container_exit(
    state: &ContainerService,
    id: &ContainerId,
    exit: ExitStatus,
) -> Result<()> {
    let Ok(container) = state.store.get(id.as_ref()) else {
        return Ok(());
    };
    let handle = state.store.handle(id.as_ref());
    // A file read: off the async workers.
    let oom = match &handle {
        Some(h) => {
            let (root, path) = (state.host.cgroup_root.clone(), h.cgroups_path.clone());
            tokio::task::spawn_blocking(move || cgroup_oom_killed(&root, &path))
                .await
                .unwrap_or(false)
        }
        None => false,
    };
    let io = handle.as_ref().and_then(|h| h.io());
    if let Some(io) = &io {
        if tokio::time::timeout(DRAIN_TIMEOUT, io.drained())
            .await
            .is_err()
        {
            tracing::warn!(container_id = %id, "output not drained after exit; closing it");
        }
    }
    match state.containerd.tasks.delete(id.as_ref(), "").await {
        Ok(_) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    let finished_at = to_nanos(exit.exited_at.unwrap_or_else(SystemTime::now));
    // Two handlers may race (the monitor and the reconnect re-check):
    // only the one that records the exit sends CONTAINER_STOPPED.
    let mut recorded = false;
    update_status_sync(state, &container.metadata.id, |s| {
        if s.finished_at == 0 {
            recorded = true;
            s.pid = 0;
            // The shim's exit time can precede the start time we took
            // after `Start` returned: a process never ends before it began.
            s.finished_at = finished_at.max(s.started_at).max(1);
            s.exit_code = exit.code as i32;
            if oom && s.reason.is_empty() {
                s.reason = REASON_OOM_KILLED.to_owned();
            }
        }
        s.unknown = false;
        Ok(())
    })
    .await?;
    if let Some(io) = io {
        if let Err(e) = io.close() {
            tracing::warn!(container_id = %id, error = %e, "close container io");
        }
    }
    if let Some(handle) = &handle {
        handle.mark_stopped();
    }
    if !recorded {
        return Ok(());
    }
    tracing::info!(container_id = %id, exit_code = exit.code, oom, "container exited");
    events::emit(
        state,
        id.as_ref(),
        container.metadata.sandbox_id.as_ref(),
        ContainerEventType::ContainerStoppedEvent,
    )
    .await;
    Ok(())
}

/// Whether the kernel OOM-killed a process of the cgroup at `cgroups_path`
/// (`oom_kill` in cgroup v1 `memory.oom_control` or v2 `memory.events`).
/// Systemd-style paths (`slice:prefix:name`) are not checked.
pub(crate) fn cgroup_oom_killed(cgroup_root: &Path, cgroups_path: &str) -> bool {
    if cgroups_path.is_empty() || cgroups_path.contains(':') {
        return false;
    }
    let relative = cgroups_path.trim_start_matches('/');
    let candidates: [PathBuf; 2] = [
        cgroup_root
            .join("memory")
            .join(relative)
            .join("memory.oom_control"),
        cgroup_root.join(relative).join("memory.events"),
    ];
    candidates.iter().any(|file| {
        std::fs::read_to_string(file).is_ok_and(|text| {
            text.lines().any(|line| {
                line.strip_prefix("oom_kill ")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .is_some_and(|n| n > 0)
            })
        })
    })
}

/// The TaskOOM handler: the container's reason becomes `OOMKilled`.
pub async fn record_oom(state: &ContainerService, container_id: &str) {
    let Ok(container) = state.store.get(container_id) else {
        return;
    };
    if container.metadata.id.as_ref() != container_id {
        return;
    }
    let result = update_status_sync(state, &container.metadata.id, |s| {
        s.reason = REASON_OOM_KILLED.to_owned();
        Ok(())
    })
    .await;
    match result {
        Ok(_) => tracing::info!(container_id, "container OOM killed"),
        Err(e) => tracing::warn!(container_id, error = %e, "record OOM kill"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn check_oom(files: &[(&str, &str)], path: &str, expected: bool) {
        let root = tempfile::tempdir().unwrap();
        for (file, content) in files {
            let p = root.path().join(file);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        assert_eq!(cgroup_oom_killed(root.path(), path), expected);
    }

    use cri_api::containerd::ContainerdError;
    use cri_api::ids::ContainerId;
    use cri_api::v1::ContainerState;
    use futures::StreamExt;

    use crate::container::testutil::{
        add_live_container, checkpointed, running_status, Mocks, TestEnv,
    };

    fn exit(code: u32, secs: u64) -> ExitStatus {
        ExitStatus {
            code,
            exited_at: Some(std::time::UNIX_EPOCH + Duration::from_secs(secs)),
        }
    }

    /// A running `c1` whose task deletes fine once, then is gone.
    fn env() -> TestEnv {
        let mut mocks = Mocks::default();
        let deleted = std::sync::atomic::AtomicBool::new(false);
        mocks.services.tasks.expect_delete().returning(move |_, _| {
            if deleted.swap(true, std::sync::atomic::Ordering::SeqCst) {
                Err(ContainerdError::NotFound {
                    op: "delete task",
                    what: "c1".into(),
                })
            } else {
                Ok(exit(1, 0))
            }
        });
        let env = TestEnv::with(mocks, "");
        crate::container::testutil::add_sandbox(&env, "s1", true);
        let handle = add_live_container(&env, "c1", "s1", running_status());
        // Nothing was piped: the output counts as drained.
        assert!(handle.io().is_some());
        env
    }

    #[tokio::test]
    async fn the_first_exit_is_recorded_once() {
        let env = env();
        let id = ContainerId::from("c1");
        let mut events = env.state.events.subscribe();
        handle_container_exit(&env.state, &id, exit(1, 100))
            .await
            .unwrap();
        handle_container_exit(&env.state, &id, exit(255, 200))
            .await
            .unwrap();
        let status = env.state.store.get("c1").unwrap().status;
        assert_eq!(status.state(), ContainerState::ContainerExited);
        assert_eq!((status.exit_code, status.pid), (1, 0));
        assert_eq!(status.finished_at, 100_000_000_000);
        assert_eq!(checkpointed(&env, "c1").finished_at, 100_000_000_000);
        let event = events.next().await.unwrap();
        assert_eq!(
            event.container_event_type,
            cri_api::v1::ContainerEventType::ContainerStoppedEvent as i32
        );
        assert!(
            env.state
                .store
                .handle("c1")
                .unwrap()
                .wait_stopped(Duration::from_millis(1))
                .await
        );
    }

    #[tokio::test]
    async fn an_oom_kill_in_the_cgroup_is_the_reason() {
        let env = env();
        let oom = env
            .dir
            .path()
            .join("cgroup/memory/k8s.io/c1/memory.oom_control");
        std::fs::create_dir_all(oom.parent().unwrap()).unwrap();
        std::fs::write(&oom, "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n").unwrap();
        handle_container_exit(&env.state, &ContainerId::from("c1"), exit(137, 5))
            .await
            .unwrap();
        let status = env.state.store.get("c1").unwrap().status;
        assert_eq!(status.reason, REASON_OOM_KILLED);
        assert_eq!(checkpointed(&env, "c1").reason, REASON_OOM_KILLED);
    }

    #[tokio::test]
    async fn oom_events_set_the_reason() {
        let env = TestEnv::new();
        add_live_container(&env, "c1", "s1", running_status());
        record_oom(&env.state, "c1").await;
        record_oom(&env.state, "unknown").await;
        assert_eq!(
            env.state.store.get("c1").unwrap().status.reason,
            REASON_OOM_KILLED
        );
        assert_eq!(checkpointed(&env, "c1").reason, REASON_OOM_KILLED);
    }

    #[tokio::test]
    async fn exits_of_removed_containers_are_ignored() {
        let env = TestEnv::new();
        handle_container_exit(&env.state, &ContainerId::from("gone"), exit(0, 1))
            .await
            .unwrap();
    }

    #[test]
    fn oom_from_cgroup_v1_and_v2() {
        check_oom(
            &[(
                "memory/k8s.io/c1/memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
            )],
            "/k8s.io/c1",
            true,
        );
        check_oom(
            &[(
                "memory/k8s.io/c1/memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
            )],
            "/k8s.io/c1",
            false,
        );
        check_oom(
            &[(
                "k8s.io/c1/memory.events",
                "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n",
            )],
            "/k8s.io/c1",
            true,
        );
        check_oom(&[], "/k8s.io/c1", false);
        check_oom(&[], "kubepods.slice:cri-containerd:c1", false);
    }
}
