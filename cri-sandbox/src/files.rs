//! Per-sandbox files, laid out as containerd's CRI plugin does (compat.md
//! §4): `<root>/sandboxes/<id>/{hostname,hosts,resolv.conf}` and the
//! `<state>/sandboxes/<id>/shm` tmpfs, created together and removed
//! together.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cri_api::ids::SandboxId;
use cri_api::v1;

use crate::mounts::{HostMounts, TmpfsFlags};

/// containerd's `defaultShmSize`: 64 MiB.
pub const DEFAULT_SHM_SIZE: u64 = 64 * 1024 * 1024;

/// Why sandbox files could not be made or removed; names the path.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("create sandbox dir {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write sandbox file {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("copy {} to {}", from.display(), to.display())]
    Copy {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("get node hostname")]
    Hostname(#[source] std::io::Error),
    #[error("host {} is not available for host ipc", path.display())]
    HostShm {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("mount sandbox shm at {}", path.display())]
    MountShm {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unmount sandbox shm at {}", path.display())]
    UnmountShm {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("remove sandbox dir {}", path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A create step failed, and so did some of the undo.
    #[error("{source} (cleanup also failed: {})", cleanup.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    WithCleanup {
        #[source]
        source: Box<FilesError>,
        cleanup: Vec<FilesError>,
    },
}

/// The sandbox's IPC namespace mode, which decides whether it gets its
/// own `/dev/shm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpcMode {
    /// Its own IPC namespace: a private shm tmpfs.
    Pod,
    /// The host's IPC namespace (`NamespaceMode::Node`): host `/dev/shm`.
    Host,
}

/// What the files are made from.
#[derive(Clone, Debug, PartialEq)]
pub struct SandboxFilesConfig {
    /// `PodSandboxConfig.hostname`; empty means the node's hostname.
    pub hostname: String,
    /// `None` copies the host's resolv.conf.
    pub dns: Option<v1::DnsConfig>,
    pub ipc: IpcMode,
}

impl SandboxFilesConfig {
    pub fn from_pod_config(config: &v1::PodSandboxConfig) -> Self {
        let host_ipc = config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.as_ref())
            .is_some_and(|n| n.ipc == v1::NamespaceMode::Node as i32);
        Self {
            hostname: config.hostname.clone(),
            dns: config.dns_config.clone(),
            ipc: if host_ipc {
                IpcMode::Host
            } else {
                IpcMode::Pod
            },
        }
    }
}

/// Where one sandbox's files live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxPaths {
    /// `<root>/sandboxes/<id>`
    pub root_dir: PathBuf,
    /// `<state>/sandboxes/<id>`
    pub state_dir: PathBuf,
    pub hostname: PathBuf,
    pub hosts: PathBuf,
    pub resolv_conf: PathBuf,
    /// `<state>/sandboxes/<id>/shm`; with host IPC the host's `/dev/shm`
    /// is used instead.
    pub shm: PathBuf,
}

/// Makes and removes sandbox files under the CRI root and state dirs.
#[derive(Clone)]
pub struct SandboxFiles {
    root_dir: PathBuf,
    state_dir: PathBuf,
    mounts: Arc<dyn HostMounts>,
    etc_hosts: PathBuf,
    etc_resolv_conf: PathBuf,
    host_dev_shm: PathBuf,
    node_hostname: Option<String>,
}

impl std::fmt::Debug for SandboxFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxFiles")
            .field("root_dir", &self.root_dir)
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

impl SandboxFiles {
    /// Files under the CRI `root_dir` and `state_dir`, copying the host's
    /// `/etc/hosts` and `/etc/resolv.conf`.
    pub fn new(
        root_dir: impl Into<PathBuf>,
        state_dir: impl Into<PathBuf>,
        mounts: Arc<dyn HostMounts>,
    ) -> Self {
        Self {
            root_dir: root_dir.into(),
            state_dir: state_dir.into(),
            mounts,
            etc_hosts: "/etc/hosts".into(),
            etc_resolv_conf: "/etc/resolv.conf".into(),
            host_dev_shm: "/dev/shm".into(),
            node_hostname: None,
        }
    }

