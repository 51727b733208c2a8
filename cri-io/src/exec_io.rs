//! An exec's IO (containerd's `pkg/cri/io/exec_io.go`): its FIFOs streamed
//! to one client (Exec), or collected into capped buffers (ExecSync).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use tokio::net::unix::pipe;
use tokio::sync::mpsc;

use crate::attach::{
    copy_output, forward_stdin, spawn_stdin_writer, AttachSession, AttachStreams, BoxWriter,
    SessionSignals, Signal, StdinMsg,
};
use crate::error::{Error, Result};
use crate::fifo::FifoSet;

/// The IO of one exec process.
#[derive(Debug)]
pub struct ExecIo {
    id: String,
    fifos: FifoSet,
    stdin: Option<mpsc::Sender<StdinMsg>>,
    outputs: Option<(Option<pipe::Receiver>, Option<pipe::Receiver>)>,
    closed: Signal,
}

impl ExecIo {
    /// Opens `fifos` (without blocking) for exec `id`. Must be called
    /// inside a tokio runtime.
    pub fn new(id: impl Into<String>, fifos: FifoSet) -> Result<Self> {
        let pipes = fifos.open()?;
        let closed = Signal::new();
        let stdin = pipes.stdin.map(|fifo| spawn_stdin_writer(fifo, &closed));
        Ok(Self {
            id: id.into(),
            fifos,
            stdin,
            outputs: Some((pipes.stdout, pipes.stderr)),
            closed,
        })
    }

    /// The exec id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The FIFOs, whose paths go into the containerd exec request.
    pub fn fifos(&self) -> &FifoSet {
        &self.fifos
    }

    /// Streams the exec's outputs to `streams` (an output without a client
    /// stream is drained and dropped) and the client's stdin into the exec.
    /// Call it before starting the process; only once.
    pub fn attach(&mut self, streams: AttachStreams) -> Result<AttachSession> {
        let Some((stdout, stderr)) = self.outputs.take() else {
            return Err(Error::AlreadyAttached {
                id: self.id.clone(),
            });
        };
        let signals = SessionSignals::new(&self.closed);
        let tty = streams.tty || self.fifos.terminal();
        let sink = || -> BoxWriter { Box::new(tokio::io::sink()) };
        let client_stderr = streams.stderr.filter(|_| !tty);
        let mut tasks = Vec::new();
        for (fifo, writer) in [(stdout, streams.stdout), (stderr, client_stderr)] {
            if let Some(fifo) = fifo {
                let writer = writer.unwrap_or_else(sink);
                let signals = signals.clone();
                tasks.push(tokio::spawn(async move {
                    copy_output(fifo, writer, &signals).await
                }));
            }
        }
        if let (Some(reader), Some(stdin)) = (streams.stdin, &self.stdin) {
            let once = streams.stdin_once && !tty;
            let task = forward_stdin(
                reader,
                stdin.clone(),
                once,
                streams.close_stdin,
                signals.clone(),
            );
            tasks.push(tokio::spawn(task));
        }
        Ok(AttachSession::new(tasks, signals.stop))
    }

    /// ExecSync: collects stdout and stderr, each capped at `cap` bytes
    /// (more is drained and dropped, and flagged). Call it before starting
    /// the process; only once.
    pub fn collect(&mut self, cap: usize) -> Result<ExecCollector> {
        let (stdout, stderr) = (CappedBuffer::new(cap), CappedBuffer::new(cap));
        let session = self.attach(AttachStreams {
            stdout: Some(Box::new(stdout.clone())),
            stderr: Some(Box::new(stderr.clone())),
            tty: self.fifos.terminal(),
            ..AttachStreams::default()
        })?;
        Ok(ExecCollector {
            session,
            stdout,
            stderr,
        })
    }

    /// Stops all copying, closes the FIFOs and removes their dir.
    pub fn close(&mut self) -> Result<()> {
        self.closed.fire();
        self.stdin = None;
        self.outputs = None;
        self.fifos.remove()
    }
}

/// Output collected by [`ExecIo::collect`].
#[must_use = "dropping an ExecCollector stops collecting"]
#[derive(Debug)]
pub struct ExecCollector {
    session: AttachSession,
    stdout: CappedBuffer,
    stderr: CappedBuffer,
}

