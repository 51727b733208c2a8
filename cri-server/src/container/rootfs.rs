//! Image volume contents (containerd's `WithVolumes`): the new rootfs
//! snapshot is mounted read-only on a temporary dir
//! (`mount.WithReadonlyTempMount`), and what the image has at each volume
//! path is copied into the volume's empty host dir with its modes and
//! owners (`copyExistingContents`, `fs.CopyDir`). Paths are resolved
//! inside the rootfs (`fs.RootPath`), so symlinks cannot leave it.
//! Blocking: run it on a blocking thread.

use std::ffi::OsString;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use cri_api::containerd::Mount;
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// The most symlinks followed while resolving one path (Linux's limit).
const MAX_SYMLINKS: usize = 255;

/// `(flags, data)` of a containerd mount's options, forced read-only; an
/// overlay's upper dir becomes its top lower dir (`readonlyMounts`).
fn readonly_options(kind: &str, options: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::MS_RDONLY;
    let mut data = Vec::new();
    let mut upper = None;
    for option in options {
        match option.as_str() {
            "ro" | "rw" => {}
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            o if kind == "overlay" && o.starts_with("upperdir=") => {
                upper = o.strip_prefix("upperdir=").map(str::to_owned);
            }
            o if kind == "overlay" && o.starts_with("workdir=") => {}
            o => data.push(o.to_owned()),
        }
    }
    if let Some(upper) = upper {
        match data.iter_mut().find(|d| d.starts_with("lowerdir=")) {
            Some(lower) => *lower = format!("lowerdir={upper}:{}", &lower["lowerdir=".len()..]),
            None => data.push(format!("lowerdir={upper}")),
        }
    }
    (flags, data.join(","))
}

fn mount_readonly(m: &Mount, target: &Path) -> io::Result<()> {
    let (flags, data) = readonly_options(&m.kind, &m.options);
    let fstype = (!flags.contains(MsFlags::MS_BIND)).then_some(m.kind.as_str());
    let data = (!data.is_empty()).then_some(data.as_str());
    mount(Some(m.source.as_str()), target, fstype, flags, data).map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!(
                "mount {} ({}) on {}: {e}",
                m.source,
                m.kind,
                target.display()
            ),
        )
    })?;
    if flags.contains(MsFlags::MS_BIND) {
        // A bind mount ignores MS_RDONLY until remounted.
        let remount = flags | MsFlags::MS_REMOUNT;
        mount(None::<&str>, target, None::<&str>, remount, None::<&str>)?;
    }
    Ok(())
}

fn unmount_all(target: &Path) -> io::Result<()> {
    loop {
        match umount2(target, MntFlags::empty()) {
            Ok(()) => continue,
            Err(Errno::EINVAL) | Err(Errno::ENOENT) => return Ok(()),
            Err(Errno::EBUSY) => return Ok(umount2(target, MntFlags::MNT_DETACH)?),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Mounts `mounts` read-only on a new dir under `tmp_parent`, runs `f` on
/// it, then unmounts and removes the dir (also when `f` fails).
pub fn with_readonly_mount<T>(
    mounts: &[Mount],
    tmp_parent: &Path,
    f: impl FnOnce(&Path) -> io::Result<T>,
) -> io::Result<T> {
    std::fs::create_dir_all(tmp_parent)?;
    let target = tmp_parent.join(format!("volumes-{:016x}", rand::random::<u64>()));
    std::fs::create_dir(&target)?;
    let value = mounts
        .iter()
        .try_for_each(|m| mount_readonly(m, &target))
        .and_then(|()| f(&target));
    let unmounted = unmount_all(&target);
    if unmounted.is_ok() {
        if let Err(e) = std::fs::remove_dir(&target) {
            tracing::warn!(path = %target.display(), error = %e, "remove temp mount dir");
        }
    }
    let value = value?;
    unmounted?;
    Ok(value)
}

/// `path` inside `root` with every symlink resolved inside `root`
/// (continuity's `fs.RootPath`): `..` and absolute targets never leave it.
pub fn root_path(root: &Path, path: &Path) -> io::Result<PathBuf> {
    /// What is left to walk, last component first.
    fn push_components(pending: &mut Vec<Option<OsString>>, p: &Path) {
        for c in p.components().rev() {
            match c {
                Component::Normal(name) => pending.push(Some(name.to_os_string())),
                Component::ParentDir => pending.push(None),
                Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
            }
        }
    }
    let mut resolved = PathBuf::new();
    let mut pending = Vec::new();
    push_components(&mut pending, path);
    let mut links = 0;
    while let Some(next) = pending.pop() {
        let Some(name) = next else {
            resolved.pop();
            continue;
        };
        let candidate = resolved.join(&name);
        let full = root.join(&candidate);
        match std::fs::symlink_metadata(&full) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(io::Error::other(format!(
                        "too many symlinks in {}",
                        path.display()
                    )));
                }
                let target = std::fs::read_link(&full)?;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                push_components(&mut pending, &target);
            }
            _ => resolved = candidate,
        }
    }
    Ok(root.join(resolved))
}

