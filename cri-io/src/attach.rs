//! Attach sessions: the client streams handed in by the streaming server,
//! the handle that ends a session, and the copy loops that container and
//! exec IO share (stdin forwarding, output forwarding).
//!
//! Stdin, as containerd's `ContainerIO.Attach` / `ExecIO.Attach`: when the
//! client's stdin ends (EOF, error, its output streams ending, or detach),
//! with `stdin_once && !tty` the process's stdin FIFO is closed and
//! `close_stdin` runs (the caller's `CloseIO` on the task); otherwise the
//! client's outputs are detached and the session ends. With a tty, stdin
//! ending means the client went away, so the container keeps its stdin.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// A client input stream.
pub type BoxReader = Box<dyn AsyncRead + Send + Unpin>;
/// A client output stream.
pub type BoxWriter = Box<dyn AsyncWrite + Send + Unpin>;
/// Closes the process's stdin on the containerd side (`task.CloseIO`); run
/// once the stdin FIFO is closed under `stdin_once`. Log its errors inside.
pub type CloseStdin = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Size of one stdin read from a client.
const STDIN_BUF_SIZE: usize = 32 * 1024;
/// Client stdin chunks queued towards the stdin FIFO.
const STDIN_QUEUE: usize = 16;

/// What a client attaches (CRI Attach / Exec streaming).
#[derive(Default)]
pub struct AttachStreams {
    /// Forwarded into the process's stdin, if it has one.
    pub stdin: Option<BoxReader>,
    /// Receives stdout (with a tty, the only output).
    pub stdout: Option<BoxWriter>,
    /// Receives stderr; ignored with a tty.
    pub stderr: Option<BoxWriter>,
    /// Close the process's stdin when this client's stdin ends.
    pub stdin_once: bool,
    /// The process has a terminal.
    pub tty: bool,
    /// Run after the stdin FIFO is closed under `stdin_once`.
    pub close_stdin: Option<CloseStdin>,
}

impl fmt::Debug for AttachStreams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttachStreams")
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .field("stdin_once", &self.stdin_once)
            .field("tty", &self.tty)
            .field("close_stdin", &self.close_stdin.is_some())
            .finish()
    }
}

/// A running attach. It ends by itself when the process's outputs end, a
/// client stream fails, or (without `stdin_once`) the client's stdin ends.
/// Dropping it detaches the client.
#[must_use = "dropping an AttachSession detaches the client"]
#[derive(Debug)]
pub struct AttachSession {
    tasks: Vec<JoinHandle<()>>,
    stop: Signal,
}

impl AttachSession {
    pub(crate) fn new(tasks: Vec<JoinHandle<()>>, stop: Signal) -> Self {
        Self { tasks, stop }
    }

    /// Resolves when every stream of the session is done.
    pub async fn wait(mut self) {
        for task in std::mem::take(&mut self.tasks) {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "attach stream task failed");
            }
        }
    }

    /// Detaches the client: stops its output streams and its stdin.
    pub fn detach(&self) {
        self.stop.fire();
    }
}

impl Drop for AttachSession {
    fn drop(&mut self) {
        self.stop.fire();
    }
}

/// A one-way latch that any number of tasks can wait on.
#[derive(Clone, Debug)]
pub(crate) struct Signal(Arc<watch::Sender<bool>>);

impl Signal {
    pub(crate) fn new() -> Self {
        Self(Arc::new(watch::channel(false).0))
    }

    pub(crate) fn fire(&self) {
        self.0.send_replace(true);
    }

    /// Resolves once [`Signal::fire`] has been called (at once if it was).
    pub(crate) fn fired(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.subscribe();
        async move {
            // The sender lives in `self`'s Arc, which `rx` does not keep;
            // a closed channel can only mean nobody can fire any more.
            let _ = rx.wait_for(|fired| *fired).await;
        }
    }
}

/// A request to the task that owns the stdin FIFO.
#[derive(Debug)]
pub(crate) enum StdinMsg {
    Data(Bytes),
    /// Close the FIFO after the data queued before it; ack once closed.
    Close(oneshot::Sender<()>),
}

/// Spawns the task owning the stdin FIFO's write end. It ends, closing the
/// FIFO, on `Close`, on a write error, or when `closed` fires.
pub(crate) fn spawn_stdin_writer(
    mut fifo: pipe::Sender,
    closed: &Signal,
) -> mpsc::Sender<StdinMsg> {
    let (tx, mut rx) = mpsc::channel(STDIN_QUEUE);
    let closed = closed.fired();
    tokio::spawn(async move {
        tokio::pin!(closed);
        loop {
            let msg = tokio::select! {
                _ = &mut closed => return,
                msg = rx.recv() => msg,
            };
            match msg {
                None => return,
                Some(StdinMsg::Data(data)) => {
                    let written = tokio::select! {
                        _ = &mut closed => return,
                        r = fifo.write_all(&data) => r,
                    };
                    if let Err(e) = written {
                        tracing::debug!(error = %e, "write to stdin fifo failed");
                        return;
                    }
                }
                Some(StdinMsg::Close(ack)) => {
                    drop(fifo);
                    let _ = ack.send(());
                    return;
                }
            }
        }
    });
    tx
}