    /// Copy these instead of `/etc/hosts` and `/etc/resolv.conf`.
    pub fn with_host_files(
        mut self,
        hosts: impl Into<PathBuf>,
        resolv_conf: impl Into<PathBuf>,
    ) -> Self {
        self.etc_hosts = hosts.into();
        self.etc_resolv_conf = resolv_conf.into();
        self
    }

    /// The host shm checked for host IPC (default `/dev/shm`).
    pub fn with_host_dev_shm(mut self, path: impl Into<PathBuf>) -> Self {
        self.host_dev_shm = path.into();
        self
    }

    /// Use this node hostname instead of asking the kernel.
    pub fn with_node_hostname(mut self, hostname: impl Into<String>) -> Self {
        self.node_hostname = Some(hostname.into());
        self
    }

    pub fn paths(&self, id: &SandboxId) -> SandboxPaths {
        let root_dir = self.root_dir.join("sandboxes").join(id.as_ref());
        let state_dir = self.state_dir.join("sandboxes").join(id.as_ref());
        SandboxPaths {
            hostname: root_dir.join("hostname"),
            hosts: root_dir.join("hosts"),
            resolv_conf: root_dir.join("resolv.conf"),
            shm: state_dir.join("shm"),
            root_dir,
            state_dir,
        }
    }

    /// Makes the dirs (0755), `hostname`, `hosts`, `resolv.conf` (0644) and,
    /// unless host IPC, the shm dir (0700) with its tmpfs. On failure,
    /// everything made is removed again.
    pub fn create(
        &self,
        id: &SandboxId,
        config: &SandboxFilesConfig,
    ) -> Result<SandboxPaths, FilesError> {
        let paths = self.paths(id);
        match self.create_steps(&paths, config) {
            Ok(()) => Ok(paths),
            Err(source) => match self.remove_paths(&paths) {
                Ok(()) => Err(source),
                Err(cleanup) => Err(FilesError::WithCleanup {
                    source: Box::new(source),
                    cleanup: vec![cleanup],
                }),
            },
        }
    }

    fn create_steps(
        &self,
        paths: &SandboxPaths,
        config: &SandboxFilesConfig,
    ) -> Result<(), FilesError> {
        make_dir(&paths.root_dir, 0o755)?;
        make_dir(&paths.state_dir, 0o755)?;

        let hostname = if config.hostname.is_empty() {
            self.node_hostname()?
        } else {
            config.hostname.clone()
        };
        write_file(&paths.hostname, format!("{hostname}\n").as_bytes())?;
        copy_file(&self.etc_hosts, &paths.hosts)?;
        let resolv = config
            .dns
            .as_ref()
            .map(render_resolv_conf)
            .unwrap_or_default();
        if resolv.is_empty() {
            copy_file(&self.etc_resolv_conf, &paths.resolv_conf)?;
        } else {
            write_file(&paths.resolv_conf, resolv.as_bytes())?;
        }

        match config.ipc {
            IpcMode::Host => {
                std::fs::metadata(&self.host_dev_shm).map_err(|source| FilesError::HostShm {
                    path: self.host_dev_shm.clone(),
                    source,
                })?;
            }
            IpcMode::Pod => {
                make_dir(&paths.shm, 0o700)?;
                let flags = TmpfsFlags {
                    noexec: true,
                    nosuid: true,
                    nodev: true,
                };
                let data = format!("mode=1777,size={DEFAULT_SHM_SIZE}");
                self.mounts
                    .mount_tmpfs("shm", &paths.shm, flags, &data)
                    .map_err(|source| FilesError::MountShm {
                        path: paths.shm.clone(),
                        source,
                    })?;
            }
        }
        Ok(())
    }

