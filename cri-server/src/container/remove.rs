//! RemoveContainer (containerd's `container_remove.go`): force-stops a
//! running (or unknown) container, then removes its rootfs snapshot, its
//! containerd container, the status checkpoint, its dirs, the store entry
//! and the name, and sends CONTAINER_DELETED. Idempotent; every removal
//! tolerates what is already gone, so a failed remove can be retried.

use std::time::{Duration, Instant};

use cri_api::v1::{ContainerEventType, ContainerState};
use cri_store::container::Container;

use super::error::{ContainerError, Result};
use super::ContainerService;
use super::{events, remove_dir_all, state_name, stop, update_status, ContainerPaths};
use crate::metrics::ContainerOp;
use cri_metadata::StatusCheckpoints;

/// Removes container `id` (an id or unique prefix); an unknown id is fine.
pub async fn remove_container(state: &ContainerService, id: &str) -> Result<()> {
    let started = Instant::now();
    let container = match state.store.get(id) {
        Ok(c) => c,
        Err(cri_store::StoreError::NotFound { .. }) => {
            tracing::debug!(
                container_id = id,
                "remove of a container that does not exist"
            );
            return Ok(());
        }
        Err(e) => return Err(ContainerError::ContainerStore(e)),
    };
    let id = container.metadata.id.clone();
    tracing::Span::current().record("container_id", id.as_ref());
    let current = container.status.state();
    if current == ContainerState::ContainerRunning || current == ContainerState::ContainerUnknown {
        tracing::info!(container_id = %id, "forcibly stopping container");
        stop::stop(state, &container, Duration::ZERO).await?;
    }
    set_removing(state, &id)?;
    let result = remove(state, &container).await;
    if result.is_err() {
        if let Err(e) = update_status(state, &id, |s| {
            s.removing = false;
            Ok(())
        }) {
            tracing::error!(container_id = %id, error = %e, "reset removing state");
        }
    }
    result?;
    state
        .metrics
        .observe_container(ContainerOp::Remove, "", started.elapsed());
    tracing::info!(container_id = %id, "container removed");
    Ok(())
}

/// containerd's `setContainerRemoving`.
fn set_removing(state: &ContainerService, id: &cri_api::ids::ContainerId) -> Result<()> {
    update_status(state, id, |s| {
        let current = s.state();
        let refuse = |reason: &str| ContainerError::ContainerState {
            id: id.to_string(),
            state: state_name(current),
            reason: reason.to_owned(),
        };
        if current == ContainerState::ContainerRunning {
            return Err(refuse("it is still running, stop it first"));
        }
        if current == ContainerState::ContainerUnknown {
            return Err(refuse("its state is unknown, stop it first"));
        }
        if s.starting {
            return Err(refuse("it is starting"));
        }
        if s.removing {
            return Err(refuse("it is already being removed"));
        }
        s.removing = true;
        Ok(())
    })
    .map(|_| ())
}

