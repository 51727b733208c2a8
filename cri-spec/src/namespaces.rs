//! Linux namespaces: an app container joins the pause container's network,
//! IPC, UTS (and user) namespaces and its PID namespace unless the pid
//! mode is CONTAINER (TARGET joins the target container's); user
//! namespaces with their id maps, which pod and container must agree on;
//! the cgroup namespace on cgroup v2. Also the pause container's own
//! namespaces.

use std::path::PathBuf;

use cri_api::v1::{IdMapping, NamespaceMode, NamespaceOption, UserNamespace};
use oci_spec::runtime::{
    LinuxIdMapping, LinuxIdMappingBuilder, LinuxNamespace, LinuxNamespaceType, Spec,
};

use crate::{access, base::namespace, error::IdKind, Error, Result};

fn mode(raw: i32) -> Option<NamespaceMode> {
    NamespaceMode::try_from(raw).ok()
}

/// `/proc/<pid>/ns/<kind>`.
pub(crate) fn ns_path(pid: u32, kind: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/ns/{kind}"))
}

/// `oci.WithLinuxNamespace`: replace the namespace of the same type in
/// place, or append it.
pub(crate) fn with_namespace(spec: &mut Spec, typ: LinuxNamespaceType, path: Option<PathBuf>) {
    let mut ns = namespace(typ);
    ns.set_path(path);
    let list = access::linux(spec)
        .namespaces_mut()
        .get_or_insert_with(Vec::new);
    match list.iter_mut().find(|n| n.typ() == typ) {
        Some(existing) => *existing = ns,
        None => list.push(ns),
    }
}

/// containerd's `WithoutNamespace`.
pub(crate) fn without_namespace(spec: &mut Spec, typ: LinuxNamespaceType) {
    if let Some(list) = access::linux(spec).namespaces_mut() {
        list.retain(|n: &LinuxNamespace| n.typ() != typ);
    }
}

fn id_map(kind: IdKind, raw: &[IdMapping]) -> Result<Vec<LinuxIdMapping>> {
    match raw {
        [] => Ok(Vec::new()),
        [m] if m.length < 1 => Err(Error::InvalidIdMappingLength {
            kind,
            length: m.length,
        }),
        [m] => {
            let out = LinuxIdMappingBuilder::default()
                .container_id(m.container_id)
                .host_id(m.host_id)
                .size(m.length)
                .build()?;
            Ok(vec![out])
        }
        _ => Err(Error::TooManyIdMappings {
            kind,
            count: raw.len(),
        }),
    }
}

/// containerd's `parseUsernsIDs`: the uid and gid maps of a user
/// namespace option, validated against its mode.
pub(crate) fn parse_userns(
    userns: Option<&UserNamespace>,
) -> Result<(Vec<LinuxIdMapping>, Vec<LinuxIdMapping>)> {
    let Some(userns) = userns else {
        return Ok((Vec::new(), Vec::new()));
    };
    let uids = id_map(IdKind::Uid, &userns.uids)?;
    let gids = id_map(IdKind::Gid, &userns.gids)?;
    match mode(userns.mode) {
        Some(NamespaceMode::Node) if !uids.is_empty() || !gids.is_empty() => {
            Err(Error::UsernsNodeWithMappings {
                uids: uids.len(),
                gids: gids.len(),
            })
        }
        Some(NamespaceMode::Node) => Ok((uids, gids)),
        Some(NamespaceMode::Pod) if uids.is_empty() || gids.is_empty() => {
            Err(Error::UsernsPodWithoutMappings)
        }
        Some(NamespaceMode::Pod) => Ok((uids, gids)),
        _ => Err(Error::UnsupportedUsernsMode { mode: userns.mode }),
    }
}

/// containerd's `sameUsernsConfig`: both absent, or same mode and maps.
pub(crate) fn same_userns(a: Option<&UserNamespace>, b: Option<&UserNamespace>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a.mode == b.mode
                && match (parse_userns(Some(a)), parse_userns(Some(b))) {
                    (Ok(x), Ok(y)) => x == y,
                    _ => false,
                }
        }
        _ => false,
    }
}