impl ExecCollector {
    /// Resolves once both outputs hit EOF. Dropping the future (e.g. on a
    /// timeout) stops collecting.
    pub async fn wait(self) -> ExecOutput {
        let Self {
            session,
            stdout,
            stderr,
        } = self;
        session.wait().await;
        ExecOutput {
            stdout: stdout.take(),
            stderr: stderr.take(),
        }
    }
}

/// The result of ExecSync's output collection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// Stdout (with a tty: everything).
    pub stdout: CappedOutput,
    /// Stderr (empty with a tty).
    pub stderr: CappedOutput,
}

/// Bytes kept by a [`CappedBuffer`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CappedOutput {
    /// The first `cap` bytes.
    pub data: Vec<u8>,
    /// More than `cap` bytes were written.
    pub truncated: bool,
}

/// An in-memory writer that keeps the first `cap` bytes and accepts (and
/// drops) the rest, so the process is never blocked (containerd's
/// `cappedWriter`). Clones share the buffer.
#[derive(Clone, Debug)]
pub struct CappedBuffer {
    cap: usize,
    out: Arc<Mutex<CappedOutput>>,
}

impl CappedBuffer {
    /// An empty buffer keeping at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            out: Arc::new(Mutex::new(CappedOutput::default())),
        }
    }

    /// Takes what was collected so far.
    pub fn take(&self) -> CappedOutput {
        std::mem::take(&mut *self.out.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl AsyncWrite for CappedBuffer {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        let room = self.cap.saturating_sub(out.data.len());
        let keep = room.min(buf.len());
        out.data.extend_from_slice(&buf[..keep]);
        if keep < buf.len() {
            out.truncated = true;
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::fifo::StdioOptions;
    use std::path::Path;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::oneshot;
    use tokio::time::timeout;

    const T: Duration = Duration::from_secs(10);

    fn exec_io(tmp: &Path, opts: StdioOptions) -> ExecIo {
        let fifos = FifoSet::create(&tmp.join("containers/c1"), "e1", opts).unwrap();
        ExecIo::new("e1", fifos).unwrap()
    }

    fn shim_writer(path: Option<&Path>) -> pipe::Sender {
        pipe::OpenOptions::new().open_sender(path.unwrap()).unwrap()
    }

    fn check_cap(cap: usize, stdout: &[u8], expected: CappedOutput) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let tmp = tempfile::tempdir().unwrap();
            let mut io = exec_io(tmp.path(), StdioOptions::default());
            let collector = io.collect(cap).unwrap();
            let mut out = shim_writer(io.fifos().stdout());
            let mut err = shim_writer(io.fifos().stderr());
            out.write_all(stdout).await.unwrap();
            err.write_all(b"err").await.unwrap();
            drop((out, err));
            let got = timeout(T, collector.wait()).await.unwrap();
            assert_eq!(got.stdout, expected);
            assert_eq!(
                got.stderr,
                CappedOutput {
                    data: b"err".to_vec(),
                    truncated: false
                }
            );
            io.close().unwrap();
        });
    }

    #[test]
    fn output_under_the_cap_is_kept_whole() {
        check_cap(
            10,
            b"12345",
            CappedOutput {
                data: b"12345".to_vec(),
                truncated: false,
            },
        );
    }

    #[test]
    fn output_exactly_at_the_cap_is_not_truncated() {
        check_cap(
            5,
            b"12345",
            CappedOutput {
                data: b"12345".to_vec(),
                truncated: false,
            },
        );
    }

    #[test]
    fn output_over_the_cap_is_truncated_and_drained() {
        let big = vec![b'a'; 4 << 20];
        check_cap(
            1000,
            &big,
            CappedOutput {
                data: vec![b'a'; 1000],
                truncated: true,
            },
        );
    }

    #[tokio::test]
    async fn tty_exec_collects_stdout_only() {
        let tmp = tempfile::tempdir().unwrap();
        let mut io = exec_io(
            tmp.path(),
            StdioOptions {
                stdin: false,
                tty: true,
            },
        );
        let collector = io.collect(1 << 20).unwrap();
        let mut out = shim_writer(io.fifos().stdout());
        out.write_all(b"all\r\n").await.unwrap();
        drop(out);
        let got = timeout(T, collector.wait()).await.unwrap();
        assert_eq!(got.stdout.data, b"all\r\n");
        assert_eq!(got.stderr, CappedOutput::default());
    }

    #[tokio::test]
    async fn streams_to_a_client_with_stdin_once() {
        let tmp = tempfile::tempdir().unwrap();
        let mut io = exec_io(
            tmp.path(),
            StdioOptions {
                stdin: true,
                tty: false,
            },
        );
        let mut shim_in = pipe::OpenOptions::new()
            .open_receiver(io.fifos().stdin().unwrap())
            .unwrap();
        let (mut client_in, stdin) = tokio::io::duplex(1024);
        let (stdout, mut client_out) = tokio::io::duplex(1024);
        let (closed_tx, closed_rx) = oneshot::channel();
        let session = io
            .attach(AttachStreams {
                stdin: Some(Box::new(stdin)),
                stdout: Some(Box::new(stdout)),
                stdin_once: true,
                close_stdin: Some(Box::pin(async move {
                    let _ = closed_tx.send(());
                })),
                ..AttachStreams::default()
            })
            .unwrap();
        assert!(matches!(
            io.attach(AttachStreams::default()),
            Err(Error::AlreadyAttached { id }) if id == "e1"
        ));

        client_in.write_all(b"input").await.unwrap();
        drop(client_in);
        let mut got = Vec::new();
        timeout(T, shim_in.read_to_end(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, b"input");
        timeout(T, closed_rx).await.unwrap().unwrap();

        // Output keeps flowing after stdin closed, until the process ends.
        let mut out = shim_writer(io.fifos().stdout());
        out.write_all(b"output").await.unwrap();
        drop(out);
        drop(shim_writer(io.fifos().stderr()));
        let mut got = String::new();
        timeout(T, client_out.read_to_string(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, "output");
        timeout(T, session.wait()).await.unwrap();
    }

    #[tokio::test]
    async fn stdin_end_without_stdin_once_stops_the_outputs() {
        let tmp = tempfile::tempdir().unwrap();
        let mut io = exec_io(
            tmp.path(),
            StdioOptions {
                stdin: true,
                tty: false,
            },
        );
        let (client_in, stdin) = tokio::io::duplex(1024);
        let (stdout, mut client_out) = tokio::io::duplex(1024);
        let session = io
            .attach(AttachStreams {
                stdin: Some(Box::new(stdin)),
                stdout: Some(Box::new(stdout)),
                ..AttachStreams::default()
            })
            .unwrap();
        // The process still holds its outputs open.
        let _out = shim_writer(io.fifos().stdout());
        drop(client_in);
        timeout(T, session.wait()).await.unwrap();
        let mut got = String::new();
        timeout(T, client_out.read_to_string(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, "");
    }

    #[tokio::test]
    async fn an_output_without_a_client_stream_is_drained() {
        let tmp = tempfile::tempdir().unwrap();
        let mut io = exec_io(tmp.path(), StdioOptions::default());
        let (stdout, mut client_out) = tokio::io::duplex(1024);
        let session = io
            .attach(AttachStreams {
                stdout: Some(Box::new(stdout)),
                ..AttachStreams::default()
            })
            .unwrap();
        let mut err = shim_writer(io.fifos().stderr());
        timeout(T, err.write_all(&vec![b'e'; 4 << 20]))
            .await
            .unwrap()
            .unwrap();
        drop(err);
        drop(shim_writer(io.fifos().stdout()));
        let mut got = String::new();
        timeout(T, client_out.read_to_string(&mut got))
            .await
            .unwrap()
            .unwrap();
        timeout(T, session.wait()).await.unwrap();
        let dir = io.fifos().dir().unwrap().to_owned();
        io.close().unwrap();
        assert!(!dir.exists());
    }

    #[test]
    fn capped_buffer_accepts_everything_and_keeps_the_head() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let buf = CappedBuffer::new(4);
            let mut w = buf.clone();
            assert_eq!(w.write(b"abc").await.unwrap(), 3);
            assert_eq!(w.write(b"def").await.unwrap(), 3);
            assert_eq!(
                buf.take(),
                CappedOutput {
                    data: b"abcd".to_vec(),
                    truncated: true
                }
            );
        });
    }
}
