//! Unit tests of the podsandbox controller over mocked containerd and
//! mounts: the happy path, then one failure per start step, checking
//! which undos ran and in which order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;

use cri_api::containerd::{
    Any, ContainerdError, Lease, MockServices, Mount, RuntimeInfo, TaskInfo,
};
use cri_api::v1;
use cri_spec::RuntimeOptions;
use oci_spec::image::ImageConfiguration;

use super::*;
use crate::controller::{MetadataExtension, SandboxImage};
use crate::host::{LinuxHostOs, MockRootfsUserDb, NoSeLinux};
use crate::mounts::MockHostMounts;

type Log = Arc<Mutex<Vec<String>>>;

fn log_of(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

fn push(log: &Log, what: &str) {
    log.lock().unwrap().push(what.to_owned());
}

fn unavailable() -> ContainerdError {
    ContainerdError::Unavailable {
        address: "/c.sock".into(),
        message: "injected".into(),
    }
}

fn not_found() -> ContainerdError {
    ContainerdError::NotFound {
        op: "x",
        what: "sb1".into(),
    }
}

/// The step that fails, in start order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fail {
    Nothing,
    Files,
    Lease,
    Snapshot,
    Spec,
    Container,
    TaskCreate,
    TaskStart,
}

struct Env {
    dir: tempfile::TempDir,
    log: Log,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("host")).unwrap();
        std::fs::write(dir.path().join("host/hosts"), "127.0.0.1 localhost\n").unwrap();
        std::fs::write(
            dir.path().join("host/resolv.conf"),
            "nameserver 192.0.2.1\n",
        )
        .unwrap();
        Self {
            dir,
            log: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn files(&self, fail_mount: bool) -> SandboxFiles {
        let mut mounts = MockHostMounts::new();
        let log = self.log.clone();
        mounts.expect_mount_tmpfs().returning(move |_, _, _, _| {
            push(&log, "mount shm");
            if fail_mount {
                Err(std::io::Error::from_raw_os_error(libc::EPERM))
            } else {
                Ok(())
            }
        });
        let log = self.log.clone();
        mounts.expect_unmount_detach().returning(move |_| {
            push(&log, "unmount shm");
            Ok(())
        });
        let p = self.dir.path();
        SandboxFiles::new(p.join("root"), p.join("state"), Arc::new(mounts))
            .with_host_files(p.join("host/hosts"), p.join("host/resolv.conf"))
            .with_node_hostname("node")
    }

    fn sandbox_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("root/sandboxes/sb1")
    }
}

/// containerd mocks that log each call and fail at `fail`.
fn containerd(log: &Log, fail: Fail) -> MockServices {
    let mut m = MockServices::default();
    let l = log.clone();
    m.leases.expect_create().returning(move |id, labels| {
        push(&l, "create lease");
        assert!(labels.contains_key("containerd.io/gc.expire"));
        if fail == Fail::Lease {
            return Err(unavailable());
        }
        Ok(Lease {
            id: id.to_owned(),
            labels,
        })
    });
    let l = log.clone();
    m.leases.expect_delete().returning(move |_, _| {
        push(&l, "delete lease");
        Ok(())
    });
    let l = log.clone();
    m.snapshots
        .expect_prepare()
        .returning(move |snapshotter, key, parent, _, lease| {
            push(
                &l,
                if lease.is_some() {
                    "prepare snapshot under lease"
                } else {
                    "prepare snapshot"
                },
            );
            assert_eq!(
                (snapshotter, key, parent),
                ("overlayfs", "sb1", "sha256:chain")
            );
            if fail == Fail::Snapshot {
                return Err(unavailable());
            }
            Ok(vec![Mount {
                kind: "overlay".into(),
                source: "overlay".into(),
                ..Mount::default()
            }])
        });
    let l = log.clone();
    m.snapshots.expect_remove().returning(move |_, _| {
        push(&l, "remove snapshot");
        Ok(())
    });
    let l = log.clone();
    m.containers.expect_create().returning(move |record| {
        push(&l, "create container");
        assert_eq!(record.snapshot_key, "sb1");
        assert_eq!(record.image, "registry.k8s.io/pause:3.8");
        assert_eq!(record.labels["io.cri-containerd.kind"], "sandbox");
        assert_eq!(record.extensions["ext"].value, b"{}");
        let spec = record.spec.as_ref().unwrap();
        assert_eq!(spec.type_url, SPEC_TYPE_URL);
        let json: serde_json::Value = serde_json::from_slice(&spec.value).unwrap();
        assert_eq!(json["process"]["args"][0], "/pause");
        if fail == Fail::Container {
            return Err(unavailable());
        }
        Ok(record)
    });
    let l = log.clone();
    m.containers.expect_delete().returning(move |_| {
        push(&l, "delete container");
        Ok(())
    });
    let l = log.clone();
    m.tasks.expect_create().returning(move |task| {
        push(&l, "create task");
        assert_eq!(task.rootfs.len(), 1);
        assert!(task.stdin.is_empty() && task.stdout.is_empty() && task.stderr.is_empty());
        // The runtime's `runtime_path` goes with the task (`WithRuntimePath`).
        assert_eq!(task.runtime_path, SHIM_PATH);
        if fail == Fail::TaskCreate {
            return Err(unavailable());
        }
        Ok(42)
    });
    let l = log.clone();
    m.tasks.expect_start().returning(move |_, _| {
        push(&l, "start task");
        if fail == Fail::TaskStart {
            return Err(unavailable());
        }
        Ok(42)
    });
    let l = log.clone();
    m.tasks.expect_kill().returning(move |_, _, _, _| {
        push(&l, "kill task");
        Ok(())
    });
    m.tasks.expect_wait().returning(|_, _| {
        Ok(ExitStatus {
            code: 137,
            exited_at: None,
        })
    });
    let l = log.clone();
    m.tasks.expect_delete().returning(move |_, _| {
        push(&l, "delete task");
        Ok(ExitStatus {
            code: 137,
            exited_at: None,
        })
    });
    m
}

