//! The HTTP side of the streaming server: binding, the token-checked routes,
//! the SPDY and WebSocket upgrades, and graceful shutdown; plus the
//! `get_exec`/`get_attach`/`get_port_forward` calls the CRI handlers make.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cri_api::v1::{
    AttachRequest, AttachResponse, ExecRequest, ExecResponse, PortForwardRequest,
    PortForwardResponse,
};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::http::{header, HeaderValue, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::error::StreamingError;
use super::runtime::StreamRuntime;
use super::tls::{StreamingTls, TlsSource};
use super::token::{CachedRequest, Clock, SystemClock, TokenCache};
use super::upgrade::{upgrade_spdy, upgrade_websocket};
use super::websocket::is_websocket_request;

pub(super) type Body = Full<Bytes>;

/// Where and how the streaming server runs (containerd's `stream_server_*`
/// and `stream_idle_timeout` keys).
#[derive(Debug, Clone)]
pub struct StreamingConfig {
    /// `stream_server_address` (IP to bind and to put in URLs).
    pub address: String,
    /// `stream_server_port`; 0 picks a free port.
    pub port: u16,
    /// `stream_idle_timeout`: close a connection with no traffic for this long.
    pub idle_timeout: Option<Duration>,
    /// How long a client has to open its streams after the upgrade.
    pub stream_creation_timeout: Duration,
    /// How long closing waits for the client to hang up.
    pub close_timeout: Duration,
    /// `enable_tls_streaming`: serve `https://` with this identity.
    pub tls: Option<TlsSource>,
}

impl Default for StreamingConfig {
    fn default() -> Self {
        Self {
            address: "127.0.0.1".to_owned(),
            port: 0,
            idle_timeout: Some(Duration::from_secs(4 * 3600)),
            stream_creation_timeout: Duration::from_secs(30),
            close_timeout: Duration::from_secs(5),
            tls: None,
        }
    }
}

pub(super) struct Inner {
    pub(super) cache: TokenCache,
    pub(super) runtime: Arc<dyn StreamRuntime>,
    pub(super) config: StreamingConfig,
    pub(super) shutdown: CancellationToken,
    pub(super) tasks: TaskTracker,
}

/// A running streaming server.
pub struct StreamingServer {
    inner: Arc<Inner>,
    local_addr: SocketAddr,
    base_url: String,
    certificate: Option<CertificateDer<'static>>,
}

impl std::fmt::Debug for StreamingServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingServer")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl StreamingServer {
    /// Binds `address:port` and starts serving.
    pub async fn bind(
        config: StreamingConfig,
        runtime: Arc<dyn StreamRuntime>,
    ) -> Result<Self, StreamingError> {
        Self::bind_with_clock(config, runtime, Arc::new(SystemClock)).await
    }

    /// As [`StreamingServer::bind`], with the token cache's clock injected.
    pub async fn bind_with_clock(
        config: StreamingConfig,
        runtime: Arc<dyn StreamRuntime>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StreamingError> {
        let host = if config.address.contains(':') {
            format!("[{}]", config.address)
        } else {
            config.address.clone()
        };
        let tls = match &config.tls {
            Some(source) => Some(StreamingTls::load(source, &config.address)?),
            None => None,
        };
        let addr = format!("{host}:{}", config.port);
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| StreamingError::Bind {
                addr: addr.clone(),
                source,
            })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| StreamingError::Bind { addr, source })?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base_url = format!("{scheme}://{host}:{}", local_addr.port());
        let certificate = tls.as_ref().map(|t| t.certificate.clone());
        let inner = Arc::new(Inner {
            cache: TokenCache::new(clock),
            runtime,
            config,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        tokio::spawn(accept_loop(
            listener,
            tls.map(|t| t.acceptor),
            inner.clone(),
        ));
        tracing::info!(url = %base_url, "streaming server listening");
        Ok(Self {
            inner,
            local_addr,
            base_url,
            certificate,
        })
    }

    /// The bound socket address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://<addr>:<port>`, or `https://` with TLS.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The certificate served with TLS (for clients to trust).
    pub fn tls_certificate(&self) -> Option<&CertificateDer<'static>> {
        self.certificate.as_ref()
    }

    fn url(&self, kind: &str, request: CachedRequest) -> Result<String, StreamingError> {
        let token = self.inner.cache.insert(request)?;
        Ok(format!("{}/{kind}/{token}", self.base_url))
    }

    /// Validates an Exec request and returns its streaming URL.
    pub fn get_exec(&self, req: &ExecRequest) -> Result<ExecResponse, StreamingError> {
        check_streams(
            &req.container_id,
            req.stdin,
            req.stdout,
            req.stderr,
            req.tty,
        )?;
        if req.cmd.is_empty() {
            return Err(StreamingError::MissingCommand);
        }
        Ok(ExecResponse {
            url: self.url("exec", CachedRequest::Exec(req.clone()))?,
        })
    }

    /// Validates an Attach request and returns its streaming URL.
    pub fn get_attach(&self, req: &AttachRequest) -> Result<AttachResponse, StreamingError> {
        check_streams(
            &req.container_id,
            req.stdin,
            req.stdout,
            req.stderr,
            req.tty,
        )?;
        Ok(AttachResponse {
            url: self.url("attach", CachedRequest::Attach(req.clone()))?,
        })
    }

    /// Validates a PortForward request and returns its streaming URL.
    pub fn get_port_forward(
        &self,
        req: &PortForwardRequest,
    ) -> Result<PortForwardResponse, StreamingError> {
        if req.pod_sandbox_id.is_empty() {
            return Err(StreamingError::MissingSandboxId);
        }
        if let Some(&bad) = req.port.iter().find(|&&p| !(1..=65535).contains(&p)) {
            return Err(StreamingError::InvalidPort(i64::from(bad)));
        }
        Ok(PortForwardResponse {
            url: self.url("portforward", CachedRequest::PortForward(req.clone()))?,
        })
    }

    /// Stops accepting, closes every connection and waits (up to the close
    /// timeout) for their tasks to end.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        let _ =
            tokio::time::timeout(self.inner.config.close_timeout, self.inner.tasks.wait()).await;
    }

    /// Connection and session tasks still running.
    pub fn active_tasks(&self) -> usize {
        self.inner.tasks.len()
    }
}

