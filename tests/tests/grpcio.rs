//! A Python grpcio client (its C core, not our HTTP/2 stack) calls
//! Version, Status and ListPodSandbox on the daemon's socket with every
//! `:authority` form grpcio can send: its default, the socket path, the
//! percent-encoded path, an empty value and `localhost`. Each gets a real
//! answer, and the daemon's log shows which forms it had to rewrite.

use std::collections::BTreeSet;
use std::process::Stdio;

use anyhow::{bail, ensure, Context, Result};
use cri_api::v1::*;
use cri_tests::clients::grpcio_python;
use cri_tests::cri::pod_config;
use cri_tests::{workspace_root, Harness, ServerOptions};
use prost::Message;
use serde_json::{json, Value};

const VERSION: &str = "/runtime.v1.RuntimeService/Version";
const STATUS: &str = "/runtime.v1.RuntimeService/Status";
const LIST_PODS: &str = "/runtime.v1.RuntimeService/ListPodSandbox";

fn call(method: &str, request: &impl Message) -> Value {
    json!({"method": method, "request": hex::encode(request.encode_to_vec())})
}

#[tokio::test]
async fn grpcio_gets_real_answers_with_every_authority_form() -> Result<()> {
    let python = grpcio_python()?;
    let harness = Harness::start().await?;
    let server = harness.server(ServerOptions::default()).await?;
    let logs = tempfile::tempdir()?;
    let mut rt = server.runtime_client().await?;
    let pod = rt
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(pod_config("grpcio-pod", "grpcio", logs.path())),
            runtime_handler: String::new(),
        })
        .await?
        .into_inner()
        .pod_sandbox_id;

    let calls = json!([
        call(
            VERSION,
            &VersionRequest {
                version: "v1".into()
            }
        ),
        call(STATUS, &StatusRequest { verbose: false }),
        call(LIST_PODS, &ListPodSandboxRequest { filter: None }),
    ]);
    let script = workspace_root().join("tests/assets/grpcio_client.py");
    let socket = server.socket().display().to_string();
    let output = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(&socket)
        .arg(calls.to_string())
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("run {}", script.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "grpcio client failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let mut answered = BTreeSet::new();
    for line in stdout.lines() {
        let line: Value = serde_json::from_str(line)?;
        if line.get("grpcio").is_some() {
            continue;
        }
        let form = line["form"].as_str().context("form")?.to_string();
        ensure!(line["ok"] == true, "{form}: {line}");
        let bytes = hex::decode(line["response"].as_str().context("response")?)?;
        match line["method"].as_str() {
            Some(VERSION) => {
                let v = VersionResponse::decode(bytes.as_slice())?;
                ensure!(v.runtime_name == "cri-server", "{form}: {v:?}");
                ensure!(v.runtime_api_version == "v1", "{form}: {v:?}");
            }
            Some(STATUS) => {
                let s = StatusResponse::decode(bytes.as_slice())?;
                let conditions = s.status.context("status")?.conditions;
                ensure!(
                    conditions
                        .iter()
                        .any(|c| c.r#type == "RuntimeReady" && c.status),
                    "{form}: {conditions:?}"
                );
            }
            Some(LIST_PODS) => {
                let l = ListPodSandboxResponse::decode(bytes.as_slice())?;
                ensure!(
                    l.items.iter().any(|p| p.id == pod),
                    "{form}: {pod} not in {:?}",
                    l.items
                );
            }
            other => bail!("unexpected method {other:?}"),
        }
        answered.insert((
            form,
            line["method"].as_str().unwrap_or_default().to_string(),
        ));
    }
    ensure!(
        answered.len() == 5 * 3,
        "every form, every call: {answered:?}"
    );

    // The path forms really reached the daemon as such: it rewrote them.
    let log = server.log();
    for original in [socket.clone(), socket.replace('/', "%2F"), String::new()] {
        let logged = format!("{original:?}");
        ensure!(
            log.lines()
                .any(|l| l.contains("replacing it on this connection") && l.contains(&logged)),
            "no rewrite of {logged} in the daemon's log"
        );
    }
    Ok(())
}
