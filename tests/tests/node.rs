//! The operator's commands and start-up guards against a real containerd:
//! `--version`, `config default` / `config dump`, `check` (ok, and failed
//! with the fix for each misconfiguration), refusing to start beside
//! containerd's own CRI plugin, one daemon per root and state dir, the
//! socket's group, and systemd's READY=1 / STOPPING=1.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use cri_tests::components::CNI_BIN_DIR;
use cri_tests::containerd::toml_string;
use cri_tests::server::server_binary;
use cri_tests::{ContainerdProcess, CriServer, Harness, ServerOptions, StartOutcome};
use nix::sys::signal::Signal;

/// Runs the cri-server binary with `args`.
async fn cri_server(args: &[&str]) -> Result<Output> {
    let binary = tokio::task::spawn_blocking(server_binary).await??;
    tokio::process::Command::new(&binary)
        .args(args)
        .env_remove("NOTIFY_SOCKET")
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("run {}", binary.display()))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `cri-server check --config <server's config> <extra>`.
async fn check(config: &Path, extra: &[&str]) -> Result<Output> {
    let config = config.to_string_lossy();
    let mut args = vec!["check", "--config", config.as_ref()];
    args.extend_from_slice(extra);
    cri_server(&args).await
}

/// A server config file for `check` runs, written next to a running
/// server's, with `edit` applied to its text.
fn edited_config(
    server: &CriServer,
    name: &str,
    edit: impl Fn(String) -> String,
) -> Result<PathBuf> {
    let original = std::fs::read_to_string(server.config_path())?;
    let path = server.dir().join(name);
    std::fs::write(&path, edit(original))?;
    Ok(path)
}

#[tokio::test]
async fn version_and_config_commands() -> Result<()> {
    let out = cri_server(&["--version"]).await?;
    ensure!(out.status.success(), "{}", text(&out));
    ensure!(
        String::from_utf8_lossy(&out.stdout).trim()
            == format!("cri-server {}", env!("CARGO_PKG_VERSION")),
        "{}",
        text(&out)
    );

    // `config default` and the dump of that file say the same: every key
    // of the default loads back to the same effective config.
    let dir = tempfile::tempdir()?;
    let out = cri_server(&["config", "default"]).await?;
    ensure!(out.status.success(), "{}", text(&out));
    let default = String::from_utf8(out.stdout)?;
    let file = dir.path().join("config.toml");
    std::fs::write(&file, &default)?;
    let out = cri_server(&["--config", &file.to_string_lossy(), "config", "dump"]).await?;
    ensure!(out.status.success(), "{}", text(&out));
    ensure!(
        out.stderr.is_empty(),
        "warnings for the default config: {}",
        text(&out)
    );
    let dumped: toml::Table = toml::from_str(&String::from_utf8(out.stdout)?)?;
    let server = &dumped["cri_server"];
    ensure!(
        server["root_dir"].as_str() == Some("/var/lib/containerd/io.containerd.grpc.v1.cri"),
        "{server}"
    );
    ensure!(
        server["listen"].as_str() == Some("/run/cri-server/cri-server.sock"),
        "{server}"
    );
    let cri = &dumped["plugins"]["io.containerd.grpc.v1.cri"];
    ensure!(
        cri["sandbox_image"].as_str() == Some("registry.k8s.io/pause:3.8"),
        "{cri}"
    );

    // Flags win over the file; credentials never leave the process.
    let secret = "correct-horse-battery-staple";
    std::fs::write(
        &file,
        format!(
            "version = 2\n[cri_server]\nlisten = \"/run/from-file.sock\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"r.example\".auth]\n\
             username = \"robot\"\npassword = \"{secret}\"\n"
        ),
    )?;
    let out = cri_server(&[
        "config",
        "dump",
        "--config",
        &file.to_string_lossy(),
        "--listen",
        "/run/from-flag.sock",
    ])
    .await?;
    let dump = text(&out);
    ensure!(out.status.success(), "{dump}");
    ensure!(!dump.contains(secret), "secret in the dump:\n{dump}");
    ensure!(dump.contains("listen = \"/run/from-flag.sock\""), "{dump}");
    ensure!(dump.contains("username = \"robot\""), "{dump}");
    ensure!(dump.contains("password = \"<redacted>\""), "{dump}");
    Ok(())
}

