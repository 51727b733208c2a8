//! Installs the tracing subscriber: text or JSON lines on stderr and, when
//! containerd's OTLP tracing plugin has an endpoint, an OpenTelemetry layer
//! exporting spans over OTLP (gRPC or HTTP/protobuf) through a batch
//! processor, with the W3C trace-context propagator installed globally so
//! containerd calls carry `traceparent`.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

use cri_config::{LogFormat, OtlpProtocol, TracingConfig};

/// The instrumentation scope our spans are reported under.
const TRACER_NAME: &str = "cri-server";
/// The target of cri-containerd's per-call client spans (`debug` level,
/// exported but not logged at the default level).
const CONTAINERD_CALL_TARGET: &str = "cri_containerd::traced";
/// How long one export may take before it is abandoned.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("log level {level:?}: {message}")]
    BadFilter { level: String, message: String },
    #[error("install tracing subscriber: {0}")]
    Install(String),
    #[error("otlp exporter for {endpoint}: {message}")]
    Exporter { endpoint: String, message: String },
}

/// What must outlive the daemon for spans to reach the collector.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still queued and stops the exporter; a no-op when
    /// tracing is off.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        // The SDK blocks while its worker thread exports; keep that off the
        // async workers that drive the exporter's connection.
        let result = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("flush traces: {e}"),
            Err(e) => eprintln!("flush traces: {e}"),
        }
    }
}

/// Installs the global subscriber with `level` as an `EnvFilter`
/// directive (`RUST_LOG`, when set, wins) for the log lines, and the OTLP
/// layer when `tracing` has an endpoint (needs a tokio runtime).
pub fn init(
    level: &str,
    format: LogFormat,
    tracing: &TracingConfig,
) -> Result<Telemetry, TelemetryError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => EnvFilter::try_new(env),
        _ => EnvFilter::try_new(level),
    }
    .map_err(|e| TelemetryError::BadFilter {
        level: level.to_owned(),
        message: e.to_string(),
    })?;
    let log_layer = match format {
        LogFormat::Text => fmt::layer().with_writer(std::io::stderr).boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed(),
    }
    .with_filter(filter);
    let provider = tracing.enabled().then(|| provider(tracing)).transpose()?;
    let otel_layer = provider.as_ref().map(|provider| {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let spans = Targets::new()
            .with_default(Level::INFO)
            .with_target(CONTAINERD_CALL_TARGET, Level::DEBUG);
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(TRACER_NAME))
            .with_filter(spans)
    });
    tracing_subscriber::registry()
        .with(log_layer)
        .with(otel_layer)
        .try_init()
        .map_err(|e| TelemetryError::Install(e.to_string()))?;
    if let (Some(endpoint), true) = (&tracing.endpoint, provider.is_some()) {
        tracing::info!(
            endpoint = %endpoint,
            protocol = tracing.protocol.as_str(),
            sampling_ratio = tracing.sampling_ratio,
            "exporting traces over otlp"
        );
    }
    Ok(Telemetry { provider })
}

/// The tracer provider exporting to `config.endpoint` in batches.
fn provider(config: &TracingConfig) -> Result<SdkTracerProvider, TelemetryError> {
    let endpoint = config.endpoint.as_deref().unwrap_or_default();
    let url = endpoint_url(endpoint, config.protocol, config.insecure);
    let failed = |e: opentelemetry_otlp::ExporterBuildError| TelemetryError::Exporter {
        endpoint: url.clone(),
        message: e.to_string(),
    };
    let exporter = match config.protocol {
        OtlpProtocol::Grpc => {
            let mut builder = SpanExporter::builder()
                .with_tonic()
                .with_endpoint(url.clone())
                .with_timeout(EXPORT_TIMEOUT);
            if url.starts_with("https://") {
                builder = builder
                    .with_tls_config(tonic::transport::ClientTlsConfig::new().with_native_roots());
            }
            builder.build().map_err(failed)?
        }
        OtlpProtocol::HttpProtobuf => SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(failed)?,
    };
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sampling_ratio)));
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler)
        .with_resource(
            Resource::builder()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .build())
}

/// containerd's endpoints are `host:port`; the exporters want URLs. The
/// scheme follows `insecure`; HTTP gets OTLP's `/v1/traces` path unless the
/// endpoint names one.
fn endpoint_url(endpoint: &str, protocol: OtlpProtocol, insecure: bool) -> String {
    let url = if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        let scheme = if insecure { "http" } else { "https" };
        format!("{scheme}://{endpoint}")
    };
    match protocol {
        OtlpProtocol::Grpc => url,
        OtlpProtocol::HttpProtobuf => {
            let after_scheme = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
            match after_scheme.split_once('/') {
                Some((_, path)) if !path.is_empty() => url,
                _ => format!("{}/v1/traces", url.trim_end_matches('/')),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(endpoint: &str, protocol: OtlpProtocol, insecure: bool, expected: &str) {
        assert_eq!(endpoint_url(endpoint, protocol, insecure), expected);
    }

    #[test]
    fn endpoints_become_urls() {
        use OtlpProtocol::{Grpc, HttpProtobuf};
        check("127.0.0.1:4317", Grpc, true, "http://127.0.0.1:4317");
        check("collector:4317", Grpc, false, "https://collector:4317");
        check("http://c:4317", Grpc, false, "http://c:4317");
        check("c:4318", HttpProtobuf, true, "http://c:4318/v1/traces");
        check(
            "https://c:4318/",
            HttpProtobuf,
            true,
            "https://c:4318/v1/traces",
        );
        check(
            "http://c/otlp/traces",
            HttpProtobuf,
            false,
            "http://c/otlp/traces",
        );
    }
}
