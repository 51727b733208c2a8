//! Test fakes of the OS seams: a configurable [`FakeHost`], an in-memory
//! user database and a recording SELinux.

use std::{
    collections::{HashMap, HashSet},
    io,
    path::{Path, PathBuf},
    sync::Mutex,
};

use crate::host::{DeviceInfo, DeviceKind, HostOs, MountInfo, SeLinux, SelinuxLabels, UserLookup};

/// Every capability name the fake daemon has.
pub(crate) const ALL_CAPS: &[&str] = &crate::capabilities::KNOWN_CAPABILITIES;

/// A char device for tests.
pub(crate) fn char_device(path: &str, major: i64, minor: i64) -> DeviceInfo {
    DeviceInfo {
        path: path.into(),
        kind: DeviceKind::Char,
        major,
        minor,
        file_mode: 0o666,
        uid: 0,
        gid: 0,
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

/// A host whose facts are plain fields.
pub(crate) struct FakeHost {
    pub hostname: String,
    pub missing: HashSet<PathBuf>,
    pub stat_fails: HashSet<PathBuf>,
    pub created: Mutex<Vec<PathBuf>>,
    pub symlinks: HashMap<PathBuf, PathBuf>,
    pub mounts: HashMap<PathBuf, MountInfo>,
    pub devices: HashMap<PathBuf, Vec<DeviceInfo>>,
    pub host_devices: Vec<DeviceInfo>,
    pub files: HashMap<PathBuf, Vec<u8>>,
    pub caps: Vec<String>,
    pub cgroup_v2: bool,
    pub swap: bool,
    pub hugetlb: bool,
    pub seccomp: bool,
    pub apparmor: bool,
    pub apparmor_profiles: Vec<String>,
    pub userns: bool,
}

impl Default for FakeHost {
    fn default() -> Self {
        Self {
            hostname: "node-1".into(),
            missing: HashSet::new(),
            stat_fails: HashSet::new(),
            created: Mutex::new(Vec::new()),
            symlinks: HashMap::new(),
            mounts: HashMap::new(),
            devices: HashMap::new(),
            host_devices: vec![
                char_device("/dev/null", 1, 3),
                char_device("/dev/fuse", 10, 229),
            ],
            files: HashMap::new(),
            caps: ALL_CAPS.iter().map(|c| (*c).to_owned()).collect(),
            cgroup_v2: true,
            swap: true,
            hugetlb: true,
            seccomp: true,
            apparmor: true,
            apparmor_profiles: vec!["my-profile".into()],
            userns: false,
        }
    }
}

impl FakeHost {
    pub(crate) fn created(&self) -> Vec<PathBuf> {
        self.created.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl HostOs for FakeHost {
    fn hostname(&self) -> io::Result<String> {
        Ok(self.hostname.clone())
    }
    fn path_exists(&self, path: &Path) -> io::Result<bool> {
        if self.stat_fails.contains(path) {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "denied"));
        }
        Ok(!self.missing.contains(path))
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        if let Ok(mut c) = self.created.lock() {
            c.push(path.to_path_buf());
        }
        Ok(())
    }
    fn resolve_symlinks(&self, path: &Path) -> io::Result<PathBuf> {
        if self.missing.contains(path) && !self.created().iter().any(|c| c == path) {
            return Err(not_found(path));
        }
        Ok(self
            .symlinks
            .get(path)
            .cloned()
            .unwrap_or_else(|| path.to_path_buf()))
    }
    fn mount_info(&self, path: &Path) -> io::Result<MountInfo> {
        Ok(self.mounts.get(path).cloned().unwrap_or(MountInfo {
            mount_point: "/".into(),
            shared: false,
            slave: false,
        }))
    }
    fn lookup_device(&self, path: &Path) -> io::Result<Vec<DeviceInfo>> {
        self.devices
            .get(path)
            .cloned()
            .ok_or_else(|| not_found(path))
    }
    fn host_devices(&self) -> io::Result<Vec<DeviceInfo>> {
        Ok(self.host_devices.clone())
    }
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.files.get(path).cloned().ok_or_else(|| not_found(path))
    }
    fn current_capabilities(&self) -> io::Result<Vec<String>> {
        Ok(self.caps.clone())
    }
    fn cgroup_v2(&self) -> bool {
        self.cgroup_v2
    }
    fn swap_controller_available(&self) -> bool {
        self.swap
    }
    fn hugetlb_controller_present(&self) -> bool {
        self.hugetlb
    }
    fn seccomp_supported(&self) -> bool {
        self.seccomp
    }
    fn apparmor_supported(&self) -> bool {
        self.apparmor
    }
    fn apparmor_profile_loaded(&self, name: &str) -> io::Result<bool> {
        Ok(self.apparmor_profiles.iter().any(|p| p == name))
    }
    fn running_in_user_ns(&self) -> bool {
        self.userns
    }
}

/// An image user database.
pub(crate) struct Users {
    passwd: Option<String>,
    group: Option<String>,
    fail: bool,
}

impl Users {
    pub(crate) fn new(passwd: Option<&str>, group: Option<&str>) -> Self {
        Self {
            passwd: passwd.map(str::to_owned),
            group: group.map(str::to_owned),
            fail: false,
        }
    }
    pub(crate) fn failing() -> Self {
        Self {
            passwd: None,
            group: None,
            fail: true,
        }
    }
}

impl UserLookup for Users {
    fn read_passwd(&self) -> io::Result<Option<String>> {
        if self.fail {
            return Err(io::Error::other("io error"));
        }
        Ok(self.passwd.clone())
    }
    fn read_group(&self) -> io::Result<Option<String>> {
        if self.fail {
            return Err(io::Error::other("io error"));
        }
        Ok(self.group.clone())
    }
}

/// SELinux that derives labels from the options and records calls.
#[derive(Default)]
pub(crate) struct FakeSelinux {
    pub relabeled: Mutex<Vec<(PathBuf, String)>>,
    pub released: Mutex<Vec<String>>,
}

impl FakeSelinux {
    pub(crate) fn relabeled(&self) -> Vec<(PathBuf, String)> {
        self.relabeled.lock().map(|r| r.clone()).unwrap_or_default()
    }
    pub(crate) fn released(&self) -> Vec<String> {
        self.released.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl SeLinux for FakeSelinux {
    fn init_labels(&self, options: &[String]) -> io::Result<SelinuxLabels> {
        let get = |key: &str, default: &str| {
            options
                .iter()
                .find_map(|o| o.strip_prefix(&format!("{key}:")).map(str::to_owned))
                .unwrap_or_else(|| default.to_owned())
        };
        let (user, role, typ, level) = (
            get("user", "system_u"),
            get("role", "system_r"),
            get("type", "container_t"),
            get("level", "s0:c1,c2"),
        );
        Ok(SelinuxLabels {
            process: format!("{user}:{role}:{typ}:{level}"),
            mount: format!("system_u:object_r:container_file_t:{level}"),
        })
    }
    fn release_label(&self, process_label: &str) {
        if let Ok(mut r) = self.released.lock() {
            r.push(process_label.to_owned());
        }
    }
    fn relabel(&self, path: &Path, mount_label: &str) -> io::Result<()> {
        if let Ok(mut r) = self.relabeled.lock() {
            r.push((path.to_path_buf(), mount_label.to_owned()));
        }
        Ok(())
    }
}
