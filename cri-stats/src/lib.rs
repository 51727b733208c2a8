//! Container and pod stats for `ContainerStats`, `ListContainerStats`,
//! `PodSandboxStats`, `ListPodSandboxStats`, `ListMetricDescriptors` and
//! `ListPodSandboxMetrics`. Handlers turn their records into
//! [`ContainerTarget`]s / [`PodTarget`]s and call [`StatsCollector`]; one
//! request reads each cgroup once (in one blocking task), each pod netns
//! once (in one plain thread), writable layers from a cache a background
//! pass fills, and concurrent identical requests share one collection.
#![doc = include_str!("../README.md")]

mod cgroup;
mod cgroup_path;
mod convert;
mod cpu_rate;
mod cri_metrics;
mod error;
mod filter;
mod fs_usage;
mod network;
mod single_flight;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use cri_api::v1::{
    ContainerAttributes, ContainerStats, PodSandboxAttributes, PodSandboxMetrics, PodSandboxStats,
};

pub use cgroup::{
    CgroupFs, CgroupMode, CgroupReader, CgroupStats, CpuStats, MemoryStats, PidsStats, SwapStats,
};
pub use cgroup_path::{expand_slice, CgroupPath};
pub use convert::unix_nanos;
pub use cpu_rate::CpuRates;
pub use cri_metrics::metric_descriptors;
pub use error::{Result, StatsError};
pub use filter::{labels_match, select_containers, select_pods};
pub use fs_usage::{FsUsage, FsUsageCache, WritableLayer};
pub use network::{parse_net_dev, InterfaceStats, LinuxNetnsStats, NetnsStats};
pub use single_flight::SingleFlight;

/// The time source; injected so tests are deterministic.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> SystemTime;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// What stats need to know about one container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerTarget {
    pub id: String,
    pub sandbox_id: String,
    /// From the spec's `linux.cgroupsPath` ([`CgroupPath::from_oci`]);
    /// `None` when the container has no cgroup to read (not running).
    pub cgroup: Option<CgroupPath>,
    /// Id, metadata, labels and annotations, returned as given.
    pub attributes: ContainerAttributes,
    /// The image as the user named it (the `image` metric label).
    pub image: String,
    /// Start time in ns since the epoch, 0 if not started.
    pub started_at: i64,
}

/// What stats need to know about one pod.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodTarget {
    pub id: String,
    pub attributes: PodSandboxAttributes,
    /// From `linux.cgroup_parent` ([`CgroupPath::from_cgroup_parent`]).
    pub cgroup: Option<CgroupPath>,
    /// The pod's network namespace, `None` with host networking.
    pub netns: Option<PathBuf>,
    /// The pod's containers (running ones carry a cgroup).
    pub containers: Vec<ContainerTarget>,
}

impl PodTarget {
    fn name_and_namespace(&self) -> (&str, &str) {
        self.attributes
            .metadata
            .as_ref()
            .map_or(("", ""), |m| (m.name.as_str(), m.namespace.as_str()))
    }
}

type Key = Vec<String>;

/// Collects stats; one per daemon, in `ServerState`.
#[derive(Debug)]
pub struct StatsCollector {
    cgroups: Arc<dyn CgroupReader>,
    netns: Arc<dyn NetnsStats>,
    fs: Arc<FsUsageCache>,
    clock: Arc<dyn Clock>,
    cpu: CpuRates,
    container_flights: SingleFlight<Key, Arc<Vec<ContainerStats>>>,
    pod_flights: SingleFlight<Key, Arc<Vec<PodSandboxStats>>>,
    metric_flights: SingleFlight<Key, Arc<Vec<PodSandboxMetrics>>>,
}

/// What one pass read for a pod and its containers.
struct PodRead {
    cgroup: Option<CgroupStats>,
    interfaces: Option<Vec<InterfaceStats>>,
    containers: Vec<Option<CgroupStats>>,
}

impl StatsCollector {
    pub fn new(
        cgroups: Arc<dyn CgroupReader>,
        netns: Arc<dyn NetnsStats>,
        fs: Arc<FsUsageCache>,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        Arc::new(Self {
            cgroups,
            netns,
            fs,
            clock,
            cpu: CpuRates::default(),
            container_flights: SingleFlight::default(),
            pod_flights: SingleFlight::default(),
            metric_flights: SingleFlight::default(),
        })
    }

