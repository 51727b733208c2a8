//! Container and pod stats over the real socket, against real containerd,
//! runc and CNI: a container burning cpu and holding memory shows both, a
//! file written in the rootfs grows the writable layer (refreshed every
//! second), a stopped container or pod has no stats (NotFound, and left
//! out of the lists) and an ambiguous id prefix is an error, pod stats list
//! their containers and count network bytes after the host pings the pod,
//! and the id, prefix, sandbox and label filters select what they name.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cri_api::v1::runtime_service_client::RuntimeServiceClient;
use cri_api::v1::*;
use cri_tests::cri::{container_config, pod_config};
use cri_tests::{CriServer, Harness, ServerOptions};
use tonic::transport::Channel;

type Runtime = RuntimeServiceClient<Channel>;

/// Makes each test's cgroup parent unique within the process.
static NEXT_ENV: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

struct Env {
    harness: Harness,
    server: CriServer,
    rt: Runtime,
    logs: tempfile::TempDir,
    /// Dropped last, once the containers are gone.
    cgroups: CgroupCleanup,
}

/// The pods' cgroup parent, removed (in every hierarchy) on drop: runc
/// leaves the parents of container cgroups behind.
struct CgroupCleanup(String);

impl Drop for CgroupCleanup {
    fn drop(&mut self) {
        fn remove_tree(dir: &std::path::Path) {
            if let Ok(entries) = std::fs::read_dir(dir) {
                for entry in entries.flatten() {
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        remove_tree(&entry.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(dir);
        }
        let relative = self.0.trim_start_matches('/');
        if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
            for entry in entries.flatten() {
                remove_tree(&entry.path().join(relative));
            }
        }
        remove_tree(&PathBuf::from("/sys/fs/cgroup").join(relative));
    }
}

impl Env {
    async fn new() -> Result<Env> {
        let harness = Harness::start().await?;
        let server = harness
            .server(ServerOptions {
                cri_plugin_toml: "netns_mounts_under_state_dir = true\nstats_collect_period = 1\n"
                    .into(),
                ..ServerOptions::default()
            })
            .await?;
        server
            .image_client()
            .await?
            .pull_image(PullImageRequest {
                image: Some(ImageSpec {
                    image: harness.images.busybox.clone(),
                    ..ImageSpec::default()
                }),
                auth: None,
                sandbox_config: None,
            })
            .await?;
        let mut rt = server.runtime_client().await?;
        wait_ready(&mut rt).await?;
        Ok(Env {
            harness,
            server,
            rt,
            logs: tempfile::tempdir()?,
            cgroups: CgroupCleanup(format!(
                "/cri-stats-it-{}-{}",
                std::process::id(),
                NEXT_ENV.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            )),
        })
    }

    /// Runs a pod with its own network namespace on the test bridge.
    async fn pod(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Result<(String, PodSandboxConfig)> {
        let config = PodSandboxConfig {
            labels: map(labels),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: format!("{}/{name}", self.cgroups.0),
                ..LinuxPodSandboxConfig::default()
            }),
            ..pod_config(name, "stats-test", self.logs.path())
        };
        let id = self
            .rt
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            })
            .await
            .with_context(|| format!("run pod {name}\n{}", self.server.log()))?
            .into_inner()
            .pod_sandbox_id;
        Ok((id, config))
    }

    async fn run(
        &mut self,
        pod: &(String, PodSandboxConfig),
        name: &str,
        labels: &[(&str, &str)],
        script: &str,
    ) -> Result<String> {
        let config = ContainerConfig {
            labels: map(labels),
            log_path: format!("{name}.log"),
            ..container_config(name, &self.harness.images.busybox, &["sh", "-c", script])
        };
        let id = self
            .rt
            .create_container(CreateContainerRequest {
                pod_sandbox_id: pod.0.clone(),
                config: Some(config),
                sandbox_config: Some(pod.1.clone()),
            })
            .await
            .with_context(|| format!("create {name}\n{}", self.server.log()))?
            .into_inner()
            .container_id;
        self.rt
            .start_container(StartContainerRequest {
                container_id: id.clone(),
            })
            .await
            .with_context(|| format!("start {name}"))?;
        Ok(id)
    }

    async fn list_stats(
        &mut self,
        filter: Option<ContainerStatsFilter>,
    ) -> Result<Vec<ContainerStats>> {
        Ok(self
            .rt
            .list_container_stats(ListContainerStatsRequest { filter })
            .await?
            .into_inner()
            .stats)
    }

    async fn container_stats(&mut self, id: &str) -> Result<ContainerStats> {
        self.rt
            .container_stats(ContainerStatsRequest {
                container_id: id.into(),
            })
            .await?
            .into_inner()
            .stats
            .context("ContainerStats without stats")
    }

    async fn pod_stats(
        &mut self,
        filter: Option<PodSandboxStatsFilter>,
    ) -> Result<Vec<PodSandboxStats>> {
        Ok(self
            .rt
            .list_pod_sandbox_stats(ListPodSandboxStatsRequest { filter })
            .await?
            .into_inner()
            .stats)
    }
}

