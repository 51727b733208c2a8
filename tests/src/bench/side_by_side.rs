//! Both CRI implementations on this machine, side by side: cri-server on
//! a private containerd with the CRI plugin disabled (the conformance
//! setup: critest's images in the harness registry, mirrored through
//! `hosts.toml`), and a second containerd from the same package with its
//! own CRI plugin enabled on its own socket, root and CNI network, with
//! the same sandbox image and mirrors ([`ReferenceDaemon`]). Both
//! containerds log at `info`, cri-server at `RUST_LOG=info`. Adds the
//! measurements that need the processes: restart recovery after
//! `kill -9`, RSS, and the cold pull of a large image with peak RSS.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cri_api::v1::runtime_service_client::RuntimeServiceClient;
use cri_api::v1::*;

use super::large_image::{push_bench_images, IMAGE_OPS_IMAGE, LARGE_IMAGE};
use super::report::{Group, Report, Unit};
use super::workloads::{order, progress};
use super::{image_spec, BenchImages, DaemonPids, Endpoint};
use crate::conformance::{Conformance, Daemon, ReferenceDaemon, Target};
use crate::images::critest;
use crate::CriServer;

/// The log level of both containerds while measuring, unless
/// `CRI_BENCH_CONTAINERD_LOG_LEVEL` says otherwise (`debug` shows each
/// garbage collection and its duration).
const CONTAINERD_LOG_LEVEL: &str = "info";
/// How long a daemon gets to answer with every pod after a restart.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long removed layers get to leave containerd's content store.
const GC_TIMEOUT: Duration = Duration::from_secs(30);

/// Which side an index of [`SideBySide::endpoints`] is.
pub const OURS: usize = 0;
pub const REFERENCE: usize = 1;

/// The sizes of the large image.
#[derive(Debug, Clone, Copy)]
pub struct LargeImage {
    pub layers: usize,
    pub mib_per_layer: usize,
}

/// cri-server and containerd's CRI plugin, each on its own containerd.
/// Field order is drop order: the reference first, then cri-server, the
/// harness and the shared dir.
#[derive(Debug)]
pub struct SideBySide {
    reference: ReferenceDaemon,
    setup: Conformance,
    large_layers: Vec<String>,
}

impl SideBySide {
    /// Starts both sides (cri-server from `$CRI_SERVER_BIN`, else built),
    /// pushes the benchmark's images and waits until both answer.
    pub async fn start(large: LargeImage) -> Result<SideBySide> {
        // Inherited by cri-server; a later `set_env` overrides it.
        std::env::set_var("RUST_LOG", "info");
        std::env::set_var("NO_COLOR", "1");
        let mut setup = Conformance::start(Target::CriServer).await?;
        let large_layers = push_bench_images(
            &setup.harness.registry.client(),
            large.layers,
            large.mib_per_layer,
        )
        .await
        .context("push the benchmark images")?;
        let mut reference = ReferenceDaemon::start(setup.dir(), &setup.certs_dir()).await?;
        for containerd in [&mut setup.harness.containerd, &mut reference.containerd] {
            let level = std::env::var("CRI_BENCH_CONTAINERD_LOG_LEVEL");
            containerd.set_log_level(level.as_deref().unwrap_or(CONTAINERD_LOG_LEVEL))?;
            containerd.stop().await?;
            containerd.start_again().await?;
        }
        let mut both = SideBySide {
            reference,
            setup,
            large_layers,
        };
        both.server_mut()?.restart().await?;
        wait_for_pods(both.reference.containerd.socket(), 0, RECOVERY_TIMEOUT).await?;
        Ok(both)
    }

    /// The images the workloads use.
    pub fn images(&self) -> BenchImages {
        BenchImages {
            container: critest::BUSYBOX.into(),
            image_ops: IMAGE_OPS_IMAGE.into(),
            large: Some(LARGE_IMAGE.into()),
        }
    }

    fn server(&self) -> Result<&CriServer> {
        match &self.setup.daemon {
            Daemon::CriServer(server) => Ok(server),
            Daemon::Reference(_) => bail!("the setup runs the reference, not cri-server"),
        }
    }

    /// The running cri-server.
    pub fn server_mut(&mut self) -> Result<&mut CriServer> {
        match &mut self.setup.daemon {
            Daemon::CriServer(server) => Ok(server),
            Daemon::Reference(_) => bail!("the setup runs the reference, not cri-server"),
        }
    }

