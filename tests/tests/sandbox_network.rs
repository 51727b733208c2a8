//! Host networking and sandbox files against the real kernel and the real
//! CNI plugins (Debian's `containernetworking-plugins` in /usr/lib/cni):
//! pinned netns, bridge + host-local + portmap setup/teardown with
//! pod-to-pod traffic, failure cleanup, and the sandbox files with their
//! shm tmpfs. Needs root; every test leases its own bridge and subnet.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cri_api::ids::SandboxId;
use cri_api::v1;
use cri_sandbox::cni::{CniError, CniNetwork, LibCni, LibCniBuilder, SandboxNetwork};
use cri_sandbox::files::{IpcMode, SandboxFiles, SandboxFilesConfig};
use cri_sandbox::host::{LinuxMounts, LinuxNetns};
use cri_sandbox::netns::NetnsManager;
use cri_tests::components::{Component, CNI_BIN_DIR};
use cri_tests::cri::{in_netns, stdout_ok};
use cri_tests::TestNetwork;
use serde_json::{json, Value};

/// Fails (never skips) when something this suite runs is missing.
fn require_host() -> Result<()> {
    ensure!(
        nix::unistd::geteuid().is_root(),
        "the sandbox network suite must run as root"
    );
    for c in [
        Component::CniBridge,
        Component::CniHostLocal,
        Component::CniLoopback,
        Component::CniPortmap,
        Component::Busybox,
        Component::Ip,
        Component::Iptables,
    ] {
        c.path()?;
    }
    ensure!(
        Path::new("/usr/bin/nsenter").exists(),
        "nsenter not found: apt-get install -y util-linux"
    );
    Ok(())
}

fn run(program: &str, args: &[&str]) -> Result<Output> {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {program} {args:?}"))
}

/// The mountinfo lines whose mount point is `path`.
fn mounts_at(path: &Path) -> Vec<String> {
    let target = path.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(target.as_str()))
        .map(str::to_owned)
        .collect()
}

fn new_sandbox_id() -> Result<SandboxId> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(SandboxId(hex::encode(bytes)))
}

