//! The corpus: one pod config plus container configs per case, sent unchanged to both sides. Each case is a named edit of a kubelet-shaped baseline (pod `diff`, container `app` running busybox); the pod's log directory is each side's own, and `@name` as a namespace `target_id` stands for the id of the case's container `name` on that side.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use cri_api::v1::security_profile::ProfileType;
use cri_api::v1::{
    Capability, ContainerConfig, ContainerMetadata, Device, DnsConfig, HugepageLimit, ImageSpec,
    Int64Value, KeyValue, LinuxContainerConfig, LinuxContainerResources,
    LinuxContainerSecurityContext, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, Mount,
    MountPropagation, NamespaceMode, NamespaceOption, PodSandboxConfig, PodSandboxMetadata,
    PortMapping, Protocol, SecurityProfile, SupplementalGroupsPolicy,
};

use crate::images::critest;

/// Where [`write_fixtures`] puts what cases point at: one path for both
/// sides, so it needs no normalization.
pub const FIXTURES_DIR: &str = "/run/cri-tests-differential";

const USER_UID: &str = "gcr.io/k8s-staging-cri-tools/test-image-user-uid:latest";
const USER_NAME: &str = "gcr.io/k8s-staging-cri-tools/test-image-user-username:latest";
const USER_UID_GROUP: &str = "gcr.io/k8s-staging-cri-tools/test-image-user-uid-group:latest";
const USER_NAME_GROUP: &str = "gcr.io/k8s-staging-cri-tools/test-image-user-username-group:latest";
const PREDEFINED_GROUP: &str = "gcr.io/k8s-staging-cri-tools/test-image-predefined-group:latest";
const NONEWPRIVS: &str = "registry.k8s.io/e2e-test-images/nonewprivs:1.3";

/// One request set, run through both sides.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: &'static str,
    pub pod: PodSandboxConfig,
    pub containers: Vec<ContainerConfig>,
    /// Start the containers (and compare what starting writes).
    pub start: bool,
}

