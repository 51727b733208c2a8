//! WebSocket streaming: the RFC 6455 upgrade on our hyper server (framing by
//! tokio-tungstenite), Kubernetes channel multiplexing (a channel byte before
//! each message, or a channel digit and base64 text for the `base64.`
//! protocols, and the v5 close signal on channel 255), and exec/attach over
//! channels 0-4 (stdin, stdout, stderr, error, resize).

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hyper::http::{self, HeaderMap};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::idle::IdleTracker;
use super::pump::{run_command, ChunkSink, Command, CommandStreams};
use super::remotecommand::{ProtocolVersion, StreamOptions};
use super::runtime::StreamRuntime;

/// Exec/attach subprotocols over WebSocket ("" is a client that named none).
pub const WS_EXEC_PROTOCOLS: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
    "",
];
/// Port-forward subprotocols over WebSocket.
pub const WS_PORT_FORWARD_PROTOCOLS: &[&str] =
    &["v4.channel.k8s.io", "v4.base64.channel.k8s.io", ""];
/// The v5 channel that carries "close channel N" signals.
pub const CLOSE_CHANNEL: u8 = 255;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;

/// Whether the request asks for a WebSocket upgrade.
pub fn is_websocket_request(headers: &HeaderMap) -> bool {
    let upgrade = headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let connection = headers
        .get(http::header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    upgrade.eq_ignore_ascii_case("websocket")
        && connection
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// The subprotocols the client asked for, in its order.
pub fn requested_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// As wsstream's handshake: no protocol requested means "", otherwise the
/// first requested one that is allowed.
pub fn negotiate_ws(requested: &[String], allowed: &[&'static str]) -> Option<&'static str> {
    if requested.is_empty() {
        return allowed.iter().copied().find(|p| p.is_empty());
    }
    requested
        .iter()
        .find_map(|r| allowed.iter().copied().find(|a| a == r))
}

/// The `Sec-WebSocket-Accept` value for the request, if it is a valid
/// version-13 handshake.
pub fn accept_key(headers: &HeaderMap) -> Option<String> {
    let version_ok = headers
        .get(http::header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    let key = headers.get(http::header::SEC_WEBSOCKET_KEY)?;
    version_ok.then(|| tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes()))
}

/// How channel payloads are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Binary messages, channel byte first.
    Binary,
    /// Text messages: channel digit, then base64.
    Base64,
}

impl Codec {
    /// The codec of a negotiated protocol.
    pub fn of(protocol: &str) -> Self {
        if protocol.contains("base64.") {
            Codec::Base64
        } else {
            Codec::Binary
        }
    }
}

enum Out {
    Data(u8, Bytes),
    Close,
}

/// Writes to one channel of a [`WsChannels`] connection.
#[derive(Clone)]
pub struct ChannelWriter {
    channel: u8,
    out: mpsc::Sender<Out>,
}

#[async_trait]
impl ChunkSink for ChannelWriter {
    async fn write_chunk(&self, data: &[u8]) -> bool {
        self.out
            .send(Out::Data(self.channel, Bytes::copy_from_slice(data)))
            .await
            .is_ok()
    }
    async fn close(&self) {}
}

/// A channel-multiplexed WebSocket connection.
pub struct WsChannels {
    out: mpsc::Sender<Out>,
    readers: Vec<Option<mpsc::Receiver<Bytes>>>,
    done: CancellationToken,
}

impl WsChannels {
    /// Starts the reader and writer tasks over an upgraded connection.
    /// `readable[i]` says whether client data on channel `i` is delivered.
    pub async fn start(
        upgraded: Upgraded,
        codec: Codec,
        close_signal: bool,
        readable: &[bool],
        idle: IdleTracker,
        parent: &CancellationToken,
    ) -> Self {
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        let (mut sink, mut stream) = ws.split();
        let done = parent.child_token();
        let idle = Arc::new(idle);
        let (out_tx, mut out_rx) = mpsc::channel::<Out>(64);
        let mut senders = Vec::new();
        let mut readers = Vec::new();
        for &r in readable {
            let (tx, rx) = mpsc::channel::<Bytes>(16);
            senders.push(r.then_some(tx));
            readers.push(Some(rx));
        }
        let (w_done, w_idle) = (done.clone(), idle.clone());
        tokio::spawn(async move {
            loop {
                let next =
                    tokio::select! { n = out_rx.recv() => n, () = w_done.cancelled() => None };
                let msg = match next {
                    Some(Out::Data(ch, data)) => encode(codec, ch, &data),
                    Some(Out::Close) | None => break,
                };
                if sink.send(msg).await.is_err() {
                    break;
                }
                w_idle.touch();
            }
            let _ = sink.send(Message::Close(None)).await;
            let _ = sink.close().await;
            w_done.cancel();
        });
        let (r_done, r_idle) = (done.clone(), idle.clone());
        tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    m = stream.next() => m,
                    () = r_done.cancelled() => break,
                    () = r_idle.expired() => { tracing::debug!("websocket idle, closing"); break }
                };
                let data = match msg {
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(Message::Text(t))) => Bytes::copy_from_slice(t.as_bytes()),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => continue,
                };
                r_idle.touch();
                let Some((&first, payload)) = data.split_first() else {
                    continue;
                };
                let channel = if codec == Codec::Base64 {
                    first.wrapping_sub(b'0')
                } else {
                    first
                };
                if close_signal && first == CLOSE_CHANNEL {
                    if let Some(&target) = payload.first() {
                        if let Some(slot) = senders.get_mut(usize::from(target)) {
                            *slot = None;
                        }
                    }
                    continue;
                }
                let Some(Some(tx)) = senders.get(usize::from(channel)) else {
                    continue;
                };
                let payload = match codec {
                    Codec::Binary => data.slice(1..),
                    Codec::Base64 => {
                        match base64::engine::general_purpose::STANDARD.decode(payload) {
                            Ok(d) => Bytes::from(d),
                            Err(_) => continue,
                        }
                    }
                };
                let _ = tx.send(payload).await;
            }
            r_done.cancel();
        });
        WsChannels {
            out: out_tx,
            readers,
            done,
        }
    }

    /// A writer for `channel`.
    pub fn writer(&self, channel: u8) -> ChannelWriter {
        ChannelWriter {
            channel,
            out: self.out.clone(),
        }
    }

    /// Takes the receiver of client data on `channel`.
    pub fn take_reader(&mut self, channel: u8) -> Option<mpsc::Receiver<Bytes>> {
        self.readers
            .get_mut(usize::from(channel))
            .and_then(Option::take)
    }

    /// Sends a close frame after everything queued, and ends the connection.
    pub async fn close(self) {
        let _ = self.out.send(Out::Close).await;
        self.done.cancelled().await;
    }
}