    fn node_hostname(&self) -> Result<String, FilesError> {
        if let Some(name) = &self.node_hostname {
            return Ok(name.clone());
        }
        let name = nix::unistd::gethostname().map_err(|e| FilesError::Hostname(e.into()))?;
        Ok(name.to_string_lossy().into_owned())
    }

    /// Unmounts the shm (MNT_DETACH) and removes both sandbox dirs.
    /// Missing pieces are fine, so it can be called again.
    pub fn remove(&self, id: &SandboxId) -> Result<(), FilesError> {
        self.remove_paths(&self.paths(id))
    }

    /// Unmounts the sandbox's shm tmpfs (MNT_DETACH) and keeps the dirs, as
    /// containerd's `cleanupSandboxFiles` does at StopPodSandbox. Nothing
    /// to do with host IPC or when the shm dir is gone.
    pub fn unmount_shm(&self, id: &SandboxId) -> Result<(), FilesError> {
        let shm = self.paths(id).shm;
        if std::fs::symlink_metadata(&shm).is_err() {
            return Ok(());
        }
        self.mounts
            .unmount_detach(&shm)
            .map_err(|source| FilesError::UnmountShm { path: shm, source })
    }

    fn remove_paths(&self, paths: &SandboxPaths) -> Result<(), FilesError> {
        if std::fs::symlink_metadata(&paths.shm).is_ok() {
            self.mounts
                .unmount_detach(&paths.shm)
                .map_err(|source| FilesError::UnmountShm {
                    path: paths.shm.clone(),
                    source,
                })?;
        }
        remove_dir_all(&paths.root_dir)?;
        remove_dir_all(&paths.state_dir)
    }
}

