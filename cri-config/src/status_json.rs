//! The effective config as containerd's CRI plugin prints it in a verbose
//! `Status` (`crictl info` → `config`): the Go JSON names of containerd
//! v1.7's `Config`, credentials redacted.

use serde_json::{json, Map, Value};

use super::cri::CriConfig;
use super::duration::format_go_duration;
use super::registry::{RegistryAuth, RegistryConfig, RegistryHostConfig, Secret, REDACTED};
use super::runtime::RuntimeConfig;
use super::Config;

/// The `config` object of a verbose `Status`.
pub(super) fn status_json(config: &Config) -> Value {
    let cri = &config.cri;
    let server = &config.server;
    let mut out = plugin_json(cri);
    if let Value::Object(map) = &mut out {
        map.insert("containerdRootDir".into(), path(&cri.containerd_root_dir));
        map.insert(
            "containerdEndpoint".into(),
            path(&server.containerd_address),
        );
        map.insert("rootDir".into(), path(&server.root_dir));
        map.insert("stateDir".into(), path(&server.state_dir));
        // Ours, not containerd's: whether the socket forwards containerd's
        // own API.
        map.insert(
            "containerdPassthrough".into(),
            Value::Bool(server.containerd_passthrough),
        );
    }
    out
}

fn plugin_json(cri: &CriConfig) -> Value {
    let runtimes: Map<String, Value> = cri
        .runtimes
        .iter()
        .map(|(name, runtime)| (name.clone(), runtime_json(runtime)))
        .collect();
    let mut cni = json!({
        "binDir": path(&cri.cni.bin_dir),
        "confDir": path(&cri.cni.conf_dir),
        "maxConfNum": cri.cni.max_conf_num,
        "setupSerially": cri.cni.setup_serially,
        "confTemplate": opt_path(cri.cni.conf_template.as_deref()),
        "ipPref": cri.cni.ip_pref.as_str(),
        "useInternalLoopback": cri.cni.use_internal_loopback,
    });
    if !cri.cni.bin_dirs.is_empty() {
        if let Value::Object(map) = &mut cni {
            let dirs = cri.cni.bin_dirs.iter().map(|d| path(d)).collect();
            map.insert("binDirs".into(), Value::Array(dirs));
        }
    }
    json!({
        "containerd": {
            "snapshotter": cri.snapshotter,
            "defaultRuntimeName": cri.default_runtime_name,
            "defaultRuntime": runtime_json(&RuntimeConfig::default()),
            "untrustedWorkloadRuntime": runtime_json(&RuntimeConfig::default()),
            "runtimes": runtimes,
            "noPivot": cri.no_pivot,
            "disableSnapshotAnnotations": cri.disable_snapshot_annotations,
            "discardUnpackedLayers": cri.discard_unpacked_layers,
            "ignoreBlockIONotEnabledErrors": cri.ignore_blockio_not_enabled_errors,
            "ignoreRdtNotEnabledErrors": cri.ignore_rdt_not_enabled_errors,
        },
        "cni": cni,
        "registry": registry_json(&cri.registry),
        "imageDecryption": { "keyModel": cri.image_decryption.key_model },
        "disableTCPService": cri.disable_tcp_service,
        "streamServerAddress": cri.stream_server_address,
        "streamServerPort": cri.stream_server_port.to_string(),
        "streamIdleTimeout": format_go_duration(cri.stream_idle_timeout),
        "enableSelinux": cri.enable_selinux,
        "selinuxCategoryRange": cri.selinux_category_range,
        "sandboxImage": cri.sandbox_image,
        "pinnedImages": pinned_images(cri),
        "statsCollectPeriod": cri.stats_collect_period,
        "systemdCgroup": cri.systemd_cgroup,
        "enableTLSStreaming": cri.enable_tls_streaming,
        "x509KeyPairStreaming": {
            "tlsCertFile": opt_path(cri.x509_key_pair_streaming.tls_cert_file.as_deref()),
            "tlsKeyFile": opt_path(cri.x509_key_pair_streaming.tls_key_file.as_deref()),
        },
        "maxContainerLogSize": cri.max_container_log_line_size,
        "disableCgroup": cri.disable_cgroup,
        "disableApparmor": cri.disable_apparmor,
        "restrictOOMScoreAdj": cri.restrict_oom_score_adj,
        "maxConcurrentDownloads": cri.max_concurrent_downloads,
        "disableProcMount": cri.disable_proc_mount,
        "unsetSeccompProfile": cri.unset_seccomp_profile,
        "tolerateMissingHugetlbController": cri.tolerate_missing_hugetlb_controller,
        "disableHugetlbController": cri.disable_hugetlb_controller,
        "device_ownership_from_security_context": cri.device_ownership_from_security_context,
        "ignoreImageDefinedVolumes": cri.ignore_image_defined_volumes,
        "netnsMountsUnderStateDir": cri.netns_mounts_under_state_dir,
        "enableUnprivilegedPorts": cri.enable_unprivileged_ports,
        "enableUnprivilegedICMP": cri.enable_unprivileged_icmp,
        "enableCDI": cri.enable_cdi,
        "cdiSpecDirs": cri.cdi_spec_dirs.iter().map(|d| path(d)).collect::<Vec<_>>(),
        "imagePullProgressTimeout": format_go_duration(cri.image_pull_progress_timeout),
        "drainExecSyncIOTimeout": format_go_duration(cri.drain_exec_sync_io_timeout),
        "imagePullWithSyncFs": cri.image_pull_with_sync_fs,
        "ignoreDeprecationWarnings": cri.ignore_deprecation_warnings,
    })
}

