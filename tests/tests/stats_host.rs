//! Stats read from the real host without containerd: a busy process moved
//! into a cgroup made for the test (v1 controllers, or the v2 unified
//! hierarchy), read twice through the `StatsCollector`; and interface
//! counters read inside a network namespace made for the test. Everything
//! made is removed on drop, also when an assertion fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use cri_api::v1::{PodSandboxAttributes, PodSandboxMetadata};
use cri_stats::{
    CgroupFs, CgroupMode, CgroupPath, CgroupReader, ContainerTarget, LinuxNetnsStats, NetnsStats,
    PodTarget, StatsCollector,
};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// A cgroup (in every controller hierarchy) holding a busy child process.
struct BusyCgroup {
    name: String,
    dirs: Vec<PathBuf>,
    child: Option<Child>,
}

impl BusyCgroup {
    fn create(mode: CgroupMode) -> Result<BusyCgroup> {
        let name = format!("cri-stats-test-{}", std::process::id());
        let mut guard = BusyCgroup {
            name: name.clone(),
            dirs: Vec::new(),
            child: None,
        };
        let roots: Vec<PathBuf> = match mode {
            CgroupMode::Unified => {
                // Controllers must be enabled for children of the root.
                let control = Path::new(CGROUP_ROOT).join("cgroup.subtree_control");
                for controller in ["+cpu", "+memory", "+pids"] {
                    let _ = std::fs::write(&control, controller);
                }
                vec![PathBuf::from(CGROUP_ROOT)]
            }
            CgroupMode::Legacy => {
                let mut roots = Vec::new();
                for controller in ["cpu,cpuacct", "cpuacct", "cpu", "memory", "pids"] {
                    let dir = Path::new(CGROUP_ROOT).join(controller);
                    let Ok(real) = dir.canonicalize() else {
                        continue;
                    };
                    if real.is_dir() && !roots.contains(&real) {
                        roots.push(real);
                    }
                }
                roots
            }
        };
        ensure!(
            !roots.is_empty(),
            "no cgroup hierarchies under {CGROUP_ROOT}"
        );
        for root in roots {
            let dir = root.join(&name);
            std::fs::create_dir(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
            guard.dirs.push(dir);
        }
        // It waits until it is in the cgroup, then grows its heap (memory
        // is charged where it is allocated) and spins.
        let script = "read go; s=; i=0; while [ $i -lt 3000 ]; do s=\"$s 0123456789abcdef\"; \
                      i=$((i+1)); done; while :; do :; done";
        let child = Command::new("busybox")
            .args(["sh", "-c", script])
            .stdin(Stdio::piped())
            .spawn()
            .context("spawn busybox sh (apt-get install busybox-static)")?;
        let pid = child.id();
        guard.child = Some(child);
        for dir in &guard.dirs {
            let procs = dir.join("cgroup.procs");
            std::fs::write(&procs, pid.to_string())
                .with_context(|| format!("move {pid} into {}", procs.display()))?;
        }
        let stdin = guard.child.as_mut().and_then(|c| c.stdin.as_mut());
        stdin.context("child stdin")?.write_all(b"go\n")?;
        Ok(guard)
    }
}

impl Drop for BusyCgroup {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for dir in self.dirs.iter().rev() {
            // The killed process leaves its cgroup shortly after it is reaped.
            for _ in 0..100 {
                match std::fs::remove_dir(dir) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => break,
                }
            }
        }
    }
}

/// A collector over the host's cgroups and netns.
fn host_collector() -> Result<Arc<StatsCollector>> {
    Ok(StatsCollector::host(Path::new("/var/lib/containerd")))
}

