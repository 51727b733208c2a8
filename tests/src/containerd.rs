//! A private containerd (CRI plugin disabled, own root, state and sockets) started for one test, restartable, and torn down with its shims, containers and mounts on drop.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::components::{Component, CHILD_PATH};
use crate::teardown;

/// The containerd namespace the CRI side uses.
pub const K8S_NAMESPACE: &str = "k8s.io";
/// How long containerd gets to answer after it was started.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// containerd's `[debug] level` unless [`ContainerdProcess::set_log_level`]
/// changes it.
const DEFAULT_LOG_LEVEL: &str = "debug";
/// How long `stop` waits for containerd to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A containerd daemon private to one test: its own root, state, gRPC and
/// ttrpc sockets and opt dir under a fresh directory, with the CRI plugin
/// disabled, so it runs beside a system containerd without touching it.
#[derive(Debug)]
pub struct ContainerdProcess {
    dir: PathBuf,
    config: PathBuf,
    socket: PathBuf,
    root: PathBuf,
    state: PathBuf,
    log: PathBuf,
    /// The CRI plugin's config tables, when it is enabled.
    cri_plugin: Option<String>,
    /// `[debug] level`.
    log_level: String,
    child: Option<Child>,
}

impl ContainerdProcess {
    /// Writes the config, starts containerd and waits until it answers.
    pub async fn start() -> Result<Self> {
        Self::start_inner(None).await
    }

    /// Like [`start`](Self::start), but with containerd's own CRI plugin
    /// enabled and configured by `cri_plugin_toml` (whole
    /// `[plugins."io.containerd.grpc.v1.cri"...]` tables). It serves CRI on
    /// [`socket`](Self::socket); its state lives under this containerd's
    /// root and state dirs. For comparing cri-server with the reference.
    pub async fn start_with_cri(cri_plugin_toml: &str) -> Result<Self> {
        Self::start_inner(Some(cri_plugin_toml.to_string())).await
    }

    async fn start_inner(cri_plugin: Option<String>) -> Result<Self> {
        crate::components::require_all()?;
        let dir = teardown::new_component_dir("ctrd")?;
        let mut process = ContainerdProcess {
            cri_plugin,
            log_level: DEFAULT_LOG_LEVEL.into(),
            config: dir.join("config.toml"),
            socket: dir.join("containerd.sock"),
            root: dir.join("root"),
            state: dir.join("state"),
            log: dir.join("containerd.log"),
            dir,
            child: None,
        };
        // From here on, Drop cleans up whatever a failure leaves.
        std::fs::write(&process.config, process.config_toml())
            .with_context(|| format!("write {}", process.config.display()))?;
        process.start_again().await?;
        Ok(process)
    }

    /// Enables containerd's own CRI plugin, configured by `cri_plugin_toml`
    /// as in [`start_with_cri`](Self::start_with_cri), or disables it
    /// (`None`). Takes effect at the next [`start_again`](Self::start_again):
    /// a node switching between the CRI plugin and cri-server.
    pub fn set_cri_plugin(&mut self, cri_plugin_toml: Option<&str>) -> Result<()> {
        self.cri_plugin = cri_plugin_toml.map(str::to_string);
        std::fs::write(&self.config, self.config_toml())
            .with_context(|| format!("write {}", self.config.display()))
    }

    /// Sets containerd's `[debug] level` (`debug` unless changed), e.g.
    /// `info` for a benchmark. Takes effect at the next
    /// [`start_again`](Self::start_again).
    pub fn set_log_level(&mut self, level: &str) -> Result<()> {
        self.log_level = level.to_string();
        std::fs::write(&self.config, self.config_toml())
            .with_context(|| format!("write {}", self.config.display()))
    }

    /// containerd's config file.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    fn config_toml(&self) -> String {
        let q = |p: &Path| toml_string(&p.to_string_lossy());
        let (cri_disabled, cri_tables) = match &self.cri_plugin {
            None => ("\n  \"io.containerd.grpc.v1.cri\",", String::new()),
            Some(tables) => ("", format!("\n{tables}\n")),
        };
        format!(
            r#"version = 2
root = {root}
state = {state}
oom_score = 0
# The CRI plugin is what cri-server replaces (unless this containerd is the
# reference); the other snapshotters only add noise to the log on this host.
disabled_plugins = [{cri_disabled}
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = {grpc}

[ttrpc]
  address = {ttrpc}

[debug]
  address = ""
  level = {level}

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = {opt}
{cri_tables}"#,
            root = q(&self.root),
            state = q(&self.state),
            grpc = q(&self.socket),
            ttrpc = q(&self.dir.join("containerd.sock.ttrpc")),
            opt = q(&self.dir.join("opt")),
            level = toml_string(&self.log_level),
        )
    }

    /// containerd's gRPC socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// containerd's persistent root (`root` in its config).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// containerd's state dir (`state` in its config).
    pub fn state(&self) -> &Path {
        &self.state
    }

    /// The private directory everything of this containerd lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A runc root private to this containerd, for `ctr run --runc-root` or
    /// a runtime's `Root` option, so container ids never collide with
    /// another containerd's in `/run/containerd/runc`.
    pub fn runc_root(&self) -> PathBuf {
        self.dir.join("runc")
    }

    /// Flags for `ctr run` that keep a container's runc state and FIFOs
    /// inside this containerd's directory: `--snapshotter overlayfs
    /// --runc-root <dir>/runc --fifo-dir <dir>/fifo`.
    pub fn ctr_run_flags(&self) -> Vec<String> {
        vec![
            "--snapshotter".into(),
            "overlayfs".into(),
            "--runc-root".into(),
            self.runc_root().to_string_lossy().into_owned(),
            "--fifo-dir".into(),
            self.dir.join("fifo").to_string_lossy().into_owned(),
        ]
    }

