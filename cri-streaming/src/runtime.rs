//! The seam between the streaming protocols and the containers: what the
//! streaming server asks of the runtime once a client has connected.

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tokio::sync::mpsc;

use super::error::StreamRuntimeError;

/// A terminal size from the client's resize stream
/// (`{"Width":80,"Height":24}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct TerminalSize {
    /// Columns.
    #[serde(rename = "Width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height")]
    pub height: u16,
}

/// Resize events of a tty session; closed when the client goes away.
pub type ResizeReceiver = mpsc::Receiver<TerminalSize>;

/// The client's standard streams, as requested. Stdin reaches EOF when the
/// client closes it; the runtime drops stdout/stderr when the process's
/// output ends.
#[derive(Default)]
pub struct StreamIo {
    /// The client's stdin, if requested.
    pub stdin: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// The client's stdout, if requested.
    pub stdout: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// The client's stderr, if requested (never with a tty).
    pub stderr: Option<Box<dyn AsyncWrite + Send + Unpin>>,
}

impl std::fmt::Debug for StreamIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamIo")
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .finish()
    }
}

/// One forwarded connection: bytes written go to the client, bytes read
/// came from it; EOF when the client closes its side.
pub type PortStream = DuplexStream;

/// What a finished exec reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitCode(pub i32);

/// Runs exec, attach and port forwarding for the streaming server.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait StreamRuntime: Send + Sync {
    /// Runs `cmd` in the container wired to `io`; returns its exit code.
    async fn exec(
        &self,
        container_id: &str,
        cmd: &[String],
        io: StreamIo,
        tty: bool,
        resize: Option<ResizeReceiver>,
    ) -> Result<ExitCode, StreamRuntimeError>;

    /// Attaches `io` to the container's main process until it exits or the
    /// client leaves.
    async fn attach(
        &self,
        container_id: &str,
        io: StreamIo,
        tty: bool,
        resize: Option<ResizeReceiver>,
    ) -> Result<(), StreamRuntimeError>;

    /// Connects `stream` to `port` in the sandbox's network namespace until
    /// either side closes.
    async fn port_forward(
        &self,
        pod_sandbox_id: &str,
        port: u16,
        stream: PortStream,
    ) -> Result<(), StreamRuntimeError>;
}
