//! Sysctls of the pause container: the pod's, plus the unprivileged port
//! and ICMP options when enabled and the pod has its own network.

use std::collections::HashMap;

use oci_spec::runtime::Spec;

use crate::access;

/// The sysctl opening all ports to unprivileged users.
pub(crate) const UNPRIVILEGED_PORT_START: &str = "net.ipv4.ip_unprivileged_port_start";
/// The sysctl letting every group open ICMP echo sockets.
pub(crate) const PING_GROUP_RANGE: &str = "net.ipv4.ping_group_range";

/// What decides the extra sysctls.
pub(crate) struct SysctlOptions {
    pub host_network: bool,
    pub enable_unprivileged_ports: bool,
    pub enable_unprivileged_icmp: bool,
    /// The daemon runs in a user namespace, or the pod has its own.
    pub in_user_namespace: bool,
}

/// The pause container's sysctls (the pod's win over the extra ones).
pub(crate) fn pause_sysctls(
    pod: &HashMap<String, String>,
    opts: &SysctlOptions,
) -> HashMap<String, String> {
    let mut sysctls = pod.clone();
    if !opts.host_network {
        if opts.enable_unprivileged_ports {
            sysctls
                .entry(UNPRIVILEGED_PORT_START.to_owned())
                .or_insert_with(|| "0".to_owned());
        }
        if opts.enable_unprivileged_icmp && !opts.in_user_namespace {
            sysctls
                .entry(PING_GROUP_RANGE.to_owned())
                .or_insert_with(|| "0 2147483647".to_owned());
        }
    }
    sysctls
}

/// containerd's `WithSysctls`: merge into `linux.sysctl`.
pub(crate) fn apply_sysctls(spec: &mut Spec, sysctls: HashMap<String, String>) {
    access::linux(spec)
        .sysctl_mut()
        .get_or_insert_with(HashMap::new)
        .extend(sysctls);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pod: &[(&str, &str)], opts: SysctlOptions, expected: &[(&str, &str)]) {
        let pod: HashMap<String, String> = pod
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        let want: HashMap<String, String> = expected
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        assert_eq!(pause_sysctls(&pod, &opts), want);
    }

    fn opts(host_network: bool, ports: bool, icmp: bool, userns: bool) -> SysctlOptions {
        SysctlOptions {
            host_network,
            enable_unprivileged_ports: ports,
            enable_unprivileged_icmp: icmp,
            in_user_namespace: userns,
        }
    }

    #[test]
    fn extra_sysctls() {
        check(
            &[("kernel.shm_rmid_forced", "1")],
            opts(false, false, false, false),
            &[("kernel.shm_rmid_forced", "1")],
        );
        check(
            &[],
            opts(false, true, true, false),
            &[
                (UNPRIVILEGED_PORT_START, "0"),
                (PING_GROUP_RANGE, "0 2147483647"),
            ],
        );
        check(&[], opts(true, true, true, false), &[]);
        check(
            &[],
            opts(false, true, true, true),
            &[(UNPRIVILEGED_PORT_START, "0")],
        );
        check(
            &[(UNPRIVILEGED_PORT_START, "1024")],
            opts(false, true, false, false),
            &[(UNPRIVILEGED_PORT_START, "1024")],
        );
    }
}
