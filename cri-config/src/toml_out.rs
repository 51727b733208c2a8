//! The config written back as a containerd `config.toml` (version 2
//! layout), one commented line per key: `cri-server config default`
//! (every key at its default) and `cri-server config dump` (the effective
//! config, credentials redacted as in the status JSON).

use std::fmt::Write as _;
use std::path::Path;

use super::cri::CriConfig;
use super::duration::format_go_duration;
use super::file::{dotted, GRPC_CRI_PLUGIN, SERVER_TABLE};
use super::registry::RegistryConfig;
use super::runtime::RuntimeConfig;
use super::server::{DEFAULT_CONTAINERD_ADDRESS, DEFAULT_CONTAINERD_STATE};
use super::status_json::redact;
use super::Config;

/// Which text to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rendering {
    /// A starting point for a node: containerd's own keys included, keys
    /// derived from containerd's (`root_dir`, ...) commented out.
    Default,
    /// The effective config: every resolved value written out.
    Dump,
}

/// The header of every rendering.
const PREAMBLE: &str = "\
# A containerd config.toml (version 2 layout) that containerd and cri-server
# both read. containerd reads its own keys and ignores [cri_server];
# cri-server reads the CRI plugin section, containerd's root, state and
# [grpc] address, and [cri_server]. Other containerd sections may be added.
";

/// Renders `config`.
pub(super) fn render(config: &Config, rendering: Rendering) -> String {
    let mut doc = Doc::default();
    doc.out.push_str(PREAMBLE);
    if rendering == Rendering::Dump {
        doc.out
            .push_str("# The effective config after the file and the flags; secrets redacted.\n");
    }
    doc.blank();
    doc.raw_key("", "version", "2");
    top_level(&mut doc, config, rendering);
    server_table(&mut doc, config, rendering);
    plugin_tables(&mut doc, &config.cri);
    doc.out
}

fn top_level(doc: &mut Doc, config: &Config, rendering: Rendering) {
    doc.key(
        "containerd's persistent root; cri-server's root_dir defaults to <root>/io.containerd.grpc.v1.cri.",
        "root",
        path(&config.cri.containerd_root_dir),
    );
    if rendering == Rendering::Dump {
        return;
    }
    doc.key(
        "containerd's volatile state; cri-server's state_dir defaults to <state>/io.containerd.grpc.v1.cri.",
        "state",
        toml::Value::from(DEFAULT_CONTAINERD_STATE),
    );
    doc.key(
        "containerd's own CRI plugin must not serve beside cri-server: two CRI servers\n\
         would manage the same containers. Remove it from this list to switch back.",
        "disabled_plugins",
        toml::Value::Array(vec![GRPC_CRI_PLUGIN.into()]),
    );
    doc.table("[grpc]", "");
    doc.key(
        "containerd's gRPC socket; cri-server's containerd_address defaults to it.",
        "address",
        toml::Value::from(DEFAULT_CONTAINERD_ADDRESS),
    );
}

fn server_table(doc: &mut Doc, config: &Config, rendering: Rendering) {
    let server = &config.server;
    doc.table(
        &format!("[{SERVER_TABLE}]"),
        "cri-server's own settings; each flag of the same name wins over them.",
    );
    doc.key(
        "The unix socket CRI (and, forwarded, containerd's API) is served on.",
        "listen",
        path(&server.listen),
    );
    let derived = |doc: &mut Doc, comment: &str, key: &str, value: toml::Value| match rendering {
        Rendering::Default => doc.commented_key(comment, key, value),
        Rendering::Dump => doc.key(comment, key, value),
    };
    derived(
        doc,
        "containerd's socket (default: [grpc] address).",
        "containerd_address",
        path(&server.containerd_address),
    );
    doc.key(
        "The containerd namespace for pods, containers and images (the CRI plugin's).",
        "containerd_namespace",
        server.containerd_namespace.as_str().into(),
    );
    derived(
        doc,
        "Persistent state (default: <root>/io.containerd.grpc.v1.cri, the CRI plugin's).",
        "root_dir",
        path(&server.root_dir),
    );
    derived(
        doc,
        "Volatile state (default: <state>/io.containerd.grpc.v1.cri, the CRI plugin's).",
        "state_dir",
        path(&server.state_dir),
    );
    doc.key(
        "A tracing filter, e.g. \"info\" or \"cri_server=debug\"; RUST_LOG wins.",
        "log_level",
        server.log_level.as_str().into(),
    );
    doc.key(
        "\"text\" or \"json\".",
        "log_format",
        server.log_format.as_str().into(),
    );
    doc.key(
        "host:port for Prometheus metrics on /v1/metrics; empty: off.",
        "metrics_address",
        server.metrics_address.as_deref().unwrap_or_default().into(),
    );
    doc.key(
        "Forward every non-CRI gRPC call on the socket (ctr, nerdctl) to containerd.",
        "containerd_passthrough",
        server.containerd_passthrough.into(),
    );
    doc.key(
        "The group the socket is given (mode 0660); empty: root's.",
        "socket_group",
        server.socket_group.as_deref().unwrap_or_default().into(),
    );
    doc.key(
        "Start even while containerd's own CRI plugin serves this namespace (experts only).",
        "allow_containerd_cri",
        server.allow_containerd_cri.into(),
    );
}

