//! The steps of CreateContainer after the name reservation, each pushing
//! its undo once it succeeded: root and volatile dirs, image volumes,
//! runtime handler, spec (with the image's user database), SELinux label,
//! log path, FIFOs and IO, the containerd container (labels, metadata
//! extension), then its snapshot (and image volume contents) while the
//! status checkpoint is written, the live handle and the store entry.
//!
//! The record is made before the snapshot it names, so no lease is needed
//! (containerd's client takes one around snapshot and record): containerd
//! does not check that a record's snapshot exists, and from the moment it
//! does, the record keeps it from the garbage collector. That saves the
//! lease's two writes to containerd's database on every create.

use std::sync::Arc;

use cri_api::containerd::ContainerRecord;
use cri_api::ids::{ContainerId, SandboxId};
use cri_api::rollback::Rollback;
use cri_api::v1::{ContainerConfig, NamespaceMode};
use cri_io::{ContainerIo, FifoSet, StdioOptions};
use cri_store::container::{Container, ContainerMetadata, ContainerStatus};

use super::create::Checked;
use super::error::{ContainerError, Result};
use super::live::ContainerHandle;
use super::spec::{self, SpecRequest};
use super::ContainerService;
use super::{labels, resources, volumes, ContainerPaths};
use cri_metadata::{container_metadata_to_any, StatusCheckpoints, CONTAINER_METADATA_EXTENSION};

/// Undo names; failures of these leave containerd objects behind.
pub(crate) const UNDO_DELETE_CONTAINER: &str = "delete containerd container";
pub(crate) const UNDO_REMOVE_SNAPSHOT: &str = "remove snapshot";

/// The steps after the name reservation, and what they learn on the way.
pub(crate) struct Steps<'a> {
    pub state: &'a ContainerService,
    pub id: &'a ContainerId,
    pub checked: &'a Checked,
    /// The snapshotter of the rootfs snapshot, once known.
    pub snapshotter: String,
    /// The runtime type of the sandbox's handler, once known.
    pub runtime_type: String,
}

