//! One network list, as libcni's `AddNetworkList`/`DelNetworkList`: the
//! plugins in order with `prevResult` chaining on ADD, in reverse on DEL
//! with the cached config, args and result; the result cache; and libcni's
//! name validation.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::cache::{CacheEntry, ResultCache, CACHE_KIND_V1};
use super::config::{parse_network_config_list, NetworkConfigList};
use super::error::CniError;
use super::exec::{
    find_plugin, plugin_config, plugin_description, plugin_env, run_plugin, Command, ExecFailure,
    RuntimeConf,
};
use super::result::{convert_result, decode_plugin_output};

/// Runs the plugins of one list with a shared bin path, timeout and cache.
#[derive(Debug)]
pub(crate) struct ListRunner {
    pub bin_dirs: Vec<PathBuf>,
    pub timeout: Duration,
    pub cache: ResultCache,
}

enum OnError {
    Stop,
    Continue,
}

impl ListRunner {
    async fn exec(
        &self,
        command: Command,
        list: &NetworkConfigList,
        plugin: &Value,
        prev: Option<&Value>,
        rt: &RuntimeConf,
    ) -> Result<Vec<u8>, CniError> {
        let description = plugin_description(plugin);
        let plugin_type = plugin
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let path = find_plugin(plugin_type, &self.bin_dirs)?;
        let conf = plugin_config(
            &list.name,
            &list.cni_version,
            plugin,
            prev,
            &rt.capability_args,
        );
        let stdin = serde_json::to_vec(&conf).map_err(|e| CniError::PluginExec {
            plugin: description.clone(),
            command: command.verb(),
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        let env = plugin_env(command, rt, &self.bin_dirs);
        tracing::debug!(
            command = command.as_str(),
            plugin = %description,
            network = %list.name,
            container_id = %rt.container_id,
            if_name = %rt.if_name,
            "running cni plugin"
        );
        run_plugin(&path, &stdin, &env, self.timeout)
            .await
            .map_err(|failure| match failure {
                ExecFailure::Spawn(source) => CniError::PluginExec {
                    plugin: description,
                    command: command.verb(),
                    path,
                    source,
                },
                ExecFailure::Timeout => CniError::PluginTimeout {
                    plugin: description,
                    command: command.verb(),
                    timeout: self.timeout,
                },
                ExecFailure::Failed(error) => CniError::Plugin {
                    plugin: description,
                    command: command.verb(),
                    error,
                },
            })
    }

    /// DEL over `plugins` (already in the order to run), collecting errors.
    async fn del_plugins(
        &self,
        list: &NetworkConfigList,
        plugins: &[Value],
        prev: Option<&Value>,
        rt: &RuntimeConf,
        on_error: OnError,
    ) -> Vec<CniError> {
        let mut errors = Vec::new();
        for plugin in plugins.iter().rev() {
            if let Err(e) = self.exec(Command::Del, list, plugin, prev, rt).await {
                errors.push(e);
                if matches!(on_error, OnError::Stop) {
                    break;
                }
            }
        }
        errors
    }

    /// libcni `AddNetworkList`; on failure, DELs what it ran (best effort)
    /// and returns the ADD error with the DEL errors.
    pub(crate) async fn add_list(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConf,
    ) -> Result<Value, (CniError, Vec<CniError>)> {
        let mut prev: Option<Value> = None;
        for (k, plugin) in list.plugins.iter().enumerate() {
            let step = async {
                let out = self
                    .exec(Command::Add, list, plugin, prev.as_ref(), rt)
                    .await?;
                decode_plugin_output(&out, &list.cni_version).map_err(|reason| {
                    CniError::InvalidResult {
                        plugin: plugin_description(plugin),
                        reason,
                    }
                })
            }
            .await;
            match step {
                Ok(result) => prev = Some(result),
                Err(e) => {
                    let ran = &list.plugins[..=k];
                    let cleanup = self
                        .del_plugins(list, ran, prev.as_ref(), rt, OnError::Continue)
                        .await;
                    return Err((e, cleanup));
                }
            }
        }
        let result = prev.unwrap_or_else(|| serde_json::json!({"cniVersion": list.cni_version}));
        let entry = CacheEntry {
            kind: CACHE_KIND_V1.into(),
            container_id: rt.container_id.clone(),
            config: list.bytes.clone(),
            if_name: rt.if_name.clone(),
            network_name: list.name.clone(),
            netns: rt.netns.clone(),
            cni_args: rt
                .args
                .iter()
                .map(|(k, v)| [k.clone(), v.clone()])
                .collect(),
            capability_args: rt.capability_args.clone(),
            result: Some(result.clone()),
        };
        if let Err(e) = self.cache.write(&entry) {
            let cleanup = self
                .del_plugins(list, &list.plugins, Some(&result), rt, OnError::Continue)
                .await;
            return Err((e, cleanup));
        }
        Ok(result)
    }

    /// libcni `DelNetworkList` with the cached config, args and result when
    /// a cache entry exists, else with `current`.
    pub(crate) async fn del_list(
        &self,
        current: Option<&NetworkConfigList>,
        cached: Option<CacheEntry>,
        rt: &RuntimeConf,
    ) -> Result<(), CniError> {
        let mut rt = rt.clone();
        let mut list = current.cloned();
        let mut cached_result = None;
        if let Some(entry) = cached {
            match parse_network_config_list(
                &self
                    .cache
                    .path(&entry.network_name, &entry.container_id, &entry.if_name),
                &entry.config,
            ) {
                Ok(l) => list = Some(l),
                Err(e) => {
                    tracing::warn!(network = %entry.network_name, error = %e, "cached cni config unusable; using current config")
                }
            }
            if !entry.cni_args.is_empty() {
                rt.args = entry
                    .cni_args
                    .iter()
                    .map(|[k, v]| (k.clone(), v.clone()))
                    .collect();
            }
            rt.capability_args = entry.capability_args.clone();
            cached_result = entry.result.clone();
        }
        let Some(list) = list else {
            return Ok(());
        };
        let prev = if version_at_least(&list.cni_version, (0, 4, 0)) {
            cached_result.and_then(|r| match convert_result(&r, &list.cni_version) {
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::warn!(network = %list.name, error = %e, "cached cni result unusable");
                    None
                }
            })
        } else {
            None
        };
        let mut errors = self
            .del_plugins(&list, &list.plugins, prev.as_ref(), &rt, OnError::Stop)
            .await;
        if let Some(e) = errors.pop() {
            return Err(e);
        }
        self.cache.remove(&list.name, &rt.container_id, &rt.if_name)
    }
}

/// `a.b.c` >= `want`; an unparsable version counts as older.
pub(crate) fn version_at_least(version: &str, want: (u64, u64, u64)) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u64>());
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Ok(a)), Some(Ok(b)), Some(Ok(c))) => (a, b, c) >= want,
        _ => false,
    }
}

