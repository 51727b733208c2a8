//! One side of a case: the pod and its containers created (and started, if the case says so) through that side's CRI socket, then read back from its containerd (`ctr containers info`: record, spec, extensions), its dirs (status files, layout), its verbose Status RPCs and what cri-metadata decodes from its extensions and status files ([`super::decoded`]); the pod is then removed, or kept for the handover to containerd's plugin ([`AfterObserving`]).

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::process::Stdio;

use anyhow::{bail, Context, Result};
use cri_api::v1::runtime_service_client::RuntimeServiceClient;
use cri_api::v1::{
    ContainerStatusRequest, CreateContainerRequest, PodSandboxStatusRequest,
    RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest, StopPodSandboxRequest,
};
use serde_json::{json, Map, Value};
use tonic::transport::Channel;

use super::corpus::Case;
use super::{decoded, normalize, Observed, SideEnv};
use crate::components::{Component, CHILD_PATH};
use crate::containerd::K8S_NAMESPACE;

/// Files larger than this are listed without their content.
const SHOWN_FILE_BYTES: u64 = 4096;

type Runtime = RuntimeServiceClient<Channel>;

/// What happens to a case's pod once it has been read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterObserving {
    /// StopPodSandbox + RemovePodSandbox.
    Remove,
    /// Left as it is, for the caller (the handover to containerd's plugin,
    /// the golden capture).
    Keep,
}

/// One side's run of a case: its documents as read (not normalized), the
/// facts that normalize them, and the objects it made.
#[derive(Debug, Default)]
pub struct Observation {
    pub raw: BTreeMap<String, Value>,
    pub facts: normalize::SideFacts,
    /// Set when RunPodSandbox succeeded.
    pub sandbox_id: Option<String>,
    /// The case's container names and the ids this side gave them.
    pub containers: Vec<(String, String)>,
}

impl Observation {
    /// The documents, normalized.
    pub fn observed(&self) -> Observed {
        Observed {
            docs: normalize::documents(&self.facts, &self.raw),
        }
    }
}

/// Runs `case` on `side` and returns what it wrote.
pub async fn observe(side: &SideEnv, case: &Case, after: AfterObserving) -> Result<Observation> {
    let mut rt = side.runtime().await?;
    let mut facts = side.facts();
    let mut docs = BTreeMap::new();
    let mut pod = case.pod.clone();
    pod.log_directory = side.log_root.join(case.name).to_string_lossy().into_owned();
    let sandbox = rt
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(pod.clone()),
            runtime_handler: String::new(),
        })
        .await;
    let sandbox_id = match sandbox {
        Ok(r) => r.into_inner().pod_sandbox_id,
        Err(status) => {
            docs.insert("sandbox.error".into(), error_doc(&status));
            return Ok(Observation {
                raw: docs,
                facts,
                ..Observation::default()
            });
        }
    };
    facts.literal(sandbox_id.clone(), "<sandbox-id>");
    let mut seen = Observation {
        raw: docs,
        facts,
        sandbox_id: Some(sandbox_id.clone()),
        containers: Vec::new(),
    };
    let result = observe_pod(side, case, &mut rt, &pod, &sandbox_id, &mut seen).await;
    let cleanup = match after {
        AfterObserving::Remove => remove_pod(&mut rt, &sandbox_id).await,
        AfterObserving::Keep => Ok(()),
    };
    result?;
    cleanup?;
    Ok(seen)
}

