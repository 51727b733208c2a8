//! Running the real `cri-server` daemon for a test: locating or building the binary, writing its config (private socket, dirs, CNI network, registry mirror), waiting until it answers CRI `Version`, CRI clients over its unix socket, signals, restarts, and teardown on drop.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use cri_api::v1::image_service_client::ImageServiceClient;
use cri_api::v1::runtime_service_client::RuntimeServiceClient;
use cri_api::v1::VersionRequest;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tonic::transport::Channel;

use crate::containerd::ContainerdProcess;
use crate::network::TestNetwork;
use crate::teardown;

mod binary;
mod config;
mod socket;

pub use binary::server_binary;
use config::render_config;
pub use socket::connect;
use socket::listens_on;

/// How long the daemon gets to answer `Version` after it was started.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one readiness `Version` call may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The CNI setup a server gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CniSetup {
    /// A bridge + host-local + portmap + loopback conflist on a private
    /// bridge and /24 (see [`CriServer::network`]).
    #[default]
    Bridge,
    /// An empty conf dir: the server should report NetworkReady=false.
    NoConfig,
}

/// What a test can change about a server. `Harness::server` fills in the
/// registry and the sandbox image.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// The daemon to run instead of the `cri-server` binary.
    pub binary: Option<PathBuf>,
    /// `host:port` of a plain-HTTP registry, written as a mirror endpoint.
    pub registry: Option<String>,
    /// `sandbox_image`; when `None` the key is left out.
    pub sandbox_image: Option<String>,
    /// Extra `key = value` lines for the `[cri_server]` table.
    pub cri_server_toml: String,
    /// Extra `key = value` lines for `[plugins."io.containerd.grpc.v1.cri"]`.
    pub cri_plugin_toml: String,
    /// Appended to the end of the config (whole tables).
    pub extra_toml: String,
    pub cni: CniSetup,
    /// A CNI conf dir of the test's own instead of `<dir>/net.d` (e.g. the
    /// one containerd's CRI plugin used, when switching a node); nothing is
    /// written into it. Use with [`CniSetup::NoConfig`].
    pub cni_conf_dir: Option<PathBuf>,
    /// The socket to listen on instead of `<dir>/cri.sock` (e.g. another
    /// server's, to check that a second server refuses to start).
    pub listen: Option<PathBuf>,
    /// Arguments after `--config <file>`.
    pub extra_args: Vec<String>,
    /// Extra environment variables for the daemon.
    pub env: Vec<(String, String)>,
}

/// The outcome of [`CriServer::try_start`].
#[derive(Debug)]
pub enum StartOutcome {
    /// The server answers `Version` on its socket.
    Running(Box<CriServer>),
    /// The process exited before it answered.
    Exited { status: ExitStatus, log: String },
}

/// A running `cri-server` with its own config, socket, root and state dirs
/// under a private directory; killed and cleaned up on drop.
#[derive(Debug)]
pub struct CriServer {
    dir: PathBuf,
    config: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    binary: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    network: Option<TestNetwork>,
    net_d: PathBuf,
}

impl CriServer {
    /// Starts a server against `containerd` and waits until it answers;
    /// fails with its log if it exits or does not answer in time.
    pub async fn start(containerd: &ContainerdProcess, opts: ServerOptions) -> Result<CriServer> {
        match Self::try_start(containerd, opts).await? {
            StartOutcome::Running(server) => Ok(*server),
            StartOutcome::Exited { status, log } => {
                bail!("cri-server exited during startup with {status}; log:\n{log}")
            }
        }
    }

