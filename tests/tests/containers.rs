//! App containers against a real containerd, runc and registry: create,
//! start, the CRI log file (format, P/F splitting, reopen), stop with
//! SIGTERM honoured or escalated to SIGKILL, exit codes and reasons
//! (Completed, Error, OOMKilled), remove, image defaults and config
//! overrides, labels and annotations, list filters, resource updates,
//! failed creates that leave nothing behind, and the container events
//! stream.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cri_api::v1::runtime_service_client::RuntimeServiceClient;
use cri_api::v1::*;
use cri_tests::cri::{self, full_lines, pod_config, read_log_records, server_log_tail, LogRecord};
use cri_tests::images::oci::Blob;
use cri_tests::images::ImageSet;
use cri_tests::{CriServer, Harness, ServerOptions};
use futures::StreamExt;
use tonic::transport::Channel;
use tonic::Code;

type Runtime = RuntimeServiceClient<Channel>;

/// A harness, a server with the busybox image pulled, and a log dir.
struct Env {
    harness: Harness,
    server: CriServer,
    rt: Runtime,
    logs: tempfile::TempDir,
}

impl Env {
    async fn new() -> Result<Env> {
        Self::with_tables("").await
    }

    /// [`Env::new`] with whole config tables appended (e.g. runtimes).
    async fn with_tables(extra_toml: &str) -> Result<Env> {
        let harness = Harness::start().await?;
        let server = harness
            .server(ServerOptions {
                cri_plugin_toml: "netns_mounts_under_state_dir = true\n".into(),
                extra_toml: extra_toml.into(),
                ..ServerOptions::default()
            })
            .await?;
        let mut images = server.image_client().await?;
        images
            .pull_image(PullImageRequest {
                image: Some(ImageSpec {
                    image: harness.images.busybox.clone(),
                    ..ImageSpec::default()
                }),
                auth: None,
                sandbox_config: None,
            })
            .await?;
        let rt = server.runtime_client().await?;
        Ok(Env {
            harness,
            server,
            rt,
            logs: tempfile::tempdir()?,
        })
    }

    fn pod_config(&self, name: &str) -> PodSandboxConfig {
        PodSandboxConfig {
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
            ..pod_config(name, "containers-test", self.logs.path())
        }
    }

    /// Runs a pod on the host network; returns its id and config.
    async fn pod(&mut self, name: &str) -> Result<(String, PodSandboxConfig)> {
        self.pod_of_handler(name, "").await
    }

