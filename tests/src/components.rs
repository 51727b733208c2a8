//! Locating the host programs the harness runs (containerd, runc, CNI plugins, the registry, busybox, gcc); a missing one is an error that says how to install it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// The directory the Debian `containernetworking-plugins` package installs to.
pub const CNI_BIN_DIR: &str = "/usr/lib/cni";

/// Where `make deps` unpacks Debian's dynamically linked busybox.
pub const BUSYBOX_SHELL: &str = "/usr/local/lib/cri-tests/busybox";

/// Directories searched for programs in addition to `$PATH`: `runc` lives in
/// `/usr/sbin`, which a non-login `$PATH` often lacks.
const EXTRA_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// `$PATH` handed to every process the harness starts: containerd looks the
/// shim up in `$PATH`, and the shim looks up `runc` the same way.
pub const CHILD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A program the integration suites need on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Containerd,
    Ctr,
    ShimRuncV2,
    Runc,
    Registry,
    Busybox,
    Gcc,
    CniBridge,
    CniHostLocal,
    CniLoopback,
    CniPortmap,
    /// `ip`, to delete test bridges at teardown.
    Ip,
    /// `iptables`, which the portmap plugin runs.
    Iptables,
    /// Debian's dynamically linked busybox, whose `ash` is built without
    /// standalone applets: the shell of critest's busybox image (only the
    /// conformance run needs it, so it is not in [`Component::ALL`]).
    BusyboxShell,
}

impl Component {
    /// Every component, in the order they are checked.
    pub const ALL: [Component; 13] = [
        Component::Containerd,
        Component::Ctr,
        Component::ShimRuncV2,
        Component::Runc,
        Component::Registry,
        Component::Busybox,
        Component::Gcc,
        Component::CniBridge,
        Component::CniHostLocal,
        Component::CniLoopback,
        Component::CniPortmap,
        Component::Ip,
        Component::Iptables,
    ];

    /// What the program is called (on `$PATH` or as an absolute path).
    pub fn program(self) -> &'static str {
        match self {
            Component::Containerd => "containerd",
            Component::Ctr => "ctr",
            Component::ShimRuncV2 => "containerd-shim-runc-v2",
            Component::Runc => "runc",
            Component::Registry => "docker-registry",
            Component::Busybox => "/bin/busybox",
            Component::Gcc => "gcc",
            Component::CniBridge => "/usr/lib/cni/bridge",
            Component::CniHostLocal => "/usr/lib/cni/host-local",
            Component::CniLoopback => "/usr/lib/cni/loopback",
            Component::CniPortmap => "/usr/lib/cni/portmap",
            Component::Ip => "ip",
            Component::Iptables => "iptables",
            Component::BusyboxShell => BUSYBOX_SHELL,
        }
    }

    /// The Debian package(s) that provide it.
    pub fn package(self) -> &'static str {
        match self {
            Component::Containerd | Component::Ctr | Component::ShimRuncV2 => "containerd",
            Component::Runc => "runc",
            Component::Registry => "docker-registry",
            Component::Busybox => "busybox-static",
            // gcc alone lacks libc.a, which `gcc -static` needs.
            Component::Gcc => "gcc libc6-dev",
            Component::CniBridge
            | Component::CniHostLocal
            | Component::CniLoopback
            | Component::CniPortmap => "containernetworking-plugins",
            Component::Ip => "iproute2",
            Component::Iptables => "iptables",
            Component::BusyboxShell => "busybox",
        }
    }

    fn install_hint(self) -> String {
        if self == Component::BusyboxShell {
            return format!(
                "{BUSYBOX_SHELL} not found: run `make deps` (it unpacks the `bin/busybox` of Debian's dynamically linked `busybox` package there; installing that package would remove busybox-static)"
            );
        }
        let extra = if self == Component::Busybox {
            " (the statically linked busybox; the dynamic `busybox` package will not run inside an empty image)"
        } else {
            ""
        };
        format!(
            "{} not found: run `make deps` or `apt-get install -y {}`{extra}",
            self.program(),
            self.package()
        )
    }

    /// The program's absolute path, or an error that says how to install it.
    pub fn path(self) -> Result<PathBuf> {
        let program = self.program();
        let found = if program.starts_with('/') {
            let path = PathBuf::from(program);
            is_executable(&path).then_some(path)
        } else {
            search_path(program)
        };
        match found {
            Some(path) => Ok(path),
            None => bail!("{}", self.install_hint()),
        }
    }
}

/// Checks every component and reports all the missing ones in one error.
pub fn require_all() -> Result<()> {
    let missing: Vec<String> = Component::ALL
        .iter()
        .filter_map(|c| c.path().err().map(|e| e.to_string()))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        bail!(
            "integration test components missing:\n  {}",
            missing.join("\n  ")
        )
    }
}

pub(crate) fn search_path(program: &str) -> Option<PathBuf> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_program_names_the_package() {
        assert!(search_path("definitely-not-a-real-program-xyz").is_none());
        let hint = Component::Busybox.install_hint();
        assert!(hint.contains("apt-get install -y busybox-static"), "{hint}");
        assert!(
            hint.starts_with("/bin/busybox not found: run `make deps`"),
            "{hint}"
        );
    }
}
