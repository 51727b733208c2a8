//! Switching a live node, both ways, as docs/switching.md tells an
//! operator to: containerd's own CRI plugin (Debian's containerd 1.6,
//! built in) to cri-server on the plugin's root and state dirs, and back.
//! A pod with a container that writes a line every 0.5 s and one that
//! exited with code 7 is made by one side; after the switch the other side
//! reports the same ids, states, pod IP and exit code, the log keeps
//! growing, exec works, and stop + remove release the IP and leave nothing
//! in containerd.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cri_api::v1::image_service_client::ImageServiceClient;
use cri_api::v1::runtime_service_client::RuntimeServiceClient;
use cri_api::v1::{
    ContainerConfig, ContainerState, ContainerStatusRequest, ContainerStatusResponse,
    CreateContainerRequest, ExecSyncRequest, ImageSpec, ListPodSandboxRequest, PodSandboxState,
    PodSandboxStatusRequest, PullImageRequest, RemovePodSandboxRequest, RunPodSandboxRequest,
    StartContainerRequest, StopPodSandboxRequest,
};
use cri_tests::components::CNI_BIN_DIR;
use cri_tests::containerd::toml_string;
use cri_tests::cri::{container_config, pod_config};
use cri_tests::server::{connect, CniSetup};
use cri_tests::{
    push_test_images, teardown, ContainerdProcess, CriServer, Registry, ServerOptions, TestImages,
    TestNetwork,
};
use nix::sys::signal::Signal;
use tonic::transport::Channel;

type Runtime = RuntimeServiceClient<Channel>;

/// The CRI plugin's directory name under containerd's root and state.
const CRI_DIR: &str = "io.containerd.grpc.v1.cri";
/// A line every 0.5 s.
const TICKER: &str = "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.5; done";

/// One node: a containerd (its CRI plugin on or off), the CNI config both
/// CRI servers read, and a registry with the test images. Dropped in field
/// order: containerd and its containers first.
struct Node {
    containerd: ContainerdProcess,
    cri_server: Option<CriServer>,
    network: TestNetwork,
    dir: PathBuf,
    net_d: PathBuf,
    ipam: PathBuf,
    logs: PathBuf,
    images: TestImages,
    _registry: Registry,
}

/// What the first CRI server made.
#[derive(Debug, Clone)]
struct Workload {
    pod: String,
    ip: String,
    runner: String,
    exiter: String,
    log: PathBuf,
}

impl Node {
    async fn start(with_cri_plugin: bool) -> Result<Node> {
        let registry = Registry::start().await?;
        let images = push_test_images(&registry).await?;
        let dir = teardown::new_component_dir("switch")?;
        let network = TestNetwork::lease()?;
        std::fs::write(dir.join(teardown::BRIDGES_FILE), &network.bridge)?;
        let (net_d, ipam, logs) = (dir.join("net.d"), dir.join("cni-ipam"), dir.join("logs"));
        std::fs::create_dir_all(&net_d)?;
        std::fs::write(net_d.join("10-cri-tests.conflist"), network.conflist(&ipam))?;
        let mut node = Node {
            containerd: ContainerdProcess::start().await?,
            cri_server: None,
            network,
            dir,
            net_d,
            ipam,
            logs,
            images,
            _registry: registry,
        };
        if with_cri_plugin {
            node.restart_containerd(true).await?;
        }
        Ok(node)
    }

