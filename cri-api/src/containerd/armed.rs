//! [`ArmedWait`]: a `Tasks/Wait` sent before its task starts, as
//! containerd's CRI plugin sends it, for whoever waits for the exit to
//! take over.

use std::sync::Arc;

use super::{ExitStatus, Result, Tasks};

/// A `Tasks/Wait` call running in a task of its own.
#[derive(Debug)]
pub struct ArmedWait(tokio::task::JoinHandle<Result<ExitStatus>>);

impl ArmedWait {
    /// Sends `Tasks/Wait` for the task `id` (exec id empty).
    pub fn arm(tasks: Arc<dyn Tasks>, id: &str) -> Self {
        let id = id.to_owned();
        Self(tokio::spawn(async move { tasks.wait(&id, "").await }))
    }

    /// Cancels the call.
    pub fn abort(&self) {
        self.0.abort();
    }

    /// The exit of task `id`: `armed`'s answer, else (none armed, or it
    /// was cancelled) that of a new wait.
    pub async fn answer(armed: Option<Self>, tasks: &dyn Tasks, id: &str) -> Result<ExitStatus> {
        if let Some(Ok(answer)) = match armed {
            Some(armed) => Some(armed.0.await),
            None => None,
        } {
            return answer;
        }
        tasks.wait(id, "").await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::containerd::MockTasks;

    fn exit(code: u32) -> ExitStatus {
        ExitStatus {
            code,
            exited_at: None,
        }
    }

    /// Tasks whose waits answer `code`, counting the waits made.
    fn tasks(code: u32) -> (Arc<MockTasks>, Arc<std::sync::atomic::AtomicUsize>) {
        let waits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&waits);
        let mut tasks = MockTasks::new();
        tasks.expect_wait().returning(move |id, exec| {
            assert_eq!((id, exec), ("t1", ""));
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(exit(code))
        });
        (Arc::new(tasks), waits)
    }

    #[tokio::test]
    async fn the_armed_answer_is_taken_without_a_second_wait() {
        let (tasks, waits) = tasks(7);
        let armed = ArmedWait::arm(Arc::clone(&tasks) as Arc<dyn Tasks>, "t1");
        let answer = ArmedWait::answer(Some(armed), tasks.as_ref(), "t1").await;
        assert_eq!(answer.unwrap(), exit(7));
        assert_eq!(waits.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_cancelled_or_missing_wait_is_sent_anew() {
        let (tasks, waits) = tasks(3);
        // Aborted before its task ever ran: no wait went out.
        let armed = ArmedWait(tokio::spawn(std::future::pending()));
        armed.abort();
        let answer = ArmedWait::answer(Some(armed), tasks.as_ref(), "t1").await;
        assert_eq!(answer.unwrap(), exit(3));
        assert_eq!(waits.load(std::sync::atomic::Ordering::SeqCst), 1);
        let answer = ArmedWait::answer(None, tasks.as_ref(), "t1").await;
        assert_eq!(answer.unwrap(), exit(3));
        assert_eq!(waits.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
