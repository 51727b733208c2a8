#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;
use crate::frame::{frame, FrameHeader, HEADER_LEN, PREFACE};

const RST_STREAM: u8 = 0x3;
const HEADERS: u8 = 0x1;

/// A gRPC-shaped request header block with `authority` (a literal with
/// incremental indexing, as grpc-go sends it) or none.
fn request_block(authority: Option<&[u8]>) -> Vec<u8> {
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http
    block.push(0x04); // :path, literal without indexing
    let path = b"/runtime.v1.RuntimeService/Version";
    block.push(path.len() as u8);
    block.extend_from_slice(path);
    if let Some(a) = authority {
        block.push(0x41);
        block.push(a.len() as u8);
        block.extend_from_slice(a);
    }
    block.push(0x40);
    block.push(12);
    block.extend_from_slice(b"content-type");
    block.push(16);
    block.extend_from_slice(b"application/grpc");
    block
}

async fn read_frame(io: &mut DuplexStream) -> FrameHeader {
    let mut fixed = [0u8; HEADER_LEN];
    io.read_exact(&mut fixed).await.unwrap();
    let header = FrameHeader::parse(&fixed);
    let mut payload = vec![0; header.len];
    io.read_exact(&mut payload).await.unwrap();
    header
}

/// The first frame on stream 1 the server answers a raw request with.
async fn answer_to(authority: Option<&[u8]>, shim: bool) -> (FrameHeader, Option<String>) {
    let (mut client, server_io) = tokio::io::duplex(1 << 16);
    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut conn = if shim {
            h2::server::handshake(Box::new(AuthorityShim::new(server_io))
                as Box<dyn AsyncReadWrite>)
            .await
            .unwrap()
        } else {
            h2::server::handshake(Box::new(server_io) as Box<dyn AsyncReadWrite>)
                .await
                .unwrap()
        };
        if let Some(Ok((request, mut respond))) = conn.accept().await {
            let _ = seen_tx.send(request.uri().authority().map(|a| a.to_string()));
            let response = http::Response::builder().status(200).body(()).unwrap();
            respond.send_response(response, true).unwrap();
        }
        // Keep driving the connection so its frames get written.
        while conn.accept().await.is_some() {}
    });
    client.write_all(PREFACE).await.unwrap();
    client.write_all(&frame(0x4, 0, 0, &[])).await.unwrap();
    let block = request_block(authority);
    client
        .write_all(&frame(HEADERS, 0x4 | 0x1, 1, &block))
        .await
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let header = read_frame(&mut client).await;
            if header.stream_id == 1 {
                return header;
            }
        }
    })
    .await
    .expect("the server answers stream 1");
    let seen = match tokio::time::timeout(Duration::from_millis(100), seen_rx).await {
        Ok(Ok(authority)) => authority,
        _ => None,
    };
    (answer, seen)
}

trait AsyncReadWrite: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> AsyncReadWrite for T {}

#[tokio::test]
async fn without_the_shim_h2_resets_a_socket_path_authority() {
    let (answer, _) = answer_to(Some(b"/run/cri.sock"), false).await;
    assert_eq!(answer.kind, RST_STREAM, "h2 refuses the path by itself");
}

#[tokio::test]
async fn through_the_shim_h2_serves_every_authority_form() {
    let cases: [(Option<&[u8]>, Option<&str>); 5] = [
        (Some(b"/run/cri-server/cri-server.sock"), Some("localhost")),
        (
            Some(b"%2Frun%2Fcri-server%2Fcri-server.sock"),
            Some("localhost"),
        ),
        (Some(b""), Some("localhost")),
        (None, None),
        (Some(b"localhost"), Some("localhost")),
    ];
    for (authority, expected) in cases {
        let (answer, seen) = answer_to(authority, true).await;
        assert_eq!(answer.kind, HEADERS, "{authority:?}: answered, not reset");
        assert_eq!(seen.as_deref(), expected, "{authority:?}");
    }
}

#[tokio::test]
async fn concurrent_streams_with_large_bodies_round_trip() {
    // h2's own client indexes its headers in the dynamic table and obeys
    // flow control: 32 concurrent echo calls of 256 KiB each.
    let (client_io, server_io) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        let mut conn = h2::server::handshake(AuthorityShim::new(server_io))
            .await
            .unwrap();
        while let Some(Ok((request, mut respond))) = conn.accept().await {
            tokio::spawn(async move {
                let mut body = request.into_body();
                let response = http::Response::builder().status(200).body(()).unwrap();
                let mut send = respond.send_response(response, false).unwrap();
                while let Some(chunk) = body.data().await {
                    let chunk = chunk.unwrap();
                    body.flow_control().release_capacity(chunk.len()).unwrap();
                    send.send_data(chunk, false).unwrap();
                }
                let mut trailers = http::HeaderMap::new();
                trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                send.send_trailers(trailers).unwrap();
            });
        }
    });
    let (client, conn) = h2::client::handshake(client_io).await.unwrap();
    tokio::spawn(conn);
    let calls = (0..32u8).map(|i| {
        let mut client = client.clone();
        async move {
            let request = http::Request::builder()
                .method("POST")
                .uri("http://localhost/echo")
                .header("x-call", i.to_string())
                .body(())
                .unwrap();
            client = client.ready().await.unwrap();
            let (response, mut send) = client.send_request(request, false).unwrap();
            let sent = vec![i; 256 * 1024];
            let body = Bytes::from(sent.clone());
            tokio::spawn(async move {
                let mut rest = body;
                while !rest.is_empty() {
                    send.reserve_capacity(rest.len());
                    let cap = futures::future::poll_fn(|cx| send.poll_capacity(cx))
                        .await
                        .unwrap()
                        .unwrap();
                    let chunk = rest.split_to(cap.min(rest.len()));
                    send.send_data(chunk, false).unwrap();
                }
                send.send_data(Bytes::new(), true).unwrap();
            });
            let mut body = response.await.unwrap().into_body();
            let mut got = Vec::new();
            while let Some(chunk) = body.data().await {
                let chunk = chunk.unwrap();
                body.flow_control().release_capacity(chunk.len()).unwrap();
                got.extend_from_slice(&chunk);
            }
            let trailers = body.trailers().await.unwrap().unwrap();
            assert_eq!(trailers["grpc-status"], "0");
            assert!(got == sent, "call {i}: echoed body differs");
        }
    });
    tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(calls))
        .await
        .expect("all calls finish");
}

#[tokio::test]
async fn a_malformed_block_fails_only_that_connection() {
    let (mut client, server_io) = tokio::io::duplex(1 << 16);
    let mut shim = AuthorityShim::new(server_io);
    client.write_all(PREFACE).await.unwrap();
    client
        .write_all(&frame(HEADERS, 0x4, 1, &[0x80]))
        .await
        .unwrap();
    let mut buf = vec![0; 1024];
    let err = loop {
        match shim.read(&mut buf).await {
            Ok(0) => panic!("end of stream instead of an error"),
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(shim.read(&mut buf).await.is_err(), "stays failed");
}
