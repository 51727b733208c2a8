//! The containerd client: one lazily connected gRPC channel to containerd's
//! socket (each call in its own span, its trace context sent along: see
//! `traced.rs`), the request builder that stamps the namespace (and lease)
//! on every call, and the [`Containerd`] facade built from it.
//!
//! The channel connects on first use and reconnects by itself, so the
//! daemon starts while containerd is down; until it is back every call
//! fails with [`ContainerdError::Unavailable`] naming the socket.
//!
//! Only containerd v1 services that 1.6, 1.7 and 2.x all serve are used
//! (no Sandbox, Transfer or Streaming).
#![doc = include_str!("../README.md")]

mod calls;
mod containers;
mod content;
mod convert;
mod diff;
mod events;
mod images;
mod info;
mod leases;
mod snapshots;
mod tasks;
mod traced;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cri_api::containerd::{Containerd, ContainerdError, Result};
use hyper_util::rt::TokioIo;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::Request;
use traced::TracedChannel;
pub use traced::CALL_LOG_TARGET;

pub use calls::{containerd_call_counts, OTHER as OTHER_METHOD};
pub use containers::ContainerdContainers;
pub use content::ContainerdContent;
pub use diff::ContainerdDiff;
pub use events::{decode_event, ContainerdEvents, DecodedEvent};
pub use images::ContainerdImages;
pub use info::{ContainerdIntrospection, ContainerdNamespaces, ContainerdVersion};
pub use leases::ContainerdLeases;
pub use snapshots::ContainerdSnapshots;
pub use tasks::ContainerdTasks;

/// The containerd namespace the CRI works in.
pub const DEFAULT_NAMESPACE: &str = "k8s.io";
/// The snapshotter the CRI uses unless configured otherwise.
pub const DEFAULT_SNAPSHOTTER: &str = "overlayfs";
/// How long connecting to the socket may take before a call fails.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The deadline of unary calls that do not wait for a process or move
/// layer data (`Tasks::wait`, content streams, diff apply and events have
/// none).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// The largest message sent or accepted; containerd's own default.
pub(crate) const MAX_MESSAGE_SIZE: usize = 16 << 20;

const NAMESPACE_HEADER: &str = "containerd-namespace";
const LEASE_HEADER: &str = "containerd-lease";

/// Whether a call gets the client's default deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// [`ContainerdClient::call_timeout`].
    Default,
    /// No deadline: waits for a process, or streams data of any size.
    Unbounded,
}

/// A handle on one containerd daemon and namespace. Cheap to clone; every
/// clone shares the one channel.
#[derive(Clone)]
pub struct ContainerdClient {
    channel: Channel,
    address: Arc<str>,
    namespace: Arc<str>,
    namespace_header: AsciiMetadataValue,
    call_timeout: Duration,
}

impl std::fmt::Debug for ContainerdClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerdClient")
            .field("address", &self.address)
            .field("namespace", &self.namespace)
            .field("call_timeout", &self.call_timeout)
            .finish_non_exhaustive()
    }
}

/// Builds the containerd facade for the socket at `address`, working in
/// `namespace`, without connecting: see [`ContainerdClient::connect_lazy`].
pub fn connect_lazy(address: &Path, namespace: &str) -> Result<Containerd> {
    Ok(ContainerdClient::connect_lazy(address, namespace)?.services())
}

