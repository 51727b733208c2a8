//! SPDY/3 frames: the in-memory form of every frame type and their
//! encoding to and decoding from the wire (control frames with version 3,
//! data frames with a 31-bit stream id and a 24-bit length).

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::header::{HeaderCompressor, HeaderDecompressor, Headers};
use crate::error::SpdyError;

/// The protocol version in every control frame.
pub const VERSION: u16 = 3;
/// FIN on a control or data frame: the sender's half of the stream is done.
pub const FLAG_FIN: u8 = 0x01;
/// UNIDIRECTIONAL on SYN_STREAM: the receiver may not send.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// The largest payload a frame's 24-bit length can carry.
pub const MAX_FRAME_LENGTH: usize = (1 << 24) - 1;
/// SETTINGS id of the initial per-stream window size.
pub const SETTINGS_INITIAL_WINDOW_SIZE: u32 = 7;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status codes used here.
pub mod rst {
    /// The peer broke the protocol.
    pub const PROTOCOL_ERROR: u32 = 1;
    /// A frame for a stream that is not open.
    pub const INVALID_STREAM: u32 = 2;
    /// The stream was refused (e.g. after GOAWAY).
    pub const REFUSED_STREAM: u32 = 3;
    /// The stream is no longer needed.
    pub const CANCEL: u32 = 5;
    /// The peer overran the flow-control window.
    pub const FLOW_CONTROL_ERROR: u32 = 7;
}

/// One SETTINGS entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// FLAG_SETTINGS_PERSIST_VALUE (1) / PERSISTED (2).
    pub flags: u8,
    /// The 24-bit setting id.
    pub id: u32,
    /// The value.
    pub value: u32,
}

/// A SPDY/3 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Opens a stream.
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        slot: u8,
        flags: u8,
        headers: Headers,
    },
    /// Accepts a stream.
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    /// Aborts a stream.
    RstStream { stream_id: u32, status: u32 },
    /// Connection settings.
    Settings { flags: u8, entries: Vec<Setting> },
    /// Liveness check; the receiver echoes a peer-initiated id.
    Ping { id: u32 },
    /// No new streams after `last_good_stream_id`.
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    /// More headers for a stream.
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    /// Grows a stream's send window by `delta`.
    WindowUpdate { stream_id: u32, delta: u32 },
    /// Stream payload.
    Data {
        stream_id: u32,
        flags: u8,
        data: Bytes,
    },
    /// A control frame type this implementation ignores (e.g. CREDENTIAL).
    Unknown { frame_type: u16, flags: u8 },
}

fn control_header(
    out: &mut BytesMut,
    frame_type: u16,
    flags: u8,
    len: usize,
) -> Result<(), SpdyError> {
    if len > MAX_FRAME_LENGTH {
        return Err(SpdyError::FrameTooLarge(len));
    }
    out.put_u16(0x8000 | VERSION);
    out.put_u16(frame_type);
    out.put_u32((u32::from(flags) << 24) | len as u32);
    Ok(())
}