    /// Both endpoints: cri-server ([`OURS`]) and containerd's CRI plugin
    /// ([`REFERENCE`]), with their processes.
    pub async fn endpoints(&self) -> Result<Vec<Endpoint>> {
        let server = self.server()?;
        let mut ours = Endpoint::connect("cri-server", server.socket()).await?;
        ours.pids = match (server.pid(), self.setup.harness.containerd.pid()) {
            (Some(cri), Some(containerd)) => Some(DaemonPids {
                cri,
                all: vec![cri, containerd],
            }),
            _ => None,
        };
        let mut reference =
            Endpoint::connect("containerd", self.reference.containerd.socket()).await?;
        reference.pids = self.reference.containerd.pid().map(|cri| DaemonPids {
            cri,
            all: vec![cri],
        });
        Ok(vec![ours, reference])
    }

    /// `kill -9` of the process serving the CRI (cri-server, or the
    /// reference's containerd), started again at once; records the time
    /// until `Version` answers and until `ListPodSandbox` lists `pods`
    /// pods, for `rounds` rounds alternating.
    pub async fn restart(&mut self, report: &mut Report, pods: usize, rounds: usize) -> Result<()> {
        for round in 0..rounds {
            for side in order(round, 2) {
                let socket = self.socket(side)?;
                let started = Instant::now();
                if side == OURS {
                    self.server_mut()?.kill_and_spawn()?;
                } else {
                    self.reference.containerd.kill_now()?;
                    self.reference.containerd.spawn()?;
                }
                let (version, listed) = time_recovery(&socket, pods, started).await?;
                if side == OURS {
                    self.server_mut()?.wait_recovered().await?;
                } else {
                    self.reference.containerd.wait_ready().await?;
                }
                let g = Group::Other;
                report.time(
                    side,
                    g,
                    &format!("restart after kill -9 ({pods} pods): Version answers"),
                    version,
                );
                report.time(
                    side,
                    g,
                    &format!("restart after kill -9 ({pods} pods): all pods listed"),
                    listed,
                );
            }
        }
        Ok(())
    }

    fn socket(&self, side: usize) -> Result<PathBuf> {
        Ok(match side {
            OURS => self.server()?.socket().to_path_buf(),
            _ => self.reference.containerd.socket().to_path_buf(),
        })
    }

    /// The cold pull of the large image, `rounds` rounds alternating: the
    /// pull's latency and the peak RSS during it (VmHWM, reset before
    /// the pull through `/proc/<pid>/clear_refs`); the image is removed
    /// after each pull and its layers waited out of the content store.
    pub async fn cold_pull(
        &self,
        endpoints: &mut [Endpoint],
        report: &mut Report,
        rounds: usize,
        label: &str,
    ) -> Result<()> {
        for round in 0..rounds {
            for side in order(round, 2) {
                self.remove_large(&mut endpoints[side], side).await?;
                let ep = &mut endpoints[side];
                let pids = ep.pids.clone();
                if let Some(p) = &pids {
                    for pid in &p.all {
                        let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
                    }
                }
                let cpu = |pids: &Option<DaemonPids>| {
                    pids.as_ref().map(|p| {
                        let cri = super::cpu_seconds(p.cri);
                        let all = p
                            .all
                            .iter()
                            .map(|&pid| super::cpu_seconds(pid))
                            .sum::<Option<f64>>();
                        (cri, all)
                    })
                };
                let cpu_before = cpu(&pids);
                let started = Instant::now();
                ep.images
                    .pull_image(PullImageRequest {
                        image: Some(image_spec(LARGE_IMAGE)),
                        ..PullImageRequest::default()
                    })
                    .await
                    .with_context(|| format!("{}: pull {LARGE_IMAGE}", ep.name))?;
                report.time(
                    side,
                    Group::Other,
                    &format!("PullImage cold, {label}"),
                    started.elapsed(),
                );
                if let (Some((Some(cri0), all0)), Some((Some(cri1), all1))) =
                    (cpu_before, cpu(&pids))
                {
                    report.value(
                        side,
                        Group::Other,
                        Unit::CpuSeconds,
                        "CPU time of the cold pull: CRI process",
                        cri1 - cri0,
                    );
                    if let (Some(all0), Some(all1)) = (all0, all1) {
                        report.value(
                            side,
                            Group::Other,
                            Unit::CpuSeconds,
                            "CPU time of the cold pull: CRI process + containerd",
                            all1 - all0,
                        );
                    }
                }
                if let Some(p) = &pids {
                    let peak = |pid: &u32| {
                        super::proc_status_kib(*pid, "VmHWM").map(|k| k as f64 / 1024.0)
                    };
                    if let Some(cri) = peak(&p.cri) {
                        report.value(
                            side,
                            Group::Other,
                            Unit::MiB,
                            "peak RSS during the cold pull: CRI process",
                            cri,
                        );
                    }
                    if let Some(all) = p.all.iter().map(peak).sum::<Option<f64>>() {
                        report.value(
                            side,
                            Group::Other,
                            Unit::MiB,
                            "peak RSS during the cold pull: CRI process + containerd",
                            all,
                        );
                    }
                }
            }
        }
        for side in [OURS, REFERENCE] {
            self.remove_large(&mut endpoints[side], side).await?;
        }
        Ok(())
    }