    /// [`Env::pod`] with runtime handler `handler`.
    async fn pod_of_handler(
        &mut self,
        name: &str,
        handler: &str,
    ) -> Result<(String, PodSandboxConfig)> {
        let config = self.pod_config(name);
        let id = self
            .rt
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: handler.into(),
            })
            .await
            .with_context(|| format!("run pod {name}\n{}", server_log_tail(&self.server, 60)))?
            .into_inner()
            .pod_sandbox_id;
        Ok((id, config))
    }

    fn busybox(&self, name: &str, args: &[&str]) -> ContainerConfig {
        container_config(&self.harness.images.busybox, name, args)
    }

    async fn create(
        &mut self,
        pod: &(String, PodSandboxConfig),
        config: ContainerConfig,
    ) -> Result<String, tonic::Status> {
        Ok(self
            .rt
            .create_container(CreateContainerRequest {
                pod_sandbox_id: pod.0.clone(),
                config: Some(config),
                sandbox_config: Some(pod.1.clone()),
            })
            .await?
            .into_inner()
            .container_id)
    }

    async fn start(&mut self, id: &str) -> Result<()> {
        self.rt
            .start_container(StartContainerRequest {
                container_id: id.into(),
            })
            .await
            .with_context(|| format!("start {id}\n{}", server_log_tail(&self.server, 60)))?;
        Ok(())
    }

    async fn run(
        &mut self,
        pod: &(String, PodSandboxConfig),
        config: ContainerConfig,
    ) -> Result<String> {
        let id = self
            .create(pod, config)
            .await
            .with_context(|| format!("create\n{}", server_log_tail(&self.server, 60)))?;
        self.start(&id).await?;
        Ok(id)
    }

    async fn status(&mut self, id: &str, verbose: bool) -> Result<ContainerStatusResponse> {
        Ok(self
            .rt
            .container_status(ContainerStatusRequest {
                container_id: id.into(),
                verbose,
            })
            .await?
            .into_inner())
    }

    /// The memory limit container `id` reports in its status and has in
    /// its stored spec (verbose info) is `bytes`.
    async fn check_memory_limit(&mut self, id: &str, bytes: i64) -> Result<()> {
        let status = self.status(id, true).await?;
        let res = status
            .status
            .and_then(|s| s.resources)
            .and_then(|r| r.linux)
            .context("no resources")?;
        ensure!(res.memory_limit_in_bytes == bytes, "{res:?}");
        let info: serde_json::Value = serde_json::from_str(&status.info["info"])?;
        ensure!(
            info["runtimeSpec"]["linux"]["resources"]["memory"]["limit"] == bytes,
            "{info}"
        );
        Ok(())
    }

    async fn state(&mut self, id: &str) -> Result<ContainerStatus> {
        self.status(id, false)
            .await?
            .status
            .context("status without status")
    }

    /// Waits until container `id` exited; its final status.
    async fn wait_exited(&mut self, id: &str, timeout: Duration) -> Result<ContainerStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.state(id).await?;
            if status.state == ContainerState::ContainerExited as i32 {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("container {id} still {:?} after {timeout:?}", status.state);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(&mut self, id: &str, timeout: i64) -> Result<(), tonic::Status> {
        self.rt
            .stop_container(StopContainerRequest {
                container_id: id.into(),
                timeout,
            })
            .await?;
        Ok(())
    }

    async fn remove(&mut self, id: &str) -> Result<(), tonic::Status> {
        self.rt
            .remove_container(RemoveContainerRequest {
                container_id: id.into(),
            })
            .await?;
        Ok(())
    }

    async fn list(&mut self, filter: Option<ContainerFilter>) -> Result<Vec<Container>> {
        Ok(self
            .rt
            .list_containers(ListContainersRequest { filter })
            .await?
            .into_inner()
            .containers)
    }

    /// The lines of `ctr <args>`.
    async fn ctr_lines(&self, args: &[&str]) -> Result<Vec<String>> {
        Ok(self
            .harness
            .containerd
            .ctr_ok(args)
            .await?
            .lines()
            .map(str::to_owned)
            .collect())
    }

    /// containerd container ids in namespace k8s.io.
    async fn containerd_containers(&self) -> Result<Vec<String>> {
        Ok(self
            .ctr_lines(&["-n", "k8s.io", "containers", "ls", "-q"])
            .await?
            .into_iter()
            .filter(|l| !l.is_empty())
            .collect())
    }

    /// Active (writable) overlayfs snapshots in namespace k8s.io.
    async fn active_snapshots(&self) -> Result<Vec<String>> {
        Ok(self
            .ctr_lines(&["-n", "k8s.io", "snapshots", "ls"])
            .await?
            .into_iter()
            .filter(|l| l.contains("Active"))
            .collect())
    }

    /// Entries of `<root>/containers` and `<state>/containers`.
    fn container_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        for base in [self.server.root_dir(), self.server.state_dir()] {
            if let Ok(entries) = std::fs::read_dir(base.join("containers")) {
                dirs.extend(entries.flatten().map(|e| e.path()));
            }
        }
        dirs.sort();
        dirs
    }
}

/// A container config for `image` (argument order of this suite).
fn container_config(image: &str, name: &str, args: &[&str]) -> ContainerConfig {
    cri::container_config(name, image, args)
}

