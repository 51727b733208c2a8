//! [`LinuxHostOs`]: `cri_spec::HostOs` over the real host: `/proc`,
//! `/sys`, `stat(2)` and `/dev`, with containerd's rules for device
//! lookup (`oci.getDevices`), capabilities (`cap.Current`), mount
//! propagation (`getSourceMount`) and kernel feature probes.

use std::io::{self, ErrorKind};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use cri_spec::{DeviceInfo, DeviceKind, HostOs, MountInfo};
use nix::sys::stat::{major, minor, SFlag};
use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};

/// Directory names `getDevices` does not descend into.
const SKIPPED_DEVICE_DIRS: [&str; 7] =
    ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];

/// The host as the spec builders see it. The paths of the probed files
/// are fields so tests can point them at a temp dir.
#[derive(Clone, Debug)]
pub struct LinuxHostOs {
    proc_self: PathBuf,
    sys_fs_cgroup: PathBuf,
    dev: PathBuf,
}

impl Default for LinuxHostOs {
    fn default() -> Self {
        Self {
            proc_self: "/proc/self".into(),
            sys_fs_cgroup: "/sys/fs/cgroup".into(),
            dev: "/dev".into(),
        }
    }
}

impl LinuxHostOs {
    pub fn new() -> Self {
        Self::default()
    }

    fn proc_status(&self) -> io::Result<String> {
        std::fs::read_to_string(self.proc_self.join("status"))
    }
}

/// The daemon's own `/proc/self/oom_score_adj`, which
/// `restrict_oom_score_adj` keeps container scores from going below.
pub fn daemon_oom_score_adj() -> io::Result<i32> {
    let text = std::fs::read_to_string("/proc/self/oom_score_adj")?;
    text.trim().parse().map_err(|e| {
        io::Error::new(
            ErrorKind::InvalidData,
            format!("oom_score_adj {text:?}: {e}"),
        )
    })
}

/// The names of the bits set in a capability mask (`cap.FromBitmap`);
/// bits without a known name are skipped.
pub fn capability_names(mask: u64) -> Vec<String> {
    (0..64)
        .filter(|bit| (mask >> bit) & 1 == 1)
        .filter_map(|bit| {
            cri_spec::KNOWN_CAPABILITIES
                .get(bit)
                .map(|n| (*n).to_owned())
        })
        .collect()
}

/// `CapEff` of a `/proc/<pid>/status` text.
fn effective_mask(status: &str) -> io::Result<u64> {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .ok_or_else(|| io::Error::new(ErrorKind::InvalidData, "no CapEff in /proc/self/status"))?;
    u64::from_str_radix(line.trim(), 16)
        .map_err(|e| io::Error::new(ErrorKind::InvalidData, format!("CapEff {line:?}: {e}")))
}

