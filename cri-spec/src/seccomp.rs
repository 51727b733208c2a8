//! Seccomp: which profile applies (the CRI `SecurityProfile`, else the
//! deprecated string form, else `unset_seccomp_profile`), our
//! RuntimeDefault profile built for the platform and the container's
//! bounding capabilities, Localhost profiles read through [`HostOs`].

use std::path::PathBuf;

use cri_api::v1::{security_profile::ProfileType, SecurityProfile};
use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall, Spec,
};

use crate::{access, host::HostOs, seccomp_default as data, Error, Result};

const LOCALHOST_PREFIX: &str = "localhost/";

/// containerd's `generateSecurityProfile` for the deprecated string forms:
/// `runtime/default`, `docker/default` and `""` are RuntimeDefault,
/// `unconfined` is Unconfined, `localhost/<ref>` is Localhost.
pub(crate) fn profile_from_string(profile: &str) -> Result<SecurityProfile> {
    let (profile_type, localhost_ref) = match profile {
        "runtime/default" | "docker/default" | "" => (ProfileType::RuntimeDefault, String::new()),
        "unconfined" => (ProfileType::Unconfined, String::new()),
        other => match other.strip_prefix(LOCALHOST_PREFIX) {
            Some(r) => (ProfileType::Localhost, r.to_owned()),
            None => {
                return Err(Error::InvalidSecurityProfile {
                    profile: other.to_owned(),
                })
            }
        },
    };
    Ok(SecurityProfile {
        profile_type: profile_type as i32,
        localhost_ref,
    })
}

/// The seccomp profile asked for: the typed field, else the deprecated
/// path, else the runtime's `unset_seccomp_profile`; `None` when none.
pub(crate) fn requested_profile(
    typed: Option<&SecurityProfile>,
    deprecated: &str,
    unset: &str,
) -> Result<Option<SecurityProfile>> {
    if let Some(sp) = typed {
        return Ok(Some(sp.clone()));
    }
    if !deprecated.is_empty() {
        return profile_from_string(deprecated).map(Some);
    }
    if !unset.is_empty() {
        return profile_from_string(unset).map(Some);
    }
    Ok(None)
}

/// containerd's `generateSeccompSpecOpts` applied: nothing for privileged
/// containers, an error for a profile on a host without seccomp, our
/// default profile, or a Localhost profile file.
pub(crate) fn apply_seccomp(
    spec: &mut Spec,
    profile: Option<&SecurityProfile>,
    privileged: bool,
    architecture: &str,
    host: &dyn HostOs,
) -> Result<()> {
    if privileged {
        return Ok(());
    }
    let unconfined = ProfileType::Unconfined as i32;
    if !host.seccomp_supported() {
        return match profile {
            Some(sp) if sp.profile_type != unconfined => Err(Error::SeccompUnsupported),
            _ => Ok(()),
        };
    }
    let Some(sp) = profile else { return Ok(()) };
    if sp.profile_type != ProfileType::Localhost as i32 && !sp.localhost_ref.is_empty() {
        return Err(Error::SeccompLocalhostRef);
    }
    let seccomp = match ProfileType::try_from(sp.profile_type) {
        Ok(ProfileType::Unconfined) => return Ok(()),
        Ok(ProfileType::RuntimeDefault) => {
            let bounding = access::capabilities(spec)
                .bounding()
                .clone()
                .unwrap_or_default();
            default_seccomp_profile(architecture, &bounding.into_iter().collect::<Vec<_>>())?
        }
        Ok(ProfileType::Localhost) => {
            let path = PathBuf::from(
                sp.localhost_ref
                    .strip_prefix(LOCALHOST_PREFIX)
                    .unwrap_or(&sp.localhost_ref),
            );
            let raw = host
                .read_file(&path)
                .map_err(|source| Error::ReadSeccompProfile {
                    path: path.clone(),
                    source,
                })?;
            serde_json::from_slice::<LinuxSeccomp>(&raw)
                .map_err(|source| Error::DecodeSeccompProfile { path, source })?
        }
        Err(_) => {
            return Err(Error::UnknownSeccompProfileType {
                profile_type: sp.profile_type,
            })
        }
    };
    access::linux(spec).set_seccomp(Some(seccomp));
    Ok(())
}

