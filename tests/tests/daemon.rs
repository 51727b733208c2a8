//! The daemon over its real socket against a real containerd: Version,
//! Status and its conditions, containerd going away and coming back, the
//! socket's ownership and cleanup, and config errors at start-up.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cri_api::v1::{RuntimeCondition, StatusRequest, StatusResponse, VersionRequest};
use cri_tests::server::CniSetup;
use cri_tests::{CriServer, Harness, ServerOptions, StartOutcome};
use nix::sys::signal::Signal;

async fn status(server: &CriServer, verbose: bool) -> Result<StatusResponse> {
    let mut client = server.runtime_client().await?;
    Ok(client.status(StatusRequest { verbose }).await?.into_inner())
}

fn condition(status: &StatusResponse, kind: &str) -> Result<RuntimeCondition> {
    status
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.r#type == kind))
        .cloned()
        .with_context(|| format!("no {kind} condition in {status:?}"))
}

/// Polls Status until RuntimeReady is `want`.
async fn wait_runtime_ready(server: &CriServer, want: bool) -> Result<RuntimeCondition> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = condition(&status(server, false).await?, "RuntimeReady")?;
        if ready.status == want {
            return Ok(ready);
        }
        if Instant::now() > deadline {
            bail!("RuntimeReady stayed {ready:?}; log:\n{}", server.log());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn version_and_status_over_the_socket() -> Result<()> {
    let harness = Harness::start().await?;
    let server = harness.server(ServerOptions::default()).await?;
    let mut client = server.runtime_client().await?;

    let version = client
        .version(VersionRequest::default())
        .await?
        .into_inner();
    ensure!(version.runtime_name == "cri-server", "{version:?}");
    ensure!(version.runtime_api_version == "v1", "{version:?}");
    ensure!(version.version == "0.1.0", "{version:?}");
    ensure!(!version.runtime_version.is_empty(), "{version:?}");

    let st = status(&server, true).await?;
    ensure!(condition(&st, "RuntimeReady")?.status, "{st:?}");
    ensure!(condition(&st, "NetworkReady")?.status, "{st:?}");
    let config: serde_json::Value =
        serde_json::from_str(st.info.get("config").context("no config in verbose info")?)?;
    ensure!(
        config["sandboxImage"] == serde_json::Value::String(harness.images.pause.clone()),
        "sandboxImage in {config}"
    );
    ensure!(
        config["restrictOOMScoreAdj"] == serde_json::Value::Bool(true),
        "{config}"
    );
    ensure!(
        st.info.get("lastCNILoadStatus").map(String::as_str) == Some("OK"),
        "{:?}",
        st.info
    );
    ensure!(
        st.runtime_handlers.iter().any(|h| h.name == "runc"),
        "{st:?}"
    );

    let quiet = status(&server, false).await?;
    ensure!(
        quiet.info.is_empty(),
        "non-verbose Status has info: {:?}",
        quiet.info
    );
    Ok(())
}

#[tokio::test]
async fn network_not_ready_without_cni_config() -> Result<()> {
    let harness = Harness::start().await?;
    let server = harness
        .server(ServerOptions {
            cni: CniSetup::NoConfig,
            ..Default::default()
        })
        .await?;
    let st = status(&server, false).await?;
    let network = condition(&st, "NetworkReady")?;
    ensure!(!network.status, "{network:?}");
    ensure!(network.reason == "NetworkPluginNotReady", "{network:?}");
    ensure!(
        network.message.contains("cni plugin not initialized"),
        "{network:?}"
    );
    ensure!(condition(&st, "RuntimeReady")?.status, "{st:?}");
    Ok(())
}

#[tokio::test]
async fn runtime_ready_follows_containerd() -> Result<()> {
    let mut harness = Harness::start().await?;
    let server = harness.server(ServerOptions::default()).await?;
    wait_runtime_ready(&server, true).await?;

    harness.containerd.stop().await?;
    let down = wait_runtime_ready(&server, false).await?;
    let address = harness.containerd.socket().display().to_string();
    ensure!(down.reason == "ContainerdUnavailable", "{down:?}");
    ensure!(
        down.message.contains(&address),
        "message does not name {address}: {down:?}"
    );
    // The server itself keeps answering.
    let mut client = server.runtime_client().await?;
    client.version(VersionRequest::default()).await?;

    harness.containerd.start_again().await?;
    wait_runtime_ready(&server, true).await?;
    Ok(())
}

#[tokio::test]
async fn a_second_server_on_the_same_socket_refuses_to_start() -> Result<()> {
    let harness = Harness::start().await?;
    let first = harness.server(ServerOptions::default()).await?;
    let outcome = harness
        .try_server(ServerOptions {
            listen: Some(first.socket().to_path_buf()),
            ..Default::default()
        })
        .await?;
    match outcome {
        StartOutcome::Exited { status, log } => {
            ensure!(!status.success(), "second server exited with {status}");
            ensure!(log.contains("already listening"), "log: {log}");
        }
        StartOutcome::Running(_) => {
            bail!("a second server started on {}", first.socket().display())
        }
    }
    let mut client = first.runtime_client().await?;
    client.version(VersionRequest::default()).await?;
    Ok(())
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_removes_the_socket() -> Result<()> {
    let harness = Harness::start().await?;
    let mut server = harness.server(ServerOptions::default()).await?;
    let socket = server.socket().to_path_buf();
    ensure!(socket.exists());
    server.signal(Signal::SIGTERM)?;
    let exit = server.wait_exit(Duration::from_secs(20)).await?;
    ensure!(exit.success(), "exit {exit}; log:\n{}", server.log());
    ensure!(!socket.exists(), "socket {} left behind", socket.display());
    Ok(())
}

#[tokio::test]
async fn a_wrong_type_fails_start_up_naming_key_and_line() -> Result<()> {
    let harness = Harness::start().await?;
    let outcome = harness
        .try_server(ServerOptions {
            cri_plugin_toml: "stream_server_port = \"not-a-port\"\n".into(),
            ..Default::default()
        })
        .await?;
    match outcome {
        StartOutcome::Exited { status, log } => {
            ensure!(!status.success(), "exit {status}");
            ensure!(
                log.contains("stream_server_port"),
                "log does not name the key: {log}"
            );
            ensure!(log.contains("line"), "log does not name the line: {log}");
        }
        StartOutcome::Running(_) => bail!("server started with a malformed config"),
    }
    Ok(())
}

#[tokio::test]
async fn an_unknown_key_only_warns() -> Result<()> {
    let harness = Harness::start().await?;
    let server = harness
        .server(ServerOptions {
            cri_plugin_toml: "no_such_option = 1\n".into(),
            ..Default::default()
        })
        .await?;
    let st = status(&server, false).await?;
    ensure!(condition(&st, "RuntimeReady")?.status, "{st:?}");
    let log = server.log();
    ensure!(
        log.contains("no_such_option") && log.contains("WARN"),
        "log: {log}"
    );
    Ok(())
}
