//! The streams of a SPDY session: a peer-opened stream awaiting its reply,
//! and an open stream's reading half (granting window back as it consumes)
//! and writing half (DATA frames within the send window, FIN, RST).

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::frame::{Frame, FLAG_FIN};
use super::header::Headers;
use super::session::{Shared, CHUNK};
use crate::error::SpdyError;

/// A stream the peer opened, not yet answered.
pub struct IncomingStream {
    pub(super) stream: SpdyStream,
}

impl std::fmt::Debug for IncomingStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingStream")
            .field("id", &self.stream.id)
            .field("headers", &self.stream.headers)
            .finish()
    }
}

impl IncomingStream {
    /// The stream id.
    pub fn id(&self) -> u32 {
        self.stream.id
    }

    /// The SYN_STREAM headers.
    pub fn headers(&self) -> &Headers {
        &self.stream.headers
    }

    /// Replies with SYN_REPLY and hands out the stream.
    pub async fn accept(self) -> Result<SpdyStream, SpdyError> {
        let reply = Frame::SynReply {
            stream_id: self.stream.id,
            flags: 0,
            headers: Headers::new(),
        };
        self.stream.writer.shared.send(reply).await?;
        Ok(self.stream)
    }

    /// Replies with SYN_REPLY and FIN, as spdystream rejects a stream.
    pub async fn reject(self) -> Result<(), SpdyError> {
        let reply = Frame::SynReply {
            stream_id: self.stream.id,
            flags: FLAG_FIN,
            headers: Headers::new(),
        };
        self.stream.writer.shared.send(reply).await?;
        self.stream.writer.shared.finish_half(self.stream.id, true);
        Ok(())
    }
}

/// An open stream; split it to read and write from different tasks.
#[derive(Debug)]
pub struct SpdyStream {
    id: u32,
    headers: Headers,
    reader: SpdyReader,
    writer: SpdyWriter,
}

impl SpdyStream {
    pub(super) fn new(
        shared: Arc<Shared>,
        id: u32,
        headers: Headers,
        rx: mpsc::Receiver<Bytes>,
    ) -> Self {
        let reader = SpdyReader {
            id,
            rx,
            shared: shared.clone(),
            unacked: 0,
        };
        Self {
            id,
            headers,
            reader,
            writer: SpdyWriter { id, shared },
        }
    }

    /// The stream id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The SYN_STREAM headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// Another handle on the sending half.
    pub fn writer(&self) -> SpdyWriter {
        self.writer.clone()
    }

    /// The two halves.
    pub fn split(self) -> (SpdyReader, SpdyWriter) {
        (self.reader, self.writer)
    }
}

/// The receiving half of a stream.
pub struct SpdyReader {
    id: u32,
    rx: mpsc::Receiver<Bytes>,
    shared: Arc<Shared>,
    unacked: u32,
}

impl std::fmt::Debug for SpdyReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpdyReader")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SpdyReader {
    /// The next chunk of data; `None` once the peer finished or reset the
    /// stream or the connection ended. Grants the consumed bytes back to the
    /// peer with WINDOW_UPDATE.
    pub async fn read(&mut self) -> Option<Bytes> {
        let data = self.rx.recv().await?;
        self.unacked = self.unacked.saturating_add(data.len() as u32);
        if self.unacked >= self.shared.config.initial_window / 2 {
            let delta = std::mem::take(&mut self.unacked);
            let _ = self
                .shared
                .send(Frame::WindowUpdate {
                    stream_id: self.id,
                    delta,
                })
                .await;
        }
        Some(data)
    }

    /// Reads until the peer finishes the stream.
    pub async fn read_to_end(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(chunk) = self.read().await {
            out.extend_from_slice(&chunk);
        }
        out
    }
}

/// The sending half of a stream; cheap to clone.
#[derive(Clone)]
pub struct SpdyWriter {
    id: u32,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SpdyWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpdyWriter")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SpdyWriter {
    /// The stream id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Sends `data` in DATA frames, waiting for send window where the peer
    /// does flow control.
    pub async fn write_all(&self, mut data: &[u8]) -> Result<(), SpdyError> {
        while !data.is_empty() {
            let n = self.reserve(data.len()).await?;
            let (chunk, rest) = data.split_at(n);
            let frame = Frame::Data {
                stream_id: self.id,
                flags: 0,
                data: Bytes::copy_from_slice(chunk),
            };
            self.shared.send(frame).await?;
            data = rest;
        }
        Ok(())
    }

    async fn reserve(&self, want: usize) -> Result<usize, SpdyError> {
        let mut changed = self.shared.window_changed.subscribe();
        loop {
            {
                let mut st = self.shared.lock();
                let enforce = st.enforce_send_window;
                let entry = st
                    .streams
                    .get_mut(&self.id)
                    .ok_or(SpdyError::StreamClosed(self.id))?;
                if entry.local_fin {
                    return Err(SpdyError::StreamClosed(self.id));
                }
                let limit = if enforce {
                    entry.send_window.clamp(0, CHUNK as i64) as usize
                } else {
                    CHUNK
                };
                if limit > 0 {
                    let n = want.min(limit);
                    entry.send_window -= n as i64;
                    return Ok(n);
                }
            }
            tokio::select! {
                r = changed.changed() => r.map_err(|_| SpdyError::SessionClosed)?,
                () = self.shared.done.cancelled() => return Err(SpdyError::SessionClosed),
            }
        }
    }

    /// Finishes our half of the stream (an empty DATA frame with FIN).
    pub async fn finish(&self) -> Result<(), SpdyError> {
        let frame = Frame::Data {
            stream_id: self.id,
            flags: FLAG_FIN,
            data: Bytes::new(),
        };
        let was_open = self
            .shared
            .lock()
            .streams
            .get(&self.id)
            .is_some_and(|e| !e.local_fin);
        if was_open {
            self.shared.send(frame).await?;
            self.shared.finish_half(self.id, true);
        }
        Ok(())
    }

    /// Aborts the stream both ways with RST_STREAM.
    pub async fn reset(&self, status: u32) -> Result<(), SpdyError> {
        self.shared.lock().streams.remove(&self.id);
        self.shared
            .send(Frame::RstStream {
                stream_id: self.id,
                status,
            })
            .await
    }
}