/// containerd's `copyExistingContents`: `dest` must be empty; `source`'s
/// tree is copied into it, and `dest` takes `source`'s mode and owner.
pub fn copy_existing_contents(source: &Path, dest: &Path) -> io::Result<()> {
    if std::fs::read_dir(dest)?.next().is_some() {
        return Err(io::Error::other(format!(
            "volume at {} is not initially empty",
            dest.display()
        )));
    }
    copy_tree(source, dest)
}

fn copy_tree(source: &Path, dest: &Path) -> io::Result<()> {
    copy_info(&std::fs::symlink_metadata(source)?, dest)?;
    for entry in std::fs::read_dir(source)? {
        let entry = entry?;
        let (from, to) = (entry.path(), dest.join(entry.file_name()));
        let meta = std::fs::symlink_metadata(&from)?;
        let kind = meta.file_type();
        if kind.is_dir() {
            std::fs::create_dir(&to)?;
            copy_tree(&from, &to)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
            std::os::unix::fs::lchown(&to, Some(meta.uid()), Some(meta.gid()))?;
        } else if kind.is_file() {
            std::fs::copy(&from, &to)?;
            copy_info(&meta, &to)?;
        } else {
            tracing::debug!(path = %from.display(), "skipping special file in image volume");
        }
    }
    Ok(())
}

fn copy_info(meta: &std::fs::Metadata, path: &Path) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(meta.uid()), Some(meta.gid()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
}

/// `WithVolumes`: for each `(host dir, container path)`, what the rootfs
/// at `mounts` has at the container path is copied into the host dir.
pub fn copy_image_volumes(
    mounts: &[Mount],
    tmp_parent: &Path,
    volumes: &[(PathBuf, String)],
) -> io::Result<()> {
    with_readonly_mount(mounts, tmp_parent, |root| {
        for (host, container_path) in volumes {
            let source = root_path(root, Path::new(container_path))?;
            if std::fs::symlink_metadata(&source).is_err() {
                // Declared in the image but not in its rootfs.
                continue;
            }
            copy_existing_contents(&source, host)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn check_options(kind: &str, options: &[&str], flags: MsFlags, data: &str) {
        let options: Vec<String> = options.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(readonly_options(kind, &options), (flags, data.to_owned()));
    }

    #[test]
    fn options_become_read_only() {
        check_options(
            "bind",
            &["rbind", "rw"],
            MsFlags::MS_RDONLY | MsFlags::MS_BIND | MsFlags::MS_REC,
            "",
        );
        check_options(
            "overlay",
            &["index=off", "workdir=/w", "upperdir=/u", "lowerdir=/l1:/l2"],
            MsFlags::MS_RDONLY,
            "index=off,lowerdir=/u:/l1:/l2",
        );
    }

    #[test]
    fn symlinks_stay_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("real/data")).unwrap();
        std::os::unix::fs::symlink("/real/data", r.join("data")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", r.join("escape")).unwrap();
        assert_eq!(
            root_path(r, Path::new("/data")).unwrap(),
            r.join("real/data")
        );
        assert_eq!(
            root_path(r, Path::new("/escape/x")).unwrap(),
            r.join("etc/x")
        );
        std::os::unix::fs::symlink("/loop2", r.join("loop1")).unwrap();
        std::os::unix::fs::symlink("/loop1", r.join("loop2")).unwrap();
        assert!(root_path(r, Path::new("/loop1")).is_err());
    }

    #[test]
    fn contents_modes_and_links_are_copied_into_an_empty_dir() {
        let src = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        std::fs::create_dir(src.path().join("sub")).unwrap();
        std::fs::write(src.path().join("sub/seed"), "seed").unwrap();
        std::fs::set_permissions(
            src.path().join("sub/seed"),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        std::os::unix::fs::symlink("sub/seed", src.path().join("link")).unwrap();
        std::fs::set_permissions(src.path(), std::fs::Permissions::from_mode(0o751)).unwrap();
        copy_existing_contents(src.path(), dest.path()).unwrap();
        let d = dest.path();
        assert_eq!(std::fs::read_to_string(d.join("sub/seed")).unwrap(), "seed");
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&d.join("sub/seed")), 0o640);
        assert_eq!(mode(d), 0o751);
        assert_eq!(
            std::fs::read_link(d.join("link")).unwrap(),
            Path::new("sub/seed")
        );
        // A second copy refuses: the volume is not empty any more.
        assert!(copy_existing_contents(src.path(), d).is_err());
    }
}
