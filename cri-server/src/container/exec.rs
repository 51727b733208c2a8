//! Running a process in a running container (containerd's `execInternal`
//! in `container_execsync.go`), shared by ExecSync and streaming Exec: a
//! containerd exec process with its own FIFOs under
//! `<state>/containers/<id>/io/`, the container's process spec with the
//! command (and terminal) replaced, wait, drain the IO (bounded by
//! `drain_exec_sync_io_timeout`), kill on timeout or cancellation, and the
//! process always deleted and its FIFOs removed.
//!
//! The work runs in a spawned task: a caller that goes away (a cancelled
//! RPC, a closed stream) kills the process, and the cleanup still runs.

use std::sync::Arc;
use std::time::Duration;

use cri_api::containerd::{Any, ExecProcess, Tasks};
use cri_io::{AttachStreams, BoxReader, BoxWriter, ExecIo, FifoSet, StdioOptions};
use oci_spec::runtime::Process;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::error::{ContainerError, Result};
use super::signal::SIGKILL;
use super::spec::spec_from_any;
use super::ContainerService;
use cri_streaming::ResizeReceiver;

/// The type URL containerd sends an exec's process spec under.
pub const PROCESS_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";
/// How long a killed exec process may take to report its exit.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// What to run and how to wire it.
#[derive(Default)]
pub struct ExecOptions {
    /// argv; must not be empty.
    pub cmd: Vec<String>,
    /// Run with a terminal (stdout carries everything).
    pub tty: bool,
    /// The client's stdin (a stdin FIFO is made only with one).
    pub stdin: Option<BoxReader>,
    /// Receives stdout; drained and dropped without one.
    pub stdout: Option<BoxWriter>,
    /// Receives stderr; drained and dropped without one.
    pub stderr: Option<BoxWriter>,
    /// Terminal resizes (tty only).
    pub resize: Option<ResizeReceiver>,
    /// Kill the process after this long.
    pub timeout: Option<Duration>,
}

/// How an exec ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecEnd {
    /// The process exited with this code and its output was drained.
    Exited(u32),
    /// The timeout passed; the process was killed.
    TimedOut,
}

/// Runs `opts.cmd` in the running container `id` (or unique prefix).
pub async fn exec_in_container(
    state: Arc<ContainerService>,
    id: &str,
    opts: ExecOptions,
) -> Result<ExecEnd> {
    let container = super::running_container(&state, id)?;
    let id = container.metadata.id.to_string();
    if opts.cmd.is_empty() {
        return Err(ContainerError::InvalidArgument(format!(
            "exec in container {id}: missing command"
        )));
    }
    let cancel = CancellationToken::new();
    let _cancel_on_drop = cancel.clone().drop_guard();
    let span = tracing::Span::current();
    tokio::spawn(async move { exec_internal(&state, &id, opts, cancel).await }.instrument(span))
        .await
        .map_err(|e| ContainerError::TaskFailed {
            rpc: "Exec",
            message: e.to_string(),
        })?
}

/// The container's process spec with `cmd`, `tty` and (with a tty)
/// `TERM=xterm`, as containerd's `execInternal` makes it.
async fn process_spec(
    state: &ContainerService,
    id: &str,
    cmd: &[String],
    tty: bool,
) -> Result<Any> {
    let record = state.containerd.containers.get(id).await?;
    let spec = spec_from_any(id, record.spec.as_ref())?;
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(cmd.to_vec()));
    process.set_terminal(Some(tty));
    if tty {
        set_env(&mut process, "TERM", "xterm");
    }
    let value = serde_json::to_vec(&process).map_err(|source| ContainerError::SpecJson {
        id: id.to_owned(),
        op: "encode exec process of",
        source,
    })?;
    Ok(Any {
        type_url: PROCESS_TYPE_URL.to_owned(),
        value,
    })
}

/// `oci.WithEnv`: replaces `key` or appends it.
fn set_env(process: &mut Process, key: &str, value: &str) {
    let mut env = process.env().clone().unwrap_or_default();
    let prefix = format!("{key}=");
    env.retain(|e| !e.starts_with(&prefix));
    env.push(format!("{prefix}{value}"));
    process.set_env(Some(env));
}

