//! Locating the `cri-server` binary: `$CRI_SERVER_BIN`, or built once per test process with cargo.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};

/// The `cri-server` binary: `$CRI_SERVER_BIN`, else built once per test
/// process with `cargo build -p cri-server --bin cri-server`.
pub fn server_binary() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("CRI_SERVER_BIN") {
        return Ok(PathBuf::from(bin));
    }
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build_server().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

fn build_server() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(crate::workspace_root())
        .args([
            "build",
            "-p",
            "cri-server",
            "--bin",
            "cri-server",
            "--message-format=json-render-diagnostics",
        ])
        .stdin(Stdio::null())
        .output()
        .context("run cargo build -p cri-server")?;
    if !out.status.success() {
        bail!(
            "cargo build -p cri-server --bin cri-server failed with {}:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "cri-server")
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .context("cargo build reported no cri-server executable")
}