/// Waits until `path` has at least `n` records.
async fn wait_for_records(path: &Path, n: usize, timeout: Duration) -> Result<Vec<LogRecord>> {
    let deadline = Instant::now() + timeout;
    loop {
        let records = read_log_records(path).unwrap_or_default();
        if records.len() >= n {
            return Ok(records);
        }
        if Instant::now() > deadline {
            bail!("{} has {} records, want {n}", path.display(), records.len());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn is_rfc3339_nano(s: &str) -> bool {
    // 2026-11-29T06:00:00.123456789Z (fraction optional, trailing zeros trimmed)
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && s.ends_with('Z')
        && s[..4].bytes().all(|c| c.is_ascii_digit())
}

fn event_kinds(events: &[ContainerEventResponse], id: &str) -> Vec<ContainerEventType> {
    events
        .iter()
        .filter(|e| e.container_id == id)
        .filter_map(|e| ContainerEventType::try_from(e.container_event_type).ok())
        .collect()
}

#[tokio::test]
async fn lifecycle_logs_and_events() -> Result<()> {
    let mut env = Env::new().await?;
    let mut events_client = env.server.runtime_client().await?;
    let mut events = events_client
        .get_container_events(GetEventsRequest {})
        .await?
        .into_inner();
    let pod = env.pod("lifecycle").await?;
    let script =
        "echo hello; echo oops >&2; head -c 40000 /dev/zero | tr '\\0' x; echo; printf tail";
    let id = env
        .run(&pod, env.busybox("printer", &["sh", "-c", script]))
        .await?;
    let status = env.wait_exited(&id, Duration::from_secs(20)).await?;
    ensure!(status.exit_code == 0, "{status:?}");
    ensure!(status.reason == "Completed", "{status:?}");
    ensure!(
        status.started_at > 0 && status.finished_at >= status.started_at,
        "{status:?}"
    );
    ensure!(
        status.created_at > 0 && status.created_at <= status.started_at,
        "{status:?}"
    );

    // The CRI log: both streams, RFC3339Nano times, the long line split
    // into P records of 16384 bytes and an F.
    let log = PathBuf::from(&status.log_path);
    ensure!(
        log == env.logs.path().join("lifecycle/printer/0.log"),
        "log path {}",
        log.display()
    );
    let records = wait_for_records(&log, 6, Duration::from_secs(5)).await?;
    ensure!(
        records.iter().all(|r| is_rfc3339_nano(&r.time)),
        "{records:?}"
    );
    ensure!(full_lines(&records, "stdout").first().map(String::as_str) == Some("hello"));
    ensure!(full_lines(&records, "stderr") == ["oops"], "{records:?}");
    let long: Vec<&LogRecord> = records
        .iter()
        .filter(|r| r.stream == "stdout" && r.content.starts_with("xxx"))
        .collect();
    let shape: Vec<(&str, usize)> = long
        .iter()
        .map(|r| (r.tag.as_str(), r.content.len()))
        .collect();
    ensure!(
        shape == [("P", 16384), ("P", 16384), ("F", 40000 - 2 * 16384)],
        "long line records {shape:?}"
    );
    // The last bytes had no newline: written as a partial record at EOF.
    let last = records
        .iter()
        .rfind(|r| r.stream == "stdout")
        .context("no stdout records")?;
    ensure!(last.tag == "P" && last.content == "tail", "{last:?}");

    // With a tty both streams arrive as one: stdout.
    let mut tty = env.busybox("tty", &["sh", "-c", "echo out; echo err >&2"]);
    tty.tty = true;
    let tty_id = env.run(&pod, tty).await?;
    let tty_status = env.wait_exited(&tty_id, Duration::from_secs(20)).await?;
    let tty_records = read_log_records(Path::new(&tty_status.log_path))?;
    ensure!(
        tty_records.iter().all(|r| r.stream == "stdout"),
        "{tty_records:?}"
    );
    ensure!(
        full_lines(&tty_records, "stdout") == ["out", "err"],
        "{tty_records:?}"
    );
    env.remove(&tty_id).await?;

    env.remove(&id).await?;
    env.remove(&id).await?; // idempotent
    ensure!(env.list(None).await?.is_empty());
    let Err(err) = env.status(&id, false).await else {
        bail!("status of a removed container");
    };
    ensure!(
        err.downcast_ref::<tonic::Status>().map(|s| s.code()) == Some(Code::NotFound),
        "{err:?}"
    );
    ensure!(
        env.containerd_containers().await? == std::slice::from_ref(&pod.0),
        "containerd containers left"
    );
    ensure!(
        env.container_dirs().is_empty(),
        "{:?}",
        env.container_dirs()
    );

    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while event_kinds(&seen, &id).len() < 4 && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(1), events.next()).await {
            Ok(Some(Ok(e))) => seen.push(e),
            Ok(Some(Err(e))) => bail!("event stream: {e}"),
            Ok(None) => bail!("event stream ended"),
            Err(_) => {}
        }
    }
    ensure!(
        event_kinds(&seen, &id)
            == [
                ContainerEventType::ContainerCreatedEvent,
                ContainerEventType::ContainerStartedEvent,
                ContainerEventType::ContainerStoppedEvent,
                ContainerEventType::ContainerDeletedEvent,
            ],
        "{:?}",
        event_kinds(&seen, &id)
    );
    let created = seen
        .iter()
        .find(|e| e.container_id == id)
        .context("no event")?;
    let pod_status = created
        .pod_sandbox_status
        .as_ref()
        .context("no pod status")?;
    ensure!(pod_status.id == pod.0, "{pod_status:?}");
    ensure!(created.containers_statuses.iter().any(|c| c.id == id));
    Ok(())
}

/// Starts `config` and waits for its exit; its status and stdout lines.
async fn run_to_exit(
    env: &mut Env,
    pod: &(String, PodSandboxConfig),
    config: ContainerConfig,
) -> Result<(ContainerStatus, Vec<String>)> {
    let id = env.run(pod, config).await?;
    let status = env.wait_exited(&id, Duration::from_secs(20)).await?;
    // The exit is recorded after the output was drained.
    let records = read_log_records(Path::new(&status.log_path))?;
    Ok((status, full_lines(&records, "stdout")))
}

#[tokio::test]
async fn stop_signals_exit_codes_and_oom() -> Result<()> {
    let mut env = Env::new().await?;
    let pod = env.pod("stops").await?;
    let loop_with =
        |trap: &str| format!("trap {trap} TERM; echo ready; while true; do sleep 1; done");
    let term = env
        .run(
            &pod,
            env.busybox("term", &["sh", "-c", &loop_with("'exit 7'")]),
        )
        .await?;
    let stubborn = env
        .run(
            &pod,
            env.busybox("stubborn", &["sh", "-c", &loop_with("''")]),
        )
        .await?;
    let three = env
        .run(&pod, env.busybox("three", &["sh", "-c", "exit 3"]))
        .await?;
    let mut hog = env.busybox("hog", &["sh", "-c", "x=a; while true; do x=$x$x; done"]);
    hog.linux = Some(LinuxContainerConfig {
        resources: Some(LinuxContainerResources {
            memory_limit_in_bytes: 20 << 20,
            ..LinuxContainerResources::default()
        }),
        ..LinuxContainerConfig::default()
    });
    let hog = env.run(&pod, hog).await?;
    for id in [&term, &stubborn] {
        let log = PathBuf::from(env.state(id).await?.log_path);
        wait_for_records(&log, 1, Duration::from_secs(10)).await?;
        ensure!(env.state(id).await?.state == ContainerState::ContainerRunning as i32);
    }

    // SIGTERM honoured: the trap exits 7 well before the timeout.
    let started = Instant::now();
    env.stop(&term, 30).await?;
    ensure!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let status = env.state(&term).await?;
    ensure!(
        status.state == ContainerState::ContainerExited as i32
            && status.exit_code == 7
            && status.reason == "Error",
        "{status:?}"
    );

    // SIGTERM ignored: SIGKILL after the 2s timeout.
    let started = Instant::now();
    env.stop(&stubborn, 2).await?;
    let took = started.elapsed();
    ensure!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(15),
        "{took:?}"
    );
    let status = env.state(&stubborn).await?;
    ensure!(
        status.exit_code == 137 && status.reason == "Error",
        "{status:?}"
    );

    // Stop is idempotent, also for unknown ids.
    env.stop(&stubborn, 2).await?;
    env.stop("0123456789abcdef", 2).await?;

    let status = env.wait_exited(&three, Duration::from_secs(20)).await?;
    ensure!(
        status.exit_code == 3 && status.reason == "Error",
        "{status:?}"
    );
    let status = env.wait_exited(&hog, Duration::from_secs(60)).await?;
    ensure!(
        status.reason == "OOMKilled",
        "{status:?}\n{}",
        server_log_tail(&env.server, 60)
    );
    ensure!(status.exit_code == 137, "{status:?}");
    let resources = status
        .resources
        .and_then(|r| r.linux)
        .context("no resources")?;
    ensure!(resources.memory_limit_in_bytes == 20 << 20, "{resources:?}");

    for id in [&term, &stubborn, &three, &hog] {
        env.remove(id).await?;
    }
    ensure!(env.list(None).await?.is_empty());
    ensure!(
        env.container_dirs().is_empty(),
        "{:?}",
        env.container_dirs()
    );

    // StopPodSandbox kills what still runs; RemovePodSandbox removes it.
    let last = env
        .run(&pod, env.busybox("last", &["sleep", "1000"]))
        .await?;
    env.rt
        .stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: pod.0.clone(),
        })
        .await?;
    let status = env.state(&last).await?;
    ensure!(
        status.state == ContainerState::ContainerExited as i32 && status.exit_code == 137,
        "{status:?}"
    );
    env.rt
        .remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: pod.0.clone(),
        })
        .await?;
    ensure!(env.list(None).await?.is_empty());
    ensure!(env.containerd_containers().await?.is_empty());
    ensure!(
        env.container_dirs().is_empty(),
        "{:?}",
        env.container_dirs()
    );
    Ok(())
}

