//! What the runtime keeps per container besides its store record: the
//! open IO, the snapshot it was made with, its cgroup, and the "stopped"
//! signal StopContainer waits on (containerd's `Container.IO`,
//! `Container.Stopped()` and `IsStopSignaledWithTimeout`). The container
//! store keeps one with each record (`ContainerStore<ContainerHandle>`), so
//! a handle is added and removed with its container.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use cri_api::v1::ContainerUser;
use cri_io::ContainerIo;
use tokio::sync::watch;

/// The runtime side of one container.
#[derive(Debug)]
pub struct ContainerHandle {
    io: Mutex<Option<ContainerIo>>,
    /// The snapshotter of the rootfs snapshot (key = container id).
    pub snapshotter: String,
    /// `linux.cgroupsPath` of the spec, for the OOM check at exit.
    pub cgroups_path: String,
    /// The user the process runs as, from the spec.
    pub user: Option<ContainerUser>,
    stopped: watch::Sender<bool>,
    stop_signaled: AtomicBool,
    monitored: AtomicBool,
    /// Serializes UpdateContainerResources calls.
    pub update_lock: tokio::sync::Mutex<()>,
    /// The sequence number of the last status update, taken under the
    /// record's lock so that it orders the updates.
    checkpoint_seq: AtomicU64,
    /// The sequence number of the status last written to the checkpoint;
    /// held while a write is in flight (one at a time, never under the
    /// record's lock).
    checkpointed: tokio::sync::Mutex<u64>,
}

impl ContainerHandle {
    pub fn new(io: Option<ContainerIo>, snapshotter: &str, cgroups_path: &str) -> Self {
        Self {
            io: Mutex::new(io),
            snapshotter: snapshotter.to_owned(),
            cgroups_path: cgroups_path.to_owned(),
            user: None,
            stopped: watch::channel(false).0,
            stop_signaled: AtomicBool::new(false),
            monitored: AtomicBool::new(false),
            update_lock: tokio::sync::Mutex::new(()),
            checkpoint_seq: AtomicU64::new(0),
            checkpointed: tokio::sync::Mutex::new(0),
        }
    }

    /// Records the process user.
    pub fn with_user(mut self, user: Option<ContainerUser>) -> Self {
        self.user = user;
        self
    }

    /// Claims the exit monitor of this container: true for the first
    /// caller only.
    pub fn claim_exit_monitor(&self) -> bool {
        !self.monitored.swap(true, Ordering::SeqCst)
    }

    /// The container's IO, while it has one.
    pub fn io(&self) -> Option<ContainerIo> {
        self.io
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the IO (recovery re-attaches the FIFOs of a running task).
    pub fn set_io(&self, io: Option<ContainerIo>) {
        *self.io.lock().unwrap_or_else(PoisonError::into_inner) = io;
    }

    /// Marks the container stopped and wakes every waiter.
    pub fn mark_stopped(&self) {
        self.stopped.send_replace(true);
    }

    /// Waits until the container is marked stopped, at most `timeout`;
    /// whether it was.
    pub async fn wait_stopped(&self, timeout: Duration) -> bool {
        let mut rx = self.stopped.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|s| *s))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The next status update's sequence number; call it under the
    /// record's lock, in the update.
    pub fn next_checkpoint_seq(&self) -> u64 {
        self.checkpoint_seq.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Writes the status of update `seq` with `write` on a blocking
    /// thread, after the writes of earlier updates; skipped when a later
    /// update's status is already written. Holds no record lock, so status
    /// and list calls go on while the disk is slow.
    pub async fn write_checkpoint<E: Send + 'static>(
        &self,
        seq: u64,
        write: impl FnOnce() -> Result<(), E> + Send + 'static,
    ) -> Result<(), CheckpointError<E>> {
        let mut written = self.checkpointed.lock().await;
        if *written >= seq {
            return Ok(());
        }
        tokio::task::spawn_blocking(write)
            .await
            .map_err(|e| CheckpointError::Task(e.to_string()))?
            .map_err(CheckpointError::Write)?;
        *written = seq;
        Ok(())
    }

    /// Holds the checkpoint writer as an in-flight write would (tests: a
    /// disk that does not answer).
    #[cfg(test)]
    pub async fn block_checkpoints(&self) -> tokio::sync::MutexGuard<'_, u64> {
        self.checkpointed.lock().await
    }

    /// Whether the stop signal was already sent by a StopContainer with a
    /// timeout; sets the flag (containerd sends it only once).
    pub fn take_stop_signal(&self) -> bool {
        !self.stop_signaled.swap(true, Ordering::SeqCst)
    }
}

/// A checkpoint write that failed.
#[derive(Debug)]
pub enum CheckpointError<E> {
    /// The blocking task did not finish (it panicked or was cancelled).
    Task(String),
    /// The write itself failed.
    Write(E),
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn waiters_wake_on_stop() {
        let handle = Arc::new(ContainerHandle::new(None, "overlayfs", ""));
        assert!(!handle.wait_stopped(Duration::from_millis(10)).await);
        let waiter = {
            let h = Arc::clone(&handle);
            tokio::spawn(async move { h.wait_stopped(Duration::from_secs(5)).await })
        };
        handle.mark_stopped();
        assert!(waiter.await.unwrap_or(false));
        // Stays stopped for later waiters.
        assert!(handle.wait_stopped(Duration::from_millis(1)).await);
    }

    #[test]
    fn stop_signal_is_sent_once() {
        let handle = ContainerHandle::new(None, "overlayfs", "");
        assert!(handle.take_stop_signal());
        assert!(!handle.take_stop_signal());
    }
}
