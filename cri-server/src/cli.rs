//! The command line: every flag overrides the matching config key.

use std::path::PathBuf;

use clap::Parser;

use crate::config::{LogFormat, Overrides};

/// A Kubernetes CRI v1 runtime service backed by containerd.
#[derive(Debug, Parser)]
#[command(name = "cri-server", version, about)]
pub struct Cli {
    /// A containerd config.toml; its CRI plugin section and the
    /// `[cri_server]` table are read.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The unix socket to serve CRI on.
    #[arg(long, value_name = "SOCKET")]
    pub listen: Option<PathBuf>,
    /// containerd's gRPC socket.
    #[arg(long, value_name = "SOCKET")]
    pub containerd_address: Option<PathBuf>,
    /// The containerd namespace for pods, containers and images.
    #[arg(long, value_name = "NAME")]
    pub containerd_namespace: Option<String>,
    /// Persistent state (status files, sandbox files).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Volatile state (FIFOs, shm mounts).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Log filter, e.g. `info` or `cri_server=debug`.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Log line format.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Answer only CRI on the socket: other gRPC services (containerd's
    /// own API) get Unimplemented instead of being forwarded to containerd.
    #[arg(long)]
    pub no_containerd_passthrough: bool,
}

impl Cli {
    /// The flags as config overrides.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen.clone(),
            containerd_address: self.containerd_address.clone(),
            containerd_namespace: self.containerd_namespace.clone(),
            root_dir: self.root.clone(),
            state_dir: self.state.clone(),
            log_level: self.log_level.clone(),
            log_format: self.log_format,
            containerd_passthrough: self.no_containerd_passthrough.then_some(false),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn flags_become_overrides() {
        let cli = Cli::try_parse_from([
            "cri-server",
            "--listen",
            "/tmp/x.sock",
            "--containerd-namespace",
            "ns",
            "--root",
            "/r",
            "--state",
            "/s",
            "--log-format",
            "json",
        ])
        .unwrap();
        let o = cli.overrides();
        assert_eq!(o.listen, Some(PathBuf::from("/tmp/x.sock")));
        assert_eq!(o.containerd_namespace.as_deref(), Some("ns"));
        assert_eq!(o.root_dir, Some(PathBuf::from("/r")));
        assert_eq!(o.state_dir, Some(PathBuf::from("/s")));
        assert!(matches!(o.log_format, Some(LogFormat::Json)));
        assert!(o.containerd_address.is_none());
    }

    #[test]
    fn bad_log_format_is_rejected() {
        assert!(Cli::try_parse_from(["cri-server", "--log-format", "xml"]).is_err());
    }
}
