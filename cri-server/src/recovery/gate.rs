//! The readiness gate: until recovery has rebuilt the stores, every CRI
//! call except `Version` and `Status` is answered `Unavailable` by a tower layer in
//! front of the tonic services, so the kubelet never sees a half-loaded
//! runtime (an empty pod list would make it recreate every pod).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Layer, Service};

/// The message of the `Unavailable` answer while recovering.
pub const RECOVERING_MESSAGE: &str = "cri-server is recovering state from containerd";
/// The RPCs that answer before recovery ends: they report on the runtime,
/// not on the stores (the kubelet probes them to learn the runtime is up).
const ALWAYS_SERVED: [&str; 2] = [
    "/runtime.v1.RuntimeService/Version",
    "/runtime.v1.RuntimeService/Status",
];

/// Whether recovery has finished. Cheap to clone; clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    ready: Arc<AtomicBool>,
}

impl Readiness {
    /// Not ready yet.
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Opens the gate for good.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// The tower layer that answers `Unavailable` until ready.
    pub fn layer(&self) -> RecoveryGateLayer {
        RecoveryGateLayer {
            readiness: self.clone(),
        }
    }
}

/// Wraps the tonic services (`Server::builder().layer(...)`).
#[derive(Debug, Clone)]
pub struct RecoveryGateLayer {
    readiness: Readiness,
}

impl<S> Layer<S> for RecoveryGateLayer {
    type Service = RecoveryGate<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RecoveryGate {
            inner,
            readiness: self.readiness.clone(),
        }
    }
}

/// The service [`RecoveryGateLayer`] makes.
#[derive(Debug, Clone)]
pub struct RecoveryGate<S> {
    inner: S,
    readiness: Readiness,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for RecoveryGate<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        if !self.readiness.is_ready() && !ALWAYS_SERVED.contains(&request.uri().path()) {
            let status = tonic::Status::unavailable(RECOVERING_MESSAGE);
            return Box::pin(async move { Ok(status.into_http()) });
        }
        // The clone that was made ready is the one to call.
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move { ready.call(request).await })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tower::ServiceExt;

    fn inner() -> impl Service<
        http::Request<()>,
        Response = http::Response<String>,
        Error = std::convert::Infallible,
        Future = std::future::Ready<Result<http::Response<String>, std::convert::Infallible>>,
    > + Clone
           + Send
           + 'static {
        tower::service_fn(|_req: http::Request<()>| {
            std::future::ready(Ok(http::Response::new("served".to_owned())))
        })
    }

    async fn check(readiness: &Readiness, path: &str, want_served: bool) {
        let service = readiness.layer().layer(inner());
        let request = http::Request::builder().uri(path).body(()).unwrap();
        let response = service.oneshot(request).await.unwrap();
        let status = response.headers().get("grpc-status").cloned();
        if want_served {
            assert_eq!(response.body(), "served", "{path}");
            assert!(status.is_none(), "{path}");
        } else {
            assert_eq!(
                status.unwrap().to_str().unwrap(),
                (tonic::Code::Unavailable as i32).to_string(),
                "{path}"
            );
            let message = response.headers().get("grpc-message").unwrap();
            assert!(message.to_str().unwrap().contains("recovering"), "{path}");
        }
    }

    #[tokio::test]
    async fn only_version_and_status_are_served_until_ready() {
        let readiness = Readiness::new();
        check(&readiness, "/runtime.v1.RuntimeService/Version", true).await;
        check(&readiness, "/runtime.v1.RuntimeService/Status", true).await;
        check(
            &readiness,
            "/runtime.v1.RuntimeService/ListPodSandbox",
            false,
        )
        .await;
        check(&readiness, "/runtime.v1.ImageService/ListImages", false).await;
        readiness.set_ready();
        check(
            &readiness,
            "/runtime.v1.RuntimeService/ListPodSandbox",
            true,
        )
        .await;
        check(&readiness, "/runtime.v1.ImageService/ListImages", true).await;
    }
}
