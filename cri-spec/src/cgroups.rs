//! The cgroups path: `parent/id` for the cgroupfs driver and
//! `<slice>:cri-containerd:<id>` for the systemd driver (chosen, as in
//! containerd, by a parent whose last element ends in `.slice`).

use crate::mounts::clean_path;

/// The prefix containerd uses in systemd cgroup paths (kept for
/// compatibility with containers created by containerd).
pub(crate) const SYSTEMD_PREFIX: &str = "cri-containerd";

/// containerd's `getCgroupsPath(cgroupsParent, id)`.
pub fn cgroups_path(parent: &str, id: &str) -> String {
    let base = go_path_base(parent);
    if base.ends_with(".slice") {
        return format!("{base}:{SYSTEMD_PREFIX}:{id}");
    }
    clean_path(&format!("{parent}/{id}"))
}

/// Go's `path.Base`: the last element, trailing slashes removed; `.` for
/// an empty path and `/` for a path of slashes.
fn go_path_base(path: &str) -> &str {
    if path.is_empty() {
        return ".";
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/";
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(parent: &str, expected: &str) {
        assert_eq!(cgroups_path(parent, "abc"), expected, "{parent:?}");
    }

    #[test]
    fn cgroupfs_and_systemd_paths() {
        check(
            "/kubepods/besteffort/pod123",
            "/kubepods/besteffort/pod123/abc",
        );
        check(
            "/kubepods/besteffort/pod123/",
            "/kubepods/besteffort/pod123/abc",
        );
        check("kubepods", "kubepods/abc");
        check(
            "kubepods-besteffort-pod123.slice",
            "kubepods-besteffort-pod123.slice:cri-containerd:abc",
        );
        check(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice",
            "kubepods-burstable-pod1.slice:cri-containerd:abc",
        );
        check("a.slice/", "a.slice:cri-containerd:abc");
    }
}