/// Everything after RunPodSandbox, into `seen`.
async fn observe_pod(
    side: &SideEnv,
    case: &Case,
    rt: &mut Runtime,
    pod: &cri_api::v1::PodSandboxConfig,
    sandbox_id: &str,
    seen: &mut Observation,
) -> Result<()> {
    let Observation {
        raw: docs,
        facts,
        containers,
        ..
    } = seen;
    for config in &case.containers {
        let mut config = config.clone();
        resolve_target(&mut config, containers);
        let name = config
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        let created = rt
            .create_container(CreateContainerRequest {
                pod_sandbox_id: sandbox_id.to_string(),
                config: Some(config),
                sandbox_config: Some(pod.clone()),
            })
            .await;
        match created {
            Ok(r) => {
                let id = r.into_inner().container_id;
                facts.literal(id.clone(), format!("<container-id:{name}>"));
                containers.push((name, id));
            }
            Err(status) => {
                docs.insert(format!("container[{name}].error"), error_doc(&status));
            }
        }
    }
    if case.start {
        for (name, id) in containers.iter() {
            let started = rt
                .start_container(StartContainerRequest {
                    container_id: id.clone(),
                })
                .await;
            if let Err(status) = started {
                docs.insert(format!("container[{name}].start-error"), error_doc(&status));
            }
        }
    }

    let status = rt
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: sandbox_id.to_string(),
            verbose: true,
        })
        .await
        .context("PodSandboxStatus")?
        .into_inner();
    if let Some(network) = status.status.as_ref().and_then(|s| s.network.as_ref()) {
        let ips = std::iter::once(network.ip.clone())
            .chain(network.additional_ips.iter().map(|ip| ip.ip.clone()));
        for ip in ips.filter(|ip| !ip.is_empty()) {
            facts.words.push((ip, "<pod-ip>".into()));
        }
    }
    let mut response = serde_json::to_value(&status)?;
    take_info(&mut response, "sandbox", docs);
    docs.insert("sandbox.status".into(), response);
    record_docs(side, "sandbox", sandbox_id, docs).await?;
    let mut files = Map::new();
    list(
        &side.cri_root.join("sandboxes").join(sandbox_id),
        &mut files,
    )?;
    list(
        &side.cri_state.join("sandboxes").join(sandbox_id),
        &mut files,
    )?;
    list(&side.log_root.join(case.name), &mut files)?;
    docs.insert("sandbox.files".into(), Value::Object(files));

    for (name, id) in containers.iter() {
        let doc = format!("container[{name}]");
        let status = rt
            .container_status(ContainerStatusRequest {
                container_id: id.clone(),
                verbose: true,
            })
            .await
            .with_context(|| format!("ContainerStatus {name}"))?
            .into_inner();
        let mut response = serde_json::to_value(&status)?;
        take_info(&mut response, &doc, docs);
        docs.insert(format!("{doc}.status"), response);
        record_docs(side, &doc, id, docs).await?;
        let status_file = side.cri_root.join("containers").join(id).join("status");
        match std::fs::read_to_string(&status_file) {
            Ok(text) => {
                docs.insert(format!("{doc}.status-file"), parse_or_string(&text));
                docs.insert(
                    format!("{doc}.status-file.decoded"),
                    decoded::status(id, text.as_bytes()),
                );
                docs.insert(format!("{doc}.status-file#bytes"), Value::String(text));
            }
            Err(e) => {
                docs.insert(
                    format!("{doc}.status-file"),
                    json!(format!("unreadable: {e}")),
                );
            }
        }
        let mut files = Map::new();
        list(&side.cri_root.join("containers").join(id), &mut files)?;
        list(&side.cri_state.join("containers").join(id), &mut files)?;
        docs.insert(format!("{doc}.files"), Value::Object(files));
    }
    Ok(())
}

/// `@name` as a namespace `target_id` becomes the id this side gave the
/// case's container `name`.
fn resolve_target(config: &mut cri_api::v1::ContainerConfig, created: &[(String, String)]) {
    let Some(ns) = config
        .linux
        .as_mut()
        .and_then(|l| l.security_context.as_mut())
        .and_then(|s| s.namespace_options.as_mut())
    else {
        return;
    };
    if let Some(name) = ns.target_id.strip_prefix('@') {
        if let Some((_, id)) = created.iter().find(|(n, _)| n == name) {
            ns.target_id = id.clone();
        }
    }
}

/// Moves the verbose `info` map out of a status response into its own
/// document, each value parsed as JSON when it is JSON.
fn take_info(response: &mut Value, doc: &str, docs: &mut BTreeMap<String, Value>) {
    let Some(info) = response.as_object_mut().and_then(|o| o.remove("info")) else {
        return;
    };
    let parsed: Map<String, Value> = info
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), parse_or_string(v.as_str().unwrap_or_default())))
                .collect()
        })
        .unwrap_or_default();
    docs.insert(format!("{doc}.info"), Value::Object(parsed));
}

