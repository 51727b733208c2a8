//! Pod sandboxes end to end against a real containerd, runc and the CNI bridge: RunPodSandbox gives a pod an IP on the test bridge with `lo` up, pods reach each other, DNS config lands in resolv.conf, host-network pods get no netns, security context / sysctls / cgroup parent / oom score reach the pause process, a reused name is refused, a pause process killed from outside turns the pod NOTREADY, stop and remove are idempotent and leave no netns, mount, containerd object or dir, and a failing CNI plugin fails RunPodSandbox without leaving anything behind.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cri_api::v1::runtime_service_client::RuntimeServiceClient;
use cri_api::v1::{
    DnsConfig, Int64Value, LinuxPodSandboxConfig, LinuxSandboxSecurityContext,
    ListPodSandboxRequest, NamespaceMode, NamespaceOption, PodSandboxConfig, PodSandboxFilter,
    PodSandboxMetadata, PodSandboxState, PodSandboxStateValue, PodSandboxStatus,
    PodSandboxStatusRequest, RemovePodSandboxRequest, RunPodSandboxRequest, StopPodSandboxRequest,
};
use cri_tests::cri::{command, dir_names, in_netns, stdout_ok};
use cri_tests::{CriServer, Harness, ServerOptions};
use serde_json::Value;
use tonic::transport::Channel;
use tonic::Code;

type Client = RuntimeServiceClient<Channel>;

/// netns pins under the server's state dir (removed with it); the
/// unprivileged-port sysctl on, to see config sysctls arrive.
const PLUGIN_TOML: &str = "netns_mounts_under_state_dir = true\nenable_unprivileged_ports = true\n";

async fn start() -> Result<(Harness, CriServer)> {
    let harness = Harness::start().await?;
    let server = harness
        .server(ServerOptions {
            cri_plugin_toml: PLUGIN_TOML.into(),
            ..ServerOptions::default()
        })
        .await?;
    Ok((harness, server))
}

fn pod(name: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}-{}", std::process::id()),
            namespace: "cri-tests".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        labels: HashMap::from([("app".to_owned(), name.to_owned())]),
        annotations: HashMap::from([("cri-tests/pod".to_owned(), name.to_owned())]),
        ..PodSandboxConfig::default()
    }
}

fn security(config: &mut PodSandboxConfig) -> &mut LinuxSandboxSecurityContext {
    config
        .linux
        .get_or_insert_with(LinuxPodSandboxConfig::default)
        .security_context
        .get_or_insert_with(LinuxSandboxSecurityContext::default)
}

async fn run(client: &mut Client, config: PodSandboxConfig) -> Result<String, tonic::Status> {
    let resp = client
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        })
        .await?;
    Ok(resp.into_inner().pod_sandbox_id)
}

async fn status(client: &mut Client, id: &str) -> Result<PodSandboxStatus> {
    client
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: false,
        })
        .await?
        .into_inner()
        .status
        .context("empty status")
}

/// containerd's verbose `info` JSON.
async fn info(client: &mut Client, id: &str) -> Result<Value> {
    let resp = client
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: true,
        })
        .await?
        .into_inner();
    let text = resp.info.get("info").context("no info in verbose status")?;
    Ok(serde_json::from_str(text)?)
}

async fn stop(client: &mut Client, id: &str) -> Result<(), tonic::Status> {
    client
        .stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        })
        .await
        .map(|_| ())
}

async fn remove(client: &mut Client, id: &str) -> Result<(), tonic::Status> {
    client
        .remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        })
        .await
        .map(|_| ())
}

async fn list(client: &mut Client, filter: Option<PodSandboxFilter>) -> Result<Vec<String>> {
    let items = client
        .list_pod_sandbox(ListPodSandboxRequest { filter })
        .await?
        .into_inner()
        .items;
    Ok(items.into_iter().map(|s| s.id).collect())
}

