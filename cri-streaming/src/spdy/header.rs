//! SPDY/3 header blocks: the name/value block format and its zlib
//! compression with the SPDY/3 preset dictionary (one compression context
//! per direction per connection, each block ended by a sync flush).

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::error::SpdyError;

/// The largest decompressed header block accepted from a peer.
const MAX_HEADER_BLOCK: usize = 1 << 20;

/// An ordered list of header names (lower case) and values. Several values
/// of one name travel joined by NUL, as SPDY/3 requires.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// An empty header list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `name: value`; the name is lower-cased (SPDY/3 header names are
    /// lower case on the wire). A second value of a name is NUL-joined.
    pub fn insert(&mut self, name: &str, value: &str) {
        let name = name.to_ascii_lowercase();
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.push('\0');
                v.push_str(value);
            }
            None => self.0.push((name, value.to_owned())),
        }
    }

    /// Builder form of [`Headers::insert`].
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.insert(name, value);
        self
    }

    /// The first value of `name` (case-insensitive), as Go's `Header.Get`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split('\0').next().unwrap_or(""))
    }

    /// All pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of distinct names.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Serializes `headers` as an uncompressed SPDY/3 name/value block
/// (32-bit count, then 32-bit-length-prefixed names and values).
pub fn encode_block(headers: &Headers) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (name, value) in headers.iter() {
        out.extend_from_slice(&(name.len() as u32).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// Parses an uncompressed SPDY/3 name/value block.
pub fn decode_block(mut block: &[u8]) -> Result<Headers, SpdyError> {
    let count = take_u32(&mut block)?;
    let mut headers = Headers::new();
    for _ in 0..count {
        let name = take_string(&mut block)?;
        let value = take_string(&mut block)?;
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(SpdyError::InvalidHeaderBlock(
                "header name empty or not lower case",
            ));
        }
        if headers.get(&name).is_some() {
            return Err(SpdyError::InvalidHeaderBlock("header name repeated"));
        }
        headers.0.push((name, value));
    }
    Ok(headers)
}

fn take_u32(block: &mut &[u8]) -> Result<u32, SpdyError> {
    let Some((head, rest)) = block.split_first_chunk::<4>() else {
        return Err(SpdyError::InvalidHeaderBlock("truncated length"));
    };
    *block = rest;
    Ok(u32::from_be_bytes(*head))
}

fn take_string(block: &mut &[u8]) -> Result<String, SpdyError> {
    let len = take_u32(block)? as usize;
    if len > block.len() {
        return Err(SpdyError::InvalidHeaderBlock("truncated string"));
    }
    let (s, rest) = block.split_at(len);
    *block = rest;
    String::from_utf8(s.to_vec()).map_err(|_| SpdyError::InvalidHeaderBlock("header not utf-8"))
}

/// The compressing half: one per connection, for the frames we send.
pub struct HeaderCompressor {
    zlib: Compress,
}

impl std::fmt::Debug for HeaderCompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderCompressor").finish_non_exhaustive()
    }
}

impl HeaderCompressor {
    /// A zlib stream primed with the SPDY/3 dictionary.
    pub fn new() -> Result<Self, SpdyError> {
        let mut zlib = Compress::new(Compression::best(), true);
        zlib.set_dictionary(super::dictionary::SPDY3_DICTIONARY)
            .map_err(|e| SpdyError::Compression(e.to_string()))?;
        Ok(Self { zlib })
    }

    /// Compresses one header block, ending it with a sync flush.
    pub fn compress(&mut self, headers: &Headers) -> Result<Vec<u8>, SpdyError> {
        let raw = encode_block(headers);
        let mut out = Vec::with_capacity(raw.len() + 64);
        let start = self.zlib.total_in();
        loop {
            let consumed = (self.zlib.total_in() - start) as usize;
            self.zlib
                .compress_vec(&raw[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Compression(e.to_string()))?;
            let consumed = (self.zlib.total_in() - start) as usize;
            if consumed == raw.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            out.reserve(256);
        }
    }
}

/// The decompressing half: one per connection, for the frames we receive.
pub struct HeaderDecompressor {
    zlib: Decompress,
}

impl std::fmt::Debug for HeaderDecompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderDecompressor").finish_non_exhaustive()
    }
}

impl Default for HeaderDecompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderDecompressor {
    /// A zlib stream that supplies the SPDY/3 dictionary when asked for it.
    pub fn new() -> Self {
        Self {
            zlib: Decompress::new(true),
        }
    }

