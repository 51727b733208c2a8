//! The CRI workloads, each run once per round on one endpoint and timed
//! per call: critest's benchmark shapes (pod lifecycle, container
//! lifecycle, image pull/status/list/remove), storms of status and list
//! calls at growing numbers of containers, the stats RPCs over running
//! containers, pods started in parallel, and the memory a large
//! annotation leaves behind. The drivers alternate the endpoints, first
//! A then B, then B then A, so drift on a busy machine hits both.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cri_api::v1::runtime_service_client::RuntimeServiceClient;
use cri_api::v1::*;
use futures::stream::{self, StreamExt, TryStreamExt};
use prost::Message;
use tonic::transport::Channel;

use super::report::{Group, Report, Unit};
use super::{image_spec, pod_config, sleep_container, BenchImages, Endpoint, PodNetwork};

/// How much of each workload to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Rounds of the alternating workloads.
    pub rounds: usize,
    /// Pod and container lifecycles per round and side.
    pub lifecycles: usize,
    /// Image pull/status/list/remove cycles per round and side.
    pub image_cycles: usize,
    /// Container counts of the status and list storms, ascending.
    pub storm_scales: Vec<usize>,
    /// Calls of each RPC per storm, round and side.
    pub storm_calls: usize,
    /// Pods and containers per pod of the stats workload (running).
    pub stats_pods: usize,
    pub stats_containers_per_pod: usize,
    /// Calls of each stats RPC per round and side.
    pub stats_calls: usize,
    /// Pods started at once.
    pub parallel_pods: usize,
    /// Pods with a large annotation created and removed per side.
    pub annotation_pods: usize,
    /// The annotation's size in bytes.
    pub annotation_bytes: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            rounds: 3,
            lifecycles: 10,
            image_cycles: 10,
            storm_scales: vec![100, 500, 1000],
            storm_calls: 100,
            // The performance issue's scale: the kubelet's default
            // max-pods, three containers each.
            stats_pods: 110,
            stats_containers_per_pod: 3,
            stats_calls: 20,
            parallel_pods: 10,
            annotation_pods: 3,
            annotation_bytes: 1 << 20,
        }
    }
}

/// Containers per pod in the storm sets.
const STORM_CONTAINERS_PER_POD: usize = 10;
/// Setup calls in flight per endpoint.
const SETUP_PARALLELISM: usize = 4;

/// The endpoint order of `round`: A, B on even rounds, B, A on odd ones.
pub fn order(round: usize, sides: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..sides).collect();
    if round % 2 == 1 {
        order.reverse();
    }
    order
}

/// Times calls on one side and records them in a group of the report.
struct Timer<'r> {
    report: &'r mut Report,
    side: usize,
    group: Group,
}

impl Timer<'_> {
    /// Times `call`, records it as `name` and returns its answer.
    async fn call<T, F>(&mut self, name: &str, call: F) -> Result<T>
    where
        F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let started = Instant::now();
        let answer = call.await;
        let took = started.elapsed();
        let answer = answer.with_context(|| name.to_owned())?;
        self.report.time(self.side, self.group, name, took);
        Ok(answer.into_inner())
    }

    /// A kubelet relist: ListContainers, then ListPodSandbox, unfiltered.
    async fn relist(
        &mut self,
        rt: &mut RuntimeServiceClient<Channel>,
        containers: &str,
        pods: &str,
    ) -> Result<()> {
        let list = ListContainersRequest::default();
        self.call(containers, rt.list_containers(list)).await?;
        let list = ListPodSandboxRequest::default();
        self.call(pods, rt.list_pod_sandbox(list)).await?;
        Ok(())
    }
}

