//! crictl (cri-tools, a grpc-go client that sends the socket path as
//! `:authority`) drives the daemon's socket directly through a pod's whole
//! life: version, info, pull, images, runp, create, start, ps, inspect,
//! logs, exec, stop, rm, stopp, rmp, and the errors crictl prints for
//! unknown ids.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use cri_tests::clients::Crictl;
use cri_tests::{Harness, ServerOptions};
use serde_json::{json, Value};

fn json(text: &str) -> Result<Value> {
    serde_json::from_str(text).with_context(|| format!("not JSON: {text}"))
}

fn is_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn crictl_runs_a_pod_through_its_whole_life() -> Result<()> {
    let harness = Harness::start().await?;
    let server = harness.server(ServerOptions::default()).await?;
    let crictl = Crictl::new(server.socket())?;
    let dir = tempfile::tempdir()?;

    let version = crictl.ok(&["version"]).await?;
    ensure!(version.contains("RuntimeName:  cri-server"), "{version}");
    ensure!(version.contains("RuntimeApiVersion:  v1"), "{version}");

    let info = json(&crictl.ok(&["info"]).await?)?;
    let conditions = info["status"]["conditions"]
        .as_array()
        .context("info has status.conditions")?;
    for kind in ["RuntimeReady", "NetworkReady"] {
        ensure!(
            conditions
                .iter()
                .any(|c| c["type"] == kind && c["status"] == true),
            "{kind} in {info}"
        );
    }

    let image = harness.images.busybox.clone();
    let pulled = crictl.ok(&["pull", &image]).await?;
    ensure!(
        pulled.starts_with("Image is up to date for sha256:"),
        "{pulled}"
    );
    let images = crictl.ok(&["images", "-o", "json"]).await?;
    let images = json(&images)?;
    ensure!(
        images["images"]
            .as_array()
            .is_some_and(|all| all.iter().any(|i| i["repoTags"]
                .as_array()
                .is_some_and(|tags| tags.iter().any(|t| t == image.as_str())))),
        "{image} in {images}"
    );

    let pod_json = dir.path().join("pod.json");
    let ctr_json = dir.path().join("container.json");
    std::fs::write(
        &pod_json,
        json!({
            "metadata": {"name": "crictl-pod", "namespace": "crictl", "uid": "crictl-uid", "attempt": 0},
            "log_directory": dir.path().join("logs").display().to_string(),
            "labels": {"suite": "crictl"},
            "linux": {}
        })
        .to_string(),
    )?;
    std::fs::write(
        &ctr_json,
        json!({
            "metadata": {"name": "talker"},
            "image": {"image": image},
            "command": ["sh", "-c", "echo hello from crictl; exec sleep 3600"],
            "log_path": "talker.log",
            "linux": {}
        })
        .to_string(),
    )?;
    let (pod_json, ctr_json) = (
        pod_json.display().to_string(),
        ctr_json.display().to_string(),
    );

    let pod = crictl.ok(&["runp", &pod_json]).await?;
    ensure!(is_id(&pod), "runp printed {pod}");
    let pods = crictl
        .ok(&["pods", "-q", "--label", "suite=crictl"])
        .await?;
    ensure!(pods == pod, "pods: {pods}");
    let ctr = crictl.ok(&["create", &pod, &ctr_json, &pod_json]).await?;
    ensure!(is_id(&ctr), "create printed {ctr}");
    let started = crictl.ok(&["start", &ctr]).await?;
    ensure!(started == ctr, "start printed {started}");

    let ps = json(&crictl.ok(&["ps", "-o", "json", "--pod", &pod]).await?)?;
    let listed = &ps["containers"][0];
    ensure!(listed["id"] == ctr.as_str(), "{ps}");
    ensure!(listed["state"] == "CONTAINER_RUNNING", "{ps}");
    let inspected = json(&crictl.ok(&["inspect", &ctr]).await?)?;
    ensure!(
        inspected["status"]["state"] == "CONTAINER_RUNNING",
        "{inspected}"
    );
    ensure!(
        inspected["info"]["pid"].as_u64().is_some_and(|p| p > 0),
        "{inspected}"
    );
    let inspectp = json(&crictl.ok(&["inspectp", &pod]).await?)?;
    ensure!(inspectp["status"]["state"] == "SANDBOX_READY", "{inspectp}");
    ensure!(
        inspectp["status"]["network"]["ip"]
            .as_str()
            .is_some_and(|ip| !ip.is_empty()),
        "a pod IP on the bridge: {inspectp}"
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let logs = crictl.run(&["logs", &ctr]).await?;
        if logs.stdout.contains("hello from crictl") {
            break;
        }
        ensure!(Instant::now() < deadline, "logs: {logs:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let echoed = crictl
        .ok(&["exec", "-s", &ctr, "echo", "exec", "works"])
        .await?;
    ensure!(echoed == "exec works", "exec -s printed {echoed:?}");
    let failed = crictl
        .run(&["exec", "-s", &ctr, "sh", "-c", "exit 3"])
        .await?;
    ensure!(!failed.success, "a failing exec fails crictl: {failed:?}");

    // Unfiltered lists (the kubelet's relist) are answered from kept
    // bytes while nothing changes; each change shows in the next one.
    let states = |list: serde_json::Value, key: &str| -> Vec<(String, String)> {
        list[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    c["id"].as_str().unwrap_or_default().to_owned(),
                    c["state"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    for _ in 0..2 {
        let all = json(&crictl.ok(&["ps", "-a", "-o", "json"]).await?)?;
        let want = vec![(ctr.clone(), "CONTAINER_RUNNING".to_owned())];
        ensure!(states(all.clone(), "containers") == want, "{all}");
    }
    crictl.ok(&["stop", "--timeout", "5", &ctr]).await?;
    let stopped = json(&crictl.ok(&["inspect", &ctr]).await?)?;
    ensure!(
        stopped["status"]["state"] == "CONTAINER_EXITED",
        "{stopped}"
    );
    let all = json(&crictl.ok(&["ps", "-a", "-o", "json"]).await?)?;
    let want = vec![(ctr.clone(), "CONTAINER_EXITED".to_owned())];
    ensure!(states(all.clone(), "containers") == want, "{all}");
    crictl.ok(&["rm", &ctr]).await?;
    ensure!(
        crictl
            .ok(&["ps", "-a", "-q", "--pod", &pod])
            .await?
            .is_empty(),
        "container removed"
    );
    let pods = json(&crictl.ok(&["pods", "-o", "json"]).await?)?;
    ensure!(
        states(pods.clone(), "items") == vec![(pod.clone(), "SANDBOX_READY".to_owned())],
        "{pods}"
    );
    let stopp = crictl.ok(&["stopp", &pod]).await?;
    ensure!(stopp == format!("Stopped sandbox {pod}"), "{stopp}");
    let pods = json(&crictl.ok(&["pods", "-o", "json"]).await?)?;
    ensure!(
        states(pods.clone(), "items") == vec![(pod.clone(), "SANDBOX_NOTREADY".to_owned())],
        "{pods}"
    );
    let rmp = crictl.ok(&["rmp", &pod]).await?;
    ensure!(rmp == format!("Removed sandbox {pod}"), "{rmp}");
    ensure!(crictl.ok(&["pods", "-q"]).await?.is_empty(), "no pods left");

    // Unknown ids: the gRPC code arrives as crictl prints it.
    let unknown = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    for args in [
        vec!["inspect", unknown],
        vec!["inspectp", unknown],
        vec!["start", unknown],
        vec!["logs", unknown],
    ] {
        let stderr = crictl.fails(&args).await?;
        ensure!(
            stderr.contains("code = NotFound"),
            "crictl {args:?}: {stderr}"
        );
    }
    let stderr = crictl.fails(&["runp", "/nonexistent/pod.json"]).await?;
    ensure!(stderr.contains("/nonexistent/pod.json"), "{stderr}");
    Ok(())
}