    /// `[plugins."io.containerd.grpc.v1.cri"]` for this node, as an
    /// operator writes it: the same CNI dirs, the sandbox image and a
    /// registry mirror as cri-server's, and `restrict_oom_score_adj` (root
    /// here lacks CAP_SYS_RESOURCE).
    fn cri_plugin_toml(&self) -> String {
        let registry = &self.images.registry;
        format!(
            r#"[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = {pause}
  restrict_oom_score_adj = true
[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = {bin_dir}
  conf_dir = {conf_dir}
[plugins."io.containerd.grpc.v1.cri".registry.mirrors.{host}]
  endpoint = [{endpoint}]
"#,
            pause = toml_string(&self.images.pause),
            bin_dir = toml_string(CNI_BIN_DIR),
            conf_dir = toml_string(&self.net_d.to_string_lossy()),
            host = toml_string(registry),
            endpoint = toml_string(&format!("http://{registry}")),
        )
    }

    /// Restarts containerd with its CRI plugin enabled or disabled (the
    /// operator's edit of `disabled_plugins`); containers keep running.
    async fn restart_containerd(&mut self, cri_plugin: bool) -> Result<()> {
        self.containerd.stop().await?;
        let toml = cri_plugin.then(|| self.cri_plugin_toml());
        self.containerd.set_cri_plugin(toml.as_deref())?;
        self.containerd.start_again().await
    }

    /// cri-server on the CRI plugin's dirs and CNI config.
    async fn start_cri_server(&mut self) -> Result<Runtime> {
        let root = self.containerd.root().join(CRI_DIR);
        let state = self.containerd.state().join(CRI_DIR);
        let server = CriServer::start(
            &self.containerd,
            ServerOptions {
                registry: Some(self.images.registry.clone()),
                sandbox_image: Some(self.images.pause.clone()),
                cni: CniSetup::NoConfig,
                cni_conf_dir: Some(self.net_d.clone()),
                extra_args: vec![
                    "--root".into(),
                    root.to_string_lossy().into_owned(),
                    "--state".into(),
                    state.to_string_lossy().into_owned(),
                ],
                ..ServerOptions::default()
            },
        )
        .await?;
        let client = server.runtime_client().await?;
        self.cri_server = Some(server);
        Ok(client)
    }

    /// Stops cri-server as systemd does (SIGTERM); containers keep running.
    async fn stop_cri_server(&mut self) -> Result<()> {
        let mut server = self
            .cri_server
            .take()
            .context("cri-server is not running")?;
        server.signal(Signal::SIGTERM)?;
        let status = server.wait_exit(Duration::from_secs(30)).await?;
        ensure!(status.success(), "cri-server exit: {status}");
        Ok(())
    }

    /// A client of containerd's CRI plugin, once it has initialised.
    async fn cri_plugin_client(&self) -> Result<Runtime> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut client = RuntimeServiceClient::new(connect(self.containerd.socket()).await?);
            match client
                .list_pod_sandbox(ListPodSandboxRequest { filter: None })
                .await
            {
                Ok(_) => return Ok(client),
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(status) => bail!(
                    "containerd's CRI plugin did not answer: {status}; log:\n{}",
                    self.containerd.log()
                ),
            }
        }
    }

    /// The CRI endpoint currently in charge, for failure messages.
    fn context(&self) -> String {
        match &self.cri_server {
            Some(server) => format!("cri-server log:\n{}", server.log()),
            None => format!("containerd log:\n{}", self.containerd.log()),
        }
    }

    fn container(&self, name: &str, script: &str) -> ContainerConfig {
        container_config(name, &self.images.busybox, &["sh", "-c", script])
    }

    /// The pod: a ticker and a container that exited with 7.
    async fn make_workload(
        &self,
        rt: &mut Runtime,
        images: &mut ImageServiceClient<Channel>,
    ) -> Result<Workload> {
        images
            .pull_image(PullImageRequest {
                image: Some(ImageSpec {
                    image: self.images.busybox.clone(),
                    ..ImageSpec::default()
                }),
                ..PullImageRequest::default()
            })
            .await
            .with_context(|| self.context())?;
        let config = pod_config("switch", "switch-test", &self.logs);
        let pod = rt
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            })
            .await
            .with_context(|| self.context())?
            .into_inner()
            .pod_sandbox_id;
        let mut ids = Vec::new();
        for (name, script) in [("runner", TICKER), ("exiter", "echo bye; exit 7")] {
            let id = rt
                .create_container(CreateContainerRequest {
                    pod_sandbox_id: pod.clone(),
                    config: Some(self.container(name, script)),
                    sandbox_config: Some(config.clone()),
                })
                .await
                .with_context(|| self.context())?
                .into_inner()
                .container_id;
            rt.start_container(StartContainerRequest {
                container_id: id.clone(),
            })
            .await
            .with_context(|| self.context())?;
            ids.push(id);
        }
        let ip = pod_ip(rt, &pod).await?;
        ensure!(
            self.network.contains(&ip),
            "pod IP {ip} outside {}",
            self.network.subnet
        );
        let exiter = wait_exited(rt, &ids[1]).await?;
        ensure!(exiter.exit_code == 7, "{exiter:?}");
        Ok(Workload {
            pod,
            ip,
            runner: ids[0].clone(),
            exiter: ids[1].clone(),
            log: self.logs.join("switch").join("runner").join("0.log"),
        })
    }

    /// What the second CRI server must report and do.
    async fn check_adopted(&self, rt: &mut Runtime, w: &Workload) -> Result<()> {
        let pods = rt
            .list_pod_sandbox(ListPodSandboxRequest { filter: None })
            .await
            .with_context(|| self.context())?
            .into_inner()
            .items;
        ensure!(pods.len() == 1, "pods: {pods:#?}");
        ensure!(
            pods[0].id == w.pod,
            "pod id {} (want {})",
            pods[0].id,
            w.pod
        );
        ensure!(
            pods[0].state == PodSandboxState::SandboxReady as i32,
            "{:?}",
            pods[0]
        );
        ensure!(pod_ip(rt, &w.pod).await? == w.ip, "pod IP changed");

        let runner = status(rt, &w.runner).await?;
        ensure!(
            runner.state == ContainerState::ContainerRunning as i32,
            "{runner:?}"
        );
        ensure!(runner.log_path == w.log.to_string_lossy(), "{runner:?}");
        let exiter = status(rt, &w.exiter).await?;
        ensure!(
            exiter.state == ContainerState::ContainerExited as i32,
            "{exiter:?}"
        );
        ensure!(exiter.exit_code == 7, "{exiter:?}");

        // The new owner copies the ticker's output into the same log.
        let before = line_count(&w.log);
        let deadline = Instant::now() + Duration::from_secs(10);
        while line_count(&w.log) < before + 2 {
            ensure!(
                Instant::now() < deadline,
                "{} stuck at {before} lines; {}",
                w.log.display(),
                self.context()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let exec = rt
            .exec_sync(ExecSyncRequest {
                container_id: w.runner.clone(),
                cmd: vec!["sh".into(), "-c".into(), "echo adopted-$((6*7))".into()],
                timeout: 10,
            })
            .await
            .with_context(|| self.context())?
            .into_inner();
        ensure!(exec.exit_code == 0, "{exec:?}");
        ensure!(
            String::from_utf8_lossy(&exec.stdout) == "adopted-42\n",
            "{exec:?}"
        );
        Ok(())
    }

    /// Stop and remove; then the IP is free and containerd holds nothing
    /// of the pod.
    async fn remove_and_check_clean(&self, rt: &mut Runtime, w: &Workload) -> Result<()> {
        let ip_file = self.ipam.join(&self.network.name).join(&w.ip);
        ensure!(
            ip_file.exists(),
            "{} is not reserved in host-local's {}",
            w.ip,
            ip_file.display()
        );
        rt.stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: w.pod.clone(),
        })
        .await
        .with_context(|| self.context())?;
        ensure!(!ip_file.exists(), "{} still reserved after stop", w.ip);
        rt.remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: w.pod.clone(),
        })
        .await
        .with_context(|| self.context())?;
        let pods = rt
            .list_pod_sandbox(ListPodSandboxRequest { filter: None })
            .await?
            .into_inner()
            .items;
        ensure!(pods.is_empty(), "{pods:#?}");
        let containers = self.containerd.ctr_ok(&["containers", "ls", "-q"]).await?;
        ensure!(
            containers.trim().is_empty(),
            "containers left:\n{containers}"
        );
        let tasks = self.containerd.ctr_ok(&["tasks", "ls", "-q"]).await?;
        ensure!(tasks.trim().is_empty(), "tasks left:\n{tasks}");
        let active: Vec<String> = self
            .containerd
            .ctr_ok(&["snapshots", "ls"])
            .await?
            .lines()
            .filter(|l| l.contains("Active"))
            .map(str::to_owned)
            .collect();
        ensure!(active.is_empty(), "active snapshots left: {active:#?}");
        let cache: Vec<String> = cri_tests::cri::dir_names(Path::new("/var/lib/cni/results"))
            .into_iter()
            .filter(|n| n.contains(&w.pod))
            .collect();
        ensure!(cache.is_empty(), "CNI cache left: {cache:?}");
        Ok(())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // cri-server and containerd go with their fields; the CNI config,
        // IPAM state and logs with the directory.
        drop(self.cri_server.take());
        if let Err(e) = teardown::teardown_dir(&self.dir) {
            eprintln!("switch teardown: {e:#}");
        }
    }
}

