//! Recovery over mocked containerd: every task state against every
//! checkpointed state, a corrupt extension, a missing checkpoint, and
//! leftover dirs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use cri_api::containerd::{ContainerRecord, ContainerdError, ExitStatus, TaskInfo, TaskStatus};
use cri_api::ids::{ContainerId, SandboxId};
use cri_api::v1::ContainerState;
use cri_store::container::ContainerStatus;
use cri_store::sandbox::{SandboxMetadata, SandboxState};

use super::*;
use crate::container::testutil::{container, container_config, pod_config, Mocks, TestEnv};
use cri_metadata::{
    container_metadata_to_any, sandbox_metadata_to_any, StatusCheckpoints,
    CONTAINER_METADATA_EXTENSION, SANDBOX_METADATA_EXTENSION,
};
use std::sync::atomic::{AtomicUsize, Ordering};

fn not_found(what: &str) -> ContainerdError {
    ContainerdError::NotFound {
        op: "get task",
        what: what.into(),
    }
}

fn unavailable() -> ContainerdError {
    ContainerdError::Unavailable {
        address: "/run/test/containerd.sock".into(),
        message: "down".into(),
    }
}

fn sandbox_record(id: &str) -> ContainerRecord {
    let metadata = SandboxMetadata {
        id: SandboxId::from(id),
        name: format!("pod_ns_uid_{id}"),
        config: pod_config(),
        netns_path: String::new(),
        ip: String::new(),
        additional_ips: Vec::new(),
        runtime_handler: String::new(),
        cni_result: None,
        process_label: String::new(),
    };
    ContainerRecord {
        id: id.into(),
        labels: HashMap::from([(KIND_LABEL.to_owned(), "sandbox".to_owned())]),
        extensions: HashMap::from([(
            SANDBOX_METADATA_EXTENSION.to_owned(),
            sandbox_metadata_to_any(&metadata).unwrap(),
        )]),
        snapshotter: "overlayfs".into(),
        snapshot_key: id.into(),
        created_at: Some(UNIX_EPOCH + Duration::from_secs(5)),
        ..ContainerRecord::default()
    }
}

fn container_record(id: &str) -> ContainerRecord {
    let mut c = container(id, "s1", ContainerStatus::default());
    std::sync::Arc::make_mut(&mut c.metadata).config = container_config("web");
    ContainerRecord {
        id: id.into(),
        labels: HashMap::from([(KIND_LABEL.to_owned(), "container".to_owned())]),
        extensions: HashMap::from([(
            CONTAINER_METADATA_EXTENSION.to_owned(),
            container_metadata_to_any(&c.metadata).unwrap(),
        )]),
        snapshotter: "overlayfs".into(),
        snapshot_key: id.into(),
        created_at: Some(UNIX_EPOCH + Duration::from_secs(5)),
        ..ContainerRecord::default()
    }
}

fn task(id: &str, status: TaskStatus, dir: &std::path::Path) -> TaskInfo {
    TaskInfo {
        id: id.into(),
        container_id: id.into(),
        pid: 777,
        status,
        stdout: dir.join(format!("{id}-stdout")).display().to_string(),
        stderr: dir.join(format!("{id}-stderr")).display().to_string(),
        exit_status: 3,
        exited_at: Some(UNIX_EPOCH + Duration::from_secs(50)),
        ..TaskInfo::default()
    }
}

fn checkpoint(env: &TestEnv, id: &str, status: &ContainerStatus) {
    let checkpoints = StatusCheckpoints::new(&env.state.config.server.root_dir);
    let id = ContainerId::from(id);
    std::fs::create_dir_all(checkpoints.path(&id).parent().unwrap()).unwrap();
    checkpoints.write(&id, status).unwrap();
}

fn running() -> ContainerStatus {
    ContainerStatus {
        pid: 777,
        created_at: 1,
        started_at: 2,
        ..ContainerStatus::default()
    }
}

/// containerd with sandbox `s1` (task running) and containers: `run`
/// (running), `down` (exited with 3 while we were down), `gone` (task
/// vanished), `made` (task created, never started), `bad` (corrupt
/// extension), `nostatus` (no checkpoint).
fn env() -> TestEnv {
    env_listing(true)
}

