//! [`LinuxNetns`]: network namespaces pinned by bind mounts, as
//! containerd's `pkg/netns/netns_linux.go`: a fresh `cni-<uuid>` file in the
//! netns dir, a new OS thread that unshares CLONE_NEWNET and bind-mounts its
//! `/proc/<pid>/task/<tid>/ns/net` onto the file.

use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::socket::{AddressFamily, SockFlag, SockType};
use nix::sys::statfs::{statfs, Statfs, NSFS_MAGIC, PROC_SUPER_MAGIC};

use super::mounts::unmount_detach;
use crate::netns::{netns_name, NetNs, NetnsError, NetnsManager, DEFAULT_NETNS_DIR};

/// Whether the netns dir itself is made a shared mount point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DirPropagation {
    /// Leave the dir as it is (containerd's behaviour).
    Unchanged,
    /// `mount --make-rshared` the dir, bind-mounting it onto itself first
    /// if it is not a mount point (iproute2 / CNI plugins' testutils).
    Shared,
}

/// Pins network namespaces under one directory.
#[derive(Clone, Debug)]
pub struct LinuxNetns {
    dir: PathBuf,
    propagation: DirPropagation,
}

impl Default for LinuxNetns {
    fn default() -> Self {
        Self::new(DEFAULT_NETNS_DIR)
    }
}

impl LinuxNetns {
    /// Namespaces under `dir`: `/var/run/netns`, or `<state>/netns` with
    /// `netns_mounts_under_state_dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            propagation: DirPropagation::Unchanged,
        }
    }

    /// Also make the dir a recursively shared mount (self bind mount if
    /// needed), so pins propagate into mount namespaces that got the dir
    /// mounted. containerd 1.7/2.x do not do this; iproute2 does.
    pub fn with_shared_dir(mut self) -> Self {
        self.propagation = DirPropagation::Shared;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn create_blocking(&self) -> Result<NetNs, NetnsError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&self.dir)
            .map_err(|source| NetnsError::CreateDir {
                path: self.dir.clone(),
                source,
            })?;
        if self.propagation == DirPropagation::Shared {
            make_rshared(&self.dir)?;
        }
        let path = self.dir.join(netns_name(&rand::random()));
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o666)
            .open(&path)
            .map_err(|source| NetnsError::CreateFile {
                path: path.clone(),
                source,
            })?;
        if let Err(e) = pin_new_netns(&path) {
            if let Err(rm) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %rm, "remove netns mount point after failure");
            }
            return Err(e);
        }
        Ok(NetNs::new(path))
    }
}

fn make_rshared(dir: &Path) -> Result<(), NetnsError> {
    let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
    let err = |e: Errno| NetnsError::ShareDir {
        path: dir.to_path_buf(),
        source: e.into(),
    };
    match mount(None::<&str>, dir, Some("none"), shared, None::<&str>) {
        Ok(()) => Ok(()),
        Err(Errno::EINVAL) => {
            mount(
                Some(dir),
                dir,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(err)?;
            mount(None::<&str>, dir, Some("none"), shared, None::<&str>).map_err(err)
        }
        Err(e) => Err(err(e)),
    }
}

/// In a new OS thread (never a runtime worker, whose namespace must not
/// change): unshare the network namespace and bind-mount it onto `path`.
/// The thread then exits, so nothing else ever runs in that namespace.
fn pin_new_netns(path: &Path) -> Result<(), NetnsError> {
    let target = path.to_path_buf();
    let handle = std::thread::Builder::new()
        .name("netns-pin".into())
        .spawn(move || -> Result<(), NetnsError> {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| NetnsError::Unshare {
                path: target.clone(),
                source: e.into(),
            })?;
            let source = format!(
                "/proc/{}/task/{}/ns/net",
                std::process::id(),
                nix::unistd::gettid()
            );
            mount(
                Some(source.as_str()),
                &target,
                Some("none"),
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| NetnsError::BindMount {
                path: target.clone(),
                source: e.into(),
            })
        })
        .map_err(|source| NetnsError::Unshare {
            path: path.to_path_buf(),
            source,
        })?;
    handle.join().map_err(|_| NetnsError::Thread {
        path: path.to_path_buf(),
    })?
}

