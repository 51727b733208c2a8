//! Pinned network namespaces: the [`NetnsManager`] seam and the naming
//! containerd's `pkg/netns` uses (`cni-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`).
//! The Linux implementation is `host::LinuxNetns`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

/// containerd's default netns dir.
pub const DEFAULT_NETNS_DIR: &str = "/var/run/netns";

/// A network namespace pinned by a bind mount at `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetNs {
    path: PathBuf,
}

impl NetNs {
    /// An existing pinned netns (containerd `LoadNetNS`).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Why a netns operation failed; each variant names the path.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("create netns dir {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("make netns dir {} a shared mount", path.display())]
    ShareDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("create netns mount point {}", path.display())]
    CreateFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("create a new network namespace for {}", path.display())]
    Unshare {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bind mount netns at {}", path.display())]
    BindMount {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("netns thread for {} panicked", path.display())]
    Thread { path: PathBuf },
    #[error("stat netns {}", path.display())]
    Stat {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unmount netns {}", path.display())]
    Unmount {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bring up the loopback interface in netns {}", path.display())]
    LoopbackUp {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("remove netns {}", path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Creates, removes and probes pinned network namespaces.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait NetnsManager: Send + Sync {
    /// A new network namespace, pinned at a fresh path.
    async fn create(&self) -> Result<NetNs, NetnsError>;
    /// Unmounts (MNT_DETACH) and removes the pin; a missing path is fine.
    async fn remove(&self, path: &Path) -> Result<(), NetnsError>;
    /// Whether the namespace is gone: true for a missing path, and for a
    /// path that is no longer a namespace (which is then removed), as
    /// containerd's `NetNS.Closed`.
    async fn is_closed(&self, path: &Path) -> Result<bool, NetnsError>;
    /// Sets the `lo` interface of the namespace up (containerd 2's
    /// `bringUpLoopback`, used with `use_internal_loopback` instead of the
    /// CNI loopback plugin).
    async fn set_loopback_up(&self, path: &Path) -> Result<(), NetnsError>;
}

/// `cni-%x-%x-%x-%x-%x` over the 4-2-2-2-6 byte groups, as containerd.
pub fn netns_name(bytes: &[u8; 16]) -> String {
    let mut name = String::from("cni");
    for group in [
        &bytes[0..4],
        &bytes[4..6],
        &bytes[6..8],
        &bytes[8..10],
        &bytes[10..16],
    ] {
        name.push('-');
        for b in group {
            let _ = write!(name, "{b:02x}");
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(bytes: [u8; 16], expected: &str) {
        assert_eq!(netns_name(&bytes), expected);
    }

    #[test]
    fn name_is_uuid_shaped() {
        check([0; 16], "cni-00000000-0000-0000-0000-000000000000");
        check(
            [
                0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54,
                0x32, 0x10,
            ],
            "cni-01234567-89ab-cdef-fedc-ba9876543210",
        );
    }

    #[test]
    fn random_names_have_the_shape() {
        let name = netns_name(&rand::random());
        let parts: Vec<&str> = name.split('-').collect();
        assert_eq!(parts[0], "cni");
        assert_eq!(
            parts[1..].iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[1..].iter().all(|p| p
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())));
    }

    #[test]
    fn netns_keeps_its_path() {
        assert_eq!(
            NetNs::new("/var/run/netns/x").path(),
            Path::new("/var/run/netns/x")
        );
    }
}