    /// Like [`start`](Self::start), but an early exit is an outcome, not an
    /// error.
    pub async fn try_start(
        containerd: &ContainerdProcess,
        opts: ServerOptions,
    ) -> Result<StartOutcome> {
        let binary = match &opts.binary {
            Some(binary) => binary.clone(),
            None => tokio::task::spawn_blocking(server_binary).await??,
        };
        let dir = teardown::new_component_dir("srv")?;
        let network = match opts.cni {
            CniSetup::Bridge => Some(TestNetwork::lease()?),
            CniSetup::NoConfig => None,
        };
        let mut server = CriServer {
            net_d: opts
                .cni_conf_dir
                .clone()
                .unwrap_or_else(|| dir.join("net.d")),
            config: dir.join("config.toml"),
            socket: opts.listen.clone().unwrap_or_else(|| dir.join("cri.sock")),
            log: dir.join("cri-server.log"),
            dir,
            binary,
            args: opts.extra_args.clone(),
            env: opts.env.clone(),
            child: None,
            network,
        };
        server.write_config(containerd, &opts)?;
        match server.spawn_and_wait(true).await? {
            None => Ok(StartOutcome::Running(Box::new(server))),
            Some(status) => Ok(StartOutcome::Exited {
                status,
                log: server.log(),
            }),
        }
    }

    fn write_config(&self, containerd: &ContainerdProcess, opts: &ServerOptions) -> Result<()> {
        let net_d = &self.net_d;
        std::fs::create_dir_all(net_d)?;
        if let Some(network) = &self.network {
            std::fs::write(
                net_d.join("10-cri-tests.conflist"),
                network.conflist(&self.dir.join("cni-ipam")),
            )?;
            std::fs::write(self.dir.join(teardown::BRIDGES_FILE), &network.bridge)?;
        }
        std::fs::write(
            &self.config,
            render_config(&self.socket, &self.dir, containerd.socket(), opts),
        )
        .with_context(|| format!("write {}", self.config.display()))
    }

    /// Spawns the daemon and waits until it answers (`None`) or exits
    /// (`Some(status)`). With `wait_recovered`, "answers" means it has
    /// also finished recovering its state from containerd (until then
    /// everything but `Version` is `Unavailable`).
    async fn spawn_and_wait(&mut self, wait_recovered: bool) -> Result<Option<ExitStatus>> {
        self.spawn()?;
        self.wait_started(wait_recovered).await
    }

