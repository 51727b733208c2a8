//! The `runtime.options` of a runtime handler as containerd's
//! `generateRuntimeOptions` makes them: runc's `containerd.runc.v1.Options`
//! (proto binary, compat.md §2) from the handler's `options` table, or
//! `runtimeoptions.v1.Options` (`TypeUrl`, `ConfigPath`) for other shims;
//! and back to JSON for verbose status.

use cri_api::containerd::{Any, RuntimeInfo};
use prost::Message;
use serde_json::{json, Map, Value};

use cri_config::RuntimeConfig;

/// The type URL of runc's options (a proto message: its full name).
pub const RUNC_OPTIONS_TYPE_URL: &str = "containerd.runc.v1.Options";
/// The type URL of the generic shim options.
pub const RUNTIME_OPTIONS_TYPE_URL: &str = "runtimeoptions.v1.Options";

/// runc's `Options` (containerd `api/types/runc/options/oci.proto`; field 8
/// `criu_path` as containerd 1.6/1.7 still have it).
#[derive(Clone, PartialEq, Message)]
pub struct RuncOptions {
    #[prost(bool, tag = "1")]
    pub no_pivot_root: bool,
    #[prost(bool, tag = "2")]
    pub no_new_keyring: bool,
    #[prost(string, tag = "3")]
    pub shim_cgroup: String,
    #[prost(uint32, tag = "4")]
    pub io_uid: u32,
    #[prost(uint32, tag = "5")]
    pub io_gid: u32,
    #[prost(string, tag = "6")]
    pub binary_name: String,
    #[prost(string, tag = "7")]
    pub root: String,
    #[prost(string, tag = "8")]
    pub criu_path: String,
    #[prost(bool, tag = "9")]
    pub systemd_cgroup: bool,
    #[prost(string, tag = "10")]
    pub criu_image_path: String,
    #[prost(string, tag = "11")]
    pub criu_work_path: String,
    #[prost(string, tag = "12")]
    pub task_api_address: String,
    #[prost(uint32, tag = "13")]
    pub task_api_version: u32,
}

/// `runtimeoptions.v1.Options` (containerd `pkg/runtimeoptions`).
#[derive(Clone, PartialEq, Message)]
pub struct ShimOptions {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(string, tag = "2")]
    pub config_path: String,
}

fn path_string(p: Option<&std::path::Path>) -> String {
    p.map(|p| p.display().to_string()).unwrap_or_default()
}

/// The runtime (name and options) of the containerd containers made with
/// `runtime`: the pause container's, which its app containers copy.
pub fn runtime_info(runtime: &RuntimeConfig) -> RuntimeInfo {
    RuntimeInfo {
        name: runtime.runtime_type.clone(),
        options: runtime_options(runtime),
    }
}

/// The shim binary tasks of `runtime` start with (`WithRuntimePath`, sent
/// only when `runtime_path` is set); empty for containerd's lookup by the
/// runtime's name.
pub fn runtime_path(runtime: &RuntimeConfig) -> String {
    path_string(runtime.runtime_path.as_deref())
}

