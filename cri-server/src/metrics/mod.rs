//! The daemon's Prometheus metrics: one [`Metrics`] per daemon (no global
//! registry) holding per-RPC latency and request counters (recorded by the
//! tonic layer in `grpc.rs`), the instruments other modules record into
//! (container create by runtime, image pulls, CNI setup/teardown), pods and
//! containers by state (from a callback), and the process metrics of the
//! daemon; served as Prometheus text on `GET /v1/metrics` by `http.rs`.

mod calls;
/// A Prometheus text parser for tests (ours and the integration suites').
#[cfg(any(test, feature = "test-client"))]
pub mod exposition;
mod grpc;
mod http;
mod objects;
mod process;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use objects::ObjectGauges;

pub use calls::{CallCounts, ContainerdCalls};
pub use grpc::{method_label, GrpcMetricsLayer, GrpcMetricsService, MeteredBody};
pub use http::{bind, serve, MetricsError, METRICS_PATHS};
pub use objects::{count_objects, ObjectCounts};
pub use process::ProcessCollector;

/// The prefix of our own metric names.
pub const PREFIX: &str = "cri_server";

/// Latency buckets in seconds (Prometheus' defaults, as go-metrics timers).
const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Image pulls take longer.
const PULL_BUCKETS: [f64; 11] = [
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    method: &'static str,
    code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuntimeLabels {
    runtime: String,
}

/// A container RPC whose latency is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerOp {
    Create = 0,
    Start = 1,
    Stop = 2,
    Remove = 3,
}

impl ContainerOp {
    const ALL: [ContainerOp; 4] = [Self::Create, Self::Start, Self::Stop, Self::Remove];

    fn metric_name(self) -> &'static str {
        match self {
            Self::Create => "container_create_seconds",
            Self::Start => "container_start_seconds",
            Self::Stop => "container_stop_seconds",
            Self::Remove => "container_remove_seconds",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Self::Create => "Time to create a container, by runtime.",
            Self::Start => "Time to start a container, by runtime.",
            Self::Stop => "Time to stop a container, by runtime.",
            Self::Remove => "Time to remove a container, by runtime.",
        }
    }
}

/// Every instrument of the daemon, in one registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    rpc_seconds: HistogramFamily<RpcLabels>,
    rpc_requests: Family<RpcLabels, Counter>,
    /// Per [`ContainerOp`], in its order.
    container_seconds: [HistogramFamily<RuntimeLabels>; 4],
    image_pull_bytes: Counter,
    image_pull_seconds: Histogram,
    cni_setup_seconds: Histogram,
    cni_teardown_seconds: Histogram,
    objects: Arc<ObjectGauges>,
    passthrough_open_streams: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every instrument at zero.
    pub fn new() -> Self {
        Self::with_call_counts(cri_containerd::containerd_call_counts)
    }

    /// As [`Metrics::new`], with containerd's call counts from `calls`.
    pub fn with_call_counts(calls: CallCounts) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(ProcessCollector::for_self()));
        let ours = registry.sub_registry_with_prefix(PREFIX);
        let rpc_seconds = HistogramFamily::<RpcLabels>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        ours.register(
            "grpc_request_duration_seconds",
            "Latency of CRI RPCs by method and gRPC code.",
            rpc_seconds.clone(),
        );
        let rpc_requests = Family::<RpcLabels, Counter>::default();
        ours.register(
            "grpc_requests",
            "CRI RPCs by method and gRPC code (errors have a code other than OK).",
            rpc_requests.clone(),
        );
        let container_seconds = ContainerOp::ALL.map(|op| {
            let family = HistogramFamily::<RuntimeLabels>::new_with_constructor(
                latency_histogram as fn() -> Histogram,
            );
            ours.register(op.metric_name(), op.help(), family.clone());
            family
        });
        let image_pull_bytes = Counter::default();
        ours.register(
            "image_pull_bytes",
            "Bytes fetched by image pulls.",
            image_pull_bytes.clone(),
        );
        let image_pull_seconds = Histogram::new(PULL_BUCKETS);
        ours.register(
            "image_pull_seconds",
            "Time to pull an image.",
            image_pull_seconds.clone(),
        );
        let cni_setup_seconds = latency_histogram();
        ours.register(
            "cni_setup_seconds",
            "Time to set up a pod's network with CNI.",
            cni_setup_seconds.clone(),
        );
        let cni_teardown_seconds = latency_histogram();
        ours.register(
            "cni_teardown_seconds",
            "Time to tear down a pod's network with CNI.",
            cni_teardown_seconds.clone(),
        );
        let passthrough_open_streams = Gauge::default();
        ours.register(
            "containerd_passthrough_open_streams",
            "Calls to containerd's own API being forwarded to containerd right now.",
            passthrough_open_streams.clone(),
        );
        let objects = Arc::new(ObjectGauges::default());
        ours.register_collector(Box::new(Arc::clone(&objects)));
        ours.register_collector(Box::new(ContainerdCalls::new(calls)));
        Self {
            registry,
            rpc_seconds,
            rpc_requests,
            container_seconds,
            image_pull_bytes,
            image_pull_seconds,
            cni_setup_seconds,
            cni_teardown_seconds,
            objects,
            passthrough_open_streams,
        }
    }

    /// The gauge of forwarded calls in flight (shared: clones count into it).
    pub fn passthrough_open_streams(&self) -> Gauge {
        self.passthrough_open_streams.clone()
    }

    /// The tower layer that records every RPC served through it.
    pub fn grpc_layer(self: &Arc<Self>) -> GrpcMetricsLayer {
        GrpcMetricsLayer::new(Arc::clone(self))
    }

    /// Records one RPC; `method` is a [`method_label`].
    pub fn observe_rpc(&self, method: &'static str, code: tonic::Code, elapsed: Duration) {
        let labels = RpcLabels {
            method,
            code: grpc::code_name(code),
        };
        self.rpc_seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        self.rpc_requests.get_or_create(&labels).inc();
    }

    /// containerd's `containerCreateTimer` and its start, stop and remove
    /// twins: labelled with the runtime type (`io.containerd.runc.v2`) as
    /// the reference records them.
    pub fn observe_container(&self, op: ContainerOp, runtime: &str, elapsed: Duration) {
        let labels = RuntimeLabels {
            runtime: runtime.to_owned(),
        };
        self.container_seconds[op as usize]
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// One finished image pull: bytes fetched and how long it took.
    pub fn observe_image_pull(&self, bytes: u64, elapsed: Duration) {
        self.image_pull_bytes.inc_by(bytes);
        self.image_pull_seconds.observe(elapsed.as_secs_f64());
    }

    pub fn observe_cni_setup(&self, elapsed: Duration) {
        self.cni_setup_seconds.observe(elapsed.as_secs_f64());
    }

    pub fn observe_cni_teardown(&self, elapsed: Duration) {
        self.cni_teardown_seconds.observe(elapsed.as_secs_f64());
    }

    /// Where the `pods{state}` and `containers{state}` gauges come from;
    /// called on each scrape (keep it cheap: count store records).
    pub fn set_object_counts(&self, source: impl Fn() -> ObjectCounts + Send + Sync + 'static) {
        self.objects.set_source(Arc::new(source));
    }

    /// Prometheus text format 0.0.4.
    pub fn encode_text(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// OpenMetrics text (for scrapers that ask for it).
    pub fn encode_openmetrics(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests;

impl cri_image::PullObserver for Metrics {
    fn image_pulled(&self, bytes: u64, elapsed: Duration) {
        self.observe_image_pull(bytes, elapsed);
    }
}
