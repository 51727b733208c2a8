//! containerd round trips per CRI call, for cri-server: the daemon is
//! restarted with `RUST_LOG` turning on cri-containerd's per-call debug
//! event (`cri_containerd::calls`), one CRI call at a time is made on an
//! otherwise idle daemon, and the calls logged between one CRI call and
//! the next (after a short settle, so follow-ups the call caused count)
//! are tallied per containerd method. Each sequence runs `REPEATS`
//! times; a call's count is its smallest total, which drops background
//! calls that happened to fall in one window.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, Result};
use cri_api::v1::*;

use super::workloads::remove_bench_pods;
use super::{image_spec, pod_config, sleep_container, BenchImages, Endpoint, PodNetwork};
use crate::CriServer;

/// How often the sequence runs.
const REPEATS: usize = 3;
/// How long the daemon gets after each call before the window closes.
const SETTLE: Duration = Duration::from_millis(300);

/// containerd methods per CRI call: `(call, method -> count)` in the
/// order the calls were made.
#[derive(Debug, Default)]
pub struct CallTable {
    pub rows: Vec<(String, BTreeMap<String, u64>)>,
}

impl CallTable {
    /// A Markdown table: call, total, and the methods with their counts.
    pub fn render(&self) -> String {
        let mut out =
            String::from("| CRI call | containerd calls | which |\n| --- | ---: | --- |\n");
        for (call, methods) in &self.rows {
            let total: u64 = methods.values().sum();
            let which: Vec<String> = methods
                .iter()
                .map(|(m, n)| {
                    if *n == 1 {
                        m.clone()
                    } else {
                        format!("{m} x{n}")
                    }
                })
                .collect();
            let _ = writeln!(out, "| {call} | {total} | {} |", which.join(", "));
        }
        out
    }
}

/// What the daemon calls on its own, whatever the RPCs: the containerd
/// watcher's periodic `Version` probe. Not counted.
const BACKGROUND: &[&str] = &["Version/Version"];

/// The containerd methods logged in `log` (the daemon's log text,
/// without colours: `NO_COLOR`), as `Service/Method` (`Tasks/Create`),
/// without the `BACKGROUND` ones.
pub fn logged_calls(log: &str) -> Vec<String> {
    log.lines()
        .filter(|line| line.contains(cri_containerd::CALL_LOG_TARGET))
        .filter_map(|line| {
            let path = line
                .split("method=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .to_owned();
            let (service, method) = path.trim_start_matches('/').split_once('/')?;
            let short = service.rsplit('.').next().unwrap_or(service);
            Some(format!("{short}/{method}"))
        })
        .filter(|call| !BACKGROUND.contains(&call.as_str()))
        .collect()
}

/// Counts the calls of one window.
struct Window<'a> {
    server: &'a CriServer,
    start: usize,
}

