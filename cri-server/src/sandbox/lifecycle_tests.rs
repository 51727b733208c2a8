//! Stop, remove, status, list and the exit monitor over mocks: the order
//! of teardown steps, idempotency, and what status reports before and
//! after a stop.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use cri_api::containerd::{ContainerRecord, ExitStatus};
use cri_api::ids::SandboxId;
use cri_api::v1::{ContainerEventType, PodSandboxFilter, PodSandboxState, PodSandboxStateValue};
use cri_sandbox::controller::{
    ControllerError, ControllerStatus, CreateSandbox, SandboxController, SandboxInstance,
};
use cri_store::sandbox::SandboxState;
use futures::StreamExt;

use super::testutil::{
    entries, mocks, pod, request, state, state_with, Fail, GatedCni, Log, Mocks, NETNS, SANDBOX_ID,
};
use super::*;
use crate::service::ServerState;

async fn running(m: Mocks, log: &Log) -> (tempfile::TempDir, Arc<ServerState>) {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path(), m, "").await;
    run_pod_sandbox(Arc::clone(&state.sandboxes), request(pod("web"), ""))
        .await
        .unwrap();
    log.lock().unwrap().clear();
    (dir, state)
}

fn check(log: &Log, expected: &[&str]) {
    let got = entries(log);
    let got: Vec<&str> = got
        .iter()
        .map(String::as_str)
        .filter(|e| *e != "controller wait")
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn stop_stops_the_sandbox_and_the_network_and_is_idempotent() {
    let log: Log = Arc::default();
    let (_dir, state) = running(mocks(&log, Fail::Nothing), &log).await;
    stop_pod_sandbox(&state.sandboxes, &*state.containers, SANDBOX_ID)
        .await
        .unwrap();
    check(
        &log,
        &[
            "netns closed?",
            &format!("cni del {NETNS}"),
            "controller stop",
            &format!("remove netns {NETNS}"),
        ],
    );
    let sandbox = state.sandboxes.store.get(SANDBOX_ID).unwrap();
    assert_eq!(sandbox.status.state, SandboxState::NotReady);
    assert_eq!(sandbox.status.pid, 0);
    assert_eq!(
        sandbox.metadata.netns_path, NETNS,
        "the record keeps the path"
    );

    assert!(sandbox.status.network_down);

    log.lock().unwrap().clear();
    stop_pod_sandbox(&state.sandboxes, &*state.containers, &SANDBOX_ID[..12])
        .await
        .unwrap();
    // NOTREADY: the controller is not asked again (as containerd); the
    // network is down already, so CNI DEL does not run again.
    check(&log, &[]);

    // RemovePodSandbox after the stop: one CNI DEL in all.
    remove_pod_sandbox(&state.sandboxes, &*state.containers, SANDBOX_ID)
        .await
        .unwrap();
    check(&log, &["netns closed?", "controller shutdown"]);
}

#[tokio::test]
async fn a_stop_whose_network_teardown_was_not_recorded_runs_cni_del() {
    // A NOTREADY sandbox whose network this daemon did not tear down (its
    // pause exited on its own, or it was recovered after a restart).
    let log: Log = Arc::default();
    let (_dir, state) = running(mocks(&log, Fail::Nothing), &log).await;
    state
        .sandboxes
        .store
        .update_status(&cri_api::ids::SandboxId::from(SANDBOX_ID), |s| {
            s.state = SandboxState::NotReady;
            Ok::<(), cri_store::StoreError>(())
        })
        .unwrap();
    log.lock().unwrap().clear();
    stop_pod_sandbox(&state.sandboxes, &*state.containers, SANDBOX_ID)
        .await
        .unwrap();
    check(
        &log,
        &[
            "netns closed?",
            &format!("cni del {NETNS}"),
            &format!("remove netns {NETNS}"),
        ],
    );
    let sandbox = state.sandboxes.store.get(SANDBOX_ID).unwrap();
    assert!(sandbox.status.network_down);
}

#[tokio::test]
async fn remove_stops_first_then_shuts_down_and_forgets() {
    let log: Log = Arc::default();
    let (_dir, state) = running(mocks(&log, Fail::Nothing), &log).await;
    let mut events = state.containers.events.subscribe();
    remove_pod_sandbox(&state.sandboxes, &*state.containers, SANDBOX_ID)
        .await
        .unwrap();
    // DELETED, without a pod status: the pod is gone (as containerd's).
    let deleted = events.next().await.unwrap();
    assert_eq!(
        (deleted.container_id.as_str(), deleted.container_event_type),
        (SANDBOX_ID, ContainerEventType::ContainerDeletedEvent as i32)
    );
    assert_eq!(deleted.pod_sandbox_status, None);
    check(
        &log,
        &[
            "netns closed?",
            &format!("cni del {NETNS}"),
            "controller stop",
            &format!("remove netns {NETNS}"),
            "netns closed?",
            "controller shutdown",
        ],
    );
    assert!(state.sandboxes.store.list().is_empty());
    assert_eq!(state.sandboxes.names.owner("web_default_uid-web_1"), None);
    log.lock().unwrap().clear();
    remove_pod_sandbox(&state.sandboxes, &*state.containers, SANDBOX_ID)
        .await
        .unwrap();
    check(&log, &[]);
    // The name can be used again.
    run_pod_sandbox(Arc::clone(&state.sandboxes), request(pod("web"), ""))
        .await
        .unwrap();
}

#[tokio::test]
async fn cni_del_runs_while_the_pause_stops() {
    let log: Log = Arc::default();
    let m = mocks(&log, Fail::Nothing);
    let cni = Arc::new(GatedCni {
        inner: m.cni,
        log: log.clone(),
        add_after: None,
        del_after: Some(Arc::clone(&m.stopped)),
    });
    let dir = tempfile::tempdir().unwrap();
    let state = state_with(dir.path(), Arc::new(m.controller), m.netns, cni, "").await;
    run_pod_sandbox(Arc::clone(&state.sandboxes), request(pod("web"), ""))
        .await
        .unwrap();
    log.lock().unwrap().clear();
    tokio::time::timeout(
        Duration::from_secs(30),
        stop_pod_sandbox(&state.sandboxes, &*state.containers, SANDBOX_ID),
    )
    .await
    .expect("CNI DEL waits for the pause stop: they did not run at the same time")
    .unwrap();
    check(
        &log,
        &[
            "netns closed?",
            "cni del entered",
            "controller stop",
            &format!("cni del {NETNS}"),
            &format!("remove netns {NETNS}"),
        ],
    );
    let sandbox = state.sandboxes.store.get(SANDBOX_ID).unwrap();
    assert_eq!(sandbox.status.state, SandboxState::NotReady);
}

#[tokio::test]
async fn remove_refuses_while_the_netns_is_open() {
    let log: Log = Arc::default();
    let mut m = mocks(&log, Fail::Nothing);
    m.netns.checkpoint();
    m.netns
        .expect_create()
        .returning(|| Ok(cri_sandbox::netns::NetNs::new(NETNS)));
    m.netns.expect_remove().returning(|_| Ok(()));
    m.netns.expect_is_closed().returning(|_| Ok(false));
    let (_dir, state) = running(m, &log).await;
    let err = remove_pod_sandbox(&state.sandboxes, &*state.containers, SANDBOX_ID)
        .await
        .unwrap_err();
    assert!(matches!(err, SandboxError::NetnsNotClosed { .. }), "{err}");
    assert_eq!(state.sandboxes.store.list().len(), 1);
}

#[tokio::test]
async fn unknown_ids_are_not_found_for_stop_and_status() {
    let log: Log = Arc::default();
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path(), mocks(&log, Fail::Nothing), "").await;
    let err = stop_pod_sandbox(&state.sandboxes, &*state.containers, "nope")
        .await
        .unwrap_err();
    let status = tonic::Status::from(err);
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert!(status.message().contains("nope"), "{status:?}");
    let err = pod_sandbox_status(&state.sandboxes, "nope", false)
        .await
        .unwrap_err();
    assert!(matches!(err, SandboxError::NotFound { .. }));
    remove_pod_sandbox(&state.sandboxes, &*state.containers, "nope")
        .await
        .unwrap();
}

