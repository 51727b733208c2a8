//! HTTP/2 frame headers (RFC 9113 §4.1) and the few frame types the shim
//! looks into.

use bytes::BufMut;

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Length of a frame header.
pub const HEADER_LEN: usize = 9;
/// The smallest SETTINGS_MAX_FRAME_SIZE a peer may advertise; the shim never
/// writes a larger frame payload, so whatever the server advertised holds.
pub const MIN_MAX_FRAME_SIZE: usize = 16_384;

pub const TYPE_HEADERS: u8 = 0x1;
pub const TYPE_PUSH_PROMISE: u8 = 0x5;
pub const TYPE_CONTINUATION: u8 = 0x9;

pub const FLAG_END_STREAM: u8 = 0x1;
pub const FLAG_END_HEADERS: u8 = 0x4;
pub const FLAG_PADDED: u8 = 0x8;
pub const FLAG_PRIORITY: u8 = 0x20;

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub len: usize,
    pub kind: u8,
    pub flags: u8,
    pub stream_id: u32,
}

impl FrameHeader {
    /// Parses the first [`HEADER_LEN`] bytes of `buf`.
    pub fn parse(buf: &[u8; HEADER_LEN]) -> FrameHeader {
        FrameHeader {
            len: usize::from(buf[0]) << 16 | usize::from(buf[1]) << 8 | usize::from(buf[2]),
            kind: buf[3],
            flags: buf[4],
            stream_id: u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff,
        }
    }

    /// Appends the header to `out`. `len` must fit 24 bits (callers write at
    /// most [`MIN_MAX_FRAME_SIZE`]).
    pub fn write(&self, out: &mut impl BufMut) {
        let len = u32::try_from(self.len).unwrap_or(u32::MAX).min(0x00ff_ffff);
        out.put_slice(&len.to_be_bytes()[1..]);
        out.put_u8(self.kind);
        out.put_u8(self.flags);
        out.put_u32(self.stream_id & 0x7fff_ffff);
    }
}

/// One whole frame, for tests.
#[cfg(test)]
pub(crate) fn frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    FrameHeader {
        len: payload.len(),
        kind,
        flags,
        stream_id,
    }
    .write(&mut out);
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let h = FrameHeader {
            len: 0x01_02_03,
            kind: TYPE_HEADERS,
            flags: FLAG_END_HEADERS | FLAG_END_STREAM,
            stream_id: 0x1234_5678,
        };
        let mut buf = Vec::new();
        h.write(&mut buf);
        assert_eq!(buf, [1, 2, 3, 1, 5, 0x12, 0x34, 0x56, 0x78]);
        let mut fixed = [0u8; HEADER_LEN];
        fixed.copy_from_slice(&buf);
        assert_eq!(FrameHeader::parse(&fixed), h);
    }

    #[test]
    fn reserved_stream_bit_is_ignored() {
        let parsed = FrameHeader::parse(&[0, 0, 0, 0, 0, 0x80, 0, 0, 3]);
        assert_eq!(parsed.stream_id, 3);
    }
}
