//! ExecSync (containerd's `container_execsync.go`): runs a command in a
//! running container, collects stdout and stderr (each capped at 16 MiB,
//! the rest drained and dropped) and returns them with the exit code. A
//! timeout kills the process and fails with DeadlineExceeded, naming what
//! was captured by then.

use std::sync::Arc;
use std::time::Duration;

use cri_api::v1::{ExecSyncRequest, ExecSyncResponse};
use cri_io::CappedBuffer;

use super::error::{ContainerError, Result};
use super::exec::{exec_in_container, ExecEnd, ExecOptions};
use super::ContainerService;

/// containerd's `maxStreamSize`: the most of each stream ExecSync returns.
pub const MAX_EXEC_SYNC_OUTPUT: usize = 16 << 20;
/// How much of the captured output a timeout error quotes.
const QUOTED_OUTPUT: usize = 1024;

/// ExecSync.
pub async fn exec_sync(
    state: Arc<ContainerService>,
    req: ExecSyncRequest,
) -> Result<ExecSyncResponse> {
    let (stdout, stderr) = (
        CappedBuffer::new(MAX_EXEC_SYNC_OUTPUT),
        CappedBuffer::new(MAX_EXEC_SYNC_OUTPUT),
    );
    let timeout = Duration::from_secs(u64::try_from(req.timeout).unwrap_or(0));
    let end = exec_in_container(
        state,
        &req.container_id,
        ExecOptions {
            cmd: req.cmd,
            stdout: Some(Box::new(stdout.clone())),
            stderr: Some(Box::new(stderr.clone())),
            timeout: Some(timeout),
            ..ExecOptions::default()
        },
    )
    .await?;
    let (out, err) = (stdout.take(), stderr.take());
    match end {
        ExecEnd::Exited(code) => Ok(ExecSyncResponse {
            stdout: out.data,
            stderr: err.data,
            exit_code: i32::try_from(code).unwrap_or(i32::MAX),
        }),
        ExecEnd::TimedOut => Err(ContainerError::ExecTimeout {
            id: req.container_id,
            timeout,
            stdout: quote(&out.data),
            stderr: quote(&err.data),
        }),
    }
}

