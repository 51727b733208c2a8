//! Test scaffolding for the sandbox RPCs: a `SandboxService` over mocked
//! containerd, a mocked sandbox controller, netns manager and CNI, each
//! logging its calls into one shared log so tests can check the order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::Notify;

use cri_api::containerd::{ContainerdError, MockServices};
use cri_api::ids::IdGenerator;
use cri_api::v1::{PodSandboxConfig, PodSandboxMetadata, RunPodSandboxRequest};
use cri_sandbox::cni::{
    CniError, CniNetwork, CniResult, InterfaceConfig, IpConfig, MockCniNetwork, SandboxNetwork,
};
use cri_sandbox::controller::{
    ControllerError, MockSandboxController, SandboxController, SandboxInstance,
};
use cri_sandbox::files::SandboxFiles;
use cri_sandbox::mounts::MockHostMounts;
use cri_sandbox::netns::{MockNetnsManager, NetNs, NetnsError};
use cri_store::image::{Image, ImageStore};

use super::manager::{SandboxManager, SandboxParts};
use crate::service::{ServerParts, ServerState};
use cri_config::{Config, Overrides};
use cri_image::{ImageManager, ImageSettings};

pub(crate) type Log = Arc<Mutex<Vec<String>>>;

pub(crate) fn push(log: &Log, entry: impl Into<String>) {
    log.lock().unwrap().push(entry.into());
}

pub(crate) fn entries(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

/// The id the first RunPodSandbox of a test gets.
pub(crate) const SANDBOX_ID: &str =
    "1000000000000000000000000000000000000000000000000000000000000000";
pub(crate) const NETNS: &str = "/run/netns/cni-test";
pub(crate) const PAUSE: &str = "registry.k8s.io/pause:3.8";

/// Ids `1000…`, `2000…`, `3000…` (64 hex digits; unique 1-digit prefixes).
#[derive(Default)]
struct CountingIds(AtomicU64);

impl IdGenerator for CountingIds {
    fn generate(&self) -> String {
        format!(
            "{:x}{}",
            self.0.fetch_add(1, Ordering::SeqCst) + 1,
            "0".repeat(63)
        )
    }
}

/// Which mocked step fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fail {
    Nothing,
    Netns,
    CniSetup,
    NoIp,
    ControllerCreate,
    ControllerStart,
    /// Start fails and the teardown undo fails too.
    StartAndTeardown,
    /// Writing the network into the sandbox's record fails.
    UpdateMetadata,
}

pub(crate) fn unavailable() -> ContainerdError {
    ContainerdError::Unavailable {
        address: "/c.sock".into(),
        message: "injected".into(),
    }
}

/// Mocks that log every call, failing at `fail`.
pub(crate) struct Mocks {
    pub controller: MockSandboxController,
    pub netns: MockNetnsManager,
    pub cni: MockCniNetwork,
    /// Notified when the controller's create is called.
    pub created: Arc<Notify>,
    /// Notified when the controller's stop is called.
    pub stopped: Arc<Notify>,
}

/// A CNI that enters each ADD (DEL) and then waits, before doing what
/// `inner` does, until `add_after` (`del_after`) is notified: run in
/// sequence with what notifies it, it never finishes.
pub(crate) struct GatedCni {
    pub inner: MockCniNetwork,
    pub log: Log,
    pub add_after: Option<Arc<Notify>>,
    pub del_after: Option<Arc<Notify>>,
}

#[async_trait::async_trait]
impl CniNetwork for GatedCni {
    async fn setup(&self, network: &SandboxNetwork) -> Result<CniResult, CniError> {
        if let Some(gate) = &self.add_after {
            push(&self.log, "cni add entered");
            gate.notified().await;
        }
        self.inner.setup(network).await
    }
    async fn teardown(&self, network: &SandboxNetwork) -> Result<(), CniError> {
        if let Some(gate) = &self.del_after {
            push(&self.log, "cni del entered");
            gate.notified().await;
        }
        self.inner.teardown(network).await
    }
    async fn status(&self) -> Result<(), CniError> {
        self.inner.status().await
    }
}