fn plugin_tables(doc: &mut Doc, cri: &CriConfig) {
    let section = |rest: &[&str]| {
        let mut segments = vec!["plugins", GRPC_CRI_PLUGIN];
        segments.extend_from_slice(rest);
        format!("[{}]", dotted(&segments))
    };
    doc.table(
        &section(&[]),
        "containerd's CRI plugin settings, read by cri-server (containerd 1.7's defaults).",
    );
    let keys: Vec<(&str, &str, toml::Value)> = vec![
        (
            "Pause image of every pod.",
            "sandbox_image",
            cri.sandbox_image.as_str().into(),
        ),
        (
            "Serve no TCP CRI endpoint (containerd's; cri-server never does).",
            "disable_tcp_service",
            cri.disable_tcp_service.into(),
        ),
        (
            "Address the exec/attach/port-forward streaming server binds.",
            "stream_server_address",
            cri.stream_server_address.as_str().into(),
        ),
        (
            "Its port, as a string; \"0\" picks a free one.",
            "stream_server_port",
            cri.stream_server_port.to_string().into(),
        ),
        (
            "Idle streaming connections are closed after this.",
            "stream_idle_timeout",
            format_go_duration(cri.stream_idle_timeout).into(),
        ),
        (
            "Serve streaming over TLS.",
            "enable_tls_streaming",
            cri.enable_tls_streaming.into(),
        ),
        (
            "Label containers for SELinux.",
            "enable_selinux",
            cri.enable_selinux.into(),
        ),
        (
            "Categories for SELinux MCS labels.",
            "selinux_category_range",
            i64::from(cri.selinux_category_range).into(),
        ),
        (
            "Seconds between container filesystem usage samples.",
            "stats_collect_period",
            i64::from(cri.stats_collect_period).into(),
        ),
        (
            "Deprecated, shim v1 only: use the runtime's options.SystemdCgroup.",
            "systemd_cgroup",
            cri.systemd_cgroup.into(),
        ),
        (
            "Longer log lines are split; not positive: no limit.",
            "max_container_log_line_size",
            cri.max_container_log_line_size.into(),
        ),
        (
            "Run containers without cgroups (rootless).",
            "disable_cgroup",
            cri.disable_cgroup.into(),
        ),
        (
            "Ignore AppArmor profiles.",
            "disable_apparmor",
            cri.disable_apparmor.into(),
        ),
        (
            "Clamp oom_score_adj to cri-server's own (needed without CAP_SYS_RESOURCE).",
            "restrict_oom_score_adj",
            cri.restrict_oom_score_adj.into(),
        ),
        (
            "Layers downloaded at once per image.",
            "max_concurrent_downloads",
            i64::from(cri.max_concurrent_downloads).into(),
        ),
        (
            "Ignore the ProcMount security context field.",
            "disable_proc_mount",
            cri.disable_proc_mount.into(),
        ),
        (
            "Seccomp profile when a pod names none; empty: unconfined.",
            "unset_seccomp_profile",
            cri.unset_seccomp_profile.as_str().into(),
        ),
        (
            "Start even when the hugetlb cgroup controller is missing.",
            "tolerate_missing_hugetlb_controller",
            cri.tolerate_missing_hugetlb_controller.into(),
        ),
        (
            "Do not set hugetlb limits.",
            "disable_hugetlb_controller",
            cri.disable_hugetlb_controller.into(),
        ),
        (
            "Give devices the container's uid/gid instead of the host's.",
            "device_ownership_from_security_context",
            cri.device_ownership_from_security_context.into(),
        ),
        (
            "Do not create the volumes an image declares.",
            "ignore_image_defined_volumes",
            cri.ignore_image_defined_volumes.into(),
        ),
        (
            "Pin network namespaces under the state dir.",
            "netns_mounts_under_state_dir",
            cri.netns_mounts_under_state_dir.into(),
        ),
        (
            "Allow binding ports below 1024 without CAP_NET_BIND_SERVICE.",
            "enable_unprivileged_ports",
            cri.enable_unprivileged_ports.into(),
        ),
        (
            "Allow ICMP sockets without CAP_NET_RAW.",
            "enable_unprivileged_icmp",
            cri.enable_unprivileged_icmp.into(),
        ),
        (
            "Container Device Interface support.",
            "enable_cdi",
            cri.enable_cdi.into(),
        ),
        (
            "Where CDI specs are read from.",
            "cdi_spec_dirs",
            paths(&cri.cdi_spec_dirs),
        ),
        (
            "A pull with no progress for this long is cancelled; \"0s\": never.",
            "image_pull_progress_timeout",
            format_go_duration(cri.image_pull_progress_timeout).into(),
        ),
        (
            "How long ExecSync drains output after the process exits; \"0s\": no limit.",
            "drain_exec_sync_io_timeout",
            format_go_duration(cri.drain_exec_sync_io_timeout).into(),
        ),
        (
            "fsync image layers after unpacking.",
            "image_pull_with_sync_fs",
            cri.image_pull_with_sync_fs.into(),
        ),
        (
            "Deprecation ids left out of the runtime status.",
            "ignore_deprecation_warnings",
            strings(&cri.ignore_deprecation_warnings),
        ),
    ];
    for (comment, key, value) in keys {
        doc.key(comment, key, value);
    }
    v3_only_notes(doc, cri);

    doc.table(&section(&["containerd"]), "");
    doc.key(
        "The snapshotter for image layers and container roots.",
        "snapshotter",
        cri.snapshotter.as_str().into(),
    );
    doc.key(
        "The runtime handler of pods that name none.",
        "default_runtime_name",
        cri.default_runtime_name.as_str().into(),
    );
    doc.key(
        "Deprecated, shim v1 only: use the runtime's options.NoPivotRoot.",
        "no_pivot",
        cri.no_pivot.into(),
    );
    doc.key(
        "Do not pass snapshot labels to remote snapshotters.",
        "disable_snapshot_annotations",
        cri.disable_snapshot_annotations.into(),
    );
    doc.key(
        "Delete compressed layers once unpacked.",
        "discard_unpacked_layers",
        cri.discard_unpacked_layers.into(),
    );
    doc.key(
        "Ignore blockio settings when blockio is not enabled.",
        "ignore_blockio_not_enabled_errors",
        cri.ignore_blockio_not_enabled_errors.into(),
    );
    doc.key(
        "Ignore RDT settings when RDT is not enabled.",
        "ignore_rdt_not_enabled_errors",
        cri.ignore_rdt_not_enabled_errors.into(),
    );
    doc.table(
        &section(&["containerd", "runtimes"]),
        "The runtime handlers; a pod's runtime_handler names one.",
    );
    for (name, runtime) in &cri.runtimes {
        runtime_table(doc, &section(&["containerd", "runtimes", name]), runtime);
        options_tables(
            doc,
            &["containerd", "runtimes", name, "options"],
            &runtime.options,
        );
    }

    doc.table(&section(&["cni"]), "Pod networking.");
    doc.key(
        "Where CNI plugin binaries are.",
        "bin_dir",
        path(&cri.cni.bin_dir),
    );
    doc.key(
        "containerd 2.1: several plugin dirs; when set, bin_dir is the first.",
        "bin_dirs",
        paths(&cri.cni.bin_dirs),
    );
    doc.key(
        "Where network configs are read from.",
        "conf_dir",
        path(&cri.cni.conf_dir),
    );
    doc.key(
        "How many config files to load; 0: all.",
        "max_conf_num",
        int(cri.cni.max_conf_num),
    );
    doc.key(
        "A template rendered into conf_dir once the kubelet sends the pod CIDR.",
        "conf_template",
        opt_path(cri.cni.conf_template.as_deref()),
    );
    doc.key(
        "Which pod IP is reported first: \"ipv4\", \"ipv6\" or \"cni\".",
        "ip_pref",
        cri.cni.ip_pref.as_str().into(),
    );
    doc.key(
        "Set networks up one after the other.",
        "setup_serially",
        cri.cni.setup_serially.into(),
    );
    doc.key(
        "containerd 2: bring lo up without the loopback plugin.",
        "use_internal_loopback",
        cri.cni.use_internal_loopback.into(),
    );

    doc.table(&section(&["image_decryption"]), "");
    doc.key(
        "\"node\": decryption keys are on the node.",
        "key_model",
        cri.image_decryption.key_model.as_str().into(),
    );

    registry_tables(doc, &cri.registry, &section);

    doc.table(
        &section(&["x509_key_pair_streaming"]),
        "With enable_tls_streaming; empty: a self-signed pair.",
    );
    doc.key(
        "",
        "tls_cert_file",
        opt_path(cri.x509_key_pair_streaming.tls_cert_file.as_deref()),
    );
    doc.key(
        "",
        "tls_key_file",
        opt_path(cri.x509_key_pair_streaming.tls_key_file.as_deref()),
    );
}