/// The seccomp architectures of a GOARCH.
fn architectures(arch: &str) -> Vec<Arch> {
    match arch {
        "amd64" => vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
        "arm64" => vec![Arch::ScmpArchArm, Arch::ScmpArchAarch64],
        "arm" => vec![Arch::ScmpArchArm],
        "386" => vec![Arch::ScmpArchX86],
        "ppc64le" => vec![Arch::ScmpArchPpc64le],
        "s390x" => vec![Arch::ScmpArchS390, Arch::ScmpArchS390x],
        "riscv64" => vec![Arch::ScmpArchRiscv64],
        "loong64" => vec![Arch::ScmpArchLoongarch64],
        "mips64" => vec![
            Arch::ScmpArchMips,
            Arch::ScmpArchMips64,
            Arch::ScmpArchMips64n32,
        ],
        "mips64le" => vec![
            Arch::ScmpArchMipsel,
            Arch::ScmpArchMipsel64,
            Arch::ScmpArchMipsel64n32,
        ],
        _ => Vec::new(),
    }
}

fn rule(
    names: &[&str],
    action: LinuxSeccompAction,
    errno: Option<u32>,
    args: Vec<LinuxSeccompArg>,
) -> LinuxSyscall {
    let mut s = LinuxSyscall::default();
    s.set_names(names.iter().map(|n| (*n).to_owned()).collect());
    s.set_action(action);
    s.set_errno_ret(errno);
    s.set_args(if args.is_empty() { None } else { Some(args) });
    s
}

fn arg(index: usize, value: u64, op: LinuxSeccompOperator) -> Result<LinuxSeccompArg> {
    Ok(LinuxSeccompArgBuilder::default()
        .index(index)
        .value(value)
        .op(op)
        .build()?)
}

