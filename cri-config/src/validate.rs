//! Checks on the merged CRI settings, containerd's `ValidatePluginConfig`
//! rules, with errors that name the key in the layout the file used.

use super::cri::CriConfig;
use super::error::ConfigError;
use super::file::{plugin_key, Source, GRPC_CRI_PLUGIN};
use super::runtime::{
    OptionKind, RuntimeConfig, LINUX_V1_RUNTIME_TYPE, RUNC_OPTION_KEYS, SANDBOX_MODE_PODSANDBOX,
};

/// Where the checked keys came from, to name them in errors.
#[derive(Debug, Clone)]
pub(super) struct Origins {
    /// The plugin section holding `containerd.*` and `cni`.
    pub runtime_plugin: String,
    /// The plugin section holding `registry`.
    pub images_plugin: String,
    pub default_runtime_name_line: Option<usize>,
    pub systemd_cgroup_line: Option<usize>,
    pub no_pivot_line: Option<usize>,
}

impl Default for Origins {
    fn default() -> Self {
        Self {
            runtime_plugin: GRPC_CRI_PLUGIN.to_owned(),
            images_plugin: GRPC_CRI_PLUGIN.to_owned(),
            default_runtime_name_line: None,
            systemd_cgroup_line: None,
            no_pivot_line: None,
        }
    }
}

impl Origins {
    /// Every key lives in one plugin section (layouts 1 and 2).
    pub(super) fn set_single_section(&mut self, plugin: &str) {
        plugin.clone_into(&mut self.runtime_plugin);
        plugin.clone_into(&mut self.images_plugin);
    }
}

/// Checks `cri`, fills containerd's implied values (`sandbox_mode`), and
/// adds the paths of unknown runc option keys to `warnings`.
pub(super) fn validate(
    cri: &mut CriConfig,
    source: &Source<'_>,
    origins: &Origins,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let runtime_key = |rest: &[&str]| plugin_key(&origins.runtime_plugin, rest);
    let name_key = || runtime_key(&["containerd", "default_runtime_name"]);
    if cri.default_runtime_name.is_empty() {
        return Err(source.invalid(
            name_key(),
            origins.default_runtime_name_line,
            "must not be empty",
        ));
    }
    let Some(default_runtime) = cri.runtimes.get(&cri.default_runtime_name) else {
        return Err(source.invalid(
            name_key(),
            origins.default_runtime_name_line,
            format!(
                "no runtime {:?} in `containerd.runtimes` (have: {})",
                cri.default_runtime_name,
                cri.runtimes
                    .keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    };
    let default_is_linux_v1 = default_runtime.runtime_type == LINUX_V1_RUNTIME_TYPE;
    if cri.systemd_cgroup && !default_is_linux_v1 {
        return Err(source.invalid(
            runtime_key(&["systemd_cgroup"]),
            origins.systemd_cgroup_line,
            format!(
                "only works for runtime {LINUX_V1_RUNTIME_TYPE}; set `SystemdCgroup = true` in the runtime's `options` instead"
            ),
        ));
    }
    if cri.no_pivot && !default_is_linux_v1 {
        return Err(source.invalid(
            runtime_key(&["containerd", "no_pivot"]),
            origins.no_pivot_line,
            format!("only works for runtime {LINUX_V1_RUNTIME_TYPE}; set `NoPivotRoot = true` in the runtime's `options` instead"),
        ));
    }
    for (name, runtime) in &mut cri.runtimes {
        let key = |field: &str| runtime_key(&["containerd", "runtimes", name, field]);
        check_runtime(runtime, &key, source)?;
        if runtime.is_runc() {
            check_runc_options(
                runtime,
                &|option| runtime_key(&["containerd", "runtimes", name, "options", option]),
                source,
                warnings,
            )?;
        }
        if runtime.sandbox_mode.is_empty() {
            SANDBOX_MODE_PODSANDBOX.clone_into(&mut runtime.sandbox_mode);
        }
    }
    let registry_key = |field: &str| plugin_key(&origins.images_plugin, &["registry", field]);
    if !cri.registry.config_path.is_empty() {
        if !cri.registry.mirrors.is_empty() {
            return Err(source.invalid(
                registry_key("mirrors"),
                None,
                "cannot be set when `config_path` is provided",
            ));
        }
        if cri.registry.configs.values().any(|c| c.tls.is_some()) {
            return Err(source.invalid(
                registry_key("configs"),
                None,
                "`tls` cannot be set when `config_path` is provided",
            ));
        }
    }
    Ok(())
}

fn check_runtime(
    runtime: &RuntimeConfig,
    key: &dyn Fn(&str) -> String,
    source: &Source<'_>,
) -> Result<(), ConfigError> {
    if runtime.privileged_without_host_devices_all_devices_allowed
        && !runtime.privileged_without_host_devices
    {
        return Err(source.invalid(
            key("privileged_without_host_devices_all_devices_allowed"),
            None,
            "requires `privileged_without_host_devices` to be enabled",
        ));
    }
    let legacy = [
        ("runtime_engine", &runtime.runtime_engine),
        ("runtime_root", &runtime.runtime_root),
    ];
    for (field, value) in legacy {
        if !value.is_empty() && runtime.runtime_type != LINUX_V1_RUNTIME_TYPE {
            return Err(source.invalid(
                key(field),
                None,
                format!("only works for runtime {LINUX_V1_RUNTIME_TYPE}"),
            ));
        }
    }
    if !matches!(runtime.io_type.as_str(), "" | "fifo" | "streaming") {
        return Err(source.invalid(
            key("io_type"),
            None,
            format!(
                "unknown io type {:?}, want \"fifo\" or \"streaming\"",
                runtime.io_type
            ),
        ));
    }
    Ok(())
}

/// runc decodes `options` into its `Options` message: a wrongly typed key
/// fails there, and an unknown one is silently dropped, so warn about it.
fn check_runc_options(
    runtime: &RuntimeConfig,
    key: &dyn Fn(&str) -> String,
    source: &Source<'_>,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    for (option, value) in &runtime.options {
        let known = RUNC_OPTION_KEYS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(option))
            .map(|(_, kind)| *kind);
        match known {
            None => warnings.push(key(option)),
            Some(kind) if !kind.matches(value) => {
                return Err(source.invalid(
                    key(option),
                    None,
                    format!(
                        "invalid type: {}, expected {}",
                        value.type_str(),
                        OptionKind::name(kind)
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}
