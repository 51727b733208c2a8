//! The seams to the OS: [`HostOs`] (filesystem, devices, mounts, kernel
//! features), [`UserLookup`] (the image rootfs `/etc/passwd` and
//! `/etc/group`) and [`SeLinux`] (label allocation and relabelling). The
//! builders call nothing else outside the process.

use std::{io, path::Path, path::PathBuf};

/// The kind of a device node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// A block device (`b`).
    Block,
    /// A character device (`c`).
    Char,
    /// A FIFO (`p`).
    Fifo,
}

/// A device node on the host, as `lstat` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The node's path on the host.
    pub path: PathBuf,
    /// Block, char or FIFO.
    pub kind: DeviceKind,
    /// Major number.
    pub major: i64,
    /// Minor number.
    pub minor: i64,
    /// `st_mode` without the file-type bits (`mode &^ S_IFMT`).
    pub file_mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
}

/// The mount a host path lives on and its propagation (from
/// `/proc/self/mountinfo`: the optional fields `shared:N` / `master:N`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// The mount point containing the path.
    pub mount_point: PathBuf,
    /// The mount is a shared peer (`shared:N`).
    pub shared: bool,
    /// The mount receives propagation from a master (`master:N`).
    pub slave: bool,
}

/// Facts about the host the builders need, and the one host change they
/// make (creating a missing bind-mount source, as containerd does).
/// `io::ErrorKind::NotFound` is the conventional "absent" error.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait HostOs: Send + Sync {
    /// The node's hostname (for `HOSTNAME` when the sandbox has none).
    fn hostname(&self) -> io::Result<String>;
    /// Whether `path` exists (`stat`); `Err` for errors other than absence.
    fn path_exists(&self, path: &Path) -> io::Result<bool>;
    /// `mkdir -p path` with mode 0755 (a missing bind-mount source).
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// `path` if it is not a symlink, else its fully resolved target.
    fn resolve_symlinks(&self, path: &Path) -> io::Result<PathBuf>;
    /// The mount `path` lives on.
    fn mount_info(&self, path: &Path) -> io::Result<MountInfo>;
    /// The device at `path`, or, when `path` is a directory, every device
    /// below it (skipping `pts`, `shm`, `fd`, `mqueue`, `.lxc`,
    /// `.lxd-mounts`, `.udev`, `console`, FIFOs and non-devices). A single
    /// node that is not a device is an error.
    fn lookup_device(&self, path: &Path) -> io::Result<Vec<DeviceInfo>>;
    /// Every device under the host's `/dev`, with the skips of
    /// [`HostOs::lookup_device`].
    fn host_devices(&self) -> io::Result<Vec<DeviceInfo>>;
    /// The content of a file (Localhost seccomp profiles).
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// The daemon's effective capabilities, `CAP_`-prefixed (what a
    /// privileged container and `add_capabilities: [ALL]` get).
    fn current_capabilities(&self) -> io::Result<Vec<String>>;
    /// `/sys/fs/cgroup` is cgroup v2 (unified).
    fn cgroup_v2(&self) -> bool;
    /// The memory controller accounts swap (`memory.swap.max` /
    /// `memory.memsw.limit_in_bytes` exists).
    fn swap_controller_available(&self) -> bool;
    /// The hugetlb cgroup controller is present.
    fn hugetlb_controller_present(&self) -> bool;
    /// The kernel supports seccomp filters.
    fn seccomp_supported(&self) -> bool;
    /// The host supports AppArmor (enabled in the kernel, parser present).
    fn apparmor_supported(&self) -> bool;
    /// Whether an AppArmor profile of this name is loaded.
    fn apparmor_profile_loaded(&self, name: &str) -> io::Result<bool>;
    /// The daemon itself runs inside a user namespace.
    fn running_in_user_ns(&self) -> bool;
}

/// The image rootfs user database. `Ok(None)` means the file does not
/// exist in the image.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait UserLookup: Send + Sync {
    /// The content of `<rootfs>/etc/passwd`.
    fn read_passwd(&self) -> io::Result<Option<String>>;
    /// The content of `<rootfs>/etc/group`.
    fn read_group(&self) -> io::Result<Option<String>>;
}

/// An SELinux process label and its mount label.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelinuxLabels {
    /// `process.selinuxLabel`.
    pub process: String,
    /// `linux.mountLabel`.
    pub mount: String,
}

/// SELinux label management (go-selinux's `label` package). Only called
/// when `enable_selinux` is set.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait SeLinux: Send + Sync {
    /// `label.InitLabels`: allocate a process and mount label from options
    /// such as `user:u`, `role:r`, `type:t`, `level:l` (empty labels when
    /// SELinux is disabled on the host).
    fn init_labels(&self, options: &[String]) -> io::Result<SelinuxLabels>;
    /// Release the MCS reservation of a label allocated by `init_labels`
    /// when the build fails afterwards.
    fn release_label(&self, process_label: &str);
    /// `label.Relabel(path, mount_label, shared=false)`; `ENOTSUP` is
    /// not an error.
    fn relabel(&self, path: &Path, mount_label: &str) -> io::Result<()>;
}