/// Pushes busybox plus a layer with `/data/seed.txt`, with its own config
/// (entrypoint, cmd, env, user, working dir, labels, volumes `/data` and
/// `/cache`) as `<registry>/custom/busybox:v1`.
async fn push_custom_image(harness: &Harness) -> Result<String> {
    use cri_tests::images::layer::{self, Entry};
    let set = ImageSet::get_async().await?;
    let base = &set.busybox;
    let data = layer::build(vec![
        (
            "data".into(),
            Entry::Dir {
                mode: 0o750,
                uid: 33,
            },
        ),
        (
            "data/seed.txt".into(),
            Entry::File {
                mode: 0o644,
                data: b"seeded by the image\n".to_vec(),
            },
        ),
    ])?;
    let layer_type = &base.layers.first().context("no layer")?.media_type;
    let data_blob = Blob::new(layer_type, data.gzip.clone());
    let mut config: serde_json::Value = serde_json::from_slice(&base.config.data)?;
    config["config"]["Env"] = serde_json::json!([
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "FROM_IMAGE=yes",
        "SHARED=image"
    ]);
    config["config"]["Entrypoint"] = serde_json::json!(["sh", "-c"]);
    config["config"]["Cmd"] =
        serde_json::json!(["echo image-cmd; id -u; pwd; echo $FROM_IMAGE $SHARED; echo $HOSTNAME"]);
    config["config"]["User"] = serde_json::json!("www");
    config["config"]["WorkingDir"] = serde_json::json!("/srv");
    config["config"]["Labels"] = serde_json::json!({"image.label": "from-image"});
    config["config"]["Volumes"] = serde_json::json!({"/data": {}, "/cache": {}});
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .context("no diff ids")?
        .push(cri_tests::images::oci::digest(&data.tar).into());
    let config = Blob::new(&base.config.media_type, serde_json::to_vec(&config)?);
    let mut manifest: serde_json::Value = serde_json::from_slice(&base.manifest.data)?;
    manifest["config"] = config.descriptor();
    manifest["layers"]
        .as_array_mut()
        .context("no layers")?
        .push(data_blob.descriptor());
    let manifest = Blob::new(&base.manifest.media_type, serde_json::to_vec(&manifest)?);
    let registry = harness.registry.client();
    for blob in base.layers.iter().chain([&data_blob, &config]) {
        registry
            .push_blob("custom/busybox", &blob.digest, &blob.data)
            .await?;
    }
    registry
        .push_manifest("custom/busybox", "v1", &manifest.media_type, &manifest.data)
        .await?;
    Ok(format!("{}/custom/busybox:v1", harness.registry.host()))
}

