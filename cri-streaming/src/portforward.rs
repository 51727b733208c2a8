//! Port forwarding: over SPDY (`portforward.k8s.io`: per request a data and
//! an error stream carrying `port` and `requestID` headers) and over
//! WebSocket (two channels per port, each opened with the port as two
//! little-endian bytes). Each forwarded connection is a `PortStream` handed
//! to the runtime.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::pump::{ChunkSink, Sink, Source};
use super::runtime::StreamRuntime;
use super::spdy::{IncomingStream, Session, SpdyStream};
use super::websocket::WsChannels;

/// Parses a port as the kubelet does: 1-65535.
pub fn parse_port(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(0) => Err(format!("port {s:?} must be > 0")),
        Ok(p) => Ok(p),
        Err(e) => Err(format!("unable to parse {s:?} as a port: {e}")),
    }
}

/// Forwards one connection: runs the runtime with one end of a pipe and
/// copies the other end to and from the client. Returns the runtime's error
/// message, if any, once the runtime is done and its output is drained.
async fn forward(
    runtime: &dyn StreamRuntime,
    sandbox_id: &str,
    port: u16,
    mut from_client: Source,
    to_client: Sink,
) -> Option<String> {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (mut ours_r, mut ours_w) = tokio::io::split(ours);
    let inbound = tokio::spawn(async move {
        while let Some(chunk) = from_client.next_chunk().await {
            if ours_w.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = ours_w.shutdown().await;
    });
    let outbound = tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match ours_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !to_client.write_chunk(&buf[..n]).await {
                        break;
                    }
                }
            }
        }
        to_client.close().await;
    });
    let result = runtime.port_forward(sandbox_id, port, theirs).await;
    let _ = outbound.await;
    inbound.abort();
    result.err().map(|e| {
        format!(
            "error forwarding port {port} to pod {sandbox_id}, uid : {}",
            e.chain()
        )
    })
}

#[derive(Default)]
struct Pair {
    port: u16,
    data: Option<SpdyStream>,
    error: Option<SpdyStream>,
    since: Option<tokio::time::Instant>,
}

/// Serves port forwarding on an upgraded SPDY session until the client
/// hangs up.
pub async fn serve_spdy_port_forward(
    session: Session,
    mut incoming: mpsc::Receiver<IncomingStream>,
    sandbox_id: String,
    runtime: Arc<dyn StreamRuntime>,
    creation_timeout: Duration,
) {
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1).min(creation_timeout));
    loop {
        let next = tokio::select! {
            next = incoming.recv() => next,
            () = session.closed() => break,
            _ = tick.tick() => {
                expire_pairs(&mut pairs, creation_timeout).await;
                while tasks.try_join_next().is_some() {}
                continue;
            }
        };
        let Some(next) = next else { break };
        let headers = next.headers();
        let port = headers
            .get("port")
            .ok_or_else(|| "\"port\" header is required".to_owned())
            .and_then(parse_port);
        let stream_type = headers.get("streamtype").unwrap_or("").to_owned();
        let port = match (port, stream_type.as_str()) {
            (Ok(port), "data" | "error") => port,
            (Err(msg), _) => {
                tracing::warn!(error = %msg, "rejecting port-forward stream");
                let _ = next.reject().await;
                continue;
            }
            (Ok(_), other) => {
                tracing::warn!(
                    stream_type = other,
                    "rejecting port-forward stream of invalid type"
                );
                let _ = next.reject().await;
                continue;
            }
        };
        let request_id = match headers.get("requestid") {
            Some(id) if !id.is_empty() => id.to_owned(),
            // Old clients: pair consecutive stream ids (error n, data n+2).
            _ if stream_type == "error" => next.id().to_string(),
            _ => next.id().saturating_sub(2).to_string(),
        };
        let Ok(stream) = next.accept().await else {
            break;
        };
        let pair = pairs.entry(request_id.clone()).or_default();
        pair.since.get_or_insert_with(tokio::time::Instant::now);
        pair.port = port;
        let slot = if stream_type == "data" {
            &mut pair.data
        } else {
            &mut pair.error
        };
        if slot.is_some() {
            let msg = format!("error processing stream for request {request_id}: {stream_type} stream already assigned");
            tracing::warn!(error = %msg, "port-forward stream refused");
            if let Some(error) = &pair.error {
                let _ = error.writer().write_all(msg.as_bytes()).await;
            }
            let _ = stream
                .writer()
                .reset(super::spdy::frame::rst::PROTOCOL_ERROR)
                .await;
            continue;
        }
        *slot = Some(stream);
        if pair.data.is_some() && pair.error.is_some() {
            let Some(Pair {
                port,
                data: Some(data),
                error: Some(error),
                ..
            }) = pairs.remove(&request_id)
            else {
                continue;
            };
            let (runtime, sandbox_id) = (runtime.clone(), sandbox_id.clone());
            tasks.spawn(async move {
                let (data_r, data_w) = data.split();
                let (_, error_w) = error.split();
                if let Some(msg) = forward(
                    runtime.as_ref(),
                    &sandbox_id,
                    port,
                    Box::new(data_r),
                    Arc::new(data_w),
                )
                .await
                {
                    tracing::warn!(error = %msg, "port forward failed");
                    let body = serde_json::json!({ "closeConnection": true, "message": msg });
                    let _ = error_w.write_all(format!("{body}\n").as_bytes()).await;
                }
                let _ = error_w.finish().await;
            });
        }
    }
    // The connection is gone: stop every forward still running.
    tasks.shutdown().await;
    session.close().await;
}

