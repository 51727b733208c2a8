//! Errors of CNI setup and teardown: loading, plugin lookup and execution,
//! result parsing, the result cache and the pod inputs.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::config::CniConfigError;

/// A plugin's error report, the CNI `{"code":..,"msg":..,"details":..}`
/// (libcni `types.Error`), or one made from its stderr when it printed no
/// JSON, as libcni's `pluginErr` does.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub struct PluginError {
    #[serde(default)]
    pub code: u32,
    #[serde(default)]
    pub msg: String,
    #[serde(default)]
    pub details: String,
}

impl fmt::Display for PluginError {
    /// `msg; details`, as libcni's `types.Error.Error()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)?;
        if !self.details.is_empty() {
            write!(f, "; {}", self.details)?;
        }
        Ok(())
    }
}

/// Why a CNI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// No usable network config (go-cni `ErrCNINotInitialized`).
    #[error("cni plugin not initialized")]
    NotInitialized(#[source] CniConfigError),
    #[error("no cni plugin directory configured")]
    NoPluginDirs,
    #[error("failed to find plugin {plugin:?} in path {dirs:?}")]
    PluginNotFound { plugin: String, dirs: Vec<PathBuf> },
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    /// A plugin ran and reported failure.
    #[error("plugin {plugin} failed ({command}): {error}")]
    Plugin {
        plugin: String,
        command: &'static str,
        error: PluginError,
    },
    #[error("plugin {plugin} ({command}) did not finish within {timeout:?}")]
    PluginTimeout {
        plugin: String,
        command: &'static str,
        timeout: Duration,
    },
    #[error("run plugin {plugin} ({command}) from {}", path.display())]
    PluginExec {
        plugin: String,
        command: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("plugin {plugin} returned an invalid result: {reason}")]
    InvalidResult { plugin: String, reason: String },
    #[error("network {network}: {reason}")]
    InvalidNetworkResult { network: String, reason: String },
    #[error("write cni result cache {}", path.display())]
    CacheWrite {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("remove cni result cache {}", path.display())]
    CacheRemove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("read cni result cache dir {}", path.display())]
    CacheRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading pod bandwidth annotations: {annotation}={value:?}: {reason}")]
    Bandwidth {
        annotation: String,
        value: String,
        reason: String,
    },
    /// ADD of `network` failed; the DEL run to undo it (and the networks
    /// added before it) may itself have failed, listed in `cleanup`.
    #[error("failed to setup network {network:?} for sandbox {sandbox_id}{}", cleanup_suffix(.cleanup))]
    Setup {
        sandbox_id: String,
        network: String,
        #[source]
        source: Box<CniError>,
        cleanup: Vec<CniError>,
    },
    #[error("failed to teardown network {network:?} for sandbox {sandbox_id}")]
    Teardown {
        sandbox_id: String,
        network: String,
        #[source]
        source: Box<CniError>,
    },
}

fn cleanup_suffix(cleanup: &[CniError]) -> String {
    if cleanup.is_empty() {
        return String::new();
    }
    let list: Vec<String> = cleanup.iter().map(error_chain).collect();
    format!(" (cleanup also failed: {})", list.join("; "))
}

/// An error and its sources joined with `: `.
pub(crate) fn error_chain(e: &CniError) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl CniError {
    /// Whether the message reads like "already gone", the errors go-cni's
    /// `Remove` skips: "not found" anywhere, or "no such file or
    /// directory" when no netns path was given.
    pub(crate) fn is_gone(&self, netns_empty: bool) -> bool {
        let msg = error_chain(self);
        msg.contains("not found") || (netns_empty && msg.contains("no such file or directory"))
    }
}