#[tokio::test]
async fn image_defaults_and_config_overrides() -> Result<()> {
    let mut env = Env::new().await?;
    let image = push_custom_image(&env.harness).await?;
    let mut images = env.server.image_client().await?;
    images
        .pull_image(PullImageRequest {
            image: Some(ImageSpec {
                image: image.clone(),
                ..ImageSpec::default()
            }),
            auth: None,
            sandbox_config: None,
        })
        .await?;
    let pod = env.pod("defaults").await?;

    // Everything from the image: entrypoint + cmd, env, user www (33 in
    // the image's /etc/passwd), working dir; HOSTNAME of the (host
    // network) pod: the node's.
    let node = nix::unistd::gethostname()?.to_string_lossy().into_owned();
    let (status, out) = run_to_exit(&mut env, &pod, container_config(&image, "image", &[])).await?;
    ensure!(status.exit_code == 0, "{status:?} {out:?}");
    ensure!(
        out == ["image-cmd", "33", "/srv", "yes image", node.as_str()],
        "{out:?}"
    );

    // The config overrides: command, args, env, working dir, user.
    let mut config = container_config(
        &image,
        "override",
        &["echo over; id -u; pwd; echo $FROM_IMAGE $SHARED"],
    );
    config.command = vec!["sh".into(), "-c".into()];
    config.envs = vec![KeyValue {
        key: "SHARED".into(),
        value: "config".into(),
    }];
    config.working_dir = "/tmp".into();
    config.linux = Some(LinuxContainerConfig {
        security_context: Some(LinuxContainerSecurityContext {
            run_as_user: Some(Int64Value { value: 0 }),
            ..LinuxContainerSecurityContext::default()
        }),
        ..LinuxContainerConfig::default()
    });
    let (status, out) = run_to_exit(&mut env, &pod, config).await?;
    ensure!(status.exit_code == 0, "{status:?} {out:?}");
    ensure!(out == ["over", "0", "/tmp", "yes config"], "{out:?}");

    // Args alone replace the image's cmd, after its entrypoint; a user
    // name is looked up in the image.
    let mut config = container_config(&image, "args", &["echo args-only; id -un; id -u"]);
    config.linux = Some(LinuxContainerConfig {
        security_context: Some(LinuxContainerSecurityContext {
            run_as_username: "nobody".into(),
            ..LinuxContainerSecurityContext::default()
        }),
        ..LinuxContainerConfig::default()
    });
    let (status, out) = run_to_exit(&mut env, &pod, config).await?;
    ensure!(status.exit_code == 0, "{status:?} {out:?}");
    ensure!(out == ["args-only", "nobody", "65534"], "{out:?}");

    // A user the image does not know fails the create, leaving nothing.
    let mut config = container_config(&image, "ghost", &[]);
    config.linux = Some(LinuxContainerConfig {
        security_context: Some(LinuxContainerSecurityContext {
            run_as_username: "ghost".into(),
            ..LinuxContainerSecurityContext::default()
        }),
        ..LinuxContainerConfig::default()
    });
    let Err(err) = env.create(&pod, config).await else {
        bail!("created a container for an unknown user");
    };
    ensure!(err.message().contains("ghost"), "{err:?}");
    ensure!(env.list(None).await?.len() == 3);

    // Image volumes: /data gets the image's content (and owner), in a
    // host dir under the container's root dir; a CRI mount at /cache
    // wins over the image's volume.
    let cache = tempfile::tempdir()?;
    std::fs::write(cache.path().join("from-host"), "host")?;
    let mut config = container_config(
        &image,
        "volumes",
        &["cat /data/seed.txt; stat -c %u /data; echo written > /data/new; ls /cache"],
    );
    config.mounts = vec![Mount {
        container_path: "/cache".into(),
        host_path: cache.path().display().to_string(),
        ..Mount::default()
    }];
    let id = env.run(&pod, config).await?;
    let status = env.wait_exited(&id, Duration::from_secs(20)).await?;
    let out = full_lines(&read_log_records(Path::new(&status.log_path))?, "stdout");
    ensure!(status.exit_code == 0, "{status:?} {out:?}");
    ensure!(out == ["seeded by the image", "33", "from-host"], "{out:?}");
    let volumes = env
        .server
        .root_dir()
        .join("containers")
        .join(&id)
        .join("volumes");
    let dirs: Vec<PathBuf> = std::fs::read_dir(&volumes)?
        .map(|e| Ok(e?.path()))
        .collect::<Result<_>>()?;
    ensure!(dirs.len() == 1, "{dirs:?}");
    ensure!(std::fs::read_to_string(dirs[0].join("new"))? == "written\n");
    env.remove(&id).await?;
    ensure!(!volumes.exists(), "volumes left after remove");
    Ok(())
}

