//! Recovering app containers (containerd's `loadContainer`): metadata
//! from the extension, status from the checkpoint, then reconciled with
//! the task: a running task gets its FIFOs re-attached (output keeps
//! flowing into the same CRI log) and its exit monitor re-armed; a task
//! that exited while we were down has its exit recorded and is deleted
//! (what it wrote after we died went with its FIFOs, closed by the shim);
//! a created-but-never-started task is deleted and the container stays
//! CREATED with fresh FIFOs; a task gone while the status said running
//! becomes EXITED 255 `Unknown`. Anything that does not fit keeps the
//! container UNKNOWN, removable.

use std::sync::Arc;
use std::time::SystemTime;

use cri_api::containerd::{ContainerRecord, ContainerdError, TaskInfo, TaskStatus};
use cri_api::ids::{ContainerId, SandboxId};
use cri_api::v1::{ContainerConfig, ContainerMetadata as CriContainerMetadata, ContainerState};
use cri_io::{ContainerIo, CriLog, FifoPaths, FifoSet, LineLimit, StdioOptions, SystemClock};
use cri_store::container::{Container, ContainerMetadata, ContainerStatus};

use super::{kill_and_delete_task, record_labels, spec_of, Outcome};
use crate::container::{ContainerHandle, ContainerPaths};
use crate::service::ServerState;
use cri_metadata::{container_metadata_from_any, StatusCheckpoints, CONTAINER_METADATA_EXTENSION};

/// containerd's `unknownExitCode` and `unknownExitReason`.
const UNKNOWN_EXIT_CODE: i32 = 255;
const UNKNOWN_REASON: &str = "Unknown";
const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";
const SANDBOX_ID_ANNOTATION: &str = "io.kubernetes.cri.sandbox-id";

