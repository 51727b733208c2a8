//! A tiny HTTP/1.1 proxy in front of the test registry, for the image suites: it logs every request line, can demand HTTP basic auth (answering 401 with a `Basic` challenge as an htpasswd registry does), and can stall blob downloads after their first bytes so a pull makes no progress.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How the proxy treats requests.
#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    /// `(user, password)` every request must carry as basic auth.
    pub basic_auth: Option<(String, String)>,
    /// Forward only this many bytes of each blob body, then hold the
    /// connection open without sending more.
    pub stall_blobs_after: Option<usize>,
    /// Flip the bits of the byte at this offset of every blob body long
    /// enough to have it: the right length, the wrong digest.
    pub corrupt_blobs_at: Option<usize>,
    /// Drop `Range` headers, so upstream answers every GET in full (200).
    pub ignore_ranges: bool,
}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct RegistryProxy {
    host: String,
    /// Whole request heads, as received.
    heads: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl RegistryProxy {
    /// Listens on a free 127.0.0.1 port and forwards to `upstream`
    /// (`host:port`).
    pub async fn start(upstream: &str, options: ProxyOptions) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind proxy")?;
        let host = listener.local_addr()?.to_string();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let upstream = upstream.to_owned();
        let log = Arc::clone(&heads);
        let task = tokio::spawn(async move {
            let mut connections = Vec::new();
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let options = options.clone();
                let log = Arc::clone(&log);
                connections.push(tokio::spawn(async move {
                    let _ = serve(client, &upstream, &options, &log).await;
                }));
                connections.retain(|c| !c.is_finished());
            }
        });
        Ok(Self { host, heads, task })
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.host.clone()
    }

    /// Every request line seen so far (`GET /v2/... HTTP/1.1`).
    pub fn requests(&self) -> Vec<String> {
        self.heads
            .lock()
            .map(|heads| {
                heads
                    .iter()
                    .map(|h| h.lines().next().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The `Range` header values of the GETs of blob `digest` (empty for
    /// a GET without one), in order.
    pub fn blob_ranges(&self, digest: &str) -> Vec<String> {
        self.heads
            .lock()
            .map(|heads| {
                heads
                    .iter()
                    .filter(|h| h.starts_with("GET ") && h.contains(&format!("/blobs/{digest}")))
                    .map(|h| {
                        h.split("\r\n")
                            .find_map(|l| {
                                let (name, value) = l.split_once(':')?;
                                name.eq_ignore_ascii_case("range")
                                    .then(|| value.trim().to_owned())
                            })
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many GETs of blob `digest` were forwarded.
    pub fn blob_gets(&self, digest: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.starts_with("GET ") && r.contains(&format!("/blobs/{digest}")))
            .count()
    }
}

impl Drop for RegistryProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request head (through the blank line).
async fn read_head(client: &mut TcpStream) -> Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        if client.read(&mut byte).await? == 0 {
            return Ok(None);
        }
        head.push(byte[0]);
        if head.ends_with(b"\r\n\r\n") {
            return Ok(Some(head));
        }
        if head.len() > 64 * 1024 {
            anyhow::bail!("request head too long");
        }
    }
}

/// One client connection: one request, forwarded with `Connection: close`.
async fn serve(
    mut client: TcpStream,
    upstream: &str,
    options: &ProxyOptions,
    log: &Mutex<Vec<String>>,
) -> Result<()> {
    let Some(head) = read_head(&mut client).await? else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(&head).to_string();
    let request_line = text.lines().next().unwrap_or_default().to_owned();
    if let Ok(mut log) = log.lock() {
        log.push(text.clone());
    }
    if let Some((user, password)) = &options.basic_auth {
        let want = format!(
            "basic {}",
            base64_encode(format!("{user}:{password}").as_bytes())
        );
        let authorized = text.lines().any(|l| {
            l.to_ascii_lowercase().starts_with("authorization:")
                && l.split_once(':')
                    .map(|(_, v)| v.trim().to_ascii_lowercase())
                    == Some(want.to_ascii_lowercase())
        });
        if !authorized {
            let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}"#;
            let response = format!(
                "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nDocker-Distribution-Api-Version: registry/2.0\r\nWww-Authenticate: Basic realm=\"cri-tests\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            client.write_all(response.as_bytes()).await?;
            return Ok(());
        }
    }
    // Forward the head, asking upstream to close after one response.
    let mut forwarded = String::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("connection:")
            || lower.starts_with("authorization:")
            || (options.ignore_ranges && lower.starts_with("range:"))
        {
            continue;
        }
        forwarded.push_str(line);
        forwarded.push_str("\r\n");
    }
    forwarded.push_str("Connection: close\r\n\r\n");
    let mut server = TcpStream::connect(upstream).await?;
    server.write_all(forwarded.as_bytes()).await?;

    let blob_get = request_line.starts_with("GET ") && request_line.contains("/blobs/sha256:");
    let stall = options.stall_blobs_after.filter(|_| blob_get);
    let corrupt = options.corrupt_blobs_at.filter(|_| blob_get);
    let mut sent_body = 0usize;
    let mut response_head = Vec::new();
    let mut in_body = false;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = server.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let mut chunk = &buf[..n];
        if !in_body {
            response_head.extend_from_slice(chunk);
            if let Some(end) = find(&response_head, b"\r\n\r\n") {
                in_body = true;
                let head_len = end + 4;
                let body_in_head = response_head.len() - head_len;
                client.write_all(&response_head[..head_len]).await?;
                chunk = &chunk[chunk.len() - body_in_head..];
            } else {
                continue;
            }
        }
        let mut flipped;
        if let Some(at) = corrupt {
            if (sent_body..sent_body + chunk.len()).contains(&at) {
                flipped = chunk.to_vec();
                flipped[at - sent_body] ^= 0xff;
                chunk = &flipped;
            }
        }
        if let Some(limit) = stall {
            let room = limit.saturating_sub(sent_body);
            let take = room.min(chunk.len());
            client.write_all(&chunk[..take]).await?;
            sent_body += take;
            if sent_body >= limit {
                // Hold the connection: no more bytes, no close.
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return Ok(());
            }
        } else {
            client.write_all(chunk).await?;
            sent_body += chunk.len();
        }
    }
    client.shutdown().await.ok();
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn base64_encode(data: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_like_the_standard() {
        assert_eq!(base64_encode(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64_encode(b"a"), "YQ==");
        assert_eq!(base64_encode(b"ab"), "YWI=");
    }
}