/// containerd 2 image keys with no place in the version 2 layout.
fn v3_only_notes(doc: &mut Doc, cri: &CriConfig) {
    let mut notes = Vec::new();
    if !cri.pinned_images.is_empty() {
        notes.push(format!("pinned_images = {:?}", cri.pinned_images));
    }
    if cri.use_local_image_pull {
        notes.push("use_local_image_pull = true".to_owned());
    }
    if cri.disable_image_pull_with_transfer_service {
        notes.push("disable_image_pull_with_transfer_service = true".to_owned());
    }
    if !cri.runtime_platforms.is_empty() {
        notes.push(format!("runtime_platforms = {:?}", cri.runtime_platforms));
    }
    if !notes.is_empty() {
        doc.out.push_str(
            "  # Set in a version 3 file (io.containerd.cri.v1.images), not expressible here:\n",
        );
        for note in notes {
            let _ = writeln!(doc.out, "  #   {note}");
        }
    }
}

fn runtime_table(doc: &mut Doc, header: &str, runtime: &RuntimeConfig) {
    doc.table(header, "");
    doc.key(
        "The shim, e.g. io.containerd.runc.v2.",
        "runtime_type",
        runtime.runtime_type.as_str().into(),
    );
    doc.key(
        "An absolute shim binary path instead of the lookup by type.",
        "runtime_path",
        opt_path(runtime.runtime_path.as_deref()),
    );
    doc.key(
        "Deprecated, shim v1 only.",
        "runtime_engine",
        runtime.runtime_engine.as_str().into(),
    );
    doc.key(
        "Deprecated, shim v1 only.",
        "runtime_root",
        runtime.runtime_root.as_str().into(),
    );
    doc.key(
        "Pod annotation keys (globs) passed to the OCI spec.",
        "pod_annotations",
        strings(&runtime.pod_annotations),
    );
    doc.key(
        "Container annotation keys (globs) passed to the OCI spec.",
        "container_annotations",
        strings(&runtime.container_annotations),
    );
    doc.key(
        "Privileged containers get no host devices.",
        "privileged_without_host_devices",
        runtime.privileged_without_host_devices.into(),
    );
    doc.key(
        "With the above: all devices allowed in the cgroup.",
        "privileged_without_host_devices_all_devices_allowed",
        runtime
            .privileged_without_host_devices_all_devices_allowed
            .into(),
    );
    doc.key(
        "containerd 2.1: a writable cgroupfs in containers.",
        "cgroup_writable",
        runtime.cgroup_writable.into(),
    );
    doc.key(
        "A JSON OCI spec every container starts from.",
        "base_runtime_spec",
        opt_path(runtime.base_runtime_spec.as_deref()),
    );
    doc.key(
        "CNI configs for pods of this handler; empty: cni.conf_dir.",
        "cni_conf_dir",
        opt_path(runtime.cni_conf_dir.as_deref()),
    );
    doc.key(
        "With cni_conf_dir: how many files; 0: all.",
        "cni_max_conf_num",
        int(runtime.cni_max_conf_num),
    );
    doc.key(
        "This handler's snapshotter; empty: containerd.snapshotter.",
        "snapshotter",
        runtime.snapshotter.as_deref().unwrap_or_default().into(),
    );
    doc.key(
        "\"podsandbox\" (a pause container) or \"shim\".",
        "sandbox_mode",
        runtime.sandbox_mode.as_str().into(),
    );
    doc.key(
        "containerd 2: \"fifo\" (empty) or \"streaming\".",
        "io_type",
        runtime.io_type.as_str().into(),
    );
}

