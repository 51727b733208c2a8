//! The [`HostMounts`] seam: the privileged mount calls sandbox setup makes
//! (tmpfs for `/dev/shm`, detaching unmounts), so tests can mock them. The
//! Linux implementation is `host::LinuxMounts`.

use std::path::Path;

/// Mount flags for a tmpfs, the subset the CRI plugin uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TmpfsFlags {
    pub noexec: bool,
    pub nosuid: bool,
    pub nodev: bool,
}

/// Mounting and unmounting on the host.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait HostMounts: Send + Sync {
    /// `mount -t tmpfs -o <flags>,<data> <source> <target>`.
    fn mount_tmpfs(
        &self,
        source: &str,
        target: &Path,
        flags: TmpfsFlags,
        data: &str,
    ) -> std::io::Result<()>;
    /// `umount -l <target>` (MNT_DETACH). Not being a mount point (EINVAL)
    /// or not existing (ENOENT) is success, as containerd's `mount.Unmount`.
    fn unmount_detach(&self, target: &Path) -> std::io::Result<()>;
}