pub(crate) fn mocks(log: &Log, fail: Fail) -> Mocks {
    let mut netns = MockNetnsManager::new();
    let l = log.clone();
    netns.expect_create().returning(move || {
        push(&l, "create netns");
        if fail == Fail::Netns {
            return Err(NetnsError::Thread { path: NETNS.into() });
        }
        Ok(NetNs::new(NETNS))
    });
    let l = log.clone();
    let removed = Arc::new(AtomicBool::new(false));
    let r = Arc::clone(&removed);
    netns.expect_remove().returning(move |p| {
        push(&l, format!("remove netns {}", p.display()));
        r.store(true, Ordering::SeqCst);
        Ok(())
    });
    let l = log.clone();
    netns.expect_is_closed().returning(move |_| {
        push(&l, "netns closed?");
        Ok(removed.load(Ordering::SeqCst))
    });

    let mut cni = MockCniNetwork::new();
    let l = log.clone();
    cni.expect_setup().returning(move |net| {
        push(&l, format!("cni add {}", net.netns_path.display()));
        match fail {
            Fail::CniSetup => Err(CniError::NoPluginDirs),
            Fail::NoIp => Ok(CniResult::default()),
            _ => Ok(cni_result(&["10.88.0.5", "fd00::5"])),
        }
    });
    let l = log.clone();
    cni.expect_teardown().returning(move |net| {
        push(&l, format!("cni del {}", net.netns_path.display()));
        if fail == Fail::StartAndTeardown {
            return Err(CniError::NoPluginDirs);
        }
        Ok(())
    });
    cni.expect_status().returning(|| Ok(()));

    let mut controller = MockSandboxController::new();
    let (created, stopped) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let l = log.clone();
    let c = Arc::clone(&created);
    controller
        .expect_create()
        .returning(move |req, record_made| {
            push(&l, format!("controller create netns={:?}", req.netns_path));
            c.notify_one();
            if fail == Fail::ControllerCreate {
                return Err(ControllerError::NotCreated { id: req.id });
            }
            let _ = record_made.send(());
            Ok(())
        });
    let l = log.clone();
    controller.expect_start().returning(move |id| {
        push(&l, "controller start");
        if matches!(fail, Fail::ControllerStart | Fail::StartAndTeardown) {
            return Err(ControllerError::Containerd {
                op: "start sandbox task",
                id: id.clone(),
                source: unavailable(),
            });
        }
        Ok(SandboxInstance {
            id: id.clone(),
            pid: 4242,
            created_at: SystemTime::now(),
            labels: HashMap::from([("selinux_label".to_owned(), String::new())]),
        })
    });
    let l = log.clone();
    controller
        .expect_update_metadata()
        .returning(move |id, metadata| {
            let (key, _) = metadata("").unwrap();
            push(&l, format!("controller update {key}"));
            if fail == Fail::UpdateMetadata {
                return Err(ControllerError::Containerd {
                    op: "update sandbox metadata",
                    id: id.clone(),
                    source: unavailable(),
                });
            }
            Ok(())
        });
    let l = log.clone();
    let s = Arc::clone(&stopped);
    controller.expect_stop().returning(move |_, _| {
        push(&l, "controller stop");
        s.notify_one();
        Ok(())
    });
    let l = log.clone();
    controller.expect_shutdown().returning(move |_| {
        push(&l, "controller shutdown");
        Ok(())
    });
    let l = log.clone();
    // Waits fail as with containerd away, so the exit monitor keeps
    // retrying and the sandbox stays as the test left it.
    controller.expect_wait().returning(move |id| {
        push(&l, "controller wait");
        Err(ControllerError::Containerd {
            op: "wait",
            id: id.clone(),
            source: unavailable(),
        })
    });
    Mocks {
        controller,
        netns,
        cni,
        created,
        stopped,
    }
}