/// A runtime's `options` table (and any nested tables in it).
fn options_tables(doc: &mut Doc, rest: &[&str], options: &toml::Table) {
    let mut segments = vec!["plugins", GRPC_CRI_PLUGIN];
    segments.extend_from_slice(rest);
    doc.table(&format!("[{}]", dotted(&segments)), "");
    let mut nested = Vec::new();
    for (key, value) in options {
        match value {
            toml::Value::Table(table) => nested.push((key, table)),
            value => doc.key("", key, value.clone()),
        }
    }
    for (key, table) in nested {
        let mut deeper: Vec<&str> = rest.to_vec();
        deeper.push(key);
        options_tables(doc, &deeper, table);
    }
}

fn registry_tables(doc: &mut Doc, registry: &RegistryConfig, section: &dyn Fn(&[&str]) -> String) {
    doc.table(&section(&["registry"]), "Where images are pulled from.");
    doc.key(
        "Colon-separated hosts.toml directories (e.g. /etc/containerd/certs.d).",
        "config_path",
        registry.config_path.as_str().into(),
    );
    doc.table(
        &section(&["registry", "mirrors"]),
        "Deprecated: use config_path.",
    );
    for (host, mirror) in &registry.mirrors {
        doc.table(&section(&["registry", "mirrors", host]), "");
        doc.key("", "endpoint", strings(&mirror.endpoint));
    }
    doc.table(
        &section(&["registry", "configs"]),
        "Per-host credentials and TLS.",
    );
    for (host, config) in &registry.configs {
        if let Some(auth) = &config.auth {
            doc.table(&section(&["registry", "configs", host, "auth"]), "");
            doc.key("", "username", auth.username.as_str().into());
            doc.key("", "password", redact(&auth.password).into());
            doc.key("", "auth", redact(&auth.auth).into());
            doc.key("", "identitytoken", redact(&auth.identity_token).into());
        }
        if let Some(tls) = &config.tls {
            doc.table(&section(&["registry", "configs", host, "tls"]), "");
            doc.key("", "insecure_skip_verify", tls.insecure_skip_verify.into());
            doc.key("", "ca_file", opt_path(tls.ca_file.as_deref()));
            doc.key("", "cert_file", opt_path(tls.cert_file.as_deref()));
            doc.key("", "key_file", opt_path(tls.key_file.as_deref()));
        }
    }
    doc.table(
        &section(&["registry", "headers"]),
        "Extra HTTP headers sent to every registry.",
    );
    for (name, values) in registry.redacted_headers() {
        let values = values.into_iter().map(toml::Value::from).collect();
        doc.key("", name, toml::Value::Array(values));
    }
}

