//! Process capabilities: containerd's default set, CRI add/drop with
//! `ALL`, everything the daemon has for privileged containers, and
//! ambient capabilities from `add_ambient_capabilities` (which containerd
//! ignores; here they go into all five sets, as the CRI documents).

use std::str::FromStr;

use cri_api::v1::Capability as CriCapability;
use oci_spec::runtime::{Capabilities, Capability, Spec};

use crate::{access, Error, Result};

/// Every capability the kernel knows, indexed by its bit number (as
/// in `/proc/<pid>/status` masks), with the names runc and containerd use.
pub const KNOWN_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Parse `CAP_X` or `X` (any case) into a capability.
pub(crate) fn parse_capability(name: &str) -> Result<Capability> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    Capability::from_str(bare).map_err(|_| Error::UnknownCapability {
        name: name.to_owned(),
    })
}

/// The daemon's capabilities as a set; names this crate does not know are
/// skipped (the kernel is newer than the spec types).
pub(crate) fn parse_current(names: &[String]) -> Capabilities {
    names
        .iter()
        .filter_map(|n| match parse_capability(n) {
            Ok(c) => Some(c),
            Err(_) => {
                tracing::debug!(capability = %n, "skipping unknown capability of the daemon");
                None
            }
        })
        .collect()
}

fn named(list: &[String]) -> Result<Vec<Capability>> {
    list.iter()
        .filter(|c| !c.eq_ignore_ascii_case("ALL"))
        .map(|c| parse_capability(c))
        .collect()
}

fn has_all(list: &[String]) -> bool {
    list.iter().any(|c| c.eq_ignore_ascii_case("ALL"))
}

fn set_bep(caps: &mut oci_spec::runtime::LinuxCapabilities, set: Capabilities) {
    caps.set_bounding(Some(set.clone()));
    caps.set_effective(Some(set.clone()));
    caps.set_permitted(Some(set));
}

fn edit(set: &Option<Capabilities>, f: impl FnOnce(&mut Capabilities)) -> Option<Capabilities> {
    let mut s = set.clone().unwrap_or_default();
    f(&mut s);
    Some(s)
}

/// containerd's `WithCapabilities`: `ALL` in add sets every capability the
/// daemon has, `ALL` in drop clears the sets, then named adds and drops
/// apply to the bounding, effective and permitted sets.
pub(crate) fn apply_add_drop(
    spec: &mut Spec,
    requested: Option<&CriCapability>,
    all: &Capabilities,
) -> Result<()> {
    let Some(requested) = requested else {
        return Ok(());
    };
    let add = named(&requested.add_capabilities)?;
    let drop = named(&requested.drop_capabilities)?;
    let mut caps = access::capabilities(spec);
    if has_all(&requested.add_capabilities) {
        set_bep(&mut caps, all.clone());
    }
    if has_all(&requested.drop_capabilities) {
        set_bep(&mut caps, Capabilities::new());
    }
    let add_to = |s: &Option<Capabilities>| edit(s, |s| s.extend(add.iter().copied()));
    let (b, e, p) = (
        add_to(caps.bounding()),
        add_to(caps.effective()),
        add_to(caps.permitted()),
    );
    caps.set_bounding(b);
    caps.set_effective(e);
    caps.set_permitted(p);
    let drop_from = |s: &Option<Capabilities>| edit(s, |s| s.retain(|c| !drop.contains(c)));
    let (b, e, p) = (
        drop_from(caps.bounding()),
        drop_from(caps.effective()),
        drop_from(caps.permitted()),
    );
    caps.set_bounding(b);
    caps.set_effective(e);
    caps.set_permitted(p);
    access::set_capabilities(spec, caps);
    Ok(())
}

/// The capability part of `oci.WithPrivileged`: every capability the
/// daemon has in the bounding, effective and permitted sets.
pub(crate) fn apply_privileged(spec: &mut Spec, all: &Capabilities) {
    let mut caps = access::capabilities(spec);
    set_bep(&mut caps, all.clone());
    access::set_capabilities(spec, caps);
}

