//! Inputs that the CRI does not carry: the runtime configuration keys that
//! change specs ([`RuntimeOptions`], mirroring containerd's CRI config and
//! the runtime handler's), the sandbox files ([`SandboxFiles`]) and the
//! target [`Platform`].

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
};

use oci_spec::runtime::{LinuxBlockIo, Spec};

/// The configuration keys that affect specs: the `[plugins."io.containerd.grpc.v1.cri"]`
/// keys plus those of the runtime handler in use. `Default` is containerd
/// 1.7's default configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeOptions {
    /// `restrict_oom_score_adj`: never go below the daemon's own score.
    pub restrict_oom_score_adj: bool,
    /// The daemon's own `/proc/self/oom_score_adj` (used with
    /// `restrict_oom_score_adj`).
    pub daemon_oom_score_adj: i32,
    /// `disable_proc_mount`: keep containerd's default masked and
    /// read-only paths and ignore those of the CRI.
    pub disable_proc_mount: bool,
    /// `disable_cgroup`: no cgroups path and no resources.
    pub disable_cgroup: bool,
    /// Runtime handler `privileged_without_host_devices`.
    pub privileged_without_host_devices: bool,
    /// Runtime handler `privileged_without_host_devices_all_devices_allowed`.
    pub privileged_without_host_devices_all_devices_allowed: bool,
    /// `device_ownership_from_security_context`.
    pub device_ownership_from_security_context: bool,
    /// `unset_seccomp_profile`: the profile used when the CRI gives none
    /// (`""`, `runtime/default`, `unconfined`, `localhost/<path>`).
    pub unset_seccomp_profile: String,
    /// `disable_apparmor`.
    pub disable_apparmor: bool,
    /// `enable_selinux`.
    pub enable_selinux: bool,
    /// `tolerate_missing_hugetlb_controller`.
    pub tolerate_missing_hugetlb_controller: bool,
    /// `disable_hugetlb_controller`.
    pub disable_hugetlb_controller: bool,
    /// `enable_unprivileged_ports` (pause container sysctl).
    pub enable_unprivileged_ports: bool,
    /// `enable_unprivileged_icmp` (pause container sysctl).
    pub enable_unprivileged_icmp: bool,
    /// Runtime handler `pod_annotations`: globs of pod annotation keys
    /// passed into sandbox and container specs.
    pub pod_annotations: Vec<String>,
    /// Runtime handler `container_annotations`: globs of container
    /// annotation keys passed into container specs.
    pub container_annotations: Vec<String>,
    /// Runtime handler `base_runtime_spec`, already parsed: the starting
    /// point of container specs instead of containerd's default spec.
    pub base_runtime_spec: Option<Spec>,
    /// Block I/O classes by name (containerd's `blockio_config_file`);
    /// `None` when block I/O classes are not enabled.
    pub blockio_classes: Option<BTreeMap<String, LinuxBlockIo>>,
    /// `ignore_blockio_not_enabled_errors`.
    pub ignore_blockio_not_enabled_errors: bool,
    /// RDT classes by name (containerd's `rdt_config_file`); `None` when
    /// RDT is not enabled.
    pub rdt_classes: Option<BTreeSet<String>>,
    /// `ignore_rdt_not_enabled_errors`.
    pub ignore_rdt_not_enabled_errors: bool,
    /// Also annotate specs with `io.containerd.cri.runtime-handler`
    /// (containerd does not; off by default for identical specs).
    pub annotate_runtime_handler: bool,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            restrict_oom_score_adj: false,
            daemon_oom_score_adj: 0,
            disable_proc_mount: false,
            disable_cgroup: false,
            privileged_without_host_devices: false,
            privileged_without_host_devices_all_devices_allowed: false,
            device_ownership_from_security_context: false,
            unset_seccomp_profile: String::new(),
            disable_apparmor: false,
            enable_selinux: false,
            tolerate_missing_hugetlb_controller: true,
            disable_hugetlb_controller: true,
            enable_unprivileged_ports: false,
            enable_unprivileged_icmp: false,
            pod_annotations: Vec::new(),
            container_annotations: Vec::new(),
            base_runtime_spec: None,
            blockio_classes: None,
            ignore_blockio_not_enabled_errors: false,
            rdt_classes: None,
            ignore_rdt_not_enabled_errors: false,
            annotate_runtime_handler: false,
        }
    }
}

/// The host paths of the per-sandbox files an app container bind-mounts
/// (`<root>/sandboxes/<id>/{hostname,hosts,resolv.conf}` and
/// `<state>/sandboxes/<id>/shm`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxFiles {
    /// Source of `/etc/hostname` (mounted only if it exists).
    pub hostname: PathBuf,
    /// Source of `/etc/hosts`.
    pub hosts: PathBuf,
    /// Source of `/etc/resolv.conf`.
    pub resolv_conf: PathBuf,
    /// Source of `/dev/shm` (the host's `/dev/shm` is used for host IPC).
    pub shm: PathBuf,
}

/// The platform a spec is built for (containerd's `platforms.Platform`,
/// as the sandbox controller reports it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`, `windows` or `darwin`.
    pub os: String,
    /// GOARCH spelling: `amd64`, `arm64`, `arm`, `386`, `ppc64le`, `s390x`, `riscv64`, ...
    pub architecture: String,
    /// e.g. `v8`; may be empty.
    pub variant: String,
}

impl Platform {
    /// A platform from an OS and a GOARCH-style architecture.
    pub fn new(os: impl Into<String>, architecture: impl Into<String>) -> Self {
        Self {
            os: os.into(),
            architecture: architecture.into(),
            variant: String::new(),
        }
    }

    /// The platform this process runs on.
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "386",
            "aarch64" => "arm64",
            "powerpc64" => "ppc64le",
            "loongarch64" => "loong64",
            other => other,
        };
        Self::new(std::env::consts::OS, arch)
    }
}

impl Default for Platform {
    fn default() -> Self {
        Self::host()
    }
}
