//! Test fixtures of the container RPCs: a [`ContainerService`] over mocked
//! containerd, sandbox controller, SELinux and image user database, with
//! its root and state dirs in a temp dir, a busybox image in the image
//! store and deterministic ids.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cri_api::containerd::MockServices;
use cri_api::ids::{ContainerId, IdGenerator, SandboxId};
use cri_api::v1::{
    ContainerConfig, ContainerMetadata as CriContainerMetadata, ImageSpec, PodSandboxConfig,
    PodSandboxMetadata,
};
use cri_sandbox::cni::MockCniNetwork;
use cri_sandbox::controller::{ControllerStatus, MockSandboxController};
use cri_sandbox::files::SandboxFiles;
use cri_sandbox::host::{LinuxHostOs, MockRootfsUserDb, NoSeLinux, RootfsUsers};
use cri_sandbox::mounts::MockHostMounts;
use cri_sandbox::netns::MockNetnsManager;
use cri_spec::{Platform, SeLinux};
use cri_store::container::{Container, ContainerMetadata, ContainerStatus};
use cri_store::image::{Image, ImageStore};
use cri_store::sandbox::{Sandbox, SandboxMetadata, SandboxState, SandboxStatus};
use tempfile::TempDir;

use super::ContainerHost;
use super::ContainerService;
use crate::sandbox::{SandboxManager, SandboxParts};
use crate::service::{ServerParts, ServerState};
use cri_config::{Config, Overrides};
use cri_image::{ImageManager, ImageSettings};

pub(crate) const BUSYBOX: &str = "docker.io/library/busybox:latest";
pub(crate) const BUSYBOX_ID: &str =
    "sha256:1111111111111111111111111111111111111111111111111111111111111111";
pub(crate) const CHAIN_ID: &str =
    "sha256:2222222222222222222222222222222222222222222222222222222222222222";
pub(crate) const SANDBOX: &str = "sandbox-1";

/// Ids `c0`, `c1`, ... in order.
#[derive(Debug, Default)]
pub(crate) struct CountingIds(AtomicUsize);

impl IdGenerator for CountingIds {
    fn generate(&self) -> String {
        format!("c{}", self.0.fetch_add(1, Ordering::SeqCst))
    }
}

/// The seams a test sets expectations on before the state is built.
pub(crate) struct Mocks {
    pub services: MockServices,
    pub controller: MockSandboxController,
    pub user_db: MockRootfsUserDb,
    pub selinux: Option<Arc<dyn SeLinux>>,
}

impl Default for Mocks {
    fn default() -> Self {
        let mut controller = MockSandboxController::new();
        controller.expect_status().returning(|_, _| {
            Ok(ControllerStatus {
                pid: 4242,
                process_status: "running".into(),
                container: None,
            })
        });
        controller
            .expect_platform()
            .returning(|_| Ok(Platform::host()));
        let mut user_db = MockRootfsUserDb::new();
        user_db.expect_load().returning(|_| {
            Ok(RootfsUsers {
                passwd: Some(
                    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n".into(),
                ),
                group: Some("root:x:0:\nnogroup:x:65534:\n".into()),
            })
        });
        Self {
            services: MockServices::default(),
            controller,
            user_db,
            selinux: None,
        }
    }
}

/// A state and the temp dir holding its root and state dirs.
pub(crate) struct TestEnv {
    pub dir: TempDir,
    /// Both services, as the tonic layer holds them.
    pub server: Arc<ServerState>,
    /// The container service under test.
    pub state: Arc<ContainerService>,
}

impl TestEnv {
    /// A state whose mocks expect nothing.
    pub fn new() -> Self {
        Self::with(Mocks::default(), "")
    }