#[tokio::test]
async fn labels_annotations_list_and_verbose_status() -> Result<()> {
    let mut env = Env::new().await?;
    let pod = env.pod("labels").await?;
    let other_pod = env.pod("other").await?;
    let mut config = env.busybox("sleeper", &["sleep", "1000"]);
    config.labels = HashMap::from([
        ("app".to_owned(), "web".to_owned()),
        (
            "io.kubernetes.container.name".to_owned(),
            "sleeper".to_owned(),
        ),
    ]);
    config.annotations = HashMap::from([
        ("note".to_owned(), "kept as is".to_owned()),
        (
            "io.kubernetes.container.hash".to_owned(),
            "abc123".to_owned(),
        ),
    ]);
    let running = env.run(&pod, config.clone()).await?;
    let mut idle = env.busybox("idle", &["true"]);
    idle.labels = HashMap::from([("app".to_owned(), "db".to_owned())]);
    let created = env.create(&pod, idle).await?;
    let elsewhere = env
        .create(&other_pod, env.busybox("elsewhere", &["true"]))
        .await?;

    let status = env.status(&running, true).await?;
    let s = status.status.context("no status")?;
    ensure!(
        s.labels == config.labels && s.annotations == config.annotations,
        "{s:?}"
    );
    ensure!(s.state == ContainerState::ContainerRunning as i32, "{s:?}");
    ensure!(s.metadata.as_ref().map(|m| m.name.as_str()) == Some("sleeper"));
    ensure!(
        s.image.as_ref().map(|i| i.image.as_str()) == Some(env.harness.images.busybox.as_str()),
        "{s:?}"
    );
    ensure!(s.image_ref.contains("@sha256:"), "{s:?}");
    ensure!(s.image_id.starts_with("sha256:"), "{s:?}");
    let info: serde_json::Value =
        serde_json::from_str(status.info.get("info").context("no info")?)?;
    ensure!(info["pid"].as_u64().unwrap_or(0) > 0, "{info}");
    ensure!(info["sandboxID"] == pod.0.as_str(), "{info}");
    ensure!(
        info["runtimeSpec"]["process"]["args"] == serde_json::json!(["sleep", "1000"]),
        "{info}"
    );
    ensure!(info["runtimeType"] == "io.containerd.runc.v2", "{info}");
    ensure!(info.get("runtimeHandler").is_some(), "{info}");

    // The containerd record carries the CRI labels, the kind and the
    // metadata extension.
    let record: serde_json::Value = serde_json::from_str(
        &env.harness
            .containerd
            .ctr_ok(&["-n", "k8s.io", "containers", "info", &running])
            .await?,
    )?;
    ensure!(
        record["Labels"]["io.cri-containerd.kind"] == "container",
        "{record}"
    );
    ensure!(record["Labels"]["app"] == "web", "{record}");
    ensure!(
        record["Extensions"]["io.cri-containerd.container.metadata"].is_object(),
        "{record}"
    );
    ensure!(record["SnapshotKey"] == running.as_str() && record["Snapshotter"] == "overlayfs");

    let ids = |list: Vec<Container>| {
        let mut ids: Vec<String> = list.into_iter().map(|c| c.id).collect();
        ids.sort();
        ids
    };
    let mut all = vec![running.clone(), created.clone(), elsewhere.clone()];
    all.sort();
    ensure!(ids(env.list(None).await?) == all);
    let by = |f: ContainerFilter| Some(f);
    ensure!(
        ids(env
            .list(by(ContainerFilter {
                id: running[..12].into(),
                ..Default::default()
            }))
            .await?)
            == std::slice::from_ref(&running)
    );
    ensure!(
        ids(env
            .list(by(ContainerFilter {
                state: Some(ContainerStateValue {
                    state: ContainerState::ContainerCreated as i32
                }),
                ..Default::default()
            }))
            .await?)
            == {
                let mut v = vec![created.clone(), elsewhere.clone()];
                v.sort();
                v
            }
    );
    ensure!(
        ids(env
            .list(by(ContainerFilter {
                pod_sandbox_id: other_pod.0[..12].into(),
                ..Default::default()
            }))
            .await?)
            == std::slice::from_ref(&elsewhere)
    );
    ensure!(
        ids(env
            .list(by(ContainerFilter {
                label_selector: HashMap::from([("app".to_owned(), "db".to_owned())]),
                ..Default::default()
            }))
            .await?)
            == std::slice::from_ref(&created)
    );
    let listed = env
        .list(by(ContainerFilter {
            id: running.clone(),
            ..Default::default()
        }))
        .await?;
    let c = listed.first().context("not listed")?;
    ensure!(
        c.labels == config.labels
            && c.annotations == config.annotations
            && c.pod_sandbox_id == pod.0
    );

    // Removing a running container stops it first.
    env.remove(&running).await?;
    env.remove(&created).await?;
    ensure!(ids(env.list(None).await?) == [elsewhere]);
    Ok(())
}

