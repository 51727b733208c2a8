//! ContainerStatus (containerd's `container_status.go`): the CRI status
//! of a stored container, the image as the user knows it, and with
//! `verbose` an `info` JSON with the pid, the OCI spec, the snapshot and
//! the runtime. Also the statuses the container events carry.

use std::collections::HashMap;

use cri_api::v1::{
    ContainerState, ContainerStatus as CriStatus, ContainerStatusRequest, ContainerStatusResponse,
    ContainerUser, ImageSpec, LinuxContainerUser,
};
use cri_store::container::Container;
use oci_spec::runtime::Spec;
use serde_json::json;

use super::error::Result;
use super::ContainerService;
use super::{get, spec};

/// `Reason` of a container that exited 0 without another reason.
pub const REASON_COMPLETED: &str = "Completed";
/// `Reason` of a container that exited non-zero without another reason.
pub const REASON_ERROR: &str = "Error";
/// `Reason` of a container the OOM killer ended.
pub const REASON_OOM_KILLED: &str = "OOMKilled";

/// ContainerStatus.
pub async fn container_status(
    state: &ContainerService,
    request: ContainerStatusRequest,
) -> Result<ContainerStatusResponse> {
    let container = get(state, &request.container_id)?;
    let status = to_cri_status(state, &container);
    let info = if request.verbose {
        verbose_info(state, &container).await?
    } else {
        HashMap::new()
    };
    Ok(ContainerStatusResponse {
        status: Some(status),
        info,
    })
}

/// The image a status shows: the first repo tag and repo digest of the
/// image when it is still known, else the config's image and the id.
fn image_of(state: &ContainerService, container: &Container) -> (Option<ImageSpec>, String) {
    let meta = &container.metadata;
    let mut spec = meta.config.image.clone();
    let mut image_ref = meta.image_ref.clone();
    let names = state.images.store().inspect(&meta.image_ref, |image| {
        let first = |digest: bool| {
            image
                .references
                .iter()
                .find(|r| r.contains('@') == digest)
                .cloned()
        };
        (first(false), first(true))
    });
    if let Ok((tag, digest)) = names {
        if let Some(tag) = tag {
            spec = Some(ImageSpec {
                image: tag,
                ..ImageSpec::default()
            });
        }
        if let Some(digest) = digest {
            image_ref = digest;
        }
    }
    (spec, image_ref)
}

/// containerd's `toCRIContainerStatus`.
pub(crate) fn to_cri_status(state: &ContainerService, container: &Container) -> CriStatus {
    let meta = &container.metadata;
    let status = &container.status;
    let current = status.state();
    let mut reason = status.reason.clone();
    if current == ContainerState::ContainerExited && reason.is_empty() {
        reason = if status.exit_code == 0 {
            REASON_COMPLETED
        } else {
            REASON_ERROR
        }
        .to_owned();
    }
    let (started_at, finished_at) = match current {
        ContainerState::ContainerRunning => (status.started_at, 0),
        ContainerState::ContainerExited | ContainerState::ContainerUnknown => {
            (status.started_at, status.finished_at)
        }
        ContainerState::ContainerCreated => (0, 0),
    };
    let (image, image_ref) = image_of(state, container);
    let user = state
        .store
        .handle(meta.id.as_ref())
        .and_then(|h| h.user.clone());
    CriStatus {
        id: meta.id.to_string(),
        metadata: meta.config.metadata.clone(),
        state: current as i32,
        created_at: status.created_at,
        started_at,
        finished_at,
        exit_code: status.exit_code,
        image,
        image_ref,
        reason,
        message: status.message.clone(),
        labels: meta.config.labels.clone(),
        annotations: meta.config.annotations.clone(),
        mounts: meta.config.mounts.clone(),
        log_path: meta.log_path.clone(),
        resources: status.resources.clone(),
        image_id: meta.image_ref.clone(),
        user,
    }
}

