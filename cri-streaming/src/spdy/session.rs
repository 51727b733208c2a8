//! A SPDY/3.1 connection over an upgraded byte stream: a reader task that
//! dispatches frames (new streams, data, replies, resets, settings, pings,
//! goaway, window updates), a writer task that owns header compression, and
//! per-stream send windows. Go's spdystream (kubelet, crictl, kubectl)
//! neither sends nor honours WINDOW_UPDATE, so our send window is enforced
//! only once the peer shows it does flow control (a WINDOW_UPDATE or an
//! INITIAL_WINDOW_SIZE setting); we always send WINDOW_UPDATEs for data we
//! consume.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::frame::{self, read_frame, rst, Frame, FLAG_FIN, FLAG_UNIDIRECTIONAL};
use super::header::{HeaderCompressor, HeaderDecompressor, Headers};
pub use super::stream::{IncomingStream, SpdyReader, SpdyStream, SpdyWriter};
use crate::error::SpdyError;
use crate::idle::IdleTracker;

/// The SPDY/3 default initial stream window.
pub const DEFAULT_WINDOW: u32 = 64 * 1024;
pub(super) const CHUNK: usize = 32 * 1024;
const STREAM_BUFFER: usize = 16;

/// Which side of the connection we are: servers accept odd stream ids and
/// open even ones, clients the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The streaming server.
    Server,
    /// A client (the test client).
    Client,
}

/// Tunables of a session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Close the connection after this long without a frame either way.
    pub idle_timeout: Option<Duration>,
    /// How long `close` waits for the peer to hang up after GOAWAY.
    pub close_timeout: Duration,
    /// The receive window we grant each stream.
    pub initial_window: u32,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle_timeout: None,
            close_timeout: Duration::from_secs(5),
            initial_window: DEFAULT_WINDOW,
        }
    }
}

pub(super) struct StreamEntry {
    pub(super) data_tx: Option<mpsc::Sender<Bytes>>,
    pub(super) send_window: i64,
    pub(super) reply_tx: Option<oneshot::Sender<bool>>,
    pub(super) local_fin: bool,
    pub(super) remote_fin: bool,
}

pub(super) struct State {
    pub(super) streams: HashMap<u32, StreamEntry>,
    next_stream_id: u32,
    last_peer_stream_id: u32,
    next_ping_id: u32,
    pings: HashMap<u32, oneshot::Sender<()>>,
    pub(super) enforce_send_window: bool,
    initial_send_window: i64,
    going_away: bool,
}

pub(super) struct Shared {
    pub(super) role: Role,
    pub(super) config: SessionConfig,
    pub(super) out: mpsc::Sender<Frame>,
    pub(super) state: Mutex<State>,
    pub(super) window_changed: watch::Sender<u64>,
    pub(super) idle: IdleTracker,
    pub(super) done: CancellationToken,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) async fn send(&self, frame: Frame) -> Result<(), SpdyError> {
        if self.done.is_cancelled() {
            return Err(SpdyError::SessionClosed);
        }
        self.out
            .send(frame)
            .await
            .map_err(|_| SpdyError::SessionClosed)
    }

    fn bump_windows(&self) {
        self.window_changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Marks a half closed and forgets the stream once both halves are.
    pub(super) fn finish_half(&self, id: u32, local: bool) {
        let mut st = self.lock();
        if let Some(e) = st.streams.get_mut(&id) {
            if local {
                e.local_fin = true;
            } else {
                e.remote_fin = true;
                e.data_tx = None;
            }
            if e.local_fin && e.remote_fin {
                st.streams.remove(&id);
            }
        }
    }
}

