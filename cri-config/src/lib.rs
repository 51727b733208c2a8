//! Configuration: a containerd `config.toml` read as containerd reads it
//! (the CRI plugin sections in the v2 or v3 layout, containerd v1.7's
//! defaults), our own `[cri_server]` table, and command-line overrides.
//!
//! Precedence for the server settings: CLI flag, then `[cri_server]`, then
//! containerd's top-level `root` / `state` / `[grpc] address`, then the
//! default. Unknown keys in the sections we read are returned as warnings;
//! other containerd sections are ignored.
#![doc = include_str!("../README.md")]

/// Copies every `Some` field of a raw section onto the same-named field.
macro_rules! overlay {
    ($raw:ident => $dst:expr; $($field:ident),+ $(,)?) => {
        $(
            if let Some(value) = $raw.$field {
                $dst.$field = value;
            }
        )+
    };
}

mod cri;
mod duration;
mod error;
mod file;
mod plugin_v2;
mod plugin_v3;
mod registry;
mod runtime;
mod sections;
mod server;
mod status_json;
mod toml_out;
mod tracing_plugins;
mod validate;
mod values;

use std::path::Path;

pub use cri::{
    CniConfig, CriConfig, ImageDecryptionConfig, ImagePlatform, IpPreference, X509KeyPairStreaming,
    DEFAULT_CONTAINERD_ROOT, DEFAULT_RUNTIME_NAME, DEFAULT_SANDBOX_IMAGE, DEFAULT_SNAPSHOTTER,
};
pub use duration::{format_go_duration, go_duration, parse_go_duration, DurationError};
pub use error::ConfigError;
pub use registry::{
    is_sensitive_header, RegistryAuth, RegistryConfig, RegistryHostConfig, RegistryMirror,
    RegistryTls, Secret, REDACTED,
};
pub use runtime::{
    RuntimeConfig, LINUX_V1_RUNTIME_TYPE, RUNC_V1_RUNTIME_TYPE, RUNC_V2_RUNTIME_TYPE,
    SANDBOX_MODE_PODSANDBOX, SANDBOX_MODE_SHIM,
};
pub use server::{
    LogFormat, Overrides, ServerConfig, UnknownLogFormat, CRI_PLUGIN_ID,
    DEFAULT_CONTAINERD_ADDRESS, DEFAULT_CONTAINERD_NAMESPACE, DEFAULT_CONTAINERD_STATE,
    DEFAULT_LISTEN, DEFAULT_LOG_LEVEL,
};
pub use tracing_plugins::{OtlpProtocol, TracingConfig, DEFAULT_TRACING_SERVICE_NAME};

use file::{Layout, PluginSections, Source};
use plugin_v2::{RawPluginsV1, RawPluginsV2};
use plugin_v3::RawPluginsV3;
use server::{ContainerdTopLevel, RawServerSection};
use validate::Origins;

/// The effective configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// How we run: sockets, directories, logging.
    pub server: ServerConfig,
    /// The CRI plugin settings, in containerd's vocabulary.
    pub cri: CriConfig,
    /// containerd's tracing plugins: OTLP export of our spans.
    pub tracing: TracingConfig,
}

impl Config {
    /// Defaults, then the file (if any), then the overrides. Returns the
    /// dotted paths of unknown keys, for the caller to log.
    pub fn load(
        path: Option<&Path>,
        overrides: Overrides,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let Some(path) = path else {
            return Self::from_toml_str("", "(defaults)", overrides);
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text, &path.display().to_string(), overrides)
    }

    /// As [`Config::load`], from TOML text; `origin` names it in errors.
    pub fn from_toml_str(
        text: &str,
        origin: &str,
        overrides: Overrides,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let source = Source { text, origin };
        let Applied {
            section,
            top,
            mut cri,
            origins,
            mut warnings,
        } = match file::probe_layout(&source)? {
            Layout::V1 => apply_file::<RawPluginsV1>(&source, Layout::V1)?,
            Layout::V2 => apply_file::<RawPluginsV2>(&source, Layout::V2)?,
            Layout::V3 => apply_file::<RawPluginsV3>(&source, Layout::V3)?,
        };
        if let Some(root) = &top.root {
            cri.containerd_root_dir.clone_from(root);
        }
        let server = server::resolve(section, &top, overrides, origin)?;
        validate::validate(&mut cri, &source, &origins, &mut warnings)?;
        let tracing = tracing_plugins::read(&source)?;
        Ok((
            Config {
                server,
                cri,
                tracing,
            },
            warnings,
        ))
    }

    /// `cri-server config default`: a complete, commented containerd
    /// `config.toml` with every key at its default; it loads back to
    /// [`Config::default`].
    pub fn default_toml() -> String {
        toml_out::render(&Config::default(), toml_out::Rendering::Default)
    }

