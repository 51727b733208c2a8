//! Recovering pod sandboxes (containerd's `loadSandbox`): each pause
//! container record in containerd becomes a store entry again, with its
//! metadata (netns path, IPs, CNI result) from the extension, READY with
//! a re-armed exit monitor when its pause task still runs, NOTREADY
//! otherwise (a task that exited or was never started is deleted). A
//! record whose metadata cannot be decoded is kept NOTREADY with what the
//! labels and the spec tell, so RemovePodSandbox can clean it up.

use std::sync::Arc;

use cri_api::containerd::{ContainerRecord, ContainerdError, TaskStatus};
use cri_api::ids::SandboxId;
use cri_api::v1::{PodSandboxConfig, PodSandboxMetadata};
use cri_store::sandbox::{Sandbox, SandboxMetadata, SandboxState, SandboxStatus};

use super::{kill_and_delete_task, record_labels, spec_of, Outcome};
use crate::service::ServerState;
use cri_metadata::{sandbox_metadata_from_any, SANDBOX_METADATA_EXTENSION};

const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";

/// Loads one pause container record into the sandbox store. Errors only
/// when containerd cannot answer (the whole recovery is retried then).
pub(super) async fn load(
    state: &Arc<ServerState>,
    record: &ContainerRecord,
    tasks: &super::Pass,
) -> Result<Outcome, ContainerdError> {
    let id = SandboxId::from(record.id.as_str());
    if state
        .sandboxes
        .store
        .get(id.as_ref())
        .is_ok_and(|s| s.metadata.id == id)
    {
        return Ok(Outcome::AlreadyLoaded);
    }
    let decoded = match record.extensions.get(SANDBOX_METADATA_EXTENSION) {
        Some(any) => sandbox_metadata_from_any(&record.id, any).map_err(|e| e.to_string()),
        None => Err(format!("no {SANDBOX_METADATA_EXTENSION} extension")),
    };
    let (metadata, degraded) = match decoded {
        Ok(m) => (m, None),
        Err(reason) => (degraded_metadata(record), Some(reason)),
    };
    let created_at = record.created_at.map_or(0, crate::container::to_nanos);
    let mut status = SandboxStatus {
        state: SandboxState::NotReady,
        pid: 0,
        created_at,
        // Unknown after a restart: the next stop runs CNI DEL.
        network_down: false,
    };
    let mut watch = false;
    match tasks.get(state, &record.id).await {
        Ok(task) if task.status == TaskStatus::Running || task.status == TaskStatus::Paused => {
            status.pid = task.pid;
            if degraded.is_none() {
                status.state = SandboxState::Ready;
                watch = true;
            }
        }
        Ok(task) => {
            tracing::info!(pod_sandbox_id = %id, task_status = ?task.status, "deleting the pause task that is not running");
            kill_and_delete_task(state, &record.id).await?;
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    state
        .containers
        .sandbox_runtimes
        .remember(id.clone(), record.runtime.clone());
    let name = metadata.name.clone();
    if let Some(reason) = &degraded {
        tracing::error!(pod_sandbox_id = %id, %reason, "cannot load sandbox metadata; keeping the sandbox NOTREADY for removal");
    }
    if let Err(e) = state
        .sandboxes
        .store
        .add(Sandbox::new(metadata, status.clone()))
    {
        tracing::error!(pod_sandbox_id = %id, error = %e, "add recovered sandbox");
        return Ok(Outcome::Degraded);
    }
    if degraded.is_none() {
        match state.sandboxes.names.reserve(&name, id.as_ref()) {
            Ok(reservation) => reservation.keep(),
            Err(e) => tracing::warn!(pod_sandbox_id = %id, error = %e, "re-reserve sandbox name"),
        }
    }
    if watch {
        tasks.watch_sandbox(id.clone());
    }
    tracing::info!(pod_sandbox_id = %id, state = ?status.state, "recovered sandbox");
    Ok(if degraded.is_some() {
        Outcome::Degraded
    } else {
        Outcome::Loaded
    })
}

/// What the labels and the spec tell of a sandbox whose metadata is
/// unreadable: the pod's name, namespace and uid, its labels, and the
/// netns path (so a stop still tears the network down).
fn degraded_metadata(record: &ContainerRecord) -> SandboxMetadata {
    let labels = record_labels(record);
    let label = |key: &str| labels.get(key).cloned().unwrap_or_default();
    let pod = PodSandboxMetadata {
        name: label(POD_NAME_LABEL),
        namespace: label(POD_NAMESPACE_LABEL),
        uid: label(POD_UID_LABEL),
        attempt: 0,
    };
    let netns_path = spec_of(record)
        .and_then(|spec| {
            spec.linux()
                .as_ref()?
                .namespaces()
                .as_ref()?
                .iter()
                .find_map(|ns| {
                    (ns.typ() == oci_spec::runtime::LinuxNamespaceType::Network)
                        .then(|| ns.path().as_ref().map(|p| p.display().to_string()))
                        .flatten()
                })
        })
        .unwrap_or_default();
    SandboxMetadata {
        id: SandboxId::from(record.id.as_str()),
        // Not a reservable name: the kubelet may run the pod again.
        name: record.id.clone(),
        config: PodSandboxConfig {
            metadata: Some(pod),
            labels,
            ..PodSandboxConfig::default()
        },
        netns_path,
        ip: String::new(),
        additional_ips: Vec::new(),
        runtime_handler: String::new(),
        cni_result: None,
        process_label: String::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn degraded_metadata_comes_from_labels_and_spec() {
        let spec = serde_json::json!({
            "ociVersion": "1.0.2",
            "linux": {"namespaces": [
                {"type": "pid"},
                {"type": "network", "path": "/var/run/netns/cni-1234"}
            ]}
        });
        let record = ContainerRecord {
            id: "s1".into(),
            labels: HashMap::from([
                ("io.cri-containerd.kind".to_owned(), "sandbox".to_owned()),
                (POD_NAME_LABEL.to_owned(), "web".to_owned()),
                (POD_NAMESPACE_LABEL.to_owned(), "default".to_owned()),
                (POD_UID_LABEL.to_owned(), "u1".to_owned()),
            ]),
            spec: Some(prost_types::Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".into(),
                value: serde_json::to_vec(&spec).unwrap(),
            }),
            ..ContainerRecord::default()
        };
        let m = degraded_metadata(&record);
        assert_eq!(m.netns_path, "/var/run/netns/cni-1234");
        let pod = m.config.metadata.unwrap();
        assert_eq!(
            (pod.name.as_str(), pod.namespace.as_str(), pod.uid.as_str()),
            ("web", "default", "u1")
        );
        assert!(!m.config.labels.contains_key("io.cri-containerd.kind"));
        assert_eq!(m.name, "s1");
    }
}