/// The text being built, with the indentation of the current table.
#[derive(Default)]
struct Doc {
    out: String,
    indent: usize,
}

impl Doc {
    fn blank(&mut self) {
        self.out.push('\n');
    }

    /// A table header (`[a."b".c]`), indented by its depth as containerd's
    /// `config default` does.
    fn table(&mut self, header: &str, comment: &str) {
        let depth = if header.starts_with("[plugins") {
            header_depth(header)
        } else {
            0
        };
        self.blank();
        let pad = "  ".repeat(depth);
        self.comment(&pad, comment);
        let _ = writeln!(self.out, "{pad}{header}");
        self.indent = depth + 1;
    }

    fn comment(&mut self, pad: &str, comment: &str) {
        for line in comment.lines().filter(|l| !l.is_empty()) {
            let _ = writeln!(self.out, "{pad}# {line}");
        }
    }

    fn key(&mut self, comment: &str, key: &str, value: toml::Value) {
        self.write_key(comment, key, &value.to_string(), "");
    }

    fn raw_key(&mut self, comment: &str, key: &str, value: &str) {
        self.write_key(comment, key, value, "");
    }

    /// A key written commented out: its default is derived from others.
    fn commented_key(&mut self, comment: &str, key: &str, value: toml::Value) {
        self.write_key(comment, key, &value.to_string(), "# ");
    }