/// critest's pod and container lifecycles: a pod on the CNI network,
/// its status, a container created, started, inspected, stopped and
/// removed in it, then the pod stopped and removed; every call timed.
pub async fn lifecycle(
    ep: &mut Endpoint,
    side: usize,
    report: &mut Report,
    images: &BenchImages,
    n: usize,
) -> Result<()> {
    let mut t = Timer {
        report,
        side,
        group: Group::Critest,
    };
    let rt = &mut ep.runtime;
    for _ in 0..n {
        let config = pod_config("life", PodNetwork::Cni);
        let run = RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        };
        let pod = t
            .call("RunPodSandbox", rt.run_pod_sandbox(run))
            .await?
            .pod_sandbox_id;
        let status = PodSandboxStatusRequest {
            pod_sandbox_id: pod.clone(),
            verbose: false,
        };
        t.call("PodSandboxStatus", rt.pod_sandbox_status(status))
            .await?;
        let create = CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(sleep_container("sleep", &images.container)),
            sandbox_config: Some(config),
        };
        let id = t
            .call("CreateContainer", rt.create_container(create))
            .await?
            .container_id;
        let start = StartContainerRequest {
            container_id: id.clone(),
        };
        t.call("StartContainer", rt.start_container(start)).await?;
        let status = ContainerStatusRequest {
            container_id: id.clone(),
            verbose: false,
        };
        t.call("ContainerStatus", rt.container_status(status))
            .await?;
        let stop = StopContainerRequest {
            container_id: id.clone(),
            timeout: 0,
        };
        t.call("StopContainer", rt.stop_container(stop)).await?;
        let remove = RemoveContainerRequest { container_id: id };
        t.call("RemoveContainer", rt.remove_container(remove))
            .await?;
        let stop = StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        };
        t.call("StopPodSandbox", rt.stop_pod_sandbox(stop)).await?;
        let remove = RemovePodSandboxRequest {
            pod_sandbox_id: pod,
        };
        t.call("RemovePodSandbox", rt.remove_pod_sandbox(remove))
            .await?;
    }
    Ok(())
}

/// critest's image operations on an image that is present: pull (it is
/// there), status, list, remove; then a timed pull of the now absent
/// image brings it back.
pub async fn image_cycle(
    ep: &mut Endpoint,
    side: usize,
    report: &mut Report,
    image: &str,
    n: usize,
) -> Result<()> {
    ep.ensure_image(image).await?;
    let mut t = Timer {
        report,
        side,
        group: Group::Critest,
    };
    let img = &mut ep.images;
    let pull = || PullImageRequest {
        image: Some(image_spec(image)),
        ..PullImageRequest::default()
    };
    for _ in 0..n {
        t.call("PullImage (present)", img.pull_image(pull()))
            .await?;
        let status = ImageStatusRequest {
            image: Some(image_spec(image)),
            verbose: false,
        };
        t.call("ImageStatus", img.image_status(status)).await?;
        t.call("ListImages", img.list_images(ListImagesRequest::default()))
            .await?;
        let remove = RemoveImageRequest {
            image: Some(image_spec(image)),
        };
        t.call("RemoveImage", img.remove_image(remove)).await?;
        t.group = Group::Other;
        t.call("PullImage (small, absent)", img.pull_image(pull()))
            .await?;
        t.group = Group::Critest;
    }
    Ok(())
}

/// `n` pods on the CNI network, each with a running container, started
/// at once; records the wall time until all run, then removes them.
pub async fn parallel_start(
    ep: &mut Endpoint,
    side: usize,
    report: &mut Report,
    images: &BenchImages,
    n: usize,
) -> Result<()> {
    let started = Instant::now();
    let pods = stream::iter(0..n)
        .map(|_| {
            let mut ep = ep.clone();
            async move { start_pod(&mut ep, PodNetwork::Cni, 1, true, &images.container).await }
        })
        .buffer_unordered(n.max(1))
        .try_collect::<Vec<_>>()
        .await?;
    report.time(
        side,
        Group::Other,
        &format!("{n} pods started in parallel (wall)"),
        started.elapsed(),
    );
    remove_pods(ep, pods.iter().map(|p| p.id.clone())).await
}

/// A pod with its containers.
#[derive(Debug, Clone)]
pub struct PodSet {
    pub id: String,
    pub containers: Vec<String>,
}

/// Runs a pod with `containers` `sleep` containers, started when `start`.
pub async fn start_pod(
    ep: &mut Endpoint,
    network: PodNetwork,
    containers: usize,
    start: bool,
    image: &str,
) -> Result<PodSet> {
    let config = pod_config("bench", network);
    let rt = &mut ep.runtime;
    let id = rt
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .with_context(|| format!("{}: run pod", ep.name))?
        .into_inner()
        .pod_sandbox_id;
    let mut ids = Vec::with_capacity(containers);
    for i in 0..containers {
        let container = rt
            .create_container(CreateContainerRequest {
                pod_sandbox_id: id.clone(),
                config: Some(sleep_container(&format!("sleep-{i}"), image)),
                sandbox_config: Some(config.clone()),
            })
            .await
            .with_context(|| format!("{}: create container", ep.name))?
            .into_inner()
            .container_id;
        if start {
            rt.start_container(StartContainerRequest {
                container_id: container.clone(),
            })
            .await
            .with_context(|| format!("{}: start container", ep.name))?;
        }
        ids.push(container);
    }
    Ok(PodSet {
        id,
        containers: ids,
    })
}

