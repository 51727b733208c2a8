//! ReopenContainerLog (containerd's `container_log_reopen.go`): after the
//! kubelet renamed a running container's log file, the log is reopened at
//! its path, so new output goes to a fresh file.

use cri_api::v1::ContainerState;

use super::error::{ContainerError, Result};
use super::ContainerService;
use super::{get, state_name};

/// ReopenContainerLog.
pub fn reopen_container_log(state: &ContainerService, id: &str) -> Result<()> {
    let container = get(state, id)?;
    let id = &container.metadata.id;
    tracing::Span::current().record("container_id", id.as_ref());
    let current = container.status.state();
    if current != ContainerState::ContainerRunning {
        return Err(ContainerError::ContainerState {
            id: id.to_string(),
            state: state_name(current),
            reason: "only a running container's log can be reopened".into(),
        });
    }
    let io = state
        .store
        .handle(id.as_ref())
        .and_then(|h| h.io())
        .ok_or_else(|| ContainerError::ContainerState {
            id: id.to_string(),
            state: state_name(current),
            reason: "the container has no io".into(),
        })?;
    io.reopen_log()
        .map_err(|source| ContainerError::ContainerIo {
            id: id.to_string(),
            source,
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use tonic::Code;

    use super::*;
    use crate::container::testutil::{add_live_container, created_status, TestEnv};

    #[tokio::test]
    async fn only_running_containers_reopen() {
        let env = TestEnv::new();
        add_live_container(&env, "c1", "s1", created_status());
        let err = reopen_container_log(&env.state, "c1").unwrap_err();
        assert_eq!(tonic::Status::from(err).code(), Code::FailedPrecondition);
        let err = reopen_container_log(&env.state, "nosuch").unwrap_err();
        assert_eq!(tonic::Status::from(err).code(), Code::NotFound);
    }
}
