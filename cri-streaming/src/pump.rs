//! Plumbing between protocol streams (SPDY streams, WebSocket channels) and
//! the byte pipes a `StreamRuntime` sees, plus running an exec or attach to
//! its `Outcome`. Shared by the SPDY and WebSocket front ends.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::runtime::{ExitCode, StreamIo, StreamRuntime, TerminalSize};
use super::spdy::{SpdyReader, SpdyWriter};
use super::status::Outcome;

const PIPE: usize = 64 * 1024;

/// Where client bytes come from.
#[async_trait]
pub trait ChunkSource: Send {
    /// The next chunk; `None` at the client's end of stream.
    async fn next_chunk(&mut self) -> Option<Bytes>;
}

/// Where bytes for the client go.
#[async_trait]
pub trait ChunkSink: Send + Sync {
    /// Sends `data`; `false` once the client can no longer receive.
    async fn write_chunk(&self, data: &[u8]) -> bool;
    /// Ends the stream (SPDY FIN; nothing on a WebSocket channel).
    async fn close(&self);
}

#[async_trait]
impl ChunkSource for SpdyReader {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        self.read().await
    }
}

#[async_trait]
impl ChunkSink for SpdyWriter {
    async fn write_chunk(&self, data: &[u8]) -> bool {
        self.write_all(data).await.is_ok()
    }
    async fn close(&self) {
        let _ = self.finish().await;
    }
}

#[async_trait]
impl ChunkSource for mpsc::Receiver<Bytes> {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        self.recv().await
    }
}

/// A boxed source.
pub type Source = Box<dyn ChunkSource>;
/// A shared sink.
pub type Sink = Arc<dyn ChunkSink>;

/// Copies `src` into a pipe whose other end is returned; EOF when `src` ends.
pub fn input_pipe(mut src: Source) -> (DuplexStream, JoinHandle<()>) {
    let (mut ours, theirs) = tokio::io::duplex(PIPE);
    let task = tokio::spawn(async move {
        while let Some(chunk) = src.next_chunk().await {
            if ours.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = ours.shutdown().await;
    });
    (theirs, task)
}

/// Copies what is written to the returned pipe into `sink`, closing the sink
/// when the writer drops its end.
pub fn output_pipe(sink: Sink) -> (DuplexStream, JoinHandle<()>) {
    let (mut ours, theirs) = tokio::io::duplex(PIPE);
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match ours.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !sink.write_chunk(&buf[..n]).await {
                        break;
                    }
                }
            }
        }
        sink.close().await;
    });
    (theirs, task)
}

/// Decodes the resize stream (concatenated `{"Width":w,"Height":h}`
/// objects) into terminal sizes.
pub fn resize_events(mut src: Source) -> (mpsc::Receiver<TerminalSize>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(16);
    let task = tokio::spawn(async move {
        let mut buf: Vec<u8> = Vec::new();
        while let Some(chunk) = src.next_chunk().await {
            buf.extend_from_slice(&chunk);
            loop {
                let mut it = serde_json::Deserializer::from_slice(&buf).into_iter::<TerminalSize>();
                match it.next() {
                    Some(Ok(size)) => {
                        let used = it.byte_offset();
                        buf.drain(..used);
                        if tx.send(size).await.is_err() {
                            return;
                        }
                    }
                    Some(Err(e)) if e.is_eof() => break,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "bad resize event, ignoring the resize stream");
                        return;
                    }
                    None => {
                        buf.clear();
                        break;
                    }
                }
            }
        }
    });
    (rx, task)
}

/// What to run.
#[derive(Debug, Clone)]
pub enum Command {
    /// Run `cmd` in a container.
    Exec {
        /// Container id.
        container_id: String,
        /// argv.
        cmd: Vec<String>,
    },
    /// Attach to a container.
    Attach {
        /// Container id.
        container_id: String,
    },
}

/// The client streams of one exec or attach.
#[derive(Default)]
pub struct CommandStreams {
    /// stdin, if requested.
    pub stdin: Option<Source>,
    /// stdout, if requested.
    pub stdout: Option<Sink>,
    /// stderr, if requested.
    pub stderr: Option<Sink>,
    /// The resize stream (used with a tty).
    pub resize: Option<Source>,
}

/// Runs the command against the runtime, drains its output to the client
/// and returns how it ended. Every helper task is finished or aborted on
/// return.
pub async fn run_command(
    runtime: &dyn StreamRuntime,
    command: &Command,
    tty: bool,
    streams: CommandStreams,
) -> Outcome {
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    let mut io = StreamIo::default();
    if let Some(src) = streams.stdin {
        let (pipe, task) = input_pipe(src);
        io.stdin = Some(Box::new(pipe));
        inputs.push(task);
    }
    if let Some(sink) = streams.stdout {
        let (pipe, task) = output_pipe(sink);
        io.stdout = Some(Box::new(pipe));
        outputs.push(task);
    }
    if let Some(sink) = streams.stderr {
        let (pipe, task) = output_pipe(sink);
        io.stderr = Some(Box::new(pipe));
        outputs.push(task);
    }
    let resize = match streams.resize.filter(|_| tty) {
        Some(src) => {
            let (rx, task) = resize_events(src);
            inputs.push(task);
            Some(rx)
        }
        None => None,
    };
    let outcome = match command {
        Command::Exec { container_id, cmd } => {
            let result = runtime.exec(container_id, cmd, io, tty, resize).await;
            Outcome::of_exec(cmd, result.as_ref().map(|ExitCode(c)| *c))
        }
        Command::Attach { container_id } => Outcome::of_attach(
            runtime
                .attach(container_id, io, tty, resize)
                .await
                .as_ref()
                .copied(),
        ),
    };
    for task in outputs {
        let _ = task.await;
    }
    for task in inputs {
        task.abort();
    }
    outcome
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    struct Chunks(Vec<&'static [u8]>);
    #[async_trait]
    impl ChunkSource for Chunks {
        async fn next_chunk(&mut self) -> Option<Bytes> {
            (!self.0.is_empty()).then(|| Bytes::from_static(self.0.remove(0)))
        }
    }

    #[tokio::test]
    async fn resize_events_are_split_across_and_within_chunks() {
        let src = Chunks(vec![
            br#"{"Width":80,"Hei"#,
            br#"ght":24}{"Width":100,"Height":40}"#,
            b"\n",
            br#"{"Width":1,"Height":2}"#,
        ]);
        let (mut rx, _task) = resize_events(Box::new(src));
        let mut got = Vec::new();
        while let Some(s) = rx.recv().await {
            got.push((s.width, s.height));
        }
        assert_eq!(got, vec![(80, 24), (100, 40), (1, 2)]);
    }

    #[tokio::test]
    async fn input_pipe_ends_with_the_source() {
        let (mut pipe, _task) = input_pipe(Box::new(Chunks(vec![b"ab", b"c"])));
        let mut out = String::new();
        pipe.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "abc");
    }
}
