//! StartContainer (containerd's `container_start.go`): the container's
//! output is piped into its CRI log, a task is created with its FIFOs and
//! rootfs and started, the pid and start time are checkpointed, and the
//! exit monitor is armed. A failed start leaves the container EXITED with
//! reason `StartError` and exit code 128.

use std::sync::Arc;
use std::time::Instant;

use cri_api::containerd::{ArmedWait, CreateTask};
use cri_api::ids::ContainerId;
use cri_api::rollback::Rollback;
use cri_api::v1::{ContainerEventType, ContainerState, NamespaceMode};
use cri_io::{CriLog, LineLimit, SystemClock};
use cri_store::container::Container;
use cri_store::sandbox::SandboxState;
use tracing::Instrument;

use super::error::{ContainerError, Result};
use super::ContainerService;
use super::{events, exit, get, now_nanos, state_name, update_status, update_status_sync};
use crate::metrics::ContainerOp;

/// The exit code and reason of a container that failed to start.
pub const START_ERROR_EXIT_CODE: i32 = 128;
pub const START_ERROR_REASON: &str = "StartError";
/// How long a killed task may take to exit before it is deleted anyway.
const KILL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// StartContainer, in its own task so a cancelled RPC still finishes.
pub async fn start_container(state: Arc<ContainerService>, id: String) -> Result<()> {
    let span = tracing::Span::current();
    tokio::spawn(async move { start(&state, &id).await }.instrument(span))
        .await
        .map_err(|e| ContainerError::TaskFailed {
            rpc: "StartContainer",
            message: e.to_string(),
        })?
}

async fn start(state: &Arc<ContainerService>, id: &str) -> Result<()> {
    let started = Instant::now();
    let container = get(state, id)?;
    let id = container.metadata.id.clone();
    tracing::Span::current().record("container_id", id.as_ref());
    set_starting(state, &id)?;
    let result = start_task(state, &container).await;
    if let Err(e) = &result {
        let message = e.to_string();
        let recorded = update_status_sync(state, &id, |s| {
            s.pid = 0;
            s.finished_at = now_nanos();
            s.exit_code = START_ERROR_EXIT_CODE;
            s.reason = START_ERROR_REASON.to_owned();
            s.message = message;
            Ok(())
        })
        .await;
        if let Err(e) = recorded {
            tracing::error!(container_id = %id, error = %e, "record start failure");
        }
    }
    if let Err(e) = update_status(state, &id, |s| {
        s.starting = false;
        Ok(())
    }) {
        tracing::error!(container_id = %id, error = %e, "reset starting state");
    }
    let armed = result?;
    exit::spawn_exit_monitor(Arc::clone(state), id.clone(), Some(armed));
    events::emit(
        state,
        id.as_ref(),
        container.metadata.sandbox_id.as_ref(),
        ContainerEventType::ContainerStartedEvent,
    )
    .await;
    let runtime_type = runtime_type(state, &container);
    state
        .metrics
        .observe_container(ContainerOp::Start, &runtime_type, started.elapsed());
    tracing::info!(container_id = %id, "container started");
    Ok(())
}

/// containerd's `setContainerStarting`.
fn set_starting(state: &ContainerService, id: &ContainerId) -> Result<()> {
    update_status(state, id, |s| {
        let current = s.state();
        let refuse = |reason: &str| ContainerError::ContainerState {
            id: id.to_string(),
            state: state_name(current),
            reason: reason.to_owned(),
        };
        if current != ContainerState::ContainerCreated {
            return Err(refuse("only a created container can be started"));
        }
        if s.removing {
            return Err(refuse("it is being removed"));
        }
        if s.starting {
            return Err(refuse("it is already starting"));
        }
        s.starting = true;
        Ok(())
    })
    .map(|_| ())
}

fn runtime_type(state: &ContainerService, container: &Container) -> String {
    state
        .sandboxes
        .get(container.metadata.sandbox_id.as_ref())
        .ok()
        .and_then(|s| {
            state
                .config
                .cri
                .runtime(&s.metadata.runtime_handler)
                .map(|r| r.runtime_type.clone())
        })
        .unwrap_or_default()
}