    /// The pid of the running containerd, if it is running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything containerd logged so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_else(|e| format!("<cannot read {}: {e}>", self.log.display()))
    }

    /// Sends SIGTERM and waits for containerd to exit. Its shims, containers
    /// and directories stay, so [`start_again`](Self::start_again) resumes.
    pub async fn stop(&mut self) -> Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("containerd is not running");
        };
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).context("SIGTERM containerd")?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().context("wait for containerd")? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "containerd did not exit within {STOP_TIMEOUT:?} of SIGTERM; log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills containerd with SIGKILL (as `kill -9` does) and reaps it; its
    /// shims and containers keep running.
    pub fn kill_now(&mut self) -> Result<ExitStatus> {
        let mut child = self.child.take().context("containerd is not running")?;
        child.kill().context("SIGKILL containerd")?;
        child.wait().context("wait for containerd")
    }

    /// Starts containerd (again) with the same config and directories and
    /// waits until it answers.
    pub async fn start_again(&mut self) -> Result<()> {
        self.spawn()?;
        self.wait_ready().await
    }

    /// Starts containerd (again) without waiting for it to answer; for a
    /// caller that times start-up itself, then calls
    /// [`wait_ready`](Self::wait_ready).
    pub fn spawn(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("containerd is already running");
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("open {}", self.log.display()))?;
        let child = Command::new(Component::Containerd.path()?)
            .arg("--config")
            .arg(&self.config)
            .env("PATH", CHILD_PATH)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawn containerd")?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the running containerd answers `ctr version`.
    pub async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last_error = String::new();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    bail!(
                        "containerd exited during startup with {status}; log:\n{}",
                        self.log()
                    );
                }
            }
            // ctr keeps dialing a dead socket for 10s, so probe it first.
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                let probe = self.ctr_global(&["version"]);
                match tokio::time::timeout(Duration::from_secs(5), probe).await {
                    Ok(out) => {
                        let out = out?;
                        if out.status.success() {
                            return Ok(());
                        }
                        last_error = String::from_utf8_lossy(&out.stderr).into_owned();
                    }
                    Err(_) => last_error = "`ctr version` hung for 5s".to_string(),
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "containerd did not answer on {} within {READY_TIMEOUT:?} (last `ctr version` error: {last_error}); log:\n{}",
                    self.socket.display(),
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Runs `ctr --address <socket> -n k8s.io <args>` and returns its output
    /// (a non-zero exit is not an error here; check `status`).
    pub async fn ctr<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Result<Output> {
        let mut all: Vec<&std::ffi::OsStr> = vec!["-n".as_ref(), K8S_NAMESPACE.as_ref()];
        all.extend(args.iter().map(AsRef::as_ref));
        self.ctr_global(&all).await
    }

    /// Like [`ctr`](Self::ctr), but fails with stdout, stderr and the
    /// containerd log unless ctr exits 0; returns stdout.
    pub async fn ctr_ok<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Result<String> {
        let out = self.ctr(args).await?;
        if !out.status.success() {
            let shown: Vec<String> = args
                .iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned())
                .collect();
            bail!(
                "`ctr -n {K8S_NAMESPACE} {}` failed with {}\nstdout: {}\nstderr: {}\ncontainerd log:\n{}",
                shown.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    async fn ctr_global<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Result<Output> {
        tokio::process::Command::new(Component::Ctr.path()?)
            .arg("--address")
            .arg(&self.socket)
            .args(args)
            .env("PATH", CHILD_PATH)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .context("run ctr")
    }
}

impl Drop for ContainerdProcess {
    fn drop(&mut self) {
        // Kill containerd first so it does not react to its shims dying.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Err(e) = teardown::teardown_dir(&self.dir) {
            eprintln!("containerd teardown: {e:#}");
        }
    }
}

/// A TOML basic string (quoted and escaped).
pub fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(cri_plugin: Option<String>) -> ContainerdProcess {
        let dir = PathBuf::from("/c");
        ContainerdProcess {
            config: dir.join("config.toml"),
            socket: dir.join("containerd.sock"),
            root: dir.join("root"),
            state: dir.join("state"),
            log: dir.join("containerd.log"),
            dir,
            cri_plugin,
            log_level: DEFAULT_LOG_LEVEL.into(),
            child: None,
        }
    }

    fn disabled_plugins(doc: &toml::Table) -> Vec<&str> {
        doc["disabled_plugins"]
            .as_array()
            .map(|a| a.iter().filter_map(|p| p.as_str()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn cri_plugin_is_disabled_unless_configured() -> Result<()> {
        let plain: toml::Table = toml::from_str(&process(None).config_toml())?;
        assert!(disabled_plugins(&plain).contains(&"io.containerd.grpc.v1.cri"));
        assert_eq!(
            plain["grpc"]["address"].as_str(),
            Some("/c/containerd.sock")
        );

        let tables = "[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"p:1\"";
        let with_cri: toml::Table = toml::from_str(&process(Some(tables.into())).config_toml())?;
        assert!(!disabled_plugins(&with_cri).contains(&"io.containerd.grpc.v1.cri"));
        assert!(disabled_plugins(&with_cri).contains(&"io.containerd.snapshotter.v1.zfs"));
        let plugins = &with_cri["plugins"];
        assert_eq!(
            plugins["io.containerd.grpc.v1.cri"]["sandbox_image"].as_str(),
            Some("p:1")
        );
        assert_eq!(
            plugins["io.containerd.internal.v1.opt"]["path"].as_str(),
            Some("/c/opt")
        );
        Ok(())
    }
}