#[tokio::test]
async fn failed_creates_leave_nothing_behind() -> Result<()> {
    let mut env = Env::new().await?;
    let pod = env.pod("failures").await?;
    let snapshots = env.active_snapshots().await?;
    let code = |r: Result<String, tonic::Status>| r.err().map(|s| s.code());

    // containerd refuses a label over 4096 bytes: after the snapshot and
    // the FIFOs were made.
    let mut big = env.busybox("victim", &["true"]);
    big.labels.insert("big".into(), "x".repeat(5000));
    let r = env.create(&pod, big).await;
    ensure!(code(r.clone()) == Some(Code::InvalidArgument), "{r:?}");
    // A bind mount source that cannot be made: the spec fails.
    let mut bad_mount = env.busybox("victim", &["true"]);
    bad_mount.mounts = vec![Mount {
        container_path: "/data".into(),
        host_path: "/proc/no-such-dir/data".into(),
        ..Mount::default()
    }];
    let r = env.create(&pod, bad_mount).await;
    ensure!(r.is_err(), "{r:?}");
    // No such image, no such pod, no metadata.
    let mut missing = env.busybox("victim", &["true"]);
    missing.image = Some(ImageSpec {
        image: "example.invalid/nothing:1".into(),
        ..ImageSpec::default()
    });
    ensure!(code(env.create(&pod, missing).await) == Some(Code::NotFound));
    let nowhere = (String::from("0000000000000000dead"), pod.1.clone());
    ensure!(
        code(env.create(&nowhere, env.busybox("victim", &["true"])).await) == Some(Code::NotFound)
    );
    let mut anonymous = env.busybox("victim", &["true"]);
    anonymous.metadata = None;
    ensure!(code(env.create(&pod, anonymous).await) == Some(Code::InvalidArgument));

    ensure!(env.list(None).await?.is_empty());
    ensure!(
        env.container_dirs().is_empty(),
        "{:?}",
        env.container_dirs()
    );
    ensure!(env.containerd_containers().await? == std::slice::from_ref(&pod.0));
    ensure!(env.active_snapshots().await? == snapshots, "snapshots left");

    // The name was released every time: it can be used now, once.
    let id = env.create(&pod, env.busybox("victim", &["true"])).await?;
    let again = env.create(&pod, env.busybox("victim", &["true"])).await;
    ensure!(code(again) == Some(Code::AlreadyExists));
    ensure!(env.list(None).await?.len() == 1);

    // A pod that is not ready: no new containers, and no starts.
    env.rt
        .stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: pod.0.clone(),
        })
        .await?;
    let r = env.create(&pod, env.busybox("late", &["true"])).await;
    ensure!(code(r) == Some(Code::FailedPrecondition));
    let r = env
        .rt
        .start_container(StartContainerRequest {
            container_id: id.clone(),
        })
        .await;
    ensure!(
        r.as_ref().err().map(|s| s.code()) == Some(Code::FailedPrecondition),
        "{r:?}"
    );
    let status = env.state(&id).await?;
    ensure!(
        status.reason == "StartError" && status.exit_code == 128,
        "{status:?}"
    );
    env.remove(&id).await?;
    ensure!(
        env.container_dirs().is_empty(),
        "{:?}",
        env.container_dirs()
    );
    Ok(())
}

