//! containerd's own API on the CRI socket, used by Debian's `ctr` (a Go
//! containerd client nobody here wrote): every command prints the same
//! through the daemon's socket as on containerd's own; image pulls and
//! content imports stream through; `ctr events` streams while other
//! commands run; a cancelled or killed client leaves no forwarded stream
//! open; with containerd stopped a forwarded call fails fast with
//! Unavailable and works again once containerd is back; the CRI keeps
//! answering on the same socket throughout; and the passthrough can be
//! turned off.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cri_api::v1::{StatusRequest, VersionRequest};
use cri_server::metrics::exposition::{find, parse};
use cri_tests::clients::Crictl;
use cri_tests::components::{Component, CHILD_PATH};
use cri_tests::{CriServer, Harness, ServerOptions};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// The namespace the ctr commands work in (not the CRI's).
const NS: &str = "passthrough-test";

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn ctr_command(address: &Path, args: &[&str]) -> Result<Command> {
    let mut cmd = Command::new(Component::Ctr.path()?);
    cmd.arg("--address")
        .arg(address)
        .args(args)
        .env("PATH", CHILD_PATH)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    Ok(cmd)
}

async fn ctr(address: &Path, args: &[&str]) -> Result<Output> {
    Ok(ctr_command(address, args)?.output().await?)
}