    fn write_key(&mut self, comment: &str, key: &str, value: &str, prefix: &str) {
        let pad = "  ".repeat(self.indent);
        self.comment(&pad, comment);
        let _ = writeln!(self.out, "{pad}{prefix}{} = {value}", dotted(&[key]));
    }
}

/// How deep a `[plugins...]` header sits: `[plugins."x"]` is 1.
fn header_depth(header: &str) -> usize {
    let inner = header.trim_start_matches('[').trim_end_matches(']');
    let mut depth = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    for c in inner.chars() {
        match c {
            '\\' if quoted && !escaped => {
                escaped = true;
                continue;
            }
            '"' if !escaped => quoted = !quoted,
            '.' if !quoted => depth += 1,
            _ => {}
        }
        escaped = false;
    }
    depth
}

fn path(p: &Path) -> toml::Value {
    p.display().to_string().into()
}

fn opt_path(p: Option<&Path>) -> toml::Value {
    p.map(path).unwrap_or_else(|| String::new().into())
}

fn paths(ps: &[std::path::PathBuf]) -> toml::Value {
    toml::Value::Array(ps.iter().map(|p| path(p)).collect())
}

fn strings(items: &[String]) -> toml::Value {
    toml::Value::Array(items.iter().map(|s| s.as_str().into()).collect())
}

