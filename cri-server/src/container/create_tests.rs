//! CreateContainer unit tests: the happy path, bad input, and one
//! failure-injection test per step asserting which undos ran, in order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cri_api::containerd::{ContainerRecord, ContainerdError, MockServices, RuntimeInfo};
use cri_api::ids::ContainerId;
use cri_api::v1::{
    ContainerEventType, ContainerState, CreateContainerRequest, LinuxContainerConfig,
    LinuxContainerSecurityContext,
};
use cri_spec::{MockSeLinux, SelinuxLabels};
use cri_store::container::ContainerStatus;
use futures::StreamExt;
use mockall::predicate::eq;
use mockall::Sequence;
use tonic::Code;

use super::*;
use crate::container::testutil::{
    add_container, add_sandbox, container_config, pod_config, Mocks, TestEnv, BUSYBOX, CHAIN_ID,
    SANDBOX,
};

const ID: &str = "c0";
const NAME: &str = "web_pod_ns_uid1_1";

/// The containerd calls of a create, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    UserDbView,
    /// The user database was read; a step without containerd fails (spec,
    /// log path, IO).
    AfterUserDb,
    SandboxRecord,
    /// The container record, before the snapshot it names.
    CreateContainer,
    /// The snapshot, while the status checkpoint is written.
    Prepare,
    /// Every containerd call succeeds.
    Done,
}

/// What the containerd mocks do.
struct Plan {
    fail: Step,
    /// `Containers::create` takes this long (blocking the worker).
    create_delay: Duration,
}

/// The record `Containers::create` received.
type Captured = Arc<Mutex<Option<ContainerRecord>>>;

/// What an undo removes in containerd.
#[derive(Clone, Copy, Debug)]
enum Undo {
    DeleteContainer,
    RemoveSnapshot,
}

fn failure(op: &'static str) -> ContainerdError {
    ContainerdError::Rpc {
        op,
        code: Code::Internal,
        message: "injected".into(),
    }
}

/// Expects every containerd call of a create up to `fail`, which fails.
fn expect_until(m: &mut MockServices, seq: &mut Sequence, fail: Step) -> Captured {
    expect_plan(
        m,
        seq,
        Plan {
            fail,
            create_delay: Duration::ZERO,
        },
    )
}

fn expect_plan(m: &mut MockServices, seq: &mut Sequence, plan: Plan) -> Captured {
    let captured = Captured::default();
    let fail = plan.fail;
    let ok = move |step: Step| step < fail;
    m.snapshots
        .expect_view()
        .withf(|s, key, parent, _| s == "overlayfs" && key == "c0-userdb" && parent == CHAIN_ID)
        .times(1)
        .in_sequence(seq)
        .returning(move |_, _, _, _| {
            if ok(Step::UserDbView) {
                Ok(Vec::new())
            } else {
                Err(failure("view"))
            }
        });
    if fail == Step::UserDbView {
        return captured;
    }
    m.snapshots
        .expect_remove()
        .with(eq("overlayfs"), eq("c0-userdb"))
        .times(1)
        .in_sequence(seq)
        .returning(|_, _| Ok(()));
    if fail == Step::AfterUserDb {
        return captured;
    }
    m.containers
        .expect_get()
        .with(eq(SANDBOX))
        .times(1)
        .in_sequence(seq)
        .returning(move |id| {
            if ok(Step::SandboxRecord) {
                Ok(ContainerRecord {
                    id: id.to_owned(),
                    runtime: RuntimeInfo {
                        name: "io.containerd.runc.v2".into(),
                        options: None,
                    },
                    ..ContainerRecord::default()
                })
            } else {
                Err(failure("get container"))
            }
        });
    if fail == Step::SandboxRecord {
        return captured;
    }
    let slot = Arc::clone(&captured);
    m.containers
        .expect_create()
        .times(1)
        .in_sequence(seq)
        .returning(move |record| {
            std::thread::sleep(plan.create_delay);
            if ok(Step::CreateContainer) {
                *slot.lock().unwrap() = Some(record.clone());
                Ok(record)
            } else {
                Err(failure("create container"))
            }
        });
    if fail == Step::CreateContainer {
        return captured;
    }
    // No lease: the record made first holds the snapshot.
    m.snapshots
        .expect_prepare()
        .withf(|s, key, parent, labels, lease| {
            s == "overlayfs"
                && key == ID
                && parent == CHAIN_ID
                && labels
                    .get("containerd.io/snapshot/remote")
                    .map(String::as_str)
                    == Some("yes")
                && lease.is_none()
        })
        .times(1)
        .in_sequence(seq)
        .returning(move |_, _, _, _, _| {
            if ok(Step::Prepare) {
                Ok(Vec::new())
            } else {
                Err(failure("prepare"))
            }
        });
    captured
}

