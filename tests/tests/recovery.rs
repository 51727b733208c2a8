//! Restart recovery against a real containerd, runc, CNI bridge and
//! registry: cri-server killed with SIGKILL (a container exiting while it
//! is down) and containerd restarted under it both keep every pod and
//! container with the same ids, states, exit codes, reasons and log
//! files, and exec (ExecSync, and streaming SPDY exec after SIGKILL) into
//! a recovered running container works; a corrupt metadata extension degrades one container without
//! blocking start-up; a kill in the middle of a burst of RunPodSandbox
//! leaves only whole pods. Each scenario ends by removing everything and
//! checking that no netns, mount, containerd object, snapshot, IP or dir
//! is left.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cri_api::v1::runtime_service_client::RuntimeServiceClient;
use cri_api::v1::*;
use cri_streaming::client::{connect_spdy, exec_spdy, ExecInput, Upgrade};
use cri_tests::cri::{dir_names, server_log_tail};
use cri_tests::{CriServer, Harness, ServerOptions};
use nix::sys::signal::Signal;
use tonic::transport::Channel;
use tonic::Code;

type Client = RuntimeServiceClient<Channel>;

/// netns pins under the server's state dir, so leftovers are visible.
const PLUGIN_TOML: &str = "netns_mounts_under_state_dir = true\n";
/// Prints a numbered tick every 0.2s; exits 7 on SIGTERM.
const TICKER: &str =
    "trap 'echo got-term; exit 7' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done";
const READY_TIMEOUT: Duration = Duration::from_secs(60);

struct Env {
    harness: Harness,
    server: CriServer,
    logs: tempfile::TempDir,
}

/// A pod with a running ticker and a container that exited with 3.
#[derive(Debug, Clone)]
struct Pod {
    name: String,
    id: String,
    config: PodSandboxConfig,
    runner: String,
    exiter: String,
}

impl Env {
    async fn new() -> Result<Env> {
        let harness = Harness::start().await?;
        let server = harness
            .server(ServerOptions {
                cri_plugin_toml: PLUGIN_TOML.into(),
                ..ServerOptions::default()
            })
            .await?;
        let env = Env {
            harness,
            server,
            logs: tempfile::tempdir()?,
        };
        env.server
            .image_client()
            .await?
            .pull_image(PullImageRequest {
                image: Some(ImageSpec {
                    image: env.harness.images.busybox.clone(),
                    ..ImageSpec::default()
                }),
                auth: None,
                sandbox_config: None,
            })
            .await?;
        Ok(env)
    }