/// Every image the corpus uses (the sandbox image is pulled by each side).
pub fn images() -> Vec<String> {
    [
        critest::BUSYBOX,
        critest::NGINX,
        NONEWPRIVS,
        USER_UID,
        USER_NAME,
        USER_UID_GROUP,
        USER_NAME_GROUP,
        PREDEFINED_GROUP,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The sandbox image both sides are configured with.
pub fn sandbox_image() -> String {
    critest::PAUSE.to_string()
}

/// Files cases refer to: mount sources and a Localhost seccomp profile.
pub fn write_fixtures() -> Result<()> {
    let dir = Path::new(FIXTURES_DIR);
    for sub in [
        "vol",
        "vol-ro",
        "etc-hosts-dir",
        "serviceaccount",
        "termination-log",
    ] {
        std::fs::create_dir_all(dir.join(sub)).with_context(|| format!("create {sub}"))?;
    }
    std::fs::write(dir.join("file.txt"), "fixture\n")?;
    std::fs::write(dir.join("hosts"), "127.0.0.1 fixture\n")?;
    std::fs::write(
        dir.join("seccomp.json"),
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["unshare"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )?;
    Ok(())
}

fn path(rel: &str) -> String {
    format!("{FIXTURES_DIR}/{rel}")
}

/// The pod every case starts from: what a kubelet sends for a plain pod.
fn base_pod(name: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.replace('_', "-"),
            uid: format!("uid-{}", name.replace('_', "-")),
            namespace: "differential".into(),
            attempt: 0,
        }),
        hostname: name.replace('_', "-"),
        labels: HashMap::from([
            ("io.kubernetes.pod.name".into(), name.replace('_', "-")),
            ("io.kubernetes.pod.namespace".into(), "differential".into()),
        ]),
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption::default()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container(name: &str, image: &str, args: &[&str]) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        args: args.iter().map(|a| a.to_string()).collect(),
        log_path: format!("{name}/0.log"),
        labels: HashMap::from([("io.kubernetes.container.name".into(), name.into())]),
        linux: Some(LinuxContainerConfig {
            resources: Some(LinuxContainerResources::default()),
            security_context: Some(LinuxContainerSecurityContext {
                namespace_options: Some(NamespaceOption::default()),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

fn app() -> ContainerConfig {
    container("app", critest::BUSYBOX, &["sleep", "3600"])
}

fn psc(p: &mut PodSandboxConfig) -> &mut LinuxSandboxSecurityContext {
    p.linux
        .get_or_insert_with(Default::default)
        .security_context
        .get_or_insert_with(Default::default)
}

fn pns(p: &mut PodSandboxConfig) -> &mut NamespaceOption {
    psc(p)
        .namespace_options
        .get_or_insert_with(Default::default)
}

fn sc(c: &mut ContainerConfig) -> &mut LinuxContainerSecurityContext {
    c.linux
        .get_or_insert_with(Default::default)
        .security_context
        .get_or_insert_with(Default::default)
}

fn cns(c: &mut ContainerConfig) -> &mut NamespaceOption {
    sc(c).namespace_options.get_or_insert_with(Default::default)
}

fn res(c: &mut ContainerConfig) -> &mut LinuxContainerResources {
    c.linux
        .get_or_insert_with(Default::default)
        .resources
        .get_or_insert_with(Default::default)
}

fn caps(c: &mut ContainerConfig) -> &mut Capability {
    sc(c).capabilities.get_or_insert_with(Default::default)
}

fn profile(kind: ProfileType, localhost_ref: &str) -> Option<SecurityProfile> {
    Some(SecurityProfile {
        profile_type: kind as i32,
        localhost_ref: localhost_ref.into(),
    })
}

fn mount(container_path: &str, host_path: &str, readonly: bool, prop: MountPropagation) -> Mount {
    Mount {
        container_path: container_path.into(),
        host_path: host_path.into(),
        readonly,
        propagation: prop as i32,
        ..Default::default()
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn privileged_pod(p: &mut PodSandboxConfig) {
    psc(p).privileged = true;
}

/// A case with the baseline pod and one `app` container, edited by `edit`.
fn case(
    name: &'static str,
    edit: impl FnOnce(&mut PodSandboxConfig, &mut ContainerConfig),
) -> Case {
    let mut pod = base_pod(name);
    let mut app = app();
    edit(&mut pod, &mut app);
    Case {
        name,
        pod,
        containers: vec![app],
        start: false,
    }
}

fn started(mut c: Case) -> Case {
    c.start = true;
    c
}

/// The corpus.
pub fn cases() -> Vec<Case> {
    use MountPropagation::{
        PropagationBidirectional, PropagationHostToContainer, PropagationPrivate,
    };
    let mut all = vec![
        // The sandbox's own spec.
        case("pod_minimal", |p, c| {
            p.linux = None;
            p.hostname.clear();
            p.labels.clear();
            c.linux = None;
            c.labels.clear();
        }),
        case("pod_default", |_, _| {}),
        // What a kubelet sends for a plain Deployment pod's container.
        case("kubelet_default", |_, c| {
            c.envs = vec![KeyValue {
                key: "KUBERNETES_SERVICE_HOST".into(),
                value: "10.96.0.1".into(),
            }];
            c.mounts = vec![
                Mount {
                    selinux_relabel: true,
                    ..mount(
                        "/var/run/secrets/kubernetes.io/serviceaccount",
                        &path("serviceaccount"),
                        true,
                        PropagationPrivate,
                    )
                },
                Mount {
                    selinux_relabel: true,
                    ..mount(
                        "/dev/termination-log",
                        &path("termination-log"),
                        false,
                        PropagationPrivate,
                    )
                },
            ];
            *res(c) = LinuxContainerResources {
                cpu_period: 100_000,
                cpu_shares: 2,
                oom_score_adj: 1000,
                ..Default::default()
            };
            cns(c).pid = NamespaceMode::Container as i32;
            sc(c).masked_paths = strings(&[
                "/proc/asound",
                "/proc/acpi",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/proc/sched_debug",
                "/proc/scsi",
                "/sys/firmware",
                "/sys/devices/virtual/powercap",
            ]);
            sc(c).readonly_paths = strings(&[
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger",
            ]);
            sc(c).seccomp = profile(ProfileType::RuntimeDefault, "");
        }),
        case("pod_dns_config", |p, _| {
            p.dns_config = Some(DnsConfig {
                servers: strings(&["10.0.0.10", "10.0.0.11"]),
                searches: strings(&["svc.cluster.local", "cluster.local"]),
                options: strings(&["ndots:5", "timeout:1"]),
            });
        }),
        case("pod_port_mappings", |p, _| {
            p.port_mappings = vec![
                PortMapping {
                    protocol: Protocol::Tcp as i32,
                    container_port: 80,
                    ..Default::default()
                },
                PortMapping {
                    protocol: Protocol::Udp as i32,
                    container_port: 53,
                    host_ip: "127.0.0.1".into(),
                    ..Default::default()
                },
            ];
        }),
        case("pod_labels_annotations", |p, _| {
            p.labels.insert("app".into(), "web<&>".into());
            p.annotations = HashMap::from([
                ("kubernetes.io/config.source".into(), "api".into()),
                ("example.com/html".into(), "<b>&amp;</b>".into()),
                ("containerd.io/snapshot/x".into(), "snap".into()),
            ]);
        }),
        case("pod_cgroup_parent", |p, _| {
            p.linux.get_or_insert_with(Default::default).cgroup_parent =
                "/kubepods/besteffort/poddiff".into();
        }),
        case("pod_sysctls", |p, _| {
            p.linux.get_or_insert_with(Default::default).sysctls = HashMap::from([
                ("net.ipv4.ip_unprivileged_port_start".into(), "0".into()),
                ("kernel.shm_rmid_forced".into(), "1".into()),
            ]);
        }),
        case("pod_host_network", |p, _| {
            pns(p).network = NamespaceMode::Node as i32
        }),
        // What the kubelet sends for a hostNetwork pod: no hostname of its own.
        case("pod_host_network_pid", |p, c| {
            p.hostname.clear();
            pns(p).network = NamespaceMode::Node as i32;
            pns(p).pid = NamespaceMode::Node as i32;
            cns(c).network = NamespaceMode::Node as i32;
            cns(c).pid = NamespaceMode::Node as i32;
        }),
        case("pod_host_pid", |p, c| {
            pns(p).pid = NamespaceMode::Node as i32;
            cns(c).pid = NamespaceMode::Node as i32;
        }),
        case("pod_host_ipc", |p, c| {
            pns(p).ipc = NamespaceMode::Node as i32;
            cns(c).ipc = NamespaceMode::Node as i32;
        }),
        case("pod_host_all_privileged", |p, c| {
            *pns(p) = NamespaceOption {
                network: NamespaceMode::Node as i32,
                pid: NamespaceMode::Node as i32,
                ipc: NamespaceMode::Node as i32,
                ..Default::default()
            };
            privileged_pod(p);
            *cns(c) = pns(p).clone();
            sc(c).privileged = true;
        }),
        case("pod_privileged", |p, _| privileged_pod(p)),
        case("pod_run_as_user", |p, _| {
            psc(p).run_as_user = Some(Int64Value { value: 1000 });
        }),
        case("pod_run_as_user_group", |p, _| {
            psc(p).run_as_user = Some(Int64Value { value: 1000 });
            psc(p).run_as_group = Some(Int64Value { value: 2000 });
        }),
        case("pod_supplemental_groups", |p, _| {
            psc(p).supplemental_groups = vec![100, 200];
        }),
        case("pod_supplemental_groups_strict", |p, c| {
            psc(p).supplemental_groups_policy = SupplementalGroupsPolicy::Strict as i32;
            sc(c).supplemental_groups_policy = SupplementalGroupsPolicy::Strict as i32;
        }),
        case("pod_readonly_rootfs", |p, _| psc(p).readonly_rootfs = true),
        case("pod_seccomp_runtime_default", |p, _| {
            psc(p).seccomp = profile(ProfileType::RuntimeDefault, "");
        }),
        case("pod_seccomp_unconfined", |p, _| {
            psc(p).seccomp = profile(ProfileType::Unconfined, "");
        }),
        #[allow(deprecated)] // kubelets before 1.27 still send it
        case("pod_seccomp_profile_path", |p, _| {
            psc(p).seccomp_profile_path = "runtime/default".into();
        }),
        case("pod_selinux_options", |p, _| {
            psc(p).selinux_options = Some(cri_api::v1::SeLinuxOption {
                user: "system_u".into(),
                role: "system_r".into(),
                r#type: "container_t".into(),
                level: "s0:c1,c2".into(),
            });
        }),
        case("pod_overhead_resources", |p, _| {
            let linux = p.linux.get_or_insert_with(Default::default);
            linux.overhead = Some(LinuxContainerResources {
                cpu_shares: 10,
                memory_limit_in_bytes: 1 << 20,
                ..Default::default()
            });
            linux.resources = Some(LinuxContainerResources {
                cpu_period: 100_000,
                cpu_quota: 50_000,
                cpu_shares: 512,
                memory_limit_in_bytes: 64 << 20,
                ..Default::default()
            });
        }),
        case("pod_pid_container_mode", |p, c| {
            pns(p).pid = NamespaceMode::Container as i32;
            cns(c).pid = NamespaceMode::Container as i32;
        }),
        // Users and groups.
        case("run_as_user", |_, c| {
            sc(c).run_as_user = Some(Int64Value { value: 1234 })
        }),
        case("run_as_root", |_, c| {
            sc(c).run_as_user = Some(Int64Value { value: 0 })
        }),
        case("run_as_user_group", |_, c| {
            sc(c).run_as_user = Some(Int64Value { value: 1234 });
            sc(c).run_as_group = Some(Int64Value { value: 5678 });
        }),
        case("run_as_username", |_, c| {
            sc(c).run_as_username = "www-data".into()
        }),
        case("run_as_username_nobody", |_, c| {
            sc(c).run_as_username = "nobody".into()
        }),
        case("run_as_group_without_user", |_, c| {
            sc(c).run_as_group = Some(Int64Value { value: 5678 });
        }),
        case("image_user_uid", |_, c| set_image(c, USER_UID)),
        case("image_user_username", |_, c| set_image(c, USER_NAME)),
        case("image_user_uid_group", |_, c| set_image(c, USER_UID_GROUP)),
        case("image_user_username_group", |_, c| {
            set_image(c, USER_NAME_GROUP)
        }),
        case("image_predefined_group", |_, c| {
            set_image(c, PREDEFINED_GROUP)
        }),
        case("supplemental_groups", |_, c| {
            sc(c).supplemental_groups = vec![1, 2, 3]
        }),
        case("supplemental_groups_strict", |_, c| {
            set_image(c, PREDEFINED_GROUP);
            sc(c).supplemental_groups_policy = SupplementalGroupsPolicy::Strict as i32;
        }),
        // Capabilities and privileges.
        case("caps_add", |_, c| {
            caps(c).add_capabilities = strings(&["NET_ADMIN", "SYS_TIME"])
        }),
        case("caps_drop", |_, c| {
            caps(c).drop_capabilities = strings(&["CHOWN", "KILL"])
        }),
        case("caps_add_all", |_, c| {
            caps(c).add_capabilities = strings(&["ALL"])
        }),
        case("caps_drop_all", |_, c| {
            caps(c).drop_capabilities = strings(&["ALL"])
        }),
        case("caps_drop_all_add_one", |_, c| {
            caps(c).drop_capabilities = strings(&["ALL"]);
            caps(c).add_capabilities = strings(&["NET_BIND_SERVICE"]);
        }),
        case("caps_cap_prefix", |_, c| {
            caps(c).add_capabilities = strings(&["CAP_SYS_ADMIN"]);
            caps(c).drop_capabilities = strings(&["CAP_MKNOD"]);
        }),
        case("caps_ambient", |_, c| {
            caps(c).add_capabilities = strings(&["NET_BIND_SERVICE"]);
            caps(c).add_ambient_capabilities = strings(&["NET_BIND_SERVICE"]);
        }),
        case("privileged", |p, c| {
            privileged_pod(p);
            sc(c).privileged = true;
        }),
        case("privileged_in_unprivileged_pod", |_, c| {
            sc(c).privileged = true
        }),
        case("readonly_rootfs", |_, c| sc(c).readonly_rootfs = true),
        case("no_new_privs", |_, c| sc(c).no_new_privs = true),
        case("seccomp_runtime_default", |_, c| {
            sc(c).seccomp = profile(ProfileType::RuntimeDefault, "");
        }),
        case("seccomp_unconfined", |_, c| {
            sc(c).seccomp = profile(ProfileType::Unconfined, "")
        }),
        case("seccomp_localhost", |_, c| {
            sc(c).seccomp = profile(ProfileType::Localhost, &path("seccomp.json"));
        }),
        case("seccomp_localhost_missing", |_, c| {
            sc(c).seccomp = profile(ProfileType::Localhost, &path("missing.json"));
        }),
        #[allow(deprecated)] // kubelets before 1.27 still send it
        case("seccomp_profile_path_localhost", |_, c| {
            sc(c).seccomp_profile_path = format!("localhost/{}", path("seccomp.json"));
        }),
        case("apparmor_unconfined", |_, c| {
            sc(c).apparmor = profile(ProfileType::Unconfined, "")
        }),
        case("masked_readonly_paths", |_, c| {
            sc(c).masked_paths = strings(&["/proc/kcore", "/proc/custom"]);
            sc(c).readonly_paths = strings(&["/proc/sys", "/proc/custom-ro"]);
        }),
        case("container_selinux_options", |_, c| {
            sc(c).selinux_options = Some(cri_api::v1::SeLinuxOption {
                level: "s0:c5,c6".into(),
                ..Default::default()
            });
        }),
        // Namespaces.
        case("ns_pid_container", |_, c| {
            cns(c).pid = NamespaceMode::Container as i32
        }),
        case("ns_container_host_network", |p, c| {
            pns(p).network = NamespaceMode::Node as i32;
            cns(c).network = NamespaceMode::Node as i32;
        }),
        // Resources.
        case("cpu_shares", |_, c| res(c).cpu_shares = 512),
        case("cpu_quota_period", |_, c| {
            res(c).cpu_period = 100_000;
            res(c).cpu_quota = 50_000;
        }),
        case("cpuset", |_, c| {
            res(c).cpuset_cpus = "0".into();
            res(c).cpuset_mems = "0".into();
        }),
        case("memory_limit", |_, c| {
            res(c).memory_limit_in_bytes = 64 << 20
        }),
        case("memory_swap", |_, c| {
            res(c).memory_limit_in_bytes = 64 << 20;
            res(c).memory_swap_limit_in_bytes = 128 << 20;
        }),
        case("hugepages", |_, c| {
            res(c).hugepage_limits = vec![HugepageLimit {
                page_size: "2MB".into(),
                limit: 0,
            }];
        }),
        case("unified", |_, c| {
            res(c).unified = HashMap::from([
                ("memory.high".into(), "50000000".into()),
                ("pids.max".into(), "100".into()),
            ]);
        }),
        case("oom_score_adj", |_, c| res(c).oom_score_adj = 500),
        case("oom_score_adj_clamped", |_, c| res(c).oom_score_adj = -999),
        case("resources_all", |_, c| {
            *res(c) = LinuxContainerResources {
                cpu_period: 100_000,
                cpu_quota: 20_000,
                cpu_shares: 256,
                memory_limit_in_bytes: 32 << 20,
                oom_score_adj: 100,
                cpuset_cpus: "0-1".into(),
                cpuset_mems: "0".into(),
                ..Default::default()
            };
        }),
        // Mounts and devices.
        case("mount_private_rw", |_, c| {
            c.mounts = vec![mount("/data", &path("vol"), false, PropagationPrivate)];
        }),
        case("mount_readonly", |_, c| {
            c.mounts = vec![mount("/data", &path("vol-ro"), true, PropagationPrivate)];
        }),
        case("mount_rslave", |_, c| {
            c.mounts = vec![mount(
                "/data",
                &path("vol"),
                false,
                PropagationHostToContainer,
            )];
        }),
        case("mount_rshared", |p, c| {
            privileged_pod(p);
            sc(c).privileged = true;
            c.mounts = vec![mount(
                "/data",
                &path("vol"),
                false,
                PropagationBidirectional,
            )];
        }),
        case("mount_file", |_, c| {
            c.mounts = vec![mount(
                "/etc/fixture.txt",
                &path("file.txt"),
                true,
                PropagationPrivate,
            )];
        }),
        case("mount_over_etc_hosts", |_, c| {
            c.mounts = vec![mount(
                "/etc/hosts",
                &path("hosts"),
                false,
                PropagationPrivate,
            )];
        }),
        case("mount_selinux_relabel", |_, c| {
            let mut m = mount("/data", &path("vol"), false, PropagationPrivate);
            m.selinux_relabel = true;
            c.mounts = vec![m];
        }),
        case("mount_readonly_rootfs", |_, c| {
            sc(c).readonly_rootfs = true;
            c.mounts = vec![
                mount("/data", &path("vol"), false, PropagationPrivate),
                mount("/ro", &path("vol-ro"), true, PropagationPrivate),
            ];
        }),
        case("device_null", |_, c| {
            c.devices = vec![Device {
                container_path: "/dev/xnull".into(),
                host_path: "/dev/null".into(),
                permissions: "rwm".into(),
            }];
        }),
        case("device_read_only", |_, c| {
            c.devices = vec![Device {
                container_path: "/dev/xzero".into(),
                host_path: "/dev/zero".into(),
                permissions: "r".into(),
            }];
        }),
        // Annotations, labels, env, working dir, tty, stdin.
        case("container_annotations_labels", |_, c| {
            c.annotations = HashMap::from([
                ("io.kubernetes.container.hash".into(), "abc123".into()),
                ("example.com/html".into(), "<i>&</i>".into()),
            ]);
            c.labels.insert("tier".into(), "backend".into());
        }),
        case("env", |_, c| {
            c.envs = vec![
                KeyValue {
                    key: "A".into(),
                    value: "1".into(),
                },
                KeyValue {
                    key: "PATH".into(),
                    value: "/custom/bin".into(),
                },
                KeyValue {
                    key: "A".into(),
                    value: "2".into(),
                },
                KeyValue {
                    key: "EMPTY".into(),
                    value: String::new(),
                },
            ];
        }),
        case("working_dir", |_, c| c.working_dir = "/tmp".into()),
        case("tty", |_, c| c.tty = true),
        case("stdin_once", |_, c| {
            c.stdin = true;
            c.stdin_once = true;
        }),
        case("stdin_tty", |_, c| {
            c.stdin = true;
            c.tty = true;
        }),
        case("no_log_path", |_, c| c.log_path.clear()),
        // Entrypoint and cmd.
        case("image_cmd_only", |_, c| c.args.clear()),
        case("command_only", |_, c| {
            c.args.clear();
            c.command = strings(&["sleep", "60"]);
        }),
        case("command_and_args", |_, c| {
            c.command = strings(&["sh", "-c"]);
            c.args = strings(&["sleep 60"]);
        }),
        case("entrypoint_image_default", |_, c| {
            set_image(c, NONEWPRIVS);
            c.args.clear();
        }),
        case("entrypoint_image_args", |_, c| {
            set_image(c, NONEWPRIVS);
            c.args = strings(&["--flag"]);
        }),
        case("entrypoint_image_command", |_, c| {
            set_image(c, NONEWPRIVS);
            c.command = strings(&["/bin/sh"]);
            c.args.clear();
        }),
        case("image_stop_signal", |_, c| {
            set_image(c, critest::NGINX);
            c.args.clear();
        }),
        started(case("started", |_, _| {})),
        started(case("started_tty_env", |_, c| {
            c.tty = true;
            c.envs = vec![KeyValue {
                key: "X".into(),
                value: "y".into(),
            }];
        })),
    ];
    // Several containers in one pod.
    let mut two = base_pod("two_containers");
    pns(&mut two).pid = NamespaceMode::Pod as i32;
    all.push(Case {
        name: "two_containers",
        pod: two,
        containers: vec![
            app(),
            container("sidecar", critest::BUSYBOX, &["sleep", "60"]),
        ],
        start: false,
    });
    let mut target = app();
    cns(&mut target).pid = NamespaceMode::Target as i32;
    cns(&mut target).target_id = "@app".into();
    if let Some(m) = target.metadata.as_mut() {
        m.name = "debug".into();
    }
    target.log_path = "debug/0.log".into();
    all.push(Case {
        name: "ns_pid_target",
        pod: base_pod("ns_pid_target"),
        containers: vec![app(), target],
        start: true,
    });
    all
}

fn set_image(c: &mut ContainerConfig, image: &str) {
    c.image = Some(ImageSpec {
        image: image.into(),
        ..Default::default()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_has_sixty_distinct_cases() {
        let cases = cases();
        assert!(cases.len() >= 60, "{} cases", cases.len());
        let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), cases.len(), "case names repeat");
        let images = images();
        for case in &cases {
            for c in &case.containers {
                let image = c
                    .image
                    .as_ref()
                    .map(|i| i.image.clone())
                    .unwrap_or_default();
                assert!(
                    images.contains(&image),
                    "{}: {image} is not pulled",
                    case.name
                );
            }
        }
    }
}
