//! Exec and attach over SPDY: the remote-command protocol versions
//! (`v5.channel.k8s.io` … `channel.k8s.io`, negotiated with
//! `X-Stream-Protocol-Version`), waiting for the client's typed streams
//! (`streamType`: error, stdin, stdout, stderr, resize), running the command
//! and reporting its outcome on the error stream.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::pump::{run_command, Command, CommandStreams};
use super::runtime::StreamRuntime;
use super::spdy::{IncomingStream, Session, SpdyWriter};

/// The header naming protocol versions in the upgrade request and response.
pub const PROTOCOL_HEADER: &str = "X-Stream-Protocol-Version";
/// The header listing what we accept when negotiation fails.
pub const ACCEPTED_PROTOCOLS_HEADER: &str = "X-Accepted-Stream-Protocol-Versions";
/// The remote-command versions served over SPDY, preferred first.
pub const SPDY_PROTOCOLS: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];
/// The port-forward protocol over SPDY.
pub const PORT_FORWARD_PROTOCOLS: &[&str] = &["portforward.k8s.io"];

/// A remote-command protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProtocolVersion {
    /// `channel.k8s.io`.
    V1,
    /// `v2.channel.k8s.io`.
    V2,
    /// `v3.channel.k8s.io`: adds the resize stream.
    V3,
    /// `v4.channel.k8s.io`: the error stream carries status JSON.
    V4,
    /// `v5.channel.k8s.io`: v4 plus the WebSocket close signal.
    V5,
}

impl ProtocolVersion {
    /// Parses a protocol name (SPDY or WebSocket flavour).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "v5.channel.k8s.io" => Self::V5,
            "v4.channel.k8s.io" | "v4.base64.channel.k8s.io" => Self::V4,
            "v3.channel.k8s.io" => Self::V3,
            "v2.channel.k8s.io" => Self::V2,
            "channel.k8s.io" | "base64.channel.k8s.io" | "" => Self::V1,
            _ => return None,
        })
    }

    /// Whether a tty session gets a resize stream.
    pub fn supports_resize(self) -> bool {
        self >= Self::V3
    }

    /// Whether the error stream carries `metav1.Status` JSON.
    pub fn json_status(self) -> bool {
        self >= Self::V4
    }
}

/// Picks the first of the client's protocols (in its order) that the
/// server supports. Header values may list several, comma-separated.
pub fn negotiate<'a>(
    client: impl IntoIterator<Item = &'a str>,
    server: &[&'static str],
) -> Option<&'static str> {
    client
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|p| server.iter().copied().find(|s| *s == p))
}

/// Which streams the request asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// stdin requested.
    pub stdin: bool,
    /// stdout requested.
    pub stdout: bool,
    /// stderr requested.
    pub stderr: bool,
    /// A tty.
    pub tty: bool,
}

/// Serves one exec or attach on an upgraded SPDY session, then closes it.
pub async fn serve_spdy_command(
    session: Session,
    mut incoming: mpsc::Receiver<IncomingStream>,
    version: ProtocolVersion,
    opts: StreamOptions,
    command: Command,
    runtime: Arc<dyn StreamRuntime>,
    creation_timeout: Duration,
) {
    let expected = 1
        + usize::from(opts.stdin)
        + usize::from(opts.stdout)
        + usize::from(opts.stderr)
        + usize::from(opts.tty && version.supports_resize());
    let mut streams = CommandStreams::default();
    let mut error: Option<SpdyWriter> = None;
    let mut others = Vec::new();
    let mut received = 0;
    let deadline = tokio::time::sleep(creation_timeout);
    tokio::pin!(deadline);
    while received < expected {
        let next = tokio::select! {
            next = incoming.recv() => next,
            () = &mut deadline => {
                tracing::warn!("timed out waiting for client to create streams");
                session.abort();
                return;
            }
        };
        let Some(next) = next else { return };
        let stream_type = next.headers().get("streamtype").unwrap_or("").to_owned();
        let Ok(stream) = next.accept().await else {
            return;
        };
        let (reader, writer) = stream.split();
        match stream_type.as_str() {
            "error" => error = Some(writer),
            "stdin" => streams.stdin = Some(Box::new(reader)),
            "stdout" => streams.stdout = Some(Arc::new(writer)),
            "stderr" => streams.stderr = Some(Arc::new(writer)),
            "resize" => streams.resize = Some(Box::new(reader)),
            other => {
                tracing::warn!(stream_type = other, "unexpected stream type");
                others.push(writer);
                continue;
            }
        }
        received += 1;
    }
    // Streams opened later are not part of the session.
    let rejecter = tokio::spawn(async move {
        while let Some(extra) = incoming.recv().await {
            let _ = extra.reject().await;
        }
    });

    let outcome = run_command(runtime.as_ref(), &command, opts.tty, streams).await;
    if let Some(error) = error {
        let payload = if version.json_status() {
            outcome.v4_json()
        } else {
            outcome.v1_text()
        };
        if !payload.is_empty() {
            let _ = error.write_all(&payload).await;
        }
        let _ = error.finish().await;
    }
    for w in others {
        let _ = w.finish().await;
    }
    session.close().await;
    rejecter.abort();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn check(client: &[&str], server: &[&'static str], expected: Option<&str>) {
        assert_eq!(
            negotiate(client.iter().copied(), server),
            expected,
            "{client:?}"
        );
    }

    #[test]
    fn negotiation_follows_the_clients_order() {
        check(
            &["v4.channel.k8s.io", "v3.channel.k8s.io"],
            SPDY_PROTOCOLS,
            Some("v4.channel.k8s.io"),
        );
        check(
            &["channel.k8s.io", "v4.channel.k8s.io"],
            SPDY_PROTOCOLS,
            Some("channel.k8s.io"),
        );
        check(
            &["v9.channel.k8s.io", "v2.channel.k8s.io"],
            SPDY_PROTOCOLS,
            Some("v2.channel.k8s.io"),
        );
        check(
            &["v4.channel.k8s.io, v3.channel.k8s.io"],
            SPDY_PROTOCOLS,
            Some("v4.channel.k8s.io"),
        );
        check(&["v9.channel.k8s.io"], SPDY_PROTOCOLS, None);
        check(&[], SPDY_PROTOCOLS, None);
        check(
            &["portforward.k8s.io"],
            PORT_FORWARD_PROTOCOLS,
            Some("portforward.k8s.io"),
        );
    }

    #[test]
    fn versions_and_their_features() {
        let v = |n| ProtocolVersion::from_name(n).unwrap();
        assert_eq!(v("v5.channel.k8s.io"), ProtocolVersion::V5);
        assert!(v("v4.channel.k8s.io").json_status());
        assert!(!v("v3.channel.k8s.io").json_status());
        assert!(v("v3.channel.k8s.io").supports_resize());
        assert!(!v("v2.channel.k8s.io").supports_resize());
        assert_eq!(v("base64.channel.k8s.io"), ProtocolVersion::V1);
        assert_eq!(ProtocolVersion::from_name("x"), None);
    }
}