impl ContainerdClient {
    /// Prepares a channel to the containerd socket at `address` that
    /// connects on first use and reconnects after containerd restarts.
    ///
    /// Fails only for a namespace that cannot be a gRPC header value, or
    /// when called outside a Tokio runtime (the channel needs one).
    pub fn connect_lazy(address: &Path, namespace: &str) -> Result<Self> {
        let shown = address.display().to_string();
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ContainerdError::FailedPrecondition {
                op: "connect",
                message: format!("connecting to {shown} needs a tokio runtime"),
            });
        }
        let namespace_header: AsciiMetadataValue =
            MetadataValue::try_from(namespace).map_err(|e| ContainerdError::InvalidArgument {
                op: "connect",
                message: format!("namespace {namespace:?}: {e}"),
            })?;
        // The URI is ignored: every connection goes to the unix socket.
        let endpoint = Endpoint::try_from("http://[::]")
            .map_err(|e| ContainerdError::InvalidArgument {
                op: "connect",
                message: e.to_string(),
            })?
            .connect_timeout(CONNECT_TIMEOUT);
        let socket: Arc<PathBuf> = Arc::new(address.to_path_buf());
        let channel = endpoint.connect_with_connector_lazy(tower::service_fn(move |_| {
            let socket = Arc::clone(&socket);
            async move {
                let stream = tokio::net::UnixStream::connect(socket.as_path()).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }));
        Ok(Self {
            channel,
            address: shown.into(),
            namespace: namespace.into(),
            namespace_header,
            call_timeout: DEFAULT_CALL_TIMEOUT,
        })
    }

    /// Replaces the deadline of ordinary unary calls.
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// The socket path, as errors name it.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The containerd namespace every call works in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The deadline of ordinary unary calls.
    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// Every containerd service as the seam's trait objects, all sharing
    /// this client's channel.
    pub fn services(&self) -> Containerd {
        Containerd {
            containers: Arc::new(ContainerdContainers::new(self.clone())),
            tasks: Arc::new(ContainerdTasks::new(self.clone())),
            content: Arc::new(ContainerdContent::new(self.clone())),
            images: Arc::new(ContainerdImages::new(self.clone())),
            snapshots: Arc::new(ContainerdSnapshots::new(self.clone())),
            diff: Arc::new(ContainerdDiff::new(self.clone())),
            leases: Arc::new(ContainerdLeases::new(self.clone())),
            events: Arc::new(ContainerdEvents::new(self.clone())),
            namespaces: Arc::new(ContainerdNamespaces::new(self.clone())),
            version: Arc::new(ContainerdVersion::new(self.clone())),
            introspection: Arc::new(ContainerdIntrospection::new(self.clone())),
        }
    }

    /// The shared channel, with a span and the trace context per call.
    pub(crate) fn channel(&self) -> TracedChannel {
        TracedChannel::new(self.channel.clone())
    }

    /// Wraps `message` with the namespace header and, unless `deadline`
    /// says otherwise, the default deadline. The replacement for
    /// `containerd_client::with_namespace!`, which unwraps.
    pub(crate) fn request<T>(&self, message: T, deadline: Deadline) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert(NAMESPACE_HEADER, self.namespace_header.clone());
        if deadline == Deadline::Default {
            request.set_timeout(self.call_timeout);
        }
        request
    }

    /// Like [`Self::request`], and also names `lease` in the
    /// `containerd-lease` header when given.
    pub(crate) fn leased_request<T>(
        &self,
        op: &'static str,
        message: T,
        lease: Option<&str>,
        deadline: Deadline,
    ) -> Result<Request<T>> {
        let mut request = self.request(message, deadline);
        if let Some(lease) = lease {
            let value: AsciiMetadataValue =
                MetadataValue::try_from(lease).map_err(|e| ContainerdError::InvalidArgument {
                    op,
                    message: format!("lease {lease:?}: {e}"),
                })?;
            request.metadata_mut().insert(LEASE_HEADER, value);
        }
        Ok(request)
    }

    /// Classifies a failed call `op` on `what`.
    pub(crate) fn error(
        &self,
        op: &'static str,
        what: &str,
        status: &tonic::Status,
    ) -> ContainerdError {
        let error = ContainerdError::from_status(op, what, &self.address, status);
        tracing::debug!(
            op,
            what,
            code = ?status.code(),
            error = %error,
            "containerd call failed"
        );
        error
    }

    /// A reply that lacks a field containerd always sets.
    pub(crate) fn missing(op: &'static str, field: &str) -> ContainerdError {
        ContainerdError::Decode {
            op,
            message: format!("reply has no {field}"),
        }
    }
}

/// Quotes `value` for a containerd filter string the way Go's `%q` does
/// for the printable ASCII that ids, names and label values use.
pub(crate) fn quote_filter_value(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            '\r' => quoted.push_str("\\r"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(quote_filter_value("k8s.io"), r#""k8s.io""#);
        assert_eq!(quote_filter_value(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[tokio::test]
    async fn requests_carry_namespace_lease_and_deadline() {
        let client = ContainerdClient::connect_lazy(Path::new("/nonexistent.sock"), "k8s.io")
            .unwrap()
            .with_call_timeout(Duration::from_secs(7));
        let request = client.request((), Deadline::Default);
        assert_eq!(request.metadata().get(NAMESPACE_HEADER).unwrap(), "k8s.io");
        assert_eq!(request.metadata().get("grpc-timeout").unwrap(), "7000000u");
        let request = client
            .leased_request("op", (), Some("lease-1"), Deadline::Unbounded)
            .unwrap();
        assert_eq!(request.metadata().get(LEASE_HEADER).unwrap(), "lease-1");
        assert!(request.metadata().get("grpc-timeout").is_none());
        let request = client
            .leased_request("op", (), None, Deadline::Default)
            .unwrap();
        assert!(request.metadata().get(LEASE_HEADER).is_none());
    }

    #[tokio::test]
    async fn rejects_bad_header_values() {
        assert!(matches!(
            ContainerdClient::connect_lazy(Path::new("/x.sock"), "bad\nns"),
            Err(ContainerdError::InvalidArgument { .. })
        ));
        let client = ContainerdClient::connect_lazy(Path::new("/x.sock"), "k8s.io").unwrap();
        assert!(matches!(
            client.leased_request("op", (), Some("bad\nlease"), Deadline::Default),
            Err(ContainerdError::InvalidArgument { .. })
        ));
    }

    #[test]
    fn needs_a_runtime() {
        assert!(matches!(
            ContainerdClient::connect_lazy(Path::new("/x.sock"), "k8s.io"),
            Err(ContainerdError::FailedPrecondition { .. })
        ));
    }

    #[tokio::test]
    async fn calls_to_a_missing_socket_are_unavailable() {
        let services = connect_lazy(Path::new("/nonexistent/containerd.sock"), "k8s.io").unwrap();
        let err = services.version.version().await.unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
        assert!(
            err.to_string().contains("/nonexistent/containerd.sock"),
            "{err}"
        );
    }
}