/// Unpins every netns made by a test and unmounts extra mounts, also when
/// the test fails half way (the bridge goes with the `TestNetwork`).
#[derive(Default)]
struct HostGuard {
    netns: Vec<PathBuf>,
    mounts: Vec<PathBuf>,
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        for path in self.netns.iter().chain(self.mounts.iter()) {
            let _ = nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH);
        }
        for path in &self.netns {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A temp dir with the conf dir, cache dir, host-local data dir and netns
/// dir of one test.
struct Dirs {
    tmp: tempfile::TempDir,
}

impl Dirs {
    fn new() -> Result<Dirs> {
        Ok(Dirs {
            tmp: tempfile::Builder::new()
                .prefix("cri-sandbox-net-")
                .tempdir()?,
        })
    }
    fn conf(&self) -> PathBuf {
        self.tmp.path().join("net.d")
    }
    fn cache(&self) -> PathBuf {
        self.tmp.path().join("cni-cache")
    }
    fn ipam(&self) -> PathBuf {
        self.tmp.path().join("ipam")
    }
    fn netns(&self) -> PathBuf {
        self.tmp.path().join("netns")
    }

    fn write_conflist(&self, conflist: &Value) -> Result<Vec<u8>> {
        std::fs::create_dir_all(self.conf())?;
        let bytes = serde_json::to_vec_pretty(conflist)?;
        std::fs::write(self.conf().join("10-test.conflist"), &bytes)?;
        Ok(bytes)
    }

    fn cni(&self) -> Result<LibCni> {
        Ok(
            LibCniBuilder::new(vec![PathBuf::from(CNI_BIN_DIR)], self.conf())
                .with_cache_dir(self.cache())
                .with_plugin_timeout(Duration::from_secs(30))
                .build()?,
        )
    }

    fn cache_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.cache().join("results"))
            .map(|r| {
                r.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Addresses host-local holds for `network` (its files named by IP).
    fn allocated_ips(&self, network: &str) -> Vec<String> {
        std::fs::read_dir(self.ipam().join(network))
            .map(|r| {
                r.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn bridge_plugin(net: &TestNetwork, ipam_dir: &Path, subnet: &str) -> Value {
    json!({
        "type": "bridge",
        "bridge": net.bridge,
        "isGateway": true,
        "ipMasq": false,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": subnet}]],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": ipam_dir,
        },
    })
}

fn conflist(net: &TestNetwork, plugins: Vec<Value>) -> Value {
    json!({"cniVersion": "1.0.0", "name": net.name, "plugins": plugins})
}

fn pod(id: &SandboxId, netns: &Path, name: &str) -> SandboxNetwork {
    SandboxNetwork {
        pod_name: name.into(),
        pod_namespace: "sandbox-network-test".into(),
        pod_uid: format!("uid-{name}"),
        ..SandboxNetwork::new(id.clone(), netns)
    }
}

/// The host end of the pod's veth: the result interface outside any
/// sandbox that is not the bridge.
fn host_veth(result: &cri_sandbox::cni::CniResult, bridge: &str) -> Option<String> {
    result
        .interfaces
        .iter()
        .find(|(name, c)| {
            c.sandbox.is_empty() && name.as_str() != bridge && name.as_str() != "eth0"
        })
        .map(|(name, _)| name.clone())
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

fn bridge_ports(bridge: &str) -> Vec<String> {
    std::fs::read_dir(Path::new("/sys/class/net").join(bridge).join("brif"))
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Sends a line over TCP from the netns `from` to a busybox `nc` listener
/// in `to` and returns what the listener received.
fn tcp_roundtrip(from: &Path, to: &Path, to_ip: &str, port: u16) -> Result<String> {
    let mut listener = Command::new("nsenter")
        .arg(format!("--net={}", to.display()))
        .args(["/bin/busybox", "nc", "-l", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("start nc listener")?;
    let result = (|| -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let ss = stdout_ok(
                in_netns(to, &["/bin/busybox", "netstat", "-ltn"])?,
                "netstat",
            )?;
            if ss.contains(&format!(":{port} ")) {
                break;
            }
            ensure!(Instant::now() < deadline, "nc never listened on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let client = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "echo hello-over-the-bridge | timeout 5 nsenter --net={} /bin/busybox nc -w 2 {to_ip} {port}",
                from.display()
            ))
            .output()
            .context("run nc client")?;
        let _ = client;
        let deadline = Instant::now() + Duration::from_secs(5);
        while listener.try_wait()?.is_none() {
            ensure!(Instant::now() < deadline, "nc listener did not finish");
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut received = String::new();
        if let Some(mut out) = listener.stdout.take() {
            out.read_to_string(&mut received)?;
        }
        Ok(received)
    })();
    let _ = listener.kill();
    let _ = listener.wait();
    result
}

#[tokio::test]
async fn netns_is_pinned_and_unpinned() -> Result<()> {
    require_host()?;
    let dirs = Dirs::new()?;
    let mut guard = HostGuard::default();
    let manager = LinuxNetns::new(dirs.netns());

    let ns = manager.create().await?;
    guard.netns.push(ns.path().to_path_buf());
    let path = ns.path().to_path_buf();
    assert_eq!(path.parent(), Some(dirs.netns().as_path()));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let groups: Vec<usize> = name.split('-').skip(1).map(str::len).collect();
    assert!(
        name.starts_with("cni-") && groups == [8, 4, 4, 4, 12],
        "{name}"
    );

    let mounts = mounts_at(&path);
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    assert!(mounts[0].contains(" - nsfs "), "{}", mounts[0]);
    let links = stdout_ok(in_netns(&path, &["ip", "-o", "link"])?, "ip link")?;
    assert_eq!(
        links.lines().count(),
        1,
        "a fresh netns has only lo: {links}"
    );
    assert!(links.contains("lo:"), "{links}");
    let own = std::fs::read_link("/proc/self/ns/net")?;
    let pinned = stdout_ok(
        in_netns(&path, &["readlink", "/proc/self/ns/net"])?,
        "readlink",
    )?;
    assert_ne!(
        pinned.trim(),
        own.display().to_string(),
        "not the test's own netns"
    );
    assert!(!manager.is_closed(&path).await?);

    manager.remove(&path).await?;
    assert!(
        mounts_at(&path).is_empty(),
        "mount left at {}",
        path.display()
    );
    assert!(!path.exists());
    manager.remove(&path).await?;
    assert!(manager.is_closed(&path).await?);
    Ok(())
}

/// `use_internal_loopback`: lo of a fresh netns is down until the manager
/// sets it up, as `ip` then shows; this test's own netns is left alone.
#[tokio::test]
async fn loopback_is_set_up_in_the_pinned_netns_only() -> Result<()> {
    require_host()?;
    let dirs = Dirs::new()?;
    let mut guard = HostGuard::default();
    let manager = LinuxNetns::new(dirs.netns());
    let ns = manager.create().await?;
    guard.netns.push(ns.path().to_path_buf());
    let lo = |path: &Path| -> Result<String> {
        stdout_ok(
            in_netns(path, &["ip", "-o", "link", "show", "lo"])?,
            "ip link show lo",
        )
    };
    let before = lo(ns.path())?;
    assert!(
        !before.contains(",UP"),
        "lo of a fresh netns is down: {before}"
    );
    let own_before = std::fs::read_link("/proc/self/ns/net")?;

    manager.set_loopback_up(ns.path()).await?;
    let after = lo(ns.path())?;
    assert!(after.contains(",UP"), "lo is up: {after}");
    let ping = run(
        "nsenter",
        &[
            &format!("--net={}", ns.path().display()),
            "/bin/busybox",
            "ping",
            "-c1",
            "-W2",
            "127.0.0.1",
        ],
    )?;
    assert!(
        ping.status.success(),
        "127.0.0.1 answers in the pod netns: {}",
        String::from_utf8_lossy(&ping.stdout)
    );
    assert_eq!(std::fs::read_link("/proc/self/ns/net")?, own_before);
    // Twice is fine; a path that is no netns is an error naming it.
    manager.set_loopback_up(ns.path()).await?;
    let missing = dirs.netns().join("cni-missing");
    let err = manager
        .set_loopback_up(&missing)
        .await
        .err()
        .context("missing netns")?;
    assert!(err.to_string().contains("cni-missing"), "{err}");
    manager.remove(ns.path()).await?;
    Ok(())
}

#[tokio::test]
async fn netns_dir_can_be_made_shared() -> Result<()> {
    require_host()?;
    let dirs = Dirs::new()?;
    let mut guard = HostGuard::default();
    guard.mounts.push(dirs.netns());
    let manager = LinuxNetns::new(dirs.netns()).with_shared_dir();
    let ns = manager.create().await?;
    guard.netns.push(ns.path().to_path_buf());
    let dir_mounts = mounts_at(&dirs.netns());
    assert!(
        dir_mounts.iter().any(|l| l.contains(" shared:")),
        "{dir_mounts:?}"
    );
    manager.remove(ns.path()).await?;
    assert!(mounts_at(ns.path()).is_empty());
    Ok(())
}

#[tokio::test]
async fn bridge_network_connects_pods_and_tears_down_cleanly() -> Result<()> {
    require_host()?;
    let net = TestNetwork::lease()?;
    let dirs = Dirs::new()?;
    let mut guard = HostGuard::default();
    let conf_bytes = dirs.write_conflist(&conflist(
        &net,
        vec![
            bridge_plugin(&net, &dirs.ipam(), &net.subnet),
            json!({"type": "portmap", "capabilities": {"portMappings": true}}),
        ],
    ))?;
    let cni = dirs.cni()?;
    cni.status().await?;
    let manager = LinuxNetns::new(dirs.netns());

    // Pod "a" publishes a host port: portmap gets it through runtimeConfig.
    let host_port = 40000 + net.subnet.split('.').nth(2).unwrap_or("0").parse::<i32>()?;
    let mut pods = Vec::new();
    for name in ["a", "b"] {
        let ns = manager.create().await?;
        guard.netns.push(ns.path().to_path_buf());
        let id = new_sandbox_id()?;
        let mut sandbox = pod(&id, ns.path(), name);
        if name == "a" {
            sandbox.port_mappings = vec![v1::PortMapping {
                protocol: v1::Protocol::Tcp as i32,
                container_port: 7777,
                host_port,
                host_ip: String::new(),
            }];
        }
        let result = cni.setup(&sandbox).await?;
        pods.push((sandbox, result));
    }

    let mut ips = Vec::new();
    for (sandbox, result) in &pods {
        let netns = &sandbox.netns_path;
        let (ip, extra) = result
            .pod_ips("ipv4")
            .context("eth0 has no address in the cni result")?;
        assert!(extra.is_empty(), "{extra:?}");
        assert!(net.contains(&ip), "{ip} not in {}", net.subnet);
        let eth0 = &result.interfaces["eth0"];
        assert_eq!(eth0.sandbox, netns.display().to_string());
        assert_eq!(
            eth0.ip_configs[0].gateway.map(|g| g.to_string()),
            Some(net.gateway.clone())
        );
        assert!(
            result.routes.iter().any(|r| r.dst == "0.0.0.0/0"),
            "{:?}",
            result.routes
        );

        let addrs = stdout_ok(
            in_netns(netns, &["ip", "-o", "-4", "addr", "show", "dev", "eth0"])?,
            "ip addr",
        )?;
        assert!(addrs.contains(&format!("inet {ip}/24")), "{addrs}");
        let lo = stdout_ok(
            in_netns(netns, &["ip", "-o", "link", "show", "lo"])?,
            "ip link lo",
        )?;
        assert!(lo.contains(",UP"), "lo is not up: {lo}");

        let id = sandbox.sandbox_id.to_string();
        assert!(dirs
            .cache_files()
            .contains(&format!("{}-{id}-eth0", net.name)));
        assert!(dirs
            .cache_files()
            .contains(&format!("cni-loopback-{id}-lo")));
        let entry = cni
            .cache()
            .read(&net.name, &id, "eth0")
            .context("no cache entry")?;
        assert_eq!(entry.config, conf_bytes);
        assert_eq!(entry.netns, netns.display().to_string());
        assert_eq!(
            entry.result.as_ref().and_then(|r| r["cniVersion"].as_str()),
            Some("1.0.0")
        );
        assert!(dirs.allocated_ips(&net.name).contains(&ip));
        ips.push(ip);
    }

    let dnat = format!("--dport {host_port} ");
    let rules = stdout_ok(run("iptables-save", &["-t", "nat"])?, "iptables-save")?;
    assert!(
        rules.contains(&dnat),
        "no DNAT rule for host port {host_port}:\n{rules}"
    );

    // Pod to pod over the bridge, and host to pod through the gateway.
    let (a, b) = (&pods[0].0.netns_path, &pods[1].0.netns_path);
    let received = tcp_roundtrip(a, b, &ips[1], 7777)?;
    assert_eq!(received.trim(), "hello-over-the-bridge");
    let ping = run("/bin/busybox", &["ping", "-c1", "-W2", &ips[0]])?;
    assert!(
        ping.status.success(),
        "host cannot ping {}: {:?}",
        ips[0],
        ping
    );

    // Teardown releases everything, and may be repeated.
    let (sandbox, result) = &pods[0];
    let veth = host_veth(result, &net.bridge).context("no host veth in the result")?;
    assert!(link_exists(&veth));
    cni.teardown(sandbox).await?;
    assert!(!link_exists(&veth), "veth {veth} left after teardown");
    let rules = stdout_ok(run("iptables-save", &["-t", "nat"])?, "iptables-save")?;
    assert!(
        !rules.contains(&dnat),
        "DNAT rule for {host_port} left:\n{rules}"
    );
    let eth0 = in_netns(&sandbox.netns_path, &["ip", "link", "show", "eth0"])?;
    assert!(!eth0.status.success(), "eth0 left in the pod netns");
    assert!(
        !dirs.allocated_ips(&net.name).contains(&ips[0]),
        "{} still allocated",
        ips[0]
    );
    let id = sandbox.sandbox_id.to_string();
    assert!(
        !dirs.cache_files().iter().any(|f| f.contains(&id)),
        "{:?}",
        dirs.cache_files()
    );
    cni.teardown(sandbox).await?;

    // The second pod, with its netns already gone: teardown still succeeds.
    let (sandbox, _) = &pods[1];
    manager.remove(&sandbox.netns_path).await?;
    let gone = SandboxNetwork {
        netns_path: PathBuf::new(),
        ..sandbox.clone()
    };
    cni.teardown(&gone).await?;
    assert!(
        dirs.allocated_ips(&net.name).is_empty(),
        "{:?}",
        dirs.allocated_ips(&net.name)
    );
    assert!(dirs.cache_files().is_empty(), "{:?}", dirs.cache_files());
    // The kernel destroys the veth of a dropped netns asynchronously.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !bridge_ports(&net.bridge).is_empty() {
        ensure!(
            Instant::now() < deadline,
            "veth left after the netns was removed: {:?}",
            bridge_ports(&net.bridge)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Setup that fails at `plugins` leaves no veth, cache entry or address.
async fn failed_setup_leaves_nothing(
    plugins: impl Fn(&TestNetwork, &Dirs) -> Vec<Value>,
    expect: &str,
) -> Result<()> {
    require_host()?;
    let net = TestNetwork::lease()?;
    let dirs = Dirs::new()?;
    let mut guard = HostGuard::default();
    dirs.write_conflist(&conflist(&net, plugins(&net, &dirs)))?;
    let cni = dirs.cni()?;
    let manager = LinuxNetns::new(dirs.netns());
    let ns = manager.create().await?;
    guard.netns.push(ns.path().to_path_buf());
    let id = new_sandbox_id()?;

    let err = match cni.setup(&pod(&id, ns.path(), "failing")).await {
        Ok(result) => bail!("setup succeeded: {result:?}"),
        Err(e) => e,
    };
    let text = format!("{:#}", anyhow::Error::from(err));
    assert!(text.contains(expect), "{text}");
    assert!(
        bridge_ports(&net.bridge).is_empty(),
        "veth left: {:?}",
        bridge_ports(&net.bridge)
    );
    let links = stdout_ok(in_netns(ns.path(), &["ip", "-o", "link"])?, "ip link")?;
    assert!(!links.contains("eth0"), "{links}");
    assert!(dirs.cache_files().is_empty(), "{:?}", dirs.cache_files());
    assert!(
        dirs.allocated_ips(&net.name).is_empty(),
        "{:?}",
        dirs.allocated_ips(&net.name)
    );
    manager.remove(ns.path()).await?;
    Ok(())
}

#[tokio::test]
async fn missing_plugin_fails_setup_and_leaves_nothing() -> Result<()> {
    failed_setup_leaves_nothing(
        |net, dirs| {
            vec![
                bridge_plugin(net, &dirs.ipam(), &net.subnet),
                json!({"type": "cri-test-no-such-plugin"}),
            ]
        },
        "failed to find plugin \"cri-test-no-such-plugin\"",
    )
    .await
}

#[tokio::test]
async fn bad_ipam_subnet_fails_setup_and_leaves_nothing() -> Result<()> {
    failed_setup_leaves_nothing(
        |net, dirs| {
            let bad = net.subnet.replace("/24", "/33");
            vec![bridge_plugin(net, &dirs.ipam(), &bad)]
        },
        "plugin type=\"bridge\" failed (add)",
    )
    .await
}

#[tokio::test]
async fn setup_error_is_a_setup_variant() -> Result<()> {
    require_host()?;
    let dirs = Dirs::new()?;
    let cni = dirs.cni()?;
    // No config at all: not initialized, nothing run.
    let id = new_sandbox_id()?;
    let err = cni.setup(&pod(&id, Path::new("/nonexistent"), "x")).await;
    assert!(matches!(err, Err(CniError::NotInitialized(_))), "{err:?}");
    cni.teardown(&pod(&id, Path::new(""), "x")).await?;
    Ok(())
}

#[tokio::test]
async fn sandbox_files_and_shm_tmpfs() -> Result<()> {
    require_host()?;
    let dirs = Dirs::new()?;
    let mut guard = HostGuard::default();
    let root = dirs.tmp.path().join("root");
    let state = dirs.tmp.path().join("state");
    let files = SandboxFiles::new(&root, &state, Arc::new(LinuxMounts));
    let id = new_sandbox_id()?;
    guard.mounts.push(files.paths(&id).shm);

    let dns = v1::DnsConfig {
        servers: vec!["10.96.0.10".into()],
        searches: vec!["ns.svc.cluster.local".into(), "cluster.local".into()],
        options: vec!["ndots:5".into()],
    };
    let paths = files.create(
        &id,
        &SandboxFilesConfig {
            hostname: "web-0".into(),
            dns: Some(dns),
            ipc: IpcMode::Pod,
        },
    )?;
    assert_eq!(paths.root_dir, root.join("sandboxes").join(id.as_ref()));
    assert_eq!(std::fs::read_to_string(&paths.hostname)?, "web-0\n");
    assert_eq!(std::fs::read(&paths.hosts)?, std::fs::read("/etc/hosts")?);
    assert_eq!(
        std::fs::read_to_string(&paths.resolv_conf)?,
        "search ns.svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |p: &Path| -> Result<u32> { Ok(std::fs::metadata(p)?.permissions().mode() & 0o7777) };
    assert_eq!(mode(&paths.root_dir)?, 0o755);
    assert_eq!(mode(&paths.resolv_conf)?, 0o644);
    assert_eq!(mode(&paths.shm)?, 0o1777, "the tmpfs root is mode=1777");

    let mounts = mounts_at(&paths.shm);
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    let line = &mounts[0];
    let (per_mount, super_part) = line.split_once(" - ").context("mountinfo line")?;
    let options = per_mount.split(' ').nth(5).unwrap_or_default();
    for flag in ["nosuid", "nodev", "noexec"] {
        assert!(
            options.split(',').any(|o| o == flag),
            "{flag} missing: {line}"
        );
    }
    assert!(super_part.starts_with("tmpfs shm "), "{line}");
    assert!(super_part.contains("size=65536k"), "{line}");

    // Host IPC: no shm of its own; default host files.
    let host_ipc = new_sandbox_id()?;
    let host_paths = files.create(
        &host_ipc,
        &SandboxFilesConfig {
            hostname: String::new(),
            dns: None,
            ipc: IpcMode::Host,
        },
    )?;
    assert!(!host_paths.shm.exists());
    assert_eq!(
        std::fs::read(&host_paths.resolv_conf)?,
        std::fs::read("/etc/resolv.conf")?
    );
    let node = std::fs::read_to_string("/proc/sys/kernel/hostname")?;
    assert_eq!(
        std::fs::read_to_string(&host_paths.hostname)?,
        format!("{}\n", node.trim())
    );

    files.remove(&id)?;
    assert!(mounts_at(&paths.shm).is_empty(), "shm still mounted");
    assert!(!paths.root_dir.exists() && !paths.state_dir.exists());
    files.remove(&id)?;
    files.remove(&host_ipc)?;
    assert!(!host_paths.root_dir.exists());
    Ok(())
}
