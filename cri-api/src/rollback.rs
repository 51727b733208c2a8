//! A stack of undo actions for multi-step operations (RunPodSandbox,
//! CreateContainer): push an undo right after its step succeeds; on
//! failure `unwind` runs them newest first, every one even when an earlier
//! one fails, and returns the failures so the caller can attach them to
//! the original error.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

type Undo = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Undo actions waiting for `commit` or `unwind`.
#[must_use = "call commit() on success or unwind() on failure"]
pub struct Rollback {
    steps: Vec<(&'static str, Undo)>,
}

/// One undo that failed while unwinding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndoFailure {
    /// The name the undo was pushed with, e.g. "remove snapshot".
    pub step: &'static str,
    pub error: String,
}

impl fmt::Display for UndoFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "undo {}: {}", self.step, self.error)
    }
}

impl Default for Rollback {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Rollback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.steps.iter().map(|(name, _)| name))
            .finish()
    }
}

impl Rollback {
    pub fn new() -> Self {
        Self { steps: Vec::new() }
    }

    /// Registers `undo` for a step that has just succeeded. Futures are
    /// lazy: nothing runs unless the rollback unwinds.
    pub fn push<F, E>(&mut self, step: &'static str, undo: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display,
    {
        self.steps.push((
            step,
            Box::pin(async move { undo.await.map_err(|e| e.to_string()) }),
        ));
    }

    /// The names of the registered undos, oldest first.
    pub fn pending(&self) -> Vec<&'static str> {
        self.steps.iter().map(|(name, _)| *name).collect()
    }

    /// The operation succeeded: drop every undo without running it.
    pub fn commit(mut self) {
        self.steps.clear();
    }

    /// The operation failed: run every undo, newest first, and return the
    /// ones that failed (each is also logged).
    pub async fn unwind(mut self) -> Vec<UndoFailure> {
        let mut failures = Vec::new();
        while let Some((step, undo)) = self.steps.pop() {
            if let Err(error) = undo.await {
                tracing::warn!(step, error = %error, "undo failed");
                failures.push(UndoFailure { step, error });
            }
        }
        failures
    }
}

impl Drop for Rollback {
    fn drop(&mut self) {
        if !self.steps.is_empty() {
            tracing::error!(
                pending = ?self.pending(),
                "rollback dropped without commit or unwind; undos not run"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    type Log = Arc<Mutex<Vec<&'static str>>>;

    fn recorder() -> (Log, impl Fn(&'static str, bool) -> Undo) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        let make = move |name: &'static str, ok: bool| -> Undo {
            let l = l.clone();
            Box::pin(async move {
                l.lock().map_err(|e| e.to_string())?.push(name);
                if ok {
                    Ok(())
                } else {
                    Err(format!("{name} broke"))
                }
            })
        };
        (log, make)
    }

    #[tokio::test]
    async fn unwind_runs_newest_first_and_keeps_going() {
        let (log, undo) = recorder();
        let mut rollback = Rollback::new();
        rollback.push("a", undo("a", true));
        rollback.push("b", undo("b", false));
        rollback.push("c", undo("c", true));
        let failures = rollback.unwind().await;
        assert_eq!(
            *log.lock().unwrap_or_else(|e| e.into_inner()),
            ["c", "b", "a"]
        );
        assert_eq!(
            failures,
            [UndoFailure {
                step: "b",
                error: "b broke".into()
            }]
        );
    }

    #[tokio::test]
    async fn commit_runs_nothing() {
        let (log, undo) = recorder();
        let mut rollback = Rollback::new();
        rollback.push("a", undo("a", true));
        assert_eq!(rollback.pending(), ["a"]);
        rollback.commit();
        tokio::task::yield_now().await;
        assert!(log.lock().unwrap_or_else(|e| e.into_inner()).is_empty());
    }
}
