#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;
use httlib_hpack::{Decoder, Encoder};

use super::*;
use crate::frame::{frame, FrameHeader};

/// Hand-built HPACK representations (RFC 7541 §6), so each test says which
/// one it sends.
mod hpack {
    /// An integer with an `n`-bit prefix, the first byte's high bits `mask`.
    pub fn int(mask: u8, n: u32, mut value: usize, out: &mut Vec<u8>) {
        let max = (1usize << n) - 1;
        if value < max {
            out.push(mask | value as u8);
            return;
        }
        out.push(mask | max as u8);
        value -= max;
        while value >= 128 {
            out.push((value % 128) as u8 | 0x80);
            value /= 128;
        }
        out.push(value as u8);
    }

    pub fn string(s: &[u8], out: &mut Vec<u8>) {
        int(0, 7, s.len(), out);
        out.extend_from_slice(s);
    }

    pub fn indexed(index: usize) -> Vec<u8> {
        let mut out = Vec::new();
        int(0x80, 7, index, &mut out);
        out
    }

    /// Literal with incremental indexing, indexed name (§6.2.1).
    pub fn incremental(name_index: usize, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        int(0x40, 6, name_index, &mut out);
        string(value, &mut out);
        out
    }

    /// Literal with incremental indexing, new name (§6.2.1).
    pub fn incremental_new(name: &[u8], value: &[u8]) -> Vec<u8> {
        let mut out = vec![0x40];
        string(name, &mut out);
        string(value, &mut out);
        out
    }

    /// Literal without indexing, indexed name (§6.2.2).
    pub fn without_indexing(name_index: usize, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        int(0x00, 4, name_index, &mut out);
        string(value, &mut out);
        out
    }

    /// Literal never indexed, indexed name (§6.2.3).
    pub fn never_indexed(name_index: usize, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        int(0x10, 4, name_index, &mut out);
        string(value, &mut out);
        out
    }

    /// Literal never indexed, new name (§6.2.3).
    pub fn never_indexed_new(name: &[u8], value: &[u8]) -> Vec<u8> {
        let mut out = vec![0x10];
        string(name, &mut out);
        string(value, &mut out);
        out
    }

    /// Dynamic table size update (§6.3).
    pub fn size_update(size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        int(0x20, 5, size, &mut out);
        out
    }

    /// Static table indexes used below.
    pub const AUTHORITY: usize = 1;
    pub const METHOD_POST: usize = 3;
    pub const PATH: usize = 4;
    pub const SCHEME_HTTP: usize = 6;
    pub const AUTHORIZATION: usize = 23;
}

const SOCKET_PATH: &[u8] = b"/run/cri-server/cri-server.sock";
const PERCENT_PATH: &[u8] = b"%2Frun%2Fcri-server%2Fcri-server.sock";

/// The request line of a gRPC call, then `authority`, then `extra`.
fn request(authority: Vec<u8>, extra: &[Vec<u8>]) -> Vec<u8> {
    let mut block = Vec::new();
    block.extend(hpack::indexed(hpack::METHOD_POST));
    block.extend(hpack::indexed(hpack::SCHEME_HTTP));
    block.extend(hpack::without_indexing(
        hpack::PATH,
        b"/runtime.v1.RuntimeService/Version",
    ));
    block.extend(authority);
    for e in extra {
        block.extend_from_slice(e);
    }
    block
}

fn headers(stream_id: u32, block: &[u8]) -> Vec<u8> {
    frame(TYPE_HEADERS, FLAG_END_HEADERS, stream_id, block)
}

fn preface_and_settings() -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    out
}

/// A frame as the server reads it.
#[derive(Debug)]
struct Frame {
    header: FrameHeader,
    payload: Vec<u8>,
}

/// Feeds `input` in chunks of `chunk` bytes and returns what the server
/// would read.
fn run(rw: &mut Rewriter, input: &[u8], chunk: usize) -> Result<Vec<u8>, ShimError> {
    let mut buf = BytesMut::new();
    let mut out = BytesMut::new();
    for piece in input.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        rw.process(&mut buf, &mut out)?;
    }
    assert!(buf.is_empty(), "left unconsumed: {buf:?}");
    Ok(out.to_vec())
}

