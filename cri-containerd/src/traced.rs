//! The transport every containerd client call goes through: a span per
//! call, a child of whatever span the caller is in, and that span's trace
//! context sent to containerd as W3C `traceparent` metadata (what the Go
//! client's otelgrpc interceptor does), so containerd's own spans join the
//! same trace.
//!
//! The context is injected with the globally installed
//! `TextMapPropagator`; with none installed (tracing off) nothing is added.
//! The span is at `debug` level under this module's target, so it exists
//! only when a subscriber layer (the OTLP one) asks for it.
//!
//! Every call is also counted per method (`calls.rs`) and logged as a
//! `debug` event under the target [`CALL_LOG_TARGET`], in the span of the
//! caller (the CRI RPC's), so `RUST_LOG=cri_containerd::calls=debug` shows
//! the containerd calls each RPC makes.

use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::Injector;
use tonic::body::Body;
use tonic::transport::Channel;
use tracing::instrument::Instrumented;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::calls::{self, split_path};

/// The target of the per-call `debug` event.
pub const CALL_LOG_TARGET: &str = "cri_containerd::calls";

/// [`Channel`] with a client span and trace context on every call.
#[derive(Clone, Debug)]
pub(crate) struct TracedChannel {
    inner: Channel,
}

impl TracedChannel {
    pub(crate) fn new(inner: Channel) -> Self {
        Self { inner }
    }
}

impl tower::Service<http::Request<Body>> for TracedChannel {
    type Response = <Channel as tower::Service<http::Request<Body>>>::Response;
    type Error = <Channel as tower::Service<http::Request<Body>>>::Error;
    type Future = Instrumented<<Channel as tower::Service<http::Request<Body>>>::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let path = request.uri().path();
        let (service, method) = split_path(path);
        calls::record(path);
        tracing::debug!(target: CALL_LOG_TARGET, method = %path, "containerd call");
        let span = tracing::debug_span!(
            "containerd",
            otel.name = %path.trim_start_matches('/'),
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
        );
        inject(&span, request.headers_mut());
        self.inner.call(request).instrument(span)
    }
}

/// Writes `span`'s trace context into `headers` with the global
/// propagator; without an OpenTelemetry layer the context is empty and
/// nothing is written.
pub(crate) fn inject(span: &tracing::Span, headers: &mut HeaderMap) {
    let context = span.context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(headers));
    });
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let name = HeaderName::from_bytes(key.as_bytes());
        let value = HeaderValue::from_str(&value);
        if let (Ok(name), Ok(value)) = (name, value) {
            self.0.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_grpc_paths() {
        assert_eq!(
            split_path("/containerd.services.tasks.v1.Tasks/Create"),
            ("containerd.services.tasks.v1.Tasks", "Create")
        );
        assert_eq!(split_path("odd"), ("odd", ""));
    }

    #[test]
    fn without_a_layer_nothing_is_injected() {
        let mut headers = HeaderMap::new();
        inject(&tracing::Span::none(), &mut headers);
        assert!(headers.is_empty());
    }
}
