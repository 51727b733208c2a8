//! The CRI v1 runtime service: tonic `RuntimeService` and `ImageService`
//! implementations, configuration, the containerd client, and the daemon
//! that serves them on a unix socket. The only crate that talks to
//! containerd and the only one that starts a gRPC server.

pub mod allocator;
pub mod cli;
pub mod container;
pub mod containerd_watch;
pub mod daemon;
pub mod event_monitor;
pub mod list_cache;
pub mod metrics;
pub mod passthrough;
pub mod preflight;
pub mod recovery;
pub mod runtime_status;
pub mod sandbox;
pub mod service;
pub mod socket;
mod status;
pub mod streaming_runtime;
pub mod systemd;
pub mod telemetry;
#[cfg(test)]
mod test_channel;
