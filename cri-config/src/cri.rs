//! The CRI plugin settings in memory (containerd's `PluginConfig`, with
//! the `containerd.*` keys flattened in) and containerd v1.7's defaults.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::registry::RegistryConfig;
use super::runtime::RuntimeConfig;

/// containerd v1.7's default sandbox (pause) image.
pub const DEFAULT_SANDBOX_IMAGE: &str = "registry.k8s.io/pause:3.8";
/// containerd's default snapshotter on Linux.
pub const DEFAULT_SNAPSHOTTER: &str = "overlayfs";
/// The runtime handler used when a pod names none.
pub const DEFAULT_RUNTIME_NAME: &str = "runc";
/// containerd's default persistent root.
pub const DEFAULT_CONTAINERD_ROOT: &str = "/var/lib/containerd";

/// The CRI plugin configuration, in containerd's vocabulary. Every field
/// says which key sets it; v2 keys live under
/// `plugins."io.containerd.grpc.v1.cri"`, v3 ones are split between the
/// runtime, images and grpc plugins.
#[derive(Debug, Clone, PartialEq)]
pub struct CriConfig {
    /// `containerd.snapshotter` (v3: images `snapshotter`).
    pub snapshotter: String,
    /// `containerd.default_runtime_name`: the handler for pods that name none.
    pub default_runtime_name: String,
    /// `containerd.runtimes.<name>`: the runtime handlers.
    pub runtimes: BTreeMap<String, RuntimeConfig>,
    /// `containerd.no_pivot` (shim v1 only).
    pub no_pivot: bool,
    /// `containerd.disable_snapshot_annotations` (v3: images).
    pub disable_snapshot_annotations: bool,
    /// `containerd.discard_unpacked_layers` (v3: images).
    pub discard_unpacked_layers: bool,
    /// `containerd.ignore_blockio_not_enabled_errors`.
    pub ignore_blockio_not_enabled_errors: bool,
    /// `containerd.ignore_rdt_not_enabled_errors`.
    pub ignore_rdt_not_enabled_errors: bool,
    /// `cni.*`.
    pub cni: CniConfig,
    /// `registry.*` (v3: images `registry`).
    pub registry: RegistryConfig,
    /// `image_decryption.key_model` (v3: images).
    pub image_decryption: ImageDecryptionConfig,
    /// `disable_tcp_service`.
    pub disable_tcp_service: bool,
    /// `stream_server_address`: IP the exec/attach/port-forward server binds.
    pub stream_server_address: String,
    /// `stream_server_port` (containerd writes it as a string); 0 picks one.
    pub stream_server_port: u16,
    /// `stream_idle_timeout`.
    pub stream_idle_timeout: Duration,
    /// `enable_tls_streaming`.
    pub enable_tls_streaming: bool,
    /// `x509_key_pair_streaming.{tls_cert_file,tls_key_file}`.
    pub x509_key_pair_streaming: X509KeyPairStreaming,
    /// `enable_selinux`.
    pub enable_selinux: bool,
    /// `selinux_category_range`.
    pub selinux_category_range: u32,
    /// `sandbox_image` (v3: images `pinned_images.sandbox`).
    pub sandbox_image: String,
    /// v3 images `pinned_images` other than `sandbox`.
    pub pinned_images: BTreeMap<String, String>,
    /// `stats_collect_period`, in seconds (v3: images).
    pub stats_collect_period: u32,
    /// `systemd_cgroup` (deprecated, shim v1 only; runc uses
    /// `options.SystemdCgroup`).
    pub systemd_cgroup: bool,
    /// `max_container_log_line_size` in bytes; not positive means no limit.
    pub max_container_log_line_size: i64,
    /// `disable_cgroup`.
    pub disable_cgroup: bool,
    /// `disable_apparmor`.
    pub disable_apparmor: bool,
    /// `restrict_oom_score_adj`: clamp oom_score_adj to our own.
    pub restrict_oom_score_adj: bool,
    /// `max_concurrent_downloads` per image (v3: images).
    pub max_concurrent_downloads: u32,
    /// `disable_proc_mount`.
    pub disable_proc_mount: bool,
    /// `unset_seccomp_profile`: the profile when the pod gives none.
    pub unset_seccomp_profile: String,
    /// `tolerate_missing_hugetlb_controller`.
    pub tolerate_missing_hugetlb_controller: bool,
    /// `disable_hugetlb_controller`.
    pub disable_hugetlb_controller: bool,
    /// `device_ownership_from_security_context`.
    pub device_ownership_from_security_context: bool,
    /// `ignore_image_defined_volumes`.
    pub ignore_image_defined_volumes: bool,
    /// `netns_mounts_under_state_dir`.
    pub netns_mounts_under_state_dir: bool,
    /// `enable_unprivileged_ports`.
    pub enable_unprivileged_ports: bool,
    /// `enable_unprivileged_icmp`.
    pub enable_unprivileged_icmp: bool,
    /// `enable_cdi`.
    pub enable_cdi: bool,
    /// `cdi_spec_dirs`.
    pub cdi_spec_dirs: Vec<PathBuf>,
    /// `image_pull_progress_timeout`; zero means none (v3: images).
    pub image_pull_progress_timeout: Duration,
    /// `drain_exec_sync_io_timeout`; zero means none.
    pub drain_exec_sync_io_timeout: Duration,
    /// `image_pull_with_sync_fs` (v3: images).
    pub image_pull_with_sync_fs: bool,
    /// `ignore_deprecation_warnings`: deprecation ids to leave out of status.
    pub ignore_deprecation_warnings: Vec<String>,
    /// v3 images `disable_image_pull_with_transfer_service`.
    pub disable_image_pull_with_transfer_service: bool,
    /// v3 images `use_local_image_pull`.
    pub use_local_image_pull: bool,
    /// v3 images `runtime_platforms.<runtime>`.
    pub runtime_platforms: BTreeMap<String, ImagePlatform>,
    /// containerd's top-level `root` (`containerdRootDir` in status).
    pub containerd_root_dir: PathBuf,
}

