//! Reading in both directions, second half: containerd's own CRI plugin takes over what cri-server made. After every case ran, cri-server's pods (kept, not removed) are read through cri-server's List and Status RPCs; cri-server is stopped, its containerd restarted with the CRI plugin enabled on the same root and state (cri-server ran on the plugin's dirs), and the plugin's answers to the same RPCs are diffed against cri-server's, per case (`handover.*` documents: containerd's plugin is the reference column). Then the plugin stops and removes every pod, which must work too. One restart for all cases.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cri_api::v1::{
    ContainerStatusRequest, ListContainersRequest, ListPodSandboxRequest, PodSandboxStatusRequest,
};
use futures::StreamExt;
use nix::sys::signal::Signal;
use serde_json::{json, Value};

use super::observe::remove_pod;
use super::{diff, Daemon, Difference, Differential, Side};
use crate::conformance::reference_cri_toml;
use crate::server::connect;

/// How long cri-server gets to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long containerd's plugin gets to answer after the restart.
const PLUGIN_READY: Duration = Duration::from_secs(60);
/// Pods removed at once through the plugin.
const REMOVALS: usize = 4;

/// A case's objects that cri-server made and did not remove.
#[derive(Debug, Clone)]
pub struct Kept {
    pub case: &'static str,
    pub sandbox_id: String,
    /// Container names in the case and their ids.
    pub containers: Vec<(String, String)>,
}

type Runtime = cri_api::v1::runtime_service_client::RuntimeServiceClient<tonic::transport::Channel>;
type Views = BTreeMap<&'static str, BTreeMap<String, Value>>;

impl Differential {
    /// Hands cri-server's objects over to containerd's CRI plugin and
    /// returns, per case, how the plugin's view differs from what
    /// cri-server reported. cri-server is stopped afterwards.
    pub async fn handover(&mut self, kept: &[Kept]) -> Result<Vec<Difference>> {
        let ours = {
            let mut rt = self.side(Side::CriServer)?.runtime().await?;
            views(&mut rt, kept)
                .await
                .context("cri-server's view before the handover")?
        };
        let net_d = {
            let server = match &mut self.setup.daemon {
                Daemon::CriServer(server) => server,
                Daemon::Reference(_) => bail!("the setup runs the reference, not cri-server"),
            };
            server.signal(Signal::SIGTERM)?;
            let status = server.wait_exit(STOP_TIMEOUT).await?;
            if !status.success() {
                bail!("cri-server exited with {status}:\n{}", server.log());
            }
            server.cni_conf_dir()
        };
        let toml = reference_cri_toml(&net_d, &self.setup.certs_dir());
        let containerd = &mut self.setup.harness.containerd;
        containerd.stop().await?;
        containerd.set_cri_plugin(Some(&toml))?;
        containerd.start_again().await?;
        let mut rt = plugin_client(containerd.socket(), || containerd.log()).await?;
        let mut theirs = views(&mut rt, kept)
            .await
            .context("containerd's CRI plugin's view after the handover")?;

        let socket = containerd.socket().to_path_buf();
        let removals: Vec<(&'static str, String)> = futures::stream::iter(kept)
            .map(|k| {
                let socket = socket.clone();
                async move {
                    let outcome = match connect(&socket).await {
                        Ok(channel) => remove_pod(&mut Runtime::new(channel), &k.sandbox_id)
                            .await
                            .map(|()| "removed".to_string())
                            .unwrap_or_else(|e| format!("{e:#}")),
                        Err(e) => format!("{e:#}"),
                    };
                    (k.case, outcome)
                }
            })
            .buffer_unordered(REMOVALS)
            .collect()
            .await;
        for (case, outcome) in removals {
            theirs
                .entry(case)
                .or_default()
                .insert("handover.remove".into(), json!(outcome));
        }

        let mut out = Vec::new();
        for k in kept {
            let mut mine = ours.get(k.case).cloned().unwrap_or_default();
            mine.insert("handover.remove".into(), json!("removed"));
            let empty = BTreeMap::new();
            let plugin = theirs.get(k.case).unwrap_or(&empty);
            out.extend(diff::documents(k.case, plugin, &mine));
        }
        Ok(out)
    }
}

/// What one CRI endpoint lists and reports about the kept objects.
async fn views(rt: &mut Runtime, kept: &[Kept]) -> Result<Views> {
    let sandboxes = rt
        .list_pod_sandbox(ListPodSandboxRequest { filter: None })
        .await
        .context("ListPodSandbox")?
        .into_inner()
        .items;
    let containers = rt
        .list_containers(ListContainersRequest { filter: None })
        .await
        .context("ListContainers")?
        .into_inner()
        .containers;
    let mut out = Views::new();
    for k in kept {
        let docs = out.entry(k.case).or_default();
        let listed = sandboxes.iter().find(|s| s.id == k.sandbox_id);
        docs.insert("handover.sandbox.list".into(), listed_doc(listed)?);
        let status = rt
            .pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: k.sandbox_id.clone(),
                verbose: false,
            })
            .await
            .map(|r| r.into_inner().status);
        docs.insert("handover.sandbox.status".into(), answer_doc(status)?);
        for (name, id) in &k.containers {
            let doc = format!("handover.container[{name}]");
            let listed = containers.iter().find(|c| &c.id == id);
            docs.insert(format!("{doc}.list"), listed_doc(listed)?);
            let status = rt
                .container_status(ContainerStatusRequest {
                    container_id: id.clone(),
                    verbose: false,
                })
                .await
                .map(|r| r.into_inner().status);
            docs.insert(format!("{doc}.status"), answer_doc(status)?);
        }
    }
    Ok(out)
}

fn listed_doc<T: serde::Serialize>(item: Option<&T>) -> Result<Value> {
    Ok(match item {
        Some(item) => serde_json::to_value(item)?,
        None => json!("(not listed)"),
    })
}

/// A status answer, or the gRPC code of a refusal.
fn answer_doc<T: serde::Serialize>(
    answer: std::result::Result<Option<T>, tonic::Status>,
) -> Result<Value> {
    Ok(match answer {
        Ok(Some(status)) => serde_json::to_value(status)?,
        Ok(None) => json!("(no status)"),
        Err(status) => json!({ "code": format!("{:?}", status.code()) }),
    })
}

/// A client of containerd's CRI plugin once it answers.
async fn plugin_client(socket: &std::path::Path, log: impl Fn() -> String) -> Result<Runtime> {
    let deadline = Instant::now() + PLUGIN_READY;
    loop {
        let mut rt = Runtime::new(connect(socket).await?);
        match rt
            .list_pod_sandbox(ListPodSandboxRequest { filter: None })
            .await
        {
            Ok(_) => return Ok(rt),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(status) => bail!(
                "containerd's CRI plugin did not answer after the restart: {status}; log:\n{}",
                log()
            ),
        }
    }
}