fn pause_image(entrypoint: &[&str]) -> SandboxImage {
    let config: ImageConfiguration = serde_json::from_value(serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": entrypoint, "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": []},
    }))
    .unwrap();
    SandboxImage {
        name: "registry.k8s.io/pause:3.8".into(),
        chain_id: "sha256:chain".into(),
        config,
    }
}

fn request(image: SandboxImage) -> CreateSandbox {
    let metadata: MetadataExtension = Arc::new(|label: &str| {
        assert_eq!(label, "");
        Ok((
            "ext".to_owned(),
            Any {
                type_url: "t".into(),
                value: b"{}".to_vec(),
            },
        ))
    });
    CreateSandbox {
        id: SandboxId::from("sb1"),
        config: v1::PodSandboxConfig {
            metadata: Some(v1::PodSandboxMetadata {
                name: "web".into(),
                uid: "u1".into(),
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: "web".into(),
            ..Default::default()
        },
        netns_path: Some("/var/run/netns/cni-1".into()),
        image,
        runtime: RuntimeInfo {
            name: "io.containerd.runc.v2".into(),
            options: None,
        },
        runtime_path: SHIM_PATH.into(),
        snapshotter: "overlayfs".into(),
        spec_options: RuntimeOptions::default(),
        labels: HashMap::from([("io.cri-containerd.kind".into(), "sandbox".into())]),
        metadata,
    }
}

/// A `record_made` nobody listens to.
fn made() -> RecordMade {
    tokio::sync::oneshot::channel().0
}

fn controller(env: &Env, services: MockServices, fail_mount: bool) -> PodSandboxController {
    PodSandboxController::new(
        services.build(),
        env.files(fail_mount),
        Arc::new(LinuxHostOs::new()),
        Arc::new(NoSeLinux),
        Arc::new(MockRootfsUserDb::new()),
    )
}

async fn run(fail: Fail) -> (Env, Result<SandboxInstance>) {
    let env = Env::new();
    let services = containerd(&env.log, fail);
    let image = if fail == Fail::Spec {
        pause_image(&[])
    } else {
        pause_image(&["/pause"])
    };
    let c = controller(&env, services, fail == Fail::Files);
    let result = match c.create(request(image), made()).await {
        Ok(()) => c.start(&SandboxId::from("sb1")).await,
        Err(e) => Err(e),
    };
    (env, result)
}

/// The pod's request with a user to look up in the image (the path
/// that reads the user database from the snapshot).
/// The shim binary the pod's runtime is configured with.
const SHIM_PATH: &str = "/opt/shims/containerd-shim-runc-v2";

fn user_request() -> CreateSandbox {
    let mut req = request(pause_image(&["/pause"]));
    req.config.linux = Some(v1::LinuxPodSandboxConfig {
        security_context: Some(v1::LinuxSandboxSecurityContext {
            run_as_user: Some(v1::Int64Value { value: 7 }),
            ..Default::default()
        }),
        ..Default::default()
    });
    req
}

/// `run`, for a pod whose spec needs the image's user database.
async fn run_leased(fail: Fail) -> (Env, Result<SandboxInstance>) {
    let env = Env::new();
    let services = containerd(&env.log, fail);
    let mut db = MockRootfsUserDb::new();
    db.expect_load().returning(|mounts| {
        assert_eq!(mounts.len(), 1);
        Ok(crate::host::RootfsUsers {
            passwd: Some("pause:x:7:8::/:/bin/false\n".into()),
            group: None,
        })
    });
    let c = PodSandboxController::new(
        services.build(),
        env.files(fail == Fail::Files),
        Arc::new(LinuxHostOs::new()),
        Arc::new(NoSeLinux),
        Arc::new(db),
    );
    let result = match c.create(user_request(), made()).await {
        Ok(()) => c.start(&SandboxId::from("sb1")).await,
        Err(e) => Err(e),
    };
    (env, result)
}

/// `first` was logged before `then`.
fn assert_before(log: &[String], first: &str, then: &str) {
    let at = |what: &str| log.iter().position(|e| e == what);
    assert!(
        matches!((at(first), at(then)), (Some(a), Some(b)) if a < b),
        "{first} not before {then} in {log:?}"
    );
}

fn check(log: &[String], expected: &[&str]) {
    assert_eq!(log, expected);
}

/// `log` is `groups` one after the other, each in any order (the steps
/// of a group run side by side).
fn check_groups(log: &[String], groups: &[&[&str]]) {
    let mut rest = log;
    for group in groups {
        assert!(rest.len() >= group.len(), "{log:?} lacks {group:?}");
        let (head, tail) = rest.split_at(group.len());
        let mut got: Vec<&str> = head.iter().map(String::as_str).collect();
        let mut want = group.to_vec();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "in {log:?}");
        rest = tail;
    }
    assert!(rest.is_empty(), "{log:?}: more than {groups:?}");
}

/// The files, while the record and then the snapshot it names are made.
const MADE: &[&str] = &["mount shm", "create container", "prepare snapshot"];
/// With the image's user database: files and lease side by side, then
/// the snapshot under the lease, then the record.
const MADE_LEASED: [&[&str]; 3] = [
    &["mount shm", "create lease"],
    &["prepare snapshot under lease"],
    &["create container"],
];

#[tokio::test]
async fn start_runs_every_step_and_undoes_nothing() {
    let (env, result) = run(Fail::Nothing).await;
    let instance = result.unwrap();
    assert_eq!(instance.pid, 42);
    assert_eq!(instance.labels["oci_runtime_type"], "io.containerd.runc.v2");
    let log = log_of(&env.log);
    check_groups(&log, &[MADE, &["create task"], &["start task"]]);
    // No lease: the record holds the snapshot from the moment it exists.
    assert_before(&log, "create container", "prepare snapshot");
    let resolv = std::fs::read_to_string(env.sandbox_dir().join("resolv.conf")).unwrap();
    assert_eq!(resolv, "nameserver 192.0.2.1\n");
}

#[tokio::test]
async fn failed_files_leave_nothing() {
    let (env, result) = run(Fail::Files).await;
    assert!(matches!(result, Err(ControllerError::Files { .. })));
    // The record and snapshot were made while the files failed, and go.
    check_groups(
        &log_of(&env.log),
        &[
            &[
                "mount shm",
                "unmount shm",
                "create container",
                "prepare snapshot",
            ],
            &["remove snapshot"],
            &["delete container"],
        ],
    );
    assert!(!env.sandbox_dir().exists());
}

#[tokio::test]
async fn failed_snapshot_deletes_the_record_and_the_files() {
    let (env, result) = run(Fail::Snapshot).await;
    assert!(result.is_err());
    check_groups(
        &log_of(&env.log),
        &[MADE, &["delete container"], &["unmount shm"]],
    );
    assert!(!env.sandbox_dir().exists());
}

#[tokio::test]
async fn failed_spec_makes_nothing() {
    let (env, result) = run(Fail::Spec).await;
    assert!(
        matches!(result, Err(ControllerError::Spec { .. })),
        "{result:?}"
    );
    // The spec is built before anything is made.
    check(&log_of(&env.log), &[]);
    assert!(!env.sandbox_dir().exists());
}

#[tokio::test]
async fn failed_container_create_makes_no_snapshot() {
    let (env, result) = run(Fail::Container).await;
    assert!(result.is_err());
    check_groups(
        &log_of(&env.log),
        &[&["mount shm", "create container"], &["unmount shm"]],
    );
}

#[tokio::test]
async fn failed_task_create_deletes_the_container() {
    let (env, result) = run(Fail::TaskCreate).await;
    assert!(result.is_err());
    check_groups(
        &log_of(&env.log),
        &[
            MADE,
            &["create task"],
            &["remove snapshot"],
            &["delete container"],
            &["unmount shm"],
        ],
    );
    assert!(!env.sandbox_dir().exists());
}

#[tokio::test]
async fn failed_task_start_kills_and_deletes_the_task() {
    let (env, result) = run(Fail::TaskStart).await;
    assert!(result.is_err());
    check_groups(
        &log_of(&env.log),
        &[
            MADE,
            &["create task"],
            &["start task"],
            &["kill task"],
            &["delete task"],
            &["remove snapshot"],
            &["delete container"],
            &["unmount shm"],
        ],
    );
}

#[tokio::test]
async fn with_the_user_database_the_snapshot_is_made_under_a_lease() {
    let (env, result) = run_leased(Fail::Nothing).await;
    result.unwrap();
    check_groups(
        &log_of(&env.log),
        &[
            MADE_LEASED[0],
            MADE_LEASED[1],
            MADE_LEASED[2],
            &["delete lease", "create task"],
            &["start task"],
        ],
    );
}

#[tokio::test]
async fn failed_lease_removes_files() {
    let (env, result) = run_leased(Fail::Lease).await;
    assert!(result.unwrap_err().containerd().is_some());
    check_groups(&log_of(&env.log), &[MADE_LEASED[0], &["unmount shm"]]);
    assert!(!env.sandbox_dir().exists());
}

#[tokio::test]
async fn failed_leased_snapshot_removes_files_and_the_lease() {
    let (env, result) = run_leased(Fail::Snapshot).await;
    assert!(result.is_err());
    check_groups(
        &log_of(&env.log),
        &[
            MADE_LEASED[0],
            MADE_LEASED[1],
            &["delete lease"],
            &["unmount shm"],
        ],
    );
}

#[tokio::test]
async fn failed_container_create_after_the_user_database_removes_the_snapshot() {
    let (env, result) = run_leased(Fail::Container).await;
    assert!(result.is_err());
    check_groups(
        &log_of(&env.log),
        &[
            MADE_LEASED[0],
            MADE_LEASED[1],
            MADE_LEASED[2],
            &["delete lease"],
            &["remove snapshot"],
            &["unmount shm"],
        ],
    );
}

#[tokio::test]
async fn a_failing_undo_is_attached_to_the_error() {
    let env = Env::new();
    let mut services = containerd(&env.log, Fail::TaskStart);
    services.containers.checkpoint();
    let l = env.log.clone();
    services.containers.expect_create().returning(move |r| {
        push(&l, "create container");
        Ok(r)
    });
    services
        .containers
        .expect_delete()
        .returning(|_| Err(unavailable()));
    let c = controller(&env, services, false);
    c.create(request(pause_image(&["/pause"])), made())
        .await
        .unwrap();
    let err = c.start(&SandboxId::from("sb1")).await.unwrap_err();
    match &err {
        ControllerError::WithUndo { undo, .. } => {
            assert_eq!(undo.len(), 1);
            assert_eq!(undo[0].step, "delete sandbox container");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("undo also failed"), "{err}");
    // Later undos still ran.
    assert!(log_of(&env.log).ends_with(&["remove snapshot".to_owned(), "unmount shm".to_owned()]));
}

#[tokio::test]
async fn start_without_create_fails() {
    let env = Env::new();
    let c = controller(&env, MockServices::default(), false);
    let err = c.start(&SandboxId::from("sb1")).await.unwrap_err();
    assert!(matches!(err, ControllerError::NotCreated { .. }));
}

#[tokio::test]
async fn a_named_image_user_reads_the_user_database() {
    let env = Env::new();
    let services = containerd(&env.log, Fail::Nothing);
    let mut db = MockRootfsUserDb::new();
    db.expect_load().times(1).returning(|mounts| {
        assert_eq!(mounts.len(), 1);
        Ok(crate::host::RootfsUsers {
            passwd: Some("pause:x:7:8::/:/bin/false\n".into()),
            group: None,
        })
    });
    let c = PodSandboxController::new(
        services.build(),
        env.files(false),
        Arc::new(LinuxHostOs::new()),
        Arc::new(NoSeLinux),
        Arc::new(db),
    );
    let mut req = request(pause_image(&["/pause"]));
    req.config.linux = Some(v1::LinuxPodSandboxConfig {
        security_context: Some(v1::LinuxSandboxSecurityContext {
            run_as_user: Some(v1::Int64Value { value: 7 }),
            ..Default::default()
        }),
        ..Default::default()
    });
    c.create(req, made()).await.unwrap();
    c.start(&SandboxId::from("sb1")).await.unwrap();
}

#[tokio::test]
async fn stop_unmounts_shm_and_kills_the_task() {
    let env = Env::new();
    let services = containerd(&env.log, Fail::Nothing);
    let c = controller(&env, services, false);
    c.create(request(pause_image(&["/pause"])), made())
        .await
        .unwrap();
    c.start(&SandboxId::from("sb1")).await.unwrap();
    env.log.lock().unwrap().clear();
    c.stop(&SandboxId::from("sb1"), Duration::ZERO)
        .await
        .unwrap();
    check(
        &log_of(&env.log),
        &["unmount shm", "kill task", "delete task"],
    );
}

#[tokio::test]
async fn wait_deletes_the_exited_task_without_killing_it() {
    let env = Env::new();
    let mut services = MockServices::default();
    let exit = ExitStatus {
        code: 0,
        exited_at: None,
    };
    services
        .tasks
        .expect_wait()
        .times(1)
        .returning(move |_, _| Ok(exit));
    services.tasks.expect_kill().times(0);
    services
        .tasks
        .expect_delete()
        .withf(|id, exec| id == "sb1" && exec.is_empty())
        .times(1)
        .returning(move |_, _| {
            Ok(ExitStatus {
                code: 0,
                exited_at: None,
            })
        });
    let c = controller(&env, services, false);
    assert_eq!(c.wait(&SandboxId::from("sb1")).await.unwrap(), exit);
}

#[tokio::test]
async fn start_sends_the_wait_that_wait_takes_over() {
    let env = Env::new();
    let mut services = containerd(&env.log, Fail::Nothing);
    services.tasks.checkpoint();
    services.tasks.expect_create().returning(|_| Ok(42));
    services.tasks.expect_start().returning(|_, _| Ok(42));
    let exit = ExitStatus {
        code: 7,
        exited_at: None,
    };
    let sent = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = Arc::clone(&sent);
    services
        .tasks
        .expect_wait()
        .withf(|id, exec| id == "sb1" && exec.is_empty())
        .times(1)
        .returning(move |_, _| {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(exit)
        });
    services.tasks.expect_kill().times(0);
    services
        .tasks
        .expect_delete()
        .times(1)
        .returning(move |_, _| Ok(exit));
    let c = controller(&env, services, false);
    c.create(request(pause_image(&["/pause"])), made())
        .await
        .unwrap();
    c.start(&SandboxId::from("sb1")).await.unwrap();
    // Sent by the start, before anyone waits.
    for _ in 0..100 {
        if sent.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(sent.load(std::sync::atomic::Ordering::SeqCst));
    // The monitor's wait takes that one over: one Tasks/Wait in all.
    assert_eq!(c.wait(&SandboxId::from("sb1")).await.unwrap(), exit);
}

#[tokio::test]
async fn shutdown_of_a_gone_sandbox_succeeds() {
    let env = Env::new();
    let mut services = MockServices::default();
    services
        .tasks
        .expect_kill()
        .returning(|_, _, _, _| Err(not_found()));
    services
        .tasks
        .expect_wait()
        .returning(|_, _| Err(not_found()));
    services
        .tasks
        .expect_delete()
        .returning(|_, _| Err(not_found()));
    services
        .containers
        .expect_get()
        .returning(|_| Err(not_found()));
    let c = controller(&env, services, false);
    c.shutdown(&SandboxId::from("sb1")).await.unwrap();
}

#[tokio::test]
async fn status_of_a_deleted_task() {
    let env = Env::new();
    let mut services = MockServices::default();
    services
        .tasks
        .expect_get()
        .returning(|_, _| Err(not_found()));
    services
        .containers
        .expect_get()
        .returning(|_| Err(not_found()));
    let c = controller(&env, services, false);
    let status = c.status(&SandboxId::from("sb1"), true).await.unwrap();
    assert_eq!(status.process_status, "deleted");
    assert_eq!(status.container, None);

    let mut services = MockServices::default();
    services.tasks.expect_get().returning(|_, _| {
        Ok(TaskInfo {
            pid: 9,
            status: TaskStatus::Running,
            ..TaskInfo::default()
        })
    });
    let c = controller(&env, services, false);
    let status = c.status(&SandboxId::from("sb1"), false).await.unwrap();
    assert_eq!((status.pid, status.process_status.as_str()), (9, "running"));
}

#[tokio::test]
async fn create_makes_the_task_and_start_only_starts_it() {
    let env = Env::new();
    let c = controller(&env, containerd(&env.log, Fail::Nothing), false);
    c.create(request(pause_image(&["/pause"])), made())
        .await
        .unwrap();
    assert!(log_of(&env.log).iter().any(|e| e == "create task"));
    assert!(!log_of(&env.log).iter().any(|e| e == "start task"));
    env.log.lock().unwrap().clear();
    let instance = c.start(&SandboxId::from("sb1")).await.unwrap();
    assert_eq!(instance.pid, 42);
    check(&log_of(&env.log), &["start task"]);
    // Started once: a second start has nothing to start.
    let err = c.start(&SandboxId::from("sb1")).await.unwrap_err();
    assert!(matches!(err, ControllerError::NotCreated { .. }), "{err}");
}

#[tokio::test]
async fn shutdown_removes_a_sandbox_created_and_never_started() {
    let env = Env::new();
    let mut services = containerd(&env.log, Fail::Nothing);
    services.containers.expect_get().returning(|id| {
        Ok(ContainerRecord {
            id: id.to_owned(),
            snapshotter: "overlayfs".into(),
            snapshot_key: id.to_owned(),
            ..ContainerRecord::default()
        })
    });
    let c = controller(&env, services, false);
    c.create(request(pause_image(&["/pause"])), made())
        .await
        .unwrap();
    env.log.lock().unwrap().clear();
    c.shutdown(&SandboxId::from("sb1")).await.unwrap();
    let log = log_of(&env.log);
    for step in ["delete task", "remove snapshot", "delete container"] {
        assert!(log.iter().any(|e| e == step), "{step}: {log:?}");
    }
    assert!(!env.sandbox_dir().exists());
    let err = c.start(&SandboxId::from("sb1")).await.unwrap_err();
    assert!(matches!(err, ControllerError::NotCreated { .. }), "{err}");
}

/// A metadata extension that checks the process label it is given.
fn metadata_ext(value: Any) -> MetadataExtension {
    Arc::new(move |label: &str| {
        assert_eq!(label, "", "the label create gave the sandbox");
        Ok((
            "io.cri-containerd.sandbox.metadata".to_owned(),
            value.clone(),
        ))
    })
}

#[tokio::test]
async fn update_metadata_rewrites_only_that_extension() {
    let env = Env::new();
    let mut services = containerd(&env.log, Fail::Nothing);
    type Seen = Option<(ContainerRecord, Vec<String>)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let s = Arc::clone(&seen);
    services
        .containers
        .expect_update()
        .times(1)
        .returning(move |record, paths| {
            *s.lock().unwrap() = Some((record.clone(), paths));
            Ok(record)
        });
    let c = controller(&env, services, false);
    c.create(request(pause_image(&["/pause"])), made())
        .await
        .unwrap();
    let value = Any {
        type_url: "github.com/containerd/cri/pkg/store/sandbox/Metadata".into(),
        value: br#"{"Version":"v1"}"#.to_vec(),
    };
    c.update_metadata(&SandboxId::from("sb1"), metadata_ext(value.clone()))
        .await
        .unwrap();
    let (record, paths) = seen.lock().unwrap().take().unwrap();
    assert_eq!(record.id, "sb1");
    assert_eq!(
        record.extensions,
        HashMap::from([("io.cri-containerd.sandbox.metadata".to_owned(), value)])
    );
    assert_eq!(paths, ["extensions.io.cri-containerd.sandbox.metadata"]);
    // The sandbox is still there to start.
    c.start(&SandboxId::from("sb1")).await.unwrap();
}

#[tokio::test]
async fn update_metadata_wants_a_created_sandbox() {
    let env = Env::new();
    let c = controller(&env, MockServices::default(), false);
    let err = c
        .update_metadata(&SandboxId::from("sb1"), metadata_ext(Any::default()))
        .await
        .unwrap_err();
    assert!(matches!(err, ControllerError::NotCreated { .. }), "{err}");
}

#[tokio::test]
async fn a_failed_metadata_update_names_the_sandbox() {
    let env = Env::new();
    let mut services = containerd(&env.log, Fail::Nothing);
    services
        .containers
        .expect_update()
        .returning(|_, _| Err(unavailable()));
    let c = controller(&env, services, false);
    c.create(request(pause_image(&["/pause"])), made())
        .await
        .unwrap();
    let err = c
        .update_metadata(&SandboxId::from("sb1"), metadata_ext(Any::default()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ControllerError::Containerd {
                op: "update sandbox metadata",
                ..
            }
        ),
        "{err}"
    );
}

/// `update_metadata` of sb1 is refused: it is neither being created nor
/// created and waiting to start.
async fn assert_metadata_fixed(c: &PodSandboxController) {
    let late = c
        .update_metadata(
            &SandboxId::from("sb1"),
            metadata_ext(Any {
                type_url: "t".into(),
                value: Vec::new(),
            }),
        )
        .await;
    assert!(
        matches!(late, Err(ControllerError::NotCreated { .. })),
        "{late:?}"
    );
}

/// `record_made` is told once the record and its snapshot exist and
/// before the task is created, and the metadata can be updated from then
/// on, while the task is still in the making (here: held until the
/// update is done).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_record_is_told_before_the_task_and_updated_while_it_is_made() {
    let env = Env::new();
    let mut services = containerd(&env.log, Fail::Nothing);
    let l = env.log.clone();
    services
        .containers
        .expect_update()
        .returning(move |record, _| {
            push(&l, "update container");
            Ok(record)
        });
    let (updated, held) = std::sync::mpsc::channel::<()>();
    let held = Mutex::new(held);
    let mut tasks = cri_api::containerd::MockTasks::new();
    let l = env.log.clone();
    tasks.expect_create().returning(move |_| {
        push(&l, "create task");
        held.lock()
            .unwrap()
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the metadata was not updated while the task was made");
        push(&l, "task created");
        Ok(42)
    });
    tasks.expect_wait().returning(|_, _| {
        Ok(ExitStatus {
            code: 0,
            exited_at: None,
        })
    });
    tasks.expect_start().returning(|_, _| Ok(42));
    services.tasks = tasks;
    let c = Arc::new(controller(&env, services, false));
    let (record_made, recorded) = tokio::sync::oneshot::channel();
    let creating = tokio::spawn({
        let c = Arc::clone(&c);
        async move {
            c.create(request(pause_image(&["/pause"])), record_made)
                .await
        }
    });
    recorded.await.expect("record_made was dropped");
    let seen = log_of(&env.log);
    assert!(
        seen.contains(&"create container".to_owned())
            && seen.contains(&"prepare snapshot".to_owned()),
        "{seen:?}"
    );
    assert!(!seen.contains(&"task created".to_owned()), "{seen:?}");
    let value = Any {
        type_url: "t".into(),
        value: b"{}".to_vec(),
    };
    c.update_metadata(&SandboxId::from("sb1"), metadata_ext(value))
        .await
        .unwrap();
    updated.send(()).unwrap();
    creating.await.unwrap().unwrap();
    let seen = log_of(&env.log);
    let at = |what: &str| seen.iter().position(|e| e == what).unwrap();
    assert!(at("update container") < at("task created"), "{seen:?}");
    c.start(&SandboxId::from("sb1")).await.unwrap();
    // Once created and started, the sandbox is no longer among those
    // whose metadata can change.
    assert_metadata_fixed(&c).await;
}

/// A create that fails after its record was told forgets it: its
/// metadata can no longer be updated.
#[tokio::test]
async fn a_failed_create_forgets_its_record() {
    let env = Env::new();
    let services = containerd(&env.log, Fail::TaskCreate);
    let c = controller(&env, services, false);
    let (record_made, recorded) = tokio::sync::oneshot::channel();
    assert!(c
        .create(request(pause_image(&["/pause"])), record_made)
        .await
        .is_err());
    assert_eq!(
        recorded.await,
        Ok(()),
        "the record was made before the task failed"
    );
    assert_metadata_fixed(&c).await;
}