/// One `/proc/self/mountinfo` line: mount point and propagation.
fn parse_mountinfo_line(line: &str) -> Option<MountInfo> {
    let fields: Vec<&str> = line.split(' ').collect();
    let mount_point = unescape_octal(fields.get(4)?);
    let optional = fields.iter().skip(6).take_while(|f| **f != "-");
    let (mut shared, mut slave) = (false, false);
    for field in optional {
        shared |= field.starts_with("shared:");
        slave |= field.starts_with("master:");
    }
    Some(MountInfo {
        mount_point: PathBuf::from(mount_point),
        shared,
        slave,
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|s| u8::from_str_radix(s, 8).ok());
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount (of those in `mountinfo`) with the longest mount point that
/// contains `path`.
fn containing_mount(mountinfo: &str, path: &Path) -> Option<MountInfo> {
    mountinfo
        .lines()
        .filter_map(parse_mountinfo_line)
        .filter(|m| path.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.components().count())
}

/// containerd's `DeviceFromPath`: the node at `path` (not following a
/// final symlink); `Ok(None)` when it is not a device.
fn device_from_path(path: &Path) -> io::Result<Option<DeviceInfo>> {
    let meta = std::fs::symlink_metadata(path)?;
    let mode = meta.mode();
    let kind = match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFBLK => DeviceKind::Block,
        SFlag::S_IFCHR => DeviceKind::Char,
        SFlag::S_IFIFO => DeviceKind::Fifo,
        _ => return Ok(None),
    };
    let rdev = meta.rdev();
    Ok(Some(DeviceInfo {
        path: path.to_path_buf(),
        kind,
        major: major(rdev) as i64,
        minor: minor(rdev) as i64,
        file_mode: mode & !SFlag::S_IFMT.bits(),
        uid: meta.uid(),
        gid: meta.gid(),
    }))
}

/// containerd's `getDevices`: a single node, or every device below a
/// directory with the usual skips.
fn devices_under(path: &Path) -> io::Result<Vec<DeviceInfo>> {
    if !std::fs::metadata(path)?.is_dir() {
        return match device_from_path(path)? {
            Some(d) => Ok(vec![d]),
            None => Err(io::Error::new(
                ErrorKind::InvalidInput,
                format!("{} is not a device node", path.display()),
            )),
        };
    }
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(path)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let child = entry.path();
        if entry.file_type()?.is_dir() {
            if !SKIPPED_DEVICE_DIRS.contains(&name.as_ref()) {
                out.extend(devices_under(&child)?);
            }
            continue;
        }
        if name == "console" {
            continue;
        }
        match device_from_path(&child) {
            Ok(Some(d)) if d.kind != DeviceKind::Fifo => out.push(d),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

impl HostOs for LinuxHostOs {
    fn hostname(&self) -> io::Result<String> {
        let name = nix::unistd::gethostname().map_err(io::Error::from)?;
        Ok(name.to_string_lossy().into_owned())
    }

    fn path_exists(&self, path: &Path) -> io::Result<bool> {
        match std::fs::metadata(path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(path)
    }

    fn resolve_symlinks(&self, path: &Path) -> io::Result<PathBuf> {
        if std::fs::symlink_metadata(path)?.file_type().is_symlink() {
            std::fs::canonicalize(path)
        } else {
            Ok(path.to_path_buf())
        }
    }

    fn mount_info(&self, path: &Path) -> io::Result<MountInfo> {
        let resolved = std::fs::canonicalize(path)?;
        let info = std::fs::read_to_string(self.proc_self.join("mountinfo"))?;
        containing_mount(&info, &resolved).ok_or_else(|| {
            io::Error::new(
                ErrorKind::NotFound,
                format!("no mount contains {}", resolved.display()),
            )
        })
    }

    fn lookup_device(&self, path: &Path) -> io::Result<Vec<DeviceInfo>> {
        devices_under(path)
    }

    fn host_devices(&self) -> io::Result<Vec<DeviceInfo>> {
        devices_under(&self.dev)
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn current_capabilities(&self) -> io::Result<Vec<String>> {
        Ok(capability_names(effective_mask(&self.proc_status()?)?))
    }

    fn cgroup_v2(&self) -> bool {
        statfs(&self.sys_fs_cgroup).is_ok_and(|fs| fs.filesystem_type() == CGROUP2_SUPER_MAGIC)
    }

    fn swap_controller_available(&self) -> bool {
        let probe = if self.cgroup_v2() {
            self.sys_fs_cgroup.join("memory.swap.max")
        } else {
            self.sys_fs_cgroup
                .join("memory/memory.memsw.limit_in_bytes")
        };
        probe.exists()
    }

    fn hugetlb_controller_present(&self) -> bool {
        if self.cgroup_v2() {
            std::fs::read_to_string(self.sys_fs_cgroup.join("cgroup.controllers"))
                .is_ok_and(|c| c.split_whitespace().any(|n| n == "hugetlb"))
        } else {
            self.sys_fs_cgroup.join("hugetlb").exists()
        }
    }

    fn seccomp_supported(&self) -> bool {
        self.proc_status()
            .is_ok_and(|s| s.lines().any(|l| l.starts_with("Seccomp:")))
    }

    fn apparmor_supported(&self) -> bool {
        Path::new("/sys/kernel/security/apparmor").exists()
            && std::fs::read("/sys/module/apparmor/parameters/enabled")
                .is_ok_and(|b| b.len() > 1 && b[0] == b'Y')
    }

    fn apparmor_profile_loaded(&self, name: &str) -> io::Result<bool> {
        let profiles = match std::fs::read_to_string("/sys/kernel/security/apparmor/profiles") {
            Ok(p) => p,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let prefix = format!("{name} ");
        Ok(profiles.lines().any(|l| l.starts_with(&prefix)))
    }

    fn running_in_user_ns(&self) -> bool {
        std::fs::read_to_string(self.proc_self.join("uid_map")).is_ok_and(|m| {
            let fields: Vec<&str> = m.split_whitespace().collect();
            fields != ["0", "0", "4294967295"]
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn check_caps(mask: u64, expected: &[&str]) {
        assert_eq!(capability_names(mask), expected, "{mask:#x}");
    }

    #[test]
    fn capability_masks() {
        check_caps(0, &[]);
        check_caps(0b101, &["CAP_CHOWN", "CAP_DAC_READ_SEARCH"]);
        check_caps(1 << 21, &["CAP_SYS_ADMIN"]);
        check_caps(1 << 40 | 1 << 50, &["CAP_CHECKPOINT_RESTORE"]);
        assert_eq!(capability_names(0x1ff_ffff_ffff).len(), 41);
    }

    #[test]
    fn effective_mask_from_status() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t00000000a80425fb\n";
        assert_eq!(effective_mask(status).unwrap(), 0xa80425fb);
        assert!(effective_mask("Name: x\n").is_err());
    }

    #[test]
    fn mountinfo_propagation_and_longest_match() {
        let info = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:26 / /var/lib rw master:5 - tmpfs tmpfs rw
31 30 0:27 / /var/lib/my\\040dir rw - tmpfs tmpfs rw
";
        let m = containing_mount(info, Path::new("/var/lib/x")).unwrap();
        assert_eq!(
            m,
            MountInfo {
                mount_point: "/var/lib".into(),
                shared: false,
                slave: true
            }
        );
        let m = containing_mount(info, Path::new("/etc")).unwrap();
        assert!(m.shared && !m.slave);
        let m = containing_mount(info, Path::new("/var/lib/my dir/a")).unwrap();
        assert_eq!(m.mount_point, PathBuf::from("/var/lib/my dir"));
    }

    #[test]
    fn real_host_probes() {
        let os = LinuxHostOs::new();
        assert!(os.path_exists(Path::new("/")).unwrap());
        assert!(!os.path_exists(Path::new("/no/such/path")).unwrap());
        assert!(!os.hostname().unwrap().is_empty());
        let null = os.lookup_device(Path::new("/dev/null")).unwrap();
        assert_eq!(
            (null[0].kind, null[0].major, null[0].minor),
            (DeviceKind::Char, 1, 3)
        );
        assert!(os.lookup_device(Path::new("/etc/hostname")).is_err());
        assert!(os
            .host_devices()
            .unwrap()
            .iter()
            .any(|d| d.path == Path::new("/dev/null")));
        assert!(!os.current_capabilities().unwrap().is_empty());
        assert_eq!(
            os.mount_info(Path::new("/")).unwrap().mount_point,
            PathBuf::from("/")
        );
        daemon_oom_score_adj().unwrap();
    }

    #[test]
    fn resolve_symlinks_only_follows_links() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t");
        std::fs::write(&target, "").unwrap();
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let os = LinuxHostOs::new();
        assert_eq!(
            os.resolve_symlinks(&link).unwrap(),
            std::fs::canonicalize(&target).unwrap()
        );
        assert_eq!(os.resolve_symlinks(&target).unwrap(), target);
    }
}
