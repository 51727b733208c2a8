//! `cri-bench`'s workloads and its side-by-side setup: the same CRI calls
//! sent to two endpoints (cri-server and containerd's own CRI plugin),
//! alternating, with the latency of each call recorded per operation
//! ([`report`]). [`workloads`] has critest's benchmark shapes, storms at
//! scale, stats, parallel start and memory; [`side_by_side`] starts both
//! daemons on this machine and adds what needs their processes (restart
//! recovery, RSS, cold pull); [`calls`] counts cri-server's containerd
//! round trips per CRI call. A measurement tool, never part of the tests.

pub mod calls;
pub mod large_image;
pub mod report;
pub mod side_by_side;
pub mod workloads;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use cri_api::v1::image_service_client::ImageServiceClient;
use cri_api::v1::runtime_service_client::RuntimeServiceClient;
use cri_api::v1::*;
use tonic::transport::Channel;

/// One CRI endpoint under test, with a client of each service.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub name: String,
    pub socket: PathBuf,
    pub runtime: RuntimeServiceClient<Channel>,
    pub images: ImageServiceClient<Channel>,
    /// The processes whose memory is measured, when known.
    pub pids: Option<DaemonPids>,
}

/// The processes behind an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonPids {
    /// The process serving the CRI: cri-server, or containerd with its plugin.
    pub cri: u32,
    /// Every process the CRI side needs: cri-server and its containerd, or
    /// containerd alone.
    pub all: Vec<u32>,
}

impl DaemonPids {
    /// RSS of the CRI process and of all of them, in MiB.
    pub fn rss_mib(&self) -> Option<(f64, f64)> {
        let all = self.all.iter().map(|p| rss_mib(*p)).sum::<Option<f64>>()?;
        Some((rss_mib(self.cri)?, all))
    }
}

impl Endpoint {
    /// Connects to the CRI socket at `socket`.
    pub async fn connect(name: &str, socket: &Path) -> Result<Endpoint> {
        let channel = crate::server::connect(socket)
            .await
            .with_context(|| format!("{name}: connect to {}", socket.display()))?;
        Ok(Endpoint {
            name: name.to_owned(),
            socket: socket.to_path_buf(),
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            pids: None,
        })
    }

    /// Whether the endpoint has `image`.
    pub async fn has_image(&mut self, image: &str) -> Result<bool> {
        let request = ImageStatusRequest {
            image: Some(image_spec(image)),
            verbose: false,
        };
        let status = self.images.image_status(request).await?.into_inner();
        Ok(status.image.is_some())
    }

    /// Pulls `image` unless the endpoint has it.
    pub async fn ensure_image(&mut self, image: &str) -> Result<()> {
        if !self.has_image(image).await? {
            self.images
                .pull_image(PullImageRequest {
                    image: Some(image_spec(image)),
                    ..PullImageRequest::default()
                })
                .await
                .with_context(|| format!("{}: pull {image}", self.name))?;
        }
        Ok(())
    }
}

/// The images the workloads use; both sides must be able to pull them.
#[derive(Debug, Clone)]
pub struct BenchImages {
    /// What the containers run (`sleep`).
    pub container: String,
    /// The image the image workload pulls, inspects and removes; no
    /// container may use it.
    pub image_ops: String,
    /// The large image of the cold pull, when there is one.
    pub large: Option<String>,
}

/// Whether a pod gets the CNI network or the host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodNetwork {
    /// A network namespace with the CNI network (bridge), as critest's pods.
    Cni,
    /// The host network: no CNI, for pods created in bulk.
    Host,
}

static POD_SEQUENCE: AtomicUsize = AtomicUsize::new(0);

/// A pod config with a name and uid unique in this process.
pub fn pod_config(prefix: &str, network: PodNetwork) -> PodSandboxConfig {
    let n = POD_SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let mut config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: format!("{prefix}-{n}"),
            uid: format!("bench-{pid}-{n}"),
            namespace: "cri-bench".into(),
            attempt: 0,
        }),
        ..PodSandboxConfig::default()
    };
    if network == PodNetwork::Host {
        config.linux = Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: NamespaceMode::Node as i32,
                    ..NamespaceOption::default()
                }),
                ..LinuxSandboxSecurityContext::default()
            }),
            ..LinuxPodSandboxConfig::default()
        });
    }
    config
}

/// A `sleep 3600` container of `image` named `name`.
pub fn sleep_container(name: &str, image: &str) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(image_spec(image)),
        args: vec!["sleep".into(), "3600".into()],
        ..ContainerConfig::default()
    }
}

/// An [`ImageSpec`] naming `image`.
pub fn image_spec(image: &str) -> ImageSpec {
    ImageSpec {
        image: image.into(),
        ..ImageSpec::default()
    }
}

/// `VmRSS` (or another `Vm*` field) of `pid` in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The processor time `pid` used so far (user and system), in seconds:
/// `utime` and `stime` of `/proc/PID/stat`, in clock ticks.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it are fixed.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|&t| t > 0)?;
    Some(ticks as f64 / per_second as f64)
}

/// `VmRSS` of `pid` in MiB.
pub fn rss_mib(pid: u32) -> Option<f64> {
    proc_status_kib(pid, "VmRSS").map(|k| k as f64 / 1024.0)
}