#[tokio::test]
async fn the_daemon_logs_its_config_file_and_check_passes_on_a_good_node() -> Result<()> {
    let harness = Harness::start().await?;
    let server = harness.server(ServerOptions::default()).await?;
    let log = server.log();
    let shown = format!("{} (--config)", server.config_path().display());
    ensure!(
        log.contains(&shown),
        "log does not name the config file {shown}:\n{log}"
    );

    // The running daemon holds the locks: its own dirs fail the check...
    let out = check(server.config_path(), &[]).await?;
    ensure!(!out.status.success(), "{}", text(&out));
    ensure!(
        text(&out).contains("FAILED  single daemon: another cri-server (pid"),
        "{}",
        text(&out)
    );
    // ...fresh ones pass every check.
    let fresh = edited_config(&server, "fresh.toml", |t| {
        t.replace("/root\"", "/root2\"")
            .replace("/state\"", "/state2\"")
    })?;
    let out = check(&fresh, &[]).await?;
    let report = text(&out);
    ensure!(out.status.success(), "{report}");
    for line in [
        "ok      single daemon",
        "ok      root dir",
        "ok      state dir",
        "ok      cni conf dir",
        "ok      cni bin dir",
        "ok      containerd version: 1.",
        "ok      snapshotter overlayfs",
        "ok      containerd's CRI plugin: not serving",
        "preflight ok",
    ] {
        ensure!(report.contains(line), "no {line:?} in:\n{report}");
    }
    Ok(())
}

#[tokio::test]
async fn check_fails_with_the_fix_for_each_misconfiguration() -> Result<()> {
    let harness = Harness::start().await?;
    let server = harness.server(ServerOptions::default()).await?;
    let dirs = |t: String| t.replace("/root\"", "/r2\"").replace("/state\"", "/s2\"");
    let not_a_dir = server.dir().join("not-a-dir");
    std::fs::write(&not_a_dir, "x")?;
    let quoted = toml_string(&not_a_dir.to_string_lossy());
    let root_in_a_file = not_a_dir.join("root").to_string_lossy().into_owned();
    let snapshotter = |t: String| {
        format!(
            "{}\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\nsnapshotter = \"zfs\"\n",
            dirs(t)
        )
    };
    let bin_dir = move |t: String| {
        dirs(t).replace(
            &format!("bin_dir = {}", toml_string(CNI_BIN_DIR)),
            &format!("bin_dir = {quoted}"),
        )
    };
    type Edit<'a> = &'a dyn Fn(String) -> String;
    let cases: [(&str, Edit<'_>, Vec<&str>, &str, &str); 4] = [
        (
            "unreachable containerd",
            &dirs,
            vec!["--containerd-address", "/nonexistent/containerd.sock"],
            "FAILED  containerd: no answer at /nonexistent/containerd.sock",
            "systemctl start containerd",
        ),
        (
            "disabled snapshotter",
            &snapshotter,
            vec![],
            "FAILED  snapshotter zfs: containerd has no snapshotter \"zfs\" (runtime handler(s) runc)",
            "disabled_plugins",
        ),
        ("cni bin dir is a file", &bin_dir, vec![], "FAILED  cni bin dir", "cni.bin_dir"),
        (
            "root dir not writable",
            &dirs,
            vec!["--root", &root_in_a_file],
            "FAILED  root dir",
            "root_dir",
        ),
    ];
    for (what, edit, args, problem, fix) in cases {
        let config = edited_config(&server, "case.toml", edit)?;
        let out = check(&config, &args).await?;
        let report = text(&out);
        ensure!(!out.status.success(), "{what}: check passed:\n{report}");
        ensure!(
            report.contains(problem),
            "{what}: no {problem:?} in:\n{report}"
        );
        ensure!(
            report
                .lines()
                .any(|l| l.trim_start().starts_with("fix:") && l.contains(fix)),
            "{what}: no fix mentioning {fix:?} in:\n{report}"
        );
        ensure!(report.contains("preflight failed"), "{what}:\n{report}");
    }
    Ok(())
}

/// containerd's own CRI plugin, as `start_with_cri` wants it.
fn cri_plugin_toml(net_d: &Path) -> String {
    format!(
        "[plugins.\"io.containerd.grpc.v1.cri\"]\n  restrict_oom_score_adj = true\n\
         [plugins.\"io.containerd.grpc.v1.cri\".cni]\n  bin_dir = {}\n  conf_dir = {}\n",
        toml_string(CNI_BIN_DIR),
        toml_string(&net_d.to_string_lossy())
    )
}

#[tokio::test]
async fn refuses_to_start_while_containerds_cri_plugin_serves() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let net_d = dir.path().join("net.d");
    std::fs::create_dir_all(&net_d)?;
    let containerd = ContainerdProcess::start_with_cri(&cri_plugin_toml(&net_d)).await?;

    let outcome = CriServer::try_start(&containerd, ServerOptions::default()).await?;
    let StartOutcome::Exited { status, log } = outcome else {
        anyhow::bail!("cri-server started beside containerd's CRI plugin");
    };
    ensure!(!status.success(), "{status}");
    for needle in [
        "io.containerd.grpc.v1.cri is serving in namespace k8s.io",
        "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]",
        "--allow-containerd-cri",
    ] {
        ensure!(log.contains(needle), "no {needle:?} in the log:\n{log}");
    }

    // `check` says the same and fails; the override turns it into a warning.
    let server = CriServer::start(
        &containerd,
        ServerOptions {
            extra_args: vec!["--allow-containerd-cri".into()],
            ..ServerOptions::default()
        },
    )
    .await?;
    let mut client = server.runtime_client().await?;
    client
        .list_pod_sandbox(cri_api::v1::ListPodSandboxRequest { filter: None })
        .await?;
    let config = edited_config(&server, "check.toml", |t| {
        t.replace("/root\"", "/r2\"").replace("/state\"", "/s2\"")
    })?;
    let out = check(&config, &[]).await?;
    ensure!(!out.status.success(), "{}", text(&out));
    ensure!(
        text(&out).contains("FAILED  containerd's CRI plugin"),
        "{}",
        text(&out)
    );
    let out = check(&config, &["--allow-containerd-cri"]).await?;
    ensure!(out.status.success(), "{}", text(&out));
    ensure!(
        text(&out).contains("warning containerd's CRI plugin"),
        "{}",
        text(&out)
    );
    Ok(())
}

