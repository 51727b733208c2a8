//! Tests of the harness itself against the real components: containerd (CRI plugin off, restartable), the registry and the images pushed to it, the OCI archive imported and run with runc, and teardown leaving nothing behind.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cri_tests::components::Component;
use cri_tests::images::{self, media_types as mt, ImageKind};
use cri_tests::teardown::{mounts_under, processes_referencing};
use cri_tests::{ContainerdProcess, CriServer, Harness, Registry, ServerOptions, StartOutcome};

/// A container id no other test (or test process) uses.
fn unique_id(name: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{name}-{}-{n}", std::process::id())
}

#[tokio::test]
async fn containerd_runs_without_the_cri_plugin_and_restarts() -> Result<()> {
    let mut containerd = ContainerdProcess::start().await?;
    let version = containerd.ctr_ok(&["version"]).await?;
    ensure!(version.contains("Server:"), "ctr version: {version}");

    let plugins = containerd.ctr_ok(&["plugins", "ls"]).await?;
    ensure!(
        plugins.contains("io.containerd.grpc.v1"),
        "plugins ls: {plugins}"
    );
    let cri_loaded = plugins.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&"cri") && fields.last() == Some(&"ok")
    });
    ensure!(!cri_loaded, "the CRI plugin is loaded:\n{plugins}");

    let first_pid = containerd.pid();
    let status = containerd.stop().await?;
    ensure!(containerd.pid().is_none());
    ensure!(
        std::os::unix::net::UnixStream::connect(containerd.socket()).is_err(),
        "containerd still accepts connections after stop ({status})"
    );
    ensure!(containerd.root().exists() && containerd.state().exists());

    containerd.start_again().await?;
    ensure!(containerd.pid().is_some() && containerd.pid() != first_pid);
    containerd.ctr_ok(&["version"]).await?;
    ensure!(containerd.log().contains("containerd successfully booted"));
    Ok(())
}