/// The options Any of `runtime`, or `None` when containerd would send none
/// (a non-runc runtime without options).
pub fn runtime_options(runtime: &RuntimeConfig) -> Option<Any> {
    if runtime.is_runc() {
        let str_opt = |key: &str| {
            runtime
                .option(key)
                .and_then(toml::Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let options = RuncOptions {
            no_pivot_root: runtime.no_pivot_root(),
            no_new_keyring: runtime.no_new_keyring(),
            shim_cgroup: runtime.shim_cgroup().unwrap_or_default().to_owned(),
            io_uid: runtime.io_uid().unwrap_or(0),
            io_gid: runtime.io_gid().unwrap_or(0),
            binary_name: runtime.binary_name().unwrap_or_default().to_owned(),
            root: path_string(runtime.runc_root()),
            criu_path: path_string(runtime.criu_path()),
            systemd_cgroup: runtime.systemd_cgroup(),
            criu_image_path: path_string(runtime.criu_image_path()),
            criu_work_path: path_string(runtime.criu_work_path()),
            task_api_address: str_opt("TaskApiAddress"),
            task_api_version: runtime
                .option("TaskApiVersion")
                .and_then(toml::Value::as_integer)
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0),
        };
        return Some(Any {
            type_url: RUNC_OPTIONS_TYPE_URL.to_owned(),
            value: options.encode_to_vec(),
        });
    }
    if runtime.options.is_empty() {
        return None;
    }
    let options = ShimOptions {
        type_url: runtime.type_url().unwrap_or_default().to_owned(),
        config_path: path_string(runtime.config_path()),
    };
    Some(Any {
        type_url: RUNTIME_OPTIONS_TYPE_URL.to_owned(),
        value: options.encode_to_vec(),
    })
}

/// Go `encoding/json` of the decoded options (protobuf Go structs: snake
/// case names, zero values omitted); `null` for none or an unknown type.
pub fn runtime_options_json(options: Option<&Any>) -> Value {
    let Some(any) = options else {
        return Value::Null;
    };
    let mut out = Map::new();
    let mut put = |key: &str, value: Value, zero: bool| {
        if !zero {
            out.insert(key.to_owned(), value);
        }
    };
    match any.type_url.as_str() {
        RUNC_OPTIONS_TYPE_URL => {
            let Ok(o) = RuncOptions::decode(any.value.as_slice()) else {
                return Value::Null;
            };
            put("no_pivot_root", json!(o.no_pivot_root), !o.no_pivot_root);
            put("no_new_keyring", json!(o.no_new_keyring), !o.no_new_keyring);
            put(
                "shim_cgroup",
                json!(o.shim_cgroup),
                o.shim_cgroup.is_empty(),
            );
            put("io_uid", json!(o.io_uid), o.io_uid == 0);
            put("io_gid", json!(o.io_gid), o.io_gid == 0);
            put(
                "binary_name",
                json!(o.binary_name),
                o.binary_name.is_empty(),
            );
            put("root", json!(o.root), o.root.is_empty());
            put("criu_path", json!(o.criu_path), o.criu_path.is_empty());
            put("systemd_cgroup", json!(o.systemd_cgroup), !o.systemd_cgroup);
            put(
                "criu_image_path",
                json!(o.criu_image_path),
                o.criu_image_path.is_empty(),
            );
            put(
                "criu_work_path",
                json!(o.criu_work_path),
                o.criu_work_path.is_empty(),
            );
        }
        RUNTIME_OPTIONS_TYPE_URL => {
            let Ok(o) = ShimOptions::decode(any.value.as_slice()) else {
                return Value::Null;
            };
            put("type_url", json!(o.type_url), o.type_url.is_empty());
            put(
                "config_path",
                json!(o.config_path),
                o.config_path.is_empty(),
            );
        }
        _ => return Value::Null,
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cri_config::RUNC_V2_RUNTIME_TYPE;

    fn runc(options: &str) -> RuntimeConfig {
        RuntimeConfig {
            runtime_type: RUNC_V2_RUNTIME_TYPE.to_owned(),
            options: options.parse().unwrap(),
            ..RuntimeConfig::default()
        }
    }

    fn check(runtime: RuntimeConfig, expected: Value) {
        let any = runtime_options(&runtime);
        assert_eq!(runtime_options_json(any.as_ref()), expected);
    }

    #[test]
    fn runc_options_are_encoded_by_field_number() {
        let any = runtime_options(&runc(
            "SystemdCgroup = true\nBinaryName = \"/usr/bin/runc\"\nRoot = \"/run/r\"",
        ))
        .unwrap();
        assert_eq!(any.type_url, RUNC_OPTIONS_TYPE_URL);
        // binary_name=6 (0x32), root=7 (0x3a), systemd_cgroup=9 (0x48).
        let mut expected = vec![0x32, 13];
        expected.extend_from_slice(b"/usr/bin/runc");
        expected.extend_from_slice(&[0x3a, 6]);
        expected.extend_from_slice(b"/run/r");
        expected.extend_from_slice(&[0x48, 1]);
        assert_eq!(any.value, expected);
    }

    #[test]
    fn default_runc_options_are_an_empty_message() {
        let any = runtime_options(&RuntimeConfig::runc_default()).unwrap();
        assert!(any.value.is_empty());
        check(RuntimeConfig::runc_default(), json!({}));
    }

    #[test]
    fn options_back_to_json() {
        check(
            runc("SystemdCgroup = true\nIoUid = 7"),
            json!({"io_uid": 7, "systemd_cgroup": true}),
        );
        let kata = RuntimeConfig {
            runtime_type: "io.containerd.kata.v2".into(),
            options: "ConfigPath = \"/etc/kata.toml\"".parse().unwrap(),
            ..RuntimeConfig::default()
        };
        check(kata, json!({"config_path": "/etc/kata.toml"}));
        let bare = RuntimeConfig {
            runtime_type: "io.containerd.kata.v2".into(),
            ..RuntimeConfig::default()
        };
        assert_eq!(runtime_options(&bare), None);
        check(bare, Value::Null);
    }
}
