//! A tonic server and client joined by an in-memory duplex pipe, for unit
//! tests that need a real HTTP/2 round trip through tonic.

#![allow(clippy::unwrap_used)]

use hyper_util::rt::TokioIo;
use tokio::io::DuplexStream;
use tonic::transport::{Channel, Endpoint};

/// The two ends: serve the server's with `serve_with_incoming(once(..))`,
/// connect with [`connect`].
pub fn pipe() -> (DuplexStream, DuplexStream) {
    tokio::io::duplex(64 * 1024)
}

/// A channel over `client_io` (one connection only).
pub async fn connect(client_io: DuplexStream) -> Channel {
    let mut client_io = Some(client_io);
    Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| {
            let io = client_io.take();
            async move {
                io.map(TokioIo::new)
                    .ok_or_else(|| std::io::Error::other("one connection only"))
            }
        }))
        .await
        .unwrap()
}