/// Ambient capabilities: containerd clears them (`WithoutAmbientCaps`);
/// we then add `add_ambient_capabilities` (minus the named drops) to the
/// ambient and inheritable sets and make sure they are also bounding,
/// effective and permitted.
pub(crate) fn apply_ambient(spec: &mut Spec, requested: Option<&CriCapability>) -> Result<()> {
    let mut caps = access::capabilities(spec);
    caps.set_ambient(None);
    let ambient = match requested {
        Some(r) => {
            let drop = named(&r.drop_capabilities)?;
            let mut ambient = named(&r.add_ambient_capabilities)?;
            ambient.retain(|c| !drop.contains(c));
            ambient
        }
        None => Vec::new(),
    };
    if !ambient.is_empty() {
        let add_to = |s: &Option<Capabilities>| edit(s, |s| s.extend(ambient.iter().copied()));
        let (b, e, p, i) = (
            add_to(caps.bounding()),
            add_to(caps.effective()),
            add_to(caps.permitted()),
            add_to(caps.inheritable()),
        );
        caps.set_bounding(b);
        caps.set_effective(e);
        caps.set_permitted(p);
        caps.set_inheritable(i);
        caps.set_ambient(Some(ambient.into_iter().collect()));
    }
    access::set_capabilities(spec, caps);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::{default_unix_spec, DEFAULT_CAPABILITIES};

    fn set(caps: &[Capability]) -> Capabilities {
        caps.iter().copied().collect()
    }

    fn cri(add: &[&str], drop: &[&str], ambient: &[&str]) -> CriCapability {
        let v = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect();
        CriCapability {
            add_capabilities: v(add),
            drop_capabilities: v(drop),
            add_ambient_capabilities: v(ambient),
        }
    }

    fn check(requested: CriCapability, bounding: Capabilities, ambient: Option<Capabilities>) {
        let mut spec = default_unix_spec("id").expect("spec");
        let all = set(&[
            Capability::Chown,
            Capability::SysAdmin,
            Capability::NetAdmin,
            Capability::Kill,
        ]);
        let result = apply_add_drop(&mut spec, Some(&requested), &all)
            .and_then(|()| apply_ambient(&mut spec, Some(&requested)));
        assert!(result.is_ok(), "{result:?}");
        let caps = access::capabilities(&mut spec);
        assert_eq!(
            caps.bounding().clone().unwrap_or_default(),
            bounding,
            "{requested:?}"
        );
        assert_eq!(caps.effective().clone().unwrap_or_default(), bounding);
        assert_eq!(caps.permitted().clone().unwrap_or_default(), bounding);
        assert_eq!(caps.ambient().clone(), ambient.clone());
        assert_eq!(caps.inheritable().clone(), ambient);
    }

    #[test]
    fn add_drop_all_and_ambient() {
        let default = set(&DEFAULT_CAPABILITIES);
        let mut with_admin = default.clone();
        with_admin.insert(Capability::NetAdmin);
        check(cri(&["NET_ADMIN"], &[], &[]), with_admin, None);
        let mut without_chown = default.clone();
        without_chown.remove(&Capability::Chown);
        check(cri(&[], &["chown"], &[]), without_chown, None);
        check(
            cri(&["ALL"], &[], &[]),
            set(&[
                Capability::Chown,
                Capability::SysAdmin,
                Capability::NetAdmin,
                Capability::Kill,
            ]),
            None,
        );
        check(
            cri(&["all"], &["CHOWN"], &[]),
            set(&[Capability::SysAdmin, Capability::NetAdmin, Capability::Kill]),
            None,
        );
        check(
            cri(&["KILL"], &["ALL"], &[]),
            set(&[Capability::Kill]),
            None,
        );
        check(cri(&[], &["ALL"], &[]), Capabilities::new(), None);
        check(
            cri(&[], &["ALL"], &["NET_BIND_SERVICE"]),
            set(&[Capability::NetBindService]),
            Some(set(&[Capability::NetBindService])),
        );
        check(
            cri(&[], &["ALL", "KILL"], &["KILL"]),
            Capabilities::new(),
            None,
        );
        check(
            cri(&["CAP_SYS_TIME"], &["ALL"], &[]),
            set(&[Capability::SysTime]),
            None,
        );
    }

    #[test]
    fn unknown_capability_is_an_error() {
        let mut spec = default_unix_spec("id").expect("spec");
        let err = apply_add_drop(
            &mut spec,
            Some(&cri(&["NOPE"], &[], &[])),
            &Capabilities::new(),
        );
        assert!(matches!(err, Err(Error::UnknownCapability { name }) if name == "NOPE"));
        let err = apply_ambient(&mut spec, Some(&cri(&[], &[], &["BOGUS"])));
        assert!(matches!(err, Err(Error::UnknownCapability { .. })));
    }

    #[test]
    fn current_capabilities_skip_unknown() {
        let got = parse_current(&["CAP_CHOWN".into(), "CAP_FUTURE_THING".into()]);
        assert_eq!(got, set(&[Capability::Chown]));
    }
}
