//! Task and lease chores of the pause container: containerd's
//! `task.Delete(WithProcessKill)` (wait, SIGKILL all, wait, delete) and the
//! temporary lease that guards a new snapshot until its container record
//! exists.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use cri_api::containerd::{ContainerdError, ExitStatus, Leases, Tasks};

/// How long a killed process may take to be reported gone.
const KILL_WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a failed task delete is retried while the task still exists.
const DELETE_RETRIES: u32 = 3;
const DELETE_RETRY_DELAY: Duration = Duration::from_millis(100);
/// containerd's `containerd.io/gc.expire` lease label.
const GC_EXPIRE_LABEL: &str = "containerd.io/gc.expire";

/// Kills the task of `id` with SIGKILL (all processes), waits until it is
/// gone, and deletes it. `Ok(None)` when there was no task.
pub(crate) async fn delete_task_forcibly(
    tasks: &Arc<dyn Tasks>,
    id: &str,
) -> Result<Option<ExitStatus>, ContainerdError> {
    let waiter = {
        let (tasks, id) = (Arc::clone(tasks), id.to_owned());
        tokio::spawn(async move { tasks.wait(&id, "").await })
    };
    match tasks.kill(id, "", libc::SIGKILL as u32, true).await {
        Ok(()) => {}
        // No task: nothing to wait for or delete (the exit monitor or a
        // stop deleted it already).
        Err(e) if e.is_not_found() => {
            waiter.abort();
            return Ok(None);
        }
        // Not running any more: the wait decides.
        Err(ContainerdError::FailedPrecondition { .. }) => {}
        Err(e) => {
            waiter.abort();
            return Err(e);
        }
    }
    match tokio::time::timeout(KILL_WAIT_TIMEOUT, waiter).await {
        Ok(Ok(Ok(_))) => {}
        Ok(Ok(Err(e))) if e.is_not_found() => {}
        Ok(Ok(Err(e))) => return Err(e),
        Ok(Err(_)) | Err(_) => {
            tracing::warn!(id, "sandbox task did not report its exit after SIGKILL");
        }
    }
    delete_task(tasks.as_ref(), id).await
}

/// Deletes the task. Another caller (the exit monitor, a concurrent stop)
/// may be deleting it at the same time, in which case containerd can fail
/// the loser with a transport error from the exiting shim ("ttrpc:
/// closed"): a task found gone afterwards is success.
pub(crate) async fn delete_task(
    tasks: &dyn Tasks,
    id: &str,
) -> Result<Option<ExitStatus>, ContainerdError> {
    let mut attempt = 0;
    loop {
        let error = match tasks.delete(id, "").await {
            Ok(status) => return Ok(Some(status)),
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => e,
        };
        match tasks.get(id, "").await {
            Err(e) if e.is_not_found() => return Ok(None),
            _ if attempt >= DELETE_RETRIES => return Err(error),
            _ => {
                tracing::debug!(id, error = %error, "delete task failed; retrying");
                attempt += 1;
                tokio::time::sleep(DELETE_RETRY_DELAY).await;
            }
        }
    }
}

/// A lease id as containerd's `leases.WithRandomID`: `<nanos>-<3 random
/// bytes, base64url>`.
pub(crate) fn lease_id(now: SystemTime) -> String {
    let nanos = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let suffix = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 3]>());
    format!("{nanos}-{suffix}")
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a time (UTC), the RFC 3339 form containerd
/// writes into `containerd.io/gc.expire`.
pub(crate) fn rfc3339_utc(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// Creates a lease that expires after 24h (if never deleted), as
/// containerd's client does around `NewContainer`.
pub(crate) async fn create_temporary_lease(leases: &dyn Leases) -> Result<String, ContainerdError> {
    let now = SystemTime::now();
    let id = lease_id(now);
    let expire = rfc3339_utc(now + Duration::from_secs(24 * 3600));
    leases
        .create(&id, HashMap::from([(GC_EXPIRE_LABEL.to_owned(), expire)]))
        .await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cri_api::containerd::MockTasks;
    use mockall::Sequence;

    fn check_time(secs: u64, expected: &str) {
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH + Duration::from_secs(secs)),
            expected
        );
    }

    #[test]
    fn rfc3339_dates() {
        check_time(0, "1970-01-01T00:00:00Z");
        check_time(951_782_400, "2000-02-29T00:00:00Z");
        check_time(1_700_000_000, "2023-11-14T22:13:20Z");
        check_time(4_102_444_799, "2099-12-31T23:59:59Z");
    }

    #[test]
    fn lease_ids_look_like_containerds() {
        let id = lease_id(UNIX_EPOCH + Duration::from_nanos(1_234));
        let (nanos, suffix) = id.split_once('-').unwrap();
        assert_eq!(nanos, "1234");
        assert_eq!(suffix.len(), 4);
    }

    fn exit() -> ExitStatus {
        ExitStatus {
            code: 137,
            exited_at: None,
        }
    }

    #[tokio::test]
    async fn kills_waits_then_deletes() {
        let mut tasks = MockTasks::new();
        let mut seq = Sequence::new();
        tasks
            .expect_kill()
            .withf(|id, exec, sig, all| id == "sb" && exec.is_empty() && *sig == 9 && *all)
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _, _, _| Ok(()));
        tasks
            .expect_delete()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| Ok(exit()));
        tasks.expect_wait().times(1).returning(|_, _| Ok(exit()));
        let tasks: Arc<dyn Tasks> = Arc::new(tasks);
        assert_eq!(
            delete_task_forcibly(&tasks, "sb").await.unwrap(),
            Some(exit())
        );
    }

    #[tokio::test]
    async fn a_missing_task_is_fine_and_not_deleted_again() {
        let not_found = || ContainerdError::NotFound {
            op: "x",
            what: "sb".into(),
        };
        let mut tasks = MockTasks::new();
        tasks
            .expect_kill()
            .times(1)
            .returning(move |_, _, _, _| Err(not_found()));
        // The wait may or may not have been sent before it is dropped.
        tasks.expect_wait().returning(move |_, _| Err(not_found()));
        tasks.expect_delete().times(0);
        let tasks: Arc<dyn Tasks> = Arc::new(tasks);
        assert_eq!(delete_task_forcibly(&tasks, "sb").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_delete_lost_to_a_concurrent_one_is_fine() {
        let mut tasks = MockTasks::new();
        tasks.expect_kill().returning(|_, _, _, _| Ok(()));
        tasks.expect_wait().returning(|_, _| Ok(exit()));
        tasks.expect_delete().times(1).returning(|_, _| {
            Err(ContainerdError::FailedPrecondition {
                op: "delete task",
                message: "failed to delete task: ttrpc: closed".into(),
            })
        });
        tasks.expect_get().times(1).returning(|_, _| {
            Err(ContainerdError::NotFound {
                op: "get task",
                what: "sb".into(),
            })
        });
        let tasks: Arc<dyn Tasks> = Arc::new(tasks);
        assert_eq!(delete_task_forcibly(&tasks, "sb").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_failed_kill_is_reported() {
        let mut tasks = MockTasks::new();
        tasks.expect_kill().returning(|_, _, _, _| {
            Err(ContainerdError::Unavailable {
                address: "/c.sock".into(),
                message: "down".into(),
            })
        });
        tasks.expect_wait().returning(|_, _| {
            Ok(ExitStatus {
                code: 0,
                exited_at: None,
            })
        });
        let tasks: Arc<dyn Tasks> = Arc::new(tasks);
        assert!(delete_task_forcibly(&tasks, "sb")
            .await
            .unwrap_err()
            .is_unavailable());
    }
}