async fn ctr_ok(address: &Path, args: &[&str]) -> Result<String> {
    let out = ctr(address, args).await?;
    if !out.status.success() {
        bail!(
            "ctr --address {} {} failed: {}{}",
            address.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `args` through the daemon and directly against containerd; both
/// must succeed and print the same.
async fn same_both_ways(ours: &Path, containerd: &Path, args: &[&str]) -> Result<String> {
    let through = ctr_ok(ours, args).await?;
    let direct = ctr_ok(containerd, args).await?;
    ensure!(
        through == direct,
        "ctr {} differs\nthrough cri-server:\n{through}\ndirect:\n{direct}",
        args.join(" ")
    );
    Ok(through)
}

/// The `cri_server_containerd_passthrough_open_streams` gauge.
async fn open_streams(metrics: &str) -> Result<f64> {
    let response = cri_tests::http::request(metrics, "GET", "/v1/metrics", &[], b"").await?;
    let text = response.text();
    let samples = parse(&text).with_context(|| format!("not Prometheus text:\n{text}"))?;
    let found = find(
        &samples,
        "cri_server_containerd_passthrough_open_streams",
        &[],
    );
    ensure!(found.len() == 1, "gauge missing:\n{text}");
    Ok(found[0].value)
}

async fn wait_open_streams(metrics: &str, want: f64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = open_streams(metrics).await?;
        if now == want {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "open forwarded streams stayed at {now}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn server_with_metrics(harness: &Harness) -> Result<(CriServer, String)> {
    let metrics = format!("127.0.0.1:{}", free_port()?);
    let server = harness
        .server(ServerOptions {
            cri_server_toml: format!("metrics_address = \"{metrics}\"\n"),
            ..ServerOptions::default()
        })
        .await?;
    Ok((server, metrics))
}

#[tokio::test]
async fn ctr_through_the_cri_socket_matches_ctr_on_containerd() -> Result<()> {
    let harness = Harness::start().await?;
    let (server, metrics) = server_with_metrics(&harness).await?;
    let ours = server.socket().to_path_buf();
    let direct = harness.containerd.socket().to_path_buf();

    for args in [&["version"][..], &["plugins", "ls"], &["namespaces", "ls"]] {
        same_both_ways(&ours, &direct, args).await?;
    }

    // `ctr events` streams through the daemon while the commands below run.
    let mut events = ctr_command(&ours, &["events"])?
        .stdout(Stdio::piped())
        .spawn()?;

    let image = harness.images.busybox.clone();
    let pulled = ctr_ok(&ours, &["-n", NS, "images", "pull", "--plain-http", &image]).await?;
    ensure!(pulled.contains("done"), "{pulled}");
    let images = same_both_ways(&ours, &direct, &["-n", NS, "images", "ls"]).await?;
    ensure!(images.contains(&image), "{images}");
    let digests = same_both_ways(&ours, &direct, &["-n", NS, "content", "ls", "-q"]).await?;
    ensure!(digests.lines().count() >= 3, "{digests}");
    // Whole `content ls` lines but for the AGE column (a second may tick
    // between the two runs) and the order of labels (ctr prints a Go map).
    let rows = |text: String| -> Vec<(String, String, Vec<String>)> {
        text.lines()
            .skip(1)
            .map(|l| {
                let cols: Vec<&str> = l.split('\t').filter(|c| !c.is_empty()).collect();
                let mut labels: Vec<String> = cols
                    .get(3)
                    .map(|l| l.split(',').map(str::to_owned).collect())
                    .unwrap_or_default();
                labels.sort();
                let col = |i: usize| cols.get(i).copied().unwrap_or_default().to_owned();
                (col(0), col(1), labels)
            })
            .collect()
    };
    let (through, direct_rows) = (
        rows(ctr_ok(&ours, &["-n", NS, "content", "ls"]).await?),
        rows(ctr_ok(&direct, &["-n", NS, "content", "ls"]).await?),
    );
    ensure!(
        through == direct_rows,
        "content ls differs:\n{through:?}\n{direct_rows:?}"
    );

    let flags = harness.containerd.ctr_run_flags();
    let mut run: Vec<&str> = vec!["-n", NS, "run", "-d"];
    run.extend(flags.iter().map(String::as_str));
    run.extend([image.as_str(), "passthrough-bb", "sleep", "600"]);
    ctr_ok(&ours, &run).await?;
    let tasks = same_both_ways(&ours, &direct, &["-n", NS, "tasks", "ls"]).await?;
    ensure!(
        tasks.contains("passthrough-bb") && tasks.contains("RUNNING"),
        "{tasks}"
    );
    // The CRI answers on the same socket meanwhile.
    let mut rt = server.runtime_client().await?;
    rt.version(VersionRequest::default()).await?;
    let crictl = Crictl::new(&ours)?;
    ensure!(crictl.ok(&["version"]).await?.contains("cri-server"));

    ctr_ok(
        &ours,
        &["-n", NS, "tasks", "kill", "-s", "SIGKILL", "passthrough-bb"],
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ctr_ok(&ours, &["-n", NS, "tasks", "ls"])
        .await?
        .contains("STOPPED")
    {
        ensure!(Instant::now() < deadline, "task did not stop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ctr_ok(&ours, &["-n", NS, "tasks", "delete", "passthrough-bb"]).await?;
    ctr_ok(&ours, &["-n", NS, "containers", "rm", "passthrough-bb"]).await?;
    let left = same_both_ways(&ours, &direct, &["-n", NS, "containers", "ls", "-q"]).await?;
    ensure!(left.trim().is_empty(), "{left}");

    // Cancel `ctr events` (SIGKILL: its stream just goes away); what it
    // printed covers everything above.
    events.start_kill()?;
    let printed = events.wait_with_output().await?;
    let printed = String::from_utf8_lossy(&printed.stdout);
    for topic in [
        "/images/create",
        "/tasks/start",
        "/tasks/exit",
        "/containers/delete",
    ] {
        ensure!(
            printed.lines().any(|l| l.contains(NS) && l.contains(topic)),
            "{topic} not streamed:\n{printed}"
        );
    }
    wait_open_streams(&metrics, 0.0).await?;
    Ok(())
}

#[tokio::test]
async fn a_client_killed_mid_upload_leaves_no_stream_open() -> Result<()> {
    let harness = Harness::start().await?;
    let (server, metrics) = server_with_metrics(&harness).await?;
    // `ctr content ingest` streams stdin into a content Write; the client
    // dies with half of the announced 8 MiB sent.
    let mut ingest = ctr_command(
        server.socket(),
        &[
            "-n",
            NS,
            "content",
            "ingest",
            "--expected-size",
            "8388608",
            "passthrough-half-upload",
        ],
    )?
    .stdin(Stdio::piped())
    .spawn()?;
    let mut stdin = ingest.stdin.take().context("ingest stdin")?;
    stdin.write_all(&vec![7u8; 4 << 20]).await?;
    stdin.flush().await?;
    wait_open_streams(&metrics, 1.0).await?;
    ingest.start_kill()?;
    ingest.wait().await?;
    drop(stdin);
    wait_open_streams(&metrics, 0.0).await?;
    // The half-written ingest is containerd's to expire; the daemon holds
    // nothing. A whole 20 MiB blob goes up through the same socket (a
    // client-streaming Write) and comes back byte for byte (a
    // server-streaming Read).
    let blob: Vec<u8> = (0..20u32 << 20).map(|i| (i % 251) as u8).collect();
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&blob)));
    let mut full = ctr_command(
        server.socket(),
        &[
            "-n",
            NS,
            "content",
            "ingest",
            "--expected-digest",
            &digest,
            "passthrough-full-upload",
        ],
    )?
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()?;
    let mut stdin = full.stdin.take().context("ingest stdin")?;
    stdin.write_all(&blob).await?;
    drop(stdin);
    let out = full.wait_with_output().await?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = ctr_command(server.socket(), &["-n", NS, "content", "get", &digest])?
        .stdout(Stdio::piped())
        .output()
        .await?;
    ensure!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    ensure!(
        read.stdout == blob,
        "content get returned {} bytes, not the blob",
        read.stdout.len()
    );
    wait_open_streams(&metrics, 0.0).await?;
    Ok(())
}

#[tokio::test]
async fn containerd_down_is_unavailable_fast_and_forwarding_resumes() -> Result<()> {
    let mut harness = Harness::start().await?;
    let server = harness.server(ServerOptions::default()).await?;
    let ours = server.socket().to_path_buf();
    ctr_ok(&ours, &["version"]).await?;

    harness.containerd.stop().await?;
    let started = Instant::now();
    let out = ctr(&ours, &["--timeout", "10s", "version"]).await?;
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success(),
        "ctr version worked with containerd down"
    );
    ensure!(took < Duration::from_secs(2), "took {took:?}: {stderr}");
    ensure!(stderr.contains("code = Unavailable"), "{stderr}");
    ensure!(
        stderr.contains(&harness.containerd.socket().display().to_string()),
        "names containerd's address: {stderr}"
    );
    // The CRI still answers: Version, and Status saying the runtime is down.
    let mut rt = server.runtime_client().await?;
    rt.version(VersionRequest::default()).await?;
    let status = rt
        .status(StatusRequest { verbose: false })
        .await?
        .into_inner();
    let runtime_ready = status
        .status
        .context("status")?
        .conditions
        .iter()
        .any(|c| c.r#type == "RuntimeReady" && c.status);
    ensure!(!runtime_ready, "RuntimeReady with containerd down");

    harness.containerd.start_again().await?;
    let version = ctr_ok(&ours, &["version"]).await?;
    ensure!(version.contains("Server:"), "{version}");
    Ok(())
}

#[tokio::test]
async fn passthrough_off_answers_unimplemented_and_status_says_so() -> Result<()> {
    let harness = Harness::start().await?;
    let on = harness.server(ServerOptions::default()).await?;
    let off = harness
        .server(ServerOptions {
            extra_args: vec!["--no-containerd-passthrough".into()],
            ..ServerOptions::default()
        })
        .await?;

    let out = ctr(off.socket(), &["version"]).await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "ctr version through a closed door");
    ensure!(stderr.contains("code = Unimplemented"), "{stderr}");

    for (server, want) in [(&on, true), (&off, false)] {
        let mut rt = server.runtime_client().await?;
        let status = rt
            .status(StatusRequest { verbose: true })
            .await?
            .into_inner();
        let config: serde_json::Value =
            serde_json::from_str(status.info.get("config").context("config in info")?)?;
        ensure!(
            config["containerdPassthrough"] == want,
            "containerdPassthrough {want}: {config}"
        );
    }
    Ok(())
}
