//! Metrics tests: the text output parses, instruments show up with their
//! labels, and an in-process tonic round trip through the layer records
//! method and code.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use cri_api::v1::runtime_service_client::RuntimeServiceClient;
use cri_api::v1::runtime_service_server::{RuntimeService, RuntimeServiceServer};
use cri_api::v1::*;
use tonic::transport::Server;
use tonic::{Request, Response, Status};

use super::exposition::{find, parse};
use super::*;

fn scrape(metrics: &Metrics) -> Vec<exposition::Sample> {
    let text = metrics.encode_text().unwrap();
    parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn value(samples: &[exposition::Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = find(samples, name, labels);
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0].value
}

#[test]
fn instruments_are_exported_as_prometheus_text() {
    let metrics = Metrics::new();
    metrics.observe_container(
        ContainerOp::Create,
        "io.containerd.runc.v2",
        Duration::from_millis(30),
    );
    metrics.observe_image_pull(1234, Duration::from_secs(3));
    metrics.observe_image_pull(66, Duration::from_secs(1));
    metrics.observe_cni_setup(Duration::from_millis(200));
    metrics.observe_cni_teardown(Duration::from_millis(20));
    metrics.observe_rpc(
        "/runtime.v1.RuntimeService/Version",
        tonic::Code::Ok,
        Duration::from_millis(1),
    );
    let s = scrape(&metrics);
    let runtime = [("runtime", "io.containerd.runc.v2")];
    assert_eq!(
        value(&s, "cri_server_container_create_seconds_count", &runtime),
        1.0
    );
    let le = [("runtime", "io.containerd.runc.v2"), ("le", "0.025")];
    assert_eq!(
        value(&s, "cri_server_container_create_seconds_bucket", &le),
        0.0
    );
    assert_eq!(value(&s, "cri_server_image_pull_bytes_total", &[]), 1300.0);
    assert_eq!(value(&s, "cri_server_image_pull_seconds_count", &[]), 2.0);
    assert_eq!(value(&s, "cri_server_cni_setup_seconds_sum", &[]), 0.2);
    assert_eq!(value(&s, "cri_server_cni_teardown_seconds_count", &[]), 1.0);
    let rpc = [
        ("method", "/runtime.v1.RuntimeService/Version"),
        ("code", "OK"),
    ];
    assert_eq!(value(&s, "cri_server_grpc_requests_total", &rpc), 1.0);
    assert_eq!(
        value(&s, "cri_server_grpc_request_duration_seconds_count", &rpc),
        1.0
    );
    // The daemon's process metrics, unprefixed.
    assert!(value(&s, "process_resident_memory_bytes", &[]) > 0.0);
    assert!(value(&s, "process_open_fds", &[]) > 0.0);
    assert!(value(&s, "process_start_time_seconds", &[]) > 1.0e9);
    assert_eq!(find(&s, "process_cpu_seconds_total", &[]).len(), 1);
    // OpenMetrics parses too and ends with # EOF.
    let om = metrics.encode_openmetrics().unwrap();
    assert!(om.ends_with("# EOF\n"));
    parse(&om).unwrap();
}

#[test]
fn pods_and_containers_by_state_come_from_the_callback() {
    let metrics = Metrics::new();
    assert!(
        find(&scrape(&metrics), "cri_server_pods", &[]).is_empty(),
        "no source yet"
    );
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    metrics.set_object_counts(move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        ObjectCounts {
            pods: vec![("ready", 2), ("notready", 1)],
            containers: vec![("running", 3), ("exited", 0)],
        }
    });
    let s = scrape(&metrics);
    assert_eq!(value(&s, "cri_server_pods", &[("state", "ready")]), 2.0);
    assert_eq!(value(&s, "cri_server_pods", &[("state", "notready")]), 1.0);
    assert_eq!(
        value(&s, "cri_server_containers", &[("state", "running")]),
        3.0
    );
    assert_eq!(
        value(&s, "cri_server_containers", &[("state", "exited")]),
        0.0
    );
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "once per scrape"
    );
}

