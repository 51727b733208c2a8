//! Making and starting a pause-container sandbox (containerd's podsandbox
//! `Controller.Start`, split in two): `create` makes the sandbox files,
//! rootfs snapshot, OCI spec, containerd container and task; `start`
//! starts the task. Each step registers its undo; a failure in either
//! unwinds them newest first.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use cri_api::containerd::{Any, ContainerRecord, CreateTask, Mount};
use cri_api::ids::SandboxId;
use cri_api::rollback::Rollback;
use cri_spec::{PauseInputs, PauseSpecBuilder, SpecHost};

use super::task::{create_temporary_lease, delete_task_forcibly};
use super::PodSandboxController;
use crate::controller::{
    ControllerError, CreateSandbox, MetadataExtension, RecordMade, SandboxInstance,
};
use crate::files::SandboxFilesConfig;
use crate::host::{needs_user_db, RootfsUsers};

/// The type URL containerd gives the OCI spec of a container.
pub const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
/// Pod annotations with this prefix become labels of the rootfs snapshot
/// (containerd `snapshots.FilterInheritedLabels`).
const INHERITED_SNAPSHOT_LABEL_PREFIX: &str = "containerd.io/snapshot/";

type Result<T, E = ControllerError> = std::result::Result<T, E>;

/// What `create_steps` made before the task: the record, the rootfs
/// mounts, the SELinux process label, and the lease that held the
/// snapshot until the record referred to it, if one was needed.
struct Made {
    record: ContainerRecord,
    rootfs: Vec<Mount>,
    process_label: String,
    lease: Option<String>,
}

/// A sandbox made by `create`, its task not started yet, with the undo
/// of everything made.
pub(super) struct Created {
    pub instance: SandboxInstance,
    pub undo: Rollback,
}

impl Created {
    /// The SELinux process label the sandbox was made with.
    pub fn process_label(&self) -> &str {
        self.instance
            .labels
            .get("selinux_label")
            .map_or("", String::as_str)
    }
}

/// `source`, with what could not be undone after it.
async fn unwound(source: ControllerError, undo: Rollback) -> ControllerError {
    let failures = undo.unwind().await;
    if failures.is_empty() {
        source
    } else {
        ControllerError::WithUndo {
            source: Box::new(source),
            undo: failures,
        }
    }
}

impl PodSandboxController {
    /// Makes the sandbox up to its created task; on failure, unwinds.
    pub(super) async fn create_sandbox(
        &self,
        request: &CreateSandbox,
        record_made: RecordMade,
    ) -> Result<Created> {
        let mut undo = Rollback::new();
        match self.create_steps(request, record_made, &mut undo).await {
            Ok(instance) => Ok(Created { instance, undo }),
            Err(source) => Err(unwound(source, undo).await),
        }
    }

    /// Starts the task of a created sandbox; on failure, unwinds what
    /// `create_sandbox` made.
    pub(super) async fn start_created(&self, created: Created) -> Result<SandboxInstance> {
        let Created { instance, undo } = created;
        let id = &instance.id;
        // The wait goes out before the start, as containerd's plugin sends
        // it: the exit monitor takes it over, and its round trip is not
        // made after RunPodSandbox answered.
        self.arm_wait(id);
        // Its request is on its way before the start's.
        tokio::task::yield_now().await;
        match self.containerd.tasks.start(id.as_ref(), "").await {
            Ok(pid) => {
                undo.commit();
                Ok(SandboxInstance { pid, ..instance })
            }
            Err(e) => {
                if let Some(waiter) = self.disarm_wait(id) {
                    waiter.abort();
                }
                let source = ControllerError::containerd_op("start sandbox task", id)(e);
                Err(unwound(source, undo).await)
            }
        }
    }

    async fn create_steps(
        &self,
        req: &CreateSandbox,
        record_made: RecordMade,
        undo: &mut Rollback,
    ) -> Result<SandboxInstance> {
        let id = &req.id;
        let made = if needs_user_db(&user_to_resolve(req)) {
            self.create_leased(req, undo).await?
        } else {
            self.create_record_first(req, undo).await?
        };
        // The record (and its snapshot) exist: its metadata may be
        // updated while the task is created.
        self.note_recorded(id, &made.process_label);
        let _ = record_made.send(());
        let task = CreateTask {
            container_id: id.to_string(),
            rootfs: made.rootfs,
            runtime_path: req.runtime_path.clone(),
            ..CreateTask::default()
        };
        // A lease the snapshot needed goes while the task is created (the
        // record holds the snapshot now).
        let lease_gone = async {
            if let Some(lease) = &made.lease {
                self.delete_lease(lease).await;
            }
        };
        let (pid, ()) = tokio::join!(self.containerd.tasks.create(task), lease_gone);
        let pid = pid.map_err(ControllerError::containerd_op("create sandbox task", id))?;
        undo.push("delete sandbox task", {
            let (tasks, id) = (self.containerd.tasks.clone(), id.to_string());
            async move { delete_task_forcibly(&tasks, &id).await.map(|_| ()) }
        });
        Ok(SandboxInstance {
            id: id.clone(),
            pid,
            created_at: made.record.created_at.unwrap_or_else(SystemTime::now),
            labels: HashMap::from([
                ("oci_runtime_type".to_owned(), req.runtime.name.clone()),
                ("selinux_label".to_owned(), made.process_label),
            ]),
        })
    }