/// Encodes one channel message.
pub fn encode(codec: Codec, channel: u8, data: &[u8]) -> Message {
    match codec {
        Codec::Binary => {
            let mut frame = Vec::with_capacity(data.len() + 1);
            frame.push(channel);
            frame.extend_from_slice(data);
            Message::Binary(frame.into())
        }
        Codec::Base64 => {
            let mut text = String::with_capacity(data.len() * 4 / 3 + 4);
            text.push(char::from(b'0'.wrapping_add(channel)));
            base64::engine::general_purpose::STANDARD.encode_string(data, &mut text);
            Message::text(text)
        }
    }
}

/// Serves one exec or attach over WebSocket channels, then closes.
pub async fn serve_ws_command(
    mut conn: WsChannels,
    protocol: &str,
    opts: StreamOptions,
    command: Command,
    runtime: Arc<dyn StreamRuntime>,
) {
    let version = ProtocolVersion::from_name(protocol).unwrap_or(ProtocolVersion::V1);
    // Tell the client the connection is up: an empty message on the lowest
    // writable channel.
    let first = if opts.stdout {
        STDOUT
    } else if opts.stderr {
        STDERR
    } else {
        ERROR
    };
    conn.writer(first).write_chunk(&[]).await;
    let mut streams = CommandStreams::default();
    if opts.stdin {
        streams.stdin = conn.take_reader(STDIN).map(|r| Box::new(r) as _);
    }
    if opts.stdout {
        streams.stdout = Some(Arc::new(conn.writer(STDOUT)));
    }
    if opts.stderr {
        streams.stderr = Some(Arc::new(conn.writer(STDERR)));
    }
    streams.resize = conn.take_reader(RESIZE).map(|r| Box::new(r) as _);
    let outcome = run_command(runtime.as_ref(), &command, opts.tty, streams).await;
    let payload = if version.json_status() {
        outcome.v4_json()
    } else {
        outcome.v1_text()
    };
    if !payload.is_empty() {
        conn.writer(ERROR).write_chunk(&payload).await;
    }
    conn.close().await;
}

/// The readable flags of the exec/attach channels.
pub fn command_channels(opts: StreamOptions) -> [bool; 5] {
    [opts.stdin, false, false, false, true]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn protos(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ws_negotiation_matches_wsstream() {
        assert_eq!(negotiate_ws(&protos(&[]), WS_EXEC_PROTOCOLS), Some(""));
        assert_eq!(
            negotiate_ws(
                &protos(&["v5.channel.k8s.io", "v4.channel.k8s.io"]),
                WS_EXEC_PROTOCOLS
            ),
            Some("v5.channel.k8s.io")
        );
        assert_eq!(
            negotiate_ws(
                &protos(&["bogus", "base64.channel.k8s.io"]),
                WS_EXEC_PROTOCOLS
            ),
            Some("base64.channel.k8s.io")
        );
        assert_eq!(
            negotiate_ws(&protos(&["v5.channel.k8s.io"]), WS_PORT_FORWARD_PROTOCOLS),
            None
        );
    }

    #[test]
    fn channel_encoding() {
        assert_eq!(
            encode(Codec::Binary, 1, b"hi"),
            Message::Binary(Bytes::from_static(b"\x01hi"))
        );
        assert_eq!(encode(Codec::Base64, 1, b"\n"), Message::text("1Cg=="));
        assert_eq!(Codec::of("v4.base64.channel.k8s.io"), Codec::Base64);
        assert_eq!(Codec::of("v5.channel.k8s.io"), Codec::Binary);
    }

    #[test]
    fn upgrade_detection_and_accept_key() {
        let mut h = HeaderMap::new();
        h.insert("upgrade", "WebSocket".parse().unwrap());
        h.insert("connection", "keep-alive, Upgrade".parse().unwrap());
        assert!(is_websocket_request(&h));
        h.insert(
            "sec-websocket-key",
            "dGhlIHNhbXBsZSBub25jZQ==".parse().unwrap(),
        );
        assert_eq!(accept_key(&h), None, "version 13 required");
        h.insert("sec-websocket-version", "13".parse().unwrap());
        assert_eq!(
            accept_key(&h).as_deref(),
            Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
        h.insert("upgrade", "SPDY/3.1".parse().unwrap());
        assert!(!is_websocket_request(&h));
    }
}