    /// A client once the server has recovered: ListPodSandbox answers
    /// (it is `Unavailable` while recovering).
    async fn client(&self) -> Result<Client> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let mut client = self.server.runtime_client().await?;
            match client
                .list_pod_sandbox(ListPodSandboxRequest { filter: None })
                .await
            {
                Ok(_) => return Ok(client),
                Err(s) if s.code() == Code::Unavailable && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(s) => bail!(
                    "server not ready: {s:?}\n{}",
                    server_log_tail(&self.server, 60)
                ),
            }
        }
    }

    fn pod_config(&self, name: &str) -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid: format!("uid-{name}-{}", std::process::id()),
                namespace: "recovery-test".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            log_directory: self.logs.path().join(name).display().to_string(),
            ..PodSandboxConfig::default()
        }
    }

    fn container(&self, name: &str, script: &str) -> ContainerConfig {
        ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: self.harness.images.busybox.clone(),
                ..ImageSpec::default()
            }),
            args: vec!["sh".into(), "-c".into(), script.into()],
            log_path: format!("{name}/0.log"),
            ..ContainerConfig::default()
        }
    }

    fn log_path(&self, pod: &str, container: &str) -> PathBuf {
        self.logs.path().join(pod).join(container).join("0.log")
    }

    async fn run_container(
        &self,
        rt: &mut Client,
        pod: &str,
        config: &PodSandboxConfig,
        container: ContainerConfig,
    ) -> Result<String> {
        let id = rt
            .create_container(CreateContainerRequest {
                pod_sandbox_id: pod.into(),
                config: Some(container),
                sandbox_config: Some(config.clone()),
            })
            .await
            .with_context(|| format!("create\n{}", server_log_tail(&self.server, 60)))?
            .into_inner()
            .container_id;
        rt.start_container(StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .with_context(|| format!("start {id}\n{}", server_log_tail(&self.server, 60)))?;
        Ok(id)
    }

    /// `n` pods, each with a ticker and a container that exited with 3.
    async fn start_pods(&self, rt: &mut Client, n: usize) -> Result<Vec<Pod>> {
        let mut pods = Vec::new();
        for i in 0..n {
            let name = format!("pod{i}");
            let config = self.pod_config(&name);
            let id = rt
                .run_pod_sandbox(RunPodSandboxRequest {
                    config: Some(config.clone()),
                    runtime_handler: String::new(),
                })
                .await
                .with_context(|| format!("run {name}\n{}", server_log_tail(&self.server, 60)))?
                .into_inner()
                .pod_sandbox_id;
            let runner = self
                .run_container(rt, &id, &config, self.container("runner", TICKER))
                .await?;
            let exiter = self
                .run_container(
                    rt,
                    &id,
                    &config,
                    self.container("exiter", "echo bye; exit 3"),
                )
                .await?;
            pods.push(Pod {
                name,
                id,
                config,
                runner,
                exiter,
            });
        }
        for pod in &pods {
            let status = wait_state(rt, &pod.exiter, ContainerState::ContainerExited).await?;
            ensure!(status.exit_code == 3, "{status:?}");
        }
        Ok(pods)
    }

    /// Stops and removes every listed pod; then nothing may be left.
    async fn remove_everything(&self, rt: &mut Client) -> Result<()> {
        for pod in list_pods(rt).await? {
            rt.stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: pod.id.clone(),
            })
            .await
            .with_context(|| format!("stop {}\n{}", pod.id, server_log_tail(&self.server, 60)))?;
            rt.remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: pod.id.clone(),
            })
            .await
            .with_context(|| format!("remove {}\n{}", pod.id, server_log_tail(&self.server, 60)))?;
        }
        ensure!(list_pods(rt).await?.is_empty(), "pods left");
        ensure!(list_containers(rt).await?.is_empty(), "containers left");
        self.check_nothing_left().await
    }

    /// No netns pin, mount, containerd container, task or active
    /// snapshot, allocated IP, or container or sandbox dir is left.
    async fn check_nothing_left(&self) -> Result<()> {
        let netns = dir_names(&self.server.state_dir().join("netns"));
        ensure!(netns.is_empty(), "netns pins left: {netns:?}");
        let dir = self.server.dir().display().to_string();
        let mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")?
            .lines()
            .filter(|l| l.contains(&dir))
            .map(str::to_owned)
            .collect();
        ensure!(mounts.is_empty(), "mounts left: {mounts:#?}");
        let ctr = &self.harness.containerd;
        let containers = ctr.ctr_ok(&["containers", "ls", "-q"]).await?;
        ensure!(
            containers.trim().is_empty(),
            "containers left:\n{containers}"
        );
        let tasks = ctr.ctr_ok(&["tasks", "ls", "-q"]).await?;
        ensure!(tasks.trim().is_empty(), "tasks left:\n{tasks}");
        let snapshots = ctr.ctr_ok(&["snapshots", "ls"]).await?;
        let active: Vec<&str> = snapshots.lines().filter(|l| l.contains("Active")).collect();
        ensure!(active.is_empty(), "snapshots left: {active:#?}");
        for base in [self.server.root_dir(), self.server.state_dir()] {
            for kind in ["containers", "sandboxes"] {
                let left = dir_names(&base.join(kind));
                ensure!(left.is_empty(), "{}/{kind} left: {left:?}", base.display());
            }
        }
        let network = self.server.network().context("no test network")?;
        let ips: Vec<String> = dir_names(&self.server.dir().join("cni-ipam").join(&network.name))
            .into_iter()
            .filter(|n| n.parse::<IpAddr>().is_ok())
            .collect();
        ensure!(ips.is_empty(), "IPs still allocated: {ips:?}");
        Ok(())
    }
}