impl Default for CriConfig {
    /// containerd v1.7's `DefaultConfig()` for Linux.
    fn default() -> Self {
        Self {
            snapshotter: DEFAULT_SNAPSHOTTER.to_owned(),
            default_runtime_name: DEFAULT_RUNTIME_NAME.to_owned(),
            runtimes: BTreeMap::from([(
                DEFAULT_RUNTIME_NAME.to_owned(),
                RuntimeConfig::runc_default(),
            )]),
            no_pivot: false,
            disable_snapshot_annotations: true,
            discard_unpacked_layers: false,
            ignore_blockio_not_enabled_errors: false,
            ignore_rdt_not_enabled_errors: false,
            cni: CniConfig::default(),
            registry: RegistryConfig::default(),
            image_decryption: ImageDecryptionConfig::default(),
            disable_tcp_service: true,
            stream_server_address: "127.0.0.1".to_owned(),
            stream_server_port: 0,
            stream_idle_timeout: Duration::from_secs(4 * 3600),
            enable_tls_streaming: false,
            x509_key_pair_streaming: X509KeyPairStreaming::default(),
            enable_selinux: false,
            selinux_category_range: 1024,
            sandbox_image: DEFAULT_SANDBOX_IMAGE.to_owned(),
            pinned_images: BTreeMap::new(),
            stats_collect_period: 10,
            systemd_cgroup: false,
            max_container_log_line_size: 16 * 1024,
            disable_cgroup: false,
            disable_apparmor: false,
            restrict_oom_score_adj: false,
            max_concurrent_downloads: 3,
            disable_proc_mount: false,
            unset_seccomp_profile: String::new(),
            tolerate_missing_hugetlb_controller: true,
            disable_hugetlb_controller: true,
            device_ownership_from_security_context: false,
            ignore_image_defined_volumes: false,
            netns_mounts_under_state_dir: false,
            enable_unprivileged_ports: false,
            enable_unprivileged_icmp: false,
            enable_cdi: false,
            cdi_spec_dirs: vec![PathBuf::from("/etc/cdi"), PathBuf::from("/var/run/cdi")],
            image_pull_progress_timeout: Duration::from_secs(5 * 60),
            drain_exec_sync_io_timeout: Duration::ZERO,
            image_pull_with_sync_fs: false,
            ignore_deprecation_warnings: Vec::new(),
            disable_image_pull_with_transfer_service: false,
            use_local_image_pull: false,
            runtime_platforms: BTreeMap::new(),
            containerd_root_dir: PathBuf::from(DEFAULT_CONTAINERD_ROOT),
        }
    }
}