fn frames(mut bytes: &[u8]) -> Vec<Frame> {
    if bytes.starts_with(PREFACE) {
        bytes = &bytes[PREFACE.len()..];
    }
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let mut fixed = [0u8; HEADER_LEN];
        fixed.copy_from_slice(&bytes[..HEADER_LEN]);
        let header = FrameHeader::parse(&fixed);
        let payload = bytes[HEADER_LEN..HEADER_LEN + header.len].to_vec();
        bytes = &bytes[HEADER_LEN + header.len..];
        out.push(Frame { header, payload });
    }
    out
}

/// Decodes the header blocks the server reads, with a decoder of its own
/// (as the server's), one entry per block.
fn server_blocks(bytes: &[u8]) -> Vec<Vec<(String, String, u8)>> {
    let mut decoder = Decoder::with_dynamic_size(4096);
    let mut blocks = Vec::new();
    let mut block = Vec::new();
    for f in frames(bytes) {
        if f.header.kind != TYPE_HEADERS && f.header.kind != TYPE_CONTINUATION {
            continue;
        }
        let mut payload = f.payload.as_slice();
        if f.header.kind == TYPE_HEADERS && f.header.flags & FLAG_PRIORITY != 0 {
            payload = &payload[5..];
        }
        block.extend_from_slice(payload);
        if f.header.flags & FLAG_END_HEADERS != 0 {
            let mut fields = Vec::new();
            decoder.decode(&mut block, &mut fields).unwrap();
            block.clear();
            blocks.push(
                fields
                    .into_iter()
                    .map(|(n, v, fl)| {
                        (
                            String::from_utf8(n).unwrap(),
                            String::from_utf8(v).unwrap(),
                            fl,
                        )
                    })
                    .collect(),
            );
        }
    }
    blocks
}

fn authority_of(block: &[(String, String, u8)]) -> Option<&str> {
    block
        .iter()
        .find(|(n, _, _)| n == ":authority")
        .map(|(_, v, _)| v.as_str())
}

/// One request with `authority_repr` through a fresh rewriter: the
/// authority the server reads.
fn check(authority_repr: Vec<u8>, expected: Option<&str>) {
    let mut input = preface_and_settings();
    input.extend(headers(1, &request(authority_repr, &[])));
    let out = run(&mut Rewriter::new(), &input, 7).unwrap();
    let blocks = server_blocks(&out);
    assert_eq!(blocks.len(), 1);
    assert_eq!(authority_of(&blocks[0]), expected);
    assert_eq!(blocks[0][0].1, "POST");
    assert_eq!(blocks[0][2].1, "/runtime.v1.RuntimeService/Version");
}

#[test]
fn socket_path_in_a_literal_with_indexing_is_replaced() {
    check(
        hpack::incremental(hpack::AUTHORITY, SOCKET_PATH),
        Some("localhost"),
    );
}

#[test]
fn percent_encoded_path_without_indexing_is_replaced() {
    check(
        hpack::without_indexing(hpack::AUTHORITY, PERCENT_PATH),
        Some("localhost"),
    );
}

#[test]
fn empty_never_indexed_authority_is_replaced() {
    check(
        hpack::never_indexed(hpack::AUTHORITY, b""),
        Some("localhost"),
    );
}

#[test]
fn authority_with_a_new_name_literal_is_replaced() {
    check(
        hpack::incremental_new(b":authority", SOCKET_PATH),
        Some("localhost"),
    );
}

#[test]
fn huffman_coded_path_is_replaced() {
    let mut repr = Vec::new();
    Encoder::default()
        .encode(
            (
                1u32,
                SOCKET_PATH.to_vec(),
                Encoder::HUFFMAN_VALUE | Encoder::WITH_INDEXING,
            ),
            &mut repr,
        )
        .unwrap();
    assert_eq!(repr[0], 0x41, "literal with indexing, indexed name");
    assert_eq!(repr[1] & 0x80, 0x80, "the value is Huffman coded");
    check(repr, Some("localhost"));
}

