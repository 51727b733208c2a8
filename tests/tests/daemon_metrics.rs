//! The daemon's metrics endpoint and RuntimeConfig over the real socket:
//! RPCs show up in the latency histogram with their gRPC code, the text
//! parses as Prometheus exposition, the endpoint is off by default, and a
//! pod run records the container create, CNI and image pull timers.

use std::net::TcpListener;

use anyhow::{ensure, Context, Result};
use cri_api::v1::{CgroupDriver, RuntimeConfigRequest, StatusRequest, VersionRequest};
use cri_server::metrics::exposition::{find, parse};
use cri_tests::{Harness, ServerOptions};

/// A port nothing listens on right now.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[tokio::test]
async fn rpcs_are_counted_by_method_and_code_on_v1_metrics() -> Result<()> {
    let harness = Harness::start().await?;
    let address = format!("127.0.0.1:{}", free_port()?);
    let server = harness
        .server(ServerOptions {
            cri_server_toml: format!("metrics_address = \"{address}\"\n"),
            ..Default::default()
        })
        .await?;
    let mut client = server.runtime_client().await?;
    for _ in 0..3 {
        client.version(VersionRequest::default()).await?;
        client.status(StatusRequest::default()).await?;
    }
    let config = client
        .runtime_config(RuntimeConfigRequest::default())
        .await?
        .into_inner();
    let driver = config
        .linux
        .context("no linux runtime config")?
        .cgroup_driver;
    ensure!(driver == CgroupDriver::Cgroupfs as i32, "driver {driver}");

    let response = cri_tests::http::request(&address, "GET", "/v1/metrics", &[], b"").await?;
    ensure!(response.status == 200, "{}", response.text());
    let text = response.text();
    let samples = parse(&text).with_context(|| format!("not Prometheus text:\n{text}"))?;
    let version = [
        ("method", "/runtime.v1.RuntimeService/Version"),
        ("code", "OK"),
    ];
    // The harness's readiness probes call Version too.
    let count = find(
        &samples,
        "cri_server_grpc_request_duration_seconds_count",
        &version,
    );
    ensure!(
        count.len() == 1 && count[0].value >= 3.0,
        "{count:?}\n{text}"
    );
    let buckets = find(
        &samples,
        "cri_server_grpc_request_duration_seconds_bucket",
        &version,
    );
    ensure!(!buckets.is_empty(), "no buckets for Version:\n{text}");
    let status = [
        ("method", "/runtime.v1.RuntimeService/Status"),
        ("code", "OK"),
    ];
    let requests = find(&samples, "cri_server_grpc_requests_total", &status);
    ensure!(
        requests.len() == 1 && requests[0].value == 3.0,
        "{requests:?}"
    );
    let config = [
        ("method", "/runtime.v1.RuntimeService/RuntimeConfig"),
        ("code", "OK"),
    ];
    ensure!(
        find(&samples, "cri_server_grpc_requests_total", &config).len() == 1,
        "{text}"
    );
    ensure!(
        !find(&samples, "process_resident_memory_bytes", &[]).is_empty(),
        "{text}"
    );
    ensure!(
        !find(&samples, "cri_server_pods", &[("state", "ready")]).is_empty(),
        "{text}"
    );

    let plain = cri_tests::http::request(&address, "GET", "/metrics", &[], b"").await?;
    ensure!(plain.status == 200, "/metrics: {}", plain.status);
    let missing = cri_tests::http::request(&address, "GET", "/other", &[], b"").await?;
    ensure!(missing.status == 404, "/other: {}", missing.status);
    Ok(())
}

#[tokio::test]
async fn no_metrics_endpoint_by_default_and_systemd_driver_from_runc_options() -> Result<()> {
    let harness = Harness::start().await?;
    let server = harness
        .server(ServerOptions {
            extra_toml:
                "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n\
                         SystemdCgroup = true\n"
                    .into(),
            ..Default::default()
        })
        .await?;
    let mut client = server.runtime_client().await?;
    let config = client
        .runtime_config(RuntimeConfigRequest::default())
        .await?
        .into_inner();
    let driver = config
        .linux
        .context("no linux runtime config")?
        .cgroup_driver;
    ensure!(driver == CgroupDriver::Systemd as i32, "driver {driver}");
    let log = server.log();
    ensure!(
        !log.contains("serving metrics"),
        "metrics served without an address:\n{log}"
    );
    Ok(())
}