/// The first bytes of an output, as text for an error message.
fn quote(data: &[u8]) -> String {
    let cut = &data[..data.len().min(QUOTED_OUTPUT)];
    let mut text = String::from_utf8_lossy(cut).into_owned();
    if data.len() > QUOTED_OUTPUT {
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::{AtomicBool, Ordering};

    use cri_api::containerd::{Any, ContainerRecord, ContainerdError, ExitStatus};
    use tonic::Code;

    use super::*;
    use crate::container::testutil::{add_live_container, running_status, Mocks, TestEnv};

    fn spec_record() -> ContainerRecord {
        let spec = serde_json::json!({"ociVersion": "1.0.2", "process": {"user": {"uid": 0, "gid": 0}, "args": ["sleep", "1000"], "cwd": "/", "env": ["PATH=/bin"]}});
        ContainerRecord {
            id: "c1".into(),
            spec: Some(Any {
                type_url: crate::container::spec::SPEC_TYPE_URL.into(),
                value: serde_json::to_vec(&spec).unwrap(),
            }),
            ..ContainerRecord::default()
        }
    }

    fn request(timeout: i64) -> ExecSyncRequest {
        ExecSyncRequest {
            container_id: "c1".into(),
            cmd: vec!["sleep".into(), "30".into()],
            timeout,
        }
    }

    fn exec_fifo_dirs(env: &TestEnv) -> usize {
        let io = env.dir.path().join("state/containers/c1/io");
        std::fs::read_dir(io).map(|d| d.count()).unwrap_or(0)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_timeout_kills_waits_and_deletes_the_process() {
        let mut mocks = Mocks::default();
        let tasks = &mut mocks.services.tasks;
        mocks
            .services
            .containers
            .expect_get()
            .returning(|_| Ok(spec_record()));
        tasks
            .expect_exec()
            .withf(|p| {
                let process: serde_json::Value =
                    serde_json::from_slice(&p.spec.as_ref().unwrap().value).unwrap();
                p.container_id == "c1"
                    && !p.exec_id.is_empty()
                    && p.stdout.ends_with("-stdout")
                    && p.stdin.is_empty()
                    && p.spec.as_ref().unwrap().type_url == crate::container::PROCESS_TYPE_URL
                    && process["args"] == serde_json::json!(["sleep", "30"])
            })
            .times(1)
            .returning(|_| Ok(()));
        tasks.expect_start().times(1).returning(|_, _| Ok(42));
        let killed = std::sync::Arc::new(AtomicBool::new(false));
        let k = killed.clone();
        tasks.expect_kill().returning(move |_, _, sig, _| {
            assert_eq!(sig, 9);
            k.store(true, Ordering::SeqCst);
            Ok(())
        });
        let k = killed.clone();
        tasks.expect_wait().times(1).returning(move |_, _| {
            while !k.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(ExitStatus {
                code: 137,
                exited_at: None,
            })
        });
        // Once to release IO the drain timeout found still held, once at the end.
        tasks.expect_delete().times(1..=2).returning(|_, _| {
            Ok(ExitStatus {
                code: 0,
                exited_at: None,
            })
        });
        let env = TestEnv::with(mocks, "drain_exec_sync_io_timeout = \"200ms\"");
        add_live_container(&env, "c1", "s1", running_status());
        let before = exec_fifo_dirs(&env);
        let e = exec_sync(env.state.clone(), request(1)).await.unwrap_err();
        assert!(matches!(e, ContainerError::ExecTimeout { .. }), "{e:?}");
        assert_eq!(tonic::Status::from(e).code(), Code::DeadlineExceeded);
        assert!(killed.load(Ordering::SeqCst));
        assert_eq!(exec_fifo_dirs(&env), before, "exec fifos left behind");
    }

    #[tokio::test]
    async fn a_failed_start_still_deletes_the_process() {
        let mut mocks = Mocks::default();
        mocks
            .services
            .containers
            .expect_get()
            .returning(|_| Ok(spec_record()));
        let tasks = &mut mocks.services.tasks;
        tasks.expect_exec().times(1).returning(|_| Ok(()));
        tasks.expect_start().times(1).returning(|_, _| {
            Err(ContainerdError::Rpc {
                op: "start task",
                code: Code::Internal,
                message: "injected".into(),
            })
        });
        tasks.expect_kill().returning(|_, _, _, _| Ok(()));
        tasks.expect_delete().times(1).returning(|_, _| {
            Ok(ExitStatus {
                code: 0,
                exited_at: None,
            })
        });
        let env = TestEnv::with(mocks, "");
        add_live_container(&env, "c1", "s1", running_status());
        let before = exec_fifo_dirs(&env);
        let e = exec_sync(env.state.clone(), request(0)).await.unwrap_err();
        assert!(
            e.to_string().contains("start task") || format!("{e:?}").contains("injected"),
            "{e:?}"
        );
        assert_eq!(exec_fifo_dirs(&env), before);
    }

    #[tokio::test]
    async fn a_container_that_is_not_running_is_refused() {
        let env = TestEnv::new();
        add_live_container(
            &env,
            "c1",
            "s1",
            crate::container::testutil::created_status(),
        );
        let e = exec_sync(env.state.clone(), request(0)).await.unwrap_err();
        assert_eq!(tonic::Status::from(e).code(), Code::FailedPrecondition);
        let e = exec_sync(
            env.state.clone(),
            ExecSyncRequest {
                container_id: "nope".into(),
                ..request(0)
            },
        )
        .await
        .unwrap_err();
        assert_eq!(tonic::Status::from(e).code(), Code::NotFound);
    }

    #[test]
    fn quotes_are_bounded() {
        assert_eq!(quote(b"hi\n"), "hi\n");
        let long = vec![b'a'; QUOTED_OUTPUT + 5];
        assert_eq!(quote(&long).len(), QUOTED_OUTPUT + 3);
    }
}