/// Stops and removes `pods` (a few at a time).
pub async fn remove_pods(ep: &Endpoint, pods: impl IntoIterator<Item = String>) -> Result<()> {
    stream::iter(pods)
        .map(|pod| {
            let mut rt = ep.runtime.clone();
            async move {
                rt.stop_pod_sandbox(StopPodSandboxRequest {
                    pod_sandbox_id: pod.clone(),
                })
                .await?;
                rt.remove_pod_sandbox(RemovePodSandboxRequest {
                    pod_sandbox_id: pod,
                })
                .await?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(SETUP_PARALLELISM)
        .try_collect::<Vec<_>>()
        .await
        .with_context(|| format!("{}: remove pods", ep.name))?;
    Ok(())
}

/// Removes every pod the benchmark made on `ep` (namespace `cri-bench`),
/// e.g. what a failed workload left.
pub async fn remove_bench_pods(ep: &mut Endpoint) -> Result<()> {
    let pods = ep
        .runtime
        .list_pod_sandbox(ListPodSandboxRequest { filter: None })
        .await?
        .into_inner()
        .items;
    let ours = pods
        .into_iter()
        .filter(|p| {
            p.metadata
                .as_ref()
                .is_some_and(|m| m.namespace == "cri-bench")
        })
        .map(|p| p.id);
    remove_pods(ep, ours).await
}

/// Grows `sets` with pods of `per_pod` containers until they hold at
/// least `containers` containers.
pub async fn grow(
    ep: &Endpoint,
    sets: &mut Vec<PodSet>,
    containers: usize,
    per_pod: usize,
    start: bool,
    image: &str,
) -> Result<()> {
    let have: usize = sets.iter().map(|s| s.containers.len()).sum();
    let pods = containers.saturating_sub(have).div_ceil(per_pod.max(1));
    let new = stream::iter(0..pods)
        .map(|_| {
            let mut ep = ep.clone();
            async move { start_pod(&mut ep, PodNetwork::Host, per_pod, start, image).await }
        })
        .buffer_unordered(SETUP_PARALLELISM)
        .try_collect::<Vec<_>>()
        .await?;
    sets.extend(new);
    Ok(())
}

/// One storm at the current scale: `calls` rounds of sequential
/// ListContainers, ListPodSandbox, ContainerStatus and PodSandboxStatus
/// calls (the status calls cycling over the ids), and Version: an RPC
/// that does nothing, the floor of a call on that endpoint.
pub async fn storm(
    ep: &mut Endpoint,
    side: usize,
    report: &mut Report,
    sets: &[PodSet],
    calls: usize,
) -> Result<()> {
    let scale: usize = sets.iter().map(|s| s.containers.len()).sum();
    let containers: Vec<&String> = sets.iter().flat_map(|s| &s.containers).collect();
    let names = [
        "ListContainers",
        "ListPodSandbox",
        "ContainerStatus",
        "PodSandboxStatus",
        "Version",
    ]
    .map(|rpc| format!("{rpc} @{scale}"));
    let mut t = Timer {
        report,
        side,
        group: Group::Other,
    };
    let rt = &mut ep.runtime;
    for i in 0..calls {
        let (Some(container), Some(pod)) = (
            containers.get(i % containers.len().max(1)),
            sets.get(i % sets.len().max(1)),
        ) else {
            break;
        };
        t.relist(rt, &names[0], &names[1]).await?;
        let status = ContainerStatusRequest {
            container_id: (*container).clone(),
            verbose: false,
        };
        t.call(&names[2], rt.container_status(status)).await?;
        let status = PodSandboxStatusRequest {
            pod_sandbox_id: pod.id.clone(),
            verbose: false,
        };
        t.call(&names[3], rt.pod_sandbox_status(status)).await?;
        t.call(&names[4], rt.version(VersionRequest::default()))
            .await?;
    }
    Ok(())
}

/// The stats RPCs and the kubelet's relist over running containers:
/// `calls` rounds of ListContainerStats, ListPodSandboxStats,
/// ListContainers and ListPodSandbox. An RPC the endpoint refuses is
/// noted and no longer called.
pub async fn stats(
    ep: &mut Endpoint,
    side: usize,
    report: &mut Report,
    sets: &[PodSet],
    calls: usize,
) -> Result<()> {
    let scale: usize = sets.iter().map(|s| s.containers.len()).sum();
    let pods = sets.len();
    let names = [
        format!("ListContainerStats @{scale} running"),
        format!("ListPodSandboxStats @{pods} pods"),
        format!("ListContainers @{scale} running"),
        format!("ListPodSandbox @{pods} pods"),
    ];
    let mut t = Timer {
        report,
        side,
        group: Group::Other,
    };
    let rt = &mut ep.runtime;
    let mut pod_stats = true;
    for _ in 0..calls {
        t.call(
            &names[0],
            rt.list_container_stats(ListContainerStatsRequest::default()),
        )
        .await?;
        if pod_stats {
            let request = ListPodSandboxStatsRequest::default();
            if let Err(e) = t.call(&names[1], rt.list_pod_sandbox_stats(request)).await {
                let key = format!("{} {}", ep.name, names[1]);
                t.report.note(&key, format!("{}: {e:#}", ep.name));
                pod_stats = false;
            }
        }
        t.relist(rt, &names[2], &names[3]).await?;
    }
    // The size of the relist's answers, which the kubelet reads every second.
    let containers = rt
        .list_containers(ListContainersRequest::default())
        .await?
        .into_inner();
    let pods = rt
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await?
        .into_inner();
    for (name, bytes) in [
        (&names[2], containers.encoded_len()),
        (&names[3], pods.encoded_len()),
    ] {
        let name = format!("{name}: answer size");
        t.report
            .value(side, Group::Other, Unit::KiB, &name, bytes as f64 / 1024.0);
    }
    Ok(())
}

/// The CRI daemon's RSS after `pods` pods with an annotation of `bytes`
/// bytes were each run and removed, minus its RSS before the first
/// (recorded per pod).
pub async fn annotation_memory(
    ep: &mut Endpoint,
    side: usize,
    report: &mut Report,
    pods: usize,
    bytes: usize,
) -> Result<()> {
    let Some(pids) = ep.pids.clone() else {
        return Ok(());
    };
    let settle = || tokio::time::sleep(Duration::from_millis(500));
    settle().await;
    let Some((before, _)) = pids.rss_mib() else {
        return Ok(());
    };
    let name = format!(
        "RSS growth after a pod with a {} KiB annotation, removed",
        bytes / 1024
    );
    for _ in 0..pods {
        let mut config = pod_config("annotated", PodNetwork::Host);
        config
            .annotations
            .insert("cri-bench/large".into(), "x".repeat(bytes));
        let id = ep
            .runtime
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: String::new(),
            })
            .await
            .context("run the annotated pod")?
            .into_inner()
            .pod_sandbox_id;
        remove_pods(ep, [id]).await?;
        settle().await;
        if let Some((after, _)) = pids.rss_mib() {
            report.value(side, Group::Other, Unit::MiB, &name, after - before);
        }
    }
    Ok(())
}

/// Records the RSS of the CRI process and of everything the CRI side
/// needs (with containerd) as `what`.
pub fn record_rss(ep: &Endpoint, side: usize, report: &mut Report, what: &str) {
    if let Some((cri, all)) = ep.pids.as_ref().and_then(|p| p.rss_mib()) {
        report.value(
            side,
            Group::Other,
            Unit::MiB,
            &format!("RSS {what}: CRI process"),
            cri,
        );
        report.value(
            side,
            Group::Other,
            Unit::MiB,
            &format!("RSS {what}: CRI process + containerd"),
            all,
        );
    }
}

/// Runs every RPC workload on `endpoints` (one or two), alternating, and
/// records into `report`. Returns with the stats workload's pods still
/// running (for a restart measurement); [`cleanup`] removes them. Pods
/// left by a failure are removed before the error is returned.
pub async fn run_all(
    endpoints: &mut [Endpoint],
    report: &mut Report,
    images: &BenchImages,
    opts: &Options,
) -> Result<()> {
    for ep in endpoints.iter_mut() {
        ep.ensure_image(&images.container).await?;
        remove_bench_pods(ep).await?;
    }
    // Warm-up, not recorded: the sandbox image pulled, code paged in.
    let mut scratch = Report::new(report.sides().to_vec());
    for (side, ep) in endpoints.iter_mut().enumerate() {
        lifecycle(ep, side, &mut scratch, images, 1).await?;
        image_cycle(ep, side, &mut scratch, &images.image_ops, 1).await?;
    }
    for (side, ep) in endpoints.iter().enumerate() {
        record_rss(ep, side, report, "idle");
    }
    let result = run_phases(endpoints, report, images, opts).await;
    if result.is_err() {
        cleanup(endpoints).await;
    }
    result
}

/// Removes the benchmark's pods from every endpoint; failures are
/// printed, not returned.
pub async fn cleanup(endpoints: &mut [Endpoint]) {
    for ep in endpoints.iter_mut() {
        if let Err(e) = remove_bench_pods(ep).await {
            eprintln!("cri-bench: {}: cleanup: {e:#}", ep.name);
        }
    }
}

async fn run_phases(
    endpoints: &mut [Endpoint],
    report: &mut Report,
    images: &BenchImages,
    opts: &Options,
) -> Result<()> {
    let sides = endpoints.len();
    progress("pod and container lifecycles, image operations, parallel start");
    for round in 0..opts.rounds {
        // One lifecycle and one image cycle on each side in turn: a burst
        // of load on the machine (seconds long on a shared VM) then hits
        // both sides, not a whole round of one.
        for i in 0..opts.lifecycles.max(opts.image_cycles) {
            for side in order(round + i, sides) {
                let ep = &mut endpoints[side];
                if i < opts.lifecycles {
                    lifecycle(ep, side, report, images, 1).await?;
                }
                if i < opts.image_cycles {
                    image_cycle(ep, side, report, &images.image_ops, 1).await?;
                }
            }
        }
        for side in order(round, sides) {
            parallel_start(
                &mut endpoints[side],
                side,
                report,
                images,
                opts.parallel_pods,
            )
            .await?;
        }
    }
    progress("annotation memory");
    for side in order(0, sides) {
        annotation_memory(
            &mut endpoints[side],
            side,
            report,
            opts.annotation_pods,
            opts.annotation_bytes,
        )
        .await?;
    }

    let mut sets: Vec<Vec<PodSet>> = vec![Vec::new(); sides];
    for &scale in &opts.storm_scales {
        progress(&format!("status and list storms at {scale} containers"));
        grow_and_measure(
            endpoints,
            report,
            &mut sets,
            scale,
            Load::Storm,
            images,
            opts,
        )
        .await?;
    }
    for (ep, sets) in endpoints.iter().zip(sets.iter_mut()) {
        remove_pods(ep, sets.drain(..).map(|s| s.id)).await?;
    }
    let running = opts.stats_pods * opts.stats_containers_per_pod;
    progress(&format!(
        "stats at {running} running containers in {} pods",
        opts.stats_pods
    ));
    grow_and_measure(
        endpoints,
        report,
        &mut sets,
        running,
        Load::Stats,
        images,
        opts,
    )
    .await
}

/// What runs on a grown set of pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    /// [`storm`] over created containers.
    Storm,
    /// [`stats`] over running containers.
    Stats,
}

