//! One runtime handler (`containerd.runtimes.<name>`, containerd's
//! `Runtime`): its fields, and typed accessors for runc's free-form
//! `options` table.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::values::{deserialize_opt_path, deserialize_opt_string};

/// The runc shim v2 runtime type.
pub const RUNC_V2_RUNTIME_TYPE: &str = "io.containerd.runc.v2";
/// The runc shim v1 runtime type (removed from containerd 2).
pub const RUNC_V1_RUNTIME_TYPE: &str = "io.containerd.runc.v1";
/// The legacy shim v1 runtime type, the only one the deprecated
/// `systemd_cgroup`, `no_pivot`, `runtime_engine` and `runtime_root` work for.
pub const LINUX_V1_RUNTIME_TYPE: &str = "io.containerd.runtime.v1.linux";
/// `sandbox_mode` for pause-container sandboxes (containerd's default).
pub const SANDBOX_MODE_PODSANDBOX: &str = "podsandbox";
/// `sandbox_mode` for sandboxes the shim implements.
pub const SANDBOX_MODE_SHIM: &str = "shim";

/// `containerd.runtimes.<name>`. A runtime given in the file replaces the
/// default runtime of the same name as a whole, as in containerd.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RuntimeConfig {
    /// `runtime_type`, e.g. `io.containerd.runc.v2`.
    pub runtime_type: String,
    /// `runtime_path`: an absolute shim binary path overriding the lookup
    /// by type.
    #[serde(deserialize_with = "deserialize_opt_path")]
    pub runtime_path: Option<PathBuf>,
    /// `runtime_engine` (deprecated, shim v1 only).
    pub runtime_engine: String,
    /// `runtime_root` (deprecated, shim v1 only).
    pub runtime_root: String,
    /// `pod_annotations`: annotation keys (globs) passed to the OCI spec of
    /// the sandbox and its containers.
    pub pod_annotations: Vec<String>,
    /// `container_annotations`: container annotation keys (globs) passed to
    /// the container's OCI spec.
    pub container_annotations: Vec<String>,
    /// `options`: the shim's options, kept as written. For runc see
    /// [`RuntimeConfig::systemd_cgroup`] and the other accessors.
    pub options: toml::Table,
    pub privileged_without_host_devices: bool,
    /// Requires `privileged_without_host_devices`.
    pub privileged_without_host_devices_all_devices_allowed: bool,
    /// `cgroup_writable` (containerd 2.1).
    pub cgroup_writable: bool,
    /// `base_runtime_spec`: a JSON OCI spec every container starts from.
    #[serde(deserialize_with = "deserialize_opt_path")]
    pub base_runtime_spec: Option<PathBuf>,
    /// `cni_conf_dir`: CNI config for pods of this handler.
    #[serde(deserialize_with = "deserialize_opt_path")]
    pub cni_conf_dir: Option<PathBuf>,
    /// `cni_max_conf_num`; 0 loads every file.
    pub cni_max_conf_num: usize,
    /// `snapshotter`: overrides the global snapshotter for this handler.
    #[serde(deserialize_with = "deserialize_opt_string")]
    pub snapshotter: Option<String>,
    /// `sandbox_mode` (v2; `sandboxer` in v3): `podsandbox` or `shim`.
    /// Filled with `podsandbox` when empty.
    #[serde(alias = "sandboxer")]
    pub sandbox_mode: String,
    /// `io_type` (containerd 2): `fifo` (default when empty) or `streaming`.
    pub io_type: String,
}

/// Keys of runc's `Options` message and the TOML type each takes.
pub(super) const RUNC_OPTION_KEYS: &[(&str, OptionKind)] = &[
    ("NoPivotRoot", OptionKind::Bool),
    ("NoNewKeyring", OptionKind::Bool),
    ("ShimCgroup", OptionKind::String),
    ("IoUid", OptionKind::Integer),
    ("IoGid", OptionKind::Integer),
    ("BinaryName", OptionKind::String),
    ("Root", OptionKind::String),
    ("CriuPath", OptionKind::String),
    ("SystemdCgroup", OptionKind::Bool),
    ("CriuImagePath", OptionKind::String),
    ("CriuWorkPath", OptionKind::String),
    ("TaskApiAddress", OptionKind::String),
    ("TaskApiVersion", OptionKind::Integer),
];

/// The TOML type a runc option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OptionKind {
    Bool,
    String,
    Integer,
}

impl OptionKind {
    pub(super) fn matches(self, value: &toml::Value) -> bool {
        matches!(
            (self, value),
            (Self::Bool, toml::Value::Boolean(_))
                | (Self::String, toml::Value::String(_))
                | (Self::Integer, toml::Value::Integer(_))
        )
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Bool => "a boolean",
            Self::String => "a string",
            Self::Integer => "an integer",
        }
    }
}

impl RuntimeConfig {
    /// A runtime of `runtime_type` with runc's default options as containerd
    /// v1.7 writes them.
    pub fn runc_default() -> Self {
        let mut options = toml::Table::new();
        for (key, kind) in RUNC_OPTION_KEYS {
            if key.starts_with("TaskApi") {
                continue;
            }
            let value = match kind {
                OptionKind::Bool => toml::Value::Boolean(false),
                OptionKind::String => toml::Value::String(String::new()),
                OptionKind::Integer => toml::Value::Integer(0),
            };
            options.insert((*key).to_owned(), value);
        }
        Self {
            runtime_type: RUNC_V2_RUNTIME_TYPE.to_owned(),
            options,
            sandbox_mode: SANDBOX_MODE_PODSANDBOX.to_owned(),
            ..Self::default()
        }
    }