async fn list_pods(rt: &mut Client) -> Result<Vec<PodSandbox>> {
    Ok(rt
        .list_pod_sandbox(ListPodSandboxRequest { filter: None })
        .await?
        .into_inner()
        .items)
}

async fn list_containers(rt: &mut Client) -> Result<Vec<Container>> {
    Ok(rt
        .list_containers(ListContainersRequest { filter: None })
        .await?
        .into_inner()
        .containers)
}

async fn status(rt: &mut Client, id: &str) -> Result<ContainerStatus> {
    rt.container_status(ContainerStatusRequest {
        container_id: id.into(),
        verbose: false,
    })
    .await?
    .into_inner()
    .status
    .context("no status")
}

/// The pid of a running container's process, from the verbose status.
async fn pid(rt: &mut Client, id: &str) -> Result<i32> {
    let response = rt
        .container_status(ContainerStatusRequest {
            container_id: id.into(),
            verbose: true,
        })
        .await?
        .into_inner();
    let info: serde_json::Value =
        serde_json::from_str(response.info.get("info").context("no info")?)?;
    let pid = info["pid"].as_i64().context("no pid")?;
    ensure!(pid > 0, "{info}");
    Ok(pid as i32)
}

async fn wait_state(rt: &mut Client, id: &str, want: ContainerState) -> Result<ContainerStatus> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = status(rt, id).await?;
        if s.state == want as i32 {
            return Ok(s);
        }
        ensure!(
            Instant::now() < deadline,
            "container {id} is {:?}, not {want:?}",
            s.state
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn line_count(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// The log at `path` grows within a few seconds.
async fn wait_log_grows(path: &Path) -> Result<()> {
    let before = line_count(path);
    let deadline = Instant::now() + Duration::from_secs(10);
    while line_count(path) <= before {
        ensure!(
            Instant::now() < deadline,
            "{} stuck at {before} lines",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Every pod and container is back with its id and state; `pods[0]`'s
/// ticker exited with 7 (SIGTERM) in the meantime, and its last words are
/// in its log if cri-server kept reading (`reader_stayed`: a container
/// that exits while nobody reads its FIFO takes its unread output with
/// it, in containerd too); logs keep flowing.
async fn check_recovered(
    env: &Env,
    rt: &mut Client,
    pods: &[Pod],
    reader_stayed: bool,
) -> Result<()> {
    let listed: BTreeSet<String> = list_pods(rt).await?.into_iter().map(|p| p.id).collect();
    let want: BTreeSet<String> = pods.iter().map(|p| p.id.clone()).collect();
    ensure!(listed == want, "pods {listed:?}, want {want:?}");
    for pod in list_pods(rt).await? {
        ensure!(pod.state == PodSandboxState::SandboxReady as i32, "{pod:?}");
    }
    let listed: BTreeSet<String> = list_containers(rt)
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect();
    let want: BTreeSet<String> = pods
        .iter()
        .flat_map(|p| [p.runner.clone(), p.exiter.clone()])
        .collect();
    ensure!(listed == want, "containers {listed:?}, want {want:?}");
    let exited = &pods[0];
    let s = wait_state(rt, &exited.runner, ContainerState::ContainerExited).await?;
    ensure!(
        s.exit_code == 7 && s.reason == "Error" && s.finished_at > s.started_at,
        "ticker that got SIGTERM while down: {s:?}"
    );
    if reader_stayed {
        let log = std::fs::read_to_string(env.log_path(&exited.name, "runner"))?;
        ensure!(log.contains("got-term"), "last words not in the log");
    }
    for pod in pods {
        let s = status(rt, &pod.exiter).await?;
        ensure!(
            s.state == ContainerState::ContainerExited as i32
                && s.exit_code == 3
                && s.reason == "Error",
            "{s:?}"
        );
        ensure!(s.log_path == env.log_path(&pod.name, "exiter").display().to_string());
        if pod.id != exited.id {
            let s = status(rt, &pod.runner).await?;
            ensure!(s.state == ContainerState::ContainerRunning as i32, "{s:?}");
        }
    }
    // Output after recovery lands in the same files.
    for pod in &pods[1..3] {
        wait_log_grows(&env.log_path(&pod.name, "runner")).await?;
    }
    Ok(())
}

/// ExecSync into the recovered running container `id` answers with its
/// output and exit code 0.
async fn check_exec_sync(env: &Env, rt: &mut Client, id: &str) -> Result<()> {
    let r = rt
        .exec_sync(ExecSyncRequest {
            container_id: id.into(),
            cmd: vec!["echo".into(), "recovered".into()],
            timeout: 10,
        })
        .await
        .with_context(|| format!("exec sync in {id}\n{}", server_log_tail(&env.server, 60)))?
        .into_inner();
    ensure!(
        r.exit_code == 0 && r.stdout == b"recovered\n" && r.stderr.is_empty(),
        "exec sync after recovery: {r:?}"
    );
    Ok(())
}

/// A streaming exec (SPDY, v4) into the recovered running container `id`:
/// stdin reaches the process, its output and non-zero exit code come back.
async fn check_streaming_exec(env: &Env, rt: &mut Client, id: &str) -> Result<()> {
    let url = rt
        .exec(ExecRequest {
            container_id: id.into(),
            cmd: vec![
                "sh".into(),
                "-c".into(),
                "read l; echo got:$l; exit 5".into(),
            ],
            tty: false,
            stdin: true,
            stdout: true,
            stderr: true,
        })
        .await
        .with_context(|| format!("exec in {id}\n{}", server_log_tail(&env.server, 60)))?
        .into_inner()
        .url;
    let (session, protocol) = match connect_spdy(&url, &["v4.channel.k8s.io"], &[]).await? {
        Upgrade::Spdy(session, _incoming, protocol) => (session, protocol),
        Upgrade::Refused(r) => bail!("upgrade refused: {} {}", r.status, r.body),
    };
    let input = ExecInput {
        stdin: Some(b"ping\n".to_vec()),
        stdout: true,
        stderr: true,
        ..ExecInput::default()
    };
    let out = tokio::time::timeout(Duration::from_secs(30), exec_spdy(session, protocol, input))
        .await
        .context("streaming exec timed out")??;
    ensure!(out.stdout == b"got:ping\n", "{out:?}");
    let text = out.error_text();
    ensure!(
        text.contains("NonZeroExitCode") && text.contains("\"5\""),
        "exit code not reported: {text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_and_restart_keep_every_pod_container_state_and_log() -> Result<()> {
    let started = Instant::now();
    let mut env = Env::new().await?;
    let mut rt = env.client().await?;
    let pods = env.start_pods(&mut rt, 10).await?;
    let ticker = pid(&mut rt, &pods[0].runner).await?;
    eprintln!("10 pods up after {:?}", started.elapsed());

    env.server.signal(Signal::SIGKILL)?;
    env.server.wait_exit(Duration::from_secs(10)).await?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(ticker), Signal::SIGTERM)?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let restarted = Instant::now();
    env.server.restart().await?;
    let mut rt = env.client().await?;
    eprintln!("recovered in {:?}", restarted.elapsed());
    check_recovered(&env, &mut rt, &pods, false).await?;
    // Exec still works in a recovered running container.
    check_exec_sync(&env, &mut rt, &pods[1].runner).await?;
    check_streaming_exec(&env, &mut rt, &pods[1].runner).await?;
    // The stats of recovered containers still report their writable layer.
    let stats = rt
        .list_container_stats(ListContainerStatsRequest { filter: None })
        .await?
        .into_inner()
        .stats;
    ensure!(
        !stats.is_empty() && stats.iter().all(|s| s.writable_layer.is_some()),
        "writable layers after the restart: {stats:?}"
    );
    // The name of a recovered pod is still reserved.
    let again = rt
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(pods[1].config.clone()),
            runtime_handler: String::new(),
        })
        .await;
    ensure!(again.is_err(), "a recovered pod's name was free: {again:?}");

    env.remove_everything(&mut rt).await?;
    eprintln!("done after {:?}", started.elapsed());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_restart_keeps_every_pod_container_state_and_log() -> Result<()> {
    let started = Instant::now();
    let mut env = Env::new().await?;
    let mut rt = env.client().await?;
    let pods = env.start_pods(&mut rt, 10).await?;
    let ticker = pid(&mut rt, &pods[0].runner).await?;

    env.harness.containerd.stop().await?;
    // Served from memory while containerd is down.
    ensure!(list_containers(&mut rt).await?.len() == 20);
    ensure!(list_pods(&mut rt).await?.len() == 10);
    let s = status(&mut rt, &pods[1].runner).await?;
    ensure!(s.state == ContainerState::ContainerRunning as i32, "{s:?}");
    // What needs containerd is Unavailable, and changes nothing.
    let stop = rt
        .stop_container(StopContainerRequest {
            container_id: pods[2].runner.clone(),
            timeout: 0,
        })
        .await;
    ensure!(
        stop.as_ref().is_err_and(|s| s.code() == Code::Unavailable),
        "StopContainer with containerd down: {stop:?}"
    );
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(ticker), Signal::SIGTERM)?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    env.harness.containerd.start_again().await?;

    check_recovered(&env, &mut rt, &pods, true).await?;
    check_exec_sync(&env, &mut rt, &pods[1].runner).await?;
    // New work goes through the reconnected client.
    let late = env
        .run_container(
            &mut rt,
            &pods[1].id,
            &pods[1].config,
            env.container("late", "echo late"),
        )
        .await?;
    let s = wait_state(&mut rt, &late, ContainerState::ContainerExited).await?;
    ensure!(s.exit_code == 0, "{s:?}");

    env.remove_everything(&mut rt).await?;
    eprintln!("done after {:?}", started.elapsed());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_extension_degrades_one_container_only() -> Result<()> {
    let mut env = Env::new().await?;
    let mut rt = env.client().await?;
    let config = env.pod_config("corrupt");
    let pod = rt
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await?
        .into_inner()
        .pod_sandbox_id;
    let good = env
        .run_container(&mut rt, &pod, &config, env.container("good", TICKER))
        .await?;
    let bad = env
        .run_container(&mut rt, &pod, &config, env.container("bad", TICKER))
        .await?;

    env.server.signal(Signal::SIGKILL)?;
    env.server.wait_exit(Duration::from_secs(10)).await?;
    let containerd = cri_containerd::connect_lazy(env.harness.containerd.socket(), "k8s.io")?;
    let mut record = containerd.containers.get(&bad).await?;
    let extension = record
        .extensions
        .get_mut("io.cri-containerd.container.metadata")
        .context("no metadata extension")?;
    extension.value = b"{\"Version\":\"v1\",\"Metadata\":{broken".to_vec();
    containerd
        .containers
        .update(record, vec!["extensions".into()])
        .await?;

    env.server.restart().await?;
    let mut rt = env.client().await?;
    let listed: BTreeSet<String> = list_containers(&mut rt)
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect();
    ensure!(
        listed == BTreeSet::from([good.clone(), bad.clone()]),
        "{listed:?}"
    );
    let s = status(&mut rt, &bad).await?;
    ensure!(s.state == ContainerState::ContainerUnknown as i32, "{s:?}");
    let s = status(&mut rt, &good).await?;
    ensure!(s.state == ContainerState::ContainerRunning as i32, "{s:?}");
    wait_log_grows(&env.log_path("corrupt", "good")).await?;
    ensure!(
        env.server
            .log()
            .lines()
            .any(|l| l.contains(&bad) && l.contains("cannot load container metadata")),
        "the bad record is not logged with its id"
    );
    let pods = list_pods(&mut rt).await?;
    ensure!(
        pods.len() == 1 && pods[0].state == PodSandboxState::SandboxReady as i32,
        "{pods:?}"
    );

    rt.remove_container(RemoveContainerRequest {
        container_id: bad.clone(),
    })
    .await
    .with_context(|| {
        format!(
            "remove the degraded container\n{}",
            server_log_tail(&env.server, 60)
        )
    })?;
    let left = env
        .harness
        .containerd
        .ctr_ok(&["containers", "ls", "-q"])
        .await?;
    ensure!(!left.contains(&bad), "{left}");
    env.remove_everything(&mut rt).await
}

/// When a burst round kills the server.
#[derive(Debug, Clone, Copy)]
enum KillWhen {
    /// At least this many netns pins exist (CNI and creates in flight).
    NetnsPins(usize),
    /// At least this many RunPodSandbox calls returned.
    PodsDone(usize),
}

/// Fires `BURST` parallel RunPodSandbox calls, SIGKILLs the server at
/// `kill`, restarts it, checks every listed pod is whole, and removes them.
async fn burst_round(env: &mut Env, round: usize, kill: KillWhen) -> Result<()> {
    const BURST: usize = 20;
    let rt = env.client().await?;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..BURST {
        let mut rt = rt.clone();
        let config = env.pod_config(&format!("burst{round}-{i}"));
        calls.spawn(async move {
            rt.run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: String::new(),
            })
            .await
        });
    }
    let netns_dir = env.server.state_dir().join("netns");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut done = 0;
    // Fire exactly at the trigger: a burst that ends first, or a trigger
    // that never comes, proves nothing about a kill mid-burst.
    loop {
        let fire = match kill {
            KillWhen::NetnsPins(n) => dir_names(&netns_dir).len() >= n,
            KillWhen::PodsDone(n) => done >= n,
        };
        if fire {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "round {round}: {kill:?} never happened ({done} of {BURST} done)"
        );
        if let Ok(Some(result)) =
            tokio::time::timeout(Duration::from_millis(10), calls.join_next()).await
        {
            done += usize::from(result.is_ok_and(|r| r.is_ok()));
        }
    }
    env.server.signal(Signal::SIGKILL)?;
    env.server.wait_exit(Duration::from_secs(10)).await?;
    // Calls that had answered by the kill; none may have been left.
    while let Some(result) = calls.try_join_next() {
        done += usize::from(result.is_ok_and(|r| r.is_ok()));
    }
    ensure!(
        done < BURST,
        "round {round}: every call had finished before the kill ({kill:?})"
    );
    calls.abort_all();

    env.server.restart().await?;
    let mut rt = env.client().await?;
    let pods = list_pods(&mut rt).await?;
    ensure!(
        pods.len() >= done,
        "{} pods listed, {done} were done",
        pods.len()
    );
    // Every listed pod is whole: READY with its IP, a live pause process
    // and an open netns, and a containerd container of its own; anything
    // else may only be NOTREADY, to be removed.
    let mut states = HashMap::new();
    let mut netns_paths = Vec::new();
    for pod in &pods {
        let answer = rt
            .pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: pod.id.clone(),
                verbose: true,
            })
            .await?
            .into_inner();
        let status = answer.status.context("no status")?;
        *states.entry(status.state).or_insert(0) += 1;
        let info: serde_json::Value =
            serde_json::from_str(answer.info.get("info").context("verbose info")?)?;
        if status.state == PodSandboxState::SandboxReady as i32 {
            let ip = status.network.map(|n| n.ip).unwrap_or_default();
            ensure!(!ip.is_empty(), "ready pod {} without an IP", pod.id);
            let pid = info["pid"].as_u64().unwrap_or_default();
            ensure!(
                pid > 0 && Path::new(&format!("/proc/{pid}")).exists(),
                "ready pod {} without a live pause process ({info})",
                pod.id
            );
            ensure!(
                info["netNamespaceClosed"] == false,
                "ready pod {} with a closed netns",
                pod.id
            );
        } else {
            ensure!(
                status.state == PodSandboxState::SandboxNotready as i32,
                "pod {} in state {}",
                pod.id,
                status.state
            );
        }
        if let Some(path) = info["sandboxMetadata"]["NetNSPath"].as_str() {
            netns_paths.push(path.to_owned());
        }
    }
    let listed: BTreeSet<String> = pods.iter().map(|p| p.id.clone()).collect();
    let in_containerd: BTreeSet<String> = env
        .harness
        .containerd
        .ctr_ok(&["containers", "ls", "-q"])
        .await?
        .lines()
        .map(str::to_owned)
        .collect();
    ensure!(
        in_containerd == listed,
        "containerd holds {in_containerd:?}, the CRI lists {listed:?}"
    );
    for pin in dir_names(&netns_dir) {
        ensure!(
            netns_paths.iter().any(|p| p.ends_with(&pin)),
            "netns pin {pin} belongs to no listed pod"
        );
    }
    let leftovers = env
        .server
        .log()
        .lines()
        .filter(|l| l.contains("removing leftover"))
        .count();
    eprintln!(
        "round {round} ({kill:?}): killed with {done} of {BURST} done; {} pods after restart \
         (states {states:?}); {leftovers} leftover log lines so far",
        pods.len()
    );
    env.remove_everything(&mut rt).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_burst_of_run_pod_sandbox_leaves_only_whole_pods() -> Result<()> {
    let mut env = Env::new().await?;
    burst_round(&mut env, 0, KillWhen::NetnsPins(3)).await?;
    burst_round(&mut env, 1, KillWhen::PodsDone(2)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_leaves_containers_and_start_waits_for_containerd() -> Result<()> {
    let mut env = Env::new().await?;
    let mut rt = env.client().await?;
    let pods = env.start_pods(&mut rt, 1).await?;
    let pod = &pods[0];

    env.server.signal(Signal::SIGTERM)?;
    let exit = env.server.wait_exit(Duration::from_secs(30)).await?;
    ensure!(exit.success(), "SIGTERM exit: {exit}");
    let tasks = env.harness.containerd.ctr_ok(&["tasks", "ls"]).await?;
    ensure!(
        tasks
            .lines()
            .any(|l| l.starts_with(&pod.runner) && l.contains("RUNNING")),
        "the ticker did not survive a graceful shutdown:\n{tasks}"
    );

    // containerd is down when cri-server starts: only Version answers.
    env.harness.containerd.stop().await?;
    env.server.restart_unrecovered().await?;
    let mut early = env.server.runtime_client().await?;
    let list = early
        .list_pod_sandbox(ListPodSandboxRequest { filter: None })
        .await;
    ensure!(
        list.as_ref()
            .is_err_and(|s| s.code() == Code::Unavailable && s.message().contains("recovering")),
        "ListPodSandbox before recovery: {list:?}"
    );
    env.harness.containerd.start_again().await?;
    let mut rt = env.client().await?;
    let s = status(&mut rt, &pod.runner).await?;
    ensure!(s.state == ContainerState::ContainerRunning as i32, "{s:?}");
    let s = status(&mut rt, &pod.exiter).await?;
    ensure!(s.exit_code == 3, "{s:?}");
    wait_log_grows(&env.log_path(&pod.name, "runner")).await?;
    env.remove_everything(&mut rt).await
}
