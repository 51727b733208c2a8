//! The CRI unix socket: refuse a socket a live server owns, replace a
//! stale one, create ours with mode 0660 (group `socket_group` when set),
//! and remove it on exit.

use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

/// Why the socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("another server is already listening on {}", path.display())]
    InUse { path: PathBuf },
    #[error("{} exists and is not a socket; refusing to replace it", path.display())]
    NotASocket { path: PathBuf },
    #[error("socket_group {group:?}: no such group")]
    UnknownGroup { group: String },
    #[error("{op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SocketError + 'a {
    move |source| SocketError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A bound listener; dropping it removes the socket file if it is still
/// the one this process created.
#[derive(Debug)]
pub struct BoundSocket {
    path: PathBuf,
    identity: (u64, u64, i64, i64),
}

/// Inode and change time: a socket file re-created at the same path by
/// someone else can reuse the inode number, not also the ctime.
fn identity(meta: &std::fs::Metadata) -> (u64, u64, i64, i64) {
    (meta.dev(), meta.ino(), meta.ctime(), meta.ctime_nsec())
}

impl BoundSocket {
    /// Binds `path`, removing a stale socket left by a dead server first,
    /// and gives it to `group` (mode 0660 either way).
    pub fn bind(path: &Path, group: Option<&str>) -> Result<(Self, UnixListener), SocketError> {
        let gid = group.map(group_id).transpose()?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_err("create dir", parent))?;
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                match std::os::unix::net::UnixStream::connect(path) {
                    Ok(_) => {
                        return Err(SocketError::InUse {
                            path: path.to_path_buf(),
                        })
                    }
                    Err(e) => {
                        tracing::info!(path = %path.display(), error = %e, "removing stale socket");
                        std::fs::remove_file(path).map_err(io_err("remove stale socket", path))?;
                    }
                }
            }
            Ok(_) => {
                return Err(SocketError::NotASocket {
                    path: path.to_path_buf(),
                })
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("stat", path)(e)),
        }
        let listener = UnixListener::bind(path).map_err(io_err("bind", path))?;
        if let Some(gid) = gid {
            std::os::unix::fs::lchown(path, None, Some(gid)).map_err(io_err("chgrp", path))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
            .map_err(io_err("chmod", path))?;
        let meta = std::fs::symlink_metadata(path).map_err(io_err("stat", path))?;
        Ok((
            Self {
                path: path.to_path_buf(),
                identity: identity(&meta),
            },
            listener,
        ))
    }
}

/// The gid of a group name, or of a number given as the name.
fn group_id(group: &str) -> Result<u32, SocketError> {
    let unknown = || SocketError::UnknownGroup {
        group: group.to_owned(),
    };
    match nix::unistd::Group::from_name(group) {
        Ok(Some(found)) => Ok(found.gid.as_raw()),
        Ok(None) | Err(_) => group.parse().map_err(|_| unknown()),
    }
}

impl Drop for BoundSocket {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .map(|m| identity(&m) == self.identity)
            .unwrap_or(false);
        if ours {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!(path = %self.path.display(), error = %e, "remove socket");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn creates_0660_and_removes_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/cri.sock");
        let (bound, _listener) = BoundSocket::bind(&path, None).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        drop(bound);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn socket_group_is_set_and_mode_stays_0660() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cri.sock");
        // "daemon" (gid 1) exists on every Debian system; a number works too.
        for (group, gid) in [("daemon", 1), ("4242", 4242)] {
            let (bound, _listener) = BoundSocket::bind(&path, Some(group)).unwrap();
            let meta = std::fs::metadata(&path).unwrap();
            assert_eq!(meta.gid(), gid, "{group}");
            assert_eq!(meta.permissions().mode() & 0o777, 0o660);
            drop(bound);
        }
        let err = BoundSocket::bind(&path, Some("no-such-group-here")).unwrap_err();
        assert!(matches!(err, SocketError::UnknownGroup { .. }), "{err}");
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn refuses_live_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cri.sock");
        let (_bound, _listener) = BoundSocket::bind(&path, None).unwrap();
        let err = BoundSocket::bind(&path, None).unwrap_err();
        assert!(matches!(err, SocketError::InUse { .. }), "{err}");
        assert!(path.exists());
    }

    #[tokio::test]
    async fn replaces_stale_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cri.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let (_bound, _listener) = BoundSocket::bind(&path, None).unwrap();
        assert!(path.exists());
    }

    #[tokio::test]
    async fn refuses_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cri.sock");
        std::fs::write(&path, "x").unwrap();
        let err = BoundSocket::bind(&path, None).unwrap_err();
        assert!(matches!(err, SocketError::NotASocket { .. }), "{err}");
    }

    #[tokio::test]
    async fn leaves_a_replaced_socket_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cri.sock");
        let (bound, listener) = BoundSocket::bind(&path, None).unwrap();
        drop(listener);
        std::fs::remove_file(&path).unwrap();
        let _other = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(bound);
        assert!(path.exists(), "must not remove another server's socket");
    }
}