/// Waits until the server has recovered its state (it answers
/// `Unavailable` to everything but `Version` until then).
async fn wait_ready(rt: &mut Runtime) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match rt.list_pod_sandbox(ListPodSandboxRequest::default()).await {
            Err(e) if e.code() == tonic::Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            result => return result.map(|_| ()).context("server never became ready"),
        }
    }
}

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn id_of(stats: &ContainerStats) -> &str {
    stats.attributes.as_ref().map_or("", |a| a.id.as_str())
}

fn ids(stats: &[ContainerStats]) -> Vec<&str> {
    let mut ids: Vec<&str> = stats.iter().map(id_of).collect();
    ids.sort_unstable();
    ids
}

fn nano_cores(stats: &ContainerStats) -> u64 {
    stats
        .cpu
        .as_ref()
        .and_then(|c| c.usage_nano_cores.as_ref())
        .map_or(0, |v| v.value)
}

fn working_set(stats: &ContainerStats) -> u64 {
    stats
        .memory
        .as_ref()
        .and_then(|m| m.working_set_bytes.as_ref())
        .map_or(0, |v| v.value)
}

fn layer_bytes(stats: &ContainerStats) -> u64 {
    stats
        .writable_layer
        .as_ref()
        .and_then(|l| l.used_bytes.as_ref())
        .map_or(0, |v| v.value)
}