    /// `cri-server config dump`: the effective config as a containerd
    /// `config.toml`, credentials redacted as in [`Config::to_status_json`].
    pub fn to_dump_toml(&self) -> String {
        toml_out::render(self, toml_out::Rendering::Dump)
    }

    /// The config as containerd's CRI plugin shows it in a verbose
    /// `Status`, under containerd's JSON names; credentials redacted.
    pub fn to_status_json(&self) -> serde_json::Value {
        status_json::status_json(self)
    }
}

/// What one file yields before the server settings are resolved.
struct Applied {
    /// `[cri_server]` as written.
    section: RawServerSection,
    /// containerd's `root`, `state` and `[grpc] address`.
    top: ContainerdTopLevel,
    /// The defaults with the plugin sections laid over them.
    cri: CriConfig,
    origins: Origins,
    /// Unknown keys in sections we own.
    warnings: Vec<String>,
}

/// Decodes the file with layout `P` and lays its plugin sections over the
/// defaults.
fn apply_file<P: PluginSections>(
    source: &Source<'_>,
    layout: Layout,
) -> Result<Applied, ConfigError> {
    let (mut raw, warnings) = file::decode_file::<P>(source, layout)?;
    let (section, top) = raw.server_parts();
    let mut cri = CriConfig::default();
    let mut origins = Origins::default();
    if let Some(plugins) = raw.plugins {
        plugins.apply(&mut cri, source, &mut origins)?;
    }
    Ok(Applied {
        section,
        top,
        cri,
        origins,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;

    fn load(text: &str, overrides: Overrides) -> Result<(Config, Vec<String>), String> {
        Config::from_toml_str(text, "/etc/containerd/config.toml", overrides)
            .map_err(|e| e.to_string())
    }

    /// Loads `text` with no overrides; compares the config (or the error
    /// message) and asserts there were no warnings.
    fn check(text: &str, expected: Result<Config, &str>) {
        match (load(text, Overrides::default()), expected) {
            (Ok((config, warnings)), Ok(want)) => {
                assert_eq!(config, want);
                assert_eq!(warnings, Vec::<String>::new());
            }
            (Err(e), Err(want)) => assert_eq!(e, want),
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    fn warnings(text: &str) -> Vec<String> {
        load(text, Overrides::default()).unwrap().1
    }

    fn runc_with(options: &str) -> RuntimeConfig {
        let mut runtime = RuntimeConfig::runc_default();
        runtime
            .options
            .extend(options.parse::<toml::Table>().unwrap());
        runtime
    }

    const SEC: u64 = 1;

    /// `containerd config default` of containerd 1.7 (Debian/Ubuntu package).
    pub(super) const CONTAINERD_17_DEFAULT: &str = r#"
disabled_plugins = []
imports = []
oom_score = 0
plugin_dir = ""
required_plugins = []
root = "/var/lib/containerd"
state = "/run/containerd"
temp = ""
version = 2

[cgroup]
  path = ""

[debug]
  address = ""
  format = ""
  gid = 0
  level = ""
  uid = 0

[grpc]
  address = "/run/containerd/containerd.sock"
  gid = 0
  max_recv_message_size = 16777216
  max_send_message_size = 16777216
  tcp_address = ""
  tcp_tls_ca = ""
  tcp_tls_cert = ""
  tcp_tls_key = ""
  uid = 0

[metrics]
  address = ""
  grpc_histogram = false

[plugins]

  [plugins."io.containerd.gc.v1.scheduler"]
    deletion_threshold = 0
    mutation_threshold = 100
    pause_threshold = 0.02
    schedule_delay = "0s"
    startup_delay = "100ms"

  [plugins."io.containerd.grpc.v1.cri"]
    cdi_spec_dirs = ["/etc/cdi", "/var/run/cdi"]
    device_ownership_from_security_context = false
    disable_apparmor = false
    disable_cgroup = false
    disable_hugetlb_controller = true
    disable_proc_mount = false
    disable_tcp_service = true
    drain_exec_sync_io_timeout = "0s"
    enable_cdi = false
    enable_selinux = false
    enable_tls_streaming = false
    enable_unprivileged_icmp = false
    enable_unprivileged_ports = false
    ignore_deprecation_warnings = []
    ignore_image_defined_volumes = false
    image_pull_progress_timeout = "5m0s"
    image_pull_with_sync_fs = false
    max_concurrent_downloads = 3
    max_container_log_line_size = 16384
    netns_mounts_under_state_dir = false
    restrict_oom_score_adj = false
    sandbox_image = "registry.k8s.io/pause:3.8"
    selinux_category_range = 1024
    stats_collect_period = 10
    stream_idle_timeout = "4h0m0s"
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    systemd_cgroup = false
    tolerate_missing_hugetlb_controller = true
    unset_seccomp_profile = ""

    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/opt/cni/bin"
      conf_dir = "/etc/cni/net.d"
      conf_template = ""
      ip_pref = ""
      max_conf_num = 1
      setup_serially = false

    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"
      disable_snapshot_annotations = true
      discard_unpacked_layers = false
      ignore_blockio_not_enabled_errors = false
      ignore_rdt_not_enabled_errors = false
      no_pivot = false
      snapshotter = "overlayfs"

      [plugins."io.containerd.grpc.v1.cri".containerd.default_runtime]
        base_runtime_spec = ""
        cni_conf_dir = ""
        cni_max_conf_num = 0
        container_annotations = []
        pod_annotations = []
        privileged_without_host_devices = false
        privileged_without_host_devices_all_devices_allowed = false
        runtime_engine = ""
        runtime_path = ""
        runtime_root = ""
        runtime_type = ""
        sandbox_mode = ""
        snapshotter = ""

        [plugins."io.containerd.grpc.v1.cri".containerd.default_runtime.options]

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]

        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
          base_runtime_spec = ""
          cni_conf_dir = ""
          cni_max_conf_num = 0
          container_annotations = []
          pod_annotations = []
          privileged_without_host_devices = false
          privileged_without_host_devices_all_devices_allowed = false
          runtime_engine = ""
          runtime_path = ""
          runtime_root = ""
          runtime_type = "io.containerd.runc.v2"
          sandbox_mode = "podsandbox"
          snapshotter = ""

          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
            BinaryName = ""
            CriuImagePath = ""
            CriuPath = ""
            CriuWorkPath = ""
            IoGid = 0
            IoUid = 0
            NoNewKeyring = false
            NoPivotRoot = false
            Root = ""
            ShimCgroup = ""
            SystemdCgroup = false

      [plugins."io.containerd.grpc.v1.cri".containerd.untrusted_workload_runtime]
        base_runtime_spec = ""
        cni_conf_dir = ""
        cni_max_conf_num = 0
        container_annotations = []
        pod_annotations = []
        privileged_without_host_devices = false
        privileged_without_host_devices_all_devices_allowed = false
        runtime_engine = ""
        runtime_path = ""
        runtime_root = ""
        runtime_type = ""
        sandbox_mode = ""
        snapshotter = ""

        [plugins."io.containerd.grpc.v1.cri".containerd.untrusted_workload_runtime.options]

    [plugins."io.containerd.grpc.v1.cri".image_decryption]
      key_model = "node"

    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = ""

      [plugins."io.containerd.grpc.v1.cri".registry.auths]

      [plugins."io.containerd.grpc.v1.cri".registry.configs]

      [plugins."io.containerd.grpc.v1.cri".registry.headers]

      [plugins."io.containerd.grpc.v1.cri".registry.mirrors]

    [plugins."io.containerd.grpc.v1.cri".x509_key_pair_streaming]
      tls_cert_file = ""
      tls_key_file = ""

  [plugins."io.containerd.internal.v1.opt"]
    path = "/opt/containerd"

  [plugins."io.containerd.internal.v1.restart"]
    interval = "10s"

  [plugins."io.containerd.runtime.v1.linux"]
    no_shim = false
    runtime = "runc"
    runtime_root = ""
    shim = "containerd-shim"
    shim_debug = false

  [plugins."io.containerd.snapshotter.v1.overlayfs"]
    root_path = ""
    upperdir_label = false

  [plugins."io.containerd.transfer.v1.local"]
    config_path = ""
    max_concurrent_downloads = 3
    max_concurrent_uploaded_layers = 3

    [[plugins."io.containerd.transfer.v1.local".unpack_config]]
      differ = ""
      platform = "linux/amd64"
      snapshotter = "overlayfs"

[proxy_plugins]

[stream_processors]

  [stream_processors."io.containerd.ocicrypt.decoder.v1.tar"]
    accepts = ["application/vnd.oci.image.layer.v1.tar+encrypted"]
    args = ["--decryption-keys-path", "/etc/containerd/ocicrypt/keys"]
    env = ["OCICRYPT_KEYPROVIDER_CONFIG=/etc/containerd/ocicrypt/ocicrypt_keyprovider.conf"]
    path = "ctd-decoder"
    returns = "application/vnd.oci.image.layer.v1.tar"

[timeouts]
  "io.containerd.timeout.bolt.open" = "0s"
  "io.containerd.timeout.shim.cleanup" = "5s"

[ttrpc]
  address = ""
  gid = 0
  uid = 0
"#;

    /// What kubeadm guides write: runc with the systemd cgroup driver.
    pub(super) const KUBEADM_SYSTEMD: &str = r#"
version = 2
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.9"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = true
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "/etc/containerd/certs.d:/etc/docker/certs.d"
"#;

    /// A containerd 2.x file.
    pub(super) const CONTAINERD_2_V3: &str = r#"
version = 3
root = "/data/containerd"
state = "/ephemeral/containerd"
disabled_plugins = ["io.containerd.internal.v1.opt"]

[grpc]
  address = "/ephemeral/containerd/client.sock"
  uid = 0

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "0.0.0.0"
  stream_server_port = "10010"
  stream_idle_timeout = "30m"

[plugins.'io.containerd.cri.v1.runtime']
  enable_unprivileged_ports = true
  enable_cdi = true
  drain_exec_sync_io_timeout = "2s"

[plugins.'io.containerd.cri.v1.runtime'.containerd]
  default_runtime_name = "crun"

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.crun]
  runtime_type = "io.containerd.runc.v2"
  sandboxer = "podsandbox"
  io_type = ""

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.crun.options]
  BinaryName = "/usr/bin/crun"
  SystemdCgroup = true

[plugins.'io.containerd.cri.v1.runtime'.cni]
  bin_dirs = ["/opt/cni/bin", "/usr/lib/cni"]
  conf_dir = "/etc/cni/net.d"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "native"
  max_concurrent_downloads = 5
  image_pull_progress_timeout = "2m"
  use_local_image_pull = true

[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = "registry.k8s.io/pause:3.10"

[plugins.'io.containerd.cri.v1.images'.registry]
  config_path = "/etc/containerd/certs.d"

[plugins.'io.containerd.snapshotter.v1.overlayfs']
  root_path = ""
"#;

    #[test]
    fn defaults_are_containerd_17s() {
        let (config, warnings) = Config::load(None, Overrides::default()).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(config, Config::default());
        let cri = &config.cri;
        assert_eq!(cri.sandbox_image, "registry.k8s.io/pause:3.8");
        assert_eq!(cri.snapshotter, "overlayfs");
        assert_eq!(
            cri.default_runtime().unwrap().runtime_type,
            "io.containerd.runc.v2"
        );
        assert_eq!(
            (cri.cni.bin_dir.as_path(), cri.cni.conf_dir.as_path()),
            (Path::new("/opt/cni/bin"), Path::new("/etc/cni/net.d"))
        );
        assert_eq!(cri.cni.max_conf_num, 1);
        assert_eq!(
            (cri.stream_server_address.as_str(), cri.stream_server_port),
            ("127.0.0.1", 0)
        );
        assert_eq!(cri.stream_idle_timeout, Duration::from_secs(4 * 3600 * SEC));
        assert_eq!(cri.image_pull_progress_timeout, Duration::from_secs(300));
        assert_eq!(cri.drain_exec_sync_io_timeout, Duration::ZERO);
        assert_eq!(
            (
                cri.max_container_log_line_size,
                cri.max_concurrent_downloads,
                cri.stats_collect_period
            ),
            (16384, 3, 10)
        );
        assert!(
            cri.disable_snapshot_annotations && !cri.enable_selinux && !cri.restrict_oom_score_adj
        );
        assert_eq!(
            config.server.listen,
            PathBuf::from("/run/cri-server/cri-server.sock")
        );
        assert_eq!(
            config.server.containerd_address,
            PathBuf::from("/run/containerd/containerd.sock")
        );
        assert_eq!(config.server.containerd_namespace, "k8s.io");
        assert_eq!(
            config.server.root_dir,
            PathBuf::from("/var/lib/containerd/io.containerd.grpc.v1.cri")
        );
        assert_eq!(
            config.server.state_dir,
            PathBuf::from("/run/containerd/io.containerd.grpc.v1.cri")
        );
        assert_eq!(
            (config.server.log_level.as_str(), config.server.log_format),
            ("info", LogFormat::Text)
        );
    }

    #[test]
    fn empty_file_is_the_defaults() {
        check("", Ok(Config::default()));
    }

    #[test]
    fn containerd_17_default_file_is_the_defaults() {
        check(CONTAINERD_17_DEFAULT, Ok(Config::default()));
    }

    #[test]
    fn kubeadm_systemd_config() {
        let mut want = Config::default();
        want.cri.sandbox_image = "registry.k8s.io/pause:3.9".into();
        want.cri.runtimes = BTreeMap::from([("runc".into(), runc_with("SystemdCgroup = true"))]);
        want.cri.registry.config_path = "/etc/containerd/certs.d:/etc/docker/certs.d".into();
        check(KUBEADM_SYSTEMD, Ok(want));
        let (config, _) = load(KUBEADM_SYSTEMD, Overrides::default()).unwrap();
        assert!(config.cri.default_runtime().unwrap().systemd_cgroup());
    }

    #[test]
    fn options_alone_still_describe_runc() {
        let text = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\nSystemdCgroup = true\n";
        let mut want = Config::default();
        want.cri.runtimes = BTreeMap::from([("runc".into(), runc_with("SystemdCgroup = true"))]);
        check(text, Ok(want));
    }

    #[test]
    fn v2_runtimes_table_replaces_the_defaults() {
        let text = r#"
version = 2
[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "kata"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata]
  runtime_type = "io.containerd.kata.v2"
  privileged_without_host_devices = true
  pod_annotations = ["io.katacontainers.*"]
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata.options]
    ConfigPath = "/opt/kata/configuration.toml"
"#;
        let (config, warnings) = load(text, Overrides::default()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config.cri.runtimes.keys().collect::<Vec<_>>(), ["kata"]);
        let kata = config.cri.runtime("").unwrap();
        assert_eq!(
            kata.config_path(),
            Some(Path::new("/opt/kata/configuration.toml"))
        );
        assert_eq!(
            (kata.sandbox_mode.as_str(), kata.pod_annotations.len()),
            ("podsandbox", 1)
        );
    }

    #[test]
    fn containerd_2_v3_config() {
        let mut want = Config::default();
        let cri = &mut want.cri;
        cri.stream_server_address = "0.0.0.0".into();
        cri.stream_server_port = 10010;
        cri.stream_idle_timeout = Duration::from_secs(30 * 60);
        cri.enable_unprivileged_ports = true;
        cri.enable_cdi = true;
        cri.drain_exec_sync_io_timeout = Duration::from_secs(2);
        cri.default_runtime_name = "crun".into();
        let mut crun = runc_with("");
        crun.options = "BinaryName = \"/usr/bin/crun\"\nSystemdCgroup = true"
            .parse()
            .unwrap();
        cri.runtimes.insert("crun".into(), crun);
        cri.cni.bin_dirs = vec!["/opt/cni/bin".into(), "/usr/lib/cni".into()];
        cri.snapshotter = "native".into();
        cri.max_concurrent_downloads = 5;
        cri.image_pull_progress_timeout = Duration::from_secs(120);
        cri.use_local_image_pull = true;
        cri.sandbox_image = "registry.k8s.io/pause:3.10".into();
        cri.registry.config_path = "/etc/containerd/certs.d".into();
        cri.containerd_root_dir = "/data/containerd".into();
        want.server.containerd_address = "/ephemeral/containerd/client.sock".into();
        want.server.root_dir = "/data/containerd/io.containerd.grpc.v1.cri".into();
        want.server.state_dir = "/ephemeral/containerd/io.containerd.grpc.v1.cri".into();
        check(CONTAINERD_2_V3, Ok(want));
    }

    #[test]
    fn v1_short_plugin_id_is_read() {
        let text =
            "[plugins.cri]\nsandbox_image = \"pause:1\"\n[plugins.cri.cni]\nconf_dir = \"/cni\"\n";
        let mut want = Config::default();
        want.cri.sandbox_image = "pause:1".into();
        want.cri.cni.conf_dir = "/cni".into();
        check(text, Ok(want));
    }

    #[test]
    fn unknown_keys_warn_with_their_path() {
        let text = r#"
version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_imag = "typo"
[plugins."io.containerd.grpc.v1.cri".containerd]
  foo = 1
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_typo = "x"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroups = true
[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
  endpoints = ["https://mirror"]
[cri_server]
  lissen = "/x.sock"
"#;
        assert_eq!(
            warnings(text),
            [
                r#"plugins."io.containerd.grpc.v1.cri".sandbox_imag"#,
                r#"plugins."io.containerd.grpc.v1.cri".containerd.foo"#,
                r#"plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.runtime_typo"#,
                r#"plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io".endpoints"#,
                "cri_server.lissen",
                r#"plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options.SystemdCgroups"#,
            ]
        );
    }

    #[test]
    fn other_sections_do_not_warn() {
        let text = r#"
version = 2
oom_score = -999
disabled_plugins = ["io.containerd.snapshotter.v1.zfs"]
[grpc]
  uid = 0
[metrics]
  address = "127.0.0.1:1338"
[plugins."io.containerd.internal.v1.opt"]
  path = "/opt/containerd"
[plugins."io.containerd.cri.v1.runtime"]
  enable_cdi = true
[plugins.cri]
  whatever = 1
"#;
        assert_eq!(warnings(text), Vec::<String>::new());
    }

    #[test]
    fn tracing_sections_are_read_without_warnings() {
        for version in [2, 3] {
            let text = format!(
                "version = {version}\n\
                 [plugins.\"io.containerd.tracing.processor.v1.otlp\"]\n\
                 endpoint = \"127.0.0.1:4317\"\nprotocol = \"grpc\"\ninsecure = true\n\
                 [plugins.\"io.containerd.internal.v1.tracing\"]\n\
                 sampling_ratio = 1.0\nservice_name = \"cri\"\n"
            );
            let (config, warnings) = load(&text, Overrides::default()).unwrap();
            assert_eq!(warnings, Vec::<String>::new());
            assert_eq!(config.tracing.endpoint.as_deref(), Some("127.0.0.1:4317"));
            assert!(config.tracing.insecure);
            assert_eq!(config.tracing.service_name, "cri");
        }
    }

    #[test]
    fn v2_keys_in_v3_server_section_warn() {
        let text =
            "version = 3\n[plugins.'io.containerd.grpc.v1.cri']\nsandbox_image = \"pause\"\n";
        assert_eq!(
            warnings(text),
            [r#"plugins."io.containerd.grpc.v1.cri".sandbox_image"#]
        );
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let text = "version = 2\n\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"pause\"\n  max_concurrent_downloads = \"three\"\n";
        check(
            text,
            Err(
                r#"config /etc/containerd/config.toml: line 5: plugins."io.containerd.grpc.v1.cri".max_concurrent_downloads: invalid type: string "three", expected u32"#,
            ),
        );
    }

    #[test]
    fn bad_port_names_key_and_line() {
        let text =
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\nstream_server_port = \"abc\"\n";
        check(
            text,
            Err(
                r#"config /etc/containerd/config.toml: line 3: plugins."io.containerd.grpc.v1.cri".stream_server_port: invalid value: string "abc", expected a port number 0-65535"#,
            ),
        );
    }

    #[test]
    fn port_may_be_a_number() {
        let mut want = Config::default();
        want.cri.stream_server_port = 10010;
        check(
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\nstream_server_port = 10010\n",
            Ok(want),
        );
    }

    #[test]
    fn wrong_type_deep_in_a_runtime() {
        let text = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\nruntime_type = 2\n";
        check(
            text,
            Err(
                r#"config /etc/containerd/config.toml: line 3: plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.runtime_type: invalid type: integer `2`, expected a string"#,
            ),
        );
    }

    #[test]
    fn wrong_type_in_our_table() {
        check(
            "[cri_server]\nlisten = 5\n",
            Err("config /etc/containerd/config.toml: line 2: cri_server.listen: invalid type: integer `5`, expected path string"),
        );
    }

    #[test]
    fn syntax_error_names_line() {
        let err = load("version = 2\n[plugins\nx = 1\n", Overrides::default()).unwrap_err();
        assert!(
            err.starts_with("config /etc/containerd/config.toml: line 2: invalid table header"),
            "{err}"
        );
    }

    #[test]
    fn bad_duration_fails_with_key() {
        let text = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\nstream_idle_timeout = \"4 hours\"\n";
        check(
            text,
            Err(
                r#"config /etc/containerd/config.toml: line 3: plugins."io.containerd.grpc.v1.cri".stream_idle_timeout: unknown unit " hours" in duration "4 hours""#,
            ),
        );
    }

    #[test]
    fn empty_duration_keeps_default() {
        check("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\nimage_pull_progress_timeout = \"\"\n", Ok(Config::default()));
    }

    #[test]
    fn bad_log_format_fails_with_key() {
        check(
            "[cri_server]\nlog_format = \"xml\"\n",
            Err("config /etc/containerd/config.toml: line 2: cri_server.log_format: unknown variant `xml`, expected `text` or `json`"),
        );
    }

    #[test]
    fn bad_ip_pref_fails_with_key() {
        check(
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".cni]\nip_pref = \"ipv5\"\n",
            Err(
                r#"config /etc/containerd/config.toml: line 3: plugins."io.containerd.grpc.v1.cri".cni.ip_pref: invalid value: string "ipv5", expected "ipv4", "ipv6" or "cni""#,
            ),
        );
    }

    #[test]
    fn unknown_default_runtime_fails() {
        let text = "version = 3\n[plugins.'io.containerd.cri.v1.runtime'.containerd]\n  default_runtime_name = \"kata\"\n";
        check(
            text,
            Err(
                r#"config /etc/containerd/config.toml: line 3: plugins."io.containerd.cri.v1.runtime".containerd.default_runtime_name: no runtime "kata" in `containerd.runtimes` (have: runc)"#,
            ),
        );
    }

    #[test]
    fn plugin_systemd_cgroup_fails_for_runc_v2() {
        let text = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\nsystemd_cgroup = true\n";
        let err = load(text, Overrides::default()).unwrap_err();
        assert!(
            err.starts_with(r#"config /etc/containerd/config.toml: line 3: plugins."io.containerd.grpc.v1.cri".systemd_cgroup: only works for runtime io.containerd.runtime.v1.linux"#),
            "{err}"
        );
    }

    #[test]
    fn wrongly_typed_runc_option_fails() {
        let text = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\nSystemdCgroup = \"true\"\n";
        check(
            text,
            Err(
                r#"config /etc/containerd/config.toml: plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options.SystemdCgroup: invalid type: string, expected a boolean"#,
            ),
        );
    }

    #[test]
    fn mirrors_with_config_path_fail() {
        let text = r#"
version = 2
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
  endpoint = ["https://mirror.example"]
"#;
        check(
            text,
            Err(
                r#"config /etc/containerd/config.toml: plugins."io.containerd.grpc.v1.cri".registry.mirrors: cannot be set when `config_path` is provided"#,
            ),
        );
    }

    #[test]
    fn unsupported_version_fails() {
        check(
            "version = 4\n",
            Err("config /etc/containerd/config.toml: unsupported config version 4, want 1, 2 or 3"),
        );
    }

    #[test]
    fn deprecated_default_runtime_becomes_runtime_default() {
        let text = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.default_runtime]\nruntime_type = \"io.containerd.runc.v2\"\n";
        let (config, _) = load(text, Overrides::default()).unwrap();
        assert_eq!(config.cri.default_runtime_name, "default");
        assert_eq!(
            config.cri.runtime("").unwrap().runtime_type,
            "io.containerd.runc.v2"
        );
    }

    const SERVER_LAYERS: &str = r#"
version = 2
root = "/data/containerd"
state = "/tmp/containerd-state"
[grpc]
  address = "/tmp/containerd.sock"
[cri_server]
  listen = "/run/from-file.sock"
  root_dir = "/var/lib/from-file"
  log_level = "debug"
  log_format = "json"
  metrics_address = "127.0.0.1:1338"
  containerd_passthrough = false
  socket_group = "kube"
  allow_containerd_cri = true
"#;

    #[test]
    fn cri_server_table_wins_over_containerd_top_level() {
        let (config, _) = load(SERVER_LAYERS, Overrides::default()).unwrap();
        let want = ServerConfig {
            listen: "/run/from-file.sock".into(),
            containerd_address: "/tmp/containerd.sock".into(),
            containerd_namespace: "k8s.io".into(),
            root_dir: "/var/lib/from-file".into(),
            state_dir: "/tmp/containerd-state/io.containerd.grpc.v1.cri".into(),
            log_level: "debug".into(),
            log_format: LogFormat::Json,
            metrics_address: Some("127.0.0.1:1338".into()),
            containerd_passthrough: false,
            socket_group: Some("kube".into()),
            allow_containerd_cri: true,
        };
        assert_eq!(config.server, want);
        assert_eq!(
            config.cri.containerd_root_dir,
            PathBuf::from("/data/containerd")
        );
    }

    #[test]
    fn cli_overrides_win() {
        let overrides = Overrides {
            listen: Some("/run/cli.sock".into()),
            containerd_address: Some("/run/cli-containerd.sock".into()),
            containerd_namespace: Some("cli-ns".into()),
            root_dir: Some("/cli/root".into()),
            state_dir: Some("/cli/state".into()),
            log_level: Some("trace".into()),
            log_format: Some(LogFormat::Text),
            containerd_passthrough: None,
            allow_containerd_cri: Some(true),
        };
        let (config, _) = load(SERVER_LAYERS, overrides).unwrap();
        let want = ServerConfig {
            listen: "/run/cli.sock".into(),
            containerd_address: "/run/cli-containerd.sock".into(),
            containerd_namespace: "cli-ns".into(),
            root_dir: "/cli/root".into(),
            state_dir: "/cli/state".into(),
            log_level: "trace".into(),
            log_format: LogFormat::Text,
            metrics_address: Some("127.0.0.1:1338".into()),
            containerd_passthrough: false,
            socket_group: Some("kube".into()),
            allow_containerd_cri: true,
        };
        assert_eq!(config.server, want);
    }

    #[test]
    fn containerd_passthrough_is_on_by_default_and_the_flag_turns_it_off() {
        let (config, _) = load("version = 2\n", Overrides::default()).unwrap();
        assert!(config.server.containerd_passthrough);
        let (config, _) = load(
            "version = 2\n[cri_server]\ncontainerd_passthrough = true\n",
            Overrides {
                containerd_passthrough: Some(false),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert!(!config.server.containerd_passthrough);
    }

    #[test]
    fn root_and_state_come_from_containerd_top_level() {
        let (config, _) = load(
            "version = 2\nroot = \"/srv/ctd\"\nstate = \"/run/ctd\"\n",
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(
            config.server.root_dir,
            PathBuf::from("/srv/ctd/io.containerd.grpc.v1.cri")
        );
        assert_eq!(
            config.server.state_dir,
            PathBuf::from("/run/ctd/io.containerd.grpc.v1.cri")
        );
        assert_eq!(
            config.server.containerd_address,
            PathBuf::from(DEFAULT_CONTAINERD_ADDRESS)
        );
    }

    #[test]
    fn empty_cri_server_value_fails() {
        check(
            "[cri_server]\ncontainerd_namespace = \"\"\n",
            Err("config /etc/containerd/config.toml: cri_server.containerd_namespace: must not be empty"),
        );
    }

    const WITH_SECRETS: &str = r#"
version = 2
[plugins."io.containerd.grpc.v1.cri".registry.configs."registry.example.com".auth]
  username = "robot"
  password = "s3cr3t-password"
  auth = "cm9ib3Q6czNjcjN0"
  identitytoken = "id-token-value"
[plugins."io.containerd.grpc.v1.cri".registry.auths."https://legacy.example.com/v2/"]
  username = "old"
  password = "legacy-password"
[plugins."io.containerd.grpc.v1.cri".registry.headers]
  Authorization = ["Bearer header-token"]
  X-Meta-Source-Client = ["azure/aks"]
"#;

    #[test]
    fn secrets_stay_out_of_status_json_and_debug() {
        let (config, warnings) = load(WITH_SECRETS, Overrides::default()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let auth = config.cri.registry.configs["registry.example.com"]
            .auth
            .as_ref()
            .unwrap();
        assert_eq!(auth.password.expose(), "s3cr3t-password");
        let legacy = config.cri.registry.configs["legacy.example.com"]
            .auth
            .as_ref()
            .unwrap();
        assert_eq!(legacy.username, "old");

        let json = config.to_status_json().to_string();
        let debug = format!("{config:?} {config:#?}");
        for secret in [
            "s3cr3t-password",
            "cm9ib3Q6czNjcjN0",
            "id-token-value",
            "legacy-password",
            "header-token",
        ] {
            assert!(!json.contains(secret), "{secret} in status JSON");
            assert!(!debug.contains(secret), "{secret} in Debug");
        }
        assert!(json.contains("robot") && json.contains("azure/aks"));
        let status = config.to_status_json();
        let shown = &status["registry"]["configs"]["registry.example.com"]["auth"];
        assert_eq!(shown["password"], REDACTED);
        assert_eq!(shown["username"], "robot");
    }

    #[test]
    fn status_json_uses_containerd_names() {
        let (config, _) = load(KUBEADM_SYSTEMD, Overrides::default()).unwrap();
        let json = config.to_status_json();
        let expect = [
            (
                "/sandboxImage",
                serde_json::json!("registry.k8s.io/pause:3.9"),
            ),
            ("/containerd/snapshotter", serde_json::json!("overlayfs")),
            ("/containerd/defaultRuntimeName", serde_json::json!("runc")),
            (
                "/containerd/runtimes/runc/runtimeType",
                serde_json::json!("io.containerd.runc.v2"),
            ),
            (
                "/containerd/runtimes/runc/options/SystemdCgroup",
                serde_json::json!(true),
            ),
            (
                "/containerd/runtimes/runc/sandboxMode",
                serde_json::json!("podsandbox"),
            ),
            ("/cni/binDir", serde_json::json!("/opt/cni/bin")),
            ("/cni/confDir", serde_json::json!("/etc/cni/net.d")),
            ("/cni/maxConfNum", serde_json::json!(1)),
            (
                "/registry/configPath",
                serde_json::json!("/etc/containerd/certs.d:/etc/docker/certs.d"),
            ),
            ("/streamServerAddress", serde_json::json!("127.0.0.1")),
            ("/streamServerPort", serde_json::json!("0")),
            ("/streamIdleTimeout", serde_json::json!("4h0m0s")),
            ("/imagePullProgressTimeout", serde_json::json!("5m0s")),
            ("/restrictOOMScoreAdj", serde_json::json!(false)),
            ("/maxContainerLogSize", serde_json::json!(16384)),
            (
                "/containerdRootDir",
                serde_json::json!("/var/lib/containerd"),
            ),
            (
                "/containerdEndpoint",
                serde_json::json!("/run/containerd/containerd.sock"),
            ),
            (
                "/rootDir",
                serde_json::json!("/var/lib/containerd/io.containerd.grpc.v1.cri"),
            ),
            (
                "/stateDir",
                serde_json::json!("/run/containerd/io.containerd.grpc.v1.cri"),
            ),
        ];
        for (pointer, want) in expect {
            assert_eq!(json.pointer(pointer), Some(&want), "{pointer}");
        }
    }

    #[test]
    fn load_reads_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, KUBEADM_SYSTEMD).unwrap();
        let (config, _) = Config::load(Some(&path), Overrides::default()).unwrap();
        assert_eq!(config.cri.sandbox_image, "registry.k8s.io/pause:3.9");

        let missing = dir.path().join("missing.toml");
        let err = Config::load(Some(&missing), Overrides::default()).unwrap_err();
        assert!(
            matches!(err, ConfigError::Read { ref path, .. } if *path == missing),
            "{err}"
        );
    }

    #[test]
    fn error_exposes_key_and_line() {
        let text =
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\nenable_selinux = \"yes\"\n";
        let err = Config::from_toml_str(text, "t", Overrides::default()).unwrap_err();
        assert_eq!(
            err.key(),
            Some(r#"plugins."io.containerd.grpc.v1.cri".enable_selinux"#)
        );
        assert_eq!(err.line(), Some(3));
    }
}