    /// The usual case, the spec needing nothing of the image's rootfs: the
    /// record, then the snapshot it names, while the files are written.
    /// No lease is needed: containerd does not check that a record's
    /// snapshot exists, and the record keeps the snapshot from the garbage
    /// collector from the moment it exists.
    async fn create_record_first(&self, req: &CreateSandbox, undo: &mut Rollback) -> Result<Made> {
        let id = &req.id;
        let (record, process_label) = self.pause_record(req, &RootfsUsers::empty(), undo)?;
        let record_then_snapshot = async {
            let created = self.containerd.containers.create(record).await?;
            let prepared = self.prepare_rootfs(req, None).await;
            Ok::<_, cri_api::containerd::ContainerdError>((created, prepared))
        };
        let (files, made) = tokio::join!(self.create_files(req), record_then_snapshot);
        if files.is_ok() {
            self.push_remove_files(id, undo);
        }
        let made = match made {
            Ok((record, prepared)) => {
                self.push_delete_container(id, undo);
                prepared
                    .map(|rootfs| {
                        self.push_remove_rootfs(req, undo);
                        (record, rootfs)
                    })
                    .map_err(ControllerError::containerd_op("prepare sandbox rootfs", id))
            }
            Err(e) => Err(ControllerError::containerd_op(
                "create sandbox container",
                id,
            )(e)),
        };
        files?;
        let (record, rootfs) = made?;
        Ok(Made {
            record,
            rootfs,
            process_label,
            lease: None,
        })
    }

    /// The spec needs the image's user database, read from the snapshot:
    /// the snapshot comes first, under a lease taken while the files are
    /// written, until the record refers to it.
    async fn create_leased(&self, req: &CreateSandbox, undo: &mut Rollback) -> Result<Made> {
        let id = &req.id;
        let (files, lease) = tokio::join!(
            self.create_files(req),
            create_temporary_lease(self.containerd.leases.as_ref())
        );
        if files.is_ok() {
            self.push_remove_files(id, undo);
        }
        let lease = match (files, lease) {
            (Ok(()), Ok(lease)) => lease,
            (Err(e), lease) => {
                if let Ok(lease) = lease {
                    self.delete_lease(&lease).await;
                }
                return Err(e);
            }
            (Ok(()), Err(e)) => return Err(ControllerError::containerd_op("create lease", id)(e)),
        };
        match self.create_from_rootfs(req, &lease, undo).await {
            Ok((record, rootfs, process_label)) => Ok(Made {
                record,
                rootfs,
                process_label,
                lease: Some(lease),
            }),
            Err(e) => {
                self.delete_lease(&lease).await;
                Err(e)
            }
        }
    }

    fn push_remove_files(&self, id: &SandboxId, undo: &mut Rollback) {
        let (files, id) = (self.files.clone(), id.clone());
        undo.push("remove sandbox files", async move {
            tokio::task::spawn_blocking(move || files.remove(&id))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
        });
    }