#[tokio::test]
async fn cpu_and_memory_of_a_busy_process_in_a_real_cgroup() -> Result<()> {
    let fs = CgroupFs::host();
    let busy = BusyCgroup::create(fs.mode())?;
    let cgroup = CgroupPath::from_oci(&format!("/{}", busy.name))?;
    let raw = fs.read(&cgroup)?;
    let pids = raw.pids.context("no pids stats")?;
    ensure!(pids.current == 1, "pids {pids:?}");

    let collector = host_collector()?;
    let target = ContainerTarget {
        id: busy.name.clone(),
        cgroup: Some(cgroup),
        ..Default::default()
    };
    // Let it build its heap before the first sample.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = collector.container_stats(vec![target.clone()]).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = collector.container_stats(vec![target]).await?;

    let cpu = |stats: &[cri_api::v1::ContainerStats]| stats[0].cpu.context("no cpu stats");
    let (before, after) = (cpu(&first)?, cpu(&second)?);
    let used = |c: &cri_api::v1::CpuUsage| c.usage_core_nano_seconds.map_or(0, |v| v.value);
    ensure!(
        used(&after) > used(&before),
        "cpu did not grow: {before:?} -> {after:?}"
    );
    let cores = after.usage_nano_cores.map_or(0, |v| v.value);
    // A busy loop uses about one core; allow for a loaded machine.
    ensure!(cores > 50_000_000, "usage_nano_cores {cores}");
    ensure!(
        cores < 1_500_000_000,
        "one busy loop, usage_nano_cores {cores}"
    );
    let memory = second[0].memory.context("no memory stats")?;
    let usage = memory.usage_bytes.map_or(0, |v| v.value);
    ensure!(usage > 0, "memory {memory:?}");
    ensure!(
        memory.working_set_bytes.map_or(0, |v| v.value) <= usage,
        "{memory:?}"
    );
    Ok(())
}

/// A network namespace pinned at /run/netns/<name>.
struct TestNetns {
    name: String,
}

impl TestNetns {
    fn create() -> Result<TestNetns> {
        let netns = TestNetns {
            name: format!("cri-stats-test-{}", std::process::id()),
        };
        ip(&["netns", "add", &netns.name])?;
        netns.exec(&["ip", "link", "set", "lo", "up"])?;
        // A veth pair whose inner end is the pod's eth0; no traffic leaves.
        netns.exec(&[
            "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
        ])?;
        Ok(netns)
    }

    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    fn exec(&self, args: &[&str]) -> Result<()> {
        let mut all = vec!["netns", "exec", &self.name];
        all.extend_from_slice(args);
        ip(&all)
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("run ip (apt-get install iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

#[tokio::test]
async fn interface_counters_inside_a_network_namespace() -> Result<()> {
    let netns = TestNetns::create()?;
    netns.exec(&[
        "busybox",
        "ping",
        "-c",
        "3",
        "-i",
        "0.2",
        "-W",
        "1",
        "127.0.0.1",
    ])?;

    let read = LinuxNetnsStats.interfaces(vec![netns.path()]).await;
    let interfaces = read.into_iter().next().context("no result")??;
    let lo = interfaces
        .iter()
        .find(|i| i.name == "lo")
        .context("no lo")?;
    ensure!(lo.rx_bytes > 0 && lo.rx_packets >= 3, "{lo:?}");
    // Exactly the namespace's interfaces, not the host's.
    let mut names: Vec<&str> = interfaces.iter().map(|i| i.name.as_str()).collect();
    names.sort_unstable();
    ensure!(names == ["eth0", "lo", "peer0"], "{interfaces:?}");

    let collector = host_collector()?;
    let pod = PodTarget {
        id: "pod1".into(),
        attributes: PodSandboxAttributes {
            id: "pod1".into(),
            metadata: Some(PodSandboxMetadata {
                name: "web".into(),
                namespace: "default".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
        netns: Some(netns.path()),
        ..Default::default()
    };
    let stats = collector.pod_stats(vec![pod.clone()]).await?;
    let network = stats[0]
        .linux
        .as_ref()
        .and_then(|l| l.network.as_ref())
        .context("no network stats")?;
    let eth0 = network.default_interface.as_ref().context("no eth0")?;
    ensure!(eth0.name == "eth0" && eth0.rx_bytes.is_some(), "{eth0:?}");
    ensure!(
        network.interfaces.iter().all(|i| i.name != "lo"),
        "{network:?}"
    );

    let metrics = collector.pod_metrics(vec![pod]).await?;
    let rx = metrics[0]
        .metrics
        .iter()
        .find(|m| m.name == "container_network_receive_bytes_total" && m.label_values[5] == "eth0")
        .context("no network metrics")?;
    ensure!(
        rx.label_values == ["web", "default", "", "pod1", "", "eth0"],
        "{rx:?}"
    );
    Ok(())
}