async fn exec_internal(
    state: &ContainerService,
    id: &str,
    opts: ExecOptions,
    cancel: CancellationToken,
) -> Result<ExecEnd> {
    let spec = process_spec(state, id, &opts.cmd, opts.tty).await?;
    let exec_id = state.host.ids.generate();
    let volatile_dir = state.config.server.state_dir.join("containers").join(id);
    let io_err = |source| ContainerError::ContainerIo {
        id: id.to_owned(),
        source,
    };
    let fifos = FifoSet::create(
        &volatile_dir,
        &exec_id,
        StdioOptions {
            stdin: opts.stdin.is_some(),
            tty: opts.tty,
        },
    )
    .map_err(io_err)?;
    let paths = fifos.paths().clone();
    let mut io = match ExecIo::new(exec_id.clone(), fifos.clone()) {
        Ok(io) => io,
        Err(e) => {
            if let Err(undo) = fifos.remove() {
                tracing::warn!(exec_id, error = %undo, "remove exec fifos");
            }
            return Err(io_err(e));
        }
    };
    let tasks = Arc::clone(&state.containerd.tasks);
    let created = tasks
        .exec(ExecProcess {
            container_id: id.to_owned(),
            exec_id: exec_id.clone(),
            stdin: paths.stdin_str(),
            stdout: paths.stdout_str(),
            stderr: paths.stderr_str(),
            terminal: opts.tty,
            spec: Some(spec),
        })
        .await;
    let was_created = created.is_ok();
    let result = match created {
        Ok(()) => run(state, id, &exec_id, &mut io, opts, &cancel).await,
        Err(e) => Err(e.into()),
    };
    if was_created {
        delete_process(tasks.as_ref(), id, &exec_id).await;
    }
    if let Err(e) = io.close() {
        tracing::warn!(container_id = id, exec_id, error = %e, "close exec io");
    }
    result
}

/// Starts the created process and sees it through to its end.
async fn run(
    state: &ContainerService,
    id: &str,
    exec_id: &str,
    io: &mut ExecIo,
    opts: ExecOptions,
    cancel: &CancellationToken,
) -> Result<ExecEnd> {
    let tasks = Arc::clone(&state.containerd.tasks);
    let close_stdin = {
        let (tasks, id, exec_id) = (Arc::clone(&tasks), id.to_owned(), exec_id.to_owned());
        Box::pin(async move {
            if let Err(e) = tasks.close_io(&id, &exec_id).await {
                tracing::debug!(container_id = %id, exec_id, error = %e, "close exec stdin");
            }
        })
    };
    // Attach after Start, as containerd does: closing stdin (CloseIO) on a
    // process that has not started yet would be lost. The FIFOs are open
    // already, so no output is missed.
    tasks.start(id, exec_id).await?;
    let session = io
        .attach(AttachStreams {
            stdin: opts.stdin,
            stdout: opts.stdout,
            stderr: opts.stderr,
            stdin_once: true,
            tty: opts.tty,
            close_stdin: Some(close_stdin),
        })
        .map_err(|source| ContainerError::ContainerIo {
            id: id.to_owned(),
            source,
        })?;
    let resizer = opts
        .resize
        .map(|rx| spawn_resizer(Arc::clone(&tasks), id, exec_id, rx));
    let _stop_resizer = resizer.map(AbortOnDrop);
    let mut waiter = {
        let (tasks, id, exec_id) = (Arc::clone(&tasks), id.to_owned(), exec_id.to_owned());
        AbortOnDrop(tokio::spawn(async move { tasks.wait(&id, &exec_id).await }))
    };
    let attach_done = session.wait();
    let timeout = async {
        match opts.timeout {
            Some(t) if !t.is_zero() => tokio::time::sleep(t).await,
            _ => std::future::pending().await,
        }
    };
    let drain_timeout = state.config.cri.drain_exec_sync_io_timeout;
    tokio::select! {
        exit = &mut waiter.0 => {
            let exit = exit.map_err(|e| ContainerError::TaskFailed {
                rpc: "Exec",
                message: e.to_string(),
            })??;
            tracing::debug!(container_id = id, exec_id, code = exit.code, "exec process exited");
            drain(state, id, exec_id, drain_timeout, attach_done).await?;
            Ok(ExecEnd::Exited(exit.code))
        }
        () = timeout => {
            kill_and_wait(tasks.as_ref(), id, exec_id, &mut waiter).await?;
            if let Err(e) = drain(state, id, exec_id, drain_timeout, attach_done).await {
                tracing::warn!(container_id = id, exec_id, error = %e, "drain io of timed-out exec");
            }
            Ok(ExecEnd::TimedOut)
        }
        () = cancel.cancelled() => {
            kill_and_wait(tasks.as_ref(), id, exec_id, &mut waiter).await?;
            Err(ContainerError::TaskFailed { rpc: "Exec", message: "cancelled".into() })
        }
    }
}

