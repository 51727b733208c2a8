//! `passthrough-bench`: what forwarding containerd's own API through the
//! CRI socket costs. Starts a private containerd and a cri-server in front
//! of it, then times the same calls on both sockets, alternating:
//! `ctr version` as a user runs it (process start included), a bare gRPC
//! `Version` call over one HTTP/2 connection (the forwarding alone), and
//! one on a new connection each time (what a short-lived client pays).
//! Prints p50 and p99 of each and the p50 overhead. A measurement tool,
//! not a test (`make bench`).

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use cri_tests::components::{Component, CHILD_PATH};
use cri_tests::CriServer;
use cri_tests::{ContainerdProcess, ServerOptions};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

const USAGE: &str = "usage: passthrough-bench [--calls N (200)]
  runs `ctr version` and a bare gRPC Version call N times each through
  cri-server's socket and directly on containerd's, alternating, and
  prints p50/p99 and the forwarding overhead at p50
  (CRI_SERVER_BIN picks the daemon binary)";

/// containerd's Version method; its request is `google.protobuf.Empty`, so
/// the gRPC message is a bare 5-byte frame header.
const VERSION_PATH: &str = "/containerd.services.version.v1.Version/Version";
const EMPTY_MESSAGE: [u8; 5] = [0, 0, 0, 0, 0];

fn main() -> ExitCode {
    let mut calls = 200usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--calls", Some(n)) => match n.parse() {
                Ok(n) => calls = n,
                Err(e) => {
                    eprintln!("passthrough-bench: --calls {n}: {e}\n{USAGE}");
                    return ExitCode::FAILURE;
                }
            },
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::FAILURE;
            }
        }
    }
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start tokio")
        .and_then(|rt| rt.block_on(run(calls)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("passthrough-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(calls: usize) -> Result<()> {
    let containerd = ContainerdProcess::start().await?;
    let server = CriServer::start(&containerd, ServerOptions::default()).await?;
    let (ours, direct) = (server.socket(), containerd.socket());
    println!("passthrough-bench: {calls} calls per socket, alternating");

    // Warm-up: connections made, code paths paged in.
    for _ in 0..5 {
        ctr_version(ours).await?;
        ctr_version(direct).await?;
    }
    let (mut via, mut plain) = (Vec::new(), Vec::new());
    for _ in 0..calls {
        via.push(ctr_version(ours).await?);
        plain.push(ctr_version(direct).await?);
    }
    report("ctr version", &mut via, &mut plain);

    let mut through = GrpcConnection::open(ours).await?;
    let mut straight = GrpcConnection::open(direct).await?;
    for _ in 0..20 {
        through.version().await?;
        straight.version().await?;
    }
    let (mut via, mut plain) = (Vec::new(), Vec::new());
    for _ in 0..calls {
        via.push(through.version().await?);
        plain.push(straight.version().await?);
    }
    report("gRPC Version (one connection)", &mut via, &mut plain);

    let (mut via, mut plain) = (Vec::new(), Vec::new());
    for _ in 0..calls {
        via.push(connect_and_call(ours).await?);
        plain.push(connect_and_call(direct).await?);
    }
    report("gRPC Version (a new connection each)", &mut via, &mut plain);
    Ok(())
}

/// Connects, makes one Version call and hangs up: what a short-lived
/// client pays, without a process start.
async fn connect_and_call(address: &Path) -> Result<Duration> {
    let started = Instant::now();
    let mut connection = GrpcConnection::open(address).await?;
    connection.version().await?;
    Ok(started.elapsed())
}

async fn ctr_version(address: &Path) -> Result<Duration> {
    let started = Instant::now();
    let out = tokio::process::Command::new(Component::Ctr.path()?)
        .arg("--address")
        .arg(address)
        .arg("version")
        .env("PATH", CHILD_PATH)
        .stdin(Stdio::null())
        .output()
        .await?;
    let took = started.elapsed();
    if !out.status.success() {
        bail!(
            "ctr --address {} version: {}",
            address.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(took)
}

/// One HTTP/2 connection (hyper's client) to a gRPC unix socket.
struct GrpcConnection {
    address: PathBuf,
    sender: hyper::client::conn::http2::SendRequest<Full<Bytes>>,
}

impl GrpcConnection {
    async fn open(address: &Path) -> Result<GrpcConnection> {
        let stream = tokio::net::UnixStream::connect(address)
            .await
            .with_context(|| format!("connect {}", address.display()))?;
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor, TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(GrpcConnection {
            address: address.to_path_buf(),
            sender,
        })
    }

    /// One Version call, answer and trailers read; its latency.
    async fn version(&mut self) -> Result<Duration> {
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("http://localhost{VERSION_PATH}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(Bytes::from_static(&EMPTY_MESSAGE)))?;
        let started = Instant::now();
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let body = response.into_body().collect().await?;
        let took = started.elapsed();
        let status = body
            .trailers()
            .and_then(|t| t.get("grpc-status"))
            .and_then(|s| s.to_str().ok())
            .unwrap_or("missing");
        if status != "0" {
            bail!(
                "Version on {}: grpc-status {status}",
                self.address.display()
            );
        }
        Ok(took)
    }
}

#[derive(Clone, Copy)]
struct TokioExecutor;

impl<F> hyper::rt::Executor<F> for TokioExecutor
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        tokio::spawn(future);
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * (sorted.len().saturating_sub(1)) as f64).round() as usize;
    sorted.get(rank).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(what: &str, via: &mut [Duration], plain: &mut [Duration]) {
    via.sort();
    plain.sort();
    let (v50, v99) = (percentile(via, 50.0), percentile(via, 99.0));
    let (d50, d99) = (percentile(plain, 50.0), percentile(plain, 99.0));
    println!(
        "{what}: through cri-server p50 {:.3} ms p99 {:.3} ms | direct p50 {:.3} ms p99 {:.3} ms | overhead at p50 {:+.3} ms",
        ms(v50),
        ms(v99),
        ms(d50),
        ms(d99),
        ms(v50) - ms(d50),
    );
}
