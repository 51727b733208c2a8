//! Containers: CreateContainer and the lifecycle around it (start, stop,
//! remove, status, list, resource updates, log reopening, exit handling
//! and the CRI container event stream).
//!
//! [`ContainerService`] holds their state; the sandbox RPCs reach the
//! containers of a pod through its `PodContainers` implementation.

mod attach;
mod create;
mod create_steps;
pub mod error;
pub mod events;
mod exec;
mod exec_sync;
pub(crate) mod exit;
pub mod labels;
mod list;
pub mod live;
mod log;
mod remove;
pub mod resources;
mod rootfs;
mod service;
pub mod signal;
pub(crate) mod spec;
mod start;
pub(crate) mod status;
mod stop;
mod update;
pub mod volumes;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cri_api::ids::{ContainerId, IdGenerator, RandomIds, SandboxId};
use cri_api::v1::ContainerState;
use cri_sandbox::host::{LinuxHostOs, LinuxRootfsUserDb, NoSeLinux, RootfsUserDb};
use cri_spec::{HostOs, SeLinux};
use cri_store::container::{Container, ContainerStatus};

use cri_metadata::StatusCheckpoints;
use error::Result;

pub use attach::{attach_container, running_container, AttachOptions};
pub use create::create_container;
pub use error::ContainerError;
pub use events::ContainerEvents;
pub use exec::{exec_in_container, ExecEnd, ExecOptions, PROCESS_TYPE_URL};
pub use exec_sync::{exec_sync, MAX_EXEC_SYNC_OUTPUT};
pub use exit::record_oom;
pub use list::{list_containers, list_containers_encoded};
pub use live::ContainerHandle;
pub use log::reopen_container_log;
pub use service::ContainerService;
pub use start::start_container;
pub use status::container_status;
pub use update::update_container_resources;

/// Stops a container: its stop signal, then SIGKILL after `timeout`.
/// Idempotent on stopped or exited containers and on unknown ids.
pub async fn stop_container(state: &ContainerService, id: &str, timeout: Duration) -> Result<()> {
    stop::stop_container(state, id, timeout).await
}

/// Removes a container (force-stopping a running one). Idempotent.
pub async fn remove_container(state: &ContainerService, id: &str) -> Result<()> {
    remove::remove_container(state, id).await
}

/// The OS seams of the container RPCs, real or mocked.
#[derive(Clone)]
pub struct ContainerHost {
    /// Host facts for the spec builder.
    pub os: Arc<dyn HostOs>,
    /// SELinux label allocation.
    pub selinux: Arc<dyn SeLinux>,
    /// Reads an image's `/etc/passwd` and `/etc/group` from its mounts.
    pub user_db: Arc<dyn RootfsUserDb>,
    /// Container and volume ids.
    pub ids: Arc<dyn IdGenerator>,
    /// This process's `oom_score_adj`, the floor with `restrict_oom_score_adj`.
    pub daemon_oom_score_adj: i32,
    /// Where cgroups are mounted, for the OOM check at exit.
    pub cgroup_root: PathBuf,
}

impl std::fmt::Debug for ContainerHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerHost")
            .field("daemon_oom_score_adj", &self.daemon_oom_score_adj)
            .finish_non_exhaustive()
    }
}

impl ContainerHost {
    /// The real host: temporary rootfs mounts go under `<state>/tmpmounts`.
    pub fn linux(state_dir: &Path) -> Self {
        let daemon_oom_score_adj = cri_sandbox::host::daemon_oom_score_adj().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read own oom_score_adj; assuming 0");
            0
        });
        Self {
            os: Arc::new(LinuxHostOs::new()),
            selinux: Arc::new(NoSeLinux),
            user_db: Arc::new(LinuxRootfsUserDb::new(state_dir.join("tmpmounts"))),
            ids: Arc::new(RandomIds),
            daemon_oom_score_adj,
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
        }
    }
}

/// The directories of one container (compat.md §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPaths {
    /// `<root>/containers/<id>`: status checkpoint, image volumes.
    pub root_dir: PathBuf,
    /// `<state>/containers/<id>`: FIFOs.
    pub volatile_dir: PathBuf,
}

impl ContainerPaths {
    pub fn new(state: &ContainerService, id: &ContainerId) -> Self {
        let server = &state.config.server;
        Self {
            root_dir: server.root_dir.join("containers").join(id.as_ref()),
            volatile_dir: server.state_dir.join("containers").join(id.as_ref()),
        }
    }
}

/// Now, in unix nanoseconds.
pub(crate) fn now_nanos() -> i64 {
    to_nanos(SystemTime::now())
}

