//! PodSandboxStatus: state, creation time, IPs (empty once the netns is
//! gone or with host networking), namespace options, labels, annotations
//! and runtime handler; `verbose` adds containerd's `info` JSON (pid,
//! process status, netns state, image, snapshot, runtime type and options,
//! config, OCI spec, CNI result, sandbox metadata).

use std::collections::HashMap;
use std::path::Path;
use std::time::UNIX_EPOCH;

use cri_api::v1::{
    LinuxPodSandboxStatus, Namespace, PodIp, PodSandboxNetworkStatus, PodSandboxStatus,
    PodSandboxStatusResponse,
};
use cri_sandbox::controller::ControllerStatus;
use cri_store::sandbox::{Sandbox, SandboxMetadata};
use serde::Serialize;
use serde_json::Value;

use super::error::SandboxError;
use super::lookup;
use super::run::host_network;
use super::runtime_options::runtime_options_json;
use super::SandboxService;
use cri_metadata::sandbox_metadata_to_any;

type Result<T, E = SandboxError> = std::result::Result<T, E>;

/// PodSandboxStatus for a full id or unique prefix.
pub async fn pod_sandbox_status(
    state: &SandboxService,
    id_or_prefix: &str,
    verbose: bool,
) -> Result<PodSandboxStatusResponse> {
    let sandbox = lookup(state, id_or_prefix)?;
    let meta = &sandbox.metadata;
    tracing::Span::current().record("pod_sandbox_id", tracing::field::display(&meta.id));
    let netns_closed = netns_closed(state, meta).await?;
    let (ip, additional_ips) = if host_network(&meta.config) || netns_closed.unwrap_or(true) {
        (String::new(), Vec::new())
    } else {
        (meta.ip.clone(), meta.additional_ips.clone())
    };
    let options = meta
        .config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.clone())
        // containerd answers an empty NamespaceOption, never none.
        .or_else(|| Some(Default::default()));
    let mut status = PodSandboxStatus {
        id: meta.id.to_string(),
        metadata: meta.config.metadata.clone(),
        state: sandbox.status.state.to_cri() as i32,
        created_at: sandbox.status.created_at,
        network: Some(PodSandboxNetworkStatus {
            ip,
            additional_ips: additional_ips.into_iter().map(|ip| PodIp { ip }).collect(),
        }),
        linux: Some(LinuxPodSandboxStatus {
            namespaces: Some(Namespace { options }),
        }),
        labels: meta.config.labels.clone(),
        annotations: meta.config.annotations.clone(),
        runtime_handler: meta.runtime_handler.clone(),
    };

    let needs_controller = verbose || status.created_at == 0;
    let controller_status = if needs_controller {
        let controller = state
            .manager
            .controller_of(&state.config, &meta.runtime_handler)?;
        Some(controller.status(&meta.id, true).await.map_err(|source| {
            SandboxError::Controller {
                id: meta.id.to_string(),
                source,
            }
        })?)
    } else {
        None
    };
    if status.created_at == 0 {
        // CRI does not allow 0: fall back to the container record's time.
        status.created_at = controller_status
            .as_ref()
            .and_then(|c| c.container.as_ref())
            .and_then(|r| r.created_at)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i64);
    }
    let mut info = HashMap::new();
    if verbose {
        let controller_status = controller_status.unwrap_or_default();
        info.insert(
            "info".to_owned(),
            verbose_info(&sandbox, &controller_status, netns_closed.unwrap_or(false))?,
        );
    }
    Ok(PodSandboxStatusResponse {
        status: Some(status),
        info,
        ..PodSandboxStatusResponse::default()
    })
}

/// Whether the netns is gone; `None` with host networking.
async fn netns_closed(state: &SandboxService, meta: &SandboxMetadata) -> Result<Option<bool>> {
    if meta.netns_path.is_empty() {
        return Ok(None);
    }
    state
        .manager
        .netns()
        .is_closed(Path::new(&meta.netns_path))
        .await
        .map(Some)
        .map_err(|source| SandboxError::Netns {
            id: meta.id.to_string(),
            source,
        })
}

/// containerd's `SandboxInfo`, field for field (podsandbox/sandbox_status.go).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SandboxInfo<'a> {
    pid: u32,
    process_status: &'a str,
    #[serde(rename = "netNamespaceClosed")]
    netns_closed: bool,
    image: &'a str,
    snapshot_key: &'a str,
    snapshotter: &'a str,
    runtime_handler: &'a str,
    runtime_type: &'a str,
    runtime_options: Value,
    config: Value,
    runtime_spec: Value,
    cni_result: Value,
    #[serde(rename = "sandboxMetadata")]
    metadata: Value,
}

fn verbose_info(
    sandbox: &Sandbox,
    controller: &ControllerStatus,
    netns_closed: bool,
) -> Result<String> {
    let meta = &sandbox.metadata;
    let metadata_err = |source| SandboxError::Metadata {
        id: meta.id.to_string(),
        source,
    };
    let any = sandbox_metadata_to_any(meta).map_err(metadata_err)?;
    let go_metadata = serde_json::from_slice::<Value>(&any.value)
        .ok()
        .and_then(|mut v| v.get_mut("Metadata").map(Value::take))
        .unwrap_or(Value::Null);
    let record = controller.container.as_ref();
    let runtime_spec = record
        .and_then(|r| r.spec.as_ref())
        .and_then(|s| serde_json::from_slice(&s.value).ok())
        .unwrap_or(Value::Null);
    let info = SandboxInfo {
        pid: sandbox.status.pid,
        process_status: if controller.process_status.is_empty() {
            "deleted"
        } else {
            &controller.process_status
        },
        netns_closed,
        image: record.map_or("", |r| r.image.as_str()),
        snapshot_key: record.map_or("", |r| r.snapshot_key.as_str()),
        snapshotter: record.map_or("", |r| r.snapshotter.as_str()),
        runtime_handler: &meta.runtime_handler,
        runtime_type: record.map_or("", |r| r.runtime.name.as_str()),
        runtime_options: runtime_options_json(record.and_then(|r| r.runtime.options.as_ref())),
        config: go_metadata.get("Config").cloned().unwrap_or(Value::Null),
        runtime_spec,
        cni_result: go_metadata.get("CNIResult").cloned().unwrap_or(Value::Null),
        metadata: go_metadata.clone(),
    };
    serde_json::to_string(&info).map_err(|e| SandboxError::VerboseInfo {
        id: meta.id.to_string(),
        message: e.to_string(),
    })
}
