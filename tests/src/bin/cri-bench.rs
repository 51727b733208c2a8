//! `cri-bench`: drives any CRI endpoint (cri-server or containerd's own CRI
//! plugin) with one workload: N host-network pods with one busybox `sleep`
//! container each, then M timed `ListContainerStats` calls; prints the
//! p50/p90/p99 latency and the daemon's RSS (with `--pid`), then removes
//! the pods. A measurement tool, not a test.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cri_api::v1::image_service_client::ImageServiceClient;
use cri_api::v1::runtime_service_client::RuntimeServiceClient;
use cri_api::v1::*;
use cri_tests::images::DEFAULT_BUSYBOX_NAME;

const USAGE: &str = "usage:
  cri-bench --runtime-endpoint unix:///run/cri-server/cri-server.sock
            [--pods N (20)] [--calls M (50)] [--pid PID] [--image REF]
      creates N pods with one `sleep` container each (host network),
      times M ListContainerStats calls, prints p50/p90/p99 and the RSS
      of PID, then removes the pods";

struct Args {
    endpoint: PathBuf,
    pods: usize,
    calls: usize,
    pid: Option<u32>,
    image: String,
}

fn parse(args: Vec<String>) -> Result<Args> {
    let mut parsed = Args {
        endpoint: PathBuf::new(),
        pods: 20,
        calls: 50,
        pid: None,
        image: DEFAULT_BUSYBOX_NAME.to_owned(),
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--runtime-endpoint" => {
                let v = value()?;
                parsed.endpoint = PathBuf::from(v.strip_prefix("unix://").unwrap_or(&v));
            }
            "--pods" | "-n" => parsed.pods = value()?.parse()?,
            "--calls" | "-m" => parsed.calls = value()?.parse()?,
            "--pid" => parsed.pid = Some(value()?.parse()?),
            "--image" => parsed.image = value()?,
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if parsed.endpoint.as_os_str().is_empty() {
        bail!("--runtime-endpoint is required\n{USAGE}");
    }
    Ok(parsed)
}

fn main() -> ExitCode {
    let result = parse(std::env::args().skip(1).collect()).and_then(|args| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("start tokio")?
            .block_on(run(args))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cri-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

type Runtime = RuntimeServiceClient<tonic::transport::Channel>;

async fn run(args: Args) -> Result<()> {
    let channel = cri_tests::server::connect(&args.endpoint)
        .await
        .with_context(|| format!("connect to {}", args.endpoint.display()))?;
    let mut images = ImageServiceClient::new(channel.clone());
    let mut rt = RuntimeServiceClient::new(channel);
    let image = ImageSpec {
        image: args.image.clone(),
        ..ImageSpec::default()
    };
    let present = images
        .image_status(ImageStatusRequest {
            image: Some(image.clone()),
            verbose: false,
        })
        .await?
        .into_inner()
        .image
        .is_some();
    if !present {
        images
            .pull_image(PullImageRequest {
                image: Some(image.clone()),
                ..PullImageRequest::default()
            })
            .await
            .with_context(|| format!("pull {}", args.image))?;
    }

    let run_id = std::process::id();
    let mut pods = Vec::new();
    let setup = Instant::now();
    let result = async {
        for i in 0..args.pods {
            pods.push(start_pod(&mut rt, &image, run_id, i).await?);
        }
        println!(
            "setup: {} pods with one container each in {:.2?}",
            args.pods,
            setup.elapsed()
        );
        let rss_before = args.pid.and_then(rss_kib);
        let mut latencies = Vec::with_capacity(args.calls);
        let mut listed = 0;
        for _ in 0..args.calls {
            let started = Instant::now();
            listed = rt
                .list_container_stats(ListContainerStatsRequest::default())
                .await?
                .into_inner()
                .stats
                .len();
            latencies.push(started.elapsed());
        }
        latencies.sort_unstable();
        println!(
            "ListContainerStats x{} ({listed} containers): p50 {:.2?}  p90 {:.2?}  p99 {:.2?}  max {:.2?}",
            args.calls,
            percentile(&latencies, 50),
            percentile(&latencies, 90),
            percentile(&latencies, 99),
            latencies.last().copied().unwrap_or_default(),
        );
        if let Some(pid) = args.pid {
            let show = |kib: Option<u64>| kib.map_or("?".to_owned(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
            println!(
                "daemon {pid} RSS: {} before the calls, {} after",
                show(rss_before),
                show(rss_kib(pid))
            );
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    let cleanup = Instant::now();
    for pod in &pods {
        if let Err(e) = remove_pod(&mut rt, pod).await {
            eprintln!("cri-bench: remove pod {pod}: {e}");
        }
    }
    println!("cleanup: {} pods in {:.2?}", pods.len(), cleanup.elapsed());
    result
}

async fn start_pod(rt: &mut Runtime, image: &ImageSpec, run_id: u32, i: usize) -> Result<String> {
    let config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: format!("bench-{i}"),
            uid: format!("bench-{run_id}-{i}"),
            namespace: "cri-bench".into(),
            attempt: 0,
        }),
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: NamespaceMode::Node as i32,
                    ..NamespaceOption::default()
                }),
                ..LinuxSandboxSecurityContext::default()
            }),
            ..LinuxPodSandboxConfig::default()
        }),
        ..PodSandboxConfig::default()
    };
    let pod = rt
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .context("run pod")?
        .into_inner()
        .pod_sandbox_id;
    let container = rt
        .create_container(CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(ContainerConfig {
                metadata: Some(ContainerMetadata {
                    name: "sleep".into(),
                    attempt: 0,
                }),
                image: Some(image.clone()),
                args: vec!["sleep".into(), "3600".into()],
                ..ContainerConfig::default()
            }),
            sandbox_config: Some(config),
        })
        .await
        .context("create container")?
        .into_inner()
        .container_id;
    rt.start_container(StartContainerRequest {
        container_id: container,
    })
    .await
    .context("start container")?;
    Ok(pod)
}

async fn remove_pod(rt: &mut Runtime, pod: &str) -> Result<()> {
    rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: pod.into(),
    })
    .await?;
    rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod.into(),
    })
    .await?;
    Ok(())
}

/// The nearest-rank percentile of sorted `values`.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// `VmRSS` of `pid` in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
