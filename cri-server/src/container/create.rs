//! CreateContainer, step by step as containerd's CRI plugin does it
//! (`container_create.go`). Every step after the name reservation pushes
//! its undo onto a [`Rollback`] once it succeeded; when a later step fails
//! the undos run newest first and the ones that fail are attached to the
//! error. If a containerd object could not be removed, the container stays
//! in the store as UNKNOWN (with its name) so RemoveContainer can retry.
//! The body runs in a task of its own: a cancelled RPC still completes or
//! unwinds.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cri_api::containerd::ContainerRecord;
use cri_api::ids::{ContainerId, SandboxId};
use cri_api::rollback::Rollback;
use cri_api::v1::{
    ContainerConfig, ContainerEventType, CreateContainerRequest, NamespaceMode, PodSandboxConfig,
};
use cri_io::{ContainerIo, FifoSet, StdioOptions};
use cri_store::container::{Container, ContainerMetadata, ContainerStatus};
use cri_store::sandbox::{Sandbox, SandboxState};
use tracing::Instrument;

use super::live::ContainerHandle;
use super::metrics::Operation;
use super::spec::{self, SpecRequest};
use super::{events, labels, resources, volumes, ContainerPaths};
use crate::error::{Result, ServerError};
use crate::metadata::{container_metadata_to_any, StatusCheckpoints, CONTAINER_METADATA_EXTENSION};
use crate::sandbox::SandboxError;
use crate::service::ServerState;

/// Undo names; failures of these leave containerd objects behind.
const UNDO_DELETE_CONTAINER: &str = "delete containerd container";
const UNDO_REMOVE_SNAPSHOT: &str = "remove snapshot";
/// How long the lease protecting the new snapshot lives if we crash.
const LEASE_EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// CreateContainer: runs [`create`] in its own task and waits for it.
pub async fn create_container(
    state: Arc<ServerState>,
    request: CreateContainerRequest,
) -> Result<String> {
    let span = tracing::Span::current();
    tokio::spawn(async move { create(&state, request).await }.instrument(span))
        .await
        .map_err(|e| ServerError::TaskFailed {
            rpc: "CreateContainer",
            message: e.to_string(),
        })?
}

fn invalid(message: &str) -> ServerError {
    ServerError::InvalidArgument(message.to_owned())
}

/// The request, checked, with the sandbox it names and what its
/// controller reports.
struct Checked {
    config: ContainerConfig,
    sandbox_config: PodSandboxConfig,
    sandbox: Sandbox,
    sandbox_pid: u32,
    platform: cri_spec::Platform,
}

async fn check(state: &ServerState, request: CreateContainerRequest) -> Result<Checked> {
    let CreateContainerRequest {
        pod_sandbox_id,
        config,
        sandbox_config,
    } = request;
    if pod_sandbox_id.is_empty() {
        return Err(invalid("pod sandbox id must not be empty"));
    }
    let config = config.ok_or_else(|| invalid("container config must not be empty"))?;
    let sandbox = state
        .sandboxes
        .get(&pod_sandbox_id)
        .map_err(ServerError::ContainerStore)?;
    if sandbox.status.state != SandboxState::Ready {
        return Err(ServerError::ContainerSandboxNotReady {
            id: sandbox.metadata.id.to_string(),
        });
    }
    if config.metadata.is_none() {
        return Err(invalid("container config must include metadata"));
    }
    if config.image.as_ref().is_none_or(|i| i.image.is_empty()) {
        return Err(invalid("container config must include an image"));
    }
    // The sandbox's controller status: the pid to join and the platform.
    let sandbox_id = &sandbox.metadata.id;
    let controller = state
        .sandbox
        .controller_of(&state.config, &sandbox.metadata.runtime_handler)?;
    let controller_error = |source| {
        ServerError::from(SandboxError::Controller {
            id: sandbox_id.to_string(),
            source,
        })
    };
    let status = controller
        .status(sandbox_id, false)
        .await
        .map_err(controller_error)?;
    let platform = controller
        .platform(sandbox_id)
        .await
        .map_err(controller_error)?;
    // The kubelet always sends the pod config; fall back to the stored one.
    let sandbox_config = sandbox_config.unwrap_or_else(|| sandbox.metadata.config.clone());
    Ok(Checked {
        config,
        sandbox_config,
        sandbox_pid: status.pid,
        platform,
        sandbox,
    })
}