/// Our RuntimeDefault profile for a GOARCH and a bounding capability set.
pub fn default_seccomp_profile(
    architecture: &str,
    bounding: &[Capability],
) -> Result<LinuxSeccomp> {
    let allow = LinuxSeccompAction::ScmpActAllow;
    let mut syscalls = vec![rule(data::BASE, allow, None, Vec::new())];
    for persona in data::PERSONALITIES {
        syscalls.push(rule(
            &["personality"],
            allow,
            None,
            vec![arg(0, *persona, LinuxSeccompOperator::ScmpCmpEq)?],
        ));
    }
    for (arches, names) in data::BY_ARCH {
        if arches.contains(&architecture) {
            syscalls.push(rule(names, allow, None, Vec::new()));
        }
    }
    let has = |name: &str| {
        let bare = name.trim_start_matches("CAP_");
        bounding.iter().any(|c| c.to_string() == bare)
    };
    for (cap, names) in data::BY_CAPABILITY {
        if has(cap) {
            syscalls.push(rule(names, allow, None, Vec::new()));
        }
    }
    if !has("CAP_SYS_ADMIN") {
        // s390 passes the clone flags as the second argument.
        let index = if architecture == "s390x" { 1 } else { 0 };
        syscalls.push(rule(
            &["clone"],
            allow,
            None,
            vec![arg(
                index,
                data::CLONE_NAMESPACE_FLAGS,
                LinuxSeccompOperator::ScmpCmpMaskedEq,
            )?],
        ));
        syscalls.push(rule(
            &["clone3"],
            LinuxSeccompAction::ScmpActErrno,
            Some(data::ENOSYS),
            Vec::new(),
        ));
    }
    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(LinuxSeccompAction::ScmpActErrno);
    profile.set_default_errno_ret(Some(data::EPERM));
    let arches = architectures(architecture);
    profile.set_architectures(if arches.is_empty() {
        None
    } else {
        Some(arches)
    });
    profile.set_syscalls(Some(syscalls));
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(p: &LinuxSeccomp, name: &str) -> bool {
        p.syscalls().iter().flatten().any(|s| {
            s.action() == LinuxSeccompAction::ScmpActAllow
                && s.args().is_none()
                && s.names().iter().any(|n| n == name)
        })
    }

    fn check(arch: &str, caps: &[Capability], allow: &[&str], deny: &[&str]) {
        let p = default_seccomp_profile(arch, caps).expect("profile");
        for name in allow {
            assert!(
                allowed(&p, name),
                "{arch} {caps:?}: {name} should be allowed"
            );
        }
        for name in deny {
            assert!(
                !allowed(&p, name),
                "{arch} {caps:?}: {name} should not be allowed"
            );
        }
    }

    #[test]
    fn default_profile_by_capability_and_arch() {
        check(
            "amd64",
            &[],
            &["read", "openat", "arch_prctl", "futex"],
            &[
                "mount",
                "ptrace",
                "chroot",
                "clone",
                "clone3",
                "reboot",
                "keyctl",
                "io_uring_setup",
            ],
        );
        check(
            "amd64",
            &[Capability::SysAdmin],
            &["mount", "clone", "clone3", "unshare", "setns"],
            &["ptrace"],
        );
        check(
            "amd64",
            &[Capability::SysChroot, Capability::SysPtrace],
            &["chroot", "ptrace"],
            &["mount"],
        );
        check(
            "arm64",
            &[],
            &["set_tls", "sync_file_range2"],
            &["arch_prctl"],
        );
        check("s390x", &[], &["s390_runtime_instr"], &["arch_prctl"]);
    }

    #[test]
    fn default_profile_shape() {
        let p = default_seccomp_profile("amd64", &[]).expect("profile");
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(1));
        assert_eq!(
            p.architectures().clone(),
            Some(vec![
                Arch::ScmpArchX86_64,
                Arch::ScmpArchX86,
                Arch::ScmpArchX32
            ])
        );
        let clone = p
            .syscalls()
            .iter()
            .flatten()
            .find(|s| s.names() == &["clone".to_owned()]);
        let args = clone.and_then(|c| c.args().clone()).unwrap_or_default();
        assert_eq!(args.len(), 1);
        assert_eq!(
            (args[0].index(), args[0].value(), args[0].op()),
            (0, 0x7e02_0000, LinuxSeccompOperator::ScmpCmpMaskedEq)
        );
        let clone3 = p
            .syscalls()
            .iter()
            .flatten()
            .find(|s| s.names() == &["clone3".to_owned()]);
        assert_eq!(
            clone3.map(|c| (c.action(), c.errno_ret())),
            Some((LinuxSeccompAction::ScmpActErrno, Some(38)))
        );
        let s390 = default_seccomp_profile("s390x", &[]).expect("profile");
        let clone = s390
            .syscalls()
            .iter()
            .flatten()
            .find(|s| s.names() == &["clone".to_owned()]);
        assert_eq!(
            clone.and_then(|c| c.args().clone()).map(|a| a[0].index()),
            Some(1)
        );
        assert_eq!(
            default_seccomp_profile("sparc", &[])
                .expect("profile")
                .architectures()
                .clone(),
            None
        );
    }

    fn check_string(input: &str, expected: std::result::Result<(ProfileType, &str), ()>) {
        let got = profile_from_string(input)
            .map(|p| (p.profile_type, p.localhost_ref))
            .map_err(|_| ());
        assert_eq!(
            got,
            expected.map(|(t, r)| (t as i32, r.to_owned())),
            "{input:?}"
        );
    }

    #[test]
    fn deprecated_profile_strings() {
        check_string("runtime/default", Ok((ProfileType::RuntimeDefault, "")));
        check_string("docker/default", Ok((ProfileType::RuntimeDefault, "")));
        check_string("", Ok((ProfileType::RuntimeDefault, "")));
        check_string("unconfined", Ok((ProfileType::Unconfined, "")));
        check_string(
            "localhost/etc/p.json",
            Ok((ProfileType::Localhost, "etc/p.json")),
        );
        check_string(
            "localhost//etc/p.json",
            Ok((ProfileType::Localhost, "/etc/p.json")),
        );
        check_string("bogus", Err(()));
    }
}
