//! Mutable access to the optional parts of an `oci_spec` [`Spec`]
//! (creating them empty on first use, as containerd's `setProcess` /
//! `setLinux` do) and the final normalisation that drops empty lists the
//! way Go's `omitempty` does.

use std::collections::HashMap;

use oci_spec::runtime::{Linux, LinuxCapabilities, LinuxResources, Process, Root, Spec, User};

/// A `Process` with every optional field unset and cwd `/`.
pub(crate) fn empty_process() -> Process {
    let mut p = Process::default();
    p.set_terminal(None);
    p.set_console_size(None);
    p.set_user(User::default());
    p.set_args(None);
    p.set_command_line(None);
    p.set_env(None);
    p.set_cwd("/".into());
    p.set_capabilities(None);
    p.set_rlimits(None);
    p.set_no_new_privileges(None);
    p.set_apparmor_profile(None);
    p.set_oom_score_adj(None);
    p.set_selinux_label(None);
    p.set_io_priority(None);
    p.set_scheduler(None);
    p.set_exec_cpu_affinity(None);
    p
}

/// A `Linux` section with every field unset.
pub(crate) fn empty_linux() -> Linux {
    let mut l = Linux::default();
    l.set_net_devices(None);
    l.set_uid_mappings(None);
    l.set_gid_mappings(None);
    l.set_sysctl(None);
    l.set_resources(None);
    l.set_cgroups_path(None);
    l.set_namespaces(None);
    l.set_devices(None);
    l.set_seccomp(None);
    l.set_rootfs_propagation(None);
    l.set_masked_paths(None);
    l.set_readonly_paths(None);
    l.set_mount_label(None);
    l.set_intel_rdt(None);
    l.set_memory_policy(None);
    l.set_personality(None);
    l.set_time_offsets(None);
    l
}

/// Empty capability sets (all five unset).
pub(crate) fn empty_capabilities() -> LinuxCapabilities {
    let mut c = LinuxCapabilities::default();
    c.set_bounding(None);
    c.set_effective(None);
    c.set_inheritable(None);
    c.set_permitted(None);
    c.set_ambient(None);
    c
}

/// A `Spec` with every field unset.
#[allow(deprecated)]
pub(crate) fn empty_spec() -> Spec {
    let mut s = Spec::default();
    s.set_version(String::new());
    s.set_root(None);
    s.set_mounts(None);
    s.set_process(None);
    s.set_hostname(None);
    s.set_domainname(None);
    s.set_hooks(None);
    s.set_annotations(None);
    s.set_linux(None);
    s.set_solaris(None);
    s.set_windows(None);
    s.set_vm(None);
    s.set_zos(None);
    s
}

/// `spec.process`, created empty if unset.
pub(crate) fn process(spec: &mut Spec) -> &mut Process {
    spec.process_mut().get_or_insert_with(empty_process)
}

/// `spec.linux`, created empty if unset.
pub(crate) fn linux(spec: &mut Spec) -> &mut Linux {
    spec.linux_mut().get_or_insert_with(empty_linux)
}

/// `spec.linux.resources`, created empty if unset.
pub(crate) fn resources(spec: &mut Spec) -> &mut LinuxResources {
    linux(spec)
        .resources_mut()
        .get_or_insert_with(LinuxResources::default)
}

/// `spec.annotations`, created empty if unset.
pub(crate) fn annotations(spec: &mut Spec) -> &mut HashMap<String, String> {
    spec.annotations_mut().get_or_insert_with(HashMap::new)
}

/// `spec.root`, created with an empty path if unset.
pub(crate) fn root(spec: &mut Spec) -> &mut Root {
    spec.root_mut().get_or_insert_with(|| {
        let mut r = Root::default();
        r.set_path("".into());
        r.set_readonly(None);
        r
    })
}

/// The capability sets, created empty if unset. Edit the clone and put it
/// back with [`set_capabilities`].
pub(crate) fn capabilities(spec: &mut Spec) -> LinuxCapabilities {
    process(spec)
        .capabilities()
        .clone()
        .unwrap_or_else(empty_capabilities)
}

/// Store capability sets edited from [`capabilities`].
pub(crate) fn set_capabilities(spec: &mut Spec, caps: LinuxCapabilities) {
    process(spec).set_capabilities(Some(caps));
}

fn none_if_empty<T>(v: &mut Option<Vec<T>>) {
    if v.as_ref().is_some_and(Vec::is_empty) {
        *v = None;
    }
}

fn none_if_empty_map<K, V>(v: &mut Option<HashMap<K, V>>) {
    if v.as_ref().is_some_and(HashMap::is_empty) {
        *v = None;
    }
}

/// Drop what Go's `omitempty` would not write: empty lists and maps,
/// false booleans and empty strings, so equal specs compare equal.
pub(crate) fn normalize(spec: &mut Spec) {
    none_if_empty(spec.mounts_mut());
    none_if_empty_map(spec.annotations_mut());
    if spec.hostname().as_deref() == Some("") {
        spec.set_hostname(None);
    }
    if let Some(root) = spec.root_mut() {
        if root.readonly() == Some(false) {
            root.set_readonly(None);
        }
    }
    if let Some(p) = spec.process_mut() {
        normalize_process(p);
    }
    if let Some(l) = spec.linux_mut() {
        normalize_linux(l);
    }
}

fn normalize_process(p: &mut Process) {
    if p.terminal() == Some(false) {
        p.set_terminal(None);
    }
    if p.no_new_privileges() == Some(false) {
        p.set_no_new_privileges(None);
    }
    if p.apparmor_profile().as_deref() == Some("") {
        p.set_apparmor_profile(None);
    }
    if p.selinux_label().as_deref() == Some("") {
        p.set_selinux_label(None);
    }
    let mut args = p.args().clone();
    none_if_empty(&mut args);
    p.set_args(args);
    none_if_empty(p.env_mut());
    none_if_empty(p.user_mut().additional_gids_mut());
    let mut rlimits = p.rlimits().clone();
    none_if_empty(&mut rlimits);
    p.set_rlimits(rlimits);
    if let Some(mut caps) = p.capabilities().clone() {
        let empty =
            |s: &Option<oci_spec::runtime::Capabilities>| s.as_ref().is_some_and(|s| s.is_empty());
        if empty(caps.bounding()) {
            caps.set_bounding(None);
        }
        if empty(caps.effective()) {
            caps.set_effective(None);
        }
        if empty(caps.inheritable()) {
            caps.set_inheritable(None);
        }
        if empty(caps.permitted()) {
            caps.set_permitted(None);
        }
        if empty(caps.ambient()) {
            caps.set_ambient(None);
        }
        p.set_capabilities(Some(caps));
    }
}

fn normalize_linux(l: &mut Linux) {
    none_if_empty(l.uid_mappings_mut());
    none_if_empty(l.gid_mappings_mut());
    none_if_empty_map(l.sysctl_mut());
    none_if_empty(l.namespaces_mut());
    none_if_empty(l.devices_mut());
    none_if_empty(l.masked_paths_mut());
    none_if_empty(l.readonly_paths_mut());
    if l.mount_label().as_deref() == Some("") {
        l.set_mount_label(None);
    }
    if l.rootfs_propagation().as_deref() == Some("") {
        l.set_rootfs_propagation(None);
    }
    if l.cgroups_path()
        .as_ref()
        .is_some_and(|p| p.as_os_str().is_empty())
    {
        l.set_cgroups_path(None);
    }
    if let Some(r) = l.resources_mut() {
        none_if_empty(r.devices_mut());
        none_if_empty(r.hugepage_limits_mut());
        none_if_empty_map(r.unified_mut());
    }
}