impl Steps<'_> {
    pub(crate) async fn run(
        &mut self,
        meta: &mut ContainerMetadata,
        undo: &mut Rollback,
    ) -> Result<()> {
        let state = self.state;
        let id = self.id;
        let config = &self.checked.config;
        let sandbox = &self.checked.sandbox;
        let sandbox_id = &sandbox.metadata.id;

        // Image: resolved locally, never pulled.
        let image_ref = config
            .image
            .as_ref()
            .map(|i| i.image.as_str())
            .unwrap_or("");
        let image = state.images.resolve_local(image_ref)?.ok_or_else(|| {
            cri_image::ImageError::NotFound {
                reference: image_ref.to_owned(),
            }
        })?;
        let image_name = image
            .references
            .first()
            .cloned()
            .unwrap_or_else(|| image.id.clone());

        // Root and volatile root dirs.
        let paths = ContainerPaths::new(state, id);
        make_dir(&paths.root_dir, "create container root directory")?;
        push_remove_dir(undo, "remove container root directory", &paths.root_dir);
        make_dir(
            &paths.volatile_dir,
            "create volatile container root directory",
        )?;
        push_remove_dir(
            undo,
            "remove volatile container root directory",
            &paths.volatile_dir,
        );

        // Image-defined volumes, unless ignored; a CRI mount wins.
        let volume_mounts = if state.config.cri.ignore_image_defined_volumes {
            Vec::new()
        } else {
            volumes::image_volume_mounts(
                &paths.root_dir,
                &config.mounts,
                &image.config,
                state.host.ids.as_ref(),
            )
        };

        let volume_paths: Vec<(std::path::PathBuf, String)> = volume_mounts
            .iter()
            .map(|m| (m.host_path.clone().into(), m.container_path.clone()))
            .collect();

        // The runtime handler of the sandbox.
        let handler = sandbox.metadata.runtime_handler.clone();
        let runtime = state.config.cri.runtime(&handler).ok_or_else(|| {
            ContainerError::UnknownRuntimeHandler {
                handler: handler.clone(),
            }
        })?;
        self.runtime_type = runtime.runtime_type.clone();
        self.snapshotter = state.config.cri.snapshotter_for(&handler).to_owned();
        let snapshotter = self.snapshotter.clone();

        // The OCI spec for the sandbox's platform.
        let target_pid = target_pid(state, sandbox_id, config)?;
        let users = spec::image_users(state, id, &snapshotter, &image.chain_id).await?;
        let options = crate::sandbox::spec_options(
            &state.config.cri,
            runtime,
            state.host.daemon_oom_score_adj,
        );
        let request = SpecRequest {
            id: id.clone(),
            sandbox_id: sandbox_id.clone(),
            sandbox_pid: self.checked.sandbox_pid,
            sandbox_config: self.checked.sandbox_config.clone(),
            sandbox_process_label: sandbox.metadata.process_label.clone(),
            netns_path: sandbox.metadata.netns_path.clone(),
            config: config.clone(),
            image_config: image.config.clone(),
            image_name: image_name.clone(),
            runtime_handler: handler.clone(),
            options,
            platform: self.checked.platform.clone(),
            volumes: volume_mounts,
            target_pid,
        };
        let files = state.sandboxes.files(&sandbox.metadata);
        let labeled = spec::build(&state.host, files, users, request).await?;
        // The label is recorded (also for privileged containers, whose spec
        // carries none) and released if the create fails.
        meta.process_label = labeled.process_label.clone();
        if !labeled.process_label.is_empty() {
            let selinux = Arc::clone(&state.host.selinux);
            let label = labeled.process_label.clone();
            undo.push("release selinux label", async move {
                selinux.release_label(&label);
                Ok::<(), String>(())
            });
        }
        let spec = labeled.spec;

        meta.image_ref = image.id.clone();
        meta.image_name = image_name.clone();
        meta.stop_signal = image
            .config
            .config()
            .as_ref()
            .and_then(|c| c.stop_signal().clone())
            .unwrap_or_default();
        let log_directory = &self.checked.sandbox_config.log_directory;
        meta.log_path = cri_io::log_path(log_directory, &config.log_path)
            .map_err(|source| ContainerError::ContainerIo {
                id: id.to_string(),
                source,
            })?
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        if meta.log_path.is_empty() {
            tracing::info!(container_id = %id, "logging disabled: empty log directory or log path");
        }

        // FIFOs and the container IO.
        let io = create_io(id, &paths, config)?;
        {
            let io = io.clone();
            undo.push("close container io", async move { io.close() });
        }

        // Labels, runtime, metadata extension, spec: the containerd container.
        let image_labels = image
            .config
            .config()
            .as_ref()
            .and_then(|c| c.labels().clone());
        let container_labels = labels::build_labels(
            &config.labels,
            image_labels.as_ref(),
            labels::CONTAINER_KIND_CONTAINER,
        );
        let runtime = state
            .sandbox_runtimes
            .get(&state.containerd, sandbox_id)
            .await?;
        let extension = container_metadata_to_any(meta)?;
        let record = ContainerRecord {
            id: id.to_string(),
            labels: container_labels,
            image: image_name,
            runtime,
            spec: Some(spec::spec_any(id.as_ref(), &spec)?),
            snapshotter: snapshotter.clone(),
            snapshot_key: id.to_string(),
            extensions: [(CONTAINER_METADATA_EXTENSION.to_owned(), extension)].into(),
            ..ContainerRecord::default()
        };

        // The record first: it holds the snapshot from the moment the
        // snapshot exists.
        state.containerd.containers.create(record).await?;
        {
            let containers = Arc::clone(&state.containerd.containers);
            let key = id.to_string();
            undo.push(UNDO_DELETE_CONTAINER, async move {
                match containers.delete(&key).await {
                    Err(e) if !e.is_not_found() => Err(e),
                    _ => Ok(()),
                }
            });
        }

        // The writable snapshot of the image (then what the image has at
        // its volume paths goes into the volumes) while the status
        // checkpoint is written (write, fsync, rename, fsync the dir: off
        // the async workers).
        let status = ContainerStatus {
            created_at: super::now_nanos(),
            resources: Some(resources::spec_to_cri(&spec)),
            ..ContainerStatus::default()
        };
        let checkpoints = StatusCheckpoints::new(&state.config.server.root_dir);
        let written = {
            let (checkpoints, id, status) = (checkpoints.clone(), id.clone(), status.clone());
            tokio::task::spawn_blocking(move || checkpoints.write(&id, &status))
        };
        let prepared = state.containerd.snapshots.prepare(
            &snapshotter,
            id.as_ref(),
            &image.chain_id,
            labels::snapshot_labels(&config.annotations),
            None,
        );
        let (prepared, written) = futures::join!(prepared, written);
        if prepared.is_ok() {
            let snapshots = Arc::clone(&state.containerd.snapshots);
            let (snapshotter, key) = (snapshotter.clone(), id.to_string());
            undo.push(UNDO_REMOVE_SNAPSHOT, async move {
                match snapshots.remove(&snapshotter, &key).await {
                    Err(e) if !e.is_not_found() => Err(e),
                    _ => Ok(()),
                }
            });
        }
        let written = written.map_err(|e| ContainerError::TaskFailed {
            rpc: "CreateContainer",
            message: e.to_string(),
        });
        if matches!(written, Ok(Ok(()))) {
            let id = id.clone();
            undo.push("delete status checkpoint", async move {
                checkpoints.delete(&id)
            });
        }
        let rootfs = prepared?;
        written??;
        if !volume_paths.is_empty() {
            let tmp = state.config.server.state_dir.join("tmpmounts");
            tokio::task::spawn_blocking(move || {
                super::rootfs::copy_image_volumes(&rootfs, &tmp, &volume_paths)
            })
            .await
            .map_err(|e| ContainerError::TaskFailed {
                rpc: "CreateContainer",
                message: e.to_string(),
            })?
            .map_err(|source| ContainerError::HostPath {
                op: "copy image volume contents into",
                path: paths.root_dir.join("volumes"),
                source,
            })?;
        }

        // The live handle and the store.
        let handle = ContainerHandle::new(Some(io), &snapshotter, &spec::cgroups_path(&spec))
            .with_user(super::status::spec_user(&spec));
        state
            .store
            .add(Container::new(meta.clone(), status), handle)
            .map_err(ContainerError::ContainerStore)?;
        Ok(())
    }
}