#[test]
fn unknown_methods_share_one_label() {
    assert_eq!(
        method_label("/runtime.v1.RuntimeService/Version"),
        "/runtime.v1.RuntimeService/Version"
    );
    assert_eq!(
        method_label("/runtime.v1.ImageService/PullImage"),
        "/runtime.v1.ImageService/PullImage"
    );
    assert_eq!(method_label("/runtime.v1.RuntimeService/Bogus"), "unknown");
    assert_eq!(method_label("/x.Y/Z"), "unknown");
}

/// Answers Version, fails Status with NotFound, and nothing else.
#[derive(Debug)]
struct Fake;

type EventStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<ContainerEventResponse, Status>> + Send>>;

#[tonic::async_trait]
impl RuntimeService for Fake {
    async fn version(
        &self,
        _: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse::default()))
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        Err(Status::not_found("no status here"))
    }

    type GetContainerEventsStream = EventStream;

    crate::service::not_implemented! {
        run_pod_sandbox(RunPodSandboxRequest) -> RunPodSandboxResponse = "RunPodSandbox";
        stop_pod_sandbox(StopPodSandboxRequest) -> StopPodSandboxResponse = "StopPodSandbox";
        remove_pod_sandbox(RemovePodSandboxRequest) -> RemovePodSandboxResponse = "RemovePodSandbox";
        pod_sandbox_status(PodSandboxStatusRequest) -> PodSandboxStatusResponse = "PodSandboxStatus";
        list_pod_sandbox(ListPodSandboxRequest) -> ListPodSandboxResponse = "ListPodSandbox";
        create_container(CreateContainerRequest) -> CreateContainerResponse = "CreateContainer";
        start_container(StartContainerRequest) -> StartContainerResponse = "StartContainer";
        stop_container(StopContainerRequest) -> StopContainerResponse = "StopContainer";
        remove_container(RemoveContainerRequest) -> RemoveContainerResponse = "RemoveContainer";
        list_containers(ListContainersRequest) -> ListContainersResponse = "ListContainers";
        container_status(ContainerStatusRequest) -> ContainerStatusResponse = "ContainerStatus";
        update_container_resources(UpdateContainerResourcesRequest) -> UpdateContainerResourcesResponse = "UpdateContainerResources";
        reopen_container_log(ReopenContainerLogRequest) -> ReopenContainerLogResponse = "ReopenContainerLog";
        exec_sync(ExecSyncRequest) -> ExecSyncResponse = "ExecSync";
        exec(ExecRequest) -> ExecResponse = "Exec";
        attach(AttachRequest) -> AttachResponse = "Attach";
        port_forward(PortForwardRequest) -> PortForwardResponse = "PortForward";
        container_stats(ContainerStatsRequest) -> ContainerStatsResponse = "ContainerStats";
        list_container_stats(ListContainerStatsRequest) -> ListContainerStatsResponse = "ListContainerStats";
        pod_sandbox_stats(PodSandboxStatsRequest) -> PodSandboxStatsResponse = "PodSandboxStats";
        list_pod_sandbox_stats(ListPodSandboxStatsRequest) -> ListPodSandboxStatsResponse = "ListPodSandboxStats";
        update_runtime_config(UpdateRuntimeConfigRequest) -> UpdateRuntimeConfigResponse = "UpdateRuntimeConfig";
        checkpoint_container(CheckpointContainerRequest) -> CheckpointContainerResponse = "CheckpointContainer";
        get_container_events(GetEventsRequest) -> EventStream = "GetContainerEvents";
        list_metric_descriptors(ListMetricDescriptorsRequest) -> ListMetricDescriptorsResponse = "ListMetricDescriptors";
        list_pod_sandbox_metrics(ListPodSandboxMetricsRequest) -> ListPodSandboxMetricsResponse = "ListPodSandboxMetrics";
        runtime_config(RuntimeConfigRequest) -> RuntimeConfigResponse = "RuntimeConfig";
    }
}

