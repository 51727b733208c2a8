//! A streaming client for tests (feature `test-client`): the HTTP upgrade to
//! SPDY/3.1 with protocol negotiation (over TLS for `https://` URLs),
//! exec/attach over SPDY and WebSocket as client-go does it, and SPDY
//! port-forward stream pairs. Integration
//! suites use it against a real cri-server.

use std::io;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub use super::client_tls::{dial, parse_url, ClientStream, Target, Trust};
use super::remotecommand::PROTOCOL_HEADER;
use super::runtime::TerminalSize;
use super::spdy::{Headers, IncomingStream, Role, Session, SessionConfig, SpdyStream};
use super::websocket::{encode, Codec, CLOSE_CHANNEL};

/// An HTTP response to an upgrade request that was not switched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Status code.
    pub status: u16,
    /// Body text.
    pub body: String,
    /// Response headers (lower-case names).
    pub headers: Vec<(String, String)>,
}

/// What connecting produced.
#[derive(Debug)]
pub enum Upgrade {
    /// 101: a running SPDY session and the negotiated protocol.
    Spdy(Session, mpsc::Receiver<IncomingStream>, String),
    /// Anything else.
    Refused(Refusal),
}

/// Sends `GET url` with SPDY upgrade headers offering `protocols`
/// (`extra` headers replace the defaults when given); an `https://` URL
/// accepts any server certificate.
pub async fn connect_spdy(
    url: &str,
    protocols: &[&str],
    extra: &[(&str, &str)],
) -> io::Result<Upgrade> {
    connect_spdy_with(url, protocols, extra, &Trust::AnyCertificate).await
}

/// As [`connect_spdy`], trusting `trust` for `https://` URLs.
pub async fn connect_spdy_with(
    url: &str,
    protocols: &[&str],
    extra: &[(&str, &str)],
    trust: &Trust,
) -> io::Result<Upgrade> {
    let target = parse_url(url)?;
    let (host, path) = (&target.host, &target.path);
    let mut tcp = dial(&target, trust).await?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
    if extra.is_empty() {
        req.push_str("Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n");
    }
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    for p in protocols {
        req.push_str(&format!("{PROTOCOL_HEADER}: {p}\r\n"));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes()).await?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let b = tcp.read_u8().await?;
        head.push(b);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if status == 101 {
        let protocol = header(&PROTOCOL_HEADER.to_ascii_lowercase()).unwrap_or_default();
        let (session, incoming) = Session::start(tcp, Role::Client, SessionConfig::default())
            .map_err(io::Error::other)?;
        return Ok(Upgrade::Spdy(session, incoming, protocol));
    }
    let len: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    tcp.read_exact(&mut body).await?;
    Ok(Upgrade::Refused(Refusal {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
        headers,
    }))
}

/// What an exec or attach should send.
#[derive(Debug, Clone, Default)]
pub struct ExecInput {
    /// Bytes for stdin (`None`: no stdin stream).
    pub stdin: Option<Vec<u8>>,
    /// Open a stdout stream.
    pub stdout: bool,
    /// Open a stderr stream.
    pub stderr: bool,
    /// A tty session: opens a resize stream, as client-go does (v3+).
    pub tty: bool,
    /// Terminal sizes to send on the resize stream.
    pub resize: Vec<TerminalSize>,
    /// Keep stdin open after writing it (until the server finishes).
    pub keep_stdin_open: bool,
}

/// What came back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// The negotiated protocol.
    pub protocol: String,
    /// stdout bytes.
    pub stdout: Vec<u8>,
    /// stderr bytes.
    pub stderr: Vec<u8>,
    /// The error stream's bytes (v4: status JSON).
    pub error: Vec<u8>,
}

impl ExecOutput {
    /// The error stream as text.
    pub fn error_text(&self) -> String {
        String::from_utf8_lossy(&self.error).into_owned()
    }
}

async fn open(session: &Session, stream_type: &str) -> io::Result<SpdyStream> {
    session
        .open_stream(Headers::new().with("streamType", stream_type))
        .await
        .map_err(io::Error::other)
}

/// Runs an exec/attach over an upgraded SPDY session the way client-go's
/// v4 protocol does (error stream first), then hangs up.
pub async fn exec_spdy(
    session: Session,
    protocol: String,
    input: ExecInput,
) -> io::Result<ExecOutput> {
    let error = open(&session, "error").await?;
    let stdin = match &input.stdin {
        Some(_) => Some(open(&session, "stdin").await?),
        None => None,
    };
    let stdout = if input.stdout {
        Some(open(&session, "stdout").await?)
    } else {
        None
    };
    let stderr = if input.stderr {
        Some(open(&session, "stderr").await?)
    } else {
        None
    };
    let resize = if input.tty && protocol != "channel.k8s.io" && protocol != "v2.channel.k8s.io" {
        Some(open(&session, "resize").await?)
    } else {
        None
    };
    if let Some(r) = resize {
        for size in &input.resize {
            let json = serde_json::to_vec(size).map_err(io::Error::other)?;
            r.writer()
                .write_all(&json)
                .await
                .map_err(io::Error::other)?;
        }
    }
    if let (Some(s), Some(data)) = (stdin, &input.stdin) {
        let w = s.writer();
        w.write_all(data).await.map_err(io::Error::other)?;
        if !input.keep_stdin_open {
            w.finish().await.map_err(io::Error::other)?;
        }
    }
    let read = |s: Option<SpdyStream>| async move {
        match s {
            Some(s) => s.split().0.read_to_end().await,
            None => Vec::new(),
        }
    };
    let (out, err, status) = tokio::join!(read(stdout), read(stderr), read(Some(error)));
    session.abort();
    Ok(ExecOutput {
        protocol,
        stdout: out,
        stderr: err,
        error: status,
    })
}