pub(crate) fn cni_result(ips: &[&str]) -> CniResult {
    let ip_configs = ips
        .iter()
        .map(|ip| IpConfig {
            ip: Some(ip.parse::<IpAddr>().unwrap()),
            gateway: None,
        })
        .collect();
    CniResult {
        interfaces: BTreeMap::from([(
            "eth0".to_owned(),
            InterfaceConfig {
                ip_configs,
                mac: "aa:bb:cc:dd:ee:ff".into(),
                sandbox: NETNS.into(),
            },
        )]),
        ..CniResult::default()
    }
}

fn config(dir: &Path, extra: &str) -> Config {
    let text = format!(
        "version = 2\n[cri_server]\ncontainerd_address = \"/run/test/containerd.sock\"\n\
         root_dir = \"{root}\"\nstate_dir = \"{state}\"\n\
         [plugins.\"io.containerd.grpc.v1.cri\"]\nsandbox_image = \"{PAUSE}\"\n{extra}\n",
        root = dir.join("root").display(),
        state = dir.join("state").display(),
    );
    Config::from_toml_str(&text, "test.toml", Overrides::default())
        .unwrap()
        .0
}

pub(crate) fn pause_image() -> Image {
    let config = serde_json::from_value(serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/pause"], "Labels": {"io.example/from-image": "1", "containerd.io/x": "reserved"}},
        "rootfs": {"type": "layers", "diff_ids": []},
    }))
    .unwrap();
    Image {
        id: "sha256:pauseid".into(),
        references: vec![PAUSE.into()],
        chain_id: "sha256:chain".into(),
        size: 1,
        config,
        pinned: true,
        annotations: HashMap::new(),
    }
}

/// A state over `mocks` (and containerd mocks that only list no images),
/// with the pause image in the image store.
pub(crate) async fn state(dir: &Path, mocks: Mocks, extra_config: &str) -> Arc<ServerState> {
    let Mocks {
        controller,
        netns,
        cni,
        ..
    } = mocks;
    state_with(
        dir,
        Arc::new(controller),
        netns,
        Arc::new(cni),
        extra_config,
    )
    .await
}

/// Like [`state`], with any controller.
pub(crate) async fn state_with(
    dir: &Path,
    controller: Arc<dyn SandboxController>,
    netns: MockNetnsManager,
    cni: Arc<dyn CniNetwork>,
    extra_config: &str,
) -> Arc<ServerState> {
    let mut services = MockServices::default();
    services.images.expect_list().returning(|_| Ok(Vec::new()));
    let containerd = services.build();
    let config = Arc::new(config(dir, extra_config));
    let images = ImageManager::new(
        containerd.clone(),
        ImageSettings::from_config(&config.cri),
        Arc::new(ImageStore::default()),
    );
    images.load().await.unwrap();
    images.store().upsert(pause_image());
    let files = SandboxFiles::new(dir.join("root"), dir.join("state"), {
        let mut m = MockHostMounts::new();
        m.expect_unmount_detach().returning(|_| Ok(()));
        Arc::new(m)
    });
    let sandbox = SandboxManager::from_parts(SandboxParts {
        podsandbox: controller,
        files,
        netns: Arc::new(netns),
        cni,
        handler_cni: HashMap::new(),
        ids: Arc::new(CountingIds::default()),
        daemon_oom_score_adj: 0,
    });
    let server_dir = dir.to_path_buf();
    ServerState::new(ServerParts {
        config: Arc::clone(&config),
        containerd,
        images: Arc::new(images),
        sandbox_manager: sandbox,
        container_host: crate::container::ContainerHost::linux(&server_dir.join("state")),
        metrics: Arc::default(),
        stats: cri_stats::StatsCollector::host(&server_dir.join("containerd")),
    })
}

pub(crate) fn pod(name: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "default".into(),
            attempt: 1,
        }),
        labels: HashMap::from([("app".to_owned(), name.to_owned())]),
        ..PodSandboxConfig::default()
    }
}

pub(crate) fn request(config: PodSandboxConfig, handler: &str) -> RunPodSandboxRequest {
    RunPodSandboxRequest {
        config: Some(config),
        runtime_handler: handler.into(),
    }
}
