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
use cri_sandbox::host::with_readonly_temp_mount;

/// The most symlinks followed while resolving one path (Linux's limit).
const MAX_SYMLINKS: usize = 255;

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
    with_readonly_temp_mount(mounts, tmp_parent, |root| {
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