#[tokio::test]
async fn status_reports_ips_until_the_netns_is_gone() {
    let log: Log = Arc::default();
    let (_dir, state) = running(mocks(&log, Fail::Nothing), &log).await;
    let resp = pod_sandbox_status(&state.sandboxes, SANDBOX_ID, false)
        .await
        .unwrap();
    let status = resp.status.unwrap();
    assert_eq!(status.state, PodSandboxState::SandboxReady as i32);
    let network = status.network.unwrap();
    assert_eq!(network.ip, "10.88.0.5");
    assert_eq!(network.additional_ips[0].ip, "fd00::5");
    assert_eq!(status.labels["app"], "web");
    assert_eq!(status.metadata.unwrap().name, "web");
    assert!(status.created_at > 0);
    assert!(resp.info.is_empty());

    stop_pod_sandbox(&state.sandboxes, &*state.containers, SANDBOX_ID)
        .await
        .unwrap();
    let status = pod_sandbox_status(&state.sandboxes, SANDBOX_ID, false)
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(status.state, PodSandboxState::SandboxNotready as i32);
    assert_eq!(status.network.unwrap().ip, "");
}

#[tokio::test]
async fn verbose_status_carries_containerds_info_json() {
    let log: Log = Arc::default();
    let mut m = mocks(&log, Fail::Nothing);
    m.controller.expect_status().returning(|_, _| {
        Ok(ControllerStatus {
            pid: 4242,
            process_status: "running".into(),
            container: Some(ContainerRecord {
                id: SANDBOX_ID.into(),
                image: "registry.k8s.io/pause:3.8".into(),
                snapshotter: "overlayfs".into(),
                snapshot_key: SANDBOX_ID.into(),
                spec: Some(cri_api::containerd::Any {
                    type_url: "t".into(),
                    value: br#"{"ociVersion":"1.0.2"}"#.to_vec(),
                }),
                runtime: cri_api::containerd::RuntimeInfo {
                    name: "io.containerd.runc.v2".into(),
                    options: runtime_options(&cri_config::RuntimeConfig::runc_default()),
                },
                ..ContainerRecord::default()
            }),
        })
    });
    let (_dir, state) = running(m, &log).await;
    let resp = pod_sandbox_status(&state.sandboxes, SANDBOX_ID, true)
        .await
        .unwrap();
    let info: serde_json::Value = serde_json::from_str(&resp.info["info"]).unwrap();
    assert_eq!(info["pid"], 4242);
    assert_eq!(info["processStatus"], "running");
    assert_eq!(info["netNamespaceClosed"], false);
    assert_eq!(info["image"], "registry.k8s.io/pause:3.8");
    assert_eq!(info["runtimeType"], "io.containerd.runc.v2");
    assert_eq!(info["runtimeOptions"], serde_json::json!({}));
    assert_eq!(info["runtimeSpec"]["ociVersion"], "1.0.2");
    assert_eq!(info["config"]["metadata"]["name"], "web");
    assert_eq!(
        info["cniResult"]["Interfaces"]["eth0"]["IPConfigs"][0]["IP"],
        "10.88.0.5"
    );
    assert_eq!(info["sandboxMetadata"]["NetNSPath"], NETNS);
}