impl<'a> Window<'a> {
    fn open(server: &'a CriServer) -> Window<'a> {
        Window {
            server,
            start: server.log().len(),
        }
    }

    async fn close(self) -> BTreeMap<String, u64> {
        tokio::time::sleep(SETTLE).await;
        let log = self.server.log();
        let mut counts = BTreeMap::new();
        for call in logged_calls(log.get(self.start..).unwrap_or_default()) {
            *counts.entry(call).or_insert(0) += 1;
        }
        counts
    }
}

/// Restarts `server` with its containerd call log on, runs the sequence
/// `REPEATS` times, restarts it with its usual environment, and returns
/// the counts.
pub async fn count(server: &mut CriServer, images: &BenchImages) -> Result<CallTable> {
    server.set_env(vec![
        ("NO_COLOR".into(), "1".into()),
        (
            "RUST_LOG".into(),
            format!("warn,{}=debug", cri_containerd::CALL_LOG_TARGET),
        ),
    ]);
    server.restart().await?;
    let result = count_on(server, images).await;
    server.set_env(Vec::new());
    server.restart().await?;
    result
}

async fn count_on(server: &CriServer, images: &BenchImages) -> Result<CallTable> {
    let mut ep = Endpoint::connect("cri-server", server.socket()).await?;
    ep.ensure_image(&images.container).await?;
    ep.ensure_image(&images.image_ops).await?;
    let mut best: Vec<(String, BTreeMap<String, u64>)> = Vec::new();
    for _ in 0..REPEATS {
        let rows = sequence(server, &mut ep, images).await;
        if let Err(e) = remove_bench_pods(&mut ep).await {
            eprintln!("cri-bench: cleanup after counting: {e:#}");
        }
        for (call, counts) in rows? {
            let total: u64 = counts.values().sum();
            match best.iter_mut().find(|(c, _)| *c == call) {
                Some((_, kept)) if kept.values().sum::<u64>() > total => *kept = counts,
                Some(_) => {}
                None => best.push((call, counts)),
            }
        }
    }
    Ok(CallTable { rows: best })
}

/// One pass over the CRI calls; each call's containerd calls.
async fn sequence(
    server: &CriServer,
    ep: &mut Endpoint,
    images: &BenchImages,
) -> Result<Vec<(String, BTreeMap<String, u64>)>> {
    let mut rows = Vec::new();
    macro_rules! measure {
        ($name:expr, $call:expr) => {{
            let window = Window::open(server);
            let answer = $call.await.with_context(|| $name)?.into_inner();
            rows.push(($name.to_string(), window.close().await));
            answer
        }};
    }
    let config = pod_config("count", PodNetwork::Cni);
    let rt = &mut ep.runtime;
    let pod = measure!(
        "RunPodSandbox",
        rt.run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
    )
    .pod_sandbox_id;
    measure!(
        "PodSandboxStatus",
        rt.pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: pod.clone(),
            verbose: false,
        })
    );
    measure!(
        "ListPodSandbox",
        rt.list_pod_sandbox(ListPodSandboxRequest { filter: None })
    );
    let container = measure!(
        "CreateContainer",
        rt.create_container(CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(sleep_container("sleep", &images.container)),
            sandbox_config: Some(config),
        })
    )
    .container_id;
    measure!(
        "StartContainer",
        rt.start_container(StartContainerRequest {
            container_id: container.clone(),
        })
    );
    measure!(
        "ContainerStatus",
        rt.container_status(ContainerStatusRequest {
            container_id: container.clone(),
            verbose: false,
        })
    );
    measure!(
        "ListContainers",
        rt.list_containers(ListContainersRequest { filter: None })
    );
    measure!(
        "ListContainerStats",
        rt.list_container_stats(ListContainerStatsRequest { filter: None })
    );
    measure!(
        "StopContainer",
        rt.stop_container(StopContainerRequest {
            container_id: container.clone(),
            timeout: 0,
        })
    );
    measure!(
        "RemoveContainer",
        rt.remove_container(RemoveContainerRequest {
            container_id: container
        })
    );
    measure!(
        "StopPodSandbox",
        rt.stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
    );
    measure!(
        "RemovePodSandbox",
        rt.remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: pod
        })
    );
    let img = &mut ep.images;
    let pull = || PullImageRequest {
        image: Some(image_spec(&images.image_ops)),
        ..PullImageRequest::default()
    };
    measure!("PullImage (present)", img.pull_image(pull()));
    measure!(
        "ImageStatus",
        img.image_status(ImageStatusRequest {
            image: Some(image_spec(&images.image_ops)),
            verbose: false,
        })
    );
    measure!(
        "ListImages",
        img.list_images(ListImagesRequest { filter: None })
    );
    measure!("ImageFsInfo", img.image_fs_info(ImageFsInfoRequest {}));
    measure!(
        "RemoveImage",
        img.remove_image(RemoveImageRequest {
            image: Some(image_spec(&images.image_ops)),
        })
    );
    measure!("PullImage (absent, 1 layer)", img.pull_image(pull()));
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_call_events_of_a_text_log() {
        let log = "2026-01-01T00:00:00Z DEBUG rpc{rpc=\"StartContainer\"}: cri_containerd::calls: containerd call method=/containerd.services.tasks.v1.Tasks/Create\n\
                   2026-01-01T00:00:00Z  INFO cri_server: something else method=/x/y\n\
                   2026-01-01T00:00:00Z DEBUG cri_containerd::calls: containerd call method=/containerd.services.version.v1.Version/Version\n\
                   2026-01-01T00:00:00Z DEBUG cri_containerd::calls: containerd call method=/containerd.services.tasks.v1.Tasks/Start\n";
        assert_eq!(logged_calls(log), vec!["Tasks/Create", "Tasks/Start"]);
    }
}