    /// A state over `mocks`, with `extra` lines in the CRI plugin section.
    pub fn with(mocks: Mocks, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "version = 2\n[cri_server]\ncontainerd_address = \"/run/test/containerd.sock\"\n\
             root_dir = \"{root}\"\nstate_dir = \"{state}\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\"]\n{extra}\n",
            root = dir.path().join("root").display(),
            state = dir.path().join("state").display(),
        );
        let config = Arc::new(
            Config::from_toml_str(&text, "test.toml", Overrides::default())
                .unwrap()
                .0,
        );
        let containerd = mocks.services.build();
        let images = ImageManager::new(
            containerd.clone(),
            ImageSettings::from_config(&config.cri),
            Arc::new(ImageStore::default()),
        );
        images.store().upsert(busybox());
        let mut mounts = MockHostMounts::new();
        mounts.expect_unmount_detach().returning(|_| Ok(()));
        let files = SandboxFiles::new(
            dir.path().join("root"),
            dir.path().join("state"),
            Arc::new(mounts),
        );
        let sandbox = SandboxManager::from_parts(SandboxParts {
            podsandbox: Arc::new(mocks.controller),
            files,
            netns: Arc::new(MockNetnsManager::new()),
            cni: Arc::new(MockCniNetwork::new()),
            handler_cni: HashMap::new(),
            ids: Arc::new(CountingIds::default()),
            daemon_oom_score_adj: 0,
        });
        let host = ContainerHost {
            os: Arc::new(LinuxHostOs::new()),
            selinux: mocks.selinux.unwrap_or_else(|| Arc::new(NoSeLinux)),
            user_db: Arc::new(mocks.user_db),
            ids: Arc::new(CountingIds::default()),
            daemon_oom_score_adj: 0,
            cgroup_root: dir.path().join("cgroup"),
        };
        let server = ServerState::new(ServerParts {
            config,
            containerd,
            images: Arc::new(images),
            sandbox_manager: sandbox,
            container_host: host,
            metrics: Arc::default(),
            stats: cri_stats::StatsCollector::host(&dir.path().join("containerd")),
        });
        let state = Arc::clone(&server.containers);
        Self { dir, server, state }
    }
}

/// The busybox image as the image store has it.
pub(crate) fn busybox() -> Image {
    let config = serde_json::from_value(serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/bin"],
            "Cmd": ["sh"],
            "Labels": {"from-image": "yes", "containerd.io/reserved": "no"},
            "StopSignal": "SIGQUIT"
        },
        "rootfs": {"type": "layers", "diff_ids": [CHAIN_ID]}
    }))
    .unwrap();
    Image {
        id: BUSYBOX_ID.into(),
        references: vec![BUSYBOX.into()],
        chain_id: CHAIN_ID.into(),
        size: 1,
        config,
        pinned: false,
        annotations: HashMap::new(),
    }
}

pub(crate) fn pod_config() -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: "pod".into(),
            uid: "uid1".into(),
            namespace: "ns".into(),
            attempt: 0,
        }),
        log_directory: "/var/log/pods/ns_pod_uid1".into(),
        ..PodSandboxConfig::default()
    }
}

/// Adds a sandbox with host networking, READY or NOTREADY.
pub(crate) fn add_sandbox(env: &TestEnv, id: &str, ready: bool) {
    add_sandbox_full(env, id, ready, "");
}

/// Adds a READY sandbox of runtime handler `handler`.
pub(crate) fn add_sandbox_with_handler(env: &TestEnv, id: &str, handler: &str) {
    add_sandbox_full(env, id, true, handler);
}

fn add_sandbox_full(env: &TestEnv, id: &str, ready: bool, handler: &str) {
    let metadata = SandboxMetadata {
        id: SandboxId::from(id),
        name: format!("pod_ns_uid_{id}"),
        config: pod_config(),
        netns_path: String::new(),
        ip: String::new(),
        additional_ips: Vec::new(),
        runtime_handler: handler.to_owned(),
        cni_result: None,
        process_label: String::new(),
    };
    let status = SandboxStatus {
        state: if ready {
            SandboxState::Ready
        } else {
            SandboxState::NotReady
        },
        pid: 4242,
        created_at: 1,
        network_down: false,
    };
    env.server
        .sandboxes
        .store
        .add(Sandbox::new(metadata, status))
        .unwrap();
}