fn runtime_json(runtime: &RuntimeConfig) -> Value {
    json!({
        "runtimeType": runtime.runtime_type,
        "runtimePath": opt_path(runtime.runtime_path.as_deref()),
        "runtimeEngine": runtime.runtime_engine,
        "PodAnnotations": runtime.pod_annotations,
        "ContainerAnnotations": runtime.container_annotations,
        "runtimeRoot": runtime.runtime_root,
        "options": table_json(&runtime.options),
        "privileged_without_host_devices": runtime.privileged_without_host_devices,
        "privileged_without_host_devices_all_devices_allowed": runtime.privileged_without_host_devices_all_devices_allowed,
        "cgroupWritable": runtime.cgroup_writable,
        "baseRuntimeSpec": opt_path(runtime.base_runtime_spec.as_deref()),
        "cniConfDir": opt_path(runtime.cni_conf_dir.as_deref()),
        "cniMaxConfNum": runtime.cni_max_conf_num,
        "snapshotter": runtime.snapshotter.as_deref().unwrap_or_default(),
        "sandboxMode": runtime.sandbox_mode,
        "sandboxer": runtime.sandbox_mode,
        "io_type": runtime.io_type,
    })
}

fn registry_json(registry: &RegistryConfig) -> Value {
    let mirrors: Map<String, Value> = registry
        .mirrors
        .iter()
        .map(|(host, mirror)| (host.clone(), json!({ "endpoint": mirror.endpoint })))
        .collect();
    let configs: Map<String, Value> = registry
        .configs
        .iter()
        .map(|(host, config)| (host.clone(), host_json(config)))
        .collect();
    json!({
        "configPath": registry.config_path,
        "mirrors": mirrors,
        "configs": configs,
        "auths": {},
        "headers": registry.redacted_headers(),
    })
}

fn host_json(config: &RegistryHostConfig) -> Value {
    let tls = config.tls.as_ref().map(|tls| {
        json!({
            "insecure_skip_verify": tls.insecure_skip_verify,
            "caFile": opt_path(tls.ca_file.as_deref()),
            "certFile": opt_path(tls.cert_file.as_deref()),
            "keyFile": opt_path(tls.key_file.as_deref()),
        })
    });
    json!({ "auth": config.auth.as_ref().map(auth_json), "tls": tls })
}

/// What a credential shows as outside the process: empty stays empty,
/// anything else is [`REDACTED`] (also used by `config dump`).
pub(super) fn redact(secret: &Secret) -> &'static str {
    if secret.is_empty() {
        ""
    } else {
        REDACTED
    }
}

/// Usernames stay; every credential is replaced by a marker when set.
fn auth_json(auth: &RegistryAuth) -> Value {
    json!({
        "username": auth.username,
        "password": redact(&auth.password),
        "auth": redact(&auth.auth),
        "identitytoken": redact(&auth.identity_token),
    })
}

/// containerd 2's `pinned_images`, with the sandbox image under `sandbox`.
fn pinned_images(cri: &CriConfig) -> Value {
    let mut map: Map<String, Value> = cri
        .pinned_images
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    map.insert("sandbox".into(), Value::String(cri.sandbox_image.clone()));
    Value::Object(map)
}

fn table_json(table: &toml::Table) -> Value {
    Value::Object(
        table
            .iter()
            .map(|(k, v)| (k.clone(), toml_json(v)))
            .collect(),
    )
}

fn toml_json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => Value::from(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(toml_json).collect()),
        toml::Value::Table(table) => table_json(table),
    }
}

fn path(p: &std::path::Path) -> Value {
    Value::String(p.display().to_string())
}

fn opt_path(p: Option<&std::path::Path>) -> Value {
    p.map(path).unwrap_or_else(|| Value::String(String::new()))
}
