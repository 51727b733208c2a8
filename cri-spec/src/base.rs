//! The spec every Linux build starts from: containerd's default unix spec
//! (`oci.populateDefaultUnixSpec`) or a copy of the runtime handler's
//! `base_runtime_spec` with the namespaced cgroups path, and the first
//! options containerd applies to it (`WithoutRunMount`,
//! `WithoutDefaultSecuritySettings`, the relative root).

use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxDeviceCgroup, LinuxNamespace, LinuxNamespaceType, LinuxResources, Mount,
    PosixRlimitBuilder, PosixRlimitType, Spec,
};

use crate::{access, Result};

/// The runtime-spec version containerd 1.7 writes.
pub const OCI_VERSION: &str = "1.1.0";
/// The containerd namespace of every CRI object.
pub const K8S_NAMESPACE: &str = "k8s.io";
/// `root.path`, relative to the bundle.
pub(crate) const ROOTFS_PATH: &str = "rootfs";

/// containerd's `defaultUnixCaps`.
pub(crate) const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// containerd's default masked paths.
pub(crate) const DEFAULT_MASKED_PATHS: [&str; 10] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];

/// containerd's default read-only paths.
pub(crate) const DEFAULT_READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// A mount of `kind` from `source` at `destination`.
pub(crate) fn mount(destination: &str, kind: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(destination.into());
    m.set_typ(Some(kind.to_owned()));
    m.set_source(Some(source.into()));
    m.set_options(Some(options.iter().map(|o| (*o).to_owned()).collect()));
    m
}

/// A bind mount.
pub(crate) fn bind_mount(destination: &Path, source: &Path, options: Vec<String>) -> Mount {
    let mut m = Mount::default();
    m.set_destination(destination.to_path_buf());
    m.set_typ(Some("bind".to_owned()));
    m.set_source(Some(source.to_path_buf()));
    m.set_options(Some(options));
    m
}

/// containerd's `defaultMounts` (oci/mounts.go).
pub(crate) fn default_mounts() -> Vec<Mount> {
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        mount(
            "/run",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
    ]
}

/// A namespace entry without a path.
pub(crate) fn namespace(typ: LinuxNamespaceType) -> LinuxNamespace {
    let mut ns = LinuxNamespace::default();
    ns.set_typ(typ);
    ns
}

/// `/k8s.io/<id>`: the cgroups path containerd gives a container without
/// a cgroup parent (`WithNamespacedCgroup`).
pub(crate) fn namespaced_cgroups_path(id: &str) -> PathBuf {
    PathBuf::from("/").join(K8S_NAMESPACE).join(id)
}

/// containerd's `populateDefaultUnixSpec` for container `id`.
pub(crate) fn default_unix_spec(id: &str) -> Result<Spec> {
    let mut spec = access::empty_spec();
    spec.set_version(OCI_VERSION.to_owned());
    let root = access::root(&mut spec);
    root.set_path(ROOTFS_PATH.into());
    {
        let p = access::process(&mut spec);
        p.set_cwd("/".into());
        p.set_no_new_privileges(Some(true));
        let mut caps = access::empty_capabilities();
        let set: oci_spec::runtime::Capabilities = DEFAULT_CAPABILITIES.into_iter().collect();
        caps.set_bounding(Some(set.clone()));
        caps.set_permitted(Some(set.clone()));
        caps.set_effective(Some(set));
        p.set_capabilities(Some(caps));
        let nofile = PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .hard(1024u64)
            .soft(1024u64)
            .build()?;
        p.set_rlimits(Some(vec![nofile]));
    }
    let linux = access::linux(&mut spec);
    linux.set_masked_paths(Some(
        DEFAULT_MASKED_PATHS
            .iter()
            .map(|p| (*p).to_owned())
            .collect(),
    ));
    linux.set_readonly_paths(Some(
        DEFAULT_READONLY_PATHS
            .iter()
            .map(|p| (*p).to_owned())
            .collect(),
    ));
    linux.set_cgroups_path(Some(namespaced_cgroups_path(id)));
    let mut deny_all = LinuxDeviceCgroup::default();
    deny_all.set_allow(false);
    deny_all.set_access(Some("rwm".to_owned()));
    let mut resources = LinuxResources::default();
    resources.set_devices(Some(vec![deny_all]));
    linux.set_resources(Some(resources));
    linux.set_namespaces(Some(
        [
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Network,
        ]
        .into_iter()
        .map(namespace)
        .collect(),
    ));
    spec.set_mounts(Some(default_mounts()));
    Ok(spec)
}

/// The starting spec of a Linux container: a copy of `base` with the
/// namespaced cgroups path, or the default unix spec. The options applied
/// first in containerd follow: no `/run` mount, no default security
/// settings unless a base spec is used, and the relative rootfs.
pub(crate) fn starting_spec(id: &str, base: Option<&Spec>) -> Result<Spec> {
    let mut spec = match base {
        Some(base) => {
            let mut spec = base.clone();
            access::linux(&mut spec).set_cgroups_path(Some(namespaced_cgroups_path(id)));
            spec
        }
        None => default_unix_spec(id)?,
    };
    without_mounts(&mut spec, &["/run"]);
    if base.is_none() {
        without_default_security_settings(&mut spec);
    }
    access::root(&mut spec).set_path(ROOTFS_PATH.into());
    Ok(spec)
}

/// `oci.WithoutMounts`: drop mounts whose cleaned destination is listed.
pub(crate) fn without_mounts(spec: &mut Spec, destinations: &[&str]) {
    if let Some(mounts) = spec.mounts_mut() {
        mounts.retain(|m| {
            let dst = crate::mounts::clean_path(&m.destination().to_string_lossy());
            !destinations.contains(&dst.as_str())
        });
    }
}

/// containerd's `WithoutDefaultSecuritySettings`: no AppArmor profile, no
/// seccomp, no rlimits.
pub(crate) fn without_default_security_settings(spec: &mut Spec) {
    let p = access::process(spec);
    p.set_apparmor_profile(Some(String::new()));
    p.set_rlimits(None);
    if let Some(linux) = spec.linux_mut() {
        linux.set_seccomp(None);
    }
}
