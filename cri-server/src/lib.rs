//! The CRI v1 runtime service: tonic `RuntimeService` and `ImageService`
//! implementations, configuration, the containerd client, and the daemon
//! that serves them on a unix socket. The only crate that talks to
//! containerd and the only one that starts a gRPC server.

pub mod config;
pub mod containerd;
