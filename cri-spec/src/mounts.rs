//! Mounts: the sandbox files an app container binds (`/etc/hostname`,
//! `/etc/hosts`, `/etc/resolv.conf`, `/dev/shm`), CRI and extra mounts
//! merged over the default mounts (containerd's `WithMounts`: propagation
//! checked against the host mount, symlinks resolved, missing sources
//! created, SELinux relabel, read-only and recursive read-only), masked
//! and read-only paths, writable sysfs for privileged containers.

use std::path::{Path, PathBuf};

use cri_api::v1::{Mount as CriMount, MountPropagation};
use oci_spec::runtime::Spec;

use crate::{
    access,
    base::{bind_mount, mount},
    host::{HostOs, SeLinux},
    options::SandboxFiles,
    Error, Result,
};

pub(crate) const ETC_HOSTNAME: &str = "/etc/hostname";
pub(crate) const ETC_HOSTS: &str = "/etc/hosts";
pub(crate) const RESOLV_CONF: &str = "/etc/resolv.conf";
pub(crate) const DEV_SHM: &str = "/dev/shm";

/// Go's `filepath.Clean` for slash-separated paths.
pub(crate) fn clean_path(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// containerd's `isInCRIMounts`.
fn in_cri_mounts(dst: &str, mounts: &[CriMount]) -> bool {
    let dst = clean_path(dst);
    mounts.iter().any(|m| clean_path(&m.container_path) == dst)
}

fn cri_mount(container_path: &str, host_path: &Path, readonly: bool, relabel: bool) -> CriMount {
    CriMount {
        container_path: container_path.to_owned(),
        host_path: host_path.to_string_lossy().into_owned(),
        readonly,
        selinux_relabel: relabel,
        ..Default::default()
    }
}

/// containerd's `containerMounts`: the sandbox files not already given as
/// CRI mounts; `/etc/hostname` only if its source exists, `/dev/shm` from
/// the host for host IPC.
pub(crate) fn sandbox_file_mounts(
    files: &SandboxFiles,
    cri_mounts: &[CriMount],
    readonly_rootfs: bool,
    host_ipc: bool,
    host: &dyn HostOs,
) -> Vec<CriMount> {
    let mut mounts = Vec::new();
    if !in_cri_mounts(ETC_HOSTNAME, cri_mounts)
        && matches!(host.path_exists(&files.hostname), Ok(true))
    {
        mounts.push(cri_mount(
            ETC_HOSTNAME,
            &files.hostname,
            readonly_rootfs,
            true,
        ));
    }
    if !in_cri_mounts(ETC_HOSTS, cri_mounts) {
        mounts.push(cri_mount(ETC_HOSTS, &files.hosts, readonly_rootfs, true));
    }
    if !in_cri_mounts(RESOLV_CONF, cri_mounts) {
        mounts.push(cri_mount(
            RESOLV_CONF,
            &files.resolv_conf,
            readonly_rootfs,
            true,
        ));
    }
    if !in_cri_mounts(DEV_SHM, cri_mounts) {
        let shm = if host_ipc {
            PathBuf::from(DEV_SHM)
        } else {
            files.shm.clone()
        };
        let relabel = shm != Path::new(DEV_SHM);
        mounts.push(cri_mount(DEV_SHM, &shm, false, relabel));
    }
    mounts
}

/// CRI mounts plus the extra mounts whose destination (compared after
/// `clean`) no CRI mount has, sorted (stably) by destination depth.
pub(crate) fn merge_mounts(
    cri_mounts: &[CriMount],
    extra: &[CriMount],
    clean: fn(&str) -> String,
) -> Vec<CriMount> {
    let taken: Vec<String> = cri_mounts
        .iter()
        .map(|m| clean(&m.container_path))
        .collect();
    let mut all: Vec<CriMount> = cri_mounts.to_vec();
    all.extend(
        extra
            .iter()
            .filter(|e| !taken.contains(&clean(&e.container_path)))
            .cloned(),
    );
    all.sort_by_key(|m| clean(&m.container_path).matches(['/', '\\']).count());
    all
}

/// A bind source that exists (created when missing) with its symlinks
/// resolved, as containerd's mount options prepare it.
pub(crate) fn prepare_source(host: &dyn HostOs, host_path: &Path) -> Result<PathBuf> {
    let exists = host
        .path_exists(host_path)
        .map_err(|source| Error::StatHostPath {
            path: host_path.to_path_buf(),
            source,
        })?;
    if !exists {
        host.create_dir_all(host_path)
            .map_err(|source| Error::CreateHostPath {
                path: host_path.to_path_buf(),
                source,
            })?;
    }
    host.resolve_symlinks(host_path)
        .map_err(|source| Error::ResolveSymlinks {
            path: host_path.to_path_buf(),
            source,
        })
}

/// What `WithMounts` needs besides the mounts.
pub(crate) struct MountContext<'a> {
    pub host: &'a dyn HostOs,
    pub selinux: &'a dyn SeLinux,
    pub mount_label: &'a str,
    pub selinux_enabled: bool,
}

