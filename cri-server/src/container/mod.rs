//! Containers: CreateContainer and the lifecycle around it (start, stop,
//! remove, status, list, exit handling, events).
//!
//! The sandbox RPCs call [`stop_container`] and [`remove_container`] for
//! the containers of a pod.

use std::time::Duration;

use crate::error::{Result, ServerError};
use crate::service::ServerState;

/// Stops a container: its stop signal, then SIGKILL after `timeout`.
/// Idempotent on stopped or exited containers.
pub async fn stop_container(_state: &ServerState, _id: &str, _timeout: Duration) -> Result<()> {
    Err(ServerError::NotImplemented { rpc: "StopContainer" })
}

/// Removes a container (force-stopping a running one). Idempotent.
pub async fn remove_container(_state: &ServerState, _id: &str) -> Result<()> {
    Err(ServerError::NotImplemented { rpc: "RemoveContainer" })
}