#[tokio::test]
async fn reopen_log_and_update_resources() -> Result<()> {
    let mut env = Env::new().await?;
    let pod = env.pod("resources").await?;
    let mut config = env.busybox(
        "ticker",
        &[
            "sh",
            "-c",
            "i=0; while true; do echo line $i; i=$((i+1)); sleep 1; done",
        ],
    );
    config.linux = Some(LinuxContainerConfig {
        resources: Some(LinuxContainerResources {
            memory_limit_in_bytes: 64 << 20,
            ..LinuxContainerResources::default()
        }),
        ..LinuxContainerConfig::default()
    });
    let id = env.run(&pod, config.clone()).await?;
    let log = PathBuf::from(env.state(&id).await?.log_path);
    wait_for_records(&log, 1, Duration::from_secs(10)).await?;

    // The kubelet rotates: rename, then ReopenContainerLog.
    let rotated = log.with_extension("log.1");
    std::fs::rename(&log, &rotated)?;
    env.rt
        .reopen_container_log(ReopenContainerLogRequest {
            container_id: id.clone(),
        })
        .await?;
    let fresh = wait_for_records(&log, 1, Duration::from_secs(10)).await?;
    ensure!(fresh[0].content.starts_with("line "), "{fresh:?}");
    let old = read_log_records(&rotated)?;
    let last_old: u32 = old.last().context("empty")?.content[5..].parse()?;
    let first_new: u32 = fresh[0].content[5..].parse()?;
    ensure!(
        first_new > last_old,
        "old ends {last_old}, new starts {first_new}"
    );

    // Resources: the running task's cgroup, the status and the spec.
    let cgroup = PathBuf::from("/sys/fs/cgroup/memory/k8s.io").join(&id);
    let limit = |p: &Path| -> Result<i64> {
        Ok(std::fs::read_to_string(p.join("memory.limit_in_bytes"))?
            .trim()
            .parse()?)
    };
    ensure!(limit(&cgroup)? == 64 << 20);
    let update = |id: &str, bytes: i64| UpdateContainerResourcesRequest {
        container_id: id.into(),
        linux: Some(LinuxContainerResources {
            memory_limit_in_bytes: bytes,
            ..LinuxContainerResources::default()
        }),
        ..UpdateContainerResourcesRequest::default()
    };
    env.rt
        .update_container_resources(update(&id, 48 << 20))
        .await?;
    ensure!(
        limit(&cgroup)? == 48 << 20,
        "cgroup limit {}",
        limit(&cgroup)?
    );
    env.check_memory_limit(&id, 48 << 20).await?;

    // A created container: the spec alone, applied when it starts.
    let waiting = env
        .create(&pod, {
            let mut c = config.clone();
            c.metadata = Some(ContainerMetadata {
                name: "waiting".into(),
                attempt: 0,
            });
            c.log_path = "waiting/0.log".into();
            c
        })
        .await?;
    env.rt
        .update_container_resources(update(&waiting, 40 << 20))
        .await?;
    env.start(&waiting).await?;
    ensure!(limit(&PathBuf::from("/sys/fs/cgroup/memory/k8s.io").join(&waiting))? == 40 << 20);

    // An exited container: its spec and status take the update, as
    // containerd's do; its log cannot be reopened.
    env.stop(&id, 0).await?;
    env.rt
        .update_container_resources(update(&id, 32 << 20))
        .await?;
    env.check_memory_limit(&id, 32 << 20).await?;
    let r = env
        .rt
        .reopen_container_log(ReopenContainerLogRequest {
            container_id: id.clone(),
        })
        .await;
    ensure!(
        r.as_ref().err().map(|s| s.code()) == Some(Code::FailedPrecondition),
        "{r:?}"
    );
    for id in [&id, &waiting] {
        env.remove(id).await?;
    }
    Ok(())
}

/// A runtime's `runtime_path` is the shim binary containerd starts for the
/// tasks of its pods, the pause container's and the app containers' alike
/// (containerd's `WithRuntimePath`): a wrapper there logs each call, then
/// runs the real shim.
#[tokio::test]
async fn tasks_start_through_the_runtime_path() -> Result<()> {
    let shim = Path::new("/usr/bin/containerd-shim-runc-v2");
    ensure!(
        shim.exists(),
        "{} is missing: install containerd (apt-get install containerd)",
        shim.display()
    );
    let dir = tempfile::tempdir()?;
    let calls = dir.path().join("calls");
    let wrapper = dir.path().join("traced-shim");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\nexec {} \"$@\"\n",
            calls.display(),
            shim.display()
        ),
    )?;
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    // A version 2 file's `runtimes` replaces the default one, runc too.
    let runtime = format!(
        "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n\
         runtime_type = \"io.containerd.runc.v2\"\n\
         [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.traced]\n\
         runtime_type = \"io.containerd.runc.v2\"\n\
         runtime_path = {:?}\n",
        wrapper.display().to_string()
    );
    let mut env = Env::with_tables(&runtime).await?;
    let pod = env.pod_of_handler("traced", "traced").await?;
    let id = env.run(&pod, env.busybox("app", &["sleep", "60"])).await?;
    let calls = std::fs::read_to_string(&calls).context("the wrapper was never called")?;
    for (what, task) in [("pause", &pod.0), ("app", &id)] {
        ensure!(
            calls
                .lines()
                .any(|l| l.contains(&format!("-id {task}")) && l.ends_with("start")),
            "no shim start of the {what} task {task} through the runtime path:\n{calls}"
        );
    }
    env.rt
        .stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: pod.0.clone(),
        })
        .await?;
    env.rt
        .remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: pod.0.clone(),
        })
        .await?;
    Ok(())
}
