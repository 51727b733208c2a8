//! The spec builders' effects seen from inside real busybox containers
//! (containerd, runc, CNI): a read-only rootfs, dropped capabilities, the
//! run-as user and group, masked and read-only paths, the RuntimeDefault
//! seccomp profile and pod sysctls. Every case runs a script in a container
//! and checks its exit code and output (the CRI log), next to a control
//! container without the setting, so each effect is the setting's own.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cri_api::v1::runtime_service_client::RuntimeServiceClient;
use cri_api::v1::security_profile::ProfileType;
use cri_api::v1::*;
use cri_tests::cri::{container_config, pod_config, read_log_content};
use cri_tests::{CriServer, Harness, ServerOptions};
use tonic::transport::Channel;

type Runtime = RuntimeServiceClient<Channel>;

struct Env {
    harness: Harness,
    server: CriServer,
    rt: Runtime,
    logs: tempfile::TempDir,
}

/// A container's exit code and output.
#[derive(Debug)]
struct Outcome {
    exit_code: i32,
    output: String,
}

impl Env {
    async fn new() -> Result<Env> {
        let harness = Harness::start().await?;
        let server = harness
            .server(ServerOptions {
                cri_plugin_toml: "netns_mounts_under_state_dir = true\n".into(),
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
        // Everything but Version is Unavailable until recovery finished.
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(e) = rt.list_pod_sandbox(ListPodSandboxRequest::default()).await {
            ensure!(
                e.code() == tonic::Code::Unavailable && Instant::now() < deadline,
                "server not ready: {e}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Env {
            harness,
            server,
            rt,
            logs: tempfile::tempdir()?,
        })
    }

    /// Runs a pod (own network on the test bridge) with `sysctls`.
    async fn pod(
        &mut self,
        name: &str,
        sysctls: &[(&str, &str)],
    ) -> Result<(String, PodSandboxConfig)> {
        let config = PodSandboxConfig {
            linux: Some(LinuxPodSandboxConfig {
                sysctls: sysctls
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<HashMap<_, _>>(),
                ..LinuxPodSandboxConfig::default()
            }),
            ..pod_config(name, "spec-effects", self.logs.path())
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

    /// Creates and starts one container per case, then waits for each to
    /// exit and reads its log.
    async fn run_all(
        &mut self,
        pod: &(String, PodSandboxConfig),
        cases: &[(&str, LinuxContainerSecurityContext, &str)],
    ) -> Result<HashMap<String, Outcome>> {
        let mut ids = Vec::new();
        for (name, security, script) in cases {
            let config = ContainerConfig {
                log_path: format!("{name}.log"),
                linux: Some(LinuxContainerConfig {
                    security_context: Some(security.clone()),
                    ..LinuxContainerConfig::default()
                }),
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
            ids.push(((*name).to_owned(), id));
        }
        let mut outcomes = HashMap::new();
        for (name, id) in ids {
            let exit_code = self.wait_exited(&id).await?;
            let log = self
                .logs
                .path()
                .join(pod.1.metadata.as_ref().map_or("", |m| m.name.as_str()));
            let path = log.join(format!("{name}.log"));
            outcomes.insert(
                name,
                Outcome {
                    exit_code,
                    output: read_log_content(&path)?,
                },
            );
        }
        Ok(outcomes)
    }

    /// The exit code once container `id` exited.
    async fn wait_exited(&mut self, id: &str) -> Result<i32> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = self
                .rt
                .container_status(ContainerStatusRequest {
                    container_id: id.into(),
                    verbose: false,
                })
                .await?
                .into_inner()
                .status
                .context("no status")?;
            if status.state == ContainerState::ContainerExited as i32 {
                return Ok(status.exit_code);
            }
            if Instant::now() > deadline {
                bail!("container {id} did not exit");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn outcome<'a>(outcomes: &'a HashMap<String, Outcome>, name: &str) -> Result<&'a Outcome> {
    outcomes
        .get(name)
        .with_context(|| format!("no outcome for {name}"))
}

/// Asserts case `name` exited with `code` (0 or not) and its output contains `text`.
fn check(
    outcomes: &HashMap<String, Outcome>,
    name: &str,
    succeeds: bool,
    text: &str,
) -> Result<()> {
    let o = outcome(outcomes, name)?;
    ensure!(
        (o.exit_code == 0) == succeeds && o.output.contains(text),
        "{name}: expected {} with {text:?}, got {o:?}",
        if succeeds { "success" } else { "failure" }
    );
    Ok(())
}

fn seccomp(profile: ProfileType) -> Option<SecurityProfile> {
    Some(SecurityProfile {
        profile_type: profile as i32,
        localhost_ref: String::new(),
    })
}

#[tokio::test]
async fn security_context_takes_effect_inside_containers() -> Result<()> {
    let mut env = Env::new().await?;
    let pod = env.pod("security", &[]).await?;
    let default = LinuxContainerSecurityContext::default;
    let cases = [
        ("rw-rootfs", default(), "touch /probe && echo wrote"),
        (
            "ro-rootfs",
            LinuxContainerSecurityContext {
                readonly_rootfs: true,
                ..default()
            },
            "touch /probe 2>&1",
        ),
        (
            "caps-default",
            default(),
            "touch /tmp/f && chown 1:1 /tmp/f && echo chowned",
        ),
        (
            "caps-drop-chown",
            LinuxContainerSecurityContext {
                capabilities: Some(Capability {
                    drop_capabilities: vec!["CHOWN".into()],
                    ..Capability::default()
                }),
                ..default()
            },
            "touch /tmp/f && chown 1:1 /tmp/f 2>&1",
        ),
        (
            "run-as",
            LinuxContainerSecurityContext {
                run_as_user: Some(Int64Value { value: 1234 }),
                run_as_group: Some(Int64Value { value: 4321 }),
                ..default()
            },
            "echo uid=$(id -u) gid=$(id -g)",
        ),
        ("unmasked", default(), "echo size=$(wc -c < /proc/cpuinfo)"),
        (
            "masked",
            LinuxContainerSecurityContext {
                masked_paths: vec!["/proc/cpuinfo".into()],
                ..default()
            },
            "echo size=$(wc -c < /proc/cpuinfo)",
        ),
        (
            "readonly-path",
            LinuxContainerSecurityContext {
                readonly_paths: vec!["/tmp".into()],
                ..default()
            },
            "touch /tmp/x 2>&1",
        ),
        (
            "seccomp-unconfined",
            LinuxContainerSecurityContext {
                seccomp: seccomp(ProfileType::Unconfined),
                ..default()
            },
            "unshare -U true && echo unshared",
        ),
        (
            "seccomp-default",
            LinuxContainerSecurityContext {
                seccomp: seccomp(ProfileType::RuntimeDefault),
                ..default()
            },
            "unshare -U true 2>&1",
        ),
        (
            "seccomp-default-allows",
            LinuxContainerSecurityContext {
                seccomp: seccomp(ProfileType::RuntimeDefault),
                ..default()
            },
            "touch /tmp/f && chown 1:1 /tmp/f && echo allowed",
        ),
    ];
    let outcomes = env.run_all(&pod, &cases).await?;
    check(&outcomes, "rw-rootfs", true, "wrote")?;
    check(&outcomes, "ro-rootfs", false, "Read-only file system")?;
    check(&outcomes, "caps-default", true, "chowned")?;
    check(
        &outcomes,
        "caps-drop-chown",
        false,
        "Operation not permitted",
    )?;
    check(&outcomes, "run-as", true, "uid=1234 gid=4321")?;
    let unmasked = outcome(&outcomes, "unmasked")?;
    ensure!(
        unmasked.exit_code == 0 && !unmasked.output.contains("size=0"),
        "unmasked /proc/cpuinfo is empty: {unmasked:?}"
    );
    check(&outcomes, "masked", true, "size=0")?;
    check(&outcomes, "readonly-path", false, "Read-only file system")?;
    check(&outcomes, "seccomp-unconfined", true, "unshared")?;
    check(
        &outcomes,
        "seccomp-default",
        false,
        "Operation not permitted",
    )?;
    check(&outcomes, "seccomp-default-allows", true, "allowed")?;
    Ok(())
}

#[tokio::test]
async fn pod_sysctls_are_set_in_the_pod_namespaces() -> Result<()> {
    let mut env = Env::new().await?;
    let script = "echo port=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start) \
                  rmid=$(cat /proc/sys/kernel/shm_rmid_forced)";
    let tuned = env
        .pod(
            "tuned",
            &[
                ("net.ipv4.ip_unprivileged_port_start", "53"),
                ("kernel.shm_rmid_forced", "1"),
            ],
        )
        .await?;
    let plain = env.pod("plain", &[]).await?;
    let default = LinuxContainerSecurityContext::default;
    let tuned_out = env.run_all(&tuned, &[("read", default(), script)]).await?;
    let plain_out = env.run_all(&plain, &[("read", default(), script)]).await?;
    check(&tuned_out, "read", true, "port=53 rmid=1")?;
    // The kernel's defaults in a fresh network and IPC namespace.
    check(&plain_out, "read", true, "port=1024 rmid=0")?;
    Ok(())
}