#[tokio::test]
async fn pod_container_and_pull_timers_after_a_pod_runs() -> Result<()> {
    use cri_api::v1::*;
    let harness = Harness::start().await?;
    let address = format!("127.0.0.1:{}", free_port()?);
    let server = harness
        .server(ServerOptions {
            cri_server_toml: format!("metrics_address = \"{address}\"\n"),
            cri_plugin_toml: "netns_mounts_under_state_dir = true\n".into(),
            ..Default::default()
        })
        .await?;
    let image = ImageSpec {
        image: harness.images.busybox.clone(),
        ..ImageSpec::default()
    };
    server
        .image_client()
        .await?
        .pull_image(PullImageRequest {
            image: Some(image.clone()),
            ..Default::default()
        })
        .await?;
    let mut client = server.runtime_client().await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    // Everything but Version is Unavailable until recovery finished.
    while let Err(e) = client
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await
    {
        ensure!(
            e.code() == tonic::Code::Unavailable && std::time::Instant::now() < deadline,
            "server not ready: {e}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let logs = tempfile::tempdir()?;
    let pod_config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: "timed".into(),
            uid: "uid-timed".into(),
            namespace: "metrics-test".into(),
            attempt: 0,
        }),
        log_directory: logs.path().display().to_string(),
        ..Default::default()
    };
    let pod = client
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(pod_config.clone()),
            runtime_handler: String::new(),
        })
        .await?
        .into_inner()
        .pod_sandbox_id;
    client
        .create_container(CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(ContainerConfig {
                metadata: Some(ContainerMetadata {
                    name: "sleeper".into(),
                    attempt: 0,
                }),
                image: Some(image),
                args: vec!["sleep".into(), "60".into()],
                ..Default::default()
            }),
            sandbox_config: Some(pod_config),
        })
        .await?;
    client
        .list_container_stats(ListContainerStatsRequest::default())
        .await?;
    client
        .stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await?;
    client
        .remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: pod,
        })
        .await?;

    let response = cri_tests::http::request(&address, "GET", "/v1/metrics", &[], b"").await?;
    ensure!(response.status == 200, "{}", response.text());
    let text = response.text();
    let samples = parse(&text).with_context(|| format!("not Prometheus text:\n{text}"))?;
    let count = |name: &str, labels: &[(&str, &str)]| {
        find(&samples, name, labels)
            .first()
            .map_or(0.0, |s| s.value)
    };
    for (name, labels) in [
        (
            "cri_server_container_create_seconds_count",
            &[("runtime", "io.containerd.runc.v2")][..],
        ),
        ("cri_server_cni_setup_seconds_count", &[]),
        // The pause task was started; the pod's two containers created.
        (
            "cri_server_containerd_calls_total",
            &[
                ("service", "containerd.services.tasks.v1.Tasks"),
                ("method", "Start"),
            ][..],
        ),
        ("cri_server_cni_teardown_seconds_count", &[]),
        ("cri_server_image_pull_seconds_count", &[]),
        (
            "cri_server_grpc_request_duration_seconds_count",
            &[
                ("method", "/runtime.v1.RuntimeService/ListContainerStats"),
                ("code", "OK"),
            ][..],
        ),
    ] {
        ensure!(count(name, labels) >= 1.0, "{name} {labels:?}:\n{text}");
    }
    ensure!(
        count("cri_server_image_pull_bytes_total", &[]) > 0.0,
        "no pulled bytes:\n{text}"
    );
    let created = count(
        "cri_server_containerd_calls_total",
        &[
            ("service", "containerd.services.containers.v1.Containers"),
            ("method", "Create"),
        ],
    );
    ensure!(
        created >= 2.0,
        "containerd Containers/Create {created}:\n{text}"
    );
    Ok(())
}