/// Creates and starts the task; returns the `Tasks/Wait` sent before the
/// start, for the exit monitor.
async fn start_task(state: &ContainerService, container: &Container) -> Result<ArmedWait> {
    let meta = &container.metadata;
    let id = &meta.id;
    let sandbox = state
        .sandboxes
        .get(meta.sandbox_id.as_ref())
        .map_err(ContainerError::ContainerStore)?;
    if sandbox.status.state != SandboxState::Ready {
        return Err(ContainerError::ContainerSandboxNotReady {
            id: meta.sandbox_id.to_string(),
        });
    }
    // Recheck the target of a TARGET pid namespace.
    let ns = meta
        .config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.as_ref());
    if let Some(ns) = ns.filter(|n| n.pid == NamespaceMode::Target as i32) {
        super::validate_target(state, &meta.sandbox_id, &ns.target_id)?;
    }
    // The pod handler's `runtime_path`, from the sandbox read above.
    let runtime_path = state
        .config
        .cri
        .runtime(&sandbox.metadata.runtime_handler)
        .map(crate::sandbox::runtime_path)
        .unwrap_or_default();
    let handle = state.store.handle(id.as_ref());
    let io =
        handle
            .as_ref()
            .and_then(|h| h.io())
            .ok_or_else(|| ContainerError::ContainerState {
                id: id.to_string(),
                state: state_name(container.status.state()),
                reason: "the container has no io to start with".into(),
            })?;
    let io_err = |source| ContainerError::ContainerIo {
        id: id.to_string(),
        source,
    };
    let log = if meta.log_path.is_empty() {
        None
    } else {
        let limit = LineLimit::from_config(state.config.cri.max_container_log_line_size);
        Some(CriLog::open(&meta.log_path, limit, Arc::new(SystemClock)).map_err(io_err)?)
    };
    io.pipe(log).map_err(io_err)?;

    let snapshotter = handle
        .as_ref()
        .map(|h| h.snapshotter.clone())
        .unwrap_or_else(|| state.config.cri.snapshotter.clone());
    let rootfs = state
        .containerd
        .snapshots
        .mounts(&snapshotter, id.as_ref())
        .await?;
    let paths = io.fifos().paths().clone();
    let mut undo = Rollback::new();
    let run = async {
        state
            .containerd
            .tasks
            .create(CreateTask {
                container_id: id.to_string(),
                rootfs,
                stdin: paths.stdin_str(),
                stdout: paths.stdout_str(),
                stderr: paths.stderr_str(),
                terminal: paths.terminal,
                options: None,
                runtime_path: runtime_path.clone(),
            })
            .await?;
        {
            let tasks = Arc::clone(&state.containerd.tasks);
            let key = id.to_string();
            undo.push("delete task", async move {
                // `task.Delete(WithProcessKill)`: kill, wait, delete.
                if let Err(e) = tasks.kill(&key, "", super::signal::SIGKILL, true).await {
                    tracing::debug!(container_id = %key, error = %e, "kill task before delete");
                } else {
                    let _ = tokio::time::timeout(KILL_WAIT, tasks.wait(&key, "")).await;
                }
                match tasks.delete(&key, "").await {
                    Err(e) if !e.is_not_found() => Err(e),
                    _ => Ok(()),
                }
            });
        }
        // The wait goes out before the start, as containerd's plugin sends
        // it: its round trip is not made after StartContainer answered.
        let armed = ArmedWait::arm(Arc::clone(&state.containerd.tasks), id.as_ref());
        // Its request is on its way before the start's.
        tokio::task::yield_now().await;
        let started = async {
            let pid = state.containerd.tasks.start(id.as_ref(), "").await?;
            update_status_sync(state, id, |s| {
                s.pid = pid;
                s.started_at = now_nanos();
                Ok(())
            })
            .await
        };
        match started.await {
            Ok(_) => Ok(armed),
            Err(e) => {
                armed.abort();
                Err(e)
            }
        }
    };
    match run.await {
        Ok(armed) => {
            undo.commit();
            Ok(armed)
        }
        Err(e) => {
            for failure in undo.unwind().await {
                tracing::warn!(container_id = %id, %failure, "start cleanup failed");
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use cri_api::containerd::{ContainerdError, ExitStatus};
    use cri_store::container::ContainerStatus;
    use futures::StreamExt;
    use mockall::predicate::eq;
    use mockall::Sequence;
    use tonic::Code;

    use super::*;
    use crate::container::testutil::{
        add_live_container, add_sandbox, checkpointed, created_status, running_status, Mocks,
        TestEnv,
    };

    fn injected(op: &'static str) -> ContainerdError {
        ContainerdError::Rpc {
            op,
            code: Code::Internal,
            message: "injected".into(),
        }
    }

    async fn wait_for(env: &TestEnv, id: &str, want: ContainerState) -> ContainerStatus {
        for _ in 0..200 {
            let status = env.state.store.get(id).unwrap().status;
            if status.state() == want {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{id} never reached {want:?}");
    }

    /// The shim's side: open the output FIFOs of `id` and close them, as
    /// at exit.
    fn shim_closes_output(env: &TestEnv, id: &str) {
        let io = env.state.store.handle(id).unwrap().io().unwrap();
        for fifo in [io.fifos().stdout(), io.fifos().stderr()]
            .into_iter()
            .flatten()
        {
            drop(std::fs::OpenOptions::new().write(true).open(fifo).unwrap());
        }
    }

    #[tokio::test]
    async fn starts_the_task_then_handles_its_exit() {
        let mut mocks = Mocks::default();
        let mut seq = Sequence::new();
        mocks
            .services
            .snapshots
            .expect_mounts()
            .with(eq("overlayfs"), eq("c1"))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| Ok(Vec::new()));
        mocks
            .services
            .tasks
            .expect_create()
            .withf(|t| {
                t.container_id == "c1"
                    && t.stdout.ends_with("/c1-stdout")
                    && t.stderr.ends_with("/c1-stderr")
                    && t.stdin.is_empty()
                    && !t.terminal
                    && t.runtime_path.is_empty()
            })
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(1234));
        mocks
            .services
            .tasks
            .expect_start()
            .with(eq("c1"), eq(""))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| Ok(1234));
        mocks
            .services
            .tasks
            .expect_wait()
            .times(1)
            .returning(|_, _| {
                Ok(ExitStatus {
                    code: 3,
                    exited_at: Some(std::time::SystemTime::now()),
                })
            });
        mocks
            .services
            .tasks
            .expect_delete()
            .with(eq("c1"), eq(""))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| {
                Ok(ExitStatus {
                    code: 3,
                    exited_at: None,
                })
            });
        let env = TestEnv::with(mocks, "");
        add_sandbox(&env, "s1", true);
        add_live_container(&env, "c1", "s1", created_status());
        let mut events = env.state.events.subscribe();
        start_container(Arc::clone(&env.state), "c1".into())
            .await
            .unwrap();
        shim_closes_output(&env, "c1");
        let status = wait_for(&env, "c1", ContainerState::ContainerExited).await;
        assert!(status.started_at > 0 && status.finished_at > 0);
        assert_eq!((status.exit_code, status.pid), (3, 0));
        assert!(!status.starting);
        assert_eq!(checkpointed(&env, "c1").exit_code, 3);
        let kinds: Vec<i32> = vec![
            events.next().await.unwrap().container_event_type,
            events.next().await.unwrap().container_event_type,
        ];
        assert_eq!(
            kinds,
            [
                ContainerEventType::ContainerStartedEvent as i32,
                ContainerEventType::ContainerStoppedEvent as i32
            ]
        );
        let handle = env.state.store.handle("c1").unwrap();
        assert!(handle.wait_stopped(Duration::from_secs(1)).await);
    }

    /// Mocks whose one task create, of a task `check` accepts, fails.
    fn failing_create(check: fn(&CreateTask) -> bool) -> Mocks {
        let mut mocks = Mocks::default();
        mocks
            .services
            .snapshots
            .expect_mounts()
            .returning(|_, _| Ok(Vec::new()));
        mocks
            .services
            .tasks
            .expect_create()
            .withf(check)
            .times(1)
            .returning(|_| Err(injected("create task")));
        mocks
    }

    #[tokio::test]
    async fn the_task_is_made_with_the_runtime_path_of_the_pod_handler() {
        let mocks = failing_create(|t| t.runtime_path == "/opt/shims/containerd-shim-runc-v2");
        let runc = "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n\
                    runtime_type = \"io.containerd.runc.v2\"\n\
                    runtime_path = \"/opt/shims/containerd-shim-runc-v2\"";
        let env = TestEnv::with(mocks, runc);
        add_sandbox(&env, "s1", true);
        add_live_container(&env, "c1", "s1", created_status());
        let err = start_container(Arc::clone(&env.state), "c1".into())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("create task"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wait_is_sent_before_the_task_starts() {
        let log = Arc::new(std::sync::Mutex::new(Vec::<&str>::new()));
        let mut mocks = Mocks::default();
        mocks
            .services
            .snapshots
            .expect_mounts()
            .returning(|_, _| Ok(Vec::new()));
        mocks.services.tasks.expect_create().returning(|_| Ok(1234));
        let l = Arc::clone(&log);
        mocks.services.tasks.expect_start().returning(move |_, _| {
            // The shim takes its time: the wait is out meanwhile.
            std::thread::sleep(Duration::from_millis(200));
            l.lock().unwrap().push("started");
            Ok(1234)
        });
        let l = Arc::clone(&log);
        mocks
            .services
            .tasks
            .expect_wait()
            .times(1)
            .returning(move |_, _| {
                l.lock().unwrap().push("wait");
                Ok(ExitStatus {
                    code: 0,
                    exited_at: None,
                })
            });
        mocks.services.tasks.expect_delete().returning(|_, _| {
            Ok(ExitStatus {
                code: 0,
                exited_at: None,
            })
        });
        let env = TestEnv::with(mocks, "");
        add_sandbox(&env, "s1", true);
        add_live_container(&env, "c1", "s1", created_status());
        start_container(Arc::clone(&env.state), "c1".into())
            .await
            .unwrap();
        shim_closes_output(&env, "c1");
        // One wait, sent before the start returned, and it ends the
        // container.
        wait_for(&env, "c1", ContainerState::ContainerExited).await;
        assert_eq!(*log.lock().unwrap(), ["wait", "started"]);
    }

    #[tokio::test]
    async fn a_failed_task_create_records_start_error() {
        let env = TestEnv::with(failing_create(|_| true), "");
        add_sandbox(&env, "s1", true);
        add_live_container(&env, "c1", "s1", created_status());
        let err = start_container(Arc::clone(&env.state), "c1".into())
            .await
            .unwrap_err();
        assert_eq!(tonic::Status::from(err).code(), Code::Internal);
        let status = env.state.store.get("c1").unwrap().status;
        assert_eq!(status.state(), ContainerState::ContainerExited);
        assert_eq!(status.reason, START_ERROR_REASON);
        assert_eq!(status.exit_code, START_ERROR_EXIT_CODE);
        assert!(status.message.contains("injected"), "{}", status.message);
        assert!(!status.starting);
        assert_eq!(checkpointed(&env, "c1").reason, START_ERROR_REASON);
    }

    #[tokio::test]
    async fn a_failed_task_start_kills_and_deletes_the_task() {
        let mut mocks = Mocks::default();
        let mut seq = Sequence::new();
        mocks
            .services
            .snapshots
            .expect_mounts()
            .returning(|_, _| Ok(Vec::new()));
        mocks
            .services
            .tasks
            .expect_create()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(1));
        mocks
            .services
            .tasks
            .expect_start()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| Err(injected("start task")));
        mocks
            .services
            .tasks
            .expect_kill()
            .with(
                eq("c1"),
                eq(""),
                eq(super::super::signal::SIGKILL),
                eq(true),
            )
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _, _, _| Ok(()));
        mocks
            .services
            .tasks
            .expect_wait()
            // The one sent before the start, and the undo's after the kill.
            .times(2)
            .returning(|_, _| {
                Ok(ExitStatus {
                    code: 137,
                    exited_at: None,
                })
            });
        mocks
            .services
            .tasks
            .expect_delete()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| {
                Ok(ExitStatus {
                    code: 137,
                    exited_at: None,
                })
            });
        let env = TestEnv::with(mocks, "");
        add_sandbox(&env, "s1", true);
        add_live_container(&env, "c1", "s1", created_status());
        assert!(start_container(Arc::clone(&env.state), "c1".into())
            .await
            .is_err());
        let status = env.state.store.get("c1").unwrap().status;
        assert_eq!(status.reason, START_ERROR_REASON);
    }

    #[tokio::test]
    async fn only_created_containers_in_ready_sandboxes_start() {
        let env = TestEnv::new();
        add_sandbox(&env, "ready", true);
        add_sandbox(&env, "stopped", false);
        add_live_container(&env, "running", "ready", running_status());
        add_live_container(&env, "orphan", "stopped", created_status());
        for id in ["running", "orphan"] {
            let err = start_container(Arc::clone(&env.state), id.into())
                .await
                .unwrap_err();
            assert_eq!(
                tonic::Status::from(err).code(),
                Code::FailedPrecondition,
                "{id}"
            );
        }
        // The running one is untouched; the other failed to start.
        let running = env.state.store.get("running").unwrap().status;
        assert_eq!(running.state(), ContainerState::ContainerRunning);
        let orphan = env.state.store.get("orphan").unwrap().status;
        assert_eq!(orphan.reason, START_ERROR_REASON);
        let err = start_container(Arc::clone(&env.state), "nosuch".into())
            .await
            .unwrap_err();
        assert_eq!(tonic::Status::from(err).code(), Code::NotFound);
    }
}