impl Frame {
    /// Appends the wire form of `self` to `out`, compressing header blocks
    /// with the connection's `compressor`.
    pub fn encode(
        &self,
        compressor: &mut HeaderCompressor,
        out: &mut BytesMut,
    ) -> Result<(), SpdyError> {
        match self {
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                slot,
                flags,
                headers,
            } => {
                let block = compressor.compress(headers)?;
                control_header(out, TYPE_SYN_STREAM, *flags, block.len() + 10)?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(associated_to & 0x7fff_ffff);
                out.put_u8((priority & 0x07) << 5);
                out.put_u8(*slot);
                out.extend_from_slice(&block);
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            }
            | Frame::Headers {
                stream_id,
                flags,
                headers,
            } => {
                let block = compressor.compress(headers)?;
                let frame_type = if matches!(self, Frame::SynReply { .. }) {
                    TYPE_SYN_REPLY
                } else {
                    TYPE_HEADERS
                };
                control_header(out, frame_type, *flags, block.len() + 4)?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.extend_from_slice(&block);
            }
            Frame::RstStream { stream_id, status } => {
                control_header(out, TYPE_RST_STREAM, 0, 8)?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(*status);
            }
            Frame::Settings { flags, entries } => {
                control_header(out, TYPE_SETTINGS, *flags, 4 + 8 * entries.len())?;
                out.put_u32(entries.len() as u32);
                for e in entries {
                    out.put_u32((u32::from(e.flags) << 24) | (e.id & 0x00ff_ffff));
                    out.put_u32(e.value);
                }
            }
            Frame::Ping { id } => {
                control_header(out, TYPE_PING, 0, 4)?;
                out.put_u32(*id);
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                control_header(out, TYPE_GOAWAY, 0, 8)?;
                out.put_u32(last_good_stream_id & 0x7fff_ffff);
                out.put_u32(*status);
            }
            Frame::WindowUpdate { stream_id, delta } => {
                control_header(out, TYPE_WINDOW_UPDATE, 0, 8)?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(delta & 0x7fff_ffff);
            }
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                if data.len() > MAX_FRAME_LENGTH {
                    return Err(SpdyError::FrameTooLarge(data.len()));
                }
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32((u32::from(*flags) << 24) | data.len() as u32);
                out.extend_from_slice(data);
            }
            Frame::Unknown { frame_type, flags } => control_header(out, *frame_type, *flags, 0)?,
        }
        Ok(())
    }

    /// Parses one frame from its 8-byte header and payload.
    pub fn decode(
        head: [u8; 8],
        payload: Bytes,
        decompressor: &mut HeaderDecompressor,
    ) -> Result<Frame, SpdyError> {
        let word = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let flags = head[4];
        if word & 0x8000_0000 == 0 {
            let stream_id = word & 0x7fff_ffff;
            if stream_id == 0 {
                return Err(SpdyError::InvalidFrame("data frame on stream 0"));
            }
            return Ok(Frame::Data {
                stream_id,
                flags,
                data: payload,
            });
        }
        let version = ((word >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(SpdyError::UnsupportedVersion(version));
        }
        let frame_type = (word & 0xffff) as u16;
        let p = &payload[..];
        let u32_at = |i: usize| -> Result<u32, SpdyError> {
            p.get(i..i + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or(SpdyError::InvalidFrame("control frame too short"))
        };
        let frame = match frame_type {
            TYPE_SYN_STREAM => {
                if p.len() < 10 {
                    return Err(SpdyError::InvalidFrame("SYN_STREAM too short"));
                }
                Frame::SynStream {
                    stream_id: nonzero(u32_at(0)? & 0x7fff_ffff)?,
                    associated_to: u32_at(4)? & 0x7fff_ffff,
                    priority: p[8] >> 5,
                    slot: p[9],
                    flags,
                    headers: decompressor.decompress(&p[10..])?,
                }
            }
            TYPE_SYN_REPLY | TYPE_HEADERS => {
                let stream_id = nonzero(u32_at(0)? & 0x7fff_ffff)?;
                let headers = decompressor.decompress(&p[4..])?;
                if frame_type == TYPE_SYN_REPLY {
                    Frame::SynReply {
                        stream_id,
                        flags,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream_id,
                        flags,
                        headers,
                    }
                }
            }
            TYPE_RST_STREAM => Frame::RstStream {
                stream_id: u32_at(0)? & 0x7fff_ffff,
                status: u32_at(4)?,
            },
            TYPE_SETTINGS => {
                let count = u32_at(0)? as usize;
                if p.len() != 4 + count.saturating_mul(8) {
                    return Err(SpdyError::InvalidFrame(
                        "SETTINGS length does not match its count",
                    ));
                }
                let entries = (0..count)
                    .map(|i| {
                        let fi = u32_at(4 + 8 * i)?;
                        Ok(Setting {
                            flags: (fi >> 24) as u8,
                            id: fi & 0x00ff_ffff,
                            value: u32_at(8 + 8 * i)?,
                        })
                    })
                    .collect::<Result<_, SpdyError>>()?;
                Frame::Settings { flags, entries }
            }
            TYPE_PING => Frame::Ping { id: u32_at(0)? },
            TYPE_GOAWAY => Frame::GoAway {
                last_good_stream_id: u32_at(0)? & 0x7fff_ffff,
                status: u32_at(4)?,
            },
            TYPE_WINDOW_UPDATE => Frame::WindowUpdate {
                stream_id: u32_at(0)? & 0x7fff_ffff,
                delta: u32_at(4)? & 0x7fff_ffff,
            },
            other => Frame::Unknown {
                frame_type: other,
                flags,
            },
        };
        Ok(frame)
    }
}

fn nonzero(stream_id: u32) -> Result<u32, SpdyError> {
    if stream_id == 0 {
        return Err(SpdyError::InvalidFrame("stream id 0"));
    }
    Ok(stream_id)
}

/// Reads one frame; `Ok(None)` on a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    decompressor: &mut HeaderDecompressor,
) -> Result<Option<Frame>, SpdyError> {
    let mut head = [0u8; 8];
    let first = reader.read(&mut head).await?;
    if first == 0 {
        return Ok(None);
    }
    reader.read_exact(&mut head[first..]).await?;
    let len = (u32::from_be_bytes([0, head[5], head[6], head[7]])) as usize;
    let mut payload = vec![0u8; len];
    reader.read_exact(&mut payload).await?;
    Frame::decode(head, Bytes::from(payload), decompressor).map(Some)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn encode(frame: &Frame) -> Vec<u8> {
        let mut out = BytesMut::new();
        frame
            .encode(&mut HeaderCompressor::new().unwrap(), &mut out)
            .unwrap();
        out.to_vec()
    }

    /// Encodes `frame`, checks the bytes, and decodes them back.
    fn check(frame: Frame, expected: &[u8]) {
        let wire = encode(&frame);
        assert_eq!(wire, expected, "{frame:?}");
        let head: [u8; 8] = wire[..8].try_into().unwrap();
        let back = Frame::decode(
            head,
            Bytes::copy_from_slice(&wire[8..]),
            &mut HeaderDecompressor::new(),
        )
        .unwrap();
        assert_eq!(back, frame);
    }

    #[test]
    fn fixed_size_frames_match_the_spec_layout() {
        check(
            Frame::RstStream {
                stream_id: 5,
                status: rst::CANCEL,
            },
            &[0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 5, 0, 0, 0, 5],
        );
        check(
            Frame::Ping { id: 0x0102_0304 },
            &[0x80, 3, 0, 6, 0, 0, 0, 4, 1, 2, 3, 4],
        );
        check(
            Frame::GoAway {
                last_good_stream_id: 7,
                status: 0,
            },
            &[0x80, 3, 0, 7, 0, 0, 0, 8, 0, 0, 0, 7, 0, 0, 0, 0],
        );
        check(
            Frame::WindowUpdate {
                stream_id: 1,
                delta: 0x8000,
            },
            &[0x80, 3, 0, 9, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0x80, 0],
        );
        check(
            Frame::Settings {
                flags: 0,
                entries: vec![Setting {
                    flags: 1,
                    id: 7,
                    value: 65536,
                }],
            },
            &[
                0x80, 3, 0, 4, 0, 0, 0, 12, 0, 0, 0, 1, 1, 0, 0, 7, 0, 1, 0, 0,
            ],
        );
        check(
            Frame::Data {
                stream_id: 3,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"hi"),
            },
            &[0, 0, 0, 3, 1, 0, 0, 2, b'h', b'i'],
        );
    }

    #[test]
    fn header_frames_round_trip_with_compressed_blocks() {
        let (mut c, mut d) = (HeaderCompressor::new().unwrap(), HeaderDecompressor::new());
        let headers = Headers::new().with("streamType", "stdout");
        let frames = [
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 7,
                slot: 0,
                flags: FLAG_FIN,
                headers: headers.clone(),
            },
            Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: Headers::new(),
            },
            Frame::Headers {
                stream_id: 1,
                flags: 0,
                headers,
            },
        ];
        let mut wire = BytesMut::new();
        for f in &frames {
            f.encode(&mut c, &mut wire).unwrap();
        }
        assert_eq!(&wire[..4], &[0x80, 3, 0, 1]);
        assert_eq!(wire[4], FLAG_FIN);
        let mut r = &wire[..];
        for f in &frames {
            let got = futures::executor::block_on(read_frame(&mut r, &mut d))
                .unwrap()
                .unwrap();
            assert_eq!(&got, f);
        }
        assert!(futures::executor::block_on(read_frame(&mut r, &mut d))
            .unwrap()
            .is_none());
    }

    #[test]
    fn malformed_frames_are_errors() {
        let mut d = HeaderDecompressor::new();
        let bad_version = Frame::decode(
            [0x80, 2, 0, 6, 0, 0, 0, 4],
            Bytes::from_static(&[0, 0, 0, 1]),
            &mut d,
        );
        assert!(matches!(bad_version, Err(SpdyError::UnsupportedVersion(2))));
        let short = Frame::decode(
            [0x80, 3, 0, 3, 0, 0, 0, 2],
            Bytes::from_static(&[0, 0]),
            &mut d,
        );
        assert!(matches!(short, Err(SpdyError::InvalidFrame(_))));
        let zero = Frame::decode([0, 0, 0, 0, 0, 0, 0, 0], Bytes::new(), &mut d);
        assert!(matches!(zero, Err(SpdyError::InvalidFrame(_))));
        let unknown = Frame::decode([0x80, 3, 0, 10, 0, 0, 0, 0], Bytes::new(), &mut d).unwrap();
        assert_eq!(
            unknown,
            Frame::Unknown {
                frame_type: 10,
                flags: 0
            }
        );
    }
}