fn parse_or_string(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// The containerd record of `id` as `ctr containers info` prints it: the
/// record without spec and extensions, the spec, each extension's type
/// URL, and the CRI metadata extension parsed and as raw bytes.
async fn record_docs(
    side: &SideEnv,
    doc: &str,
    id: &str,
    docs: &mut BTreeMap<String, Value>,
) -> Result<()> {
    let output = tokio::process::Command::new(Component::Ctr.path()?)
        .arg("--address")
        .arg(&side.containerd_socket)
        .args(["-n", K8S_NAMESPACE, "containers", "info", id])
        .env("PATH", CHILD_PATH)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .context("run ctr")?;
    if !output.status.success() {
        bail!(
            "ctr containers info {id}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut record: Value = serde_json::from_slice(&output.stdout).context("ctr's JSON")?;
    let object = record
        .as_object_mut()
        .context("ctr containers info is not an object")?;
    let spec = object.remove("Spec").unwrap_or(Value::Null);
    let extensions = object.remove("Extensions").unwrap_or(Value::Null);
    docs.insert(format!("{doc}.spec"), spec);
    let mut urls = Map::new();
    for (name, any) in extensions.as_object().into_iter().flatten() {
        let url = any
            .get("type_url")
            .or_else(|| any.get("TypeUrl"))
            .cloned()
            .unwrap_or(Value::Null);
        urls.insert(name.clone(), url.clone());
        let value = any
            .get("value")
            .or_else(|| any.get("Value"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let bytes = base64_decode(value).with_context(|| format!("extension {name}"))?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if name.ends_with(".metadata") {
            let any = prost_types::Any {
                type_url: url.as_str().unwrap_or_default().to_string(),
                value: bytes,
            };
            docs.insert(format!("{doc}.metadata"), parse_or_string(&text));
            docs.insert(
                format!("{doc}.metadata.decoded"),
                decoded::metadata(name, id, &any),
            );
            docs.insert(format!("{doc}.metadata#bytes"), Value::String(text));
        }
    }
    docs.insert(format!("{doc}.extensions"), Value::Object(urls));
    docs.insert(format!("{doc}.record"), record);
    Ok(())
}

/// Every entry under `dir` (itself included), keyed by full path: type,
/// mode and, for small regular files, the content.
fn list(dir: &Path, out: &mut Map<String, Value>) -> Result<()> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("stat {}", dir.display())),
    };
    let kind = meta.file_type();
    let mode = format!("{:04o}", meta.permissions().mode() & 0o7777);
    let entry = if kind.is_dir() {
        format!("dir {mode}")
    } else if kind.is_fifo() {
        format!("fifo {mode}")
    } else if kind.is_symlink() {
        format!("symlink -> {}", std::fs::read_link(dir)?.display())
    } else if kind.is_file() && meta.len() <= SHOWN_FILE_BYTES && !is_status(dir) {
        let content = std::fs::read(dir).unwrap_or_default();
        format!("file {mode}: {}", String::from_utf8_lossy(&content))
    } else {
        format!("file {mode}")
    };
    out.insert(dir.to_string_lossy().into_owned(), Value::String(entry));
    if kind.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("read {}", dir.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .collect();
        entries.sort();
        for entry in entries {
            list(&entry, out)?;
        }
    }
    Ok(())
}

/// The status checkpoint is compared as its own document.
fn is_status(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "status")
}

/// A failed request: only the gRPC code is compared (see
/// `normalize::RULES`).
fn error_doc(status: &tonic::Status) -> Value {
    json!({ "code": format!("{:?}", status.code()) })
}

pub(super) async fn remove_pod(rt: &mut Runtime, id: &str) -> Result<()> {
    rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: id.to_string(),
    })
    .await
    .context("StopPodSandbox")?;
    rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: id.to_string(),
    })
    .await
    .context("RemovePodSandbox")?;
    Ok(())
}

/// Standard base64 (with or without padding), as Go's `encoding/json`
/// writes `[]byte`.
fn base64_decode(text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => bail!("not base64: {c:?}"),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_as_go_writes_bytes() -> Result<()> {
        assert_eq!(base64_decode("eyJhIjoxfQ==")?, b"{\"a\":1}");
        assert_eq!(base64_decode("YWI")?, b"ab");
        assert!(base64_decode("a*").is_err());
        Ok(())
    }
}