impl Drop for StreamingServer {
    fn drop(&mut self) {
        self.inner.shutdown.cancel();
    }
}

fn check_streams(
    container_id: &str,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
) -> Result<(), StreamingError> {
    if container_id.is_empty() {
        return Err(StreamingError::MissingContainerId);
    }
    if tty && stderr {
        return Err(StreamingError::TtyWithStderr);
    }
    if !stdin && !stdout && !stderr {
        return Err(StreamingError::NoStreams);
    }
    Ok(())
}

/// How long a client has to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

async fn accept_loop(listener: TcpListener, tls: Option<TlsAcceptor>, inner: Arc<Inner>) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = inner.shutdown.cancelled() => return,
        };
        let (tcp, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "streaming accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (inner2, tls) = (inner.clone(), tls.clone());
        inner.tasks.spawn(async move {
            let Some(acceptor) = tls else {
                return serve(tcp, inner2).await;
            };
            let handshake = tokio::select! {
                h = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => h,
                () = inner2.shutdown.cancelled() => return,
            };
            match handshake {
                Ok(Ok(stream)) => serve(stream, inner2).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "streaming tls handshake failed"),
                Err(_) => tracing::debug!("streaming tls handshake timed out"),
            }
        });
    }
}

/// Serves HTTP/1.1 with upgrades on one accepted connection.
async fn serve<IO>(io: IO, inner: Arc<Inner>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shutdown = inner.shutdown.clone();
    let svc = hyper::service::service_fn(move |req| {
        let inner = inner.clone();
        async move { Ok::<_, Infallible>(handle(req, inner)) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

pub(super) fn text(status: StatusCode, msg: impl Into<String>) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(msg.into() + "\n")));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn handle(req: Request<Incoming>, inner: Arc<Inner>) -> Response<Body> {
    let path = req.uri().path().trim_start_matches('/').to_owned();
    let Some((kind, token)) = path.split_once('/') else {
        return text(StatusCode::NOT_FOUND, "404 page not found");
    };
    if !matches!(kind, "exec" | "attach" | "portforward") || token.is_empty() || token.contains('/')
    {
        return text(StatusCode::NOT_FOUND, "404 page not found");
    }
    if req.method() != hyper::Method::GET && req.method() != hyper::Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    let request = match (kind, inner.cache.consume(token)) {
        ("exec", Some(r @ CachedRequest::Exec(_))) => r,
        ("attach", Some(r @ CachedRequest::Attach(_))) => r,
        ("portforward", Some(r @ CachedRequest::PortForward(_))) => r,
        _ => return text(StatusCode::NOT_FOUND, "404 page not found"),
    };
    if is_websocket_request(req.headers()) {
        upgrade_websocket(req, request, inner)
    } else {
        upgrade_spdy(req, request, inner)
    }
}

#[cfg(test)]
mod unit {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn stream_checks_match_the_kubelet() {
        assert!(matches!(
            check_streams("", true, false, false, false),
            Err(StreamingError::MissingContainerId)
        ));
        assert!(matches!(
            check_streams("c", false, true, true, true),
            Err(StreamingError::TtyWithStderr)
        ));
        assert!(matches!(
            check_streams("c", false, false, false, false),
            Err(StreamingError::NoStreams)
        ));
        assert!(check_streams("c", false, true, false, true).is_ok());
    }
}