/// `t` in unix nanoseconds (0 before the epoch).
pub(crate) fn to_nanos(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `os.RemoveAll`: a missing path is fine.
pub(crate) fn remove_dir_all(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The container with this id or unique id prefix.
pub(crate) fn get(state: &ContainerService, id: &str) -> Result<Container> {
    state.store.get(id).map_err(ContainerError::ContainerStore)
}

/// A failure inside a status update: the store's own or the update's.
enum UpdateError {
    Store(cri_store::StoreError),
    Update(ContainerError),
}

impl From<cri_store::StoreError> for UpdateError {
    fn from(e: cri_store::StoreError) -> Self {
        Self::Store(e)
    }
}

/// containerd's `Status.Update`: applies `update` to the status of the
/// container with this full id, in memory only (Starting, Removing).
pub(crate) fn update_status(
    state: &ContainerService,
    id: &ContainerId,
    update: impl FnOnce(&mut ContainerStatus) -> Result<()>,
) -> Result<ContainerStatus> {
    state
        .store
        .update_status(id, |s| update(s).map_err(UpdateError::Update))
        .map_err(|e| match e {
            UpdateError::Store(e) => ContainerError::ContainerStore(e),
            UpdateError::Update(e) => e,
        })
}

/// containerd's `Status.UpdateSync`: as [`update_status`], and the new
/// status is on disk when this returns. Unlike containerd, the write
/// happens after the record's lock is released (status and list calls do
/// not wait for the disk); the writes of one container are ordered, and a
/// write that a later update's has overtaken is skipped.
pub(crate) async fn update_status_sync(
    state: &ContainerService,
    id: &ContainerId,
    update: impl FnOnce(&mut ContainerStatus) -> Result<()>,
) -> Result<ContainerStatus> {
    let handle = state.store.handle(id.as_ref());
    let mut seq = 0;
    let status = update_status(state, id, |s| {
        update(s)?;
        if let Some(handle) = &handle {
            seq = handle.next_checkpoint_seq();
        }
        Ok(())
    })?;
    let checkpoints = StatusCheckpoints::new(&state.config.server.root_dir);
    let write = {
        let (id, status) = (id.clone(), status.clone());
        move || checkpoints.write(&id, &status)
    };
    let written = match handle {
        Some(handle) => handle.write_checkpoint(seq, write).await,
        // Every stored container has a handle; without one, write in place.
        None => write().map_err(live::CheckpointError::Write),
    };
    match written {
        Ok(()) => Ok(status),
        Err(live::CheckpointError::Write(e)) => Err(e.into()),
        Err(live::CheckpointError::Task(message)) => Err(ContainerError::TaskFailed {
            rpc: "status checkpoint",
            message,
        }),
    }
}

/// CRI's name of a state, as containerd prints it in errors.
pub(crate) fn state_name(state: ContainerState) -> &'static str {
    match state {
        ContainerState::ContainerCreated => "CONTAINER_CREATED",
        ContainerState::ContainerRunning => "CONTAINER_RUNNING",
        ContainerState::ContainerExited => "CONTAINER_EXITED",
        ContainerState::ContainerUnknown => "CONTAINER_UNKNOWN",
    }
}

/// containerd's `validateTargetContainer`: the target of a TARGET pid
/// namespace must exist, run, and belong to the same sandbox.
pub(crate) fn validate_target(
    state: &ContainerService,
    sandbox_id: &SandboxId,
    target_id: &str,
) -> Result<Container> {
    let target = get(state, target_id)?;
    if target.metadata.sandbox_id != *sandbox_id {
        return Err(ContainerError::InvalidArgument(format!(
            "container {target_id} (sandbox {}) does not belong to sandbox {sandbox_id}",
            target.metadata.sandbox_id
        )));
    }
    let current = target.status.state();
    if current != ContainerState::ContainerRunning {
        return Err(ContainerError::ContainerState {
            id: target_id.to_owned(),
            state: state_name(current),
            reason: "the pid namespace target must be running".into(),
        });
    }
    Ok(target)
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod checkpoint_tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use cri_api::v1::{ContainerStatusRequest, ListContainersRequest};

    use super::testutil::{add_live_container, checkpointed, running_status, TestEnv};
    use super::*;

    const PROMPT: Duration = Duration::from_secs(2);

    fn set_reason(
        env: &TestEnv,
        reason: &'static str,
    ) -> tokio::task::JoinHandle<Result<ContainerStatus>> {
        let state = Arc::clone(&env.state);
        tokio::spawn(async move {
            update_status_sync(&state, &ContainerId::from("c1"), |s| {
                s.reason = reason.to_owned();
                Ok(())
            })
            .await
        })
    }

    async fn in_memory(env: &TestEnv, reason: &str) {
        tokio::time::timeout(PROMPT, async {
            while env.state.store.get("c1").unwrap().status.reason != reason {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn status_calls_answer_while_the_checkpoint_disk_is_stuck() {
        let env = TestEnv::new();
        let handle = add_live_container(&env, "c1", "s1", running_status());
        // A checkpoint write in flight that does not end.
        let disk = handle.block_checkpoints().await;
        let update = set_reason(&env, "Slow");
        in_memory(&env, "Slow").await;

        let request = ContainerStatusRequest {
            container_id: "c1".into(),
            verbose: false,
        };
        let status = tokio::time::timeout(PROMPT, container_status(&env.state, request))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status.status.unwrap().reason, "Slow");
        let listed = list_containers(&env.state, &ListContainersRequest::default());
        assert_eq!(listed.len(), 1);
        // The update waits for the disk, and nothing is on it yet.
        assert!(!update.is_finished());
        assert_eq!(checkpointed(&env, "c1").reason, "");

        drop(disk);
        update.await.unwrap().unwrap();
        assert_eq!(checkpointed(&env, "c1").reason, "Slow");
    }

    #[tokio::test]
    async fn queued_checkpoints_land_in_update_order() {
        let env = TestEnv::new();
        let handle = add_live_container(&env, "c1", "s1", running_status());
        let disk = handle.block_checkpoints().await;
        let first = set_reason(&env, "First");
        in_memory(&env, "First").await;
        let second = set_reason(&env, "Second");
        in_memory(&env, "Second").await;
        drop(disk);
        first.await.unwrap().unwrap();
        second.await.unwrap().unwrap();
        assert_eq!(checkpointed(&env, "c1").reason, "Second");
    }
}