async fn expire_pairs(pairs: &mut HashMap<String, Pair>, timeout: Duration) {
    let now = tokio::time::Instant::now();
    let expired: Vec<String> = pairs
        .iter()
        .filter(|(_, p)| p.since.is_some_and(|s| now - s >= timeout))
        .map(|(id, _)| id.clone())
        .collect();
    for id in expired {
        if let Some(Pair {
            error: Some(error), ..
        }) = pairs.remove(&id)
        {
            let (_, w) = error.split();
            let _ = w
                .write_all(format!("timed out waiting for streams of request {id}").as_bytes())
                .await;
            let _ = w.finish().await;
        }
    }
}

/// Serves port forwarding for `ports` over WebSocket channels, then closes.
pub async fn serve_ws_port_forward(
    mut conn: WsChannels,
    ports: Vec<u16>,
    sandbox_id: String,
    runtime: Arc<dyn StreamRuntime>,
) {
    let mut tasks = JoinSet::new();
    for (i, port) in ports.into_iter().enumerate() {
        let (data_ch, error_ch) = ((2 * i) as u8, (2 * i + 1) as u8);
        let (data_w, error_w) = (conn.writer(data_ch), conn.writer(error_ch));
        let prefix = port.to_le_bytes();
        data_w.write_chunk(&prefix).await;
        error_w.write_chunk(&prefix).await;
        let Some(data_r) = conn.take_reader(data_ch) else {
            continue;
        };
        let (runtime, sandbox_id) = (runtime.clone(), sandbox_id.clone());
        tasks.spawn(async move {
            if let Some(msg) = forward(
                runtime.as_ref(),
                &sandbox_id,
                port,
                Box::new(data_r),
                Arc::new(data_w),
            )
            .await
            {
                tracing::warn!(error = %msg, "port forward failed");
                error_w.write_chunk(msg.as_bytes()).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    conn.close().await;
}

/// The readable flags of `n` ports' channels (data readable, error not).
pub fn port_channels(n: usize) -> Vec<bool> {
    (0..2 * n).map(|i| i % 2 == 0).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn ports_are_validated_like_the_kubelet() {
        assert_eq!(parse_port("80"), Ok(80));
        assert_eq!(parse_port("65535"), Ok(65535));
        assert!(parse_port("0").unwrap_err().contains("must be > 0"));
        assert!(parse_port("65536").unwrap_err().contains("unable to parse"));
        assert!(parse_port("-1").is_err());
        assert!(parse_port("").is_err());
    }

    #[test]
    fn channel_layout() {
        assert_eq!(port_channels(2), vec![true, false, true, false]);
    }
}