/// CreateContainer's body.
pub(crate) async fn create(state: &ServerState, request: CreateContainerRequest) -> Result<String> {
    let checked = check(state, request).await?;
    let config = &checked.config;
    let sandbox_id = checked.sandbox.metadata.id.clone();
    let id = ContainerId(state.container_host.ids.generate());
    tracing::Span::current().record("container_id", id.as_ref());
    let pod_metadata = checked.sandbox_config.metadata.as_ref();
    let container_metadata = config.metadata.clone().unwrap_or_default();
    let name = labels::container_name(&container_metadata, pod_metadata);
    let reservation = state
        .container_names
        .reserve(&name, id.as_ref())
        .map_err(ServerError::ContainerStore)?;
    tracing::debug!(container_id = %id, name = %name, "reserved container name");

    let mut meta = ContainerMetadata {
        id: id.clone(),
        name,
        sandbox_id: sandbox_id.clone(),
        config: config.clone(),
        image_ref: String::new(),
        log_path: String::new(),
        stop_signal: String::new(),
        process_label: String::new(),
        image_digest: String::new(),
        image_name: String::new(),
    };
    let mut undo = Rollback::new();
    let mut steps = Steps {
        state,
        id: &id,
        checked: &checked,
        snapshotter: String::new(),
        runtime_type: String::new(),
    };
    let started = Instant::now();
    match steps.run(&mut meta, &mut undo).await {
        Ok(()) => {
            undo.commit();
            reservation.keep();
            events::emit(
                state,
                id.as_ref(),
                sandbox_id.as_ref(),
                ContainerEventType::ContainerCreatedEvent,
            )
            .await;
            state.container_metrics.observe(
                Operation::Create,
                &steps.runtime_type,
                started.elapsed(),
            );
            tracing::info!(container_id = %id, "container created");
            Ok(id.0)
        }
        Err(cause) => {
            let undo_failures = undo.unwind().await;
            let leftover = undo_failures
                .iter()
                .any(|f| f.step == UNDO_DELETE_CONTAINER || f.step == UNDO_REMOVE_SNAPSHOT);
            if leftover {
                keep_unknown(state, meta, &steps.snapshotter);
                reservation.keep();
            }
            Err(ServerError::CreateContainer {
                id: id.0,
                source: Box::new(cause),
                undo_failures,
            })
        }
    }
}

/// Keeps a container whose containerd objects could not be removed, in
/// UNKNOWN state, so that RemoveContainer retries the removal.
fn keep_unknown(state: &ServerState, meta: ContainerMetadata, snapshotter: &str) {
    let id = meta.id.clone();
    let status = ContainerStatus {
        created_at: super::now_nanos(),
        unknown: true,
        ..ContainerStatus::default()
    };
    state
        .live_containers
        .insert(id.as_ref(), ContainerHandle::new(None, snapshotter, ""));
    if let Err(e) = state.containers.add(Container::new(meta, status)) {
        tracing::error!(container_id = %id, error = %e, "keep half-created container as unknown");
    } else {
        tracing::warn!(container_id = %id, "containerd objects left behind; container kept as unknown for RemoveContainer");
    }
}

/// The steps after the name reservation, and what they learn on the way.
struct Steps<'a> {
    state: &'a ServerState,
    id: &'a ContainerId,
    checked: &'a Checked,
    snapshotter: String,
    runtime_type: String,
}

