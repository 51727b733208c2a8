//! The sans-IO core: client-to-server HTTP/2 bytes in, the same bytes out
//! with every request header block re-encoded and an unacceptable
//! `:authority` replaced.

use bytes::{Buf, BytesMut};
use httlib_hpack::{Decoder, Encoder};

use crate::error::ShimError;
use crate::frame::{
    FrameHeader, FLAG_END_HEADERS, FLAG_END_STREAM, FLAG_PADDED, FLAG_PRIORITY, HEADER_LEN,
    MIN_MAX_FRAME_SIZE, PREFACE, TYPE_CONTINUATION, TYPE_HEADERS, TYPE_PUSH_PROMISE,
};

/// What an unacceptable `:authority` becomes (what tonic's own client sends
/// on a unix socket).
pub const REPLACEMENT_AUTHORITY: &[u8] = b"localhost";

/// The server's SETTINGS_HEADER_TABLE_SIZE, which bounds the client's HPACK
/// dynamic table: h2's default. hyper and tonic never change it; a server
/// that advertised another size would need the same value here.
const SERVER_HEADER_TABLE_SIZE: u32 = 4096;

/// The largest header block (all fragments of one HEADERS + CONTINUATION
/// sequence) the shim buffers: h2's default max header list size.
const MAX_HEADER_BLOCK: usize = 16 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Matching the client preface; `matched` bytes of it seen so far.
    Preface { matched: usize },
    /// Not HTTP/2 with prior knowledge: pass everything and let the server
    /// answer it.
    Transparent,
    /// Waiting for the next 9-byte frame header.
    FrameHeader,
    /// Copying `remaining` payload bytes of a frame the shim does not touch.
    Passthrough { remaining: usize },
    /// Buffering the payload of a HEADERS or CONTINUATION frame.
    HeaderPayload(FrameHeader),
}

/// A header block waiting for its END_HEADERS.
#[derive(Debug)]
struct PendingBlock {
    stream_id: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    block: Vec<u8>,
}

/// Rewrites one connection's client-to-server byte stream. The HPACK
/// decoder follows the client's encoder for the connection's whole life,
/// so one `Rewriter` per connection, fed every byte in order.
#[derive(Debug)]
pub struct Rewriter {
    state: State,
    pending: Option<PendingBlock>,
    decoder: Decoder<'static>,
    encoder: Encoder<'static>,
    fields: Vec<(Vec<u8>, Vec<u8>, u8)>,
    rewritten: u64,
    last_replaced: Vec<u8>,
}

impl Default for Rewriter {
    fn default() -> Self {
        Self::new()
    }
}

impl Rewriter {
    pub fn new() -> Rewriter {
        Rewriter {
            state: State::Preface { matched: 0 },
            pending: None,
            decoder: Decoder::with_dynamic_size(SERVER_HEADER_TABLE_SIZE),
            // Never asked to index, so its dynamic table (and the server's)
            // stays empty.
            encoder: Encoder::with_dynamic_size(0),
            fields: Vec::new(),
            rewritten: 0,
            last_replaced: Vec::new(),
        }
    }

    /// How many `:authority` values were replaced so far.
    pub fn rewritten(&self) -> u64 {
        self.rewritten
    }

    /// The last `:authority` value that was replaced.
    pub fn last_replaced(&self) -> &[u8] {
        &self.last_replaced
    }

    /// How many bytes may next be copied to the server untouched, straight
    /// from the client, when nothing is buffered: the rest of a DATA (or
    /// other opaque) frame's payload. Zero when the shim must see them.
    pub fn passthrough_budget(&self) -> usize {
        match self.state {
            State::Passthrough { remaining } => remaining,
            State::Transparent => usize::MAX,
            _ => 0,
        }
    }

    /// Records that `n` bytes (at most [`passthrough_budget`]) went to the
    /// server untouched.
    ///
    /// [`passthrough_budget`]: Self::passthrough_budget
    pub fn passed_through(&mut self, n: usize) {
        if let State::Passthrough { remaining } = self.state {
            let remaining = remaining.saturating_sub(n);
            self.state = if remaining == 0 {
                State::FrameHeader
            } else {
                State::Passthrough { remaining }
            };
        }
    }