    /// Decompresses and parses one header block.
    pub fn decompress(&mut self, input: &[u8]) -> Result<Headers, SpdyError> {
        let mut out = Vec::with_capacity(input.len() * 4 + 64);
        let start = self.zlib.total_in();
        loop {
            let consumed = (self.zlib.total_in() - start) as usize;
            match self
                .zlib
                .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)
            {
                Ok(Status::Ok | Status::BufError) => {}
                Ok(Status::StreamEnd) => break,
                Err(e) if e.needs_dictionary().is_some() => {
                    self.zlib
                        .set_dictionary(super::dictionary::SPDY3_DICTIONARY)
                        .map_err(|e| SpdyError::Compression(e.to_string()))?;
                    continue;
                }
                Err(e) => return Err(SpdyError::Compression(e.to_string())),
            }
            let consumed = (self.zlib.total_in() - start) as usize;
            if consumed == input.len() && out.len() < out.capacity() {
                break;
            }
            if out.len() > MAX_HEADER_BLOCK {
                return Err(SpdyError::InvalidHeaderBlock("header block too large"));
            }
            out.reserve(1024);
        }
        decode_block(&out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// `{streamtype: error}` then `{port: 8080, requestid: 0, streamtype: data}`
    /// compressed by C zlib (level 9, SPDY/3 dictionary, sync flush), as one
    /// connection's first two header blocks.
    const C_ZLIB_BLOCK_1: &[u8] = &[
        0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2, 0x02, 0xa6, 0x23, 0x46, 0x70, 0x3a, 0x2b, 0x29, 0x4a,
        0x4d, 0xcc, 0x85, 0x16, 0x25, 0xac, 0xa9, 0xa0, 0x80, 0x06, 0x00, 0x00, 0x00, 0xff, 0xff,
    ];
    const C_ZLIB_BLOCK_2: &[u8] = &[
        0x02, 0xa5, 0x47, 0x48, 0xd1, 0x5c, 0x04, 0xce, 0x05, 0x16, 0x06, 0x16, 0x06, 0x40, 0x9a,
        0xb3, 0x08, 0x12, 0x95, 0x99, 0xa0, 0x24, 0xce, 0x68, 0x80, 0xa1, 0x19, 0x54, 0x0e, 0x25,
        0x02, 0x00, 0x00, 0x00, 0xff, 0xff,
    ];

    #[test]
    fn decompresses_blocks_made_by_c_zlib() {
        let mut d = HeaderDecompressor::new();
        assert_eq!(
            d.decompress(C_ZLIB_BLOCK_1).unwrap(),
            Headers::new().with("streamtype", "error")
        );
        let expected = Headers::new()
            .with("port", "8080")
            .with("requestid", "0")
            .with("streamtype", "data");
        assert_eq!(d.decompress(C_ZLIB_BLOCK_2).unwrap(), expected);
    }

    #[test]
    fn zlib_header_names_the_spdy_dictionary() {
        let mut c = HeaderCompressor::new().unwrap();
        let out = c.compress(&Headers::new().with("a", "b")).unwrap();
        // FDICT set, then DICTID = adler32 of the 1423-byte dictionary.
        assert_eq!(out[1] & 0x20, 0x20);
        assert_eq!(&out[2..6], &[0xe3, 0xc6, 0xa7, 0xc2]);
        assert_eq!(
            &out[out.len() - 4..],
            &[0x00, 0x00, 0xff, 0xff],
            "sync flush marker"
        );
    }

    #[test]
    fn compressed_round_trip_keeps_context_across_blocks() {
        let (mut c, mut d) = (HeaderCompressor::new().unwrap(), HeaderDecompressor::new());
        for i in 0..50 {
            let h = Headers::new()
                .with("streamtype", "stdout")
                .with("x-n", &i.to_string())
                .with("multi", "a")
                .with("multi", "b");
            let z = c.compress(&h).unwrap();
            let back = d.decompress(&z).unwrap();
            assert_eq!(back, h);
            assert_eq!(back.get("Multi"), Some("a"));
        }
    }

    #[test]
    fn block_layout_is_counted_and_length_prefixed() {
        let raw = encode_block(&Headers::new().with("StreamType", "error"));
        let expected: &[u8] = b"\0\0\0\x01\0\0\0\x0astreamtype\0\0\0\x05error";
        assert_eq!(raw, expected);
        assert_eq!(decode_block(&raw).unwrap().get("streamType"), Some("error"));
    }

    #[test]
    fn bad_blocks_are_rejected() {
        let check = |raw: &[u8]| {
            assert!(matches!(
                decode_block(raw),
                Err(SpdyError::InvalidHeaderBlock(_))
            ))
        };
        check(b"\0\0");
        check(b"\0\0\0\x01\0\0\0\x09streamtype");
        check(b"\0\0\0\x01\0\0\0\x01A\0\0\0\0");
        check(b"\0\0\0\x02\0\0\0\x01a\0\0\0\0\0\0\0\x01a\0\0\0\0");
        assert!(HeaderDecompressor::new().decompress(b"garbage!").is_err());
    }
}