#[test]
fn valid_authorities_are_kept() {
    check(
        hpack::incremental(hpack::AUTHORITY, b"localhost"),
        Some("localhost"),
    );
    check(
        hpack::without_indexing(hpack::AUTHORITY, b"cri.example:1234"),
        Some("cri.example:1234"),
    );
    check(
        hpack::without_indexing(hpack::AUTHORITY, b"127.0.0.1:10010"),
        Some("127.0.0.1:10010"),
    );
}

#[test]
fn missing_authority_stays_missing() {
    check(Vec::new(), None);
}

#[test]
fn authority_from_the_dynamic_table_is_replaced_in_every_request() {
    // Request 1 inserts the path and a custom header into the client's
    // dynamic table; requests 2 and 3 refer to them by index only.
    let mut input = preface_and_settings();
    input.extend(headers(
        1,
        &request(
            hpack::incremental(hpack::AUTHORITY, SOCKET_PATH),
            &[hpack::incremental_new(b"user-agent-x", b"crictl")],
        ),
    ));
    // Newest entry first: 62 = user-agent-x, 63 = :authority.
    for stream in [3, 5] {
        input.extend(headers(
            stream,
            &request(hpack::indexed(63), &[hpack::indexed(62)]),
        ));
    }
    let mut rw = Rewriter::new();
    let out = run(&mut rw, &input, 5).unwrap();
    let blocks = server_blocks(&out);
    assert_eq!(blocks.len(), 3);
    for block in &blocks {
        assert_eq!(authority_of(block), Some("localhost"));
        assert_eq!(block[4], ("user-agent-x".into(), "crictl".into(), 0));
    }
    assert_eq!(rw.rewritten(), 3);
    assert_eq!(rw.last_replaced(), SOCKET_PATH);
}

#[test]
fn the_servers_dynamic_table_is_never_used() {
    let mut input = preface_and_settings();
    input.extend(headers(
        1,
        &request(
            hpack::incremental(hpack::AUTHORITY, SOCKET_PATH),
            &[hpack::incremental_new(b"x-a", b"1")],
        ),
    ));
    let out = run(&mut Rewriter::new(), &input, 64).unwrap();
    let blocks = server_blocks(&out);
    assert!(blocks[0]
        .iter()
        .all(|(_, _, flags)| flags & Decoder::WITH_INDEXING == 0));
}

#[test]
fn never_indexed_fields_stay_never_indexed() {
    let mut input = preface_and_settings();
    input.extend(headers(
        1,
        &request(
            hpack::incremental(hpack::AUTHORITY, SOCKET_PATH),
            &[
                hpack::never_indexed(hpack::AUTHORIZATION, b"Bearer secret"),
                hpack::never_indexed_new(b"x-token", b"t0k3n"),
            ],
        ),
    ));
    let out = run(&mut Rewriter::new(), &input, 3).unwrap();
    let blocks = server_blocks(&out);
    for name in ["authorization", "x-token"] {
        let (_, _, flags) = blocks[0].iter().find(|(n, _, _)| n == name).unwrap();
        assert_eq!(
            flags & Decoder::NEVER_INDEXED,
            Decoder::NEVER_INDEXED,
            "{name}"
        );
    }
}

#[test]
fn dynamic_table_size_updates_are_followed() {
    // Shrink to 0 (evicting everything), then grow back to 4096 and index.
    let mut input = preface_and_settings();
    input.extend(headers(
        1,
        &request(hpack::incremental(hpack::AUTHORITY, SOCKET_PATH), &[]),
    ));
    let mut block = hpack::size_update(0);
    block.extend(hpack::size_update(4096));
    block.extend(request(
        hpack::incremental(hpack::AUTHORITY, PERCENT_PATH),
        &[],
    ));
    input.extend(headers(3, &block));
    input.extend(headers(5, &request(hpack::indexed(62), &[])));
    let out = run(&mut Rewriter::new(), &input, 11).unwrap();
    let blocks = server_blocks(&out);
    assert_eq!(blocks.len(), 3);
    assert!(blocks.iter().all(|b| authority_of(b) == Some("localhost")));
}

