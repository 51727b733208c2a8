//! The containerd 2.x layout (`version = 3`): the CRI plugin split into
//! `io.containerd.cri.v1.runtime`, `io.containerd.cri.v1.images` and the
//! streaming half left in `io.containerd.grpc.v1.cri`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::cri::{CriConfig, ImagePlatform};
use super::duration;
use super::error::ConfigError;
use super::file::{PluginSections, Source, IMAGES_PLUGIN, RUNTIME_PLUGIN};
use super::registry::RawRegistry;
use super::runtime::RuntimeConfig;
use super::sections::{apply_runtimes, RawCni, RawImageDecryption, RawX509, RuntimeTable};
use super::validate::Origins;
use super::values::deserialize_opt_port;

/// The `pinned_images` key of the sandbox image.
const PINNED_SANDBOX: &str = "sandbox";

/// `[plugins]` of a version 3 file.
#[derive(Debug, Deserialize)]
pub(super) struct RawPluginsV3 {
    #[serde(rename = "io.containerd.grpc.v1.cri")]
    server: Option<RawServerPlugin>,
    #[serde(rename = "io.containerd.cri.v1.runtime")]
    runtime: Option<RawRuntimePlugin>,
    #[serde(rename = "io.containerd.cri.v1.images")]
    images: Option<RawImagesPlugin>,
}

impl PluginSections for RawPluginsV3 {
    fn apply(
        self,
        cri: &mut CriConfig,
        source: &Source<'_>,
        origins: &mut Origins,
    ) -> Result<(), ConfigError> {
        RUNTIME_PLUGIN.clone_into(&mut origins.runtime_plugin);
        IMAGES_PLUGIN.clone_into(&mut origins.images_plugin);
        if let Some(server) = self.server {
            server.apply(cri);
        }
        if let Some(runtime) = self.runtime {
            runtime.apply(cri, source, origins);
        }
        if let Some(images) = self.images {
            images.apply(cri);
        }
        Ok(())
    }
}

/// `[plugins."io.containerd.grpc.v1.cri"]` in v3 (containerd's
/// `ServerConfig`).
#[derive(Debug, Deserialize)]
struct RawServerPlugin {
    disable_tcp_service: Option<bool>,
    stream_server_address: Option<String>,
    #[serde(default, deserialize_with = "deserialize_opt_port")]
    stream_server_port: Option<u16>,
    #[serde(default, deserialize_with = "duration::deserialize_opt")]
    stream_idle_timeout: Option<Duration>,
    enable_tls_streaming: Option<bool>,
    x509_key_pair_streaming: Option<RawX509>,
}

impl RawServerPlugin {
    fn apply(self, cri: &mut CriConfig) {
        let raw = self;
        overlay!(raw => cri;
            disable_tcp_service, stream_server_address, stream_server_port, stream_idle_timeout,
            enable_tls_streaming,
        );
        if let Some(pair) = raw.x509_key_pair_streaming {
            pair.apply(&mut cri.x509_key_pair_streaming);
        }
    }
}

/// `[plugins."io.containerd.cri.v1.runtime"]` (containerd's
/// `RuntimeConfig`).
#[derive(Debug, Deserialize)]
struct RawRuntimePlugin {
    containerd: Option<RawContainerd>,
    cni: Option<RawCni>,
    enable_selinux: Option<bool>,
    selinux_category_range: Option<u32>,
    max_container_log_line_size: Option<i64>,
    disable_apparmor: Option<bool>,
    restrict_oom_score_adj: Option<bool>,
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
    drain_exec_sync_io_timeout: Option<Duration>,
    ignore_deprecation_warnings: Option<Vec<String>>,
}

/// `containerd` in the v3 runtime section.
#[derive(Debug, Deserialize)]
struct RawContainerd {
    default_runtime_name: Option<Spanned<String>>,
    runtimes: Option<BTreeMap<String, RuntimeConfig>>,
    ignore_blockio_not_enabled_errors: Option<bool>,
    ignore_rdt_not_enabled_errors: Option<bool>,
}

impl RawRuntimePlugin {
    fn apply(self, cri: &mut CriConfig, source: &Source<'_>, origins: &mut Origins) {
        let raw = self;
        overlay!(raw => cri;
            enable_selinux, selinux_category_range, max_container_log_line_size, disable_apparmor,
            restrict_oom_score_adj, disable_proc_mount, unset_seccomp_profile,
            tolerate_missing_hugetlb_controller, disable_hugetlb_controller,
            device_ownership_from_security_context, ignore_image_defined_volumes,
            netns_mounts_under_state_dir, enable_unprivileged_ports, enable_unprivileged_icmp,
            enable_cdi, cdi_spec_dirs, drain_exec_sync_io_timeout, ignore_deprecation_warnings,
        );
        if let Some(cni) = raw.cni {
            cni.apply(&mut cri.cni);
        }
        if let Some(containerd) = raw.containerd {
            let raw = containerd;
            overlay!(raw => cri; ignore_blockio_not_enabled_errors, ignore_rdt_not_enabled_errors);
            if let Some(name) = raw.default_runtime_name {
                origins.default_runtime_name_line = Some(source.line_of(name.span().start));
                cri.default_runtime_name = name.into_inner();
            }
            if let Some(runtimes) = raw.runtimes {
                apply_runtimes(&mut cri.runtimes, runtimes, RuntimeTable::AddsTo);
            }
        }
    }
}

/// `[plugins."io.containerd.cri.v1.images"]` (containerd's `ImageConfig`).
#[derive(Debug, Deserialize)]
struct RawImagesPlugin {
    snapshotter: Option<String>,
    disable_snapshot_annotations: Option<bool>,
    discard_unpacked_layers: Option<bool>,
    pinned_images: Option<BTreeMap<String, String>>,
    runtime_platforms: Option<BTreeMap<String, ImagePlatform>>,
    registry: Option<RawRegistry>,
    image_decryption: Option<RawImageDecryption>,
    max_concurrent_downloads: Option<u32>,
    #[serde(default, deserialize_with = "duration::deserialize_opt")]
    image_pull_progress_timeout: Option<Duration>,
    image_pull_with_sync_fs: Option<bool>,
    stats_collect_period: Option<u32>,
    disable_image_pull_with_transfer_service: Option<bool>,
    use_local_image_pull: Option<bool>,
}

impl RawImagesPlugin {
    fn apply(self, cri: &mut CriConfig) {
        let raw = self;
        overlay!(raw => cri;
            snapshotter, disable_snapshot_annotations, discard_unpacked_layers, runtime_platforms,
            max_concurrent_downloads, image_pull_progress_timeout, image_pull_with_sync_fs,
            stats_collect_period, disable_image_pull_with_transfer_service, use_local_image_pull,
        );
        if let Some(mut pinned) = raw.pinned_images {
            if let Some(sandbox) = pinned.remove(PINNED_SANDBOX).filter(|s| !s.is_empty()) {
                cri.sandbox_image = sandbox;
            }
            cri.pinned_images = pinned;
        }
        if let Some(registry) = raw.registry {
            registry.apply(&mut cri.registry);
        }
        if let Some(decryption) = raw.image_decryption {
            decryption.apply(&mut cri.image_decryption);
        }
    }
}