/// [`env`]; with `listed` false, `Tasks/List` leaves every task out (their
/// shims too slow to report) and only `Tasks/Get` finds them.
fn env_listing(listed: bool) -> TestEnv {
    let fifo_dir = tempfile::tempdir().unwrap().keep();
    let mut mocks = Mocks::default();
    mocks
        .services
        .images
        .expect_list()
        .returning(|_| Ok(Vec::new()));
    mocks
        .services
        .namespaces
        .expect_ensure()
        .returning(|_, _| Ok(()));
    let mut bad = container_record("bad");
    bad.extensions
        .get_mut(CONTAINER_METADATA_EXTENSION)
        .unwrap()
        .value = b"{not json".to_vec();
    bad.spec = Some(prost_types::Any {
        type_url: crate::container::spec::SPEC_TYPE_URL.into(),
        value: br#"{"ociVersion":"1.0.2","annotations":{"io.kubernetes.cri.sandbox-id":"s1"}}"#
            .to_vec(),
    });
    let records: Vec<ContainerRecord> = ["run", "down", "gone", "made", "nostatus"]
        .into_iter()
        .map(container_record)
        .chain([bad])
        .collect();
    mocks
        .services
        .containers
        .expect_list()
        .returning(move |filters| {
            Ok(if filters[0].contains("sandbox") {
                vec![sandbox_record("s1")]
            } else {
                records.clone()
            })
        });
    // One Tasks/List; a Get only for a container the list lacks.
    let dir = fifo_dir.clone();
    let tasks = move || {
        vec![
            task("s1", TaskStatus::Running, &dir),
            task("run", TaskStatus::Running, &dir),
            task("down", TaskStatus::Stopped, &dir),
            task("made", TaskStatus::Created, &dir),
        ]
    };
    let known = tasks();
    mocks
        .services
        .tasks
        .expect_list()
        .returning(move || Ok(if listed { tasks() } else { Vec::new() }));
    mocks.services.tasks.expect_get().returning(move |id, _| {
        match known.iter().find(|t| t.id == id) {
            Some(_) if listed => panic!("{id} was listed: no Get for it"),
            Some(task) => Ok(task.clone()),
            None => Err(not_found(id)),
        }
    });
    mocks
        .services
        .tasks
        .expect_kill()
        .returning(|_, _, _, _| Ok(()));
    mocks
        .services
        .tasks
        .expect_delete()
        .returning(|id, _| match id {
            "down" | "made" => Ok(ExitStatus {
                code: 3,
                exited_at: None,
            }),
            other => Err(not_found(other)),
        });
    // The exit monitors: containerd "restarting", retried with backoff.
    mocks
        .services
        .tasks
        .expect_wait()
        .returning(|_, _| Err(unavailable()));
    mocks.controller.expect_wait().returning(|id| {
        Err(cri_sandbox::controller::ControllerError::Containerd {
            op: "wait",
            id: id.clone(),
            source: unavailable(),
        })
    });
    mocks
        .services
        .snapshots
        .expect_list()
        .returning(|_, _| Ok(Vec::new()));
    let env = TestEnv::with(mocks, "");
    for id in ["run", "down", "gone"] {
        checkpoint(&env, id, &running());
    }
    checkpoint(
        &env,
        "made",
        &ContainerStatus {
            created_at: 1,
            ..ContainerStatus::default()
        },
    );
    env
}

fn state_of(env: &TestEnv, id: &str) -> ContainerStatus {
    env.server.containers.store.get(id).unwrap().status
}

#[tokio::test]
async fn a_task_missing_from_the_list_is_asked_for() {
    let env = env_listing(false);
    let summary = recover(&env.server).await.unwrap();
    assert_eq!((summary.sandboxes, summary.containers), (1, 6));
    let sandbox = env.server.sandboxes.store.get("s1").unwrap();
    assert_eq!(sandbox.status.state, SandboxState::Ready);
    assert_eq!(
        state_of(&env, "run").state(),
        ContainerState::ContainerRunning
    );
    assert_eq!(
        state_of(&env, "down").state(),
        ContainerState::ContainerExited
    );
}

