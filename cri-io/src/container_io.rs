//! A container's IO (containerd's `pkg/cri/io/container_io.go`): drains
//! stdout and stderr from the FIFOs into the CRI log and to any attached
//! clients, forwards client stdin into the stdin FIFO, and tells the exit
//! handler when the output is fully drained.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use cri_api::ids::ContainerId;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, watch};

use crate::attach::{
    forward_chunks, forward_stdin, spawn_stdin_writer, AttachSession, AttachStreams,
    SessionSignals, Signal, StdinMsg,
};
use crate::error::{Error, Result};
use crate::fanout::Fanout;
use crate::fifo::FifoSet;
use crate::log::{CriLog, CriLogWriter, StreamType};

/// Size of one read from an output FIFO (Go's `io.Copy` buffer).
pub const READ_BUF_SIZE: usize = 32 * 1024;
/// The read buffer a pump starts with; it grows to [`READ_BUF_SIZE`] the
/// first time a read fills it, so a quiet container's two pumps keep 8
/// KiB and not 64 KiB.
const FIRST_READ_BUF_SIZE: usize = 4 * 1024;

/// The IO of one container. Cheap to clone; clones share everything.
#[derive(Clone, Debug)]
pub struct ContainerIo {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    id: ContainerId,
    fifos: FifoSet,
    stdin: Option<mpsc::Sender<StdinMsg>>,
    /// The output FIFOs until [`ContainerIo::pipe`] takes them.
    outputs: Mutex<Option<Outputs>>,
    stdout: Arc<Fanout>,
    stderr: Arc<Fanout>,
    log: Mutex<Option<CriLog>>,
    /// Output pumps still running.
    active: Arc<watch::Sender<usize>>,
    closed: Signal,
}

#[derive(Debug)]
struct Outputs {
    stdout: Option<pipe::Receiver>,
    stderr: Option<pipe::Receiver>,
}