/// A handle on a running SPDY connection; cheap to clone.
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.shared.role)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Starts the reader, writer and idle tasks over `io`. Streams the peer
    /// opens arrive on the returned receiver and must be accepted or rejected.
    pub fn start<IO>(
        io: IO,
        role: Role,
        config: SessionConfig,
    ) -> Result<(Session, mpsc::Receiver<IncomingStream>), SpdyError>
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let compressor = HeaderCompressor::new()?;
        let (out_tx, out_rx) = mpsc::channel(256);
        let (incoming_tx, incoming_rx) = mpsc::channel(64);
        let shared = Arc::new(Shared {
            role,
            out: out_tx,
            state: Mutex::new(State {
                streams: HashMap::new(),
                next_stream_id: if role == Role::Client { 1 } else { 2 },
                last_peer_stream_id: 0,
                next_ping_id: if role == Role::Client { 1 } else { 2 },
                pings: HashMap::new(),
                enforce_send_window: false,
                initial_send_window: i64::from(DEFAULT_WINDOW),
                going_away: false,
            }),
            window_changed: watch::channel(0).0,
            idle: IdleTracker::new(config.idle_timeout),
            done: CancellationToken::new(),
            config,
        });
        let (r, w) = tokio::io::split(io);
        tokio::spawn(write_loop(w, out_rx, compressor, shared.clone()));
        tokio::spawn(read_loop(
            BufReader::with_capacity(64 * 1024, r),
            incoming_tx,
            shared.clone(),
        ));
        let idle = shared.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = idle.idle.expired() => {
                    tracing::debug!("spdy connection idle, closing");
                    idle.done.cancel();
                }
                () = idle.done.cancelled() => {}
            }
        });
        Ok((Session { shared }, incoming_rx))
    }

    /// Opens a stream with `headers` and waits for the peer's SYN_REPLY.
    pub async fn open_stream(&self, headers: Headers) -> Result<SpdyStream, SpdyError> {
        let (reply_tx, reply_rx) = oneshot::channel();
        let (data_tx, data_rx) = mpsc::channel(STREAM_BUFFER);
        let id = {
            let mut st = self.shared.lock();
            if st.going_away {
                return Err(SpdyError::SessionClosed);
            }
            let id = st.next_stream_id;
            if id > 0x7fff_ffff {
                return Err(SpdyError::StreamIdsExhausted);
            }
            st.next_stream_id += 2;
            let send_window = st.initial_send_window;
            st.streams.insert(
                id,
                StreamEntry {
                    data_tx: Some(data_tx),
                    send_window,
                    reply_tx: Some(reply_tx),
                    local_fin: false,
                    remote_fin: false,
                },
            );
            id
        };
        let syn = Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            slot: 0,
            flags: 0,
            headers: headers.clone(),
        };
        self.shared.send(syn).await?;
        tokio::select! {
            accepted = reply_rx => match accepted {
                Ok(true) => Ok(SpdyStream::new(self.shared.clone(), id, headers, data_rx)),
                _ => Err(SpdyError::StreamReset(id)),
            },
            () = self.shared.done.cancelled() => Err(SpdyError::SessionClosed),
        }
    }

    /// Sends a PING and waits for its echo.
    pub async fn ping(&self) -> Result<Duration, SpdyError> {
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut st = self.shared.lock();
            let id = st.next_ping_id;
            st.next_ping_id = st.next_ping_id.wrapping_add(2);
            st.pings.insert(id, tx);
            id
        };
        let start = tokio::time::Instant::now();
        self.shared.send(Frame::Ping { id }).await?;
        tokio::select! {
            r = rx => r.map(|()| start.elapsed()).map_err(|_| SpdyError::SessionClosed),
            () = self.shared.done.cancelled() => Err(SpdyError::SessionClosed),
        }
    }

    /// Sends GOAWAY, waits up to the close timeout for the peer to hang up,
    /// then closes the connection.
    pub async fn close(&self) {
        let last = {
            let mut st = self.shared.lock();
            st.going_away = true;
            st.last_peer_stream_id
        };
        if self
            .shared
            .send(Frame::GoAway {
                last_good_stream_id: last,
                status: 0,
            })
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(
                self.shared.config.close_timeout,
                self.shared.done.cancelled(),
            )
            .await;
        }
        self.shared.done.cancel();
    }

    /// Closes the connection at once.
    pub fn abort(&self) {
        self.shared.done.cancel();
    }

    /// Resolves when the connection has ended (peer hung up, error, idle
    /// timeout, close or abort).
    pub async fn closed(&self) {
        self.shared.done.cancelled().await;
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.done.is_cancelled()
    }

    /// Streams currently open (not yet finished both ways).
    pub fn open_streams(&self) -> usize {
        self.shared.lock().streams.len()
    }
}