    /// Prepares the rootfs snapshot (with the pod's inherited labels).
    async fn prepare_rootfs(
        &self,
        req: &CreateSandbox,
        lease: Option<String>,
    ) -> std::result::Result<Vec<Mount>, cri_api::containerd::ContainerdError> {
        let snapshot_labels: HashMap<String, String> = req
            .config
            .annotations
            .iter()
            .filter(|(k, _)| k.starts_with(INHERITED_SNAPSHOT_LABEL_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.containerd
            .snapshots
            .prepare(
                &req.snapshotter,
                req.id.as_ref(),
                &req.image.chain_id,
                snapshot_labels,
                lease,
            )
            .await
    }

    /// Deletes the temporary lease; a failure is only logged (it expires).
    async fn delete_lease(&self, lease: &str) {
        if let Err(e) = self.containerd.leases.delete(lease, false).await {
            tracing::warn!(lease = %lease, error = %e, "delete temporary lease");
        }
    }

    async fn create_files(&self, req: &CreateSandbox) -> Result<()> {
        let files = self.files.clone();
        let (id, config) = (
            req.id.clone(),
            SandboxFilesConfig::from_pod_config(&req.config),
        );
        tokio::task::spawn_blocking(move || files.create(&id, &config))
            .await
            .map_err(|_| ControllerError::Blocking { id: req.id.clone() })?
            .map(|_| ())
            .map_err(|source| ControllerError::Files {
                id: req.id.clone(),
                source,
            })
    }

    /// Snapshot (under `lease`), the image's user database read from it,
    /// spec and container record; returns the record, the rootfs mounts
    /// and the SELinux process label.
    async fn create_from_rootfs(
        &self,
        req: &CreateSandbox,
        lease: &str,
        undo: &mut Rollback,
    ) -> Result<(ContainerRecord, Vec<Mount>, String)> {
        let id = &req.id;
        let rootfs = self
            .prepare_rootfs(req, Some(lease.to_owned()))
            .await
            .map_err(ControllerError::containerd_op("prepare sandbox rootfs", id))?;
        self.push_remove_rootfs(req, undo);
        let (db, mounts) = (Arc::clone(&self.user_db), rootfs.clone());
        let users = tokio::task::spawn_blocking(move || db.load(&mounts))
            .await
            .map_err(|_| ControllerError::Blocking { id: id.clone() })?
            .map_err(|source| ControllerError::UserDb {
                id: id.clone(),
                source,
            })?;
        let (record, process_label) = self.pause_record(req, &users, undo)?;
        let created = self.containerd.containers.create(record).await.map_err(
            ControllerError::containerd_op("create sandbox container", id),
        )?;
        self.push_delete_container(id, undo);
        Ok((created, rootfs, process_label))
    }

    fn push_remove_rootfs(&self, req: &CreateSandbox, undo: &mut Rollback) {
        let (snapshots, snapshotter, key) = (
            self.containerd.snapshots.clone(),
            req.snapshotter.clone(),
            req.id.to_string(),
        );
        undo.push("remove sandbox rootfs snapshot", async move {
            match snapshots.remove(&snapshotter, &key).await {
                Err(e) if !e.is_not_found() => Err(e),
                _ => Ok(()),
            }
        });
    }

    fn push_delete_container(&self, id: &SandboxId, undo: &mut Rollback) {
        let (containers, id) = (self.containerd.containers.clone(), id.to_string());
        undo.push("delete sandbox container", async move {
            match containers.delete(&id).await {
                Err(e) if !e.is_not_found() => Err(e),
                _ => Ok(()),
            }
        });
    }

    /// The pause container's spec and record; returns the record and the
    /// SELinux process label, whose release is registered in `undo`.
    fn pause_record(
        &self,
        req: &CreateSandbox,
        users: &RootfsUsers,
        undo: &mut Rollback,
    ) -> Result<(ContainerRecord, String)> {
        let id = &req.id;
        let paths = self.files.paths(id);
        let inputs = PauseInputs {
            sandbox_id: id,
            config: &req.config,
            image_config: &req.image.config,
            options: &req.spec_options,
            shm: &paths.shm,
            resolv_conf: &paths.resolv_conf,
        };
        let host = SpecHost {
            os: self.host_os.as_ref(),
            users,
            selinux: self.selinux.as_ref(),
        };
        let mut builder = PauseSpecBuilder::new(inputs, host).with_platform(self.platform.clone());
        if let Some(netns) = &req.netns_path {
            builder = builder.with_netns_path(netns);
        }
        let labeled = builder
            .build_labeled()
            .map_err(|source| ControllerError::Spec {
                id: id.clone(),
                source,
            })?;
        if !labeled.process_label.is_empty() {
            let (selinux, label) = (Arc::clone(&self.selinux), labeled.process_label.clone());
            undo.push("release selinux label", async move {
                selinux.release_label(&label);
                Ok::<(), String>(())
            });
        }
        tracing::trace!(sandbox_id = %id, spec = ?labeled.spec, "pause container spec");
        let spec_json =
            cri_spec::spec_to_json(&labeled.spec).map_err(|e| ControllerError::Encode {
                id: id.clone(),
                what: "pause container spec",
                message: e.to_string(),
            })?;
        let (key, extension) = encode_metadata(id, &req.metadata, &labeled.process_label)?;
        let record = ContainerRecord {
            id: id.to_string(),
            labels: req.labels.clone(),
            image: req.image.name.clone(),
            runtime: req.runtime.clone(),
            spec: Some(Any {
                type_url: SPEC_TYPE_URL.to_owned(),
                value: spec_json,
            }),
            snapshotter: req.snapshotter.clone(),
            snapshot_key: id.to_string(),
            extensions: HashMap::from([(key, extension)]),
            ..ContainerRecord::default()
        };
        Ok((record, labeled.process_label))
    }
}

/// The user the pause process runs as, as containerd's `WithUser` gets
/// it: the security context's `uid[:gid]`, else the image's user. Its
/// names need the image's passwd and group (`needs_user_db`).
fn user_to_resolve(req: &CreateSandbox) -> String {
    let security = req
        .config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref());
    let uid = security
        .and_then(|s| s.run_as_user.as_ref())
        .map(|v| v.value);
    let gid = security
        .and_then(|s| s.run_as_group.as_ref())
        .map(|v| v.value);
    match (uid, gid) {
        (Some(u), Some(g)) => format!("{u}:{g}"),
        (Some(u), None) => u.to_string(),
        (None, _) => req
            .image
            .config
            .config()
            .as_ref()
            .and_then(|c| c.user().clone())
            .unwrap_or_default(),
    }
}

/// The sandbox metadata extension (key and value) for `process_label`.
pub(super) fn encode_metadata(
    id: &SandboxId,
    metadata: &MetadataExtension,
    process_label: &str,
) -> Result<(String, Any), ControllerError> {
    metadata(process_label).map_err(|message| ControllerError::Encode {
        id: id.clone(),
        what: "sandbox metadata",
        message,
    })
}