/// Opens the error and data streams of one SPDY port-forward request.
pub async fn port_forward_pair(
    session: &Session,
    port: u16,
    request_id: u32,
) -> io::Result<(SpdyStream, SpdyStream)> {
    let h = |t: &str| {
        Headers::new()
            .with("streamType", t)
            .with("port", &port.to_string())
            .with("requestID", &request_id.to_string())
    };
    let error = session
        .open_stream(h("error"))
        .await
        .map_err(io::Error::other)?;
    let data = session
        .open_stream(h("data"))
        .await
        .map_err(io::Error::other)?;
    Ok((error, data))
}

/// A WebSocket client connection.
pub type WsClient = WebSocketStream<ClientStream>;

/// Opens a WebSocket to `url` (http(s):// is rewritten to ws(s)://)
/// offering `protocols`; returns the negotiated one. An `https://` URL
/// accepts any server certificate.
pub async fn connect_ws(url: &str, protocols: &[&str]) -> io::Result<(WsClient, String)> {
    connect_ws_with(url, protocols, &Trust::AnyCertificate).await
}

/// As [`connect_ws`], trusting `trust` for `https://` URLs.
pub async fn connect_ws_with(
    url: &str,
    protocols: &[&str],
    trust: &Trust,
) -> io::Result<(WsClient, String)> {
    let target = parse_url(url)?;
    let ws_url = format!(
        "{}://{}{}",
        if target.tls { "wss" } else { "ws" },
        target.host,
        target.path
    );
    let mut req = ws_url.into_client_request().map_err(io::Error::other)?;
    if !protocols.is_empty() {
        let v = protocols.join(", ").parse().map_err(io::Error::other)?;
        req.headers_mut().insert("Sec-WebSocket-Protocol", v);
    }
    let io = dial(&target, trust).await?;
    let (ws, resp) = tokio_tungstenite::client_async(req, io)
        .await
        .map_err(io::Error::other)?;
    let protocol = resp
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    Ok((ws, protocol))
}

/// Runs an exec/attach over WebSocket channels: sends stdin (then the v5
/// close signal, if negotiated) and resizes, collects channels 1-3 until
/// the server closes.
pub async fn exec_ws(
    mut ws: WsClient,
    protocol: String,
    input: ExecInput,
) -> io::Result<ExecOutput> {
    let codec = Codec::of(&protocol);
    for size in &input.resize {
        let json = serde_json::to_vec(size).map_err(io::Error::other)?;
        ws.send(encode(codec, 4, &json))
            .await
            .map_err(io::Error::other)?;
    }
    if let Some(data) = &input.stdin {
        ws.send(encode(codec, 0, data))
            .await
            .map_err(io::Error::other)?;
        if protocol == "v5.channel.k8s.io" && !input.keep_stdin_open {
            ws.send(Message::Binary(Bytes::from_static(&[CLOSE_CHANNEL, 0])))
                .await
                .map_err(io::Error::other)?;
        }
    }
    let mut out = ExecOutput {
        protocol,
        ..ExecOutput::default()
    };
    while let Some(msg) = ws.next().await {
        let msg = msg.map_err(io::Error::other)?;
        if msg.is_close() {
            // Nothing follows a close frame; over TLS the server may hang
            // up without close_notify, which rustls reports as an error.
            break;
        }
        let (channel, data) = match decode(codec, msg) {
            Some(d) => d,
            None => continue,
        };
        match channel {
            1 => out.stdout.extend_from_slice(&data),
            2 => out.stderr.extend_from_slice(&data),
            3 => out.error.extend_from_slice(&data),
            _ => {}
        }
    }
    Ok(out)
}

/// Splits a server message into channel and payload (`None` for control
/// messages).
pub fn decode(codec: Codec, msg: Message) -> Option<(u8, Vec<u8>)> {
    use base64::Engine;
    let data: Bytes = match msg {
        Message::Binary(b) => b,
        Message::Text(t) => Bytes::copy_from_slice(t.as_bytes()),
        _ => return None,
    };
    let (&first, rest) = data.split_first()?;
    match codec {
        Codec::Binary => Some((first, rest.to_vec())),
        Codec::Base64 => Some((
            first.wrapping_sub(b'0'),
            base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()?,
        )),
    }
}