async fn pod_ip(rt: &mut Runtime, pod: &str) -> Result<String> {
    let status = rt
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: pod.into(),
            verbose: false,
        })
        .await?
        .into_inner()
        .status
        .context("no pod status")?;
    let ip = status
        .network
        .as_ref()
        .map(|n| n.ip.clone())
        .unwrap_or_default();
    ensure!(!ip.is_empty(), "pod {pod} has no IP: {status:?}");
    Ok(ip)
}

async fn status(rt: &mut Runtime, id: &str) -> Result<cri_api::v1::ContainerStatus> {
    let reply: ContainerStatusResponse = rt
        .container_status(ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        })
        .await?
        .into_inner();
    reply.status.context("no container status")
}

async fn wait_exited(rt: &mut Runtime, id: &str) -> Result<cri_api::v1::ContainerStatus> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = status(rt, id).await?;
        if s.state == ContainerState::ContainerExited as i32 {
            return Ok(s);
        }
        ensure!(Instant::now() < deadline, "{id} did not exit: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn line_count(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[tokio::test]
async fn containerds_cri_plugin_to_cri_server() -> Result<()> {
    let mut node = Node::start(true).await?;
    let channel = connect(node.containerd.socket()).await?;
    let mut rt = node.cri_plugin_client().await?;
    let mut images = ImageServiceClient::new(channel);
    let workload = node.make_workload(&mut rt, &mut images).await?;
    drop((rt, images));

    // disabled_plugins = ["io.containerd.grpc.v1.cri"], restart containerd,
    // start cri-server on the plugin's dirs.
    node.restart_containerd(false).await?;
    let mut rt = node.start_cri_server().await?;
    node.check_adopted(&mut rt, &workload).await?;
    node.remove_and_check_clean(&mut rt, &workload).await
}

#[tokio::test]
async fn cri_server_to_containerds_cri_plugin() -> Result<()> {
    let mut node = Node::start(false).await?;
    let mut rt = node.start_cri_server().await?;
    let mut images = node
        .cri_server
        .as_ref()
        .context("no cri-server")?
        .image_client()
        .await?;
    let workload = node.make_workload(&mut rt, &mut images).await?;
    drop((rt, images));

    // Stop cri-server, re-enable the plugin, restart containerd.
    node.stop_cri_server().await?;
    node.restart_containerd(true).await?;
    let mut rt = node.cri_plugin_client().await?;
    node.check_adopted(&mut rt, &workload).await?;
    node.remove_and_check_clean(&mut rt, &workload).await
}