    /// The host's cgroups and network namespaces, and writable layers from
    /// containerd's snapshotter (`containerd_root` names their filesystems),
    /// as a pass over the snapshots hands them to
    /// [`FsUsageCache::record`] on [`Self::fs_usage`].
    pub fn host(containerd_root: &Path) -> Arc<Self> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let fs = Arc::new(FsUsageCache::new(containerd_root, clock.clone()));
        Self::new(
            Arc::new(CgroupFs::host()),
            Arc::new(LinuxNetnsStats),
            fs,
            clock,
        )
    }

    /// The writable-layer cache: register containers on create/recovery.
    pub fn fs_usage(&self) -> &Arc<FsUsageCache> {
        &self.fs
    }

    /// Forgets a removed container or pod (cpu sample, writable layer).
    pub fn forget(&self, id: &str) {
        self.cpu.forget(id);
        self.fs.unregister(id);
    }

    /// Stats of `targets`, in their order.
    pub async fn container_stats(
        self: &Arc<Self>,
        targets: Vec<ContainerTarget>,
    ) -> Result<Vec<ContainerStats>> {
        let key = targets.iter().map(|t| t.id.clone()).collect();
        let this = Arc::clone(self);
        let stats = self
            .container_flights
            .run(key, async move {
                let paths: Vec<_> = targets.iter().map(|t| t.cgroup.clone()).collect();
                let read = this.read_cgroups(paths).await;
                let now = this.clock.now();
                let stats = targets
                    .iter()
                    .zip(&read)
                    .map(|(t, cgroup)| this.one_container(t, cgroup.as_ref(), now))
                    .collect();
                Arc::new(stats)
            })
            .await?;
        Ok(stats.as_ref().clone())
    }

    /// Stats of `pods` and their containers, in their order.
    pub async fn pod_stats(self: &Arc<Self>, pods: Vec<PodTarget>) -> Result<Vec<PodSandboxStats>> {
        let this = Arc::clone(self);
        let stats = self
            .pod_flights
            .run(pod_key(&pods), async move {
                let reads = this.read_pods(&pods).await;
                let now = this.clock.now();
                let timestamp = unix_nanos(now);
                let stats = pods
                    .iter()
                    .zip(reads)
                    .map(|(pod, read)| {
                        let containers = pod
                            .containers
                            .iter()
                            .zip(&read.containers)
                            .map(|(t, c)| this.one_container(t, c.as_ref(), now))
                            .collect();
                        // Processes of the containers, as containerd counts them.
                        let pids = read.containers.iter().flatten().filter_map(|c| c.pids);
                        let process_count = pids
                            .map(|p| p.current)
                            .reduce(u64::saturating_add)
                            .or_else(|| read.cgroup.and_then(|c| c.pids).map(|p| p.current));
                        let reading = convert::PodReading {
                            cgroup: read.cgroup.as_ref(),
                            usage_nano_cores: read
                                .cgroup
                                .and_then(|c| c.cpu)
                                .map_or(0, |cpu| this.cpu.update(&pod.id, cpu.usage_ns, now)),
                            interfaces: read.interfaces.as_deref(),
                            process_count,
                            containers,
                        };
                        convert::pod_stats(pod, reading, timestamp)
                    })
                    .collect();
                Arc::new(stats)
            })
            .await?;
        Ok(stats.as_ref().clone())
    }

    /// The descriptors of what [`Self::pod_metrics`] returns.
    pub fn metric_descriptors(&self) -> Vec<cri_api::v1::MetricDescriptor> {
        metric_descriptors()
    }

    /// cAdvisor-named metrics of `pods` and their containers.
    pub async fn pod_metrics(
        self: &Arc<Self>,
        pods: Vec<PodTarget>,
    ) -> Result<Vec<PodSandboxMetrics>> {
        let this = Arc::clone(self);
        let metrics = self
            .metric_flights
            .run(pod_key(&pods), async move {
                let reads = this.read_pods(&pods).await;
                let now = this.clock.now();
                let timestamp = unix_nanos(now);
                let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                let metrics = pods
                    .iter()
                    .zip(reads)
                    .map(|(pod, read)| {
                        let names = pod.name_and_namespace();
                        let network = read.interfaces.as_deref().unwrap_or_default();
                        let container_metrics = pod
                            .containers
                            .iter()
                            .zip(&read.containers)
                            .map(|(t, cgroup)| {
                                let layer = this.fs.get(&t.id).and_then(|(usage, mount)| {
                                    Some((usage?, mount.display().to_string()))
                                });
                                cri_metrics::container_metrics(
                                    names,
                                    t,
                                    cgroup.as_ref(),
                                    layer,
                                    now_secs,
                                    timestamp,
                                )
                            })
                            .collect();
                        PodSandboxMetrics {
                            pod_sandbox_id: pod.id.clone(),
                            metrics: cri_metrics::pod_network_metrics(
                                names, &pod.id, network, timestamp,
                            ),
                            container_metrics,
                        }
                    })
                    .collect();
                Arc::new(metrics)
            })
            .await?;
        Ok(metrics.as_ref().clone())
    }

    fn one_container(
        &self,
        t: &ContainerTarget,
        cgroup: Option<&CgroupStats>,
        now: SystemTime,
    ) -> ContainerStats {
        let nano_cores = cgroup
            .and_then(|c| c.cpu)
            .map_or(0, |cpu| self.cpu.update(&t.id, cpu.usage_ns, now));
        let layer = self
            .fs
            .get(&t.id)
            .map(|(usage, mount)| convert::writable_layer(usage, &mount));
        convert::container_stats(t, cgroup, nano_cores, layer, unix_nanos(now))
    }

    /// Reads every cgroup once, in one blocking task; a missing or
    /// unreadable cgroup is `None`.
    async fn read_cgroups(&self, paths: Vec<Option<CgroupPath>>) -> Vec<Option<CgroupStats>> {
        let count = paths.len();
        let reader = Arc::clone(&self.cgroups);
        let read = tokio::task::spawn_blocking(move || {
            paths
                .iter()
                .map(|p| {
                    let path = p.as_ref()?;
                    match reader.read(path) {
                        Ok(stats) => Some(stats),
                        Err(e) if e.is_not_found() => {
                            tracing::debug!(cgroup = %path, "cgroup gone");
                            None
                        }
                        Err(e) => {
                            tracing::warn!(cgroup = %path, error = %e, "read cgroup stats");
                            None
                        }
                    }
                })
                .collect()
        })
        .await;
        read.unwrap_or_else(|_| vec![None; count])
    }

    /// Reads each pod's cgroup, its containers' cgroups and its netns once.
    async fn read_pods(&self, pods: &[PodTarget]) -> Vec<PodRead> {
        let mut paths = Vec::new();
        for pod in pods {
            paths.push(pod.cgroup.clone());
            paths.extend(pod.containers.iter().map(|c| c.cgroup.clone()));
        }
        let netns: Vec<PathBuf> = pods.iter().filter_map(|p| p.netns.clone()).collect();
        let (cgroups, interfaces) = tokio::join!(
            self.read_cgroups(paths),
            self.netns.interfaces(netns.clone())
        );
        let mut cgroups = cgroups.into_iter();
        let mut interfaces = netns.iter().zip(interfaces);
        pods.iter()
            .map(|pod| PodRead {
                cgroup: cgroups.next().flatten(),
                containers: cgroups.by_ref().take(pod.containers.len()).collect(),
                interfaces: pod.netns.as_ref().and_then(|_| {
                    let (path, result) = interfaces.next()?;
                    result
                        .map_err(|e| tracing::debug!(netns = %path.display(), error = %e, "no network stats"))
                        .ok()
                }),
            })
            .collect()
    }
}

/// Identical requests name the same pods and containers.
fn pod_key(pods: &[PodTarget]) -> Key {
    pods.iter()
        .flat_map(|p| std::iter::once(&p.id).chain(p.containers.iter().map(|c| &c.id)))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_support;