impl CriConfig {
    /// The runtime for a CRI runtime handler; `""` is the default one.
    pub fn runtime(&self, handler: &str) -> Option<&RuntimeConfig> {
        let name = if handler.is_empty() {
            self.default_runtime_name.as_str()
        } else {
            handler
        };
        self.runtimes.get(name)
    }

    /// The runtime named by `default_runtime_name` (present after loading).
    pub fn default_runtime(&self) -> Option<&RuntimeConfig> {
        self.runtimes.get(&self.default_runtime_name)
    }

    /// The snapshotter for a handler: its own, else the global one.
    pub fn snapshotter_for(&self, handler: &str) -> &str {
        self.runtime(handler)
            .and_then(|r| r.snapshotter.as_deref())
            .unwrap_or(&self.snapshotter)
    }
}

/// `cni.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniConfig {
    /// `bin_dir`: where CNI plugin binaries live.
    pub bin_dir: PathBuf,
    /// containerd 2.1's `bin_dirs`; when set, `bin_dir` is its first entry.
    /// Empty otherwise. See [`CniConfig::plugin_dirs`].
    pub bin_dirs: Vec<PathBuf>,
    /// `conf_dir`: where network configs are read from.
    pub conf_dir: PathBuf,
    /// `max_conf_num`: how many config files to load; 0 loads all.
    pub max_conf_num: usize,
    /// `conf_template`: a Go template rendered into `conf_dir` once the
    /// kubelet sends the pod CIDR.
    pub conf_template: Option<PathBuf>,
    /// `ip_pref`: which pod IP is reported first.
    pub ip_pref: IpPreference,
    /// `setup_serially`: set networks up one by one.
    pub setup_serially: bool,
    /// `use_internal_loopback` (containerd 2): bring `lo` up without the
    /// loopback plugin.
    pub use_internal_loopback: bool,
}

impl Default for CniConfig {
    fn default() -> Self {
        Self {
            bin_dir: PathBuf::from("/opt/cni/bin"),
            bin_dirs: Vec::new(),
            conf_dir: PathBuf::from("/etc/cni/net.d"),
            max_conf_num: 1,
            conf_template: None,
            ip_pref: IpPreference::default(),
            setup_serially: false,
            use_internal_loopback: false,
        }
    }
}

impl CniConfig {
    /// Every directory searched for plugin binaries, in order.
    pub fn plugin_dirs(&self) -> Vec<&Path> {
        if self.bin_dirs.is_empty() {
            vec![self.bin_dir.as_path()]
        } else {
            self.bin_dirs.iter().map(PathBuf::as_path).collect()
        }
    }
}

/// `cni.ip_pref`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IpPreference {
    /// `""` or `"ipv4"`: the first IPv4 address.
    #[default]
    Ipv4,
    /// `"ipv6"`: the first IPv6 address.
    Ipv6,
    /// `"cni"`: the first address in the CNI result's order.
    Cni,
}

impl IpPreference {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ipv4 => "ipv4",
            Self::Ipv6 => "ipv6",
            Self::Cni => "cni",
        }
    }
}

impl<'de> Deserialize<'de> for IpPreference {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        match value.as_str() {
            "" | "ipv4" => Ok(Self::Ipv4),
            "ipv6" => Ok(Self::Ipv6),
            "cni" => Ok(Self::Cni),
            other => Err(de::Error::invalid_value(
                de::Unexpected::Str(other),
                &"\"ipv4\", \"ipv6\" or \"cni\"",
            )),
        }
    }
}

impl fmt::Display for IpPreference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `x509_key_pair_streaming`. Unset files with TLS streaming on mean a
/// self-signed pair, as in containerd.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct X509KeyPairStreaming {
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
}

/// `image_decryption`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDecryptionConfig {
    /// `key_model`: `node` (keys on the node) is containerd's default.
    pub key_model: String,
}

impl Default for ImageDecryptionConfig {
    fn default() -> Self {
        Self {
            key_model: "node".to_owned(),
        }
    }
}

/// v3 images `runtime_platforms.<runtime>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ImagePlatform {
    pub platform: String,
    pub snapshotter: String,
}