/// Kills the exec process (an exited one is fine) and waits for its exit.
async fn kill_and_wait(
    tasks: &dyn Tasks,
    id: &str,
    exec_id: &str,
    waiter: &mut AbortOnDrop<cri_api::containerd::Result<cri_api::containerd::ExitStatus>>,
) -> Result<()> {
    match tasks.kill(id, exec_id, SIGKILL, false).await {
        Err(e) if !e.is_not_found() => return Err(e.into()),
        _ => {}
    }
    if tokio::time::timeout(KILL_WAIT, &mut waiter.0)
        .await
        .is_err()
    {
        tracing::warn!(
            container_id = id,
            exec_id,
            "killed exec process did not report its exit"
        );
    }
    Ok(())
}

/// containerd's `drainExecSyncIO`: waits for the output to be copied;
/// after `timeout` (zero: no limit) the process is deleted to release IO
/// that other processes still hold.
async fn drain(
    state: &ContainerService,
    id: &str,
    exec_id: &str,
    timeout: Duration,
    attach_done: impl std::future::Future<Output = ()>,
) -> Result<()> {
    if timeout.is_zero() {
        attach_done.await;
        return Ok(());
    }
    if tokio::time::timeout(timeout, attach_done).await.is_ok() {
        return Ok(());
    }
    delete_process(state.containerd.tasks.as_ref(), id, exec_id).await;
    Err(ContainerError::ExecIoDrain {
        id: id.to_owned(),
        exec_id: exec_id.to_owned(),
        timeout,
    })
}

/// `process.Delete(WithProcessKill)`; failures are logged (a missing
/// process is already gone).
async fn delete_process(tasks: &dyn Tasks, id: &str, exec_id: &str) {
    if let Err(e) = tasks.kill(id, exec_id, SIGKILL, false).await {
        tracing::trace!(container_id = id, exec_id, error = %e, "kill exec before delete");
    }
    match tasks.delete(id, exec_id).await {
        Err(e) if !e.is_not_found() => {
            tracing::warn!(container_id = id, exec_id, error = %e, "delete exec process")
        }
        _ => {}
    }
}

fn spawn_resizer(
    tasks: Arc<dyn Tasks>,
    id: &str,
    exec_id: &str,
    mut rx: ResizeReceiver,
) -> tokio::task::JoinHandle<()> {
    let (id, exec_id) = (id.to_owned(), exec_id.to_owned());
    tokio::spawn(async move {
        while let Some(size) = rx.recv().await {
            let (w, h) = (u32::from(size.width), u32::from(size.height));
            if let Err(e) = tasks.resize_pty(&id, &exec_id, w, h).await {
                tracing::warn!(container_id = %id, exec_id, error = %e, "resize pty");
            }
        }
    })
}

/// Aborts a spawned helper when its owner is done.
pub(crate) struct AbortOnDrop<T>(pub(crate) tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Forwards resize events of the container's own terminal (attach).
pub(crate) fn spawn_task_resizer(
    tasks: Arc<dyn Tasks>,
    id: &str,
    rx: ResizeReceiver,
) -> AbortOnDrop<()> {
    AbortOnDrop(spawn_resizer(tasks, id, "", rx))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn term_is_replaced_not_duplicated() {
        let mut p = Process::default();
        p.set_env(Some(vec!["PATH=/bin".into(), "TERM=dumb".into()]));
        set_env(&mut p, "TERM", "xterm");
        assert_eq!(
            p.env().clone().unwrap(),
            vec!["PATH=/bin".to_owned(), "TERM=xterm".to_owned()]
        );
    }
}
