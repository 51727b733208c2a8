//! StopContainer (containerd's `container_stop.go`): the stop signal of
//! the image (SIGTERM by default), then SIGKILL once the timeout passed;
//! the exit itself is recorded by the exit monitor, which wakes the stop.
//! Idempotent on created, exited and unknown containers.

use std::time::{Duration, Instant, SystemTime};

use cri_api::containerd::ExitStatus;
use cri_api::v1::ContainerState;
use cri_store::container::Container;

use super::error::{ContainerError, Result};
use super::exit::{handle_container_exit, UNKNOWN_EXIT_CODE};
use super::signal::{parse_signal, DEFAULT_STOP_SIGNAL, SIGKILL};
use super::ContainerService;
use crate::metrics::ContainerOp;

/// How long a container may take to exit after SIGKILL.
const KILL_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the store is polled for a container without a live handle.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Stops container `id` (an id or unique prefix); an unknown id is fine.
pub async fn stop_container(state: &ContainerService, id: &str, timeout: Duration) -> Result<()> {
    let started = Instant::now();
    let container = match state.store.get(id) {
        Ok(c) => c,
        Err(cri_store::StoreError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(ContainerError::ContainerStore(e)),
    };
    tracing::Span::current().record("container_id", container.metadata.id.as_ref());
    stop(state, &container, timeout).await?;
    state
        .metrics
        .observe_container(ContainerOp::Stop, "", started.elapsed());
    Ok(())
}

/// containerd's `stopContainer`.
pub(crate) async fn stop(
    state: &ContainerService,
    container: &Container,
    timeout: Duration,
) -> Result<()> {
    let id = &container.metadata.id;
    let current = container.status.state();
    if current != ContainerState::ContainerRunning && current != ContainerState::ContainerUnknown {
        tracing::info!(container_id = %id, state = ?current, "container to stop is not running");
        return Ok(());
    }
    match state.containerd.tasks.get(id.as_ref(), "").await {
        Ok(_) => {}
        Err(e) if e.is_not_found() => {
            if current == ContainerState::ContainerUnknown {
                // Nothing runs: record the exit so the container can go.
                let exit = ExitStatus {
                    code: UNKNOWN_EXIT_CODE,
                    exited_at: Some(SystemTime::now()),
                };
                return handle_container_exit(state, id, exit).await;
            }
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    }
    // An unknown container has no exit monitor: wait for its task here.
    let inline = current == ContainerState::ContainerUnknown;
    let handle = state.store.handle(id.as_ref());
    if timeout > Duration::ZERO {
        let name = stop_signal(state, container);
        let signal = parse_signal(&name).ok_or_else(|| {
            ContainerError::InvalidArgument(format!(
                "failed to parse stop signal {name:?} of container {id}"
            ))
        })?;
        if handle.as_ref().is_none_or(|h| h.take_stop_signal()) {
            tracing::info!(container_id = %id, signal = %name, "stop container");
            kill(state, id.as_ref(), signal).await?;
        } else {
            tracing::info!(container_id = %id, "stop signal already sent; waiting");
        }
        if wait_exit(state, container, timeout, inline).await? {
            return Ok(());
        }
        tracing::debug!(container_id = %id, ?timeout, "stop signal timed out");
    }
    tracing::info!(container_id = %id, "kill container");
    kill(state, id.as_ref(), SIGKILL).await?;
    if wait_exit(state, container, KILL_TIMEOUT, inline).await? {
        Ok(())
    } else {
        Err(ContainerError::StopTimeout {
            id: id.to_string(),
            timeout: KILL_TIMEOUT,
        })
    }
}

/// The recorded stop signal, else the image's, else SIGTERM.
fn stop_signal(state: &ContainerService, container: &Container) -> String {
    let meta = &container.metadata;
    if !meta.stop_signal.is_empty() {
        return meta.stop_signal.clone();
    }
    state
        .images
        .store()
        .get(&meta.image_ref)
        .ok()
        .and_then(|i| {
            i.config
                .config()
                .as_ref()
                .and_then(|c| c.stop_signal().clone())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_STOP_SIGNAL.to_owned())
}

async fn kill(state: &ContainerService, id: &str, signal: u32) -> Result<()> {
    match state.containerd.tasks.kill(id, "", signal, false).await {
        Err(e) if !e.is_not_found() => Err(e.into()),
        _ => Ok(()),
    }
}

/// Waits at most `timeout` for the exit: recorded by the exit monitor, or
/// (`inline`, for a container without one) waited for and handled here.
async fn wait_exit(
    state: &ContainerService,
    container: &Container,
    timeout: Duration,
    inline: bool,
) -> Result<bool> {
    let id = &container.metadata.id;
    if !inline {
        return Ok(wait_stopped(state, id.as_ref(), timeout).await);
    }
    let exit =
        match tokio::time::timeout(timeout, state.containerd.tasks.wait(id.as_ref(), "")).await {
            Err(_) => return Ok(false),
            Ok(Ok(exit)) => exit,
            Ok(Err(e)) if e.is_not_found() => ExitStatus {
                code: UNKNOWN_EXIT_CODE,
                exited_at: Some(SystemTime::now()),
            },
            Ok(Err(e)) => return Err(e.into()),
        };
    handle_container_exit(state, id, exit).await?;
    Ok(true)
}

/// Waits until the exit of container `id` is recorded, at most `timeout`.
pub(crate) async fn wait_stopped(state: &ContainerService, id: &str, timeout: Duration) -> bool {
    if let Some(handle) = state.store.handle(id) {
        return handle.wait_stopped(timeout).await;
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let stopped = state.store.get(id).map_or(true, |c| {
            c.status.state() == ContainerState::ContainerExited
        });
        if stopped {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::{Arc, Mutex};

    use cri_api::containerd::{ContainerdError, TaskInfo};
    use mockall::predicate::eq;
    use mockall::Sequence;

    use super::*;
    use crate::container::testutil::{
        add_container, add_live_container, created_status, running_status, Mocks, TestEnv,
    };

    /// A state whose task service answers `get` for `c1` and records kills.
    fn env_with_kills(
        on_kill: impl Fn(u32) + Send + Sync + 'static,
    ) -> (TestEnv, Arc<Mutex<Vec<u32>>>) {
        let kills = Arc::new(Mutex::new(Vec::new()));
        let mut mocks = Mocks::default();
        mocks.services.tasks.expect_get().returning(|id, _| {
            Ok(TaskInfo {
                id: id.into(),
                ..TaskInfo::default()
            })
        });
        let seen = Arc::clone(&kills);
        mocks
            .services
            .tasks
            .expect_kill()
            .withf(|id, exec, _, all| id == "c1" && exec.is_empty() && !*all)
            .returning(move |_, _, signal, _| {
                seen.lock().unwrap().push(signal);
                on_kill(signal);
                Ok(())
            });
        (TestEnv::with(mocks, ""), kills)
    }

    #[tokio::test]
    async fn the_image_stop_signal_is_enough() {
        let handle_slot: Arc<Mutex<Option<Arc<crate::container::ContainerHandle>>>> =
            Arc::default();
        let slot = Arc::clone(&handle_slot);
        let (env, kills) = env_with_kills(move |_| {
            if let Some(h) = slot.lock().unwrap().as_ref() {
                h.mark_stopped();
            }
        });
        let handle = add_live_container(&env, "c1", "s1", running_status());
        *handle_slot.lock().unwrap() = Some(handle);
        stop_container(&env.state, "c1", Duration::from_secs(30))
            .await
            .unwrap();
        // The busybox test image says SIGQUIT; no SIGKILL was needed.
        assert_eq!(*kills.lock().unwrap(), [3]);
    }

    #[tokio::test]
    async fn sigkill_follows_the_timeout() {
        let handle_slot: Arc<Mutex<Option<Arc<crate::container::ContainerHandle>>>> =
            Arc::default();
        let slot = Arc::clone(&handle_slot);
        let (env, kills) = env_with_kills(move |signal| {
            if signal == SIGKILL {
                if let Some(h) = slot.lock().unwrap().as_ref() {
                    h.mark_stopped();
                }
            }
        });
        let handle = add_live_container(&env, "c1", "s1", running_status());
        *handle_slot.lock().unwrap() = Some(handle);
        let started = Instant::now();
        stop_container(&env.state, "c1", Duration::from_millis(200))
            .await
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(*kills.lock().unwrap(), [3, SIGKILL]);
        // Once stopped, a second stop signals nothing.
        stop_container(&env.state, "c1", Duration::from_millis(50))
            .await
            .unwrap();
        assert_eq!(*kills.lock().unwrap(), [3, SIGKILL]);
    }

    #[tokio::test]
    async fn stopped_created_and_unknown_ids_are_fine() {
        let env = TestEnv::new();
        add_container(&env, "created", "s1", created_status());
        let mut exited = running_status();
        exited.finished_at = 3;
        add_container(&env, "exited", "s1", exited);
        for id in ["created", "exited", "nosuch"] {
            stop_container(&env.state, id, Duration::from_secs(1))
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn an_unknown_container_without_a_task_is_marked_exited() {
        let mut mocks = Mocks::default();
        let mut seq = Sequence::new();
        let gone = |op| ContainerdError::NotFound {
            op,
            what: "c1".into(),
        };
        mocks
            .services
            .tasks
            .expect_get()
            .times(1)
            .in_sequence(&mut seq)
            .returning(move |_, _| Err(gone("get task")));
        mocks
            .services
            .tasks
            .expect_delete()
            .with(eq("c1"), eq(""))
            .times(1)
            .in_sequence(&mut seq)
            .returning(move |_, _| Err(gone("delete task")));
        let env = TestEnv::with(mocks, "");
        crate::container::testutil::add_sandbox(&env, "s1", true);
        let mut unknown = running_status();
        unknown.unknown = true;
        add_live_container(&env, "c1", "s1", unknown);
        let mut events = env.state.events.subscribe();
        stop_container(&env.state, "c1", Duration::from_secs(1))
            .await
            .unwrap();
        let status = env.state.store.get("c1").unwrap().status;
        assert_eq!(status.state(), ContainerState::ContainerExited);
        assert_eq!(status.exit_code, 255);
        use futures::StreamExt;
        let event = events.next().await.unwrap();
        assert_eq!(
            event.container_event_type,
            cri_api::v1::ContainerEventType::ContainerStoppedEvent as i32
        );
    }
}