/// Pid and user-namespace facts of an app container.
pub(crate) struct ContainerNamespaces<'a> {
    pub options: Option<&'a NamespaceOption>,
    pub sandbox_userns: Option<&'a UserNamespace>,
    pub sandbox_id: &'a str,
    pub sandbox_pid: u32,
    pub target_pid: Option<u32>,
    pub privileged: bool,
    pub cgroup_v2: bool,
}

/// The checks of `buildLinuxSpec`: a target pid for mode TARGET, valid
/// user-namespace maps agreeing with the sandbox's. Returns the pid whose
/// PID namespace is joined.
pub(crate) fn check_container_namespaces(ns: &ContainerNamespaces<'_>) -> Result<u32> {
    let target_pid = if mode(ns.options.map_or(0, |o| o.pid)) == Some(NamespaceMode::Target) {
        let target_id = ns.options.map(|o| o.target_id.clone()).unwrap_or_default();
        ns.target_pid.ok_or(Error::MissingTargetPid { target_id })?
    } else {
        ns.sandbox_pid
    };
    let userns = ns.options.and_then(|o| o.userns_options.as_ref());
    parse_userns(userns)?;
    if !same_userns(ns.sandbox_userns, userns) {
        return Err(Error::UsernsMismatch {
            sandbox: ns.sandbox_id.to_owned(),
        });
    }
    Ok(target_pid)
}

/// containerd's `WithPodNamespaces` plus the cgroup namespace, after
/// [`check_container_namespaces`].
pub(crate) fn apply_container_namespaces(
    spec: &mut Spec,
    ns: &ContainerNamespaces<'_>,
) -> Result<()> {
    let target_pid = check_container_namespaces(ns)?;
    let pid_mode = ns.options.map_or(0, |o| o.pid);
    let userns = ns.options.and_then(|o| o.userns_options.as_ref());
    let (uids, gids) = parse_userns(userns)?;
    let pid = ns.sandbox_pid;
    with_namespace(spec, LinuxNamespaceType::Network, Some(ns_path(pid, "net")));
    with_namespace(spec, LinuxNamespaceType::Ipc, Some(ns_path(pid, "ipc")));
    with_namespace(spec, LinuxNamespaceType::Uts, Some(ns_path(pid, "uts")));
    if mode(pid_mode) != Some(NamespaceMode::Container) {
        with_namespace(
            spec,
            LinuxNamespaceType::Pid,
            Some(ns_path(target_pid, "pid")),
        );
    }
    if let Some(u) = userns {
        if mode(u.mode) == Some(NamespaceMode::Pod) {
            with_namespace(spec, LinuxNamespaceType::User, Some(ns_path(pid, "user")));
            with_user_namespace(spec, uids, gids);
        }
    }
    if ns.cgroup_v2 && !ns.privileged {
        with_namespace(spec, LinuxNamespaceType::Cgroup, None);
    }
    Ok(())
}

/// `oci.WithUserNamespace`: a user namespace (kept if present) and the maps.
pub(crate) fn with_user_namespace(
    spec: &mut Spec,
    uids: Vec<LinuxIdMapping>,
    gids: Vec<LinuxIdMapping>,
) {
    let linux = access::linux(spec);
    let list = linux.namespaces_mut().get_or_insert_with(Vec::new);
    if !list.iter().any(|n| n.typ() == LinuxNamespaceType::User) {
        list.push(namespace(LinuxNamespaceType::User));
    }
    linux
        .uid_mappings_mut()
        .get_or_insert_with(Vec::new)
        .extend(uids);
    linux
        .gid_mappings_mut()
        .get_or_insert_with(Vec::new)
        .extend(gids);
}