    /// Removes the large image from `ep` and waits until its layers have
    /// left that side's content store.
    async fn remove_large(&self, ep: &mut Endpoint, side: usize) -> Result<()> {
        if ep.has_image(LARGE_IMAGE).await? {
            ep.images
                .remove_image(RemoveImageRequest {
                    image: Some(image_spec(LARGE_IMAGE)),
                })
                .await
                .with_context(|| format!("{}: remove {LARGE_IMAGE}", ep.name))?;
        }
        let root = match side {
            OURS => self.setup.harness.containerd.root(),
            _ => self.reference.containerd.root(),
        };
        let blobs = root.join("io.containerd.content.v1.content/blobs");
        let deadline = Instant::now() + GC_TIMEOUT;
        while self
            .large_layers
            .iter()
            .any(|d| blob_path(&blobs, d).exists())
        {
            if Instant::now() > deadline {
                bail!(
                    "{}: the large image's layers are still in {} {GC_TIMEOUT:?} after RemoveImage",
                    ep.name,
                    blobs.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Each daemon's log, for a failure.
    pub fn logs(&self) -> String {
        let server = self.server().map(|s| s.log()).unwrap_or_default();
        format!(
            "--- containerd (reference) log tail:\n{}\n--- cri-server log tail:\n{}",
            tail(&self.reference.containerd.log(), 30),
            tail(&server, 30)
        )
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `<blobs>/sha256/<hex>` of `digest`.
fn blob_path(blobs: &Path, digest: &str) -> PathBuf {
    let (algorithm, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
    blobs.join(algorithm).join(hex)
}

/// From `started`: the time until `Version` answers on `socket`, and
/// until `ListPodSandbox` lists at least `pods` pods (probing every
/// 2 ms on a fresh connection).
async fn time_recovery(
    socket: &Path,
    pods: usize,
    started: Instant,
) -> Result<(Duration, Duration)> {
    let deadline = started + RECOVERY_TIMEOUT;
    let version = loop {
        if let Ok(mut client) = client(socket).await {
            let request = VersionRequest {
                version: cri_api::KUBELET_API_VERSION.to_string(),
            };
            if client.version(request).await.is_ok() {
                break started.elapsed();
            }
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not answer Version within {RECOVERY_TIMEOUT:?}",
                socket.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    wait_for_pods(
        socket,
        pods,
        deadline.saturating_duration_since(Instant::now()),
    )
    .await?;
    Ok((version, started.elapsed()))
}

async fn client(socket: &Path) -> Result<RuntimeServiceClient<tonic::transport::Channel>> {
    Ok(RuntimeServiceClient::new(
        crate::server::connect(socket).await?,
    ))
}

/// Waits until `ListPodSandbox` on `socket` answers with at least `pods`
/// pods.
pub async fn wait_for_pods(socket: &Path, pods: usize, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match client(socket).await {
            Ok(mut client) => match client
                .list_pod_sandbox(ListPodSandboxRequest { filter: None })
                .await
            {
                Ok(answer) if answer.get_ref().items.len() >= pods => return Ok(()),
                Ok(answer) => format!("{} pods listed", answer.get_ref().items.len()),
                Err(status) => status.to_string(),
            },
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() > deadline {
            bail!(
                "{} did not list {pods} pods within {timeout:?}: {last}",
                socket.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The whole side-by-side run: the RPC workloads, the restart with the
/// stats workload's pods, the cold pull; then the round-trip counts of
/// cri-server (with its containerd call log on).
pub async fn run(
    both: &mut SideBySide,
    report: &mut Report,
    opts: &super::workloads::Options,
    large: LargeImage,
    pull_rounds: usize,
    restart_rounds: usize,
) -> Result<super::calls::CallTable> {
    let images = both.images();
    let mut endpoints = both.endpoints().await?;
    super::workloads::run_all(&mut endpoints, report, &images, opts).await?;
    let pods = opts.stats_pods;
    progress(&format!("restart after kill -9 with {pods} pods"));
    let restarted = both.restart(report, pods, restart_rounds).await;
    let mut endpoints = both.endpoints().await?;
    super::workloads::cleanup(&mut endpoints).await;
    restarted?;
    progress("cold pull of the large image");
    let label = format!(
        "{} layers x {} MiB random",
        large.layers, large.mib_per_layer
    );
    both.cold_pull(&mut endpoints, report, pull_rounds, &label)
        .await?;
    progress("containerd round trips per CRI call (cri-server)");
    super::calls::count(both.server_mut()?, &images).await
}
