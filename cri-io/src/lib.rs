//! Container IO: stdio FIFOs, CRI-format log files
//! (`<RFC3339Nano> <stream> <P|F> <msg>`), attach fan-out and exec IO.
//!
//! - [`fifo`]: FIFO sets in containerd's layout; opened without blocking.
//! - [`log`]: the CRI log framing and the shared, reopenable log file.
//! - [`container_io`]: a container's output pumps, attach and drain.
//! - [`exec_io`]: an exec's streams, or its capped ExecSync output.
//! - [`log_path`](mod@log_path): joining and validating a container's log path.
//!
//! Everything that opens a FIFO or spawns a copy loop must run inside a
//! tokio runtime.

pub mod attach;
pub mod container_io;
pub mod error;
pub mod exec_io;
mod fanout;
pub mod fifo;
pub mod log;
pub mod log_path;
pub mod timestamp;

pub use attach::{AttachSession, AttachStreams, BoxReader, BoxWriter, CloseStdin};
pub use container_io::ContainerIo;
pub use error::{Error, Result};
pub use exec_io::{CappedBuffer, CappedOutput, ExecCollector, ExecIo, ExecOutput};
pub use fanout::ATTACH_BUFFER_CHUNKS;
pub use fifo::{FifoPaths, FifoSet, StdioOptions, StdioPipes};
pub use log::{
    CriLog, CriLogWriter, LineEncoder, LineLimit, StreamType, DEFAULT_MAX_CONTAINER_LOG_LINE_SIZE,
};
pub use log_path::log_path;
pub use timestamp::{Clock, SystemClock};