/// Grows each side's pods to `containers` containers (both sides at
/// once), runs `load` on them for every round, alternating, and records
/// each side's RSS at that scale.
async fn grow_and_measure(
    endpoints: &mut [Endpoint],
    report: &mut Report,
    sets: &mut [Vec<PodSet>],
    containers: usize,
    load: Load,
    images: &BenchImages,
    opts: &Options,
) -> Result<()> {
    let (per_pod, start, what) = match load {
        Load::Storm => (STORM_CONTAINERS_PER_POD, false, "created"),
        Load::Stats => (opts.stats_containers_per_pod, true, "running"),
    };
    let image = images.container.as_str();
    futures::future::try_join_all(
        endpoints
            .iter()
            .zip(sets.iter_mut())
            .map(|(ep, sets)| grow(ep, sets, containers, per_pod, start, image)),
    )
    .await?;
    for round in 0..opts.rounds {
        for side in order(round, endpoints.len()) {
            let (ep, set) = (&mut endpoints[side], &sets[side]);
            match load {
                Load::Storm => storm(ep, side, report, set, opts.storm_calls).await?,
                Load::Stats => stats(ep, side, report, set, opts.stats_calls).await?,
            }
        }
    }
    for (side, ep) in endpoints.iter().enumerate() {
        record_rss(
            ep,
            side,
            report,
            &format!("@{containers} {what} containers"),
        );
    }
    Ok(())
}

/// A progress line on stderr.
pub fn progress(what: &str) {
    eprintln!("cri-bench: {what}");
}
