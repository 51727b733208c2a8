//! [`LinuxMounts`]: `HostMounts` over mount(2)/umount2(2).

use std::path::Path;

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::mounts::{HostMounts, TmpfsFlags};

/// Mounts with the real syscalls; needs CAP_SYS_ADMIN.
#[derive(Clone, Copy, Debug, Default)]
pub struct LinuxMounts;

impl HostMounts for LinuxMounts {
    fn mount_tmpfs(
        &self,
        source: &str,
        target: &Path,
        flags: TmpfsFlags,
        data: &str,
    ) -> std::io::Result<()> {
        let mut ms = MsFlags::empty();
        ms.set(MsFlags::MS_NOEXEC, flags.noexec);
        ms.set(MsFlags::MS_NOSUID, flags.nosuid);
        ms.set(MsFlags::MS_NODEV, flags.nodev);
        mount(Some(source), target, Some("tmpfs"), ms, Some(data)).map_err(std::io::Error::from)
    }

    fn unmount_detach(&self, target: &Path) -> std::io::Result<()> {
        unmount_detach(target)
    }
}

/// umount2(MNT_DETACH), EINVAL (not a mount) and ENOENT being success.
pub(crate) fn unmount_detach(target: &Path) -> std::io::Result<()> {
    loop {
        match umount2(target, MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
