//! Our own settings (the `[cri_server]` table and CLI overrides) and how
//! they fall back to containerd's top-level `root`, `state` and
//! `[grpc] address`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use super::error::ConfigError;

/// The CRI plugin id, which names the plugin's directories under
/// containerd's root and state.
pub const CRI_PLUGIN_ID: &str = "io.containerd.grpc.v1.cri";
/// Where we serve CRI by default.
pub const DEFAULT_LISTEN: &str = "/run/cri-server/cri-server.sock";
/// containerd's default gRPC socket.
pub const DEFAULT_CONTAINERD_ADDRESS: &str = "/run/containerd/containerd.sock";
/// The containerd namespace the CRI plugin uses.
pub const DEFAULT_CONTAINERD_NAMESPACE: &str = "k8s.io";
/// containerd's default volatile state directory.
pub const DEFAULT_CONTAINERD_STATE: &str = "/run/containerd";
/// The default tracing filter.
pub const DEFAULT_LOG_LEVEL: &str = "info";

/// How we run: sockets, directories and logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The unix socket CRI is served on.
    pub listen: PathBuf,
    /// containerd's gRPC socket.
    pub containerd_address: PathBuf,
    /// The containerd namespace for pods, containers and images.
    pub containerd_namespace: String,
    /// Persistent state (containerd's `<root>/io.containerd.grpc.v1.cri`).
    pub root_dir: PathBuf,
    /// Volatile state (containerd's `<state>/io.containerd.grpc.v1.cri`).
    pub state_dir: PathBuf,
    /// A tracing `EnvFilter` directive.
    pub log_level: String,
    pub log_format: LogFormat,
    /// `host:port` of the Prometheus metrics endpoint; `None` (the key
    /// empty or absent) serves no metrics.
    pub metrics_address: Option<String>,
    /// Forward every non-CRI gRPC call on the CRI socket to containerd, so
    /// the socket serves containerd's own API too.
    pub containerd_passthrough: bool,
    /// `socket_group`: the group the CRI socket is given (mode stays
    /// 0660); `None` leaves it root's.
    pub socket_group: Option<String>,
    /// `allow_containerd_cri`: start even while containerd's own CRI plugin
    /// serves the same namespace (for experts; two CRI servers then manage
    /// the same containers).
    pub allow_containerd_cri: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: PathBuf::from(DEFAULT_LISTEN),
            containerd_address: PathBuf::from(DEFAULT_CONTAINERD_ADDRESS),
            containerd_namespace: DEFAULT_CONTAINERD_NAMESPACE.to_owned(),
            root_dir: Path::new(super::cri::DEFAULT_CONTAINERD_ROOT).join(CRI_PLUGIN_ID),
            state_dir: Path::new(DEFAULT_CONTAINERD_STATE).join(CRI_PLUGIN_ID),
            log_level: DEFAULT_LOG_LEVEL.to_owned(),
            log_format: LogFormat::Text,
            metrics_address: None,
            containerd_passthrough: true,
            socket_group: None,
            allow_containerd_cri: false,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `--log-format` value that is neither `text` nor `json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log format {0:?}, want \"text\" or \"json\"")]
pub struct UnknownLogFormat(pub String);

impl FromStr for LogFormat {
    type Err = UnknownLogFormat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(UnknownLogFormat(other.to_owned())),
        }
    }
}

/// Values from the command line; each wins over the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub listen: Option<PathBuf>,
    pub containerd_address: Option<PathBuf>,
    pub containerd_namespace: Option<String>,
    pub root_dir: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub log_level: Option<String>,
    pub log_format: Option<LogFormat>,
    /// `--no-containerd-passthrough` gives `Some(false)`.
    pub containerd_passthrough: Option<bool>,
    /// `--allow-containerd-cri` gives `Some(true)`.
    pub allow_containerd_cri: Option<bool>,
}

/// The `[cri_server]` table as written.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RawServerSection {
    listen: Option<PathBuf>,
    containerd_address: Option<PathBuf>,
    containerd_namespace: Option<String>,
    root_dir: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    log_level: Option<String>,
    log_format: Option<LogFormat>,
    metrics_address: Option<String>,
    containerd_passthrough: Option<bool>,
    socket_group: Option<String>,
    allow_containerd_cri: Option<bool>,
}

/// containerd's own top-level settings that give our defaults.
#[derive(Debug, Default)]
pub(super) struct ContainerdTopLevel {
    pub root: Option<PathBuf>,
    pub state: Option<PathBuf>,
    pub grpc_address: Option<PathBuf>,
}

/// Resolves each setting: CLI flag, then `[cri_server]`, then containerd's
/// top-level value, then the default.
pub(super) fn resolve(
    section: RawServerSection,
    containerd: &ContainerdTopLevel,
    overrides: Overrides,
    origin: &str,
) -> Result<ServerConfig, ConfigError> {
    let empty = |key: &str| ConfigError::Invalid {
        origin: origin.to_owned(),
        key: format!("cri_server.{key}"),
        line: None,
        message: "must not be empty".to_owned(),
    };
    let check_path = |key: &str, value: Option<PathBuf>| match value {
        Some(p) if p.as_os_str().is_empty() => Err(empty(key)),
        other => Ok(other),
    };
    let check_str = |key: &str, value: Option<String>| match value {
        Some(s) if s.is_empty() => Err(empty(key)),
        other => Ok(other),
    };
    let listen = check_path("listen", section.listen)?;
    let containerd_address = check_path("containerd_address", section.containerd_address)?;
    let containerd_namespace = check_str("containerd_namespace", section.containerd_namespace)?;
    let root_dir = check_path("root_dir", section.root_dir)?;
    let state_dir = check_path("state_dir", section.state_dir)?;
    let log_level = check_str("log_level", section.log_level)?;
    let metrics_address = check_metrics_address(section.metrics_address, origin)?;

    let defaults = ServerConfig::default();
    let plugin_dir = |dir: &Option<PathBuf>| dir.as_ref().map(|d| d.join(CRI_PLUGIN_ID));
    Ok(ServerConfig {
        listen: overrides.listen.or(listen).unwrap_or(defaults.listen),
        containerd_address: strip_unix_scheme(
            overrides
                .containerd_address
                .or(containerd_address)
                .or_else(|| {
                    containerd
                        .grpc_address
                        .clone()
                        .filter(|a| !a.as_os_str().is_empty())
                })
                .unwrap_or(defaults.containerd_address),
        ),
        containerd_namespace: overrides
            .containerd_namespace
            .or(containerd_namespace)
            .unwrap_or(defaults.containerd_namespace),
        root_dir: overrides
            .root_dir
            .or(root_dir)
            .or_else(|| plugin_dir(&containerd.root))
            .unwrap_or(defaults.root_dir),
        state_dir: overrides
            .state_dir
            .or(state_dir)
            .or_else(|| plugin_dir(&containerd.state))
            .unwrap_or(defaults.state_dir),
        log_level: overrides
            .log_level
            .or(log_level)
            .unwrap_or(defaults.log_level),
        log_format: overrides
            .log_format
            .or(section.log_format)
            .unwrap_or(defaults.log_format),
        metrics_address,
        containerd_passthrough: overrides
            .containerd_passthrough
            .or(section.containerd_passthrough)
            .unwrap_or(defaults.containerd_passthrough),
        socket_group: section.socket_group.filter(|g| !g.is_empty()),
        allow_containerd_cri: overrides
            .allow_containerd_cri
            .or(section.allow_containerd_cri)
            .unwrap_or(defaults.allow_containerd_cri),
    })
}

/// `metrics_address`: empty means off; otherwise `host:port`.
fn check_metrics_address(
    value: Option<String>,
    origin: &str,
) -> Result<Option<String>, ConfigError> {
    let Some(address) = value.filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    let valid = address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !valid {
        return Err(ConfigError::Invalid {
            origin: origin.to_owned(),
            key: "cri_server.metrics_address".to_owned(),
            line: None,
            message: format!("{address:?} is not host:port"),
        });
    }
    Ok(Some(address))
}

/// `unix:///run/x.sock` names the same socket as `/run/x.sock`.
fn strip_unix_scheme(address: PathBuf) -> PathBuf {
    match address.to_str().and_then(|a| a.strip_prefix("unix://")) {
        Some(path) => PathBuf::from(path),
        None => address,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<LogFormat, UnknownLogFormat>) {
        assert_eq!(input.parse::<LogFormat>(), expected);
    }

    #[test]
    fn log_format_parses() {
        check("text", Ok(LogFormat::Text));
        check("json", Ok(LogFormat::Json));
        check("xml", Err(UnknownLogFormat("xml".into())));
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn metrics_address_is_off_when_empty_and_checked_otherwise() {
        let check = |v: Option<&str>| check_metrics_address(v.map(str::to_owned), "t");
        assert_eq!(check(None).unwrap(), None);
        assert_eq!(check(Some("")).unwrap(), None);
        assert_eq!(
            check(Some("127.0.0.1:1338")).unwrap().as_deref(),
            Some("127.0.0.1:1338")
        );
        assert_eq!(
            check(Some("[::1]:9090")).unwrap().as_deref(),
            Some("[::1]:9090")
        );
        assert_eq!(
            check(Some("localhost:1")).unwrap().as_deref(),
            Some("localhost:1")
        );
        for bad in ["1338", ":1338", "host:", "host:99999"] {
            let err = check(Some(bad)).unwrap_err().to_string();
            assert!(err.contains("cri_server.metrics_address"), "{bad}: {err}");
        }
    }

    #[test]
    fn unix_scheme_is_dropped() {
        assert_eq!(
            strip_unix_scheme(PathBuf::from("unix:///run/containerd/containerd.sock")),
            PathBuf::from("/run/containerd/containerd.sock")
        );
        assert_eq!(
            strip_unix_scheme(PathBuf::from("/run/c.sock")),
            PathBuf::from("/run/c.sock")
        );
    }
}
