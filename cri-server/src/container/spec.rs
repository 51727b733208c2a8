//! The OCI spec step of CreateContainer: the image's user database read
//! from a temporary read-only view of the image (what containerd's
//! `WithUser` / `WithAdditionalGIDs` read from the rootfs), then
//! `cri_spec::ContainerSpecBuilder` on a blocking thread, since the host
//! seams do file I/O.

use std::sync::Arc;

use cri_api::containerd::Any;
use cri_api::ids::{ContainerId, SandboxId};
use cri_api::v1::{ContainerConfig, Mount as CriMount, PodSandboxConfig};
use cri_sandbox::host::RootfsUsers;
use cri_spec::{
    ContainerInputs, ContainerSpecBuilder, LabeledSpec, Platform, RuntimeOptions, SandboxFiles,
    SpecHost,
};
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::Spec;

use super::error::{ContainerError, Result};
use super::ContainerHost;
use super::ContainerService;

/// The type URL containerd stores container specs under.
pub const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";

/// Everything the spec of one container is built from.
pub(crate) struct SpecRequest {
    pub id: ContainerId,
    pub sandbox_id: SandboxId,
    pub sandbox_pid: u32,
    pub sandbox_config: PodSandboxConfig,
    pub sandbox_process_label: String,
    pub netns_path: String,
    pub config: ContainerConfig,
    pub image_config: ImageConfiguration,
    pub image_name: String,
    pub runtime_handler: String,
    pub options: RuntimeOptions,
    pub platform: Platform,
    pub volumes: Vec<CriMount>,
    pub target_pid: Option<u32>,
}

/// The `/etc/passwd` and `/etc/group` of images already read, by
/// snapshotter and chain id. A chain id names the content of every layer,
/// so what a view of it holds never changes: the second container of an
/// image needs no view mount. Bounded: at most [`UserDbCache::CAPACITY`]
/// images, and databases above [`UserDbCache::MAX_BYTES`] are not kept.
#[derive(Debug, Default)]
pub struct UserDbCache {
    entries: std::sync::Mutex<std::collections::HashMap<(String, String), Arc<RootfsUsers>>>,
}

impl UserDbCache {
    pub const CAPACITY: usize = 128;
    pub const MAX_BYTES: usize = 256 * 1024;

    fn get(&self, snapshotter: &str, chain_id: &str) -> Option<Arc<RootfsUsers>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(snapshotter.to_owned(), chain_id.to_owned()))
            .cloned()
    }

    fn insert(&self, snapshotter: &str, chain_id: &str, users: Arc<RootfsUsers>) {
        let size = users.passwd.as_ref().map_or(0, String::len)
            + users.group.as_ref().map_or(0, String::len);
        if size > Self::MAX_BYTES {
            return;
        }
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= Self::CAPACITY {
            entries.clear();
        }
        entries.insert((snapshotter.to_owned(), chain_id.to_owned()), users);
    }
}

/// `/etc/passwd` and `/etc/group` of the image whose layers end in
/// `chain_id`: from the cache, or read through a temporary view snapshot
/// `<id>-userdb` that is removed again.
pub(crate) async fn image_users(
    state: &ContainerService,
    id: &ContainerId,
    snapshotter: &str,
    chain_id: &str,
) -> Result<Arc<RootfsUsers>> {
    if let Some(users) = state.user_dbs.get(snapshotter, chain_id) {
        return Ok(users);
    }
    let snapshots = &state.containerd.snapshots;
    let key = format!("{id}-userdb");
    let mounts = snapshots.view(snapshotter, &key, chain_id, None).await?;
    let db = Arc::clone(&state.host.user_db);
    let users = tokio::task::spawn_blocking(move || db.load(&mounts))
        .await
        .map_err(|e| ContainerError::TaskFailed {
            rpc: "CreateContainer",
            message: e.to_string(),
        });
    if let Err(e) = snapshots.remove(snapshotter, &key).await {
        if !e.is_not_found() {
            tracing::warn!(key = %key, error = %e, "remove user database view");
        }
    }
    let users = Arc::new(users?.map_err(|source| ContainerError::ImageUserDb {
        id: id.to_string(),
        source,
    })?);
    state
        .user_dbs
        .insert(snapshotter, chain_id, Arc::clone(&users));
    Ok(users)
}

/// Builds the spec on a blocking thread.
pub(crate) async fn build(
    host: &ContainerHost,
    files: SandboxFiles,
    users: Arc<RootfsUsers>,
    req: SpecRequest,
) -> Result<LabeledSpec> {
    let os = Arc::clone(&host.os);
    let selinux = Arc::clone(&host.selinux);
    let id = req.id.clone();
    tokio::task::spawn_blocking(move || {
        let inputs = ContainerInputs {
            id: &req.id,
            sandbox_id: &req.sandbox_id,
            sandbox_pid: req.sandbox_pid,
            sandbox_config: &req.sandbox_config,
            image_config: &req.image_config,
            image_name: &req.image_name,
            runtime_handler: &req.runtime_handler,
            options: &req.options,
            sandbox_files: &files,
        };
        let spec_host = SpecHost {
            os: os.as_ref(),
            users: users.as_ref(),
            selinux: selinux.as_ref(),
        };
        let mut builder = ContainerSpecBuilder::new(&req.config, inputs, spec_host)
            .with_platform(req.platform.clone())
            .with_extra_mounts(req.volumes.clone())
            .with_sandbox_process_label(req.sandbox_process_label.clone())
            .with_netns_path(req.netns_path.clone());
        if let Some(pid) = req.target_pid {
            builder = builder.with_target_pid(pid);
        }
        builder.build_labeled()
    })
    .await
    .map_err(|e| ContainerError::TaskFailed {
        rpc: "CreateContainer",
        message: e.to_string(),
    })?
    .map_err(|source| ContainerError::ContainerSpec {
        id: id.to_string(),
        source,
    })
}

/// The spec as containerd stores it on the container record.
pub(crate) fn spec_any(id: &str, spec: &Spec) -> Result<Any> {
    let value = cri_spec::spec_to_json(spec).map_err(|source| ContainerError::SpecJson {
        id: id.to_owned(),
        op: "encode",
        source,
    })?;
    Ok(Any {
        type_url: SPEC_TYPE_URL.to_owned(),
        value,
    })
}

/// The spec stored on a container record.
pub(crate) fn spec_from_any(id: &str, any: Option<&Any>) -> Result<Spec> {
    let any = any.ok_or_else(|| {
        ContainerError::Containerd(cri_api::containerd::ContainerdError::Decode {
            op: "get container",
            message: format!("container {id} has no spec"),
        })
    })?;
    serde_json::from_slice(&any.value).map_err(|source| ContainerError::SpecJson {
        id: id.to_owned(),
        op: "decode",
        source,
    })
}

/// `linux.cgroupsPath` of a spec, empty without one.
pub(crate) fn cgroups_path(spec: &Spec) -> String {
    spec.linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}
