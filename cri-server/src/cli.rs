//! The command line: the daemon (no subcommand), `config default`,
//! `config dump` and `check`; every flag overrides the matching config key.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use cri_config::{LogFormat, Overrides};

/// The config file read when `--config` is not given and it exists: the
/// node's containerd config, so cri-server drops in beside containerd.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/containerd/config.toml";

/// A Kubernetes CRI v1 runtime service backed by containerd.
#[derive(Debug, Parser)]
#[command(name = "cri-server", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// A containerd config.toml; its CRI plugin section and the
    /// `[cri_server]` table are read. Default: /etc/containerd/config.toml
    /// when it exists, else the built-in defaults.
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// The unix socket to serve CRI on.
    #[arg(long, value_name = "SOCKET", global = true)]
    pub listen: Option<PathBuf>,
    /// containerd's gRPC socket.
    #[arg(long, value_name = "SOCKET", global = true)]
    pub containerd_address: Option<PathBuf>,
    /// The containerd namespace for pods, containers and images.
    #[arg(long, value_name = "NAME", global = true)]
    pub containerd_namespace: Option<String>,
    /// Persistent state (status files, sandbox files).
    #[arg(long, value_name = "DIR", global = true)]
    pub root: Option<PathBuf>,
    /// Volatile state (FIFOs, shm mounts).
    #[arg(long, value_name = "DIR", global = true)]
    pub state: Option<PathBuf>,
    /// Log filter, e.g. `info` or `cri_server=debug`.
    #[arg(long, value_name = "LEVEL", global = true)]
    pub log_level: Option<String>,
    /// Log line format.
    #[arg(long, value_enum, value_name = "FORMAT", global = true)]
    pub log_format: Option<LogFormat>,
    /// Answer only CRI on the socket: other gRPC services (containerd's
    /// own API) get Unimplemented instead of being forwarded to containerd.
    #[arg(long, global = true)]
    pub no_containerd_passthrough: bool,
    /// Start even while containerd's own CRI plugin serves the same
    /// namespace. Two CRI servers then manage, stop and garbage-collect
    /// the same containers: for experts only.
    #[arg(long, global = true)]
    pub allow_containerd_cri: bool,
}

/// What to do instead of running the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Print or inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run the preflight checks the daemon runs at start, print each as
    /// ok or failed (with the fix), and exit non-zero on a failure.
    Check,
}

/// `cri-server config ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum ConfigCommand {
    /// Print a complete, commented containerd config.toml with the CRI
    /// plugin section and the `[cri_server]` table, every key at its default.
    Default,
    /// Print the effective config after the file and the flags, secrets
    /// redacted.
    Dump,
}

/// Which config file is read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// Given with `--config`.
    Flag(PathBuf),
    /// No `--config`; the node's containerd config exists.
    NodeDefault(PathBuf),
    /// No `--config` and no file at the default path.
    BuiltIn,
}

impl ConfigSource {
    /// `--config` if given, else `default` when it exists, else none.
    pub fn resolve(flag: Option<&Path>, default: &Path) -> Self {
        match flag {
            Some(path) => Self::Flag(path.to_path_buf()),
            None if default.exists() => Self::NodeDefault(default.to_path_buf()),
            None => Self::BuiltIn,
        }
    }

    /// The file to read, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Flag(path) | Self::NodeDefault(path) => Some(path),
            Self::BuiltIn => None,
        }
    }

    /// For the start-up log line.
    pub fn describe(&self) -> String {
        match self {
            Self::Flag(path) => format!("{} (--config)", path.display()),
            Self::NodeDefault(path) => format!("{} (default)", path.display()),
            Self::BuiltIn => {
                format!("none ({DEFAULT_CONFIG_PATH} does not exist): built-in defaults")
            }
        }
    }
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
            allow_containerd_cri: self.allow_containerd_cri.then_some(true),
        }
    }

    /// Which config file to read.
    pub fn config_source(&self) -> ConfigSource {
        ConfigSource::resolve(self.config.as_deref(), Path::new(DEFAULT_CONFIG_PATH))
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
    fn subcommands_parse_with_global_flags_on_either_side() {
        let cli = Cli::try_parse_from(["cri-server", "config", "default"]).unwrap();
        assert_eq!(cli.command, Some(Command::Config(ConfigCommand::Default)));
        let cli =
            Cli::try_parse_from(["cri-server", "--config", "/c.toml", "config", "dump"]).unwrap();
        assert_eq!(cli.command, Some(Command::Config(ConfigCommand::Dump)));
        assert_eq!(cli.config, Some(PathBuf::from("/c.toml")));
        let cli = Cli::try_parse_from([
            "cri-server",
            "check",
            "--root",
            "/r",
            "--allow-containerd-cri",
        ])
        .unwrap();
        assert_eq!(cli.command, Some(Command::Check));
        assert_eq!(cli.overrides().root_dir, Some(PathBuf::from("/r")));
        assert_eq!(cli.overrides().allow_containerd_cri, Some(true));
        let cli = Cli::try_parse_from(["cri-server"]).unwrap();
        assert_eq!(cli.command, None);
        assert_eq!(cli.overrides().allow_containerd_cri, None);
    }

    #[test]
    fn config_source_prefers_the_flag_then_an_existing_default() {
        let dir = tempfile::tempdir().unwrap();
        let default = dir.path().join("config.toml");
        let flag = Path::new("/given.toml");
        assert_eq!(
            ConfigSource::resolve(Some(flag), &default),
            ConfigSource::Flag(flag.to_path_buf())
        );
        assert_eq!(ConfigSource::resolve(None, &default), ConfigSource::BuiltIn);
        assert_eq!(ConfigSource::BuiltIn.path(), None);
        std::fs::write(&default, "version = 2\n").unwrap();
        let source = ConfigSource::resolve(None, &default);
        assert_eq!(source, ConfigSource::NodeDefault(default.clone()));
        assert_eq!(source.path(), Some(default.as_path()));
        assert!(source.describe().contains("(default)"));
    }

    #[test]
    fn bad_log_format_is_rejected() {
        assert!(Cli::try_parse_from(["cri-server", "--log-format", "xml"]).is_err());
    }
}