/// Loads one app container record into the container store. Errors only
/// when containerd cannot answer (the whole recovery is retried then).
pub(super) async fn load(
    state: &Arc<ServerState>,
    record: &ContainerRecord,
    tasks: &super::Pass,
) -> Result<Outcome, ContainerdError> {
    let id = ContainerId::from(record.id.as_str());
    if state
        .containers
        .store
        .get(id.as_ref())
        .is_ok_and(|c| c.metadata.id == id)
    {
        return Ok(Outcome::AlreadyLoaded);
    }
    // Its writable layer, for the container stats (the next disk usage
    // pass measures it), as CreateContainer registers it.
    if !record.snapshot_key.is_empty() {
        state.stats.fs_usage().register(
            &record.id,
            cri_stats::WritableLayer {
                snapshotter: record.snapshotter.clone(),
                key: record.snapshot_key.clone(),
            },
        );
    }
    let spec = spec_of(record);
    let cgroups_path = spec
        .as_ref()
        .map(crate::container::spec::cgroups_path)
        .unwrap_or_default();
    let user = spec.as_ref().and_then(crate::container::status::spec_user);
    let paths = ContainerPaths::new(&state.containers, &id);
    let decoded = match record.extensions.get(CONTAINER_METADATA_EXTENSION) {
        Some(any) => container_metadata_from_any(&record.id, any).map_err(|e| e.to_string()),
        None => Err(format!("no {CONTAINER_METADATA_EXTENSION} extension")),
    };
    let metadata = match decoded {
        Ok(m) => m,
        Err(reason) => {
            tracing::error!(container_id = %id, %reason, "cannot load container metadata; keeping it UNKNOWN for removal");
            // Stop and remove checkpoint the exit: the dir must exist.
            if let Err(e) = std::fs::create_dir_all(&paths.root_dir) {
                tracing::warn!(container_id = %id, error = %e, "create container root dir");
            }
            let status = ContainerStatus {
                created_at: record.created_at.map_or(0, crate::container::to_nanos),
                exit_code: UNKNOWN_EXIT_CODE,
                reason: UNKNOWN_REASON.to_owned(),
                unknown: true,
                ..ContainerStatus::default()
            };
            let handle = ContainerHandle::new(None, &record.snapshotter, &cgroups_path);
            add(
                state,
                Container::new(degraded_metadata(record, spec.as_ref()), status),
                handle.with_user(user),
            );
            return Ok(Outcome::Degraded);
        }
    };
    let checkpoints = StatusCheckpoints::new(&state.config.server.root_dir);
    let mut status = match checkpoints.read(&id) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(container_id = %id, error = %e, "cannot load container status; it is UNKNOWN");
            if let Err(e) = std::fs::create_dir_all(&paths.root_dir) {
                tracing::warn!(container_id = %id, error = %e, "create container root dir");
            }
            ContainerStatus {
                exit_code: UNKNOWN_EXIT_CODE,
                reason: UNKNOWN_REASON.to_owned(),
                unknown: true,
                ..ContainerStatus::default()
            }
        }
    };
    if status.created_at == 0 {
        // The CRI allows no CreatedAt of 0 (the kubelet rejects such a
        // status): containerd's ContainerStatus takes the record's.
        status.created_at = record.created_at.map_or(0, crate::container::to_nanos);
    }
    let task = match tasks.get(state, &record.id).await {
        Ok(task) => Some(task),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e),
    };
    let before = status.clone();
    let mut io = None;
    let mut watch = false;
    match task {
        None => match status.state() {
            ContainerState::ContainerCreated => {
                io = new_io(&id, &paths, &metadata.config);
            }
            ContainerState::ContainerRunning => {
                tracing::warn!(container_id = %id, "task gone while the container ran; exit unknown");
                status.pid = 0;
                status.finished_at = crate::container::now_nanos();
                status.exit_code = UNKNOWN_EXIT_CODE;
                status.reason = UNKNOWN_REASON.to_owned();
            }
            _ => {}
        },
        Some(task) => match task.status {
            TaskStatus::Created => {
                kill_and_delete_task(state, &record.id).await?;
                if status.state() == ContainerState::ContainerCreated {
                    io = new_io(&id, &paths, &metadata.config);
                } else {
                    status.unknown = true;
                }
            }
            TaskStatus::Running | TaskStatus::Paused | TaskStatus::Pausing => {
                match status.state() {
                    ContainerState::ContainerExited | ContainerState::ContainerUnknown => {
                        status.unknown = true;
                    }
                    ContainerState::ContainerRunning => {}
                    ContainerState::ContainerCreated => {
                        // Crashed after Start, before the checkpoint.
                        status.started_at = crate::container::now_nanos();
                        status.pid = task.pid;
                    }
                }
                io = reattach_io(state, &id, &metadata, &task);
                watch = true;
            }
            TaskStatus::Stopped | TaskStatus::Unknown => {
                let oom = crate::container::exit::cgroup_oom_killed(
                    &state.containers.host.cgroup_root,
                    &cgroups_path,
                );
                kill_and_delete_task(state, &record.id).await?;
                if status.finished_at == 0 {
                    status.pid = 0;
                    let exited_at = task.exited_at.unwrap_or_else(SystemTime::now);
                    status.finished_at = crate::container::to_nanos(exited_at)
                        .max(status.started_at)
                        .max(1);
                    status.exit_code = task.exit_status as i32;
                    if oom && status.reason.is_empty() {
                        status.reason = crate::container::status::REASON_OOM_KILLED.to_owned();
                    }
                }
                tracing::info!(container_id = %id, exit_code = status.exit_code, "container exited while cri-server was down");
            }
        },
    }
    if status != before && !status.unknown {
        if let Err(e) = checkpoints.write(&id, &status) {
            tracing::warn!(container_id = %id, error = %e, "checkpoint recovered status");
        }
    }
    let handle = ContainerHandle::new(io, &record.snapshotter, &cgroups_path).with_user(user);
    if !matches!(status.state(), ContainerState::ContainerRunning) {
        handle.mark_stopped();
    }
    match state.containers.names.reserve(&metadata.name, id.as_ref()) {
        Ok(reservation) => reservation.keep(),
        Err(e) => tracing::warn!(container_id = %id, error = %e, "re-reserve container name"),
    }
    let current = status.state();
    add(state, Container::new(metadata, status), handle);
    if watch && current == ContainerState::ContainerRunning {
        tasks.watch_container(id.clone());
    }
    tracing::info!(container_id = %id, state = ?current, "recovered container");
    Ok(if current == ContainerState::ContainerUnknown {
        Outcome::Degraded
    } else {
        Outcome::Loaded
    })
}