    /// Starts the daemon process without waiting for it to answer.
    fn spawn(&mut self) -> Result<()> {
        let log = File::options().create(true).append(true).open(&self.log)?;
        let child = Command::new(&self.binary)
            .arg("--config")
            .arg(&self.config)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("PATH", crate::components::CHILD_PATH)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn {}", self.binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the spawned daemon answers (`None`) or exits
    /// (`Some(status)`); see [`spawn_and_wait`](Self::spawn_and_wait).
    async fn wait_started(&mut self, wait_recovered: bool) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last_error = String::from("socket not created yet");
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    return Ok(Some(status));
                }
            }
            if self.owns_socket() {
                match self.probe_version().await {
                    Ok(()) if !wait_recovered => return Ok(None),
                    Ok(()) => match self.probe_recovered().await {
                        Ok(()) => return Ok(None),
                        Err(e) => last_error = format!("{e:#}"),
                    },
                    Err(e) => last_error = format!("{e:#}"),
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "cri-server did not answer Version on {} within {READY_TIMEOUT:?} (last error: {last_error}); log:\n{}",
                    self.socket.display(),
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether our process has a listening socket bound to our path, so a
    /// second server pointed at a first one's socket is not mistaken for
    /// ready.
    fn owns_socket(&self) -> bool {
        match self.pid() {
            Some(pid) => listens_on(pid, &self.socket),
            None => false,
        }
    }

    /// Ok once an RPC other than `Version` is served (ListPodSandbox is
    /// answered with anything but `Unavailable`).
    async fn probe_recovered(&self) -> Result<()> {
        let mut client = self.runtime_client().await?;
        let request = cri_api::v1::ListPodSandboxRequest { filter: None };
        match tokio::time::timeout(PROBE_TIMEOUT, client.list_pod_sandbox(request)).await {
            Err(_) => bail!("ListPodSandbox timed out after {PROBE_TIMEOUT:?}"),
            Ok(Err(s)) if s.code() == tonic::Code::Unavailable => {
                bail!("not recovered yet: {}", s.message())
            }
            Ok(_) => Ok(()),
        }
    }

    async fn probe_version(&self) -> Result<()> {
        let mut client = self.runtime_client().await?;
        let request = VersionRequest {
            version: cri_api::KUBELET_API_VERSION.to_string(),
        };
        tokio::time::timeout(PROBE_TIMEOUT, client.version(request))
            .await
            .map_err(|_| anyhow!("Version timed out after {PROBE_TIMEOUT:?}"))??;
        Ok(())
    }

    /// Kills the running daemon (if any) and starts it again with the same
    /// config, socket and directories; waits until it answers and has
    /// recovered its state.
    pub async fn restart(&mut self) -> Result<()> {
        self.restart_and_wait(true).await
    }

    /// Like [`restart`](Self::restart), but returns once `Version`
    /// answers, before recovery ends (e.g. while containerd is down).
    pub async fn restart_unrecovered(&mut self) -> Result<()> {
        self.restart_and_wait(false).await
    }

    /// Kills the daemon with SIGKILL (as `kill -9` does), reaps it and
    /// starts it again without waiting; for a caller that times recovery
    /// itself, then calls [`wait_recovered`](Self::wait_recovered).
    pub fn kill_and_spawn(&mut self) -> Result<()> {
        self.kill();
        self.spawn()
    }

    /// Waits until a daemon started by [`kill_and_spawn`](Self::kill_and_spawn)
    /// answers and has recovered its state.
    pub async fn wait_recovered(&mut self) -> Result<()> {
        match self.wait_started(true).await? {
            None => Ok(()),
            Some(status) => bail!(
                "cri-server exited during restart with {status}; log:\n{}",
                self.log()
            ),
        }
    }

    /// Replaces the extra environment the daemon gets, from the next
    /// (re)start on (e.g. `RUST_LOG` for one run).
    pub fn set_env(&mut self, env: Vec<(String, String)>) {
        self.env = env;
    }

    async fn restart_and_wait(&mut self, wait_recovered: bool) -> Result<()> {
        self.kill();
        match self.spawn_and_wait(wait_recovered).await? {
            None => Ok(()),
            Some(status) => {
                bail!(
                    "cri-server exited during restart with {status}; log:\n{}",
                    self.log()
                )
            }
        }
    }

    /// The CRI socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The server's private directory (config, root, state, net.d, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The config file the server was started with.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// `root_dir` in the config.
    pub fn root_dir(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// `state_dir` in the config.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// The CNI conf dir in the config.
    pub fn cni_conf_dir(&self) -> PathBuf {
        self.net_d.clone()
    }

    /// The test network, unless started with [`CniSetup::NoConfig`].
    pub fn network(&self) -> Option<&TestNetwork> {
        self.network.as_ref()
    }

    /// The daemon's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the daemon wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_else(|e| format!("<cannot read {}: {e}>", self.log.display()))
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: Signal) -> Result<()> {
        let pid = self.pid().context("cri-server is not running")?;
        kill(Pid::from_raw(pid as i32), signal)
            .with_context(|| format!("send {signal} to cri-server"))
    }

    /// Waits up to `timeout` for the daemon to exit and returns its status.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut().context("cri-server is not running")?;
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!(
                    "cri-server did not exit within {timeout:?}; log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A channel to the CRI socket.
    pub async fn channel(&self) -> Result<Channel> {
        connect(&self.socket).await
    }

    /// A `RuntimeService` client on the CRI socket.
    pub async fn runtime_client(&self) -> Result<RuntimeServiceClient<Channel>> {
        Ok(RuntimeServiceClient::new(self.channel().await?))
    }

    /// An `ImageService` client on the CRI socket.
    pub async fn image_client(&self) -> Result<ImageServiceClient<Channel>> {
        Ok(ImageServiceClient::new(self.channel().await?))
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for CriServer {
    fn drop(&mut self) {
        self.kill();
        if let Err(e) = teardown::teardown_dir(&self.dir) {
            eprintln!("cri-server teardown: {e:#}");
        }
        // `network` drops after this and releases its lease.
    }
}
