//! [`PodSandboxController`]: sandboxes as pause containers in containerd
//! (containerd's `podsandbox` sandboxer). A sandbox is its files under the
//! CRI root/state dirs, a containerd container (id = sandbox id) on a
//! snapshot of the pause image, and that container's task.

mod start;
mod task;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use cri_api::containerd::{
    ArmedWait, ContainerRecord, Containerd, ExitStatus, TaskMetric, TaskStatus,
};
use cri_api::ids::SandboxId;
use cri_spec::{HostOs, Platform, SeLinux};

pub use start::SPEC_TYPE_URL;
pub(crate) use task::{delete_task, delete_task_forcibly};

use super::{
    ControllerError, ControllerStatus, CreateSandbox, MetadataExtension, RecordMade,
    SandboxController, SandboxInstance,
};
use crate::files::SandboxFiles;
use crate::host::RootfsUserDb;
use start::Created;

type Result<T, E = ControllerError> = std::result::Result<T, E>;

/// The pause-container sandbox controller.
pub struct PodSandboxController {
    containerd: Containerd,
    files: SandboxFiles,
    host_os: Arc<dyn HostOs>,
    selinux: Arc<dyn SeLinux>,
    user_db: Arc<dyn RootfsUserDb>,
    platform: Platform,
    /// Sandboxes made by `create` whose task `start` has not started yet.
    created: Mutex<HashMap<SandboxId, Created>>,
    /// The SELinux process labels of sandboxes whose record exists while
    /// their `create` still runs (for `update_metadata`).
    recorded: Mutex<HashMap<SandboxId, String>>,
    /// `Tasks/Wait` calls sent before their task was started (as
    /// containerd's plugin does), for the first `wait` to take over.
    armed: Mutex<HashMap<SandboxId, ArmedWait>>,
}

/// Removes a sandbox from `PodSandboxController::recorded` when dropped.
struct ForgetRecorded<'a> {
    recorded: &'a Mutex<HashMap<SandboxId, String>>,
    id: &'a SandboxId,
}

impl Drop for ForgetRecorded<'_> {
    fn drop(&mut self) {
        self.recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(self.id);
    }
}

impl std::fmt::Debug for PodSandboxController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodSandboxController")
            .field("files", &self.files)
            .field("platform", &self.platform)
            .finish_non_exhaustive()
    }
}

impl PodSandboxController {
    /// A controller over containerd, making sandbox files with `files`,
    /// for the host's platform.
    pub fn new(
        containerd: Containerd,
        files: SandboxFiles,
        host_os: Arc<dyn HostOs>,
        selinux: Arc<dyn SeLinux>,
        user_db: Arc<dyn RootfsUserDb>,
    ) -> Self {
        Self {
            containerd,
            files,
            host_os,
            selinux,
            user_db,
            platform: Platform::host(),
            created: Mutex::new(HashMap::new()),
            recorded: Mutex::new(HashMap::new()),
            armed: Mutex::new(HashMap::new()),
        }
    }

    /// The sandbox files this controller makes and removes.
    pub fn files(&self) -> &SandboxFiles {
        &self.files
    }

    /// `id`'s record exists, made with `process_label`.
    fn note_recorded(&self, id: &SandboxId, process_label: &str) {
        self.recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.clone(), process_label.to_owned());
    }

    fn take_created(&self, id: &SandboxId) -> Option<Created> {
        self.created
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)
    }

    /// Sends `Tasks/Wait` for the sandbox's task, for `wait` to take over.
    fn arm_wait(&self, id: &SandboxId) {
        let waiter = ArmedWait::arm(Arc::clone(&self.containerd.tasks), id.as_ref());
        let replaced = self
            .armed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.clone(), waiter);
        if let Some(old) = replaced {
            old.abort();
        }
    }

    /// Takes the armed wait of `id`, if any.
    fn disarm_wait(&self, id: &SandboxId) -> Option<ArmedWait> {
        self.armed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        id: &SandboxId,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|_| ControllerError::Blocking { id: id.clone() })
    }
}

/// containerd's `ProcessStatus` names.
fn process_status_name(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Running => "running",
        TaskStatus::Created => "created",
        TaskStatus::Stopped => "stopped",
        TaskStatus::Paused => "paused",
        TaskStatus::Pausing => "pausing",
        TaskStatus::Unknown => "unknown",
    }
}

#[async_trait]
impl SandboxController for PodSandboxController {
    /// Files, rootfs snapshot, spec, container record and task (created,
    /// not started).
    async fn create(&self, request: CreateSandbox, record_made: RecordMade) -> Result<()> {
        // However create ends (or is dropped), its record is forgotten
        // here, after a created sandbox went into `created`.
        let _forget = ForgetRecorded {
            recorded: &self.recorded,
            id: &request.id,
        };
        let created = self.create_sandbox(&request, record_made).await?;
        let replaced = self
            .created
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(request.id.clone(), created);
        if let Some(stale) = replaced {
            // Not reachable through the CRI: an id is created once.
            stale.undo.commit();
        }
        Ok(())
    }

    /// Starts the task `create` made.
    async fn start(&self, id: &SandboxId) -> Result<SandboxInstance> {
        let created = self
            .take_created(id)
            .ok_or_else(|| ControllerError::NotCreated { id: id.clone() })?;
        self.start_created(created).await
    }