async fn remove(state: &ContainerService, container: &Container) -> Result<()> {
    let id = &container.metadata.id;
    let handle = state.store.handle(id.as_ref());
    // `Container.Delete(WithSnapshotCleanup)`: the snapshot and the record,
    // side by side (each removal is retried as a whole if the other
    // fails). The snapshot is the one created with the container: key = id,
    // on the snapshotter the handle names; containerd is asked only for a
    // container without a handle.
    let (snapshotter, key) = match handle.as_ref() {
        Some(h) => (h.snapshotter.clone(), id.to_string()),
        None => match state.containerd.containers.get(id.as_ref()).await {
            Ok(record) => (record.snapshotter, record.snapshot_key),
            Err(e) if e.is_not_found() => (String::new(), String::new()),
            Err(e) => return Err(e.into()),
        },
    };
    let snapshot = async {
        if snapshotter.is_empty() || key.is_empty() {
            return Ok(());
        }
        match state.containerd.snapshots.remove(&snapshotter, &key).await {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    };
    let record = async {
        match state.containerd.containers.delete(id.as_ref()).await {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    };
    let checkpoints = StatusCheckpoints::new(&state.config.server.root_dir);
    let paths = ContainerPaths::new(state, id);
    let container_id = id.clone();
    // The checkpoint and the dirs go while containerd removes (off the
    // async workers): a failed containerd removal fails the call, and the
    // retry finds them gone, which is fine.
    let files = tokio::task::spawn_blocking(move || {
        checkpoints.delete(&container_id)?;
        for (op, dir) in [
            ("remove container root directory", paths.root_dir),
            (
                "remove volatile container root directory",
                paths.volatile_dir,
            ),
        ] {
            remove_dir_all(&dir).map_err(|source| ContainerError::HostPath {
                op,
                path: dir.clone(),
                source,
            })?;
        }
        Ok::<(), ContainerError>(())
    });
    let (snapshot, record, files) = futures::join!(snapshot, record, files);
    snapshot?;
    record?;
    files.map_err(|e| ContainerError::TaskFailed {
        rpc: "RemoveContainer",
        message: e.to_string(),
    })??;
    if let Some(io) = handle.as_ref().and_then(|h| h.io()) {
        if let Err(e) = io.close() {
            tracing::warn!(container_id = %id, error = %e, "close container io");
        }
    }
    if let Err(e) = state.store.remove(id) {
        tracing::debug!(container_id = %id, error = %e, "container already gone from the store");
    }
    state.stats.forget(id.as_ref());
    state.names.release(&container.metadata.name);
    events::emit(
        state,
        id.as_ref(),
        container.metadata.sandbox_id.as_ref(),
        ContainerEventType::ContainerDeletedEvent,
    )
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use cri_api::containerd::ContainerdError;
    use futures::StreamExt;
    use mockall::predicate::eq;
    use mockall::Sequence;
    use tonic::Code;

    use super::*;
    use crate::container::testutil::{add_live_container, running_status, Mocks, TestEnv};

    fn exited() -> cri_store::container::ContainerStatus {
        let mut s = running_status();
        s.pid = 0;
        s.finished_at = 3;
        s
    }

    fn not_found(op: &'static str) -> ContainerdError {
        ContainerdError::NotFound {
            op,
            what: "c1".into(),
        }
    }

    #[tokio::test]
    async fn removes_snapshot_record_and_files_without_reading_the_record() {
        // No `containers.get` expectation: the snapshotter and key come
        // from the store, so a read of the record fails the test.
        let mut mocks = Mocks::default();
        mocks
            .services
            .snapshots
            .expect_remove()
            .with(eq("overlayfs"), eq("c1"))
            .times(1)
            .returning(|_, _| Ok(()));
        mocks
            .services
            .containers
            .expect_delete()
            .with(eq("c1"))
            .times(1)
            .returning(|_| Ok(()));
        let env = TestEnv::with(mocks, "");
        add_live_container(&env, "c1", "s1", exited());
        let mut events = env.state.events.subscribe();
        remove_container(&env.state, "c1").await.unwrap();
        assert!(env.state.store.get("c1").is_err());
        assert!(env.state.store.handle("c1").is_none());
        assert_eq!(env.state.names.owner("name-c1"), None);
        assert!(!env.dir.path().join("root/containers/c1").exists());
        assert!(!env.dir.path().join("state/containers/c1").exists());
        let event = events.next().await.unwrap();
        assert_eq!(
            event.container_event_type,
            ContainerEventType::ContainerDeletedEvent as i32
        );
        // Idempotent: nothing is asked of containerd again.
        remove_container(&env.state, "c1").await.unwrap();
    }

    #[tokio::test]
    async fn objects_already_gone_are_fine() {
        let mut mocks = Mocks::default();
        // The snapshotter comes from the live handle.
        mocks
            .services
            .snapshots
            .expect_remove()
            .with(eq("overlayfs"), eq("c1"))
            .times(1)
            .returning(|_, _| Err(not_found("remove snapshot")));
        mocks
            .services
            .containers
            .expect_delete()
            .times(1)
            .returning(|_| Err(not_found("delete container")));
        let env = TestEnv::with(mocks, "");
        add_live_container(&env, "c1", "s1", exited());
        remove_container(&env.state, "c1").await.unwrap();
        assert!(env.state.store.get("c1").is_err());
    }

    #[tokio::test]
    async fn a_failed_remove_can_be_retried() {
        let mut mocks = Mocks::default();
        let mut seq = Sequence::new();
        mocks
            .services
            .snapshots
            .expect_remove()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| {
                Err(ContainerdError::FailedPrecondition {
                    op: "remove snapshot",
                    message: "busy".into(),
                })
            });
        mocks
            .services
            .snapshots
            .expect_remove()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| Ok(()));
        mocks
            .services
            .containers
            .expect_delete()
            .times(2)
            .returning(|_| Ok(()));
        let env = TestEnv::with(mocks, "");
        add_live_container(&env, "c1", "s1", exited());
        let err = remove_container(&env.state, "c1").await.unwrap_err();
        assert_eq!(tonic::Status::from(err).code(), Code::FailedPrecondition);
        let kept = env.state.store.get("c1").unwrap();
        assert!(!kept.status.removing, "removing flag not reset");
        remove_container(&env.state, "c1").await.unwrap();
        assert!(env.state.store.get("c1").is_err());
    }

    #[tokio::test]
    async fn a_starting_container_is_not_removed() {
        let env = TestEnv::new();
        let mut starting = crate::container::testutil::created_status();
        starting.starting = true;
        add_live_container(&env, "c1", "s1", starting);
        let err = remove_container(&env.state, "c1").await.unwrap_err();
        assert_eq!(tonic::Status::from(err).code(), Code::FailedPrecondition);
    }
}