/// The user a spec's process runs as (containerd's `toCRIContainerUser`).
pub(crate) fn spec_user(spec: &Spec) -> Option<ContainerUser> {
    let user = spec.process().as_ref()?.user();
    Some(ContainerUser {
        linux: Some(LinuxContainerUser {
            uid: i64::from(user.uid()),
            gid: i64::from(user.gid()),
            supplemental_groups: user
                .additional_gids()
                .iter()
                .flatten()
                .map(|g| i64::from(*g))
                .collect(),
        }),
    })
}

/// containerd's `toCRIContainerInfo` (`ContainerInfo` as JSON), plus the
/// sandbox's runtime handler.
async fn verbose_info(
    state: &ContainerService,
    container: &Container,
) -> Result<HashMap<String, String>> {
    let meta = &container.metadata;
    let record = state.containerd.containers.get(meta.id.as_ref()).await?;
    // Checked as a spec, shown as containerd stores it (oci-spec's sets
    // would reorder the capability lists).
    spec::spec_from_any(meta.id.as_ref(), record.spec.as_ref())?;
    let runtime_spec = record
        .spec
        .as_ref()
        .and_then(|s| serde_json::from_slice::<serde_json::Value>(&s.value).ok())
        .unwrap_or_default();
    let runtime_handler = state
        .sandboxes
        .get(meta.sandbox_id.as_ref())
        .map(|s| s.metadata.runtime_handler.clone())
        .unwrap_or_default();
    let runtime_options = crate::sandbox::runtime_options_json(record.runtime.options.as_ref());
    let info = json!({
        "sandboxID": meta.sandbox_id.to_string(),
        "pid": container.status.pid,
        "removing": container.status.removing,
        "snapshotKey": record.snapshot_key,
        "snapshotter": record.snapshotter,
        "runtimeType": record.runtime.name,
        "runtimeOptions": runtime_options,
        "runtimeHandler": runtime_handler,
        "config": cri_metadata::container_config_json(meta.id.as_ref(), &meta.config)?,
        "runtimeSpec": runtime_spec,
    });
    Ok(HashMap::from([("info".to_owned(), info.to_string())]))
}

/// The CRI status of every container of a sandbox, for container events.
pub(crate) fn sandbox_container_statuses(
    state: &ContainerService,
    sandbox_id: &str,
) -> Vec<CriStatus> {
    state
        .store
        .list_by_sandbox(&sandbox_id.into())
        .iter()
        .map(|c| to_cri_status(state, c))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use cri_store::container::ContainerStatus;

    use super::*;
    use crate::container::testutil::{container, TestEnv};

    fn check_reason(status: ContainerStatus, state: ContainerState, reason: &str) {
        let env = TestEnv::new();
        let c = container("c1", "s1", status);
        let got = to_cri_status(&env.state, &c);
        assert_eq!(got.state, state as i32);
        assert_eq!(got.reason, reason);
    }

    #[test]
    fn reasons_of_exits() {
        let exited = |code, reason: &str| ContainerStatus {
            created_at: 1,
            started_at: 2,
            finished_at: 3,
            exit_code: code,
            reason: reason.into(),
            ..ContainerStatus::default()
        };
        check_reason(exited(0, ""), ContainerState::ContainerExited, "Completed");
        check_reason(exited(3, ""), ContainerState::ContainerExited, "Error");
        check_reason(
            exited(137, "OOMKilled"),
            ContainerState::ContainerExited,
            "OOMKilled",
        );
        check_reason(
            ContainerStatus {
                created_at: 1,
                started_at: 2,
                ..ContainerStatus::default()
            },
            ContainerState::ContainerRunning,
            "",
        );
    }

    #[test]
    fn created_containers_show_no_start_or_finish() {
        let env = TestEnv::new();
        let c = container(
            "c1",
            "s1",
            ContainerStatus {
                created_at: 5,
                ..ContainerStatus::default()
            },
        );
        let got = to_cri_status(&env.state, &c);
        assert_eq!((got.created_at, got.started_at, got.finished_at), (5, 0, 0));
        assert_eq!(got.labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(
            got.annotations.get("note").map(String::as_str),
            Some("kept")
        );
        assert_eq!(got.image_id, "sha256:img");
    }
}
