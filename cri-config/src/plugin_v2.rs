//! The containerd 1.x layout (`version = 2`, and best effort `version = 1`):
//! one `[plugins."io.containerd.grpc.v1.cri"]` section holding everything.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::cri::CriConfig;
use super::duration;
use super::error::ConfigError;
use super::file::{plugin_key, PluginSections, Source, GRPC_CRI_PLUGIN, LEGACY_CRI_PLUGIN};
use super::registry::RawRegistry;
use super::runtime::RuntimeConfig;
use super::sections::{apply_runtimes, RawCni, RawImageDecryption, RawX509, RuntimeTable};
use super::validate::Origins;
use super::values::deserialize_opt_port;

/// The name containerd gives the deprecated `default_runtime`.
const DEPRECATED_DEFAULT_RUNTIME: &str = "default";
/// The name containerd gives the deprecated `untrusted_workload_runtime`.
const DEPRECATED_UNTRUSTED_RUNTIME: &str = "untrusted";

/// `[plugins]` of a version 1 file: the plugin may go by its short id.
#[derive(Debug, Deserialize)]
pub(super) struct RawPluginsV1 {
    #[serde(rename = "cri")]
    legacy: Option<RawCriPlugin>,
    #[serde(rename = "io.containerd.grpc.v1.cri")]
    cri: Option<RawCriPlugin>,
}

/// `[plugins]` of a version 2 file.
#[derive(Debug, Deserialize)]
pub(super) struct RawPluginsV2 {
    #[serde(rename = "io.containerd.grpc.v1.cri")]
    cri: Option<RawCriPlugin>,
}

impl PluginSections for RawPluginsV1 {
    fn apply(
        self,
        cri: &mut CriConfig,
        source: &Source<'_>,
        origins: &mut Origins,
    ) -> Result<(), ConfigError> {
        let sections = [
            (LEGACY_CRI_PLUGIN, self.legacy),
            (GRPC_CRI_PLUGIN, self.cri),
        ];
        for (plugin, section) in sections {
            if let Some(section) = section {
                origins.set_single_section(plugin);
                section.apply(cri, source, origins)?;
            }
        }
        Ok(())
    }
}

impl PluginSections for RawPluginsV2 {
    fn apply(
        self,
        cri: &mut CriConfig,
        source: &Source<'_>,
        origins: &mut Origins,
    ) -> Result<(), ConfigError> {
        origins.set_single_section(GRPC_CRI_PLUGIN);
        match self.cri {
            Some(section) => section.apply(cri, source, origins),
            None => Ok(()),
        }
    }
}

/// `[plugins."io.containerd.grpc.v1.cri"]` as written (containerd's
/// `PluginConfig`).
#[derive(Debug, Deserialize)]
pub(super) struct RawCriPlugin {
    containerd: Option<RawContainerd>,
    cni: Option<RawCni>,
    registry: Option<RawRegistry>,
    image_decryption: Option<RawImageDecryption>,
    disable_tcp_service: Option<bool>,
    stream_server_address: Option<String>,
    #[serde(default, deserialize_with = "deserialize_opt_port")]
    stream_server_port: Option<u16>,
    #[serde(default, deserialize_with = "duration::deserialize_opt")]
    stream_idle_timeout: Option<Duration>,
    enable_selinux: Option<bool>,
    selinux_category_range: Option<u32>,
    sandbox_image: Option<String>,
    stats_collect_period: Option<u32>,
    systemd_cgroup: Option<Spanned<bool>>,
    enable_tls_streaming: Option<bool>,
    x509_key_pair_streaming: Option<RawX509>,
    max_container_log_line_size: Option<i64>,
    disable_cgroup: Option<bool>,
    disable_apparmor: Option<bool>,
    restrict_oom_score_adj: Option<bool>,
    max_concurrent_downloads: Option<u32>,
    disable_proc_mount: Option<bool>,
    unset_seccomp_profile: Option<String>,
    tolerate_missing_hugetlb_controller: Option<bool>,
    disable_hugetlb_controller: Option<bool>,
    device_ownership_from_security_context: Option<bool>,
    ignore_image_defined_volumes: Option<bool>,
    netns_mounts_under_state_dir: Option<bool>,
    enable_unprivileged_ports: Option<bool>,
    enable_unprivileged_icmp: Option<bool>,
    enable_cdi: Option<bool>,
    cdi_spec_dirs: Option<Vec<PathBuf>>,
    #[serde(default, deserialize_with = "duration::deserialize_opt")]
    image_pull_progress_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration::deserialize_opt")]
    drain_exec_sync_io_timeout: Option<Duration>,
    image_pull_with_sync_fs: Option<bool>,
    ignore_deprecation_warnings: Option<Vec<String>>,
}

