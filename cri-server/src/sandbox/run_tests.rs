//! RunPodSandbox over mocks: validation, name reservation, handler choice,
//! then one failure per step, checking which undos ran, in which order,
//! and that a failed undo keeps the sandbox for RemovePodSandbox.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cri_api::v1::{
    ContainerEventType, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceOption,
};
use cri_sandbox::controller::{ControllerError, CreateSandbox, SandboxController, SandboxInstance};
use cri_store::sandbox::SandboxState;
use futures::StreamExt;

use super::*;
use crate::sandbox::testutil::{
    entries, mocks, pod, push, request, state, state_with, Fail, GatedCni, Log, NETNS, PAUSE,
    SANDBOX_ID,
};
use crate::service::ServerState;

/// No sandbox is stored and its name is free again.
fn assert_nothing_left(state: &ServerState) {
    assert!(state.sandboxes.store.list().is_empty());
    assert_eq!(state.sandboxes.names.owner("web_default_uid-web_1"), None);
}

async fn run_with(fail: Fail) -> (tempfile::TempDir, Log, Arc<ServerState>, Result<String>) {
    let dir = tempfile::tempdir().unwrap();
    let log: Log = Arc::default();
    let state = state(dir.path(), mocks(&log, fail), "").await;
    let result = run_pod_sandbox(Arc::clone(&state.sandboxes), request(pod("web"), "")).await;
    (dir, log, state, result)
}

fn check(log: &Log, expected: &[&str]) {
    let got = entries(log);
    let got: Vec<&str> = got
        .iter()
        .map(String::as_str)
        .filter(|e| *e != "controller wait" && *e != "netns closed?")
        .collect();
    assert_eq!(got, expected);
}

const CREATE: &str = "controller create netns=Some(\"/run/netns/cni-test\")";
const UPDATE: &str = "controller update io.cri-containerd.sandbox.metadata";

/// Like [`run_with`], with CNI ADD held until the controller's create is
/// called: it finishes only if the two run at the same time.
async fn run_gated(fail: Fail) -> (tempfile::TempDir, Log, Arc<ServerState>, Result<String>) {
    let dir = tempfile::tempdir().unwrap();
    let log: Log = Arc::default();
    let m = mocks(&log, fail);
    let cni = Arc::new(GatedCni {
        inner: m.cni,
        log: log.clone(),
        add_after: Some(Arc::clone(&m.created)),
        del_after: None,
    });
    let state = state_with(dir.path(), Arc::new(m.controller), m.netns, cni, "").await;
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        run_pod_sandbox(Arc::clone(&state.sandboxes), request(pod("web"), "")),
    )
    .await
    .expect("CNI ADD waits for the pause create: they did not run at the same time");
    (dir, log, state, result)
}

#[tokio::test]
async fn a_pod_gets_netns_network_and_a_ready_record() {
    let (_dir, log, state, result) = run_with(Fail::Nothing).await;
    assert_eq!(result.unwrap(), SANDBOX_ID);
    check(
        &log,
        &[
            "create netns",
            CREATE,
            &format!("cni add {NETNS}"),
            UPDATE,
            "controller start",
        ],
    );
    let sandbox = state.sandboxes.store.get(SANDBOX_ID).unwrap();
    assert_eq!(sandbox.status.state, SandboxState::Ready);
    assert_eq!(sandbox.status.pid, 4242);
    assert!(sandbox.status.created_at > 0);
    let meta = &sandbox.metadata;
    assert_eq!(meta.name, "web_default_uid-web_1");
    assert_eq!(meta.netns_path, NETNS);
    assert_eq!(
        (meta.ip.as_str(), meta.additional_ips.as_slice()),
        ("10.88.0.5", &["fd00::5".to_owned()][..])
    );
    assert!(meta.cni_result.as_ref().unwrap()["Interfaces"]["eth0"].is_object());
    assert_eq!(
        state
            .sandboxes
            .names
            .owner("web_default_uid-web_1")
            .as_deref(),
        Some(SANDBOX_ID)
    );
}