#[tokio::test]
async fn registry_serves_every_pushed_image() -> Result<()> {
    let registry = Registry::start().await?;
    let pushed = images::push_test_images(&registry).await?;
    let host = registry.host();
    ensure!(pushed.busybox == format!("{host}/library/busybox:latest"));
    ensure!(pushed.pause == format!("{host}/pause:3.8"));

    let busybox = &pushed.busybox_digests;
    let expectations = [
        (
            "library/busybox",
            "latest",
            mt::OCI_MANIFEST,
            &busybox.manifest,
        ),
        (
            "library/busybox",
            "1.35",
            mt::OCI_MANIFEST,
            &busybox.manifest,
        ),
        ("e2e/busybox", "latest", mt::OCI_MANIFEST, &busybox.manifest),
        (
            "pause",
            "3.8",
            mt::OCI_MANIFEST,
            &pushed.pause_digests.manifest,
        ),
        (
            "pause",
            "latest",
            mt::OCI_MANIFEST,
            &pushed.pause_digests.manifest,
        ),
        (
            "busybox",
            "docker",
            mt::DOCKER_MANIFEST,
            &pushed.docker_schema2_digests.manifest,
        ),
        (
            "library/busybox",
            "multiarch",
            mt::OCI_INDEX,
            &pushed.multiarch_index_digest,
        ),
    ];
    for (repo, tag, media_type, digest) in expectations {
        let response = registry.get_manifest(repo, tag).await?;
        ensure!(
            response.status == 200,
            "{repo}:{tag}: HTTP {}",
            response.status
        );
        ensure!(
            response.header("content-type") == Some(media_type),
            "{repo}:{tag}: content type {:?}",
            response.header("content-type")
        );
        ensure!(
            response.header("docker-content-digest") == Some(digest.as_str()),
            "{repo}:{tag}: digest {:?}, want {digest}",
            response.header("docker-content-digest")
        );
    }

    // The index names two platforms: the host's busybox and a foreign one.
    let index = registry
        .get_manifest("library/busybox", "multiarch")
        .await?;
    let index: serde_json::Value = serde_json::from_slice(&index.body)?;
    let platforms: Vec<(String, String)> = index["manifests"]
        .as_array()
        .context("index has no manifests")?
        .iter()
        .map(|m| {
            (
                m["platform"]["architecture"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                m["digest"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let host_arch = images::host_arch().to_string();
    let foreign_arch = images::foreign_arch().to_string();
    ensure!(
        platforms
            == vec![
                (host_arch.clone(), busybox.manifest.clone()),
                (
                    foreign_arch.clone(),
                    pushed.multiarch_platforms[1].manifest.clone()
                ),
            ],
        "index platforms: {platforms:?}"
    );

    // The foreign manifest's config really says the foreign architecture.
    let foreign = &pushed.multiarch_platforms[1];
    let config = registry
        .get(&format!("/v2/library/busybox/blobs/{}", foreign.config))
        .await?;
    let config: serde_json::Value = serde_json::from_slice(&config.body)?;
    ensure!(config["architecture"] == foreign_arch.as_str(), "{config}");
    ensure!(
        foreign.layers == busybox.layers,
        "the foreign image reuses the layer"
    );
    ensure!(pushed.docker_schema2_digests.config != busybox.config);
    Ok(())
}

/// `run <mode...> <private runc root and fifo dir> <image> <id> <argv...>`.
fn run_args(
    containerd: &ContainerdProcess,
    mode: &[&str],
    image: &str,
    id: &str,
    argv: &[&str],
) -> Vec<String> {
    let mut args: Vec<String> = vec!["run".into()];
    args.extend(mode.iter().map(|s| s.to_string()));
    args.extend(containerd.ctr_run_flags());
    args.extend([image.to_string(), id.to_string()]);
    args.extend(argv.iter().map(|s| s.to_string()));
    args
}

#[tokio::test]
async fn imported_archive_runs_busybox_and_pause_with_runc() -> Result<()> {
    let containerd = ContainerdProcess::start().await?;
    let archive = tempfile::NamedTempFile::new()?;
    let busybox = "docker.io/library/busybox:latest";
    let pause = "registry.k8s.io/pause:3.8";
    let multiarch = "docker.io/library/busybox:multiarch";
    images::write_oci_archive(
        archive.path(),
        &[
            (ImageKind::Busybox, busybox),
            (ImageKind::Pause, pause),
            (ImageKind::BusyboxMultiarch, multiarch),
        ],
    )?;
    let archive_path = archive.path().to_str().context("archive path")?;
    containerd
        .ctr_ok(&["images", "import", "--all-platforms", archive_path])
        .await?;
    let names = containerd.ctr_ok(&["images", "ls", "-q"]).await?;
    for name in [busybox, pause, multiarch] {
        ensure!(names.lines().any(|l| l == name), "{name} not in:\n{names}");
    }

    let echo = run_args(
        &containerd,
        &["--rm"],
        busybox,
        &unique_id("echo"),
        &["/bin/sh", "-c", "echo hi; id -un www"],
    );
    let out = containerd.ctr_ok(&echo).await?;
    ensure!(
        out.lines().collect::<Vec<_>>() == ["hi", "www"],
        "busybox printed {out:?}"
    );

    // pause runs until SIGTERM, then exits 0.
    let id = unique_id("pause");
    let run = tokio::process::Command::new(Component::Ctr.path()?)
        .env("PATH", cri_tests::components::CHILD_PATH)
        .arg("--address")
        .arg(containerd.socket())
        .args(["-n", "k8s.io"])
        .args(run_args(&containerd, &["--rm"], pause, &id, &[]))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    wait_for_task_status(&containerd, &id, "RUNNING").await?;
    containerd
        .ctr_ok(&["tasks", "kill", "--signal", "SIGTERM", &id])
        .await?;
    let out = tokio::time::timeout(Duration::from_secs(10), run.wait_with_output())
        .await
        .context("pause did not exit within 10s of SIGTERM")??;
    ensure!(
        out.status.success(),
        "pause exited with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

async fn wait_for_task_status(
    containerd: &ContainerdProcess,
    id: &str,
    status: &str,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let tasks = containerd.ctr_ok(&["tasks", "ls"]).await?;
        let found = tasks.lines().any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.first() == Some(&id) && fields.last() == Some(&status)
        });
        if found {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("task {id} never became {status}:\n{tasks}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn teardown_leaves_no_process_mount_or_directory() -> Result<()> {
    let harness = Harness::start().await?;
    let containerd = &harness.containerd;
    // containerd itself pulls every flavour from the registry.
    for image in [
        &harness.images.busybox,
        &harness.images.docker_schema2,
        &harness.images.multiarch,
        &harness.images.pause,
    ] {
        containerd
            .ctr_ok(&["images", "pull", "--plain-http", image])
            .await?;
    }
    let id = unique_id("sleeper");
    let busybox = &harness.images.busybox;
    let sleep = run_args(containerd, &["-d"], busybox, &id, &["sleep", "1000"]);
    containerd.ctr_ok(&sleep).await?;
    wait_for_task_status(containerd, &id, "RUNNING").await?;
    // One detached container in the default runc root too, as cri-server
    // creates them unless configured otherwise.
    let default_root_id = unique_id("default-root");
    let fifo_dir = containerd.dir().join("fifo");
    let fifo_dir = fifo_dir.to_str().context("fifo dir")?;
    containerd
        .ctr_ok(&[
            "run",
            "-d",
            "--fifo-dir",
            fifo_dir,
            busybox,
            &default_root_id,
            "sleep",
            "1000",
        ])
        .await?;
    wait_for_task_status(containerd, &default_root_id, "RUNNING").await?;
    let default_runc_state = Path::new("/run/containerd/runc/k8s.io").join(&default_root_id);
    let default_cgroup = Path::new("/sys/fs/cgroup/memory/k8s.io").join(&default_root_id);
    ensure!(default_runc_state.exists() && default_cgroup.exists());

    let dir = containerd.dir().to_path_buf();
    let registry_dir = harness.registry.dir().to_path_buf();
    let owners = processes_referencing(&dir);
    ensure!(
        owners
            .iter()
            .filter(|p| p.cmdline.iter().any(|a| a.contains("containerd-shim")))
            .count()
            == 2,
        "expected two shims: {owners:?}"
    );
    let container_pids =
        cri_tests::teardown::descendants(&owners.iter().map(|p| p.pid).collect::<Vec<_>>());
    ensure!(
        !container_pids.is_empty(),
        "no container processes under the shims"
    );
    ensure!(
        !mounts_under(&dir).is_empty(),
        "no rootfs mounts under {}",
        dir.display()
    );
    let sockets: Vec<PathBuf> = owners
        .iter()
        .filter_map(|p| cri_tests::teardown::shim_socket(&p.cmdline))
        .collect();
    ensure!(
        sockets.len() == 2 && sockets.iter().all(|s| s.exists()),
        "shim sockets: {sockets:?}"
    );

    drop(harness);

    ensure!(!dir.exists(), "{} still exists", dir.display());
    ensure!(
        !registry_dir.exists(),
        "{} still exists",
        registry_dir.display()
    );
    ensure!(
        processes_referencing(&dir).is_empty(),
        "processes left: {:?}",
        processes_referencing(&dir)
    );
    for pid in container_pids {
        ensure!(
            !cri_tests::teardown::is_alive(pid),
            "container process {pid} still runs"
        );
    }
    ensure!(
        mounts_under(&dir).is_empty(),
        "mounts left: {:?}",
        mounts_under(&dir)
    );
    let leaked: Vec<&PathBuf> = sockets.iter().filter(|s| s.exists()).collect();
    ensure!(leaked.is_empty(), "shim sockets left: {leaked:?}");
    ensure!(
        !default_runc_state.exists(),
        "runc state of {default_root_id} left behind"
    );
    ensure!(
        !default_cgroup.exists(),
        "cgroup of {default_root_id} left behind"
    );
    Ok(())
}

#[tokio::test]
async fn try_start_reports_an_early_exit_with_the_log() -> Result<()> {
    let containerd = ContainerdProcess::start().await?;
    let script_dir = tempfile::tempdir()?;
    let script = script_dir.path().join("fake-cri-server");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"args: $*\"\ncat \"$2\"\nexit 3\n",
    )?;
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;

    let opts = ServerOptions {
        binary: Some(script),
        registry: Some("127.0.0.1:5999".into()),
        sandbox_image: Some("127.0.0.1:5999/pause:3.8".into()),
        extra_args: vec!["--extra".into()],
        ..ServerOptions::default()
    };
    let StartOutcome::Exited { status, log } =
        CriServer::try_start(&containerd, opts.clone()).await?
    else {
        bail!("a script that exits 3 was reported as running");
    };
    ensure!(status.code() == Some(3), "status {status}");
    for expected in [
        "args: --config ",
        " --extra",
        "[cri_server]",
        &format!("containerd_address = \"{}\"", containerd.socket().display()),
        "containerd_namespace = \"k8s.io\"",
        "sandbox_image = \"127.0.0.1:5999/pause:3.8\"",
        "restrict_oom_score_adj = true",
        "bin_dir = \"/usr/lib/cni\"",
        "[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"127.0.0.1:5999\"]",
        "endpoint = [\"http://127.0.0.1:5999\"]",
    ] {
        ensure!(log.contains(expected), "{expected:?} not in log:\n{log}");
    }

    let err = CriServer::start(&containerd, opts)
        .await
        .err()
        .context("start succeeded")?;
    ensure!(
        format!("{err:#}").contains("exited during startup"),
        "{err:#}"
    );
    Ok(())
}

/// Runs one CNI plugin of a chain the way libcni does and returns its result.
async fn cni_plugin(
    plugin: &serde_json::Value,
    list: &serde_json::Value,
    prev: Option<&serde_json::Value>,
    netns: &Path,
    container_id: &str,
) -> Result<serde_json::Value> {
    let mut conf = plugin.clone();
    conf["name"] = list["name"].clone();
    conf["cniVersion"] = list["cniVersion"].clone();
    if let Some(prev) = prev {
        conf["prevResult"] = prev.clone();
    }
    let kind = conf["type"].as_str().context("plugin type")?.to_string();
    let mut child =
        tokio::process::Command::new(Path::new(cri_tests::components::CNI_BIN_DIR).join(&kind))
            .env("CNI_COMMAND", "ADD")
            .env("CNI_CONTAINERID", container_id)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", cri_tests::components::CNI_BIN_DIR)
            .env("PATH", cri_tests::components::CHILD_PATH)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
    let mut stdin = child.stdin.take().context("stdin")?;
    tokio::io::AsyncWriteExt::write_all(&mut stdin, &serde_json::to_vec(&conf)?).await?;
    drop(stdin);
    let out = child.wait_with_output().await?;
    ensure!(
        out.status.success(),
        "CNI {kind} ADD failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

#[tokio::test]
async fn cni_conflist_gives_a_pod_an_address_on_the_leased_bridge() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let netns = scratch.path().join("netns");
    std::fs::write(&netns, "")?;
    let created = tokio::process::Command::new("unshare")
        .arg(format!("--net={}", netns.display()))
        .arg("true")
        .env("PATH", cri_tests::components::CHILD_PATH)
        .status()
        .await?;
    ensure!(created.success(), "unshare --net failed with {created}");

    let outcome = async {
        let network = cri_tests::TestNetwork::lease()?;
        let other = cri_tests::TestNetwork::lease()?;
        ensure!(network.bridge != other.bridge && network.subnet != other.subnet);
        let list: serde_json::Value =
            serde_json::from_str(&network.conflist(&scratch.path().join("ipam")))?;
        let mut result: Option<serde_json::Value> = None;
        for plugin in list["plugins"].as_array().context("plugins")? {
            result = Some(cni_plugin(plugin, &list, result.as_ref(), &netns, "cni-test").await?);
        }
        let result = result.context("empty chain")?;
        let address = result["ips"][0]["address"].as_str().unwrap_or_default();
        let ip = address.split('/').next().unwrap_or_default();
        ensure!(
            network.contains(ip),
            "pod address {address} not in {}",
            network.subnet
        );
        let bridge = Path::new("/sys/class/net").join(&network.bridge);
        ensure!(bridge.exists(), "bridge {} was not created", network.bridge);
        drop(network);
        ensure!(
            !bridge.exists(),
            "bridge {} outlived its lease",
            bridge.display()
        );
        Ok(())
    }
    .await;
    cri_tests::teardown::unmount_all_under(scratch.path());
    outcome
}

/// A stand-in `cri-server`: reads `listen` from the config it is given and
/// execs a containerd whose built-in CRI plugin serves CRI v1 there. This
/// checks `CriServer` (config handoff, readiness via `Version`, clients over
/// the unix socket, signals, restart, teardown) against a real CRI server
/// while the real daemon is developed.
const CONTAINERD_AS_CRI_SERVER: &str = r#"#!/bin/sh
set -e
[ "$1" = --config ] || { echo "usage: $0 --config FILE" >&2; exit 2; }
dir=$(dirname "$2")
listen=$(sed -n 's/^listen = "\(.*\)"$/\1/p' "$2")
cat > "$dir/containerd-cri.toml" <<EOF
version = 2
root = "$dir/containerd-root"
state = "$dir/containerd-state"
[grpc]
  address = "$listen"
[ttrpc]
  address = "$listen.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
[plugins."io.containerd.grpc.v1.cri"]
  disable_apparmor = true
  restrict_oom_score_adj = true
[plugins."io.containerd.grpc.v1.cri".cni]
  conf_dir = "$dir/net.d"
EOF
exec containerd --config "$dir/containerd-cri.toml"
"#;

#[tokio::test]
async fn cri_server_is_ready_when_version_answers_and_restarts() -> Result<()> {
    let containerd = ContainerdProcess::start().await?;
    let script_dir = tempfile::tempdir()?;
    let script = script_dir.path().join("containerd-as-cri-server");
    std::fs::write(&script, CONTAINERD_AS_CRI_SERVER)?;
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let opts = ServerOptions {
        binary: Some(script),
        ..ServerOptions::default()
    };
    let mut server = CriServer::start(&containerd, opts).await?;
    let version = server
        .runtime_client()
        .await?
        .version(cri_api::v1::VersionRequest::default())
        .await?
        .into_inner();
    ensure!(version.runtime_api_version == "v1", "{version:?}");
    server
        .image_client()
        .await?
        .list_images(cri_api::v1::ListImagesRequest::default())
        .await?;

    let first_pid = server.pid().context("no pid")?;
    server.signal(nix::sys::signal::Signal::SIGTERM)?;
    server.wait_exit(Duration::from_secs(10)).await?;
    ensure!(server.pid().is_none());
    server.restart().await?;
    ensure!(server.pid().is_some_and(|pid| pid != first_pid));
    server
        .runtime_client()
        .await?
        .status(cri_api::v1::StatusRequest::default())
        .await?;

    let dir = server.dir().to_path_buf();
    drop(server);
    ensure!(!dir.exists(), "{} still exists", dir.display());
    ensure!(processes_referencing(&dir).is_empty());
    Ok(())
}