/// The signals one session's tasks share.
#[derive(Clone, Debug)]
pub(crate) struct SessionSignals {
    /// Detach: output streams stop. Fired by the session handle, or when
    /// stdin ends without `stdin_once`.
    pub(crate) stop: Signal,
    /// One of the session's output streams has ended.
    pub(crate) output_ended: Signal,
    /// The whole container or exec IO was closed.
    pub(crate) io_closed: Signal,
}

impl SessionSignals {
    pub(crate) fn new(io_closed: &Signal) -> Self {
        Self {
            stop: Signal::new(),
            output_ended: Signal::new(),
            io_closed: io_closed.clone(),
        }
    }
}

/// Forwards a client's stdin into the stdin FIFO and applies the
/// `stdin_once` rule when it ends.
pub(crate) async fn forward_stdin(
    mut reader: BoxReader,
    stdin: mpsc::Sender<StdinMsg>,
    once: bool,
    close_stdin: Option<CloseStdin>,
    signals: SessionSignals,
) {
    let forward = async {
        let mut buf = vec![0u8; STDIN_BUF_SIZE];
        loop {
            let n = match reader.read(&mut buf).await {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!(error = %e, "read attach stdin failed");
                    return;
                }
            };
            let chunk = Bytes::copy_from_slice(&buf[..n]);
            if stdin.send(StdinMsg::Data(chunk)).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = forward => {}
        () = signals.stop.fired() => {}
        () = signals.output_ended.fired() => {}
        () = signals.io_closed.fired() => {}
    }
    if once {
        let (ack, acked) = oneshot::channel();
        if stdin.send(StdinMsg::Close(ack)).await.is_ok() {
            let _ = acked.await;
        }
        if let Some(close_stdin) = close_stdin {
            close_stdin.await;
        }
    } else {
        signals.stop.fire();
    }
}

/// Writes queued output chunks to a client until the queue ends, a write
/// fails, or the session stops; then shuts the client stream down (unless
/// it failed), as containerd closes an attacher's writer.
pub(crate) async fn forward_chunks(
    mut chunks: mpsc::Receiver<Bytes>,
    mut writer: BoxWriter,
    signals: &SessionSignals,
) {
    let copy = async {
        while let Some(chunk) = chunks.recv().await {
            if let Err(e) = write_chunk(&mut writer, &chunk).await {
                tracing::debug!(error = %e, "write to attach client failed");
                return false;
            }
        }
        true
    };
    let healthy = tokio::select! {
        ok = copy => ok,
        () = signals.stop.fired() => true,
        () = signals.io_closed.fired() => true,
    };
    drop(chunks);
    finish_client(writer, healthy, signals).await;
}

/// Copies a FIFO straight to a client (exec streams) until EOF, a failure,
/// or the session stops; then shuts the client stream down (unless it
/// failed).
pub(crate) async fn copy_output(
    mut fifo: pipe::Receiver,
    mut writer: BoxWriter,
    signals: &SessionSignals,
) {
    let copy = async {
        let mut buf = vec![0u8; STDIN_BUF_SIZE];
        loop {
            match fifo.read(&mut buf).await {
                Ok(0) => return true,
                Ok(n) => {
                    if let Err(e) = write_chunk(&mut writer, &buf[..n]).await {
                        tracing::debug!(error = %e, "write to exec client failed");
                        return false;
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "read exec output fifo failed");
                    return true;
                }
            }
        }
    };
    let healthy = tokio::select! {
        ok = copy => ok,
        () = signals.stop.fired() => true,
        () = signals.io_closed.fired() => true,
    };
    drop(fifo);
    finish_client(writer, healthy, signals).await;
}

/// Bound on shutting a client stream down, so a stuck client cannot keep
/// its session alive.
const SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

async fn finish_client(mut writer: BoxWriter, healthy: bool, signals: &SessionSignals) {
    signals.output_ended.fire();
    if healthy {
        let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, writer.shutdown()).await;
    }
}

async fn write_chunk(writer: &mut BoxWriter, chunk: &[u8]) -> std::io::Result<()> {
    writer.write_all(chunk).await?;
    writer.flush().await
}