/// Expects the containerd undos, in this order.
fn expect_undos(m: &mut MockServices, seq: &mut Sequence, undos: &[Undo]) {
    for undo in undos {
        match undo {
            Undo::DeleteContainer => {
                m.containers
                    .expect_delete()
                    .with(eq(ID))
                    .times(1)
                    .in_sequence(seq)
                    .returning(|_| Ok(()));
            }
            Undo::RemoveSnapshot => {
                m.snapshots
                    .expect_remove()
                    .with(eq("overlayfs"), eq(ID))
                    .times(1)
                    .in_sequence(seq)
                    .returning(|_, _| Ok(()));
            }
        }
    }
}

fn request() -> CreateContainerRequest {
    let mut config = container_config("web");
    config
        .annotations
        .insert("containerd.io/snapshot/remote".into(), "yes".into());
    CreateContainerRequest {
        pod_sandbox_id: SANDBOX.into(),
        config: Some(config),
        sandbox_config: Some(pod_config()),
    }
}

/// A state with a ready sandbox over mocks that expect the containerd
/// calls up to `fail` and then `undos`.
fn env_failing_at(fail: Step, undos: &[Undo]) -> TestEnv {
    let mut mocks = Mocks::default();
    let mut seq = Sequence::new();
    expect_until(&mut mocks.services, &mut seq, fail);
    expect_undos(&mut mocks.services, &mut seq, undos);
    let env = TestEnv::with(mocks, "");
    add_sandbox(&env, SANDBOX, true);
    env
}

fn root(env: &TestEnv) -> &Path {
    env.dir.path()
}

/// Nothing of the container is left: name, dirs, store, handle.
fn assert_nothing_left(env: &TestEnv) {
    assert_eq!(env.state.names.owner(NAME), None, "name still reserved");
    assert!(
        !root(env).join("root/containers").join(ID).exists(),
        "root dir left"
    );
    assert!(
        !root(env).join("state/containers").join(ID).exists(),
        "volatile dir left"
    );
    assert!(env.state.store.get(ID).is_err(), "store entry left");
    assert!(env.state.store.handle(ID).is_none(), "handle left");
}

async fn create_err(env: &TestEnv, request: CreateContainerRequest) -> ContainerError {
    create(&env.state, request).await.unwrap_err()
}

fn code(err: ContainerError) -> Code {
    tonic::Status::from(err).code()
}