fn propagation_options(
    spec: &mut Spec,
    m: &CriMount,
    src: &Path,
    host: &dyn HostOs,
) -> Result<&'static str> {
    let lookup = |path: &Path| {
        host.mount_info(path).map_err(|source| Error::LookupMount {
            path: path.to_path_buf(),
            source,
        })
    };
    match MountPropagation::try_from(m.propagation) {
        Ok(MountPropagation::PropagationPrivate) => Ok("rprivate"),
        Ok(MountPropagation::PropagationBidirectional) => {
            let info = lookup(src)?;
            if !info.shared {
                return Err(Error::NotSharedMount {
                    path: src.to_path_buf(),
                    mount_point: info.mount_point,
                });
            }
            access::linux(spec).set_rootfs_propagation(Some("rshared".to_owned()));
            Ok("rshared")
        }
        Ok(MountPropagation::PropagationHostToContainer) => {
            let info = lookup(src)?;
            if !info.shared && !info.slave {
                return Err(Error::NotSharedOrSlaveMount {
                    path: src.to_path_buf(),
                    mount_point: info.mount_point,
                });
            }
            let linux = access::linux(spec);
            if !matches!(
                linux.rootfs_propagation().as_deref(),
                Some("rshared") | Some("rslave")
            ) {
                linux.set_rootfs_propagation(Some("rslave".to_owned()));
            }
            Ok("rslave")
        }
        Err(_) => {
            tracing::warn!(host_path = %m.host_path, propagation = m.propagation, "unknown propagation mode for host path");
            Ok("rprivate")
        }
    }
}

fn bind(spec: &mut Spec, m: &CriMount, ctx: &MountContext<'_>) -> Result<oci_spec::runtime::Mount> {
    if m.image.is_some() {
        return Err(Error::ImageMount {
            container_path: m.container_path.clone(),
        });
    }
    if !m.uid_mappings.is_empty() || !m.gid_mappings.is_empty() {
        return Err(Error::IdmapMount {
            host_path: m.host_path.clone(),
        });
    }
    if m.recursive_read_only {
        if !m.readonly {
            return Err(Error::RecursiveReadOnlyNotReadOnly {
                container_path: m.container_path.clone(),
            });
        }
        if m.propagation != MountPropagation::PropagationPrivate as i32 {
            return Err(Error::RecursiveReadOnlyNotPrivate {
                container_path: m.container_path.clone(),
            });
        }
    }
    let src = prepare_source(ctx.host, Path::new(&m.host_path))?;
    let mut options = vec![
        "rbind".to_owned(),
        propagation_options(spec, m, &src, ctx.host)?.to_owned(),
    ];
    options.push(
        match (m.recursive_read_only, m.readonly) {
            (true, _) => "rro",
            (false, true) => "ro",
            (false, false) => "rw",
        }
        .to_owned(),
    );
    if m.selinux_relabel && ctx.selinux_enabled && !ctx.mount_label.is_empty() {
        ctx.selinux
            .relabel(&src, ctx.mount_label)
            .map_err(|source| Error::Relabel {
                path: src.clone(),
                label: ctx.mount_label.to_owned(),
                source,
            })?;
    }
    Ok(bind_mount(Path::new(&m.container_path), &src, options))
}

/// containerd's `WithMounts`: CRI mounts win over extra mounts with the
/// same destination; mounts are sorted by depth; `/sys/fs/cgroup` is
/// mounted read-only; default mounts covered by a given mount (or under a
/// given `/dev`) are dropped; then each mount is bound.
pub(crate) fn apply_mounts(
    spec: &mut Spec,
    cri_mounts: &[CriMount],
    extra: &[CriMount],
    ctx: &MountContext<'_>,
) -> Result<()> {
    let all = merge_mounts(cri_mounts, extra, clean_path);
    let mut defaults = spec.mounts().clone().unwrap_or_default();
    defaults.push(mount(
        "/sys/fs/cgroup",
        "cgroup",
        "cgroup",
        &["nosuid", "noexec", "nodev", "relatime", "ro"],
    ));
    let given: Vec<String> = all.iter().map(|m| clean_path(&m.container_path)).collect();
    let dev_given = given.iter().any(|d| d == "/dev");
    defaults.retain(|m| {
        let dst = clean_path(&m.destination().to_string_lossy());
        !(given.contains(&dst) || (dev_given && dst.starts_with("/dev/")))
    });
    spec.set_mounts(Some(defaults));
    for m in &all {
        let bound = bind(spec, m, ctx)?;
        spec.mounts_mut().get_or_insert_with(Vec::new).push(bound);
    }
    Ok(())
}

/// Masked and read-only paths: unless `disable_proc_mount`, exactly those
/// of the CRI (containerd's defaults are replaced, even by nothing).
pub(crate) fn apply_path_masks(
    spec: &mut Spec,
    masked: &[String],
    readonly: &[String],
    disable_proc_mount: bool,
) {
    if disable_proc_mount {
        return;
    }
    let linux = access::linux(spec);
    linux.set_masked_paths(Some(masked.to_vec()));
    linux.set_readonly_paths(Some(readonly.to_vec()));
}

/// The mount part of `oci.WithPrivileged`: no masked or read-only paths,
/// sysfs and cgroupfs mounts read-write.
pub(crate) fn apply_privileged_mounts(spec: &mut Spec) {
    let linux = access::linux(spec);
    linux.set_masked_paths(None);
    linux.set_readonly_paths(None);
    for m in spec.mounts_mut().iter_mut().flatten() {
        if matches!(m.typ().as_deref(), Some("sysfs") | Some("cgroup")) {
            for o in m.options_mut().iter_mut().flatten() {
                if o == "ro" {
                    *o = "rw".to_owned();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_path_matches_go() {
        for (input, want) in [
            ("", "."),
            ("/", "/"),
            ("//a//b/", "/a/b"),
            ("/a/./b/../c", "/a/c"),
            ("/../a", "/a"),
            ("a/../..", ".."),
            ("a/b/..", "a"),
            ("./", "."),
            ("/dev/shm/", "/dev/shm"),
        ] {
            assert_eq!(clean_path(input), want, "{input:?}");
        }
    }
}
