//! containerd's `mount.WithReadonlyTempMount`: a rootfs given as containerd
//! mounts is mounted read-only on a fresh private dir, a closure reads from
//! it, then it is unmounted and the dir removed, also when the closure
//! fails. Blocking; needs CAP_SYS_ADMIN.

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use cri_api::containerd::Mount;
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// Mounts `mounts` read-only, in order (`mount.All`), on a new dir under
/// `parent` (both mode 0700), runs `f` on it, then unmounts and removes
/// the dir. The dir is removed only once unmounted; a failure to unmount
/// or remove is an error, after `f`'s own.
pub fn with_readonly_temp_mount<T>(
    mounts: &[Mount],
    parent: &Path,
    f: impl FnOnce(&Path) -> io::Result<T>,
) -> io::Result<T> {
    let mut dirs = std::fs::DirBuilder::new();
    dirs.mode(0o700);
    dirs.recursive(true).create(parent)?;
    let target = parent.join(format!("mount-{:016x}", rand::random::<u64>()));
    dirs.recursive(false).create(&target)?;
    let value = mounts
        .iter()
        .try_for_each(|m| mount_readonly(m, &target))
        .and_then(|()| f(&target));
    let unmounted = unmount_all(&target);
    let removed = match unmounted {
        Ok(()) => std::fs::remove_dir(&target),
        Err(_) => Ok(()),
    };
    let value = value?;
    unmounted?;
    removed?;
    Ok(value)
}

/// The flags and data of `options`, forced read-only; an overlay keeps
/// its upper dir as the top lower dir (containerd's `readonlyOverlay`).
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

/// Unmounts everything stacked on `target` (at most 16 layers); a busy one
/// is detached.
fn unmount_all(target: &Path) -> io::Result<()> {
    for _ in 0..16 {
        match umount2(target, MntFlags::empty()) {
            Ok(()) => continue,
            Err(Errno::EINVAL) | Err(Errno::ENOENT) => return Ok(()),
            Err(Errno::EBUSY) => return Ok(umount2(target, MntFlags::MNT_DETACH)?),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
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
            &[
                "index=off",
                "workdir=/s/2/work",
                "upperdir=/s/2/fs",
                "lowerdir=/s/1/fs",
            ],
            MsFlags::MS_RDONLY,
            "index=off,lowerdir=/s/2/fs:/s/1/fs",
        );
        check_options(
            "overlay",
            &["index=off", "workdir=/w", "upperdir=/u", "lowerdir=/l1:/l2"],
            MsFlags::MS_RDONLY,
            "index=off,lowerdir=/u:/l1:/l2",
        );
        check_options(
            "overlay",
            &["workdir=/w", "upperdir=/u"],
            MsFlags::MS_RDONLY,
            "lowerdir=/u",
        );
    }

    fn bind(source: &Path) -> Mount {
        Mount {
            kind: "bind".into(),
            source: source.display().to_string(),
            target: String::new(),
            options: vec!["rbind".into(), "rw".into()],
        }
    }

    #[test]
    fn the_mount_is_read_only_and_gone_afterwards() {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("seed"), "seed").unwrap();
        let parent = tempfile::tempdir().unwrap();
        let parent = parent.path().join("tmpmounts");
        let read = with_readonly_temp_mount(&[bind(src.path())], &parent, |root| {
            let write = std::fs::write(root.join("new"), "x");
            assert_eq!(write.unwrap_err().raw_os_error(), Some(Errno::EROFS as i32));
            std::fs::read_to_string(root.join("seed"))
        })
        .unwrap();
        assert_eq!(read, "seed");
        assert_eq!(std::fs::read_dir(&parent).unwrap().count(), 0);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&parent).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn a_failing_reader_still_unmounts_and_removes() {
        let src = tempfile::tempdir().unwrap();
        let parent = tempfile::tempdir().unwrap();
        let err = with_readonly_temp_mount(&[bind(src.path())], parent.path(), |_| {
            Err::<(), _>(io::Error::other("reader failed"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "reader failed");
        assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
    }
}