    /// Whether the shim is runc's, so `options` are runc's `Options`.
    pub fn is_runc(&self) -> bool {
        self.runtime_type == RUNC_V2_RUNTIME_TYPE || self.runtime_type == RUNC_V1_RUNTIME_TYPE
    }

    /// `options.<key>`, matched case-insensitively as containerd's TOML
    /// decoding matches option names.
    pub fn option(&self, key: &str) -> Option<&toml::Value> {
        self.options.get(key).or_else(|| {
            self.options
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        })
    }

    fn bool_option(&self, key: &str) -> bool {
        self.option(key)
            .and_then(toml::Value::as_bool)
            .unwrap_or(false)
    }

    fn str_option(&self, key: &str) -> Option<&str> {
        self.option(key)
            .and_then(toml::Value::as_str)
            .filter(|s| !s.is_empty())
    }

    fn path_option(&self, key: &str) -> Option<&Path> {
        self.str_option(key).map(Path::new)
    }

    fn id_option(&self, key: &str) -> Option<u32> {
        self.option(key)
            .and_then(toml::Value::as_integer)
            .and_then(|v| u32::try_from(v).ok())
    }

    /// runc `options.SystemdCgroup`: cgroups through systemd.
    pub fn systemd_cgroup(&self) -> bool {
        self.bool_option("SystemdCgroup")
    }

    /// runc `options.NoPivotRoot`.
    pub fn no_pivot_root(&self) -> bool {
        self.bool_option("NoPivotRoot")
    }

    /// runc `options.NoNewKeyring`.
    pub fn no_new_keyring(&self) -> bool {
        self.bool_option("NoNewKeyring")
    }

    /// runc `options.BinaryName`: the runc binary, when not `runc` on PATH.
    pub fn binary_name(&self) -> Option<&str> {
        self.str_option("BinaryName")
    }

    /// runc `options.Root`: runc's state root.
    pub fn runc_root(&self) -> Option<&Path> {
        self.path_option("Root")
    }

    /// runc `options.ShimCgroup`: the cgroup the shim is placed in.
    pub fn shim_cgroup(&self) -> Option<&str> {
        self.str_option("ShimCgroup")
    }

    /// runc `options.IoUid`: owner of the IO pipes.
    pub fn io_uid(&self) -> Option<u32> {
        self.id_option("IoUid")
    }

    /// runc `options.IoGid`: group of the IO pipes.
    pub fn io_gid(&self) -> Option<u32> {
        self.id_option("IoGid")
    }

    /// runc `options.CriuPath`.
    pub fn criu_path(&self) -> Option<&Path> {
        self.path_option("CriuPath")
    }

    /// runc `options.CriuImagePath`.
    pub fn criu_image_path(&self) -> Option<&Path> {
        self.path_option("CriuImagePath")
    }

    /// runc `options.CriuWorkPath`.
    pub fn criu_work_path(&self) -> Option<&Path> {
        self.path_option("CriuWorkPath")
    }

    /// `options.ConfigPath`: the config file of non-runc shims (kata, runsc).
    pub fn config_path(&self) -> Option<&Path> {
        self.path_option("ConfigPath")
    }

    /// `options.TypeUrl`: the options message type of non-runc shims.
    pub fn type_url(&self) -> Option<&str> {
        self.str_option("TypeUrl")
    }

    /// Whether pods of this handler use the pause-container sandbox.
    pub fn is_podsandbox(&self) -> bool {
        self.sandbox_mode.is_empty() || self.sandbox_mode == SANDBOX_MODE_PODSANDBOX
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn runtime(options: &str) -> RuntimeConfig {
        RuntimeConfig {
            runtime_type: RUNC_V2_RUNTIME_TYPE.to_owned(),
            options: options.parse().unwrap(),
            ..RuntimeConfig::default()
        }
    }

    fn check(options: &str, expected: (bool, Option<&str>, Option<u32>)) {
        let r = runtime(options);
        assert_eq!(
            (r.systemd_cgroup(), r.binary_name(), r.io_uid()),
            expected,
            "{options}"
        );
    }

    #[test]
    fn runc_options_read() {
        check("", (false, None, None));
        check("SystemdCgroup = true", (true, None, None));
        check(
            "BinaryName = \"/usr/bin/runc\"\nIoUid = 1000",
            (false, Some("/usr/bin/runc"), Some(1000)),
        );
        check("BinaryName = \"\"", (false, None, None));
    }

    #[test]
    fn option_names_match_case_insensitively() {
        check("systemdcgroup = true", (true, None, None));
    }

    #[test]
    fn wrong_typed_option_reads_as_unset() {
        check("SystemdCgroup = \"true\"\nIoUid = -1", (false, None, None));
    }

    #[test]
    fn runc_default_has_containerd_keys() {
        let r = RuntimeConfig::runc_default();
        assert!(r.is_runc() && r.is_podsandbox());
        assert_eq!(r.options.len(), 11);
        assert_eq!(
            r.option("SystemdCgroup"),
            Some(&toml::Value::Boolean(false))
        );
    }
}