    /// One containerd Containers/Update with the field path
    /// `extensions.<key>`: only that extension changes.
    async fn update_metadata(&self, id: &SandboxId, metadata: MetadataExtension) -> Result<()> {
        let created = self
            .created
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .map(|c| c.process_label().to_owned());
        let process_label = created
            .or_else(|| {
                self.recorded
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(id)
                    .cloned()
            })
            .ok_or_else(|| ControllerError::NotCreated { id: id.clone() })?;
        let (key, value) = start::encode_metadata(id, &metadata, &process_label)?;
        let record = ContainerRecord {
            id: id.to_string(),
            extensions: HashMap::from([(key.clone(), value)]),
            ..ContainerRecord::default()
        };
        self.containerd
            .containers
            .update(record, vec![format!("extensions.{key}")])
            .await
            .map_err(ControllerError::containerd_op(
                "update sandbox metadata",
                id,
            ))?;
        Ok(())
    }

    async fn platform(&self, _id: &SandboxId) -> Result<Platform> {
        Ok(self.platform.clone())
    }

    /// Unmounts the sandbox shm, then kills (SIGKILL) and deletes the pause
    /// task if there is one. The pause process ignores SIGTERM, so the
    /// timeout does not apply, as in containerd.
    async fn stop(&self, id: &SandboxId, _timeout: Duration) -> Result<()> {
        let files = self.files.clone();
        let owned = id.clone();
        self.blocking(id, move || files.unmount_shm(&owned))
            .await?
            .map_err(|source| ControllerError::Files {
                id: id.clone(),
                source,
            })?;
        delete_task_forcibly(&self.containerd.tasks, id.as_ref())
            .await
            .map_err(ControllerError::containerd_op("stop sandbox task", id))?;
        Ok(())
    }

    /// Waits for the pause task to exit, then deletes it (containerd's
    /// `handleSandboxExit`); NotFound when there is no task to wait on.
    async fn wait(&self, id: &SandboxId) -> Result<ExitStatus> {
        // The wait sent when the task was started, else a new one (also
        // when that one was cancelled).
        let exit = ArmedWait::answer(
            self.disarm_wait(id),
            self.containerd.tasks.as_ref(),
            id.as_ref(),
        )
        .await
        .map_err(ControllerError::containerd_op("wait for sandbox task", id))?;
        // The task exited: it only has to be deleted, not killed first.
        delete_task(self.containerd.tasks.as_ref(), id.as_ref())
            .await
            .map_err(ControllerError::containerd_op(
                "delete exited sandbox task",
                id,
            ))?;
        Ok(exit)
    }

    async fn status(&self, id: &SandboxId, verbose: bool) -> Result<ControllerStatus> {
        let mut status = match self.containerd.tasks.get(id.as_ref(), "").await {
            Ok(task) => ControllerStatus {
                pid: task.pid,
                process_status: process_status_name(task.status).to_owned(),
                container: None,
            },
            Err(e) if e.is_not_found() => ControllerStatus {
                process_status: "deleted".to_owned(),
                ..ControllerStatus::default()
            },
            Err(e) => return Err(ControllerError::containerd_op("get sandbox task", id)(e)),
        };
        if verbose {
            status.container = match self.containerd.containers.get(id.as_ref()).await {
                Ok(record) => Some(record),
                Err(e) if e.is_not_found() => None,
                Err(e) => {
                    return Err(ControllerError::containerd_op("get sandbox container", id)(
                        e,
                    ))
                }
            };
        }
        Ok(status)
    }

    /// Removes the sandbox files, the task, the rootfs snapshot and the
    /// container record; each missing piece is fine.
    async fn shutdown(&self, id: &SandboxId) -> Result<()> {
        // A sandbox created and never started: removed below, as any.
        if let Some(created) = self.take_created(id) {
            created.undo.commit();
        }
        if let Some(waiter) = self.disarm_wait(id) {
            waiter.abort();
        }
        let files = self.files.clone();
        let owned = id.clone();
        self.blocking(id, move || files.remove(&owned))
            .await?
            .map_err(|source| ControllerError::Files {
                id: id.clone(),
                source,
            })?;
        // The task goes while the record is read; then the rootfs snapshot
        // and the record go side by side (the task no longer uses either).
        let (task, record) = tokio::join!(
            delete_task_forcibly(&self.containerd.tasks, id.as_ref()),
            self.containerd.containers.get(id.as_ref())
        );
        task.map_err(ControllerError::containerd_op("delete sandbox task", id))?;
        let record = match record {
            Ok(record) => record,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => {
                return Err(ControllerError::containerd_op("get sandbox container", id)(
                    e,
                ))
            }
        };
        let rootfs = async {
            if record.snapshot_key.is_empty() {
                return Ok(());
            }
            match self
                .containerd
                .snapshots
                .remove(&record.snapshotter, &record.snapshot_key)
                .await
            {
                Err(e) if !e.is_not_found() => Err(e),
                _ => Ok(()),
            }
        };
        let container = async {
            match self.containerd.containers.delete(id.as_ref()).await {
                Err(e) if !e.is_not_found() => Err(e),
                _ => Ok(()),
            }
        };
        let (rootfs, container) = tokio::join!(rootfs, container);
        rootfs.map_err(ControllerError::containerd_op("remove sandbox rootfs", id))?;
        container.map_err(ControllerError::containerd_op(
            "delete sandbox container",
            id,
        ))
    }

    async fn metrics(&self, id: &SandboxId) -> Result<Option<TaskMetric>> {
        let metrics = self
            .containerd
            .tasks
            .metrics(vec![id.to_string()])
            .await
            .map_err(ControllerError::containerd_op("get sandbox metrics", id))?;
        Ok(metrics.into_iter().find(|m| m.id == id.as_ref()))
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