fn add(state: &ServerState, container: Container, handle: ContainerHandle) {
    let id = container.metadata.id.clone();
    if let Err(e) = state.containers.store.add(container, handle) {
        tracing::error!(container_id = %id, error = %e, "add recovered container");
    }
}

/// Fresh FIFOs for a container that was never started.
fn new_io(
    id: &ContainerId,
    paths: &ContainerPaths,
    config: &ContainerConfig,
) -> Option<ContainerIo> {
    let opts = StdioOptions {
        stdin: config.stdin,
        tty: config.tty,
    };
    let io = FifoSet::create(&paths.volatile_dir, id.as_ref(), opts)
        .and_then(|fifos| ContainerIo::new(id.clone(), fifos));
    match io {
        Ok(io) => Some(io),
        Err(e) => {
            tracing::error!(container_id = %id, error = %e, "create io of created container");
            None
        }
    }
}

/// The task's FIFOs opened again, its output piped into the same CRI log.
fn reattach_io(
    state: &ServerState,
    id: &ContainerId,
    metadata: &ContainerMetadata,
    task: &TaskInfo,
) -> Option<ContainerIo> {
    let paths = FifoPaths::from_task_record(&task.stdin, &task.stdout, &task.stderr, task.terminal);
    let attach = || -> cri_io::Result<ContainerIo> {
        let io = ContainerIo::new(id.clone(), FifoSet::reopen(paths)?)?;
        let log = if metadata.log_path.is_empty() {
            None
        } else {
            let limit = LineLimit::from_config(state.config.cri.max_container_log_line_size);
            Some(CriLog::open(
                &metadata.log_path,
                limit,
                Arc::new(SystemClock),
            )?)
        };
        io.pipe(log)?;
        Ok(io)
    };
    match attach() {
        Ok(io) => Some(io),
        Err(e) => {
            tracing::error!(container_id = %id, error = %e, "re-attach container io");
            None
        }
    }
}

/// What the labels and the spec annotations tell of a container whose
/// metadata is unreadable.
fn degraded_metadata(
    record: &ContainerRecord,
    spec: Option<&oci_spec::runtime::Spec>,
) -> ContainerMetadata {
    let labels = record_labels(record);
    let sandbox_id = spec
        .and_then(|s| s.annotations().as_ref())
        .and_then(|a| a.get(SANDBOX_ID_ANNOTATION).cloned())
        .unwrap_or_default();
    let name = labels
        .get(CONTAINER_NAME_LABEL)
        .cloned()
        .unwrap_or_default();
    ContainerMetadata {
        id: ContainerId::from(record.id.as_str()),
        // Not a reservable name: the kubelet may create it again.
        name: record.id.clone(),
        sandbox_id: SandboxId::from(sandbox_id),
        config: ContainerConfig {
            metadata: Some(CriContainerMetadata { name, attempt: 0 }),
            labels,
            ..ContainerConfig::default()
        },
        image_ref: String::new(),
        log_path: String::new(),
        stop_signal: String::new(),
        process_label: String::new(),
        image_digest: String::new(),
        image_name: record.image.clone(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn degraded_metadata_names_the_sandbox_from_the_spec() {
        let spec: oci_spec::runtime::Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "annotations": {SANDBOX_ID_ANNOTATION: "s1"}
        }))
        .unwrap();
        let record = ContainerRecord {
            id: "c1".into(),
            image: "docker.io/library/busybox:latest".into(),
            labels: HashMap::from([
                ("io.cri-containerd.kind".to_owned(), "container".to_owned()),
                (CONTAINER_NAME_LABEL.to_owned(), "app".to_owned()),
            ]),
            ..ContainerRecord::default()
        };
        let m = degraded_metadata(&record, Some(&spec));
        assert_eq!(m.sandbox_id.as_ref(), "s1");
        assert_eq!(m.config.metadata.unwrap().name, "app");
        assert_eq!(m.name, "c1");
        assert_eq!(m.image_name, "docker.io/library/busybox:latest");
    }
}