#[tokio::test]
async fn metadata_with_empty_fields_is_accepted_as_containerd_does() {
    let dir = tempfile::tempdir().unwrap();
    let log: Log = Arc::default();
    let state = state(dir.path(), mocks(&log, Fail::Nothing), "").await;
    let mut config = pod("web");
    if let Some(m) = config.metadata.as_mut() {
        m.uid.clear();
        m.namespace.clear();
    }
    let id = run_pod_sandbox(Arc::clone(&state.sandboxes), request(config, ""))
        .await
        .unwrap();
    let sandbox = state.sandboxes.store.get(&id).unwrap();
    assert_eq!(sandbox.status.state, SandboxState::Ready);
    assert_eq!(sandbox.metadata.name, "web___1");
    assert_eq!(
        state.sandboxes.names.owner("web___1").as_deref(),
        Some(id.as_str())
    );
}

#[tokio::test]
async fn a_running_pod_sends_created_then_started_with_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let log: Log = Arc::default();
    let state = state(dir.path(), mocks(&log, Fail::Nothing), "").await;
    let mut events = state.containers.events.subscribe();
    let id = run_pod_sandbox(Arc::clone(&state.sandboxes), request(pod("web"), ""))
        .await
        .unwrap();
    for kind in [
        ContainerEventType::ContainerCreatedEvent,
        ContainerEventType::ContainerStartedEvent,
    ] {
        let event = events.next().await.unwrap();
        assert_eq!(event.container_id, id);
        assert_eq!(event.container_event_type, kind as i32);
        let status = event.pod_sandbox_status.unwrap();
        assert_eq!(status.id, id);
        assert_eq!(
            status.state,
            cri_api::v1::PodSandboxState::SandboxReady as i32
        );
        assert!(event.containers_statuses.is_empty());
    }
}

