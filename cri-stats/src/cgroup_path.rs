//! Where a container's or a pod's cgroup lives under a hierarchy: the OCI
//! `linux.cgroupsPath` in its cgroupfs form (`/kubepods/burstable/pod1/<id>`)
//! or its systemd form (`kubepods-pod1.slice:cri-containerd:<id>`, which runc
//! places at `/kubepods.slice/kubepods-pod1.slice/cri-containerd-<id>.scope`),
//! and a pod's `cgroup_parent` (a path, or a systemd slice name).

use std::path::{Component, Path, PathBuf};

use super::error::{Result, StatsError};

/// A cgroup relative to the root of a hierarchy (`kubepods/pod1/abc`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CgroupPath(PathBuf);

impl CgroupPath {
    /// From an OCI `linux.cgroupsPath` as runc interprets it: `slice:prefix:name`
    /// with the systemd driver, else a path (relative paths are taken from the
    /// hierarchy root).
    pub fn from_oci(cgroups_path: &str) -> Result<Self> {
        let invalid = |reason| StatsError::InvalidCgroupPath {
            path: cgroups_path.to_owned(),
            reason,
        };
        if cgroups_path.is_empty() {
            return Err(invalid("empty"));
        }
        if cgroups_path.starts_with('/') || !cgroups_path.contains(':') {
            return Self::from_relative(cgroups_path);
        }
        let parts: Vec<&str> = cgroups_path.split(':').collect();
        let [slice, prefix, name] = parts.as_slice() else {
            return Err(invalid("systemd cgroups path must be slice:prefix:name"));
        };
        if name.is_empty() {
            return Err(invalid("systemd unit name is empty"));
        }
        // runc: the default parent is system.slice; a name that is itself a
        // slice is used as is, anything else becomes `<prefix>-<name>.scope`.
        let parent = expand_slice(if slice.is_empty() {
            "system.slice"
        } else {
            slice
        })
        .map_err(invalid)?;
        let unit = if name.ends_with(".slice") {
            (*name).to_owned()
        } else if prefix.is_empty() {
            format!("{name}.scope")
        } else {
            format!("{prefix}-{name}.scope")
        };
        Self::from_relative(&format!("{parent}/{unit}"))
    }

    /// From a pod's `linux.cgroup_parent`: a systemd slice name
    /// (`kubepods-besteffort-pod1.slice`) or a cgroupfs path.
    pub fn from_cgroup_parent(parent: &str) -> Result<Self> {
        if parent.ends_with(".slice") && !parent.contains('/') {
            let path = expand_slice(parent).map_err(|reason| StatsError::InvalidCgroupPath {
                path: parent.to_owned(),
                reason,
            })?;
            return Self::from_relative(&path);
        }
        if parent.is_empty() {
            return Err(StatsError::InvalidCgroupPath {
                path: String::new(),
                reason: "empty",
            });
        }
        Self::from_relative(parent)
    }

    /// A plain path under the hierarchy root; `..` is refused.
    pub fn from_relative(path: &str) -> Result<Self> {
        let mut clean = PathBuf::new();
        for component in Path::new(path).components() {
            match component {
                Component::Normal(part) => clean.push(part),
                Component::RootDir | Component::CurDir => {}
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(StatsError::InvalidCgroupPath {
                        path: path.to_owned(),
                        reason: "must not leave the hierarchy",
                    })
                }
            }
        }
        Ok(Self(clean))
    }

    /// The path relative to the hierarchy root (no leading `/`).
    pub fn as_path(&self) -> &Path {
        &self.0
    }

    /// The cgroup inside this one (`pod1` + `abc` = `pod1/abc`).
    pub fn join(&self, child: &str) -> Result<Self> {
        let child = Self::from_relative(child)?;
        Ok(Self(self.0.join(child.0)))
    }
}

impl std::fmt::Display for CgroupPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "/{}", self.0.display())
    }
}

/// systemd's slice nesting, as runc's `ExpandSlice`:
/// `a-b-c.slice` is `/a.slice/a-b.slice/a-b-c.slice`; `-.slice` is the root.
pub fn expand_slice(slice: &str) -> std::result::Result<String, &'static str> {
    let Some(name) = slice.strip_suffix(".slice") else {
        return Err("a systemd slice must end in .slice");
    };
    if name == "-" {
        return Ok("/".to_owned());
    }
    if name.contains('/') {
        return Err("a systemd slice name must not contain /");
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for component in name.split('-') {
        if component.is_empty() {
            return Err("a systemd slice name must not have empty dash-separated parts");
        }
        path.push('/');
        path.push_str(&prefix);
        path.push_str(component);
        path.push_str(".slice");
        prefix.push_str(component);
        prefix.push('-');
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn check(input: &str, expected: Result<&str, ()>) {
        let got = CgroupPath::from_oci(input);
        match expected {
            Ok(path) => assert_eq!(got.unwrap().to_string(), path, "{input}"),
            Err(()) => assert!(got.is_err(), "{input}: {got:?}"),
        }
    }

    #[test]
    fn cgroupfs_paths() {
        check(
            "/kubepods/burstable/pod1/abc",
            Ok("/kubepods/burstable/pod1/abc"),
        );
        check("kubepods/abc", Ok("/kubepods/abc"));
        check("/kubepods/../etc", Err(()));
        check("", Err(()));
    }

    #[test]
    fn systemd_paths() {
        check(
            "kubepods-burstable-pod1.slice:cri-containerd:abc",
            Ok("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-abc.scope"),
        );
        check(
            ":cri-containerd:abc",
            Ok("/system.slice/cri-containerd-abc.scope"),
        );
        check("-.slice:p:x", Ok("/p-x.scope"));
        check("user.slice::inner.slice", Ok("/user.slice/inner.slice"));
        check("kubepods.slice:a", Err(()));
        check("kubepods--x.slice:p:n", Err(()));
        check("notaslice:p:n", Err(()));
    }

    #[test]
    fn cgroup_parent_slices_and_paths() {
        let p = CgroupPath::from_cgroup_parent("kubepods-besteffort-pod9.slice").unwrap();
        assert_eq!(
            p.to_string(),
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod9.slice"
        );
        let p = CgroupPath::from_cgroup_parent("/kubepods/besteffort/pod9").unwrap();
        assert_eq!(p.as_path(), Path::new("kubepods/besteffort/pod9"));
        assert_eq!(
            p.join("abc").unwrap().to_string(),
            "/kubepods/besteffort/pod9/abc"
        );
        assert!(CgroupPath::from_cgroup_parent("").is_err());
    }
}