fn int(n: usize) -> toml::Value {
    i64::try_from(n).unwrap_or(i64::MAX).into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::BTreeSet;

    use super::super::registry::{RegistryAuth, RegistryHostConfig, Secret, REDACTED};
    use super::super::tests::{CONTAINERD_17_DEFAULT, CONTAINERD_2_V3, KUBEADM_SYSTEMD};
    use super::super::Overrides;
    use super::*;

    fn load(text: &str) -> (Config, Vec<String>) {
        Config::from_toml_str(text, "rendered", Overrides::default())
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// Every dotted key path (tables and keys) under `table`.
    fn key_paths(value: &toml::Value, prefix: &str, out: &mut BTreeSet<String>) {
        if let toml::Value::Table(table) = value {
            for (key, value) in table {
                let path = format!("{prefix}.{key}");
                out.insert(path.clone());
                key_paths(value, &path, out);
            }
        }
    }

    fn cri_section_keys(text: &str) -> BTreeSet<String> {
        let doc: toml::Value = toml::from_str(text).unwrap();
        let mut keys = BTreeSet::new();
        key_paths(&doc["plugins"][GRPC_CRI_PLUGIN], "", &mut keys);
        keys
    }

    #[test]
    fn default_loads_back_to_the_defaults_without_warnings() {
        let text = Config::default_toml();
        let (config, warnings) = load(&text);
        assert_eq!(warnings, Vec::<String>::new());
        assert_eq!(config, Config::default());
        // And to what no file at all gives.
        assert_eq!(config, load("").0);
    }

    #[test]
    fn default_has_every_key_of_containerd_17_config_default() {
        let ours = cri_section_keys(&Config::default_toml());
        let theirs = cri_section_keys(CONTAINERD_17_DEFAULT);
        // Deprecated and left out: `registry.auths` (its entries are
        // written under `registry.configs.<host>.auth`) and the
        // `default_runtime` / `untrusted_workload_runtime` tables (a
        // handler under `runtimes` says the same).
        let deprecated = [
            ".registry.auths",
            ".containerd.default_runtime",
            ".containerd.untrusted_workload_runtime",
        ];
        let missing: Vec<_> = theirs
            .difference(&ours)
            .filter(|k| !deprecated.iter().any(|d| k.starts_with(d)))
            .collect();
        assert!(missing.is_empty(), "missing: {missing:?}");
    }

    #[test]
    fn default_has_every_cri_server_key_and_disables_containerds_cri_plugin() {
        let text = Config::default_toml();
        for key in [
            "listen",
            "containerd_address",
            "containerd_namespace",
            "root_dir",
            "state_dir",
            "log_level",
            "log_format",
            "metrics_address",
            "containerd_passthrough",
            "socket_group",
            "allow_containerd_cri",
        ] {
            assert!(
                text.lines().any(|l| l
                    .trim_start()
                    .trim_start_matches("# ")
                    .starts_with(&format!("{key} = "))),
                "no {key} in\n{text}"
            );
        }
        let doc: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(
            doc["disabled_plugins"].as_array().unwrap(),
            &vec![toml::Value::from(GRPC_CRI_PLUGIN)]
        );
        // Every key has a comment line somewhere above it in its table.
        assert!(
            text.lines()
                .filter(|l| l.trim_start().starts_with('#'))
                .count()
                > 60
        );
    }

    #[test]
    fn dump_loads_back_to_the_same_config() {
        for text in [KUBEADM_SYSTEMD, CONTAINERD_17_DEFAULT] {
            let (config, _) = load(text);
            let dumped = config.to_dump_toml();
            let (again, warnings) = load(&dumped);
            assert_eq!(warnings, Vec::<String>::new(), "{dumped}");
            assert_eq!(again, config, "{dumped}");
        }
    }

    #[test]
    fn dump_of_a_version_3_file_keeps_what_version_2_can_say() {
        let (config, _) = load(CONTAINERD_2_V3);
        let dumped = config.to_dump_toml();
        let (again, _) = load(&dumped);
        assert_eq!(again.server, config.server);
        assert_eq!(again.cri.runtimes, config.cri.runtimes);
        assert_eq!(again.cri.cni, config.cri.cni);
        assert_eq!(again.cri.snapshotter, config.cri.snapshotter);
        assert_eq!(again.cri.sandbox_image, config.cri.sandbox_image);
        assert!(dumped.contains("use_local_image_pull = true"), "{dumped}");
    }

    #[test]
    fn dump_redacts_credentials_and_sensitive_headers() {
        let mut config = Config::default();
        config.cri.registry.configs.insert(
            "registry.example.com".into(),
            RegistryHostConfig {
                auth: Some(RegistryAuth {
                    username: "robot".into(),
                    password: Secret::new("hunter2"),
                    auth: Secret::new("cm9ib3Q6aHVudGVyMg=="),
                    identity_token: Secret::default(),
                }),
                tls: None,
            },
        );
        config
            .cri
            .registry
            .headers
            .insert("Authorization".into(), vec!["Bearer s3cret".into()]);
        config
            .cri
            .registry
            .headers
            .insert("X-Client".into(), vec!["node-7".into()]);
        let dumped = config.to_dump_toml();
        for secret in ["hunter2", "cm9ib3Q6aHVudGVyMg==", "s3cret"] {
            assert!(!dumped.contains(secret), "{secret} leaked:\n{dumped}");
        }
        assert!(dumped.contains("username = \"robot\""), "{dumped}");
        assert!(dumped.contains(REDACTED), "{dumped}");
        assert!(dumped.contains("node-7"), "{dumped}");
        let (again, _) = load(&dumped);
        let auth = again.cri.registry.configs["registry.example.com"]
            .auth
            .clone()
            .unwrap();
        assert_eq!(auth.username, "robot");
        assert!(auth.identity_token.is_empty());
    }

    /// `make install` and `make deb` ship `packaging/config.toml`; it must
    /// be what `cri-server config default` prints (regenerate it with
    /// `target/debug/cri-server config default > packaging/config.toml`).
    #[test]
    fn packaged_config_is_config_default() {
        let packaged = include_str!("../../packaging/config.toml");
        assert!(
            packaged == Config::default_toml(),
            "packaging/config.toml is stale: regenerate it with `cri-server config default`"
        );
    }

    #[test]
    fn header_depth_ignores_dots_in_quotes() {
        assert_eq!(header_depth("[plugins.\"io.containerd.grpc.v1.cri\"]"), 1);
        assert_eq!(
            header_depth("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]"),
            4
        );
    }
}