#[tokio::test]
async fn the_layer_records_method_and_code_of_a_tonic_round_trip() {
    let metrics = Arc::new(Metrics::new());
    let (client_io, server_io) = crate::test_channel::pipe();
    let server = tokio::spawn(
        Server::builder()
            .layer(metrics.grpc_layer())
            .add_service(RuntimeServiceServer::new(Fake))
            .serve_with_incoming(tokio_stream::once(Ok::<_, std::io::Error>(server_io))),
    );
    let mut client = RuntimeServiceClient::new(crate::test_channel::connect(client_io).await);
    for _ in 0..3 {
        client.version(VersionRequest::default()).await.unwrap();
    }
    let err = client.status(StatusRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = client
        .runtime_config(RuntimeConfigRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);

    let s = scrape(&metrics);
    let version = [
        ("method", "/runtime.v1.RuntimeService/Version"),
        ("code", "OK"),
    ];
    assert_eq!(value(&s, "cri_server_grpc_requests_total", &version), 3.0);
    assert_eq!(
        value(
            &s,
            "cri_server_grpc_request_duration_seconds_count",
            &version
        ),
        3.0
    );
    let status = [
        ("method", "/runtime.v1.RuntimeService/Status"),
        ("code", "NotFound"),
    ];
    assert_eq!(value(&s, "cri_server_grpc_requests_total", &status), 1.0);
    let config = [
        ("method", "/runtime.v1.RuntimeService/RuntimeConfig"),
        ("code", "Unimplemented"),
    ];
    assert_eq!(value(&s, "cri_server_grpc_requests_total", &config), 1.0);
    assert!(find(
        &s,
        "cri_server_grpc_requests_total",
        &[("code", "Canceled")]
    )
    .is_empty());
    server.abort();
}

#[tokio::test]
async fn the_endpoint_serves_both_paths_and_refuses_others() {
    let metrics = Arc::new(Metrics::new());
    metrics.observe_cni_setup(Duration::from_millis(5));
    let listener = bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(serve(listener, metrics, cancel.clone()));
    for path in METRICS_PATHS {
        let (status, body) = http_get(address, path).await;
        assert_eq!(status, 200, "{path}");
        let samples = parse(&body).unwrap();
        assert_eq!(
            find(&samples, "cri_server_cni_setup_seconds_count", &[]).len(),
            1
        );
    }
    assert_eq!(http_get(address, "/nope").await.0, 404);
    cancel.cancel();
    server.await.unwrap();
    let taken = bind(&address.to_string()).await;
    assert!(taken.is_ok(), "the listener was released");
}

/// A bare HTTP/1.0 GET; returns the status and the body.
async fn http_get(address: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

fn some_calls() -> Vec<(&'static str, &'static str, u64)> {
    vec![
        ("containerd.services.containers.v1.Containers", "Get", 3),
        ("containerd.services.tasks.v1.Tasks", "Start", 1),
    ]
}

#[test]
fn containerd_calls_are_counters_by_service_and_method() {
    let metrics = Metrics::with_call_counts(some_calls);
    let s = scrape(&metrics);
    let name = "cri_server_containerd_calls_total";
    assert_eq!(
        value(
            &s,
            name,
            &[
                ("service", "containerd.services.containers.v1.Containers"),
                ("method", "Get")
            ]
        ),
        3.0
    );
    assert_eq!(
        value(
            &s,
            name,
            &[
                ("service", "containerd.services.tasks.v1.Tasks"),
                ("method", "Start")
            ]
        ),
        1.0
    );
    let none = Metrics::with_call_counts(Vec::new);
    assert!(find(&scrape(&none), name, &[]).is_empty());
}