impl Steps<'_> {
    async fn run(&mut self, meta: &mut ContainerMetadata, undo: &mut Rollback) -> Result<()> {
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
            crate::image::ImageError::NotFound {
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
                state.container_host.ids.as_ref(),
            )
        };

        let volume_paths: Vec<(std::path::PathBuf, String)> = volume_mounts
            .iter()
            .map(|m| (m.host_path.clone().into(), m.container_path.clone()))
            .collect();

        // The runtime handler of the sandbox.
        let handler = sandbox.metadata.runtime_handler.clone();
        let runtime = state.config.cri.runtime(&handler).ok_or_else(|| {
            ServerError::UnknownRuntimeHandler {
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
            state.container_host.daemon_oom_score_adj,
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
        let files = crate::sandbox::sandbox_files(state, &sandbox.metadata);
        let labeled = spec::build(&state.container_host, files, users, request).await?;
        // The label is recorded (also for privileged containers, whose spec
        // carries none) and released if the create fails.
        meta.process_label = labeled.process_label.clone();
        if !labeled.process_label.is_empty() {
            let selinux = Arc::clone(&state.container_host.selinux);
            let label = labeled.process_label.clone();
            undo.push("release selinux label", async move {
                selinux.release_label(&label);
                Ok::<(), String>(())
            });
        }
        let spec = labeled.spec;

        // A writable snapshot of the image, protected by a lease until the
        // container record references it.
        let lease_id = format!("{id}-create");
        self.create_lease(&lease_id).await?;
        push_delete_lease(undo, state, &lease_id);
        let rootfs = state
            .containerd
            .snapshots
            .prepare(
                &snapshotter,
                id.as_ref(),
                &image.chain_id,
                labels::snapshot_labels(&config.annotations),
                Some(lease_id.clone()),
            )
            .await?;
        {
            let snapshots = Arc::clone(&state.containerd.snapshots);
            let (snapshotter, key) = (snapshotter.clone(), id.to_string());
            undo.push(UNDO_REMOVE_SNAPSHOT, async move {
                match snapshots.remove(&snapshotter, &key).await {
                    Err(e) if !e.is_not_found() => Err(e),
                    _ => Ok(()),
                }
            });
        }

        // What the image has at its volume paths goes into the volumes.
        if !volume_paths.is_empty() {
            let tmp = state.config.server.state_dir.join("tmpmounts");
            tokio::task::spawn_blocking(move || {
                super::rootfs::copy_image_volumes(&rootfs, &tmp, &volume_paths)
            })
            .await
            .map_err(|e| ServerError::TaskFailed {
                rpc: "CreateContainer",
                message: e.to_string(),
            })?
            .map_err(|source| ServerError::HostPath {
                op: "copy image volume contents into",
                path: paths.root_dir.join("volumes"),
                source,
            })?;
        }

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
            .map_err(|source| ServerError::ContainerIo {
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
        let sandbox_record = state.containerd.containers.get(sandbox_id.as_ref()).await?;
        let extension = container_metadata_to_any(meta)?;
        let record = ContainerRecord {
            id: id.to_string(),
            labels: container_labels,
            image: image_name,
            runtime: sandbox_record.runtime,
            spec: Some(spec::spec_any(id.as_ref(), &spec)?),
            snapshotter: snapshotter.clone(),
            snapshot_key: id.to_string(),
            extensions: [(CONTAINER_METADATA_EXTENSION.to_owned(), extension)].into(),
            ..ContainerRecord::default()
        };
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
        // The container record holds the snapshot now.
        if let Err(e) = state.containerd.leases.delete(&lease_id, false).await {
            tracing::warn!(lease = %lease_id, error = %e, "delete create lease");
        }

        // The status checkpoint, the live handle and the store.
        let status = ContainerStatus {
            created_at: super::now_nanos(),
            resources: Some(resources::spec_to_cri(&spec)),
            ..ContainerStatus::default()
        };
        let checkpoints = StatusCheckpoints::new(&state.config.server.root_dir);
        checkpoints.write(id, &status)?;
        {
            let id = id.clone();
            undo.push("delete status checkpoint", async move {
                checkpoints.delete(&id)
            });
        }
        let handle = ContainerHandle::new(Some(io), &snapshotter, &spec::cgroups_path(&spec))
            .with_user(super::status::spec_user(&spec));
        state.live_containers.insert(id.as_ref(), handle);
        {
            let live = Arc::clone(&state.live_containers);
            let key = id.to_string();
            undo.push("forget container handle", async move {
                live.remove(&key);
                Ok::<(), String>(())
            });
        }
        state
            .containers
            .add(Container::new(meta.clone(), status))
            .map_err(ServerError::ContainerStore)?;
        Ok(())
    }

    async fn create_lease(&self, lease_id: &str) -> Result<()> {
        let expire = SystemTime::now() + LEASE_EXPIRY;
        let labels = [(
            "containerd.io/gc.expire".to_owned(),
            cri_io::timestamp::rfc3339_nano(expire),
        )]
        .into();
        self.state
            .containerd
            .leases
            .create(lease_id, labels)
            .await?;
        Ok(())
    }
}

/// The pid of the target container for pid namespace mode TARGET, which
/// must run in the same sandbox (`validateTargetContainer`).
fn target_pid(
    state: &ServerState,
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
        .map_err(|source| ServerError::HostPath {
            op,
            path: path.to_path_buf(),
            source,
        })
}

fn push_remove_dir(undo: &mut Rollback, step: &'static str, path: &std::path::Path) {
    let path = path.to_path_buf();
    undo.push(step, async move { super::remove_dir_all(&path) });
}

fn push_delete_lease(undo: &mut Rollback, state: &ServerState, lease_id: &str) {
    let leases = Arc::clone(&state.containerd.leases);
    let lease_id = lease_id.to_owned();
    // Deleted on success too: gone is fine.
    undo.push("delete lease", async move {
        match leases.delete(&lease_id, false).await {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    });
}

fn create_io(
    id: &ContainerId,
    paths: &ContainerPaths,
    config: &ContainerConfig,
) -> Result<ContainerIo> {
    let io_err = |source| ServerError::ContainerIo {
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

#[cfg(test)]
#[path = "create_tests.rs"]
mod tests;