#[test]
fn a_size_update_above_the_servers_setting_closes_the_connection() {
    let mut input = preface_and_settings();
    let mut block = hpack::size_update(65_536);
    block.extend(request(hpack::incremental(hpack::AUTHORITY, b"x"), &[]));
    input.extend(headers(1, &block));
    let err = run(&mut Rewriter::new(), &input, 100).unwrap_err();
    assert!(
        matches!(err, ShimError::Hpack { stream_id: 1, .. }),
        "{err}"
    );
}

#[test]
fn continuation_frames_are_joined_and_rewritten() {
    let block = request(
        hpack::incremental(hpack::AUTHORITY, SOCKET_PATH),
        &[hpack::incremental_new(b"x-big", &[b'v'; 300])],
    );
    let (a, rest) = block.split_at(10);
    let (b, c) = rest.split_at(20);
    let mut input = preface_and_settings();
    input.extend(frame(TYPE_HEADERS, FLAG_END_STREAM, 1, a));
    input.extend(frame(TYPE_CONTINUATION, 0, 1, b));
    input.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, c));
    input.extend(frame(0x0, FLAG_END_STREAM, 1, b"\0\0\0\0\0"));
    // One byte at a time: every frame boundary falls in a read.
    let out = run(&mut Rewriter::new(), &input, 1).unwrap();
    let out_frames = frames(&out);
    let header_frame = &out_frames[1];
    assert_eq!(header_frame.header.kind, TYPE_HEADERS);
    assert_eq!(
        header_frame.header.flags,
        FLAG_END_STREAM | FLAG_END_HEADERS
    );
    assert_eq!(out_frames[2].header.kind, 0x0, "DATA follows untouched");
    assert_eq!(out_frames[2].payload, b"\0\0\0\0\0");
    let blocks = server_blocks(&out);
    assert_eq!(authority_of(&blocks[0]), Some("localhost"));
    assert_eq!(blocks[0][4].1.len(), 300);
}

#[test]
fn large_blocks_are_split_into_continuations_no_larger_than_16k() {
    // 40 KiB of metadata in incrementally indexed fields that the server
    // must receive as literals: more than two frames' worth.
    let extra: Vec<Vec<u8>> = (0..10)
        .map(|i| hpack::incremental_new(format!("x-md-{i}").as_bytes(), &[b'a'; 4000]))
        .collect();
    let block = request(hpack::incremental(hpack::AUTHORITY, SOCKET_PATH), &extra);
    let mut input = preface_and_settings();
    for (i, chunk) in block.chunks(16_000).enumerate() {
        let kind = if i == 0 {
            TYPE_HEADERS
        } else {
            TYPE_CONTINUATION
        };
        let last = (i + 1) * 16_000 >= block.len();
        input.extend(frame(
            kind,
            if last { FLAG_END_HEADERS } else { 0 },
            7,
            chunk,
        ));
    }
    let out = run(&mut Rewriter::new(), &input, 4096).unwrap();
    let header_frames: Vec<Frame> = frames(&out)
        .into_iter()
        .filter(|f| f.header.kind == TYPE_HEADERS || f.header.kind == TYPE_CONTINUATION)
        .collect();
    assert!(header_frames.len() >= 3, "{} frames", header_frames.len());
    assert_eq!(header_frames[0].header.kind, TYPE_HEADERS);
    for (i, f) in header_frames.iter().enumerate() {
        assert!(f.header.len <= 16_384);
        assert_eq!(f.header.stream_id, 7);
        let last = i + 1 == header_frames.len();
        assert_eq!(f.header.flags & FLAG_END_HEADERS != 0, last);
        if i > 0 {
            assert_eq!(f.header.kind, TYPE_CONTINUATION);
        }
    }
    let blocks = server_blocks(&out);
    assert_eq!(authority_of(&blocks[0]), Some("localhost"));
    assert_eq!(blocks[0].len(), 14);
}

