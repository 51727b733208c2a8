//! The config keys that shape OCI specs, gathered into
//! `cri_spec::RuntimeOptions` from the CRI config and a runtime handler.

use cri_spec::RuntimeOptions;

use cri_config::{CriConfig, RuntimeConfig};

/// `RuntimeOptions` for specs of `runtime`'s pods and containers.
/// `daemon_oom_score_adj` is this process's own score (read from
/// `/proc/self/oom_score_adj`), the floor under `restrict_oom_score_adj`.
/// Block I/O and RDT classes and `base_runtime_spec` are left unset.
pub fn spec_options(
    cri: &CriConfig,
    runtime: &RuntimeConfig,
    daemon_oom_score_adj: i32,
) -> RuntimeOptions {
    RuntimeOptions {
        restrict_oom_score_adj: cri.restrict_oom_score_adj,
        daemon_oom_score_adj,
        disable_proc_mount: cri.disable_proc_mount,
        disable_cgroup: cri.disable_cgroup,
        privileged_without_host_devices: runtime.privileged_without_host_devices,
        privileged_without_host_devices_all_devices_allowed: runtime
            .privileged_without_host_devices_all_devices_allowed,
        device_ownership_from_security_context: cri.device_ownership_from_security_context,
        unset_seccomp_profile: cri.unset_seccomp_profile.clone(),
        disable_apparmor: cri.disable_apparmor,
        enable_selinux: cri.enable_selinux,
        tolerate_missing_hugetlb_controller: cri.tolerate_missing_hugetlb_controller,
        disable_hugetlb_controller: cri.disable_hugetlb_controller,
        enable_unprivileged_ports: cri.enable_unprivileged_ports,
        enable_unprivileged_icmp: cri.enable_unprivileged_icmp,
        pod_annotations: runtime.pod_annotations.clone(),
        container_annotations: runtime.container_annotations.clone(),
        ignore_blockio_not_enabled_errors: cri.ignore_blockio_not_enabled_errors,
        ignore_rdt_not_enabled_errors: cri.ignore_rdt_not_enabled_errors,
        ..RuntimeOptions::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keys_reach_the_options() {
        let cri = CriConfig {
            restrict_oom_score_adj: true,
            enable_unprivileged_ports: true,
            enable_unprivileged_icmp: true,
            ..CriConfig::default()
        };
        let runtime = RuntimeConfig {
            pod_annotations: vec!["io.example/*".into()],
            ..RuntimeConfig::runc_default()
        };
        let o = spec_options(&cri, &runtime, 200);
        assert!(
            o.restrict_oom_score_adj && o.enable_unprivileged_ports && o.enable_unprivileged_icmp
        );
        assert_eq!(o.daemon_oom_score_adj, 200);
        assert_eq!(o.pod_annotations, ["io.example/*"]);
        assert!(!o.enable_selinux);
    }
}
