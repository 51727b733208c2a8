//! Attach (containerd's `container_attach.go`): a streaming client joins
//! the running container's own stdio through its `ContainerIo` (any number
//! of clients at once; with the container's `stdin_once`, the first client
//! whose stdin ends closes the container's stdin), with terminal resizes
//! sent to the task. Returns when the client leaves or the container's IO
//! closes.

use std::sync::Arc;

use cri_api::v1::ContainerState;
use cri_io::{AttachStreams, BoxReader, BoxWriter};

use super::error::{ContainerError, Result};
use super::exec::spawn_task_resizer;
use super::ContainerService;
use super::{get, state_name};
use cri_streaming::ResizeReceiver;

/// The client's side of an attach.
#[derive(Default)]
pub struct AttachOptions {
    /// Forwarded to the container's stdin, if it has one.
    pub stdin: Option<BoxReader>,
    /// Receives the container's stdout from now on.
    pub stdout: Option<BoxWriter>,
    /// Receives the container's stderr (not with a tty).
    pub stderr: Option<BoxWriter>,
    /// The client asked for a terminal.
    pub tty: bool,
    /// Terminal resizes.
    pub resize: Option<ResizeReceiver>,
}

/// The running container `id` (or unique prefix), or why it cannot be
/// attached to or exec'd in.
pub fn running_container(
    state: &ContainerService,
    id: &str,
) -> Result<cri_store::container::Container> {
    let container = get(state, id)?;
    let current = container.status.state();
    if current != ContainerState::ContainerRunning {
        return Err(ContainerError::ContainerState {
            id: container.metadata.id.to_string(),
            state: state_name(current),
            reason: "the container is not running".into(),
        });
    }
    Ok(container)
}

/// Attaches the client until it leaves or the container's IO closes.
pub async fn attach_container(
    state: &ContainerService,
    id: &str,
    opts: AttachOptions,
) -> Result<()> {
    let container = running_container(state, id)?;
    let id = container.metadata.id.to_string();
    let io = state
        .store
        .handle(&id)
        .and_then(|h| h.io())
        .ok_or_else(|| ContainerError::ContainerState {
            id: id.clone(),
            state: state_name(container.status.state()),
            reason: "the container has no io to attach to".into(),
        })?;
    let tasks = Arc::clone(&state.containerd.tasks);
    let _resizer = opts
        .resize
        .map(|rx| spawn_task_resizer(Arc::clone(&tasks), &id, rx));
    let close_stdin = {
        let id = id.clone();
        Box::pin(async move {
            if let Err(e) = tasks.close_io(&id, "").await {
                tracing::warn!(container_id = %id, error = %e, "close container stdin");
            }
        })
    };
    let session = io.attach(AttachStreams {
        stdin: opts.stdin,
        stdout: opts.stdout,
        stderr: opts.stderr,
        stdin_once: container.metadata.config.stdin_once,
        tty: opts.tty,
        close_stdin: Some(close_stdin),
    });
    session.wait().await;
    tracing::debug!(container_id = %id, "attach ended");
    Ok(())
}