#[tokio::test]
async fn every_record_is_loaded_and_reconciled_with_its_task() {
    let env = env();
    let summary = recover(&env.server).await.unwrap();
    assert_eq!((summary.sandboxes, summary.containers), (1, 6));
    assert_eq!(summary.degraded, 2, "bad and nostatus");

    let sandbox = env.server.sandboxes.store.get("s1").unwrap();
    assert_eq!(sandbox.status.state, SandboxState::Ready);
    assert_eq!(
        (sandbox.status.pid, sandbox.status.created_at),
        (777, 5_000_000_000)
    );
    assert_eq!(
        env.server.sandboxes.names.owner("pod_ns_uid_s1").as_deref(),
        Some("s1")
    );

    let run = state_of(&env, "run");
    assert_eq!(run.state(), ContainerState::ContainerRunning);
    let handle = env.state.store.handle("run").unwrap();
    assert!(handle.io().is_some(), "running container io re-attached");
    assert_eq!(env.state.names.owner("name-run").as_deref(), Some("run"));

    let down = state_of(&env, "down");
    assert_eq!(down.state(), ContainerState::ContainerExited);
    assert_eq!((down.exit_code, down.finished_at), (3, 50_000_000_000));
    let saved = StatusCheckpoints::new(&env.state.config.server.root_dir)
        .read(&ContainerId::from("down"))
        .unwrap();
    assert_eq!(saved.exit_code, 3, "exit checkpointed");

    let gone = state_of(&env, "gone");
    assert_eq!(gone.state(), ContainerState::ContainerExited);
    assert_eq!((gone.exit_code, gone.reason.as_str()), (255, "Unknown"));

    let made = state_of(&env, "made");
    assert_eq!(made.state(), ContainerState::ContainerCreated);
    assert!(env.state.store.handle("made").unwrap().io().is_some());

    let bad = env.server.containers.store.get("bad").unwrap();
    assert_eq!(bad.status.state(), ContainerState::ContainerUnknown);
    assert_eq!(bad.metadata.sandbox_id.as_ref(), "s1");
    let nostatus = state_of(&env, "nostatus");
    assert_eq!(nostatus.state(), ContainerState::ContainerUnknown);
    // Without a checkpoint, the record's creation time, never 0.
    assert_eq!(nostatus.created_at, 5_000_000_000);
    assert_eq!(bad.status.created_at, 5_000_000_000);

    // Every container's writable layer is tracked for the stats again,
    // the pause containers' not.
    let stats = env.server.stats.fs_usage();
    assert_eq!(stats.len(), 6);
    assert!(["run", "down", "gone", "made", "nostatus", "bad"]
        .iter()
        .all(|id| stats.get(id).is_some()));
    assert!(stats.get("s1").is_none());
}

#[tokio::test]
async fn a_second_pass_changes_nothing() {
    let env = env();
    recover(&env.server).await.unwrap();
    let before: Vec<_> = env
        .state
        .store
        .list()
        .into_iter()
        .map(|c| c.status)
        .collect();
    let summary = recover(&env.server).await.unwrap();
    assert_eq!(summary.degraded, 0);
    let after: Vec<_> = env
        .state
        .store
        .list()
        .into_iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(before, after);
}

#[tokio::test]
async fn leftover_dirs_of_unknown_objects_are_removed() {
    let env = env();
    let server = &env.state.config.server;
    let stray = [
        server.root_dir.join("containers/stray"),
        server.state_dir.join("containers/stray"),
        server.root_dir.join("sandboxes/stray-pod"),
        server.state_dir.join("sandboxes/stray-pod"),
    ];
    for dir in &stray {
        std::fs::create_dir_all(dir).unwrap();
    }
    let kept = server.state_dir.join("sandboxes/s1");
    std::fs::create_dir_all(&kept).unwrap();
    let summary = recover(&env.server).await.unwrap();
    for dir in &stray {
        assert!(!dir.exists(), "{} left", dir.display());
    }
    assert!(kept.exists());
    assert!(server.root_dir.join("containers/run/status").exists());
    assert!(summary.orphans_removed >= 3);
}

