//! Port forwarding into a pod (containerd's `sandbox_portforward_linux.go`):
//! a plain OS thread enters the pod's network namespace (never a tokio
//! thread, whose namespace would leak to other tasks), connects to
//! `localhost:<port>` (IPv4, then IPv6) and exits; the socket keeps the
//! namespace it was made in. Bytes are then copied both ways: the client's
//! end of stream half-closes the connection; the pod side's end of stream
//! ends the forward.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream as StdTcpStream};
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{SandboxError, SandboxService};

type Result<T, E = SandboxError> = std::result::Result<T, E>;

/// Connects to `port` on localhost in the network namespace of sandbox
/// `id` (the host's with host networking) and copies between it and
/// `client` until the pod side ends.
pub async fn port_forward<S>(state: &SandboxService, id: &str, port: u16, client: S) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let sandbox = super::lookup(state, id)?;
    let id = sandbox.metadata.id.to_string();
    let netns = if super::host_network(&sandbox.metadata.config) {
        None
    } else {
        let path = PathBuf::from(&sandbox.metadata.netns_path);
        if sandbox.metadata.netns_path.is_empty() || !path.exists() {
            return Err(SandboxError::PortForward {
                sandbox_id: id,
                port,
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    "network namespace of the sandbox is closed",
                ),
            });
        }
        Some(path)
    };
    let err = |source| SandboxError::PortForward {
        sandbox_id: id.clone(),
        port,
        source,
    };
    let conn = connect_in(netns, port).await.map_err(err)?;
    tracing::debug!(pod_sandbox_id = %id, port, "port forward connected");
    copy_both_ways(client, conn).await.map_err(err)
}

/// Connects on a dedicated thread that first enters `netns`, if any.
async fn connect_in(netns: Option<PathBuf>, port: u16) -> io::Result<TcpStream> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("port-forward".into())
        .spawn(move || {
            let _ = tx.send(enter_and_connect(netns.as_deref(), port));
        })?;
    let std_stream = rx
        .await
        .map_err(|_| io::Error::other("port-forward connect thread ended without an answer"))??;
    std_stream.set_nonblocking(true)?;
    TcpStream::from_std(std_stream)
}

/// Only for a thread that exits afterwards: its namespace is never restored.
fn enter_and_connect(netns: Option<&Path>, port: u16) -> io::Result<StdTcpStream> {
    if let Some(path) = netns {
        let file = std::fs::File::open(path)?;
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("enter network namespace {}: {e}", path.display()),
            )
        })?;
    }
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
    match StdTcpStream::connect(v4) {
        Ok(s) => Ok(s),
        Err(e4) => StdTcpStream::connect(v6).map_err(|e6| {
            io::Error::new(
                e4.kind(),
                format!("connect to localhost:{port}: IPv4: {e4}, IPv6: {e6}"),
            )
        }),
    }
}

/// Copies until the pod side reaches EOF (or either side fails); the
/// client's EOF shuts the connection's write half down.
async fn copy_both_ways<S>(client: S, conn: TcpStream) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut client_r, mut client_w) = tokio::io::split(client);
    let (mut conn_r, mut conn_w) = conn.into_split();
    let inbound = async {
        tokio::io::copy(&mut client_r, &mut conn_w).await?;
        conn_w.shutdown().await?;
        // Wait for the other direction to end the forward.
        std::future::pending::<io::Result<()>>().await
    };
    let outbound = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = conn_r.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            client_w.write_all(&buf[..n]).await?;
        }
        client_w.shutdown().await
    };
    tokio::select! {
        r = inbound => r,
        r = outbound => r,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn echoes_both_ways_and_half_closes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            s.write_all(&got).await.unwrap();
        });
        let conn = connect_in(None, port).await.unwrap();
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let forward = tokio::spawn(copy_both_ways(ours, conn));
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let (mut r, mut w) = tokio::io::split(&mut theirs);
        let (sent, got) = tokio::join!(
            async {
                w.write_all(&data).await.unwrap();
                w.shutdown().await.unwrap();
            },
            async {
                let mut got = Vec::new();
                r.read_to_end(&mut got).await.unwrap();
                got
            }
        );
        let () = sent;
        assert_eq!(got, data);
        forward.await.unwrap().unwrap();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_closed_port_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let e = connect_in(None, port).await.unwrap_err();
        assert!(e.to_string().contains(&format!("localhost:{port}")), "{e}");
    }
}