/// A field of `/proc/<pid>/status`, e.g. `Uid`.
fn proc_status(pid: u64, field: &str) -> Result<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_owned())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// Waits until `pid` runs `/pause` (runc init has exec'ed it), so its
/// credentials and scores are the final ones.
async fn wait_exec(pid: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))?;
        if cmdline.starts_with(b"/pause\0") {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{pid} does not run /pause: {cmdline:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for_state(client: &mut Client, id: &str, want: PodSandboxState) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = status(client, id).await?.state;
        if state == want as i32 {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "sandbox {id} is {state}, not {want:?}, after 10s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Nothing of sandbox `id` is left: no netns pin, no mount mentioning it,
/// no containerd container, task or snapshot, no sandbox dirs, no CNI
/// cache entry, and `ip` no longer allocated by host-local.
async fn check_nothing_left(
    harness: &Harness,
    server: &CriServer,
    id: &str,
    ip: &str,
) -> Result<()> {
    let netns = dir_names(&server.state_dir().join("netns"));
    ensure!(netns.is_empty(), "netns pins left: {netns:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
    let left: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains(id) || l.contains(&server.dir().display().to_string()))
        .collect();
    ensure!(left.is_empty(), "mounts left: {left:#?}");
    for what in ["containers", "tasks", "snapshots"] {
        let out = harness.containerd.ctr_ok(&[what, "ls"]).await?;
        ensure!(!out.contains(id), "{what} left in containerd:\n{out}");
    }
    for dir in [server.root_dir(), server.state_dir()] {
        let path = dir.join("sandboxes").join(id);
        ensure!(!path.exists(), "{} left", path.display());
    }
    let cache: Vec<String> = dir_names(Path::new("/var/lib/cni/results"))
        .into_iter()
        .filter(|n| n.contains(id))
        .collect();
    ensure!(cache.is_empty(), "cni cache left: {cache:?}");
    if !ip.is_empty() {
        let network = server.network().context("no test network")?;
        let allocated = dir_names(&server.dir().join("cni-ipam").join(&network.name));
        ensure!(
            !allocated.iter().any(|a| a == ip),
            "{ip} still allocated: {allocated:?}"
        );
    }
    Ok(())
}

fn expect_code<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: Code,
    fragment: &str,
) -> Result<()> {
    match result {
        Ok(v) => bail!("expected {code:?}, got {v:?}"),
        Err(s) => {
            ensure!(s.code() == code, "expected {code:?}, got {s:?}");
            ensure!(s.message().contains(fragment), "{fragment:?} not in {s:?}");
            Ok(())
        }
    }
}

#[tokio::test]
async fn pods_get_bridge_ips_reach_each_other_and_go_away_cleanly() -> Result<()> {
    let started = Instant::now();
    let (harness, server) = start().await?;
    let network = server.network().context("no test network")?;
    let mut client = server.runtime_client().await?;

    let mut web = pod("web");
    web.dns_config = Some(DnsConfig {
        servers: vec!["10.96.0.10".into()],
        searches: vec![
            "cri-tests.svc.cluster.local".into(),
            "svc.cluster.local".into(),
        ],
        options: vec!["ndots:5".into()],
    });
    web.linux = Some(LinuxPodSandboxConfig {
        sysctls: HashMap::from([(
            "net.ipv4.ip_local_port_range".to_owned(),
            "20000 30000".to_owned(),
        )]),
        ..LinuxPodSandboxConfig::default()
    });
    let web_id = run(&mut client, web.clone()).await?;
    let db_id = run(&mut client, pod("db")).await?;
    ensure!(web_id.len() == 64 && web_id != db_id);

    // Status: READY, IP on the bridge subnet, config handed back.
    let st = status(&mut client, &web_id).await?;
    ensure!(st.state == PodSandboxState::SandboxReady as i32, "{st:?}");
    let web_ip = st.network.clone().context("no network status")?.ip;
    ensure!(
        network.contains(&web_ip),
        "{web_ip} not in {}",
        network.subnet
    );
    ensure!(st.labels == web.labels && st.annotations == web.annotations);
    ensure!(st.metadata == web.metadata && st.created_at > 0);
    let db_ip = status(&mut client, &db_id)
        .await?
        .network
        .context("no network")?
        .ip;
    ensure!(network.contains(&db_ip) && db_ip != web_ip);

    // Verbose: pid, netns path, spec and CNI result.
    let web_info = info(&mut client, &web_id).await?;
    let pid = web_info["pid"].as_u64().context("no pid")?;
    ensure!(web_info["processStatus"] == "running", "{web_info}");
    let netns = web_info["sandboxMetadata"]["NetNSPath"]
        .as_str()
        .context("no netns path")?
        .to_owned();
    ensure!(
        Path::new(&netns).starts_with(server.state_dir().join("netns")),
        "{netns}"
    );
    ensure!(web_info["runtimeSpec"]["process"]["args"][0] == "/pause");
    ensure!(web_info["cniResult"]["Interfaces"]["eth0"]["IPConfigs"][0]["IP"] == web_ip.as_str());
    ensure!(web_info["runtimeType"] == "io.containerd.runc.v2");

    // The pause process lives in that netns, where lo is up and eth0 has the IP.
    let ns_of = |pid: u64| std::fs::read_link(format!("/proc/{pid}/ns/net"));
    let pinned = command("stat", &["-L", "-c", "%i", &netns])?;
    let pinned = stdout_ok(pinned, "stat netns")?;
    ensure!(
        ns_of(pid)?.to_string_lossy().contains(pinned.trim()),
        "pause is not in {netns}"
    );
    let lo = stdout_ok(
        in_netns(&netns, &["ip", "-o", "link", "show", "lo"])?,
        "ip link lo",
    )?;
    ensure!(
        lo.contains(",UP") || lo.contains("<LOOPBACK,UP"),
        "lo is down: {lo}"
    );
    let addr = stdout_ok(
        in_netns(&netns, &["ip", "-o", "-4", "addr", "show", "dev", "eth0"])?,
        "ip addr",
    )?;
    ensure!(addr.contains(&format!("inet {web_ip}/")), "{addr}");

    // Pod to pod over the bridge.
    let ping = in_netns(&netns, &["/bin/busybox", "ping", "-c1", "-W2", &db_ip])?;
    stdout_ok(ping, &format!("ping {db_ip} from web"))?;

    // Config sysctl, DNS, hostname, read-only rootfs bind of resolv.conf.
    let port_start = stdout_ok(
        in_netns(
            &netns,
            &["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"],
        )?,
        "read sysctl",
    )?;
    let range = stdout_ok(
        in_netns(&netns, &["cat", "/proc/sys/net/ipv4/ip_local_port_range"])?,
        "read sysctl",
    )?;
    ensure!(
        range.split_whitespace().collect::<Vec<_>>() == ["20000", "30000"],
        "pod sysctl not applied: {range:?}"
    );
    ensure!(
        port_start.trim() == "0",
        "ip_unprivileged_port_start = {port_start}"
    );
    let resolv = std::fs::read_to_string(
        server
            .root_dir()
            .join("sandboxes")
            .join(&web_id)
            .join("resolv.conf"),
    )?;
    ensure!(
        resolv
            == "search cri-tests.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n",
        "{resolv:?}"
    );
    let inside = std::fs::read_to_string(format!("/proc/{pid}/root/etc/resolv.conf"))?;
    ensure!(inside == resolv, "resolv.conf in the pod: {inside:?}");
    let hostname = std::fs::read_to_string(
        server
            .root_dir()
            .join("sandboxes")
            .join(&web_id)
            .join("hostname"),
    )?;
    ensure!(hostname == "web\n", "{hostname:?}");
    wait_exec(pid).await?;
    ensure!(
        proc_status(pid, "Uid")?.starts_with("65535"),
        "pause runs as the image user"
    );
    let own = std::fs::read_to_string(format!(
        "/proc/{}/oom_score_adj",
        server.pid().context("server not running")?
    ))?;
    let pause_adj = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj"))?;
    ensure!(
        pause_adj.trim() == own.trim(),
        "restrict_oom_score_adj: pause has {pause_adj}, daemon {own}"
    );

    // containerd records: labels and the metadata extension.
    let record = harness
        .containerd
        .ctr_ok(&["containers", "info", &web_id])
        .await?;
    let record: Value = serde_json::from_str(&record)?;
    ensure!(
        record["Labels"]["io.cri-containerd.kind"] == "sandbox",
        "{record}"
    );
    ensure!(record["Labels"]["app"] == "web");
    ensure!(
        record["Extensions"]["io.cri-containerd.sandbox.metadata"].is_object(),
        "{record}"
    );

    // List: all, by unique prefix, by state, by label.
    let all = list(&mut client, None).await?;
    ensure!(all.len() == 2, "{all:?}");
    let by_prefix = list(
        &mut client,
        Some(PodSandboxFilter {
            id: web_id[..12].into(),
            ..Default::default()
        }),
    )
    .await?;
    ensure!(by_prefix == vec![web_id.clone()], "{by_prefix:?}");
    let by_label = list(
        &mut client,
        Some(PodSandboxFilter {
            label_selector: HashMap::from([("app".into(), "db".into())]),
            ..Default::default()
        }),
    )
    .await?;
    ensure!(by_label == vec![db_id.clone()], "{by_label:?}");

    // The same name while the pod exists: refused, nothing made.
    expect_code(
        run(&mut client, pod("web")).await,
        Code::AlreadyExists,
        "is reserved for",
    )?;
    ensure!(list(&mut client, None).await?.len() == 2);

    // The pause process of db killed from outside: NOTREADY.
    let db_pid = info(&mut client, &db_id).await?["pid"]
        .as_u64()
        .context("no db pid")?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(db_pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    wait_for_state(&mut client, &db_id, PodSandboxState::SandboxNotready).await?;
    let ready = list(
        &mut client,
        Some(PodSandboxFilter {
            state: Some(PodSandboxStateValue {
                state: PodSandboxState::SandboxReady as i32,
            }),
            ..Default::default()
        }),
    )
    .await?;
    ensure!(ready == vec![web_id.clone()], "{ready:?}");
    ensure!(info(&mut client, &db_id).await?["processStatus"] == "deleted");

    // Stop twice (the second finds netns and task gone), then remove twice.
    for id in [&web_id, &db_id] {
        stop(&mut client, id).await?;
        stop(&mut client, id).await?;
        let st = status(&mut client, id).await?;
        ensure!(
            st.state == PodSandboxState::SandboxNotready as i32,
            "{st:?}"
        );
        ensure!(st.network.map(|n| n.ip).unwrap_or_default().is_empty());
    }
    ensure!(dir_names(&server.state_dir().join("netns")).is_empty());
    for id in [&web_id, &db_id] {
        remove(&mut client, id).await?;
        remove(&mut client, id).await?;
        expect_code(
            status(&mut client, id).await.map_err(to_status),
            Code::NotFound,
            &id[..],
        )?;
    }
    check_nothing_left(&harness, &server, &web_id, &web_ip).await?;
    check_nothing_left(&harness, &server, &db_id, &db_ip).await?;
    ensure!(list(&mut client, None).await?.is_empty());
    expect_code(
        stop(&mut client, &web_id).await,
        Code::NotFound,
        "not found",
    )?;

    // The name is free again.
    let again = run(&mut client, pod("web")).await?;
    remove(&mut client, &again).await?;
    eprintln!("pods test took {:?}", started.elapsed());
    Ok(())
}

fn to_status(e: anyhow::Error) -> tonic::Status {
    match e.downcast::<tonic::Status>() {
        Ok(s) => s,
        Err(e) => tonic::Status::unknown(format!("{e:#}")),
    }
}

#[tokio::test]
async fn host_network_and_security_context_reach_the_pause_process() -> Result<()> {
    let (harness, server) = start().await?;
    let mut client = server.runtime_client().await?;
    let netns_before = dir_names(&server.state_dir().join("netns"));

    // Host network and PID, privileged, run as uid 1000 (no passwd in the
    // image: gid 0), a cgroupfs parent.
    let mut config = pod("host");
    // The kubelet sets no hostname for host-network pods (runc refuses one
    // without a UTS namespace of its own).
    config.hostname.clear();
    let parent = format!("/cri-tests-{}", std::process::id());
    {
        let sc = security(&mut config);
        sc.namespace_options = Some(NamespaceOption {
            network: NamespaceMode::Node as i32,
            pid: NamespaceMode::Node as i32,
            ..NamespaceOption::default()
        });
        sc.privileged = true;
        sc.run_as_user = Some(Int64Value { value: 1000 });
    }
    config
        .linux
        .get_or_insert_with(LinuxPodSandboxConfig::default)
        .cgroup_parent = parent.clone();
    let id = run(&mut client, config).await?;
    let st = status(&mut client, &id).await?;
    ensure!(st.state == PodSandboxState::SandboxReady as i32);
    ensure!(st.network.map(|n| n.ip).unwrap_or_default().is_empty());
    let ns = st
        .linux
        .and_then(|l| l.namespaces)
        .and_then(|n| n.options)
        .context("no namespace options")?;
    ensure!(ns.network == NamespaceMode::Node as i32 && ns.pid == NamespaceMode::Node as i32);

    let info = info(&mut client, &id).await?;
    ensure!(info["sandboxMetadata"]["NetNSPath"] == "", "{info}");
    ensure!(dir_names(&server.state_dir().join("netns")) == netns_before);
    let pid = info["pid"].as_u64().context("no pid")?;
    let ns_of = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/net"));
    ensure!(
        ns_of(&pid.to_string())? == ns_of("self")?,
        "pause is not in the host netns"
    );
    wait_exec(pid).await?;
    let uid = proc_status(pid, "Uid")?;
    let gid = proc_status(pid, "Gid")?;
    ensure!(
        uid.starts_with("1000\t") && gid.starts_with("0\t"),
        "uid {uid} gid {gid}"
    );
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    ensure!(
        cgroup.contains(&format!("{parent}/{id}")),
        "cgroup of the pause process:\n{cgroup}"
    );
    let spec = &info["runtimeSpec"];
    ensure!(spec["linux"]["cgroupsPath"] == format!("{parent}/{id}").as_str());
    let namespaces: Vec<&str> = spec["linux"]["namespaces"]
        .as_array()
        .context("no namespaces")?
        .iter()
        .filter_map(|n| n["type"].as_str())
        .collect();
    ensure!(
        !namespaces.contains(&"network") && !namespaces.contains(&"pid"),
        "{namespaces:?}"
    );

    stop(&mut client, &id).await?;
    remove(&mut client, &id).await?;
    check_nothing_left(&harness, &server, &id, "").await?;
    remove_cgroup_parent(&parent);
    Ok(())
}

/// Removes the (now empty) cgroup parent runc made in every v1 hierarchy
/// (or the v2 tree).
fn remove_cgroup_parent(parent: &str) {
    let relative = parent.trim_start_matches('/');
    let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(relative));
    for controller in dir_names(Path::new("/sys/fs/cgroup")) {
        let _ = std::fs::remove_dir(
            PathBuf::from("/sys/fs/cgroup")
                .join(controller)
                .join(relative),
        );
    }
}

#[tokio::test]
async fn a_failing_cni_plugin_fails_run_and_leaves_nothing() -> Result<()> {
    let (harness, server) = start().await?;
    let mut client = server.runtime_client().await?;
    let network = server.network().context("no test network")?;

    // The test conflist plus a tuning plugin whose sysctl does not exist:
    // bridge ADD succeeds, tuning ADD fails.
    let conf = server.cni_conf_dir().join("10-cri-tests.conflist");
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&conf)?)?;
    doc["plugins"]
        .as_array_mut()
        .context("no plugins")?
        .push(serde_json::json!({
            "type": "tuning",
            "sysctl": {"net.ipv4.conf.eth0.cri_tests_no_such_sysctl": "1"},
        }));
    std::fs::write(&conf, serde_json::to_vec(&doc)?)?;

    let err = run(&mut client, pod("broken"))
        .await
        .err()
        .context("RunPodSandbox succeeded with a failing plugin")?;
    ensure!(err.message().contains("failed to setup network"), "{err:?}");
    ensure!(err.message().contains("tuning"), "{err:?}");
    ensure!(list(&mut client, None).await?.is_empty());
    let netns = dir_names(&server.state_dir().join("netns"));
    ensure!(netns.is_empty(), "netns left: {netns:?}");
    let allocated: Vec<String> = dir_names(&server.dir().join("cni-ipam").join(&network.name))
        .into_iter()
        .filter(|n| n.starts_with("10."))
        .collect();
    ensure!(allocated.is_empty(), "addresses left: {allocated:?}");
    let ports = dir_names(
        &Path::new("/sys/class/net")
            .join(&network.bridge)
            .join("brif"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ports = ports;
    while !ports.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        ports = dir_names(
            &Path::new("/sys/class/net")
                .join(&network.bridge)
                .join("brif"),
        );
    }
    ensure!(ports.is_empty(), "veth left on the bridge: {ports:?}");
    ensure!(dir_names(&server.root_dir().join("sandboxes")).is_empty());
    let containers = harness
        .containerd
        .ctr_ok(&["containers", "ls", "-q"])
        .await?;
    ensure!(containers.trim().is_empty(), "{containers}");

    // With the plugin fixed the same name works: it was released.
    doc["plugins"].as_array_mut().context("no plugins")?.pop();
    std::fs::write(&conf, serde_json::to_vec(&doc)?)?;
    let id = run(&mut client, pod("broken")).await?;
    remove(&mut client, &id).await?;
    Ok(())
}
