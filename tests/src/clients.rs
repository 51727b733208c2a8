//! CRI clients nobody here wrote: `crictl` from cri-tools and a Python
//! `grpcio` client. A missing one is an error that says how to get it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{bail, Context, Result};

use crate::components::search_path;

/// A cri-tools program (`crictl`, `critest`): `$<env_var>`, then
/// `../shared/tools/<name>` beside the workspace, then `$PATH`.
pub fn cri_tool(name: &str, env_var: &str) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(env_var) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        bail!("${env_var} is {} but no such file", path.display());
    }
    let shared = crate::workspace_root().join("../shared/tools").join(name);
    if shared.is_file() {
        return Ok(shared);
    }
    search_path(name).with_context(|| {
        format!(
            "{name} not found: set ${env_var}, put cri-tools v1.29 or newer in ../shared/tools/, or install {name} on $PATH"
        )
    })
}

/// crictl pointed at one CRI socket.
#[derive(Debug, Clone)]
pub struct Crictl {
    binary: PathBuf,
    endpoint: String,
}

/// What one crictl command printed.
#[derive(Debug)]
pub struct CrictlOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Crictl {
    pub fn new(socket: &Path) -> Result<Crictl> {
        Ok(Crictl {
            binary: cri_tool("crictl", "CRICTL")?,
            endpoint: format!("unix://{}", socket.display()),
        })
    }

    /// Runs `crictl <args>` against the socket (no config file, 60 s per
    /// call) off the async runtime's workers.
    pub async fn run(&self, args: &[&str]) -> Result<CrictlOutput> {
        let mut cmd = Command::new(&self.binary);
        cmd.args(["--config", "/dev/null"])
            .args(["--runtime-endpoint", &self.endpoint])
            .args(["--image-endpoint", &self.endpoint])
            .args(["--timeout", "60s"])
            .args(args)
            .stdin(Stdio::null());
        let what = format!("crictl {}", args.join(" "));
        let output: Output = tokio::task::spawn_blocking(move || cmd.output())
            .await?
            .with_context(|| format!("run {what}"))?;
        Ok(CrictlOutput {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Runs a command that must succeed; its stdout, trimmed.
    pub async fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args).await?;
        if !out.success {
            bail!(
                "crictl {} failed:\n{}{}",
                args.join(" "),
                out.stdout,
                out.stderr
            );
        }
        Ok(out.stdout.trim().to_string())
    }

    /// Runs a command that must fail; its stderr.
    pub async fn fails(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args).await?;
        if out.success {
            bail!("crictl {} succeeded: {}", args.join(" "), out.stdout);
        }
        Ok(out.stderr)
    }
}

/// The Python interpreter with `grpcio`: `$CRI_TEST_PYTHON`, else the
/// virtualenv `make deps` creates at `<workspace>/.venv`.
pub fn grpcio_python() -> Result<PathBuf> {
    let python = std::env::var_os("CRI_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join(".venv/bin/python"));
    let works = Command::new(&python)
        .args(["-c", "import grpc"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !works {
        bail!(
            "{} cannot import grpc: run `make deps` (it creates .venv with grpcio from PyPI) or set $CRI_TEST_PYTHON to a python with grpcio",
            python.display()
        );
    }
    Ok(python)
}