    /// Consumes as much of `input` as can be handled now and appends what
    /// the server should read to `out`. Bytes of an incomplete frame header
    /// or header frame stay in `input` for the next call.
    pub fn process(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Result<(), ShimError> {
        loop {
            match self.state {
                State::Preface { matched } => {
                    let want = &PREFACE[matched..];
                    let n = want.len().min(input.len());
                    if n == 0 {
                        return Ok(());
                    }
                    if input[..n] != want[..n] {
                        tracing::debug!(
                            "not an HTTP/2 prior-knowledge client; passing bytes through"
                        );
                        self.state = State::Transparent;
                        continue;
                    }
                    out.extend_from_slice(&input[..n]);
                    input.advance(n);
                    self.state = if matched + n == PREFACE.len() {
                        State::FrameHeader
                    } else {
                        State::Preface {
                            matched: matched + n,
                        }
                    };
                }
                State::Transparent => {
                    out.extend_from_slice(input);
                    input.clear();
                    return Ok(());
                }
                State::FrameHeader => {
                    let Some(raw) = input.get(..HEADER_LEN) else {
                        return Ok(());
                    };
                    let mut fixed = [0u8; HEADER_LEN];
                    fixed.copy_from_slice(raw);
                    let header = FrameHeader::parse(&fixed);
                    self.on_frame_header(header, &fixed, out)?;
                    input.advance(HEADER_LEN);
                }
                State::Passthrough { remaining } => {
                    let n = remaining.min(input.len());
                    if n == 0 {
                        return Ok(());
                    }
                    out.extend_from_slice(&input[..n]);
                    input.advance(n);
                    self.passed_through(n);
                }
                State::HeaderPayload(header) => {
                    if input.len() < header.len {
                        return Ok(());
                    }
                    let payload = input.split_to(header.len);
                    self.state = State::FrameHeader;
                    self.on_header_frame(header, &payload, out)?;
                }
            }
        }
    }

    fn on_frame_header(
        &mut self,
        header: FrameHeader,
        raw: &[u8; HEADER_LEN],
        out: &mut BytesMut,
    ) -> Result<(), ShimError> {
        if let Some(pending) = &self.pending {
            if header.kind != TYPE_CONTINUATION || header.stream_id != pending.stream_id {
                return Err(ShimError::ExpectedContinuation {
                    expected: pending.stream_id,
                    frame_type: header.kind,
                    stream_id: header.stream_id,
                });
            }
        }
        match header.kind {
            TYPE_HEADERS | TYPE_CONTINUATION => {
                if header.len > MAX_HEADER_BLOCK {
                    return Err(ShimError::HeaderBlockTooLarge {
                        stream_id: header.stream_id,
                        limit: MAX_HEADER_BLOCK,
                    });
                }
                self.state = State::HeaderPayload(header);
            }
            // It carries a header block too; a client may never send one.
            TYPE_PUSH_PROMISE => {
                return Err(ShimError::PushPromiseFromClient {
                    stream_id: header.stream_id,
                })
            }
            _ => {
                out.extend_from_slice(raw);
                self.state = if header.len == 0 {
                    State::FrameHeader
                } else {
                    State::Passthrough {
                        remaining: header.len,
                    }
                };
            }
        }
        Ok(())
    }

    fn on_header_frame(
        &mut self,
        header: FrameHeader,
        payload: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), ShimError> {
        let malformed = |reason| ShimError::Frame {
            frame: if header.kind == TYPE_HEADERS {
                "HEADERS"
            } else {
                "CONTINUATION"
            },
            stream_id: header.stream_id,
            reason,
        };
        if header.stream_id == 0 {
            return Err(malformed("stream id 0"));
        }
        if header.kind == TYPE_HEADERS {
            let mut rest = payload;
            let mut pad = 0;
            if header.flags & FLAG_PADDED != 0 {
                let (&len, tail) = rest.split_first().ok_or(malformed("missing pad length"))?;
                pad = usize::from(len);
                rest = tail;
            }
            let priority = if header.flags & FLAG_PRIORITY != 0 {
                let (fields, tail) = rest
                    .split_first_chunk::<5>()
                    .ok_or(malformed("truncated priority"))?;
                rest = tail;
                Some(*fields)
            } else {
                None
            };
            let fragment = rest
                .len()
                .checked_sub(pad)
                .map(|end| &rest[..end])
                .ok_or(malformed("padding exceeds payload"))?;
            self.pending = Some(PendingBlock {
                stream_id: header.stream_id,
                end_stream: header.flags & FLAG_END_STREAM != 0,
                priority,
                block: fragment.to_vec(),
            });
        } else {
            let pending = self
                .pending
                .as_mut()
                .ok_or(malformed("CONTINUATION without HEADERS"))?;
            if pending.block.len() + payload.len() > MAX_HEADER_BLOCK {
                return Err(ShimError::HeaderBlockTooLarge {
                    stream_id: header.stream_id,
                    limit: MAX_HEADER_BLOCK,
                });
            }
            pending.block.extend_from_slice(payload);
        }
        if header.flags & FLAG_END_HEADERS != 0 {
            if let Some(pending) = self.pending.take() {
                self.finish_block(pending, out)?;
            }
        }
        Ok(())
    }

    /// Decodes a complete block, fixes `:authority`, re-encodes it and
    /// writes it as HEADERS (+ CONTINUATION) frames.
    fn finish_block(&mut self, pending: PendingBlock, out: &mut BytesMut) -> Result<(), ShimError> {
        let PendingBlock {
            stream_id,
            end_stream,
            priority,
            mut block,
        } = pending;
        self.fields.clear();
        self.decoder
            .decode(&mut block, &mut self.fields)
            .map_err(|e| ShimError::Hpack {
                stream_id,
                reason: e.to_string(),
            })?;
        let mut encoded = Vec::with_capacity(block.capacity());
        for (name, mut value, flags) in self.fields.drain(..) {
            if name == b":authority" && !acceptable_authority(&value) {
                self.last_replaced = std::mem::replace(&mut value, REPLACEMENT_AUTHORITY.to_vec());
                self.rewritten += 1;
            }
            let flags = if flags & Decoder::NEVER_INDEXED != 0 {
                Encoder::NEVER_INDEXED
            } else {
                Encoder::BEST_FORMAT
            };
            self.encoder
                .encode((name, value, flags), &mut encoded)
                .map_err(|e| ShimError::Hpack {
                    stream_id,
                    reason: format!("re-encoding: {e}"),
                })?;
        }
        write_header_frames(stream_id, end_stream, priority, &encoded, out);
        Ok(())
    }
}

/// Whether `h2` would accept `value` as `:authority` (it parses it with
/// `http::uri::Authority` and refuses an empty or non-UTF-8 one).
fn acceptable_authority(value: &[u8]) -> bool {
    !value.is_empty()
        && std::str::from_utf8(value).is_ok()
        && http::uri::Authority::try_from(value).is_ok()
}

/// Writes `block` as one HEADERS frame and as many CONTINUATION frames as
/// needed, no payload larger than the protocol's minimum frame size.
fn write_header_frames(
    stream_id: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    block: &[u8],
    out: &mut BytesMut,
) {
    let first_room = MIN_MAX_FRAME_SIZE - if priority.is_some() { 5 } else { 0 };
    let (first, mut rest) = block.split_at(first_room.min(block.len()));
    let mut flags = 0;
    if end_stream {
        flags |= FLAG_END_STREAM;
    }
    if priority.is_some() {
        flags |= FLAG_PRIORITY;
    }
    if rest.is_empty() {
        flags |= FLAG_END_HEADERS;
    }
    out.reserve(block.len() + HEADER_LEN * (2 + block.len() / MIN_MAX_FRAME_SIZE));
    FrameHeader {
        len: first.len() + if priority.is_some() { 5 } else { 0 },
        kind: TYPE_HEADERS,
        flags,
        stream_id,
    }
    .write(out);
    if let Some(priority) = priority {
        out.extend_from_slice(&priority);
    }
    out.extend_from_slice(first);
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(MIN_MAX_FRAME_SIZE.min(rest.len()));
        rest = tail;
        FrameHeader {
            len: chunk.len(),
            kind: TYPE_CONTINUATION,
            flags: if rest.is_empty() { FLAG_END_HEADERS } else { 0 },
            stream_id,
        }
        .write(out);
        out.extend_from_slice(chunk);
    }
}

#[cfg(test)]
#[path = "rewrite_tests.rs"]
mod tests;
