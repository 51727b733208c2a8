//! containerd's own API on the CRI socket: a tower layer in front of the
//! tonic services keeps the CRI (`/runtime.v1.*`, and `/runtime.v1alpha2.*`,
//! which tonic answers Unimplemented) and forwards every other gRPC call,
//! as raw HTTP/2 with hyper's client, to containerd's socket. Nothing is
//! decoded or buffered: headers, messages, trailers, flow control and
//! cancellation are HTTP/2's, end to end.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::Either;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus_client::metrics::gauge::Gauge;
use tonic::body::Body;
use tower::{Layer, Service};

/// The `:authority` forwarded calls carry (any valid one does: containerd
/// ignores it).
const CONTAINERD_AUTHORITY: &str = "containerd";

/// Whether `path` is a CRI method this daemon answers itself.
pub fn is_cri_path(path: &str) -> bool {
    path.starts_with("/runtime.v1.") || path.starts_with("/runtime.v1alpha2.")
}

/// Connects to containerd's unix socket for hyper's client.
#[derive(Debug, Clone)]
struct UnixConnector {
    path: Arc<PathBuf>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl Service<Uri> for UnixConnector {
    type Response = TokioIo<tokio::net::UnixStream>;
    type Error = std::io::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let path = Arc::clone(&self.path);
        Box::pin(async move {
            tokio::net::UnixStream::connect(path.as_path())
                .await
                .map(TokioIo::new)
        })
    }
}

/// Forwards requests to containerd over one pooled HTTP/2 connection,
/// re-dialled on demand (so forwarding resumes by itself when containerd
/// comes back).
#[derive(Debug)]
pub struct Forwarder {
    address: PathBuf,
    client: Client<UnixConnector, Body>,
    open_streams: Gauge,
}

impl Forwarder {
    /// `open_streams` counts the calls in flight.
    pub fn new(address: &Path, open_streams: Gauge) -> Forwarder {
        let connector = UnixConnector {
            path: Arc::new(address.to_path_buf()),
        };
        let client = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build(connector);
        Forwarder {
            address: address.to_path_buf(),
            client,
            open_streams,
        }
    }

    /// Sends `request` to containerd and returns its answer as it streams
    /// in. When containerd cannot be reached the answer is a trailers-only
    /// `Unavailable` naming containerd's address.
    pub async fn forward(&self, request: Request<Body>) -> Response<Body> {
        let open = OpenStream::new(&self.open_streams);
        let (mut parts, body) = request.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        parts.uri = match Uri::builder()
            .scheme("http")
            .authority(CONTAINERD_AUTHORITY)
            .path_and_query(path.as_str())
            .build()
        {
            Ok(uri) => uri,
            Err(e) => {
                return tonic::Status::invalid_argument(format!("bad request path {path:?}: {e}"))
                    .into_http()
            }
        };
        parts.version = http::Version::HTTP_2;
        match self.client.request(Request::from_parts(parts, body)).await {
            Ok(response) => response.map(|incoming| {
                Body::new(CountedBody {
                    inner: incoming,
                    _open: open,
                })
            }),
            Err(e) => {
                let message = format!(
                    "containerd at {} is unavailable: {}",
                    self.address.display(),
                    cri_api::error_chain(&e)
                );
                tracing::debug!(path = %path, error = %message, "forwarding to containerd failed");
                tonic::Status::unavailable(message).into_http()
            }
        }
    }
}

/// One forwarded call in flight: counted from the start of the forward
/// until its answer's body is dropped (finished, failed or cancelled).
#[derive(Debug)]
struct OpenStream(Gauge);

impl OpenStream {
    fn new(gauge: &Gauge) -> OpenStream {
        gauge.inc();
        OpenStream(gauge.clone())
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pin_project_lite::pin_project! {
    /// containerd's answer, streamed as it comes, holding its [`OpenStream`].
    struct CountedBody {
        #[pin]
        inner: hyper::body::Incoming,
        _open: OpenStream,
    }
}

impl HttpBody for CountedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Wraps the tonic services (`Server::builder().layer(...)`, outermost, so
/// forwarded calls skip the recovery gate and the CRI metrics). With no
/// forwarder every call goes to the services, which answer Unimplemented
/// for anything but the CRI.
#[derive(Debug, Clone)]
pub struct PassthroughLayer {
    forwarder: Option<Arc<Forwarder>>,
}

impl PassthroughLayer {
    pub fn new(forwarder: Option<Arc<Forwarder>>) -> PassthroughLayer {
        PassthroughLayer { forwarder }
    }
}

impl<S> Layer<S> for PassthroughLayer {
    type Service = Passthrough<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Passthrough {
            inner,
            forwarder: self.forwarder.clone(),
        }
    }
}

/// The service [`PassthroughLayer`] makes.
#[derive(Debug, Clone)]
pub struct Passthrough<S> {
    inner: S,
    forwarder: Option<Arc<Forwarder>>,
}

impl<S, ResBody> Service<Request<Body>> for Passthrough<S>
where
    S: Service<Request<Body>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<Either<ResBody, Body>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if let Some(forwarder) = &self.forwarder {
            if !is_cri_path(request.uri().path()) {
                let forwarder = Arc::clone(forwarder);
                return Box::pin(
                    async move { Ok(forwarder.forward(request).await.map(Either::Right)) },
                );
            }
        }
        // The clone that was made ready is the one to call.
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move { Ok(ready.call(request).await?.map(Either::Left)) })
    }
}

#[cfg(test)]
#[path = "passthrough_tests.rs"]
mod tests;