#[test]
fn padding_is_dropped_and_priority_kept() {
    let block = request(hpack::incremental(hpack::AUTHORITY, SOCKET_PATH), &[]);
    let mut payload = vec![3u8]; // pad length
    payload.extend([0x80, 0, 0, 1, 15]); // exclusive dependency on 1, weight 16
    payload.extend(&block);
    payload.extend([0, 0, 0]);
    let mut input = preface_and_settings();
    input.extend(frame(
        TYPE_HEADERS,
        FLAG_END_HEADERS | FLAG_PADDED | FLAG_PRIORITY,
        3,
        &payload,
    ));
    let out = run(&mut Rewriter::new(), &input, 9).unwrap();
    let f = &frames(&out)[1];
    assert_eq!(f.header.flags, FLAG_END_HEADERS | FLAG_PRIORITY);
    assert_eq!(&f.payload[..5], &[0x80, 0, 0, 1, 15]);
    assert_eq!(authority_of(&server_blocks(&out)[0]), Some("localhost"));
}

#[test]
fn other_frames_pass_byte_for_byte() {
    let mut input = preface_and_settings();
    let others = [
        frame(0x4, 0, 0, &[0, 4, 0, 1, 0, 0]), // SETTINGS initial window
        frame(0x8, 0, 0, &[0, 0, 0x10, 0]),    // WINDOW_UPDATE
        frame(0x6, 0, 0, &[1, 2, 3, 4, 5, 6, 7, 8]), // PING
        frame(0x0, 0, 1, &vec![0xab; 40_000]), // DATA larger than a read
        frame(0x3, 0, 1, &[0, 0, 0, 8]),       // RST_STREAM
        frame(0x7, 0, 0, &[0, 0, 0, 0, 0, 0, 0, 0]), // GOAWAY
        frame(0xfa, 0x3, 9, b"unknown types pass"), // extension frame
    ];
    for f in &others {
        input.extend_from_slice(f);
    }
    let out = run(&mut Rewriter::new(), &input, 1000).unwrap();
    assert_eq!(out, input);
}

#[test]
fn a_client_without_the_preface_passes_through() {
    let input = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut rw = Rewriter::new();
    let out = run(&mut rw, input, 4).unwrap();
    assert_eq!(out, input);
    assert_eq!(rw.passthrough_budget(), usize::MAX);
}

#[test]
fn malformed_blocks_and_sequences_are_errors() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("index 0", headers(1, &[0x80])),
        ("index past the tables", headers(1, &hpack::indexed(70))),
        ("truncated string", headers(1, &[0x41, 0x05, b'a'])),
        ("stream 0", headers(0, &request(Vec::new(), &[]))),
        (
            "interleaved frame before CONTINUATION",
            [
                frame(TYPE_HEADERS, 0, 1, &hpack::indexed(2)),
                frame(0x0, 0, 1, b"x"),
            ]
            .concat(),
        ),
        (
            "CONTINUATION on another stream",
            [
                frame(TYPE_HEADERS, 0, 1, &hpack::indexed(2)),
                frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 3, &hpack::indexed(2)),
            ]
            .concat(),
        ),
        (
            "CONTINUATION without HEADERS",
            frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, &hpack::indexed(2)),
        ),
        (
            "padding longer than the payload",
            frame(TYPE_HEADERS, FLAG_END_HEADERS | FLAG_PADDED, 1, &[9, 0x82]),
        ),
        (
            "PUSH_PROMISE",
            frame(TYPE_PUSH_PROMISE, FLAG_END_HEADERS, 1, &[0, 0, 0, 2]),
        ),
    ];
    for (name, frames) in cases {
        let mut input = preface_and_settings();
        input.extend(frames);
        assert!(run(&mut Rewriter::new(), &input, 64).is_err(), "{name}");
    }
}