#[tokio::test]
async fn a_second_daemon_on_the_same_dirs_refuses_even_without_the_socket() -> Result<()> {
    let harness = Harness::start().await?;
    let first = harness.server(ServerOptions::default()).await?;
    // A script removes the first daemon's socket; the dirs stay locked.
    std::fs::remove_file(first.socket())?;
    let root = first.root_dir().to_string_lossy().into_owned();
    let state = first.state_dir().to_string_lossy().into_owned();
    let outcome = harness
        .try_server(ServerOptions {
            extra_args: vec!["--root".into(), root.clone(), "--state".into(), state],
            ..ServerOptions::default()
        })
        .await?;
    let StartOutcome::Exited { status, log } = outcome else {
        anyhow::bail!("a second cri-server started on {root}");
    };
    ensure!(!status.success(), "{status}");
    let pid = first.pid().context("first server gone")?;
    ensure!(
        log.contains(&format!(
            "another cri-server (pid {pid}) holds {root}/cri-server.lock"
        )),
        "{log}"
    );
    // Once the first is gone, the dirs are free again.
    drop(first);
    Ok(())
}

#[tokio::test]
async fn socket_group_and_systemd_notifications() -> Result<()> {
    let harness = Harness::start().await?;
    let dir = tempfile::tempdir()?;
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path)?;
    notify.set_nonblocking(true)?;
    let mut server = harness
        .server(ServerOptions {
            cri_server_toml: "socket_group = \"daemon\"".into(),
            env: vec![(
                "NOTIFY_SOCKET".into(),
                notify_path.to_string_lossy().into_owned(),
            )],
            ..ServerOptions::default()
        })
        .await?;
    let meta = std::fs::metadata(server.socket())?;
    ensure!(
        meta.gid() == 1,
        "socket gid {} (want daemon's, 1)",
        meta.gid()
    );
    ensure!(
        meta.permissions().mode() & 0o777 == 0o660,
        "mode {:o}",
        meta.mode()
    );

    // The harness returns once recovery is over; READY=1 has been sent.
    let messages = receive(&notify, "READY=1", Duration::from_secs(10)).await?;
    ensure!(
        messages.iter().any(|m| m.contains("READY=1")),
        "{messages:?}"
    );
    server.signal(Signal::SIGTERM)?;
    let messages = receive(&notify, "STOPPING=1", Duration::from_secs(10)).await?;
    ensure!(
        messages.iter().any(|m| m.contains("STOPPING=1")),
        "{messages:?}"
    );
    let status = server.wait_exit(Duration::from_secs(30)).await?;
    ensure!(status.success(), "{status}");
    Ok(())
}

/// Datagrams until one contains `want` (or `timeout`).
async fn receive(socket: &UnixDatagram, want: &str, timeout: Duration) -> Result<Vec<String>> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match socket.recv(&mut buf) {
            Ok(n) => {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = message.contains(want);
                seen.push(message);
                if done {
                    return Ok(seen);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                ensure!(
                    tokio::time::Instant::now() < deadline,
                    "no {want} within {timeout:?}; got {seen:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