/// A container config for busybox named `name`.
pub(crate) fn container_config(name: &str) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(CriContainerMetadata {
            name: name.into(),
            attempt: 1,
        }),
        image: Some(ImageSpec {
            image: BUSYBOX.into(),
            ..ImageSpec::default()
        }),
        labels: [("app".to_owned(), "web".to_owned())].into(),
        annotations: [("note".to_owned(), "kept".to_owned())].into(),
        log_path: format!("{name}/1.log"),
        ..ContainerConfig::default()
    }
}

/// A stored container record (not added).
pub(crate) fn container(id: &str, sandbox_id: &str, status: ContainerStatus) -> Container {
    Container::new(
        ContainerMetadata {
            id: ContainerId::from(id),
            name: format!("name-{id}"),
            sandbox_id: SandboxId::from(sandbox_id),
            config: container_config("web"),
            image_ref: "sha256:img".into(),
            log_path: String::new(),
            stop_signal: String::new(),
            process_label: String::new(),
            image_digest: String::new(),
            image_name: String::new(),
        },
        status,
    )
}

/// Adds a container to the store, with a handle that has no IO (as
/// recovery leaves a container whose FIFOs are gone).
pub(crate) fn add_container(env: &TestEnv, id: &str, sandbox_id: &str, status: ContainerStatus) {
    let handle = super::ContainerHandle::new(None, "", "");
    env.state
        .store
        .add(container(id, sandbox_id, status), handle)
        .unwrap();
}

/// Adds container `id` of sandbox `sandbox_id` with `status`, a live
/// handle with real FIFOs and IO under the state dir, its dirs and its
/// checkpoint, as CreateContainer leaves them.
pub(crate) fn add_live_container(
    env: &TestEnv,
    id: &str,
    sandbox_id: &str,
    status: ContainerStatus,
) -> Arc<super::ContainerHandle> {
    let cid = ContainerId::from(id);
    let paths = super::ContainerPaths::new(&env.state, &cid);
    std::fs::create_dir_all(&paths.root_dir).unwrap();
    std::fs::create_dir_all(&paths.volatile_dir).unwrap();
    let fifos =
        cri_io::FifoSet::create(&paths.volatile_dir, id, cri_io::StdioOptions::default()).unwrap();
    let io = cri_io::ContainerIo::new(cid.clone(), fifos).unwrap();
    cri_metadata::StatusCheckpoints::new(&env.state.config.server.root_dir)
        .write(&cid, &status)
        .unwrap();
    let mut record = container(id, sandbox_id, status);
    let name = record.metadata.name.clone();
    std::sync::Arc::make_mut(&mut record.metadata).image_ref = BUSYBOX_ID.into();
    let handle = super::ContainerHandle::new(Some(io), "overlayfs", &format!("/k8s.io/{id}"));
    let handle = env.state.store.add(record, handle).unwrap();
    env.state.names.reserve(&name, id).unwrap().keep();
    handle
}

/// A running container's status.
pub(crate) fn running_status() -> ContainerStatus {
    ContainerStatus {
        pid: 1234,
        created_at: 1,
        started_at: 2,
        ..ContainerStatus::default()
    }
}

/// A created container's status.
pub(crate) fn created_status() -> ContainerStatus {
    ContainerStatus {
        created_at: 1,
        ..ContainerStatus::default()
    }
}

/// The checkpointed status of container `id`.
pub(crate) fn checkpointed(env: &TestEnv, id: &str) -> ContainerStatus {
    cri_metadata::StatusCheckpoints::new(&env.state.config.server.root_dir)
        .read(&ContainerId::from(id))
        .unwrap()
}