/// The pid of the target container for pid namespace mode TARGET, which
/// must run in the same sandbox (`validateTargetContainer`).
fn target_pid(
    state: &ContainerService,
    sandbox_id: &SandboxId,
    config: &ContainerConfig,
) -> Result<Option<u32>> {
    let ns = config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.as_ref());
    let Some(ns) = ns.filter(|n| n.pid == NamespaceMode::Target as i32) else {
        return Ok(None);
    };
    super::validate_target(state, sandbox_id, &ns.target_id).map(|c| Some(c.status.pid))
}

fn make_dir(path: &std::path::Path, op: &'static str) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .map_err(|source| ContainerError::HostPath {
            op,
            path: path.to_path_buf(),
            source,
        })
}

fn push_remove_dir(undo: &mut Rollback, step: &'static str, path: &std::path::Path) {
    let path = path.to_path_buf();
    undo.push(step, async move { super::remove_dir_all(&path) });
}

fn create_io(
    id: &ContainerId,
    paths: &ContainerPaths,
    config: &ContainerConfig,
) -> Result<ContainerIo> {
    let io_err = |source| ContainerError::ContainerIo {
        id: id.to_string(),
        source,
    };
    let opts = StdioOptions {
        stdin: config.stdin,
        tty: config.tty,
    };
    let fifos = FifoSet::create(&paths.volatile_dir, id.as_ref(), opts).map_err(io_err)?;
    ContainerIo::new(id.clone(), fifos.clone()).map_err(|e| {
        if let Err(undo) = fifos.remove() {
            tracing::warn!(error = %undo, "remove fifos after failed open");
        }
        io_err(e)
    })
}
