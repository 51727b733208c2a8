//! The one error type of `cri-io`: every variant names the failed operation
//! and carries the path or id it failed on.

use std::io;
use std::path::PathBuf;

/// `cri-io`'s result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can fail in FIFO, log and attach handling.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Making the `io/` dir or the per-set random dir failed.
    #[error("create fifo dir {path}")]
    CreateFifoDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// `mkfifo` failed.
    #[error("create fifo {path}")]
    CreateFifo {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    /// A path from a task record exists but is not a FIFO.
    #[error("{path} is not a fifo")]
    NotAFifo { path: PathBuf },
    /// Opening one end of a FIFO failed.
    #[error("open fifo {path}")]
    OpenFifo {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Removing a FIFO or its dir failed.
    #[error("remove fifos in {path}")]
    RemoveFifos {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Creating the parent dirs of a container log failed.
    #[error("create log dir {path}")]
    CreateLogDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Opening (or reopening) a container log failed.
    #[error("open log file {path}")]
    OpenLog {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Writing to a container log failed.
    #[error("write log file {path}")]
    WriteLog {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// `log_directory` + `log_path` would leave the log directory; the
    /// server answers InvalidArgument.
    #[error("invalid log path {log_path:?} in {log_directory:?}: {reason}")]
    InvalidLogPath {
        log_directory: PathBuf,
        log_path: PathBuf,
        reason: &'static str,
    },
    /// `ContainerIo::pipe` was called twice for the same container.
    #[error("output of container {id} is already piped")]
    AlreadyPiped { id: String },
    /// The stdio pipes of an exec were already handed to an attach.
    #[error("io of exec {id} is already attached")]
    AlreadyAttached { id: String },
}
