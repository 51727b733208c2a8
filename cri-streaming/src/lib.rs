//! The CRI streaming server: `Exec`/`Attach`/`PortForward` return a URL
//! (`http[s]://<addr>:<port>/{exec,attach,portforward}/<token>`) backed by a
//! single-use token; the client connects to it and upgrades to SPDY/3.1 or
//! WebSocket. Containers are reached through the [`StreamRuntime`] seam.
#![doc = include_str!("../README.md")]

pub mod error;
pub mod idle;
pub mod portforward;
pub mod pump;
pub mod remotecommand;
pub mod runtime;
mod server;
pub mod spdy;
pub mod status;
pub mod tls;
pub mod token;
mod upgrade;
pub mod websocket;

#[cfg(any(test, feature = "test-client"))]
pub mod client;
#[cfg(any(test, feature = "test-client"))]
mod client_tls;
#[cfg(test)]
mod tests;

pub use error::{SpdyError, StreamRuntimeError, StreamingError, StreamingErrorKind, TlsFileKind};
pub use runtime::{ExitCode, PortStream, ResizeReceiver, StreamIo, StreamRuntime, TerminalSize};
pub use server::{StreamingConfig, StreamingServer};
pub use tls::{StreamingTls, TlsSource};
pub use token::{CachedRequest, Clock, SystemClock, TokenCache};