#[tokio::test]
async fn host_network_pods_get_no_netns_and_no_cni() {
    let dir = tempfile::tempdir().unwrap();
    let log: Log = Arc::default();
    let state = state(dir.path(), mocks(&log, Fail::Nothing), "").await;
    let mut config = pod("host");
    config.linux = Some(LinuxPodSandboxConfig {
        security_context: Some(LinuxSandboxSecurityContext {
            namespace_options: Some(NamespaceOption {
                network: cri_api::v1::NamespaceMode::Node as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    run_pod_sandbox(Arc::clone(&state.sandboxes), request(config, ""))
        .await
        .unwrap();
    check(&log, &["controller create netns=None", "controller start"]);
    let meta = state.sandboxes.store.get(SANDBOX_ID).unwrap().metadata;
    assert!(meta.netns_path.is_empty() && meta.ip.is_empty() && meta.cni_result.is_none());
}

#[tokio::test]
async fn the_controller_gets_the_sandbox_to_make() {
    let dir = tempfile::tempdir().unwrap();
    let log: Log = Arc::default();
    let mut m = mocks(&log, Fail::Nothing);
    let seen: Arc<Mutex<Option<CreateSandbox>>> = Arc::default();
    let mut controller = cri_sandbox::controller::MockSandboxController::new();
    let s = Arc::clone(&seen);
    controller
        .expect_create()
        .returning(move |req, record_made| {
            *s.lock().unwrap() = Some(req);
            let _ = record_made.send(());
            Ok(())
        });
    controller.expect_start().returning(|id| {
        Ok(cri_sandbox::controller::SandboxInstance {
            id: id.clone(),
            pid: 1,
            created_at: std::time::SystemTime::now(),
            labels: HashMap::new(),
        })
    });
    let updated: Arc<Mutex<Option<(String, cri_api::containerd::Any)>>> = Arc::default();
    let u = Arc::clone(&updated);
    controller
        .expect_update_metadata()
        .times(1)
        .returning(move |_, metadata| {
            *u.lock().unwrap() = Some(metadata("").unwrap());
            Ok(())
        });
    controller.expect_wait().returning(|id| {
        Err(cri_sandbox::controller::ControllerError::Containerd {
            op: "wait",
            id: id.clone(),
            source: cri_api::containerd::ContainerdError::NotFound {
                op: "wait",
                what: id.to_string(),
            },
        })
    });
    m.controller = controller;
    let state = state(dir.path(), m, "restrict_oom_score_adj = true").await;
    run_pod_sandbox(Arc::clone(&state.sandboxes), request(pod("web"), "runc"))
        .await
        .unwrap();
    let req = seen.lock().unwrap().take().unwrap();
    assert_eq!(req.image.name, PAUSE);
    assert_eq!(req.image.chain_id, "sha256:chain");
    assert_eq!(req.snapshotter, "overlayfs");
    assert_eq!(req.runtime.name, "io.containerd.runc.v2");
    assert_eq!(
        req.runtime.options.as_ref().unwrap().type_url,
        "containerd.runc.v1.Options"
    );
    assert!(req.spec_options.restrict_oom_score_adj);
    assert_eq!(req.labels["io.cri-containerd.kind"], "sandbox");
    assert_eq!(req.labels["app"], "web");
    assert_eq!(req.labels["io.example/from-image"], "1");
    assert!(!req.labels.contains_key("containerd.io/x"));
    let (key, any) = (req.metadata)("").unwrap();
    assert_eq!(key, "io.cri-containerd.sandbox.metadata");
    assert_eq!(
        any.type_url,
        "github.com/containerd/cri/pkg/store/sandbox/Metadata"
    );
    let json: serde_json::Value = serde_json::from_slice(&any.value).unwrap();
    assert_eq!(json["Version"], "v1");
    assert_eq!(json["Metadata"]["NetNSPath"], NETNS);
    // The network is set up while the record is made: it comes later.
    assert_eq!(json["Metadata"]["IP"], "");
    assert_eq!(json["Metadata"]["CNIResult"], serde_json::Value::Null);
    assert_eq!(json["Metadata"]["RuntimeHandler"], "runc");
    // ... with the update, which writes what the store has, in full.
    let (key, any) = updated.lock().unwrap().take().unwrap();
    assert_eq!(key, "io.cri-containerd.sandbox.metadata");
    let stored = state.sandboxes.store.get(SANDBOX_ID).unwrap().metadata;
    assert_eq!(any, cri_metadata::sandbox_metadata_to_any(&stored).unwrap());
    let json: serde_json::Value = serde_json::from_slice(&any.value).unwrap();
    assert_eq!(json["Metadata"]["IP"], "10.88.0.5");
    assert_eq!(json["Metadata"]["AdditionalIPs"][0], "fd00::5");
    assert!(json["Metadata"]["CNIResult"]["Interfaces"]["eth0"].is_object());
}

#[tokio::test]
async fn failed_netns_leaves_nothing_and_frees_the_name() {
    let (_dir, log, state, result) = run_with(Fail::Netns).await;
    assert!(matches!(result.unwrap_err(), SandboxError::Netns { .. }));
    check(&log, &["create netns"]);
    assert_nothing_left(&state);
}

#[tokio::test]
async fn failed_cni_add_removes_the_pause_then_deletes_and_removes_the_netns() {
    // ADD fails first; the pause created meanwhile is removed too.
    let (_dir, log, state, result) = run_with(Fail::CniSetup).await;
    assert!(matches!(
        result.unwrap_err(),
        SandboxError::NetworkSetup { .. }
    ));
    check(
        &log,
        &[
            "create netns",
            CREATE,
            &format!("cni add {NETNS}"),
            "controller stop",
            "controller shutdown",
            &format!("cni del {NETNS}"),
            &format!("remove netns {NETNS}"),
        ],
    );
    assert_nothing_left(&state);
}

#[tokio::test]
async fn cni_add_runs_while_the_pause_is_made() {
    let (_dir, log, state, result) = run_gated(Fail::Nothing).await;
    assert_eq!(result.unwrap(), SANDBOX_ID);
    check(
        &log,
        &[
            "create netns",
            CREATE,
            "cni add entered",
            &format!("cni add {NETNS}"),
            UPDATE,
            "controller start",
        ],
    );
    let meta = state.sandboxes.store.get(SANDBOX_ID).unwrap().metadata;
    assert_eq!(meta.ip, "10.88.0.5");
}

#[tokio::test]
async fn a_cni_add_failing_after_the_pause_was_made_still_removes_it() {
    let (_dir, log, state, result) = run_gated(Fail::CniSetup).await;
    assert!(matches!(
        result.unwrap_err(),
        SandboxError::NetworkSetup { .. }
    ));
    check(
        &log,
        &[
            "create netns",
            CREATE,
            "cni add entered",
            &format!("cni add {NETNS}"),
            "controller stop",
            "controller shutdown",
            &format!("cni del {NETNS}"),
            &format!("remove netns {NETNS}"),
        ],
    );
    assert!(state.sandboxes.store.list().is_empty());
}

#[tokio::test]
async fn a_pause_failing_while_cni_adds_still_tears_the_network_down() {
    let (_dir, log, state, result) = run_gated(Fail::ControllerCreate).await;
    let err = result.unwrap_err();
    assert!(matches!(err, SandboxError::Controller { .. }), "{err}");
    check(
        &log,
        &[
            "create netns",
            CREATE,
            "cni add entered",
            &format!("cni add {NETNS}"),
            &format!("cni del {NETNS}"),
            &format!("remove netns {NETNS}"),
        ],
    );
    assert_nothing_left(&state);
}

/// A controller (over the mocks) whose create, once it told the record
/// made, ends only after `update_metadata` was called: RunPodSandbox must
/// write the network into the record while the pause is still made.
struct UpdatedWhileCreating {
    inner: cri_sandbox::controller::MockSandboxController,
    updated: tokio::sync::Notify,
    log: Log,
}

#[async_trait::async_trait]
impl SandboxController for UpdatedWhileCreating {
    async fn create(
        &self,
        request: CreateSandbox,
        record_made: cri_sandbox::controller::RecordMade,
    ) -> Result<(), ControllerError> {
        self.inner
            .create(request, tokio::sync::oneshot::channel().0)
            .await?;
        let _ = record_made.send(());
        push(&self.log, "create waits for the update");
        tokio::time::timeout(Duration::from_secs(10), self.updated.notified())
            .await
            .map_err(|_| ControllerError::NotCreated {
                id: SandboxId::from(SANDBOX_ID),
            })?;
        push(&self.log, "create done");
        Ok(())
    }
    async fn start(&self, id: &SandboxId) -> Result<SandboxInstance, ControllerError> {
        self.inner.start(id).await
    }
    async fn update_metadata(
        &self,
        id: &SandboxId,
        metadata: MetadataExtension,
    ) -> Result<(), ControllerError> {
        let updated = self.inner.update_metadata(id, metadata).await;
        self.updated.notify_one();
        updated
    }
    async fn platform(&self, id: &SandboxId) -> Result<cri_spec::Platform, ControllerError> {
        self.inner.platform(id).await
    }
    async fn stop(&self, id: &SandboxId, timeout: Duration) -> Result<(), ControllerError> {
        self.inner.stop(id, timeout).await
    }
    async fn wait(
        &self,
        id: &SandboxId,
    ) -> Result<cri_api::containerd::ExitStatus, ControllerError> {
        self.inner.wait(id).await
    }
    async fn status(
        &self,
        id: &SandboxId,
        verbose: bool,
    ) -> Result<cri_sandbox::controller::ControllerStatus, ControllerError> {
        self.inner.status(id, verbose).await
    }
    async fn shutdown(&self, id: &SandboxId) -> Result<(), ControllerError> {
        self.inner.shutdown(id).await
    }
    async fn metrics(
        &self,
        id: &SandboxId,
    ) -> Result<Option<cri_api::containerd::TaskMetric>, ControllerError> {
        self.inner.metrics(id).await
    }
}

#[tokio::test]
async fn the_network_goes_into_the_record_while_the_pause_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let log: Log = Arc::default();
    let m = mocks(&log, Fail::Nothing);
    let controller = Arc::new(UpdatedWhileCreating {
        inner: m.controller,
        updated: tokio::sync::Notify::new(),
        log: log.clone(),
    });
    let state = state_with(dir.path(), controller, m.netns, Arc::new(m.cni), "").await;
    let result = run_pod_sandbox(Arc::clone(&state.sandboxes), request(pod("web"), "")).await;
    assert_eq!(result.unwrap(), SANDBOX_ID);
    let got = entries(&log);
    let at = |what: &str| got.iter().position(|e| e == what).unwrap();
    assert!(at(UPDATE) < at("create done"), "{got:?}");
    assert!(at("create done") < at("controller start"), "{got:?}");
    let meta = state.sandboxes.store.get(SANDBOX_ID).unwrap().metadata;
    assert_eq!(meta.ip, "10.88.0.5");
}

#[tokio::test]
async fn a_failed_metadata_update_undoes_the_pause_and_the_network() {
    let (_dir, log, state, result) = run_with(Fail::UpdateMetadata).await;
    let err = result.unwrap_err();
    assert!(matches!(err, SandboxError::Controller { .. }), "{err}");
    check(
        &log,
        &[
            "create netns",
            CREATE,
            &format!("cni add {NETNS}"),
            UPDATE,
            "controller stop",
            "controller shutdown",
            &format!("cni del {NETNS}"),
            &format!("remove netns {NETNS}"),
        ],
    );
    assert!(state.sandboxes.store.list().is_empty());
}

/// RunPodSandbox with `use_internal_loopback`, `lo_fails` making the
/// netns manager fail to set lo up.
async fn run_internal_loopback(lo_fails: bool) -> (Log, Arc<ServerState>, Result<String>) {
    let dir = tempfile::tempdir().unwrap();
    let log: Log = Arc::default();
    let mut m = mocks(&log, Fail::Nothing);
    let l = log.clone();
    m.netns.expect_set_loopback_up().returning(move |path| {
        push(&l, format!("lo up {}", path.display()));
        if lo_fails {
            return Err(cri_sandbox::netns::NetnsError::Thread { path: path.into() });
        }
        Ok(())
    });
    let extra = "[plugins.\"io.containerd.grpc.v1.cri\".cni]\nuse_internal_loopback = true";
    let state = state(dir.path(), m, extra).await;
    let result = run_pod_sandbox(Arc::clone(&state.sandboxes), request(pod("web"), "")).await;
    (log, state, result)
}

#[tokio::test]
async fn internal_loopback_sets_lo_up_before_cni_add() {
    let (log, state, result) = run_internal_loopback(false).await;
    assert_eq!(result.unwrap(), SANDBOX_ID);
    check(
        &log,
        &[
            "create netns",
            CREATE,
            &format!("lo up {NETNS}"),
            &format!("cni add {NETNS}"),
            UPDATE,
            "controller start",
        ],
    );
    assert_eq!(
        state.sandboxes.store.get(SANDBOX_ID).unwrap().metadata.ip,
        "10.88.0.5"
    );
}

#[tokio::test]
async fn internal_loopback_failing_undoes_the_pause_and_the_netns() {
    let (log, state, result) = run_internal_loopback(true).await;
    let err = result.unwrap_err();
    assert!(matches!(err, SandboxError::Netns { .. }), "{err}");
    check(
        &log,
        &[
            "create netns",
            CREATE,
            &format!("lo up {NETNS}"),
            "controller stop",
            "controller shutdown",
            &format!("cni del {NETNS}"),
            &format!("remove netns {NETNS}"),
        ],
    );
    assert_nothing_left(&state);
}

#[tokio::test]
async fn a_result_without_ip_is_undone() {
    let (_dir, log, _state, result) = run_with(Fail::NoIp).await;
    assert!(matches!(result.unwrap_err(), SandboxError::NoPodIp { .. }));
    check(
        &log,
        &[
            "create netns",
            CREATE,
            &format!("cni add {NETNS}"),
            "controller stop",
            "controller shutdown",
            &format!("cni del {NETNS}"),
            &format!("remove netns {NETNS}"),
        ],
    );
}

#[tokio::test]
async fn failed_controller_create_undoes_the_network() {
    let (_dir, log, _state, result) = run_with(Fail::ControllerCreate).await;
    assert!(matches!(
        result.unwrap_err(),
        SandboxError::Controller { .. }
    ));
    check(
        &log,
        &[
            "create netns",
            CREATE,
            &format!("cni add {NETNS}"),
            &format!("cni del {NETNS}"),
            &format!("remove netns {NETNS}"),
        ],
    );
}

#[tokio::test]
async fn failed_controller_start_undoes_the_pause_and_the_network() {
    let (_dir, log, state, result) = run_with(Fail::ControllerStart).await;
    let err = result.unwrap_err();
    assert!(matches!(err, SandboxError::Controller { .. }), "{err}");
    check(
        &log,
        &[
            "create netns",
            CREATE,
            &format!("cni add {NETNS}"),
            UPDATE,
            "controller start",
            "controller stop",
            "controller shutdown",
            &format!("cni del {NETNS}"),
            &format!("remove netns {NETNS}"),
        ],
    );
    assert_nothing_left(&state);
}

#[tokio::test]
async fn a_failed_undo_keeps_the_sandbox_unknown_and_its_name() {
    let (_dir, log, state, result) = run_with(Fail::StartAndTeardown).await;
    let err = result.unwrap_err();
    match &err {
        SandboxError::WithUndo { undo, source } => {
            assert_eq!(undo[0].step, "tear down pod network");
            assert!(matches!(**source, SandboxError::Controller { .. }));
        }
        other => panic!("{other:?}"),
    }
    // The netns removal still ran after the failed teardown.
    assert!(entries(&log).contains(&format!("remove netns {NETNS}")));
    let kept = state.sandboxes.store.get(SANDBOX_ID).unwrap();
    assert_eq!(kept.status.state, SandboxState::Unknown);
    assert_eq!(
        state
            .sandboxes
            .names
            .owner("web_default_uid-web_1")
            .as_deref(),
        Some(SANDBOX_ID)
    );
    let status = tonic::Status::from(err);
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
}

#[tokio::test]
async fn a_reused_name_is_already_exists_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log: Log = Arc::default();
    let state = state(dir.path(), mocks(&log, Fail::Nothing), "").await;
    run_pod_sandbox(Arc::clone(&state.sandboxes), request(pod("web"), ""))
        .await
        .unwrap();
    log.lock().unwrap().clear();
    let err = run_pod_sandbox(Arc::clone(&state.sandboxes), request(pod("web"), ""))
        .await
        .unwrap_err();
    assert!(matches!(err, SandboxError::NameReserved { .. }), "{err}");
    assert!(err.to_string().contains("web_default_uid-web_1"), "{err}");
    check(&log, &[]);
    let status = tonic::Status::from(err);
    assert_eq!(status.code(), tonic::Code::AlreadyExists);
    // Another attempt is another name.
    let mut next = pod("web");
    next.metadata.as_mut().unwrap().attempt = 2;
    run_pod_sandbox(Arc::clone(&state.sandboxes), request(next, ""))
        .await
        .unwrap();
    assert_eq!(state.sandboxes.store.list().len(), 2);
}

fn check_rejected(
    config: Option<PodSandboxConfig>,
    handler: &str,
    code: tonic::Code,
    fragment: &str,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let log: Log = Arc::default();
        let state = state(dir.path(), mocks(&log, Fail::Nothing), "").await;
        let req = RunPodSandboxRequest {
            config,
            runtime_handler: handler.into(),
        };
        let err = run_pod_sandbox(Arc::clone(&state.sandboxes), req)
            .await
            .unwrap_err();
        assert!(err.to_string().contains(fragment), "{err}");
        let status = tonic::Status::from(err);
        assert_eq!(status.code(), code, "{status:?}");
        check(&log, &[]);
        assert!(state.sandboxes.store.list().is_empty());
        assert_eq!(state.sandboxes.names.owner("web_default_uid-web_1"), None);
    });
}

#[test]
fn malformed_requests_and_unknown_handlers_are_rejected() {
    check_rejected(None, "", tonic::Code::InvalidArgument, "metadata");
    check_rejected(
        Some(PodSandboxConfig::default()),
        "",
        tonic::Code::InvalidArgument,
        "metadata",
    );
    check_rejected(Some(pod("web")), "kata", tonic::Code::NotFound, "\"kata\"");
}

#[test]
fn sandbox_names_and_labels() {
    let m = cri_api::v1::PodSandboxMetadata {
        name: "a".into(),
        uid: "u".into(),
        namespace: "ns".into(),
        attempt: 3,
    };
    assert_eq!(sandbox_name(&m), "a_ns_u_3");
    let image = HashMap::from([
        ("x".to_owned(), "image".to_owned()),
        ("io.cri-containerd.kind".to_owned(), "container".to_owned()),
        ("big".to_owned(), "v".repeat(5000)),
    ]);
    let labels = sandbox_labels(
        &HashMap::from([("x".to_owned(), "pod".to_owned())]),
        Some(&image),
    );
    assert_eq!(labels.len(), 2);
    assert_eq!(labels["x"], "pod");
    assert_eq!(labels["io.cri-containerd.kind"], "sandbox");
}