#[tokio::test]
async fn list_filters_by_prefix_state_and_labels() {
    let log: Log = Arc::default();
    let (_dir, state) = running(mocks(&log, Fail::Nothing), &log).await;
    run_pod_sandbox(Arc::clone(&state.sandboxes), request(pod("db"), ""))
        .await
        .unwrap();
    stop_pod_sandbox(&state.sandboxes, &*state.containers, SANDBOX_ID)
        .await
        .unwrap();
    assert_eq!(list_pod_sandbox(&state.sandboxes, None).len(), 2);
    let by_prefix = list_pod_sandbox(
        &state.sandboxes,
        Some(PodSandboxFilter {
            id: SANDBOX_ID[..1].into(),
            ..Default::default()
        }),
    );
    assert_eq!(by_prefix.len(), 1);
    assert_eq!(by_prefix[0].id, SANDBOX_ID);
    let ready = list_pod_sandbox(
        &state.sandboxes,
        Some(PodSandboxFilter {
            state: Some(PodSandboxStateValue {
                state: PodSandboxState::SandboxReady as i32,
            }),
            ..Default::default()
        }),
    );
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].labels["app"], "db");
}

/// A controller whose sandbox runs until `exit` is notified.
struct ExitOnNotify {
    exit: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl SandboxController for ExitOnNotify {
    async fn create(
        &self,
        _: CreateSandbox,
        record_made: cri_sandbox::controller::RecordMade,
    ) -> Result<(), ControllerError> {
        let _ = record_made.send(());
        Ok(())
    }
    async fn start(&self, id: &SandboxId) -> Result<SandboxInstance, ControllerError> {
        Ok(SandboxInstance {
            id: id.clone(),
            pid: 7,
            created_at: std::time::SystemTime::now(),
            labels: Default::default(),
        })
    }
    async fn update_metadata(
        &self,
        _: &SandboxId,
        _: cri_sandbox::controller::MetadataExtension,
    ) -> Result<(), ControllerError> {
        Ok(())
    }
    async fn platform(&self, _: &SandboxId) -> Result<cri_spec::Platform, ControllerError> {
        Ok(cri_spec::Platform::host())
    }
    async fn stop(&self, _: &SandboxId, _: Duration) -> Result<(), ControllerError> {
        Ok(())
    }
    async fn wait(&self, _: &SandboxId) -> Result<ExitStatus, ControllerError> {
        self.exit.notified().await;
        Ok(ExitStatus {
            code: 137,
            exited_at: None,
        })
    }
    async fn status(&self, _: &SandboxId, _: bool) -> Result<ControllerStatus, ControllerError> {
        Ok(ControllerStatus::default())
    }
    async fn shutdown(&self, _: &SandboxId) -> Result<(), ControllerError> {
        Ok(())
    }
    async fn metrics(
        &self,
        _: &SandboxId,
    ) -> Result<Option<cri_api::containerd::TaskMetric>, ControllerError> {
        Ok(None)
    }
}

#[tokio::test]
async fn an_exited_sandbox_turns_not_ready() {
    let log: Log = Arc::default();
    let m = mocks(&log, Fail::Nothing);
    let controller = Arc::new(ExitOnNotify {
        exit: tokio::sync::Notify::new(),
    });
    let dir = tempfile::tempdir().unwrap();
    let state = state_with(dir.path(), controller.clone(), m.netns, Arc::new(m.cni), "").await;
    run_pod_sandbox(Arc::clone(&state.sandboxes), request(pod("web"), ""))
        .await
        .unwrap();
    let mut events = state.containers.events.subscribe();
    let current = || state.sandboxes.store.get(SANDBOX_ID).unwrap().status;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!((current().state, current().pid), (SandboxState::Ready, 7));
    controller.exit.notify_one();
    // STOPPED, with the pod's status after the exit.
    let stopped = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("no STOPPED event")
        .unwrap();
    assert_eq!(
        (stopped.container_id.as_str(), stopped.container_event_type),
        (SANDBOX_ID, ContainerEventType::ContainerStoppedEvent as i32)
    );
    let status = stopped.pod_sandbox_status.unwrap();
    assert_eq!(status.state, PodSandboxState::SandboxNotready as i32);
    assert_eq!(
        (current().state, current().pid),
        (SandboxState::NotReady, 0)
    );
}

#[tokio::test]
async fn a_ready_sandboxs_pid_comes_from_the_store_else_from_the_controller() {
    let log: Log = Arc::default();
    let mut m = mocks(&log, Fail::Nothing);
    m.controller
        .expect_platform()
        .returning(|_| Ok(cri_spec::Platform::host()));
    // Asked only once the sandbox is no longer ready.
    m.controller.expect_status().times(1).returning(|_, _| {
        Ok(ControllerStatus {
            pid: 0,
            process_status: "deleted".into(),
            container: None,
        })
    });
    let (_dir, state) = running(m, &log).await;
    let sandbox = state.sandboxes.get(SANDBOX_ID).unwrap();
    let (pid, _) = state.sandboxes.runtime(&sandbox).await.unwrap();
    assert_eq!(pid, 4242, "the pid the controller's start returned");

    state
        .sandboxes
        .store
        .update_status(&SandboxId::from(SANDBOX_ID.to_owned()), |s| {
            s.state = SandboxState::NotReady;
            s.pid = 0;
            Ok::<_, cri_store::StoreError>(())
        })
        .unwrap();
    let sandbox = state.sandboxes.get(SANDBOX_ID).unwrap();
    let (pid, _) = state.sandboxes.runtime(&sandbox).await.unwrap();
    assert_eq!(pid, 0);
}