fn valid_id_chars(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// libcni `ValidateContainerID`.
pub(crate) fn validate_container_id(id: &str) -> Result<(), CniError> {
    if valid_id_chars(id) {
        return Ok(());
    }
    Err(CniError::InvalidName {
        what: "container id",
        value: id.to_owned(),
        reason: "must start with [a-zA-Z0-9] and contain only [a-zA-Z0-9_.-]",
    })
}

/// libcni `ValidateNetworkName`.
pub(crate) fn validate_network_name(name: &str) -> Result<(), CniError> {
    if valid_id_chars(name) {
        return Ok(());
    }
    Err(CniError::InvalidName {
        what: "network name",
        value: name.to_owned(),
        reason: "must start with [a-zA-Z0-9] and contain only [a-zA-Z0-9_.-]",
    })
}

/// libcni `ValidateInterfaceName`.
pub(crate) fn validate_interface_name(name: &str) -> Result<(), CniError> {
    let reason = if name.is_empty() {
        Some("interface name is empty")
    } else if name.len() > 15 {
        Some("interface name is too long")
    } else if name == "." || name == ".." {
        Some("interface name is . or ..")
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        Some("interface name contains / or : or whitespace characters")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(CniError::InvalidName {
            what: "interface name",
            value: name.to_owned(),
            reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(result: Result<(), CniError>, ok: bool) {
        assert_eq!(result.is_ok(), ok, "{result:?}");
    }

    #[test]
    fn names_are_validated_as_libcni_does() {
        check(validate_container_id("abc-1.2_3"), true);
        check(validate_container_id(""), false);
        check(validate_container_id("-abc"), false);
        check(validate_container_id("a/b"), false);
        check(validate_network_name("cni-loopback"), true);
        check(validate_network_name("a b"), false);
        check(validate_interface_name("eth0"), true);
        check(validate_interface_name("averyveryverylongname"), false);
        check(validate_interface_name("a:b"), false);
        check(validate_interface_name(".."), false);
        check(validate_interface_name(""), false);
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(version_at_least("0.4.0", (0, 4, 0)));
        assert!(version_at_least("1.0.0", (0, 4, 0)));
        assert!(version_at_least("0.10.0", (0, 4, 0)));
        assert!(!version_at_least("0.3.1", (0, 4, 0)));
        assert!(!version_at_least("", (0, 4, 0)));
    }
}
