//! Errors of the streaming server: request validation and the token cache
//! (`StreamingError`), the SPDY protocol (`SpdyError`) and what a
//! `StreamRuntime` reports (`StreamRuntimeError`).

use std::io;
use std::path::PathBuf;

/// Why a streaming request could not be prepared or served.
#[derive(Debug, thiserror::Error)]
pub enum StreamingError {
    /// Exec/Attach without a container id.
    #[error("missing required container_id")]
    MissingContainerId,
    /// PortForward without a sandbox id.
    #[error("missing required pod_sandbox_id")]
    MissingSandboxId,
    /// Exec without a command.
    #[error("missing required cmd")]
    MissingCommand,
    /// tty and stderr cannot be multiplexed.
    #[error("tty and stderr cannot both be true")]
    TtyWithStderr,
    /// None of stdin, stdout, stderr requested.
    #[error("one of stdin, stdout, or stderr must be set")]
    NoStreams,
    /// A port outside 1-65535.
    #[error("invalid port {0}: must be between 1 and 65535")]
    InvalidPort(i64),
    /// The token cache is full.
    #[error("maximum number of in-flight requests exceeded")]
    TooManyRequests,
    /// The listener could not be bound.
    #[error("bind streaming server on {addr}")]
    Bind {
        /// The address that was asked for.
        addr: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The `enable_tls_streaming` / `x509_key_pair_streaming` keys conflict.
    #[error("invalid stream server tls configuration: {0}")]
    TlsConfig(&'static str),
    /// A TLS certificate or key file could not be read.
    #[error("read stream server tls {kind} file {}", path.display())]
    TlsRead {
        /// Certificate or key.
        kind: TlsFileKind,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A TLS certificate or key file holds no usable PEM block.
    #[error("parse stream server tls {kind} file {}", path.display())]
    TlsPem {
        /// Certificate or key.
        kind: TlsFileKind,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The certificate and key do not form a usable identity.
    #[error("load stream server tls key pair ({files})")]
    TlsKeyPair {
        /// The files, or "self-signed".
        files: String,
        /// Why.
        #[source]
        source: rustls::Error,
    },
    /// The self-signed certificate could not be generated.
    #[error("generate self-signed stream server tls certificate")]
    TlsSelfSigned(#[source] rcgen::Error),
}

/// Which half of the TLS key pair a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFileKind {
    /// `tls_cert_file`.
    Certificate,
    /// `tls_key_file`.
    Key,
}

impl std::fmt::Display for TlsFileKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsFileKind::Certificate => "certificate",
            TlsFileKind::Key => "key",
        })
    }
}

/// How a caller should classify a [`StreamingError`] (`status.rs` picks the
/// gRPC code from this).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamingErrorKind {
    /// The request is malformed.
    InvalidArgument,
    /// Too many requests in flight.
    ResourceExhausted,
    /// The server itself failed.
    Internal,
}

impl StreamingError {
    /// The class of this error.
    pub fn kind(&self) -> StreamingErrorKind {
        match self {
            StreamingError::TooManyRequests => StreamingErrorKind::ResourceExhausted,
            StreamingError::Bind { .. }
            | StreamingError::TlsConfig(_)
            | StreamingError::TlsRead { .. }
            | StreamingError::TlsPem { .. }
            | StreamingError::TlsKeyPair { .. }
            | StreamingError::TlsSelfSigned(_) => StreamingErrorKind::Internal,
            _ => StreamingErrorKind::InvalidArgument,
        }
    }
}

/// A SPDY framing or connection failure.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    /// Reading or writing the connection failed.
    #[error("spdy connection i/o")]
    Io(#[from] io::Error),
    /// zlib refused a header block.
    #[error("spdy header compression: {0}")]
    Compression(String),
    /// A header block is malformed.
    #[error("invalid spdy header block: {0}")]
    InvalidHeaderBlock(&'static str),
    /// A frame is malformed.
    #[error("invalid spdy frame: {0}")]
    InvalidFrame(&'static str),
    /// A control frame of another SPDY version.
    #[error("unsupported spdy version {0}")]
    UnsupportedVersion(u16),
    /// A payload over the 24-bit length limit.
    #[error("spdy frame of {0} bytes is too large")]
    FrameTooLarge(usize),
    /// Writing to a stream that is finished or gone.
    #[error("spdy stream {0} is closed")]
    StreamClosed(u32),
    /// The peer reset or refused the stream.
    #[error("spdy stream {0} was reset by the peer")]
    StreamReset(u32),
    /// The connection is closed.
    #[error("spdy connection is closed")]
    SessionClosed,
    /// All 31-bit stream ids are used.
    #[error("no more spdy stream ids")]
    StreamIdsExhausted,
}

/// What a [`crate::StreamRuntime`] reports when it cannot run
/// an exec, attach or port forward.
#[derive(Debug, thiserror::Error)]
pub enum StreamRuntimeError {
    /// The container or sandbox does not exist.
    #[error("{kind} {id} not found")]
    NotFound {
        /// "container" or "sandbox".
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// The container is not running.
    #[error("container {0} is not running")]
    NotRunning(String),
    /// The runtime operation failed.
    #[error("{operation} for {id}")]
    Failed {
        /// e.g. "exec", "attach", "port forward".
        operation: &'static str,
        /// Container or sandbox id.
        id: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StreamRuntimeError {
    /// The message with its whole source chain, as Go prints a wrapped error.
    pub fn chain(&self) -> String {
        let mut msg = self.to_string();
        let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(self);
        while let Some(e) = cur {
            msg.push_str(": ");
            msg.push_str(&e.to_string());
            cur = e.source();
        }
        msg
    }
}