/// Enters the namespace on a thread of its own (which then ends, so no
/// other work runs in that namespace) and sets `lo` up there with
/// `SIOCGIFFLAGS` / `SIOCSIFFLAGS`, as `ip link set lo up`. The two
/// ioctls have no safe wrapper in `nix`, hence the one unsafe block.
#[allow(unsafe_code)]
fn set_loopback_up_blocking(path: &Path) -> Result<(), NetnsError> {
    let failed = |source: std::io::Error| NetnsError::LoopbackUp {
        path: path.to_path_buf(),
        source,
    };
    let netns = std::fs::File::open(path).map_err(failed)?;
    let handle = std::thread::Builder::new()
        .name("netns-lo".into())
        .spawn(move || -> std::io::Result<()> {
            setns(&netns, CloneFlags::CLONE_NEWNET)?;
            let socket = nix::sys::socket::socket(
                AddressFamily::Inet,
                SockType::Datagram,
                SockFlag::SOCK_CLOEXEC,
                None,
            )?;
            // SAFETY: `ifreq` is a plain C struct for which all zero bytes
            // are a valid value.
            let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
            for (to, from) in request.ifr_name.iter_mut().zip(b"lo") {
                *to = *from as libc::c_char;
            }
            // SAFETY: both ioctls take a pointer to an `ifreq` that names
            // the interface; it outlives the calls, and the flags union
            // member is the one these requests read and write.
            unsafe {
                if libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
                if libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        })
        .map_err(failed)?;
    handle
        .join()
        .map_err(|_| NetnsError::Thread {
            path: path.to_path_buf(),
        })?
        .map_err(failed)
}

fn remove_blocking(path: &Path) -> Result<(), NetnsError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(NetnsError::Stat {
                path: path.to_path_buf(),
                source,
            })
        }
    }
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    unmount_detach(&path).map_err(|source| NetnsError::Unmount {
        path: path.clone(),
        source,
    })?;
    remove_all(&path)
}

fn remove_all(path: &Path) -> Result<(), NetnsError> {
    let removed = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) => Err(e),
    };
    match removed {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NetnsError::Remove {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// A namespace file: nsfs, or procfs on old kernels.
fn is_namespace(fs: &Statfs) -> bool {
    fs.filesystem_type() == NSFS_MAGIC || fs.filesystem_type() == PROC_SUPER_MAGIC
}

fn is_closed_blocking(path: &Path) -> Result<bool, NetnsError> {
    match statfs(path) {
        Ok(fs) if is_namespace(&fs) => Ok(false),
        Ok(_) => {
            // Not (or no longer) a namespace: drop the stale pin.
            remove_all(path)?;
            Ok(true)
        }
        Err(Errno::ENOENT) => Ok(true),
        Err(e) => Err(NetnsError::Stat {
            path: path.to_path_buf(),
            source: e.into(),
        }),
    }
}

async fn blocking<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> Result<T, NetnsError> + Send + 'static,
) -> Result<T, NetnsError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| NetnsError::Thread {
            path: path.to_path_buf(),
        })?
}

#[async_trait]
impl NetnsManager for LinuxNetns {
    async fn create(&self) -> Result<NetNs, NetnsError> {
        let this = self.clone();
        blocking(&self.dir, move || this.create_blocking()).await
    }

    async fn remove(&self, path: &Path) -> Result<(), NetnsError> {
        let owned = path.to_path_buf();
        blocking(path, move || remove_blocking(&owned)).await
    }

    async fn set_loopback_up(&self, path: &Path) -> Result<(), NetnsError> {
        let owned = path.to_path_buf();
        blocking(path, move || set_loopback_up_blocking(&owned)).await
    }

    async fn is_closed(&self, path: &Path) -> Result<bool, NetnsError> {
        // One statfs of a pin this daemon made on tmpfs (containerd makes
        // the same call in PodSandboxStatus): answered here, without a
        // blocking thread. Only dropping a stale pin goes to one.
        match statfs(path) {
            Ok(fs) if is_namespace(&fs) => return Ok(false),
            Err(Errno::ENOENT) => return Ok(true),
            _ => {}
        }
        let owned = path.to_path_buf();
        blocking(path, move || is_closed_blocking(&owned)).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The manager's answer (a statfs, a blocking thread for a stale pin)
    /// and the blocking check's agree with `expected_closed`.
    async fn check(path: &Path, expected_closed: bool) {
        let manager = LinuxNetns::new("/nonexistent");
        assert_eq!(
            manager.is_closed(path).await.unwrap(),
            expected_closed,
            "{}",
            path.display()
        );
        assert_eq!(
            is_closed_blocking(path).unwrap(),
            expected_closed,
            "{}",
            path.display()
        );
    }

    #[tokio::test]
    async fn missing_paths_are_closed_and_removal_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("cni-missing");
        check(&missing, true).await;
        remove_blocking(&missing).unwrap();
    }

    #[tokio::test]
    async fn a_plain_file_is_a_closed_netns_and_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join("cni-stale");
        std::fs::write(&stale, b"").unwrap();
        let manager = LinuxNetns::new(dir.path());
        assert!(manager.is_closed(&stale).await.unwrap());
        assert!(!stale.exists(), "the stale pin is removed");
        check(&stale, true).await;
    }

    #[tokio::test]
    async fn proc_netns_is_open() {
        check(Path::new("/proc/self/ns/net"), false).await;
    }
}
