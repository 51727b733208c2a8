//! Tracing over OTLP against a real containerd, runc and the CNI bridge: a
//! cri-server configured with containerd's tracing plugin keys exports its
//! spans to the harness's OTLP/gRPC receiver, and one RunPodSandbox arrives
//! as one trace: the RPC span a root, the CNI setup and every containerd
//! call it made its descendants by trace id and parent span id.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use cri_api::v1::{PodSandboxConfig, PodSandboxMetadata, RunPodSandboxRequest};
use cri_tests::otlp::{OtlpReceiver, ReceivedSpan};
use cri_tests::{Harness, ServerOptions};
use nix::sys::signal::Signal;

/// Every span of `root`'s trace that descends from it.
fn descendants<'a>(spans: &'a [ReceivedSpan], root: &ReceivedSpan) -> Vec<&'a ReceivedSpan> {
    let by_id: HashMap<&str, &ReceivedSpan> = spans
        .iter()
        .filter(|s| s.trace_id == root.trace_id)
        .map(|s| (s.span_id.as_str(), s))
        .collect();
    let mut found: HashSet<&str> = HashSet::new();
    for span in by_id.values() {
        let mut parent = span.parent_span_id.as_str();
        while let Some(up) = by_id.get(parent) {
            if up.span_id == root.span_id {
                found.insert(span.span_id.as_str());
                break;
            }
            parent = up.parent_span_id.as_str();
        }
    }
    by_id
        .values()
        .filter(|s| found.contains(s.span_id.as_str()))
        .copied()
        .collect()
}

#[tokio::test]
async fn run_pod_sandbox_is_one_trace_down_to_containerd_and_cni() -> Result<()> {
    let receiver = OtlpReceiver::start().await?;
    let harness = Harness::start().await?;
    let mut server = harness
        .server(ServerOptions {
            cri_plugin_toml: "netns_mounts_under_state_dir = true\n".into(),
            extra_toml: receiver.config_toml(),
            ..ServerOptions::default()
        })
        .await?;
    let log = server.log();
    ensure!(
        !log.contains("unknown config key"),
        "tracing keys reported unknown; log:\n{log}"
    );
    let mut client = server.runtime_client().await?;
    let name = "traced";
    let sandbox_id = client
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(PodSandboxConfig {
                metadata: Some(PodSandboxMetadata {
                    name: name.into(),
                    uid: format!("uid-{name}-{}", std::process::id()),
                    namespace: "cri-tests".into(),
                    attempt: 0,
                }),
                hostname: name.into(),
                ..PodSandboxConfig::default()
            }),
            runtime_handler: String::new(),
        })
        .await?
        .into_inner()
        .pod_sandbox_id;
    // SIGTERM: the daemon flushes its exporter before it exits.
    server.signal(Signal::SIGTERM)?;
    let exit = server.wait_exit(Duration::from_secs(30)).await?;
    ensure!(exit.success(), "exit {exit}; log:\n{}", server.log());

    let spans = receiver.spans();
    ensure!(
        !spans.is_empty(),
        "no spans received; log:\n{}",
        server.log()
    );
    let root = spans
        .iter()
        .find(|s| {
            s.attribute("rpc") == Some("RunPodSandbox")
                && s.attribute("pod_sandbox_id") == Some(sandbox_id.as_str())
        })
        .with_context(|| format!("no RunPodSandbox span among {spans:#?}"))?;
    ensure!(
        root.service_name == "cri-server-test",
        "service.name {:?}",
        root.service_name
    );
    ensure!(
        root.parent_span_id.is_empty(),
        "RunPodSandbox span has a parent: {root:?}"
    );
    let below = descendants(&spans, root);
    let names: HashSet<&str> = below.iter().map(|s| s.name.as_str()).collect();
    for want in [
        "cni.setup",
        "containerd.services.containers.v1.Containers/Create",
        "containerd.services.tasks.v1.Tasks/Create",
        "containerd.services.tasks.v1.Tasks/Start",
    ] {
        ensure!(
            names.contains(want),
            "no {want} span below RunPodSandbox; below: {names:?}"
        );
    }
    // Every containerd call in the trace hangs off the RPC, none is orphaned.
    let in_trace: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.trace_id == root.trace_id && s.span_id != root.span_id)
        .collect();
    ensure!(
        in_trace.len() == below.len(),
        "spans of the trace not below the RPC: {in_trace:#?}"
    );
    let containerd_call = below
        .iter()
        .find(|s| s.name.starts_with("containerd.services."))
        .context("no containerd call span")?;
    ensure!(
        containerd_call.attribute("rpc.system") == Some("grpc"),
        "{containerd_call:?}"
    );
    Ok(())
}