/// `containerd` in the v2 section (containerd's `ContainerdConfig`).
#[derive(Debug, Deserialize)]
struct RawContainerd {
    snapshotter: Option<String>,
    default_runtime_name: Option<Spanned<String>>,
    /// Deprecated: used as runtime `default` when its type is set.
    default_runtime: Option<RuntimeConfig>,
    /// Deprecated: used as runtime `untrusted` when its type is set.
    untrusted_workload_runtime: Option<RuntimeConfig>,
    runtimes: Option<BTreeMap<String, RuntimeConfig>>,
    no_pivot: Option<Spanned<bool>>,
    disable_snapshot_annotations: Option<bool>,
    discard_unpacked_layers: Option<bool>,
    ignore_blockio_not_enabled_errors: Option<bool>,
    ignore_rdt_not_enabled_errors: Option<bool>,
}

impl RawCriPlugin {
    fn apply(
        self,
        cri: &mut CriConfig,
        source: &Source<'_>,
        origins: &mut Origins,
    ) -> Result<(), ConfigError> {
        let raw = self;
        overlay!(raw => cri;
            disable_tcp_service, stream_server_address, stream_server_port, stream_idle_timeout,
            enable_selinux, selinux_category_range, sandbox_image, stats_collect_period,
            enable_tls_streaming, max_container_log_line_size, disable_cgroup, disable_apparmor,
            restrict_oom_score_adj, max_concurrent_downloads, disable_proc_mount, unset_seccomp_profile,
            tolerate_missing_hugetlb_controller, disable_hugetlb_controller,
            device_ownership_from_security_context, ignore_image_defined_volumes,
            netns_mounts_under_state_dir, enable_unprivileged_ports, enable_unprivileged_icmp,
            enable_cdi, cdi_spec_dirs, image_pull_progress_timeout, drain_exec_sync_io_timeout,
            image_pull_with_sync_fs, ignore_deprecation_warnings,
        );
        if let Some(flag) = raw.systemd_cgroup {
            origins.systemd_cgroup_line = Some(source.line_of(flag.span().start));
            cri.systemd_cgroup = flag.into_inner();
        }
        if let Some(cni) = raw.cni {
            cni.apply(&mut cri.cni);
        }
        if let Some(registry) = raw.registry {
            registry.apply(&mut cri.registry);
        }
        if let Some(decryption) = raw.image_decryption {
            decryption.apply(&mut cri.image_decryption);
        }
        if let Some(pair) = raw.x509_key_pair_streaming {
            pair.apply(&mut cri.x509_key_pair_streaming);
        }
        match raw.containerd {
            Some(containerd) => containerd.apply(cri, source, origins),
            None => Ok(()),
        }
    }
}

impl RawContainerd {
    fn apply(
        self,
        cri: &mut CriConfig,
        source: &Source<'_>,
        origins: &mut Origins,
    ) -> Result<(), ConfigError> {
        let raw = self;
        overlay!(raw => cri;
            snapshotter, disable_snapshot_annotations, discard_unpacked_layers,
            ignore_blockio_not_enabled_errors, ignore_rdt_not_enabled_errors,
        );
        if let Some(name) = raw.default_runtime_name {
            origins.default_runtime_name_line = Some(source.line_of(name.span().start));
            cri.default_runtime_name = name.into_inner();
        }
        if let Some(flag) = raw.no_pivot {
            origins.no_pivot_line = Some(source.line_of(flag.span().start));
            cri.no_pivot = flag.into_inner();
        }
        if let Some(runtimes) = raw.runtimes {
            apply_runtimes(&mut cri.runtimes, runtimes, RuntimeTable::Replaces);
        }
        // containerd's ValidatePluginConfig: untrusted first, then default.
        if let Some(untrusted) = raw
            .untrusted_workload_runtime
            .filter(|r| !r.runtime_type.is_empty())
        {
            if cri.runtimes.contains_key(DEPRECATED_UNTRUSTED_RUNTIME) {
                return Err(source.invalid(
                    plugin_key(&origins.runtime_plugin, &["containerd", "untrusted_workload_runtime"]),
                    None,
                    "conflicting definitions: configuration includes both `untrusted_workload_runtime` and `runtimes[\"untrusted\"]`",
                ));
            }
            cri.runtimes
                .insert(DEPRECATED_UNTRUSTED_RUNTIME.to_owned(), untrusted);
        }
        if let Some(default) = raw.default_runtime.filter(|r| !r.runtime_type.is_empty()) {
            cri.default_runtime_name = DEPRECATED_DEFAULT_RUNTIME.to_owned();
            origins.default_runtime_name_line = None;
            cri.runtimes
                .insert(DEPRECATED_DEFAULT_RUNTIME.to_owned(), default);
        }
        Ok(())
    }
}