/// Polls `check` every 500 ms until it returns `Some`, at most `timeout`.
async fn eventually<T>(
    env: &mut Env,
    timeout: Duration,
    what: &str,
    mut check: impl FnMut(&[ContainerStats]) -> Option<T>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let stats = env.list_stats(None).await?;
        if let Some(found) = check(&stats) {
            return Ok(found);
        }
        if Instant::now() > deadline {
            bail!("{what} not seen within {timeout:?}; last stats: {stats:#?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

const MIB: u64 = 1024 * 1024;

#[tokio::test]
async fn container_stats_follow_cpu_memory_writes_and_filters() -> Result<()> {
    let mut env = Env::new().await?;
    let pod = env.pod("busy-pod", &[]).await?;
    let idle = env
        .run(&pod, "idle", &[("app", "idle")], "sleep 3600")
        .await?;
    // ~24 MiB held in a shell variable, 6 MiB written to the rootfs, then
    // a busy loop.
    let busy = env
        .run(
            &pod,
            "busy",
            &[("app", "busy")],
            "x=$(head -c 25000000 /dev/zero | tr '\\0' a); \
             dd if=/dev/zero of=/written bs=1M count=6 2>/dev/null; \
             while :; do :; done",
        )
        .await?;

    let busy_id = busy.clone();
    let (cores, memory, layer) = eventually(
        &mut env,
        Duration::from_secs(30),
        "busy container stats",
        |stats| {
            let s = stats.iter().find(|s| id_of(s) == busy_id)?;
            let seen = (nano_cores(s), working_set(s), layer_bytes(s));
            (seen.0 > 300_000_000 && seen.1 > 20 * MIB && seen.2 >= 6 * MIB).then_some(seen)
        },
    )
    .await?;
    let idle_stats = env.container_stats(&idle).await?;
    ensure!(
        nano_cores(&idle_stats) < 100_000_000,
        "idle container burns cpu: {idle_stats:?}"
    );
    ensure!(
        working_set(&idle_stats) < 10 * MIB && layer_bytes(&idle_stats) < MIB,
        "idle container: {idle_stats:?} (busy: cores {cores}, memory {memory}, layer {layer})"
    );
    let busy_stats = env.container_stats(&busy[..12]).await?;
    ensure!(
        id_of(&busy_stats) == busy,
        "ContainerStats by prefix: {busy_stats:?}"
    );
    let fs_id = busy_stats
        .writable_layer
        .as_ref()
        .and_then(|l| l.fs_id.as_ref())
        .map(|f| f.mountpoint.clone())
        .unwrap_or_default();
    ensure!(
        fs_id.contains("io.containerd.snapshotter.v1."),
        "fs id {fs_id:?}"
    );

    // Filters: id prefix, sandbox id (prefix), labels.
    let mut expected = vec![idle.as_str(), busy.as_str()];
    expected.sort_unstable();
    let filter = |id: &str, sandbox: &str, labels: &[(&str, &str)]| {
        Some(ContainerStatsFilter {
            id: id.into(),
            pod_sandbox_id: sandbox.into(),
            label_selector: map(labels),
        })
    };
    let all = env.list_stats(None).await?;
    ensure!(ids(&all) == expected, "unfiltered: {:?}", ids(&all));
    let by_sandbox = env.list_stats(filter("", &pod.0[..10], &[])).await?;
    ensure!(
        ids(&by_sandbox) == expected,
        "by sandbox: {:?}",
        ids(&by_sandbox)
    );
    let by_id = env.list_stats(filter(&idle[..10], "", &[])).await?;
    ensure!(ids(&by_id) == [idle.as_str()], "by id: {:?}", ids(&by_id));
    let by_label = env.list_stats(filter("", "", &[("app", "busy")])).await?;
    ensure!(
        ids(&by_label) == [busy.as_str()],
        "by label: {:?}",
        ids(&by_label)
    );
    let none = env.list_stats(filter("", "", &[("app", "nope")])).await?;
    ensure!(none.is_empty(), "unmatched label: {:?}", ids(&none));
    let other_sandbox = env.list_stats(filter("", "no-such-sandbox", &[])).await?;
    ensure!(
        other_sandbox.is_empty(),
        "unknown sandbox: {:?}",
        ids(&other_sandbox)
    );
    let missing = env
        .rt
        .container_stats(ContainerStatsRequest {
            container_id: "no-such-container".into(),
        })
        .await;
    ensure!(
        missing.as_ref().err().map(tonic::Status::code) == Some(tonic::Code::NotFound),
        "{missing:?}"
    );

    // An id prefix both containers share is ambiguous: an error, not a pick.
    let shared = busy
        .chars()
        .zip(idle.chars())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a)
        .collect::<String>();
    let ambiguous = env
        .rt
        .container_stats(ContainerStatsRequest {
            container_id: shared.clone(),
        })
        .await;
    ensure!(ambiguous.is_err(), "prefix {shared:?}: {ambiguous:?}");

    // Stopped: no task to measure, as in containerd: ContainerStats is
    // NotFound naming it, and the list has it without cpu or memory.
    env.rt
        .stop_container(StopContainerRequest {
            container_id: busy.clone(),
            timeout: 0,
        })
        .await?;
    let stopped = env
        .rt
        .container_stats(ContainerStatsRequest {
            container_id: busy.clone(),
        })
        .await;
    match &stopped {
        Err(status) => ensure!(
            status.code() == tonic::Code::NotFound
                && status.message().contains(busy.as_str())
                && status.message().contains("not running"),
            "{status:?}"
        ),
        Ok(answer) => bail!("stats of a stopped container: {answer:?}"),
    }
    let listed = env.list_stats(None).await?;
    let mut both = [busy.as_str(), idle.as_str()];
    both.sort_unstable();
    ensure!(ids(&listed) == both, "both listed: {:?}", ids(&listed));
    let exited = listed
        .iter()
        .find(|s| s.attributes.as_ref().is_some_and(|a| a.id == busy))
        .context("the stopped container's stats")?;
    ensure!(
        exited.cpu.is_none() && exited.memory.is_none() && exited.writable_layer.is_some(),
        "{exited:?}"
    );
    Ok(())
}

#[tokio::test]
async fn pod_stats_count_containers_network_and_filter() -> Result<()> {
    let mut env = Env::new().await?;
    let web = env.pod("web", &[("tier", "web")]).await?;
    let db = env.pod("db", &[("tier", "db")]).await?;
    let app = env.run(&web, "app", &[], "sleep 3600").await?;
    env.run(&db, "store", &[], "sleep 3600").await?;

    let ip = env
        .rt
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: web.0.clone(),
            verbose: false,
        })
        .await?
        .into_inner()
        .status
        .and_then(|s| s.network)
        .map(|n| n.ip)
        .context("pod without network status")?;
    let rx_of = |stats: &PodSandboxStats| {
        stats
            .linux
            .as_ref()
            .and_then(|l| l.network.as_ref())
            .and_then(|n| n.default_interface.as_ref())
            .and_then(|i| i.rx_bytes.as_ref())
            .map(|v| v.value)
    };
    let by_id = Some(PodSandboxStatsFilter {
        id: web.0[..10].into(),
        label_selector: HashMap::new(),
    });
    let before = env.pod_stats(by_id.clone()).await?;
    ensure!(before.len() == 1, "by id prefix: {before:?}");
    let rx_before = rx_of(&before[0]).context("no eth0 counters")?;
    let ping = tokio::process::Command::new("busybox")
        .args(["ping", "-c", "5", "-i", "0.2", "-s", "1000", "-W", "2", &ip])
        .output()
        .await
        .context("run busybox ping on the host")?;
    ensure!(
        ping.status.success(),
        "ping {ip}: {}",
        String::from_utf8_lossy(&ping.stdout)
    );
    let after = env.pod_stats(by_id).await?;
    let rx_after = rx_of(&after[0]).context("no eth0 counters")?;
    ensure!(
        rx_after >= rx_before + 5 * 1000,
        "eth0 rx {rx_before} -> {rx_after} after 5 pings of 1000 bytes"
    );

    let linux = after[0].linux.clone().context("no linux stats")?;
    let containers: Vec<&str> = linux.containers.iter().map(id_of).collect();
    ensure!(
        containers == [app.as_str()],
        "pod containers {containers:?}"
    );
    let memory = linux
        .memory
        .and_then(|m| m.usage_bytes)
        .context("no pod memory from the cgroup parent")?;
    ensure!(memory.value > 0, "pod memory {memory:?}");
    ensure!(linux.cpu.is_some(), "no pod cpu");
    let processes = linux
        .process
        .and_then(|p| p.process_count)
        .context("no process count")?;
    ensure!(processes.value >= 1, "process count {processes:?}");

    let one = env
        .rt
        .pod_sandbox_stats(PodSandboxStatsRequest {
            pod_sandbox_id: db.0.clone(),
        })
        .await?
        .into_inner()
        .stats
        .context("PodSandboxStats without stats")?;
    ensure!(one.attributes.as_ref().map(|a| a.id.as_str()) == Some(db.0.as_str()));

    let pod_ids = |stats: &[PodSandboxStats]| {
        let mut ids: Vec<String> = stats
            .iter()
            .filter_map(|s| s.attributes.as_ref().map(|a| a.id.clone()))
            .collect();
        ids.sort_unstable();
        ids
    };
    let by_label = env
        .pod_stats(Some(PodSandboxStatsFilter {
            id: String::new(),
            label_selector: map(&[("tier", "db")]),
        }))
        .await?;
    ensure!(
        pod_ids(&by_label) == [db.0.as_str()],
        "by label: {:?}",
        pod_ids(&by_label)
    );
    let mut both = vec![web.0.clone(), db.0.clone()];
    both.sort_unstable();
    ensure!(pod_ids(&env.pod_stats(None).await?) == both);

    let metrics = env
        .rt
        .list_pod_sandbox_metrics(ListPodSandboxMetricsRequest {})
        .await?
        .into_inner()
        .pod_metrics;
    let web_metrics = metrics
        .iter()
        .find(|m| m.pod_sandbox_id == web.0)
        .context("no metrics for the web pod")?;
    ensure!(
        web_metrics
            .container_metrics
            .iter()
            .any(|c| c.container_id == app),
        "{web_metrics:?}"
    );

    // Only READY sandboxes are listed.
    env.rt
        .stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: db.0.clone(),
        })
        .await?;
    let listed = pod_ids(&env.pod_stats(None).await?);
    ensure!(listed == [web.0.as_str()], "listed after stop: {listed:?}");
    // And a stopped pod's own stats are NotFound, naming it.
    let stopped = env
        .rt
        .pod_sandbox_stats(PodSandboxStatsRequest {
            pod_sandbox_id: db.0.clone(),
        })
        .await;
    match &stopped {
        Err(status) => ensure!(
            status.code() == tonic::Code::NotFound
                && status.message().contains(db.0.as_str())
                && status.message().contains("not ready"),
            "{status:?}"
        ),
        Ok(answer) => bail!("stats of a stopped pod: {answer:?}"),
    }
    Ok(())
}