async fn write_loop<W: AsyncWrite>(
    mut w: tokio::io::WriteHalf<W>,
    mut rx: mpsc::Receiver<Frame>,
    mut compressor: HeaderCompressor,
    shared: Arc<Shared>,
) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        let first = tokio::select! {
            f = rx.recv() => f,
            () = shared.done.cancelled() => None,
        };
        let Some(first) = first else { break };
        let mut next = Some(first);
        while let Some(frame) = next {
            if let Err(e) = frame.encode(&mut compressor, &mut buf) {
                tracing::warn!(error = %e, "spdy frame not sent");
            }
            next = if buf.len() < 256 * 1024 {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if let Err(e) = async {
            w.write_all(&buf).await?;
            w.flush().await
        }
        .await
        {
            tracing::debug!(error = %e, "spdy write failed");
            shared.done.cancel();
            break;
        }
        buf.clear();
        shared.idle.touch();
    }
    // Whatever was queued before the end still goes out.
    while let Ok(frame) = rx.try_recv() {
        let _ = frame.encode(&mut compressor, &mut buf);
    }
    let _ = w.write_all(&buf).await;
    let _ = w.shutdown().await;
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut r: R,
    incoming: mpsc::Sender<IncomingStream>,
    shared: Arc<Shared>,
) {
    let mut decompressor = HeaderDecompressor::new();
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut r, &mut decompressor) => f,
            () = shared.done.cancelled() => break,
        };
        let frame = match frame {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = %e, "spdy read failed");
                break;
            }
        };
        shared.idle.touch();
        if handle_frame(frame, &incoming, &shared).await.is_err() {
            break;
        }
    }
    shared.done.cancel();
    {
        let mut st = shared.lock();
        st.streams.clear();
        st.pings.clear();
    }
    shared.bump_windows();
}