#[tokio::test(start_paused = true)]
async fn containerd_down_keeps_the_gate_shut_and_the_pass_is_retried_with_backoff() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut mocks = Mocks::default();
    let seen = Arc::clone(&calls);
    // containerd answers from the fourth try on.
    mocks
        .services
        .namespaces
        .expect_ensure()
        .returning(move |_, _| {
            if seen.fetch_add(1, Ordering::SeqCst) < 3 {
                Err(unavailable())
            } else {
                Ok(())
            }
        });
    mocks
        .services
        .images
        .expect_list()
        .returning(|_| Ok(Vec::new()));
    mocks
        .services
        .containers
        .expect_list()
        .returning(|_| Ok(Vec::new()));
    mocks
        .services
        .tasks
        .expect_list()
        .returning(|| Ok(Vec::new()));
    mocks
        .services
        .snapshots
        .expect_list()
        .returning(|_, _| Ok(Vec::new()));
    let env = TestEnv::with(mocks, "");
    let readiness = Readiness::new();
    let task = tokio::spawn(recover_then_serve(env.server.clone(), readiness.clone()));
    // Backoff 200 ms, 400 ms, 800 ms: closed through each failed pass.
    for (after, tries) in [
        (Duration::ZERO, 1),
        (BACKOFF_INITIAL, 2),
        (BACKOFF_INITIAL * 2, 3),
    ] {
        tokio::time::sleep(after).await;
        tokio::task::yield_now().await;
        assert_eq!(calls.load(Ordering::SeqCst), tries, "after {after:?}");
        assert!(!readiness.is_ready(), "open after {tries} failed tries");
    }
    tokio::time::sleep(BACKOFF_INITIAL * 4).await;
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("recovery finishes once containerd answers")
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert!(readiness.is_ready(), "open once a pass succeeded");
}

#[tokio::test]
async fn a_load_waits_for_the_task_list_and_takes_its_task_from_it() {
    // No Tasks/Get is expected: one would panic.
    let env = TestEnv::with(Mocks::default(), "");
    let dir = tempfile::tempdir().unwrap();
    let (pass, task_list) = Pass::new();
    let get = pass.get(&env.server, "run");
    tokio::pin!(get);
    assert!(
        futures::poll!(&mut get).is_pending(),
        "answered before the list"
    );
    task_list.send(vec![task("run", TaskStatus::Running, dir.path())]);
    let found = get.await.unwrap();
    assert_eq!(
        (found.id.as_str(), found.status),
        ("run", TaskStatus::Running)
    );
}

#[tokio::test]
async fn without_a_task_list_each_task_is_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let running = task("run", TaskStatus::Running, dir.path());
    let mut mocks = Mocks::default();
    mocks
        .services
        .tasks
        .expect_get()
        .times(1)
        .returning(move |_, _| Ok(running.clone()));
    let env = TestEnv::with(mocks, "");
    let (pass, task_list) = Pass::new();
    drop(task_list);
    assert_eq!(pass.get(&env.server, "run").await.unwrap().id, "run");
}

#[tokio::test]
async fn only_active_snapshots_named_like_a_cri_id_that_no_record_holds_are_removed() {
    use cri_api::containerd::{SnapshotInfo, SnapshotKind};
    let id = |c: char| c.to_string().repeat(64);
    let (held, leftover, committed) = (id('a'), id('b'), id('c'));
    let snapshot = |name: &str, kind| SnapshotInfo {
        name: name.to_owned(),
        kind,
        ..SnapshotInfo::default()
    };
    let listed = vec![
        snapshot(&held, SnapshotKind::Active),
        snapshot(&leftover, SnapshotKind::Active),
        snapshot(&committed, SnapshotKind::Committed),
        snapshot("extract-123-sha256:layer", SnapshotKind::Active),
    ];
    let mut mocks = Mocks::default();
    mocks
        .services
        .images
        .expect_list()
        .returning(|_| Ok(Vec::new()));
    let record = sandbox_record(&held);
    mocks
        .services
        .containers
        .expect_list()
        .returning(move |filters| {
            Ok(if filters[0].contains("sandbox") {
                vec![record.clone()]
            } else {
                Vec::new()
            })
        });
    mocks
        .services
        .tasks
        .expect_list()
        .returning(|| Ok(Vec::new()));
    mocks
        .services
        .tasks
        .expect_get()
        .returning(|id, _| Err(not_found(id)));
    mocks
        .services
        .snapshots
        .expect_list()
        .returning(move |_, _| Ok(listed.clone()));
    let removed = leftover.clone();
    mocks
        .services
        .snapshots
        .expect_remove()
        .times(1)
        .withf(move |snapshotter, key| snapshotter == "overlayfs" && key == removed)
        .returning(|_, _| Ok(()));
    let env = TestEnv::with(mocks, "");
    let summary = recover(&env.server).await.unwrap();
    assert_eq!((summary.sandboxes, summary.orphans_removed), (1, 1));
}