impl ContainerIo {
    /// Opens `fifos` (without blocking) for container `id`. Nothing is read
    /// until [`ContainerIo::pipe`]. Must be called inside a tokio runtime.
    pub fn new(id: ContainerId, fifos: FifoSet) -> Result<Self> {
        let pipes = fifos.open()?;
        let closed = Signal::new();
        let stdin = pipes.stdin.map(|fifo| spawn_stdin_writer(fifo, &closed));
        let inner = Inner {
            id,
            fifos,
            stdin,
            outputs: Mutex::new(Some(Outputs {
                stdout: pipes.stdout,
                stderr: pipes.stderr,
            })),
            stdout: Arc::new(Fanout::new(StreamType::Stdout)),
            stderr: Arc::new(Fanout::new(StreamType::Stderr)),
            log: Mutex::new(None),
            active: Arc::new(watch::channel(0).0),
            closed,
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The container's id.
    pub fn id(&self) -> &ContainerId {
        &self.inner.id
    }

    /// The FIFOs, whose paths go into the containerd task request.
    pub fn fifos(&self) -> &FifoSet {
        &self.inner.fifos
    }

    /// Starts draining the outputs: into `log` when the container has a log
    /// path, else discarded; and to attached clients in both cases. Call it
    /// once, when the task is created or re-attached after a restart.
    pub fn pipe(&self, log: Option<CriLog>) -> Result<()> {
        let outputs = self
            .inner
            .outputs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(outputs) = outputs else {
            return Err(Error::AlreadyPiped {
                id: self.inner.id.to_string(),
            });
        };
        *self
            .inner
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = log.clone();

        let streams = [
            (StreamType::Stdout, outputs.stdout, &self.inner.stdout),
            (StreamType::Stderr, outputs.stderr, &self.inner.stderr),
        ];
        for (stream, fifo, fanout) in streams {
            let Some(fifo) = fifo else {
                fanout.close();
                continue;
            };
            self.inner.active.send_modify(|n| *n += 1);
            let pump = Pump {
                id: self.inner.id.clone(),
                stream,
                fifo,
                log: log.as_ref().map(|log| log.writer(stream)),
                fanout: Arc::clone(fanout),
                closed: self.inner.closed.clone(),
                _active: ActiveGuard(Arc::clone(&self.inner.active)),
            };
            tokio::spawn(pump.run());
        }
        Ok(())
    }

    /// Attaches a client. Its outputs get the live output from now on,
    /// through a bounded queue: a client that falls behind is dropped and
    /// never slows the container or the log. With a tty, `stderr` is
    /// ignored. Must be called inside a tokio runtime.
    pub fn attach(&self, streams: AttachStreams) -> AttachSession {
        let signals = SessionSignals::new(&self.inner.closed);
        let tty = streams.tty || self.inner.fifos.terminal();
        let mut tasks = Vec::new();
        let outputs = [
            (streams.stdout, &self.inner.stdout),
            (streams.stderr.filter(|_| !tty), &self.inner.stderr),
        ];
        for (writer, fanout) in outputs {
            if let Some(writer) = writer {
                let chunks = fanout.subscribe();
                let signals = signals.clone();
                tasks.push(tokio::spawn(async move {
                    forward_chunks(chunks, writer, &signals).await
                }));
            }
        }
        if let (Some(reader), Some(stdin)) = (streams.stdin, &self.inner.stdin) {
            // The request's tty alone, as containerd's: a client without
            // one ends a tty container's stdin too.
            let once = streams.stdin_once && !streams.tty;
            let task = forward_stdin(
                reader,
                stdin.clone(),
                once,
                streams.close_stdin,
                signals.clone(),
            );
            tasks.push(tokio::spawn(task));
        }
        tracing::debug!(container_id = %self.inner.id, streams = tasks.len(), "attach started");
        AttachSession::new(tasks, signals.stop)
    }

    /// ReopenContainerLog: reopens the log path (after the kubelet renamed
    /// the file) without losing or repeating records. No-op without a log.
    pub fn reopen_log(&self) -> Result<()> {
        let log = self
            .inner
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match log {
            Some(log) => log.reopen(),
            None => Ok(()),
        }
    }

    /// Resolves once every piped output stream has hit EOF (or the IO was
    /// closed) and its last records are written. Resolves at once if
    /// [`ContainerIo::pipe`] was not called. The exit handler awaits it,
    /// with a timeout, before deleting the task.
    pub fn drained(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut active = self.inner.active.subscribe();
        async move {
            let _ = active.wait_for(|n| *n == 0).await;
        }
    }

    /// Stops all copying, closes the FIFOs and detaches every client, then
    /// removes the FIFO dir. Buffered partial lines are written to the log.
    pub fn close(&self) -> Result<()> {
        self.inner.closed.fire();
        // Outputs that were never piped.
        self.inner
            .outputs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.inner.fifos.remove()
    }
}

/// Decrements the running-pump count however the pump ends.
#[derive(Debug)]
struct ActiveGuard(Arc<watch::Sender<usize>>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Copies one output FIFO to the log and the fan-out until EOF or close.
struct Pump {
    id: ContainerId,
    stream: StreamType,
    fifo: pipe::Receiver,
    log: Option<CriLogWriter>,
    fanout: Arc<Fanout>,
    closed: Signal,
    _active: ActiveGuard,
}

impl Pump {
    async fn run(mut self) {
        let stream = self.stream.as_str();
        let mut buf = vec![0u8; FIRST_READ_BUF_SIZE];
        let closed = self.closed.fired();
        tokio::pin!(closed);
        loop {
            let read = tokio::select! {
                biased;
                () = &mut closed => break,
                r = self.fifo.read(&mut buf) => r,
            };
            let n = match read {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(container_id = %self.id, stream, error = %e, "read output fifo failed");
                    break;
                }
            };
            if let Some(log) = self.log.as_mut() {
                // As containerd: keep draining the container on log errors.
                if let Err(e) = log.write(&buf[..n]).await {
                    tracing::warn!(container_id = %self.id, stream, error = %e, "write container log failed");
                }
            }
            self.fanout.broadcast(&buf[..n]);
            if n == buf.len() && buf.len() < READ_BUF_SIZE {
                buf.resize(READ_BUF_SIZE, 0);
            }
        }
        if let Some(log) = self.log.as_mut() {
            if let Err(e) = log.finish().await {
                tracing::warn!(container_id = %self.id, stream, error = %e, "write container log failed");
            }
        }
        self.fanout.close();
        tracing::debug!(container_id = %self.id, stream, "finished piping output");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::fanout::ATTACH_BUFFER_CHUNKS;
    use crate::fifo::{FifoPaths, StdioOptions};
    use crate::log::LineLimit;
    use crate::timestamp::Clock;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio::sync::oneshot;
    use tokio::time::timeout;

    const T: Duration = Duration::from_secs(10);
    const CID: &str = "c0ffee";

    #[derive(Debug)]
    struct FixedClock;

    impl Clock for FixedClock {
        fn now(&self) -> SystemTime {
            UNIX_EPOCH + Duration::new(1_795_932_000, 0)
        }
    }

    struct Fixture {
        _tmp: tempfile::TempDir,
        io: ContainerIo,
        log_path: PathBuf,
    }

    fn fixture(opts: StdioOptions, with_log: bool) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state/containers").join(CID);
        let fifos = FifoSet::create(&state, CID, opts).unwrap();
        let io = ContainerIo::new(ContainerId::from(CID), fifos).unwrap();
        let log_path = tmp.path().join("pods/ns_pod_uid/ctr/0.log");
        let log = with_log
            .then(|| CriLog::open(&log_path, LineLimit::default(), Arc::new(FixedClock)).unwrap());
        io.pipe(log).unwrap();
        Fixture {
            _tmp: tmp,
            io,
            log_path,
        }
    }

    /// The shim's write end of an output FIFO.
    fn shim_writer(path: Option<&Path>) -> pipe::Sender {
        pipe::OpenOptions::new().open_sender(path.unwrap()).unwrap()
    }

    /// `(stream, tag, content)` of every record in the log.
    fn records(path: &Path) -> Vec<(String, String, String)> {
        let text = String::from_utf8(std::fs::read(path).unwrap_or_default()).unwrap();
        text.lines()
            .map(|line| {
                let f: Vec<&str> = line.splitn(4, ' ').collect();
                assert_eq!(f[0], "2026-11-29T06:00:00Z", "{line}");
                (f[1].to_owned(), f[2].to_owned(), f[3].to_owned())
            })
            .collect()
    }

    fn rec(stream: &str, tag: &str, content: &str) -> (String, String, String) {
        (stream.to_owned(), tag.to_owned(), content.to_owned())
    }

    async fn wait_for_records(path: &Path, n: usize) {
        timeout(T, async {
            while records(path).len() < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap();
    }

    fn client_out() -> (BoxWriterEnd, DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        (Box::new(ours), theirs)
    }
    type BoxWriterEnd = crate::attach::BoxWriter;

    async fn read_all(mut r: DuplexStream) -> String {
        let mut s = String::new();
        timeout(T, r.read_to_string(&mut s)).await.unwrap().unwrap();
        s
    }

    #[tokio::test]
    async fn both_streams_reach_the_log_and_drained_resolves() {
        let f = fixture(StdioOptions::default(), true);
        let mut out = shim_writer(f.io.fifos().stdout());
        let mut err = shim_writer(f.io.fifos().stderr());
        out.write_all(b"out 1\nout 2\n").await.unwrap();
        wait_for_records(&f.log_path, 2).await;
        err.write_all(b"err 1\r\n").await.unwrap();
        wait_for_records(&f.log_path, 3).await;
        out.write_all(b"no newline").await.unwrap();
        drop((out, err));
        timeout(T, f.io.drained()).await.unwrap();
        assert_eq!(
            records(&f.log_path),
            [
                rec("stdout", "F", "out 1"),
                rec("stdout", "F", "out 2"),
                rec("stderr", "F", "err 1"),
                rec("stdout", "P", "no newline"),
            ]
        );
    }

    #[tokio::test]
    async fn tty_logs_only_stdout() {
        let f = fixture(
            StdioOptions {
                stdin: false,
                tty: true,
            },
            true,
        );
        // The stderr FIFO exists (containerd makes it too) but is not read.
        assert!(f.io.fifos().stderr().is_some_and(|p| p.exists()));
        let mut out = shim_writer(f.io.fifos().stdout());
        out.write_all(b"$ ls\r\n").await.unwrap();
        drop(out);
        timeout(T, f.io.drained()).await.unwrap();
        assert_eq!(records(&f.log_path), [rec("stdout", "F", "$ ls")]);
    }

    #[tokio::test]
    async fn without_a_log_output_is_still_drained() {
        let f = fixture(StdioOptions::default(), false);
        let mut out = shim_writer(f.io.fifos().stdout());
        // Far more than a pipe buffer: blocks unless someone reads.
        timeout(T, out.write_all(&vec![b'x'; 4 << 20]))
            .await
            .unwrap()
            .unwrap();
        drop(out);
        drop(shim_writer(f.io.fifos().stderr()));
        timeout(T, f.io.drained()).await.unwrap();
        assert!(!f.log_path.exists());
        f.io.reopen_log().unwrap();
    }

    #[tokio::test]
    async fn two_attachers_both_receive_the_output() {
        let f = fixture(StdioOptions::default(), true);
        let (w1, r1) = client_out();
        let (e1, re1) = client_out();
        let (w2, r2) = client_out();
        let s1 = f.io.attach(AttachStreams {
            stdout: Some(w1),
            stderr: Some(e1),
            ..Default::default()
        });
        let s2 = f.io.attach(AttachStreams {
            stdout: Some(w2),
            ..Default::default()
        });
        let mut out = shim_writer(f.io.fifos().stdout());
        let mut err = shim_writer(f.io.fifos().stderr());
        out.write_all(b"hello\n").await.unwrap();
        err.write_all(b"oops\n").await.unwrap();
        out.write_all(b"bye\n").await.unwrap();
        drop((out, err));
        assert_eq!(read_all(r1).await, "hello\nbye\n");
        assert_eq!(read_all(re1).await, "oops\n");
        assert_eq!(read_all(r2).await, "hello\nbye\n");
        timeout(T, s1.wait()).await.unwrap();
        timeout(T, s2.wait()).await.unwrap();
        assert_eq!(records(&f.log_path).len(), 3);
    }

    #[tokio::test]
    async fn an_attacher_gets_output_from_the_moment_it_attaches() {
        let f = fixture(StdioOptions::default(), true);
        let mut out = shim_writer(f.io.fifos().stdout());
        out.write_all(b"early\n").await.unwrap();
        wait_for_records(&f.log_path, 1).await;
        let (w, r) = client_out();
        let session = f.io.attach(AttachStreams {
            stdout: Some(w),
            ..Default::default()
        });
        out.write_all(b"late\n").await.unwrap();
        drop(out);
        drop(shim_writer(f.io.fifos().stderr()));
        assert_eq!(read_all(r).await, "late\n");
        timeout(T, session.wait()).await.unwrap();
        // Attaching after EOF ends at once.
        let (w, r) = client_out();
        let late = f.io.attach(AttachStreams {
            stdout: Some(w),
            ..Default::default()
        });
        assert_eq!(read_all(r).await, "");
        timeout(T, late.wait()).await.unwrap();
    }

    #[tokio::test]
    async fn a_blocked_attacher_does_not_block_the_log() {
        let f = fixture(StdioOptions::default(), true);
        // A client that never reads: its stream holds 64 bytes.
        let (stuck, _never_read) = tokio::io::duplex(64);
        let session = f.io.attach(AttachStreams {
            stdout: Some(Box::new(stuck)),
            ..Default::default()
        });
        let (w, r) = client_out();
        let healthy = f.io.attach(AttachStreams {
            stdout: Some(w),
            ..Default::default()
        });

        let line = format!("{}\n", "y".repeat(1023));
        let lines = 8 * 1024; // 8 MiB: more reads than the attach queue holds
        assert!(lines * line.len() / READ_BUF_SIZE > ATTACH_BUFFER_CHUNKS + 1);
        let reader = tokio::spawn(read_all(r));
        let mut out = shim_writer(f.io.fifos().stdout());
        timeout(T, async {
            for _ in 0..lines {
                out.write_all(line.as_bytes()).await.unwrap();
            }
        })
        .await
        .unwrap();
        drop(out);
        drop(shim_writer(f.io.fifos().stderr()));
        timeout(T, f.io.drained()).await.unwrap();

        let recs = records(&f.log_path);
        assert_eq!(recs.len(), lines);
        assert!(recs
            .iter()
            .all(|(s, t, c)| s == "stdout" && t == "F" && c.len() == 1023));
        assert_eq!(reader.await.unwrap().len(), lines * line.len());
        timeout(T, healthy.wait()).await.unwrap();
        // The stuck client is only stuck in its own write; detaching ends it.
        session.detach();
        timeout(T, session.wait()).await.unwrap();
    }

    /// The shim's read end of the stdin FIFO.
    fn shim_stdin(io: &ContainerIo) -> pipe::Receiver {
        pipe::OpenOptions::new()
            .open_receiver(io.fifos().stdin().unwrap())
            .unwrap()
    }

    async fn read_some(r: &mut pipe::Receiver) -> String {
        let mut buf = [0u8; 256];
        let n = timeout(T, r.read(&mut buf)).await.unwrap().unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[tokio::test]
    async fn stdin_is_forwarded_and_its_end_detaches_without_stdin_once() {
        let f = fixture(
            StdioOptions {
                stdin: true,
                tty: false,
            },
            true,
        );
        let mut shim = shim_stdin(&f.io);
        let (mut client_in, stdin) = tokio::io::duplex(1024);
        let (w, r) = client_out();
        let session = f.io.attach(AttachStreams {
            stdin: Some(Box::new(stdin)),
            stdout: Some(w),
            ..Default::default()
        });
        client_in.write_all(b"hello").await.unwrap();
        assert_eq!(read_some(&mut shim).await, "hello");

        drop(client_in);
        // The client's outputs are closed and the session ends...
        assert_eq!(read_all(r).await, "");
        timeout(T, session.wait()).await.unwrap();
        // ...but the container keeps its stdin for the next client.
        let (mut client_in, stdin) = tokio::io::duplex(1024);
        let again = f.io.attach(AttachStreams {
            stdin: Some(Box::new(stdin)),
            ..Default::default()
        });
        client_in.write_all(b"again").await.unwrap();
        assert_eq!(read_some(&mut shim).await, "again");
        drop(client_in);
        timeout(T, again.wait()).await.unwrap();
    }

    /// A stdin_once client without a tty, on a container with or without
    /// one: its input reaches the container, then its EOF closes the FIFO
    /// and the containerd side (`close_stdin`).
    async fn check_stdin_once_closes_stdin(container_tty: bool) {
        let f = fixture(
            StdioOptions {
                stdin: true,
                tty: container_tty,
            },
            true,
        );
        let mut shim = shim_stdin(&f.io);
        let (mut client_in, stdin) = tokio::io::duplex(1024);
        let (closed_tx, closed_rx) = oneshot::channel();
        let session = f.io.attach(AttachStreams {
            stdin: Some(Box::new(stdin)),
            stdin_once: true,
            tty: false,
            close_stdin: Some(Box::pin(async move {
                let _ = closed_tx.send(());
            })),
            ..Default::default()
        });
        client_in.write_all(b"last words").await.unwrap();
        drop(client_in);
        let mut got = Vec::new();
        timeout(T, shim.read_to_end(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, b"last words");
        timeout(T, closed_rx).await.unwrap().unwrap();
        timeout(T, session.wait()).await.unwrap();
    }

    #[tokio::test]
    async fn stdin_once_closes_the_fifo_then_calls_close_stdin() {
        check_stdin_once_closes_stdin(false).await;
    }

    #[tokio::test]
    async fn stdin_once_without_a_tty_closes_a_tty_containers_stdin() {
        // As containerd: the request's tty decides, not the container's.
        check_stdin_once_closes_stdin(true).await;
    }

    #[tokio::test]
    async fn stdin_once_with_a_tty_keeps_stdin_open() {
        let f = fixture(
            StdioOptions {
                stdin: true,
                tty: true,
            },
            true,
        );
        let mut shim = shim_stdin(&f.io);
        let (mut client_in, stdin) = tokio::io::duplex(1024);
        let session = f.io.attach(AttachStreams {
            stdin: Some(Box::new(stdin)),
            stdin_once: true,
            tty: true,
            close_stdin: Some(Box::pin(async {
                panic!("stdin must stay open with a tty")
            })),
            ..Default::default()
        });
        client_in.write_all(b"x").await.unwrap();
        assert_eq!(read_some(&mut shim).await, "x");
        drop(client_in);
        timeout(T, session.wait()).await.unwrap();
        let mut buf = [0u8; 8];
        assert!(
            timeout(Duration::from_millis(200), shim.read(&mut buf))
                .await
                .is_err(),
            "stdin hit EOF"
        );
    }

    #[tokio::test]
    async fn close_stops_everything_and_removes_the_fifos() {
        let f = fixture(
            StdioOptions {
                stdin: true,
                tty: false,
            },
            true,
        );
        let mut out = shim_writer(f.io.fifos().stdout());
        out.write_all(b"half a line").await.unwrap();
        let (w, r) = client_out();
        let (_client_in, stdin) = tokio::io::duplex(1024);
        let session = f.io.attach(AttachStreams {
            stdin: Some(Box::new(stdin)),
            stdout: Some(w),
            ..Default::default()
        });
        let dir = f.io.fifos().dir().unwrap().to_owned();
        // Once the client has it, the pump holds it as a pending line.
        let mut r = r;
        let mut got = [0u8; 11];
        timeout(T, r.read_exact(&mut got)).await.unwrap().unwrap();
        assert_eq!(&got, b"half a line");
        f.io.close().unwrap();
        // The shim still holds its write end: no EOF, yet everything ends.
        timeout(T, f.io.drained()).await.unwrap();
        timeout(T, session.wait()).await.unwrap();
        assert_eq!(read_all(r).await, "");
        assert!(!dir.exists());
        assert_eq!(records(&f.log_path), [rec("stdout", "P", "half a line")]);
        drop(out);
    }

    #[tokio::test]
    async fn pipe_twice_is_an_error() {
        let f = fixture(StdioOptions::default(), false);
        assert!(matches!(f.io.pipe(None), Err(Error::AlreadyPiped { id }) if id == CID));
    }

    #[tokio::test]
    async fn reopen_log_moves_output_to_the_new_file() {
        let f = fixture(StdioOptions::default(), true);
        let mut out = shim_writer(f.io.fifos().stdout());
        out.write_all(b"one\n").await.unwrap();
        wait_for_records(&f.log_path, 1).await;
        let rotated = f.log_path.with_extension("log.1");
        std::fs::rename(&f.log_path, &rotated).unwrap();
        f.io.reopen_log().unwrap();
        out.write_all(b"two\n").await.unwrap();
        drop(out);
        drop(shim_writer(f.io.fifos().stderr()));
        timeout(T, f.io.drained()).await.unwrap();
        assert_eq!(records(&rotated), [rec("stdout", "F", "one")]);
        assert_eq!(records(&f.log_path), [rec("stdout", "F", "two")]);
    }

    #[tokio::test]
    async fn output_written_while_no_one_read_is_logged_after_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let created = FifoSet::create(tmp.path(), CID, StdioOptions::default()).unwrap();
        // The shim keeps writing while we are down (O_RDWR: no reader needed).
        let mut shim = pipe::OpenOptions::new()
            .read_write(true)
            .open_sender(created.stdout().unwrap())
            .unwrap();
        shim.write_all(b"while down\n").await.unwrap();

        let p = created.paths();
        let record = FifoPaths::from_task_record("", &p.stdout_str(), &p.stderr_str(), false);
        let io =
            ContainerIo::new(ContainerId::from(CID), FifoSet::reopen(record).unwrap()).unwrap();
        let log_path = tmp.path().join("0.log");
        io.pipe(Some(
            CriLog::open(&log_path, LineLimit::default(), Arc::new(FixedClock)).unwrap(),
        ))
        .unwrap();
        shim.write_all(b"after restart\n").await.unwrap();
        drop(shim);
        drop(shim_writer(io.fifos().stderr()));
        timeout(T, io.drained()).await.unwrap();
        assert_eq!(
            records(&log_path),
            [
                rec("stdout", "F", "while down"),
                rec("stdout", "F", "after restart")
            ]
        );
        io.close().unwrap();
        assert!(!created.dir().unwrap().exists());
    }
}