async fn handle_frame(
    frame: Frame,
    incoming: &mpsc::Sender<IncomingStream>,
    shared: &Arc<Shared>,
) -> Result<(), SpdyError> {
    match frame {
        Frame::SynStream {
            stream_id,
            flags,
            headers,
            ..
        } => {
            let peer_parity = if shared.role == Role::Server { 1 } else { 0 };
            let (rx, refuse) = {
                let mut st = shared.lock();
                if stream_id % 2 != peer_parity || stream_id <= st.last_peer_stream_id {
                    (None, Some(rst::PROTOCOL_ERROR))
                } else if st.going_away {
                    (None, Some(rst::REFUSED_STREAM))
                } else {
                    st.last_peer_stream_id = stream_id;
                    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
                    let remote_fin = flags & FLAG_FIN != 0;
                    let entry = StreamEntry {
                        data_tx: (!remote_fin).then_some(tx),
                        send_window: st.initial_send_window,
                        reply_tx: None,
                        local_fin: flags & FLAG_UNIDIRECTIONAL != 0,
                        remote_fin,
                    };
                    st.streams.insert(stream_id, entry);
                    (Some(rx), None)
                }
            };
            if let Some(status) = refuse {
                return shared.send(Frame::RstStream { stream_id, status }).await;
            }
            if let Some(rx) = rx {
                let stream = SpdyStream::new(shared.clone(), stream_id, headers, rx);
                if incoming.send(IncomingStream { stream }).await.is_err() {
                    shared.lock().streams.remove(&stream_id);
                    shared
                        .send(Frame::RstStream {
                            stream_id,
                            status: rst::REFUSED_STREAM,
                        })
                        .await?;
                }
            }
        }
        Frame::SynReply {
            stream_id, flags, ..
        } => {
            let reply = shared
                .lock()
                .streams
                .get_mut(&stream_id)
                .and_then(|e| e.reply_tx.take());
            if let Some(tx) = reply {
                let _ = tx.send(true);
            }
            if flags & FLAG_FIN != 0 {
                shared.finish_half(stream_id, false);
            }
        }
        Frame::RstStream { stream_id, .. } => {
            let entry = shared.lock().streams.remove(&stream_id);
            if let Some(tx) = entry.and_then(|e| e.reply_tx) {
                let _ = tx.send(false);
            }
            shared.bump_windows();
        }
        Frame::Settings { entries, .. } => {
            for s in entries
                .iter()
                .filter(|s| s.id == frame::SETTINGS_INITIAL_WINDOW_SIZE)
            {
                let mut st = shared.lock();
                let delta = i64::from(s.value) - st.initial_send_window;
                st.initial_send_window = i64::from(s.value);
                st.enforce_send_window = true;
                st.streams.values_mut().for_each(|e| e.send_window += delta);
            }
            shared.bump_windows();
        }
        Frame::Ping { id } => {
            let ours = if shared.role == Role::Server { 0 } else { 1 };
            if id % 2 != ours {
                shared.send(Frame::Ping { id }).await?;
            } else {
                let waiter = shared.lock().pings.remove(&id);
                if let Some(tx) = waiter {
                    let _ = tx.send(());
                }
            }
        }
        Frame::GoAway { .. } => shared.lock().going_away = true,
        Frame::Headers {
            stream_id, flags, ..
        } => {
            if flags & FLAG_FIN != 0 {
                shared.finish_half(stream_id, false);
            }
        }
        Frame::WindowUpdate { stream_id, delta } => {
            {
                let mut st = shared.lock();
                st.enforce_send_window = true;
                if let Some(e) = st.streams.get_mut(&stream_id) {
                    e.send_window += i64::from(delta);
                }
            }
            shared.bump_windows();
        }
        Frame::Data {
            stream_id,
            flags,
            data,
        } => {
            let known = shared
                .lock()
                .streams
                .get(&stream_id)
                .map(|e| e.data_tx.clone());
            let Some(tx) = known else {
                return shared
                    .send(Frame::RstStream {
                        stream_id,
                        status: rst::INVALID_STREAM,
                    })
                    .await;
            };
            if let (Some(tx), false) = (tx, data.is_empty()) {
                let _ = tx.send(data).await;
            }
            if flags & FLAG_FIN != 0 {
                shared.finish_half(stream_id, false);
            }
        }
        Frame::Unknown { frame_type, .. } => {
            tracing::debug!(frame_type, "ignoring spdy control frame")
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::spdy::frame::Setting;

    fn pair(
        config: SessionConfig,
    ) -> (
        (Session, mpsc::Receiver<IncomingStream>),
        (Session, mpsc::Receiver<IncomingStream>),
    ) {
        let (a, b) = tokio::io::duplex(1 << 20);
        let server = Session::start(a, Role::Server, config.clone()).unwrap();
        let client = Session::start(b, Role::Client, config).unwrap();
        (server, client)
    }

    async fn open(
        client: &Session,
        server_in: &mut mpsc::Receiver<IncomingStream>,
    ) -> (SpdyStream, SpdyStream) {
        let (c, s) = tokio::join!(
            client.open_stream(Headers::new().with("streamType", "data")),
            async { server_in.recv().await.unwrap().accept().await.unwrap() }
        );
        (c.unwrap(), s)
    }

    fn window(session: &Session, id: u32) -> i64 {
        session
            .shared
            .lock()
            .streams
            .get(&id)
            .map(|e| e.send_window)
            .unwrap_or(i64::MIN)
    }

    #[tokio::test]
    async fn streams_get_odd_ids_from_clients_and_carry_headers() {
        let ((server, mut server_in), (client, _)) = pair(SessionConfig::default());
        let (c1, s1) = open(&client, &mut server_in).await;
        let (c2, _s2) = open(&client, &mut server_in).await;
        assert_eq!((c1.id(), c2.id()), (1, 3));
        assert_eq!(s1.headers().get("streamtype"), Some("data"));
        assert_eq!(server.open_streams(), 2);
    }

    #[tokio::test]
    async fn send_window_is_tracked_and_enforced_once_the_peer_does_flow_control() {
        let ((server, mut server_in), (client, _)) = pair(SessionConfig::default());
        let (c, s) = open(&client, &mut server_in).await;
        let (_, sw) = s.split();
        // Lenient (spdystream) mode: more than the window goes out unasked.
        sw.write_all(&vec![1u8; 80 * 1024]).await.unwrap();
        assert_eq!(
            window(&server, c.id()),
            i64::from(DEFAULT_WINDOW) - 80 * 1024
        );
        // The peer turns flow control on: the overdrawn window now blocks.
        client
            .shared
            .send(Frame::Settings {
                flags: 0,
                entries: vec![Setting {
                    flags: 0,
                    id: 7,
                    value: DEFAULT_WINDOW,
                }],
            })
            .await
            .unwrap();
        client.ping().await.unwrap(); // the server has handled SETTINGS
        let blocked =
            tokio::time::timeout(std::time::Duration::from_millis(200), sw.write_all(b"x")).await;
        assert!(blocked.is_err(), "write must wait for window");
        // Reading grants window back with WINDOW_UPDATE, which unblocks.
        let (mut cr, _) = c.split();
        let mut got = 0;
        while got < 80 * 1024 {
            got += cr.read().await.unwrap().len();
        }
        tokio::time::timeout(std::time::Duration::from_secs(5), sw.write_all(b"x"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cr.read().await.unwrap().as_ref(), b"x");
    }

    #[tokio::test]
    async fn fin_from_both_sides_forgets_the_stream() {
        let ((server, mut server_in), (client, _)) = pair(SessionConfig::default());
        let (c, s) = open(&client, &mut server_in).await;
        let (mut cr, cw) = c.split();
        let (mut sr, sw) = s.split();
        cw.write_all(b"ping").await.unwrap();
        cw.finish().await.unwrap();
        assert_eq!(sr.read_to_end().await, b"ping");
        sw.finish().await.unwrap();
        assert_eq!(cr.read_to_end().await, b"");
        assert_eq!(server.open_streams(), 0);
        assert!(matches!(
            sw.write_all(b"late").await,
            Err(SpdyError::StreamClosed(1))
        ));
    }

    #[tokio::test]
    async fn pings_are_echoed_and_goaway_refuses_new_streams() {
        let ((server, mut server_in), (client, _)) = pair(SessionConfig::default());
        client.ping().await.unwrap();
        server.ping().await.unwrap();
        server.shared.lock().going_away = true;
        let refused = client.open_stream(Headers::new()).await;
        assert!(matches!(refused, Err(SpdyError::StreamReset(1))));
        assert!(server_in.try_recv().is_err());
    }

    #[tokio::test]
    async fn reset_and_close_end_readers() {
        let ((server, mut server_in), (client, _)) = pair(SessionConfig::default());
        let (c, s) = open(&client, &mut server_in).await;
        let (mut sr, _) = s.split();
        c.writer().reset(rst::CANCEL).await.unwrap();
        assert!(sr.read().await.is_none());
        let closing = tokio::spawn({
            let server = server.clone();
            async move { server.close().await }
        });
        // The client sees GOAWAY; hanging up completes the server's close.
        client.abort();
        closing.await.unwrap();
        assert!(server.is_closed());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_closes_the_session() {
        let config = SessionConfig {
            idle_timeout: Some(std::time::Duration::from_secs(30)),
            ..SessionConfig::default()
        };
        let ((server, _), (_client, _)) = pair(config);
        tokio::time::timeout(std::time::Duration::from_secs(31), server.closed())
            .await
            .unwrap();
    }
}