/// The pause container's namespaces: host network drops net and uts, host
/// pid and ipc drop theirs, otherwise net uses `netns_path`; a POD user
/// namespace gets the maps (and the pinned path if there is one).
/// Returns whether a user namespace is in use.
pub(crate) fn apply_pause_namespaces(
    spec: &mut Spec,
    options: Option<&NamespaceOption>,
    netns_path: Option<PathBuf>,
    userns_path: Option<PathBuf>,
) -> Result<bool> {
    let get = |f: fn(&NamespaceOption) -> i32| options.map_or(0, f);
    if mode(get(|o| o.network)) == Some(NamespaceMode::Node) {
        without_namespace(spec, LinuxNamespaceType::Network);
        without_namespace(spec, LinuxNamespaceType::Uts);
    } else {
        with_namespace(
            spec,
            LinuxNamespaceType::Network,
            netns_path.filter(|p| !p.as_os_str().is_empty()),
        );
    }
    if mode(get(|o| o.pid)) == Some(NamespaceMode::Node) {
        without_namespace(spec, LinuxNamespaceType::Pid);
    }
    if mode(get(|o| o.ipc)) == Some(NamespaceMode::Node) {
        without_namespace(spec, LinuxNamespaceType::Ipc);
    }
    let userns = options.and_then(|o| o.userns_options.as_ref());
    let (uids, gids) = parse_userns(userns)?;
    let Some(u) = userns else { return Ok(false) };
    match mode(u.mode) {
        Some(NamespaceMode::Pod) => {
            with_user_namespace(spec, uids, gids);
            if let Some(path) = userns_path {
                with_namespace(spec, LinuxNamespaceType::User, Some(path));
            }
            Ok(true)
        }
        _ => {
            without_namespace(spec, LinuxNamespaceType::User);
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn userns(
        mode: NamespaceMode,
        uids: &[(u32, u32, u32)],
        gids: &[(u32, u32, u32)],
    ) -> UserNamespace {
        let m = |l: &[(u32, u32, u32)]| {
            l.iter()
                .map(|&(container_id, host_id, length)| IdMapping {
                    container_id,
                    host_id,
                    length,
                })
                .collect()
        };
        UserNamespace {
            mode: mode as i32,
            uids: m(uids),
            gids: m(gids),
        }
    }

    fn check(input: Option<UserNamespace>, expected: std::result::Result<usize, &str>) {
        match (parse_userns(input.as_ref()), expected) {
            (Ok((u, g)), Ok(n)) => assert_eq!((u.len(), g.len()), (n, n)),
            (Err(e), Err(want)) => assert!(format!("{e:?}").starts_with(want), "{e:?}"),
            (got, want) => panic!("{input:?}: got {got:?} want {want:?}"),
        }
    }

    #[test]
    fn userns_validation() {
        let one = [(0, 100000, 65536)];
        check(None, Ok(0));
        check(Some(userns(NamespaceMode::Pod, &one, &one)), Ok(1));
        check(Some(userns(NamespaceMode::Node, &[], &[])), Ok(0));
        check(
            Some(userns(NamespaceMode::Node, &one, &[])),
            Err("UsernsNodeWithMappings"),
        );
        check(
            Some(userns(NamespaceMode::Pod, &one, &[])),
            Err("UsernsPodWithoutMappings"),
        );
        check(
            Some(userns(NamespaceMode::Pod, &[(0, 1, 0)], &one)),
            Err("InvalidIdMappingLength"),
        );
        check(
            Some(userns(NamespaceMode::Pod, &[(0, 1, 1), (1, 2, 1)], &one)),
            Err("TooManyIdMappings"),
        );
        check(
            Some(userns(NamespaceMode::Container, &[], &[])),
            Err("UnsupportedUsernsMode"),
        );
        check(
            Some(userns(NamespaceMode::Target, &one, &one)),
            Err("UnsupportedUsernsMode"),
        );
    }

    #[test]
    fn userns_agreement() {
        let one = [(0, 100000, 65536)];
        let a = userns(NamespaceMode::Pod, &one, &one);
        let b = userns(NamespaceMode::Pod, &[(0, 200000, 65536)], &one);
        assert!(same_userns(None, None));
        assert!(same_userns(Some(&a), Some(&a.clone())));
        assert!(!same_userns(Some(&a), Some(&b)));
        assert!(!same_userns(Some(&a), None));
        assert!(!same_userns(
            Some(&a),
            Some(&userns(NamespaceMode::Node, &[], &[]))
        ));
    }
}