/// resolv.conf from a CRI `DNSConfig` (containerd `parseDNSOptions`):
/// `search a b`, one `nameserver x` per server, `options o1 o2`, each only
/// when there is something to say. Empty when the config is empty.
pub fn render_resolv_conf(dns: &v1::DnsConfig) -> String {
    let mut out = String::new();
    if !dns.searches.is_empty() {
        out.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    for server in &dns.servers {
        out.push_str(&format!("nameserver {server}\n"));
    }
    if !dns.options.is_empty() {
        out.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    out
}

fn make_dir(path: &Path, mode: u32) -> Result<(), FilesError> {
    let err = |source| FilesError::CreateDir {
        path: path.to_path_buf(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(err)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), FilesError> {
    let err = |source| FilesError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(path, bytes).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).map_err(err)
}

fn copy_file(from: &Path, to: &Path) -> Result<(), FilesError> {
    let err = |source| FilesError::Copy {
        from: from.to_path_buf(),
        to: to.to_path_buf(),
        source,
    };
    let bytes = std::fs::read(from).map_err(err)?;
    std::fs::write(to, bytes).map_err(err)?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o644)).map_err(err)
}

fn remove_dir_all(path: &Path) -> Result<(), FilesError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(FilesError::Remove {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::mounts::MockHostMounts;
    use mockall::predicate::{always, eq};

    fn check(dns: v1::DnsConfig, expected: &str) {
        assert_eq!(render_resolv_conf(&dns), expected);
    }

    fn dns(servers: &[&str], searches: &[&str], options: &[&str]) -> v1::DnsConfig {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        v1::DnsConfig {
            servers: own(servers),
            searches: own(searches),
            options: own(options),
        }
    }

    #[test]
    fn resolv_conf_rendering() {
        check(
            dns(&["10.96.0.10", "8.8.8.8"], &["ns.svc.cluster.local", "svc.cluster.local"], &["ndots:5", "edns0"]),
            "search ns.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\nnameserver 8.8.8.8\noptions ndots:5 edns0\n",
        );
        check(dns(&["1.1.1.1"], &[], &[]), "nameserver 1.1.1.1\n");
        check(dns(&[], &["a"], &[]), "search a\n");
        check(dns(&[], &[], &["rotate"]), "options rotate\n");
        check(dns(&[], &[], &[]), "");
    }

    struct Env {
        dir: tempfile::TempDir,
    }

    impl Env {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("host")).unwrap();
            std::fs::write(dir.path().join("host/hosts"), "127.0.0.1 localhost\n").unwrap();
            std::fs::write(
                dir.path().join("host/resolv.conf"),
                "nameserver 192.0.2.53\n",
            )
            .unwrap();
            Self { dir }
        }

        fn files(&self, mounts: MockHostMounts) -> SandboxFiles {
            let p = self.dir.path();
            SandboxFiles::new(p.join("root"), p.join("state"), Arc::new(mounts))
                .with_host_files(p.join("host/hosts"), p.join("host/resolv.conf"))
                .with_host_dev_shm(p.join("host"))
                .with_node_hostname("node-1")
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn config(hostname: &str, dns: Option<v1::DnsConfig>, ipc: IpcMode) -> SandboxFilesConfig {
        SandboxFilesConfig {
            hostname: hostname.into(),
            dns,
            ipc,
        }
    }

    #[test]
    fn create_writes_files_and_mounts_shm() {
        let env = Env::new();
        let mut mounts = MockHostMounts::new();
        let shm = env.dir.path().join("state/sandboxes/sb1/shm");
        mounts
            .expect_mount_tmpfs()
            .with(
                eq("shm"),
                eq(shm.clone()),
                eq(TmpfsFlags {
                    noexec: true,
                    nosuid: true,
                    nodev: true,
                }),
                eq("mode=1777,size=67108864"),
            )
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        let files = env.files(mounts);
        let id = SandboxId::from("sb1");
        let paths = files
            .create(
                &id,
                &config(
                    "web-0",
                    Some(dns(&["10.96.0.10"], &["svc"], &[])),
                    IpcMode::Pod,
                ),
            )
            .unwrap();
        assert_eq!(paths.root_dir, env.dir.path().join("root/sandboxes/sb1"));
        assert_eq!(paths.shm, shm);
        assert_eq!(std::fs::read_to_string(&paths.hostname).unwrap(), "web-0\n");
        assert_eq!(
            std::fs::read_to_string(&paths.hosts).unwrap(),
            "127.0.0.1 localhost\n"
        );
        assert_eq!(
            std::fs::read_to_string(&paths.resolv_conf).unwrap(),
            "search svc\nnameserver 10.96.0.10\n"
        );
        assert_eq!(mode(&paths.root_dir), 0o755);
        assert_eq!(mode(&paths.state_dir), 0o755);
        assert_eq!(mode(&paths.shm), 0o700);
        for f in [&paths.hostname, &paths.hosts, &paths.resolv_conf] {
            assert_eq!(mode(f), 0o644, "{}", f.display());
        }
    }

    #[test]
    fn node_hostname_and_host_resolv_conf_by_default_and_host_ipc_mounts_nothing() {
        let env = Env::new();
        let files = env.files(MockHostMounts::new());
        let paths = files
            .create(&SandboxId::from("sb2"), &config("", None, IpcMode::Host))
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&paths.hostname).unwrap(),
            "node-1\n"
        );
        assert_eq!(
            std::fs::read_to_string(&paths.resolv_conf).unwrap(),
            "nameserver 192.0.2.53\n"
        );
        assert!(!paths.shm.exists());
        let empty_dns = files
            .create(
                &SandboxId::from("sb3"),
                &config("h", Some(dns(&[], &[], &[])), IpcMode::Host),
            )
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&empty_dns.resolv_conf).unwrap(),
            "nameserver 192.0.2.53\n"
        );
    }

    #[test]
    fn failed_mount_removes_what_was_made() {
        let env = Env::new();
        let mut mounts = MockHostMounts::new();
        mounts
            .expect_mount_tmpfs()
            .times(1)
            .returning(|_, _, _, _| Err(std::io::Error::from_raw_os_error(libc::EPERM)));
        mounts
            .expect_unmount_detach()
            .with(always())
            .times(1)
            .returning(|_| Ok(()));
        let files = env.files(mounts);
        let err = files
            .create(&SandboxId::from("sb1"), &config("h", None, IpcMode::Pod))
            .unwrap_err();
        assert!(matches!(err, FilesError::MountShm { .. }), "{err}");
        assert!(!env.dir.path().join("root/sandboxes/sb1").exists());
        assert!(!env.dir.path().join("state/sandboxes/sb1").exists());
    }

    #[test]
    fn missing_host_files_fail_with_paths() {
        let env = Env::new();
        std::fs::remove_file(env.dir.path().join("host/hosts")).unwrap();
        let err = env
            .files(MockHostMounts::new())
            .create(&SandboxId::from("sb1"), &config("h", None, IpcMode::Host))
            .unwrap_err();
        assert!(matches!(err, FilesError::Copy { .. }), "{err}");
        assert!(!env.dir.path().join("root/sandboxes/sb1").exists());
    }

    #[test]
    fn remove_unmounts_then_deletes_and_is_idempotent() {
        let env = Env::new();
        let mut mounts = MockHostMounts::new();
        mounts
            .expect_mount_tmpfs()
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        let shm = env.dir.path().join("state/sandboxes/sb1/shm");
        mounts
            .expect_unmount_detach()
            .with(eq(shm))
            .times(1)
            .returning(|_| Ok(()));
        let files = env.files(mounts);
        let id = SandboxId::from("sb1");
        let paths = files.create(&id, &config("h", None, IpcMode::Pod)).unwrap();
        files.remove(&id).unwrap();
        assert!(!paths.root_dir.exists());
        assert!(!paths.state_dir.exists());
        files.remove(&id).unwrap();
    }

    #[test]
    fn unmount_shm_keeps_the_files() {
        let env = Env::new();
        let mut mounts = MockHostMounts::new();
        mounts.expect_mount_tmpfs().returning(|_, _, _, _| Ok(()));
        let shm = env.dir.path().join("state/sandboxes/sb1/shm");
        mounts
            .expect_unmount_detach()
            .with(eq(shm))
            .times(1)
            .returning(|_| Ok(()));
        let files = env.files(mounts);
        let id = SandboxId::from("sb1");
        let paths = files.create(&id, &config("h", None, IpcMode::Pod)).unwrap();
        files.unmount_shm(&id).unwrap();
        assert!(paths.resolv_conf.exists() && paths.shm.exists());
        // Host IPC (no shm dir) and missing sandboxes have nothing to unmount.
        files.unmount_shm(&SandboxId::from("other")).unwrap();
    }

    #[test]
    fn failed_unmount_keeps_the_dirs() {
        let env = Env::new();
        let mut mounts = MockHostMounts::new();
        mounts.expect_mount_tmpfs().returning(|_, _, _, _| Ok(()));
        mounts
            .expect_unmount_detach()
            .returning(|_| Err(std::io::Error::from_raw_os_error(libc::EBUSY)));
        let files = env.files(mounts);
        let id = SandboxId::from("sb1");
        let paths = files.create(&id, &config("h", None, IpcMode::Pod)).unwrap();
        let err = files.remove(&id).unwrap_err();
        assert!(matches!(err, FilesError::UnmountShm { .. }), "{err}");
        assert!(paths.state_dir.exists());
    }

    #[test]
    fn config_from_pod_reads_host_ipc() {
        let pod = v1::PodSandboxConfig {
            hostname: "web".into(),
            linux: Some(v1::LinuxPodSandboxConfig {
                security_context: Some(v1::LinuxSandboxSecurityContext {
                    namespace_options: Some(v1::NamespaceOption {
                        ipc: v1::NamespaceMode::Node as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            SandboxFilesConfig::from_pod_config(&pod),
            config("web", None, IpcMode::Host)
        );
        assert_eq!(
            SandboxFilesConfig::from_pod_config(&v1::PodSandboxConfig::default()).ipc,
            IpcMode::Pod
        );
    }
}