#[tokio::test]
async fn creates_the_container_as_containerd_does() {
    let mut mocks = Mocks::default();
    let mut seq = Sequence::new();
    let created = expect_until(&mut mocks.services, &mut seq, Step::Done);
    let env = TestEnv::with(mocks, "");
    add_sandbox(&env, SANDBOX, true);
    let mut events = env.state.events.subscribe();

    let id = create(&env.state, request()).await.unwrap();
    assert_eq!(id, ID);

    let stored = env.state.store.get(ID).unwrap();
    assert_eq!(stored.status.state(), ContainerState::ContainerCreated);
    assert_eq!(stored.metadata.name, NAME);
    assert_eq!(
        stored.metadata.image_ref,
        crate::container::testutil::BUSYBOX_ID
    );
    assert_eq!(stored.metadata.stop_signal, "SIGQUIT");
    assert_eq!(
        stored.metadata.log_path,
        "/var/log/pods/ns_pod_uid1/web/1.log"
    );
    assert!(stored.status.resources.is_some());
    assert_eq!(env.state.names.owner(NAME).as_deref(), Some(ID));
    assert!(root(&env).join("root/containers/c0/status").is_file());
    let io_dir = root(&env).join("state/containers/c0/io");
    let fifo_dir = std::fs::read_dir(&io_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(fifo_dir.join("c0-stdout").exists() && fifo_dir.join("c0-stderr").exists());
    assert!(!fifo_dir.join("c0-stdin").exists());
    let handle = env.state.store.handle(ID).unwrap();
    assert!(handle.io().is_some());
    assert_eq!(handle.snapshotter, "overlayfs");

    let record = created.lock().unwrap().clone().unwrap();
    assert_eq!(record.id, ID);
    assert_eq!(record.image, BUSYBOX);
    assert_eq!(record.snapshotter, "overlayfs");
    assert_eq!(record.snapshot_key, ID);
    assert_eq!(record.runtime.name, "io.containerd.runc.v2");
    assert_eq!(record.labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(
        record.labels.get("from-image").map(String::as_str),
        Some("yes")
    );
    assert!(!record.labels.contains_key("containerd.io/reserved"));
    assert_eq!(
        record
            .labels
            .get("io.cri-containerd.kind")
            .map(String::as_str),
        Some("container")
    );
    let extension = &record.extensions["io.cri-containerd.container.metadata"];
    assert_eq!(
        extension.type_url,
        "github.com/containerd/cri/pkg/store/container/Metadata"
    );
    let meta = cri_metadata::container_metadata_from_any(ID, extension).unwrap();
    assert_eq!(meta.name, NAME);
    let spec_any = record.spec.unwrap();
    assert_eq!(spec_any.type_url, crate::container::spec::SPEC_TYPE_URL);
    let spec: oci_spec::runtime::Spec = serde_json::from_slice(&spec_any.value).unwrap();
    let args = spec.process().as_ref().unwrap().args().clone().unwrap();
    assert_eq!(args, ["sh"]);

    let event = events.next().await.unwrap();
    assert_eq!(event.container_id, ID);
    assert_eq!(
        event.container_event_type,
        ContainerEventType::ContainerCreatedEvent as i32
    );
    assert_eq!(event.containers_statuses.len(), 1);
    let exposition = env.state.metrics.encode_text().unwrap();
    assert!(
        exposition.contains(
            r#"cri_server_container_create_seconds_count{runtime="io.containerd.runc.v2"} 1"#
        ),
        "{exposition}"
    );
}

#[tokio::test]
async fn missing_fields_are_invalid_and_touch_nothing() {
    let env = TestEnv::new();
    add_sandbox(&env, SANDBOX, true);
    let mut no_sandbox = request();
    no_sandbox.pod_sandbox_id.clear();
    let mut no_config = request();
    no_config.config = None;
    let mut no_metadata = request();
    no_metadata.config.as_mut().unwrap().metadata = None;
    let mut no_image = request();
    no_image.config.as_mut().unwrap().image = None;
    for bad in [no_sandbox, no_config, no_metadata, no_image] {
        let err = create_err(&env, bad).await;
        assert_eq!(code(err), Code::InvalidArgument);
    }
    assert_nothing_left(&env);
}

#[tokio::test]
async fn unknown_sandbox_is_not_found() {
    let env = TestEnv::new();
    assert_eq!(code(create_err(&env, request()).await), Code::NotFound);
}

#[tokio::test]
async fn sandbox_not_ready_is_failed_precondition() {
    let env = TestEnv::new();
    add_sandbox(&env, SANDBOX, false);
    assert_eq!(
        code(create_err(&env, request()).await),
        Code::FailedPrecondition
    );
    assert_nothing_left(&env);
}

#[tokio::test]
async fn reused_name_is_already_exists() {
    let env = TestEnv::new();
    add_sandbox(&env, SANDBOX, true);
    env.state.names.reserve(NAME, "other").unwrap().keep();
    assert_eq!(code(create_err(&env, request()).await), Code::AlreadyExists);
    assert_eq!(env.state.names.owner(NAME).as_deref(), Some("other"));
}

#[tokio::test]
async fn missing_image_is_not_found_and_releases_the_name() {
    let env = TestEnv::new();
    add_sandbox(&env, SANDBOX, true);
    let mut req = request();
    req.config.as_mut().unwrap().image.as_mut().unwrap().image = "nosuch:1".into();
    assert_eq!(code(create_err(&env, req).await), Code::NotFound);
    assert_nothing_left(&env);
}

#[tokio::test]
async fn root_dir_failure_releases_the_name() {
    let env = TestEnv::new();
    add_sandbox(&env, SANDBOX, true);
    std::fs::create_dir_all(root(&env).join("root")).unwrap();
    std::fs::write(root(&env).join("root/containers"), "not a dir").unwrap();
    assert_eq!(code(create_err(&env, request()).await), Code::Internal);
    assert_eq!(env.state.names.owner(NAME), None);
}

#[tokio::test]
async fn volatile_dir_failure_removes_the_root_dir() {
    let env = TestEnv::new();
    add_sandbox(&env, SANDBOX, true);
    std::fs::create_dir_all(root(&env).join("state")).unwrap();
    std::fs::write(root(&env).join("state/containers"), "not a dir").unwrap();
    assert_eq!(code(create_err(&env, request()).await), Code::Internal);
    assert_eq!(env.state.names.owner(NAME), None);
    assert!(!root(&env).join("root/containers/c0").exists());
}

#[tokio::test]
async fn unknown_runtime_handler_removes_the_dirs() {
    let env = TestEnv::new();
    crate::container::testutil::add_sandbox_with_handler(&env, SANDBOX, "nope");
    assert_eq!(code(create_err(&env, request()).await), Code::NotFound);
    assert_nothing_left(&env);
}

#[tokio::test]
async fn user_database_failure_removes_the_dirs() {
    let env = env_failing_at(Step::UserDbView, &[]);
    assert_eq!(code(create_err(&env, request()).await), Code::Internal);
    assert_nothing_left(&env);
}

#[tokio::test]
async fn spec_failure_removes_the_dirs() {
    // A privileged container in a sandbox that is not privileged: the spec
    // fails after the user database was read.
    let env = env_failing_at(Step::AfterUserDb, &[]);
    let mut req = request();
    req.config.as_mut().unwrap().linux = Some(LinuxContainerConfig {
        security_context: Some(LinuxContainerSecurityContext {
            privileged: true,
            ..LinuxContainerSecurityContext::default()
        }),
        ..LinuxContainerConfig::default()
    });
    let err = create(&env.state, req).await.unwrap_err();
    assert!(err.to_string().contains("c0"), "{err}");
    assert_eq!(code(err), Code::FailedPrecondition);
    assert_nothing_left(&env);
}

#[tokio::test]
async fn a_record_failure_releases_the_selinux_label() {
    let mut mocks = Mocks::default();
    let mut seq = Sequence::new();
    expect_until(&mut mocks.services, &mut seq, Step::CreateContainer);
    let mut selinux = MockSeLinux::new();
    selinux.expect_init_labels().returning(|_| {
        Ok(SelinuxLabels {
            process: "system_u:system_r:container_t:s0:c1,c2".into(),
            mount: "system_u:object_r:container_file_t:s0:c1,c2".into(),
        })
    });
    selinux.expect_relabel().returning(|_, _| Ok(()));
    selinux
        .expect_release_label()
        .with(eq("system_u:system_r:container_t:s0:c1,c2"))
        .times(1)
        .return_const(());
    mocks.selinux = Some(Arc::new(selinux));
    let env = TestEnv::with(mocks, "enable_selinux = true");
    add_sandbox(&env, SANDBOX, true);
    assert_eq!(code(create_err(&env, request()).await), Code::Internal);
    assert_nothing_left(&env);
}

#[tokio::test]
async fn snapshot_failure_deletes_the_record_and_the_checkpoint() {
    let env = env_failing_at(Step::Prepare, &[Undo::DeleteContainer]);
    assert_eq!(code(create_err(&env, request()).await), Code::Internal);
    assert_nothing_left(&env);
}

#[tokio::test]
async fn escaping_log_path_is_invalid_and_touches_no_containerd_object() {
    let env = env_failing_at(Step::AfterUserDb, &[]);
    let mut req = request();
    req.config.as_mut().unwrap().log_path = "../../etc/evil.log".into();
    let err = create(&env.state, req).await.unwrap_err();
    assert_eq!(code(err), Code::InvalidArgument);
    assert_nothing_left(&env);
}

#[tokio::test]
async fn io_failure_removes_the_dirs() {
    let env = env_failing_at(Step::AfterUserDb, &[]);
    std::fs::create_dir_all(root(&env).join("state/containers/c0")).unwrap();
    std::fs::write(root(&env).join("state/containers/c0/io"), "not a dir").unwrap();
    assert_eq!(code(create_err(&env, request()).await), Code::Internal);
    assert_nothing_left(&env);
}

#[tokio::test]
async fn sandbox_record_failure_closes_the_io() {
    let env = env_failing_at(Step::SandboxRecord, &[]);
    assert_eq!(code(create_err(&env, request()).await), Code::Internal);
    assert_nothing_left(&env);
}

#[tokio::test]
async fn containerd_create_failure_makes_no_snapshot() {
    // The mocks expect no Prepare after the failed create.
    let env = env_failing_at(Step::CreateContainer, &[]);
    assert_eq!(code(create_err(&env, request()).await), Code::Internal);
    assert_nothing_left(&env);
}

#[tokio::test]
async fn checkpoint_failure_removes_the_snapshot_then_the_containerd_container() {
    let env = env_failing_at(Step::Done, &[Undo::RemoveSnapshot, Undo::DeleteContainer]);
    // A non-empty dir where the checkpoint goes: the rename fails.
    std::fs::create_dir_all(root(&env).join("root/containers/c0/status/x")).unwrap();
    assert_eq!(code(create_err(&env, request()).await), Code::Internal);
    assert_nothing_left(&env);
}

#[tokio::test]
async fn store_failure_deletes_the_checkpoint() {
    let env = env_failing_at(Step::Done, &[Undo::RemoveSnapshot, Undo::DeleteContainer]);
    add_container(&env, ID, "elsewhere", ContainerStatus::default());
    assert_eq!(code(create_err(&env, request()).await), Code::AlreadyExists);
    // The entry that was there stays; everything of the new one is gone.
    assert_eq!(
        env.state
            .store
            .get(ID)
            .unwrap()
            .metadata
            .sandbox_id
            .as_ref(),
        "elsewhere"
    );
    // Its handle too: the new container's (with its snapshotter) never
    // replaced it.
    assert_eq!(
        env.state.store.handle(ID).map(|h| h.snapshotter.clone()),
        Some(String::new())
    );
    assert!(!root(&env).join("root/containers/c0").exists());
    assert_eq!(env.state.names.owner(NAME), None);
}

#[tokio::test]
async fn a_failed_containerd_undo_keeps_an_unknown_record() {
    let mut mocks = Mocks::default();
    let mut seq = Sequence::new();
    expect_until(&mut mocks.services, &mut seq, Step::Done);
    expect_undos(&mut mocks.services, &mut seq, &[Undo::RemoveSnapshot]);
    mocks
        .services
        .containers
        .expect_delete()
        .with(eq(ID))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Err(failure("delete container")));
    let env = TestEnv::with(mocks, "");
    add_sandbox(&env, SANDBOX, true);
    std::fs::create_dir_all(root(&env).join("root/containers/c0/status/x")).unwrap();
    let err = create_err(&env, request()).await;
    let message = err.to_string();
    assert!(
        message.contains("cleanup failed") && message.contains("delete containerd container"),
        "{message}"
    );
    let kept = env.state.store.get(ID).unwrap();
    assert_eq!(kept.status.state(), ContainerState::ContainerUnknown);
    assert_eq!(env.state.names.owner(NAME).as_deref(), Some(ID));
    assert_eq!(env.state.store.handle(ID).unwrap().snapshotter, "overlayfs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_rpc_still_unwinds() {
    let mut mocks = Mocks::default();
    let mut seq = Sequence::new();
    // containerd is slow to answer the create; the client gives up meanwhile.
    expect_plan(
        &mut mocks.services,
        &mut seq,
        Plan {
            fail: Step::CreateContainer,
            create_delay: Duration::from_millis(300),
        },
    );
    let env = TestEnv::with(mocks, "");
    add_sandbox(&env, SANDBOX, true);
    let rpc = create_container(Arc::clone(&env.state), request());
    assert!(tokio::time::timeout(Duration::from_millis(100), rpc)
        .await
        .is_err());
    // The name is still held while the create runs, then released.
    assert_eq!(env.state.names.owner(NAME).as_deref(), Some(ID));
    for _ in 0..100 {
        if env.state.names.owner(NAME).is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_nothing_left(&env);
}

#[tokio::test]
async fn an_image_user_database_is_read_through_one_view_only() {
    let mut mocks = Mocks::default();
    mocks
        .services
        .snapshots
        .expect_view()
        .withf(|s, key, parent, _| s == "overlayfs" && key == "a-userdb" && parent == CHAIN_ID)
        .times(1)
        .returning(|_, _, _, _| Ok(Vec::new()));
    mocks
        .services
        .snapshots
        .expect_remove()
        .with(eq("overlayfs"), eq("a-userdb"))
        .times(1)
        .returning(|_, _| Ok(()));
    let env = TestEnv::with(mocks, "");
    let first = crate::container::spec::image_users(
        &env.state,
        &ContainerId::from("a"),
        "overlayfs",
        CHAIN_ID,
    )
    .await
    .unwrap();
    // The next container of the image: no view, no mount (the mocks
    // above allow one of each).
    let second = crate::container::spec::image_users(
        &env.state,
        &ContainerId::from("b"),
        "overlayfs",
        CHAIN_ID,
    )
    .await
    .unwrap();
    assert_eq!(first, second);
    assert!(first
        .passwd
        .as_deref()
        .is_some_and(|p| p.starts_with("root:")));
}
