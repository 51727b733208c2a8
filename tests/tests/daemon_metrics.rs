//! The daemon's metrics endpoint and RuntimeConfig over the real socket:
//! RPCs show up in the latency histogram with their gRPC code, the text
//! parses as Prometheus exposition, and the endpoint is off by default.

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
