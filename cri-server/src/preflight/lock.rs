//! One daemon per root and state dir: an exclusive `flock` on
//! `<dir>/cri-server.lock` in each, held for the daemon's life. The socket
//! file is not enough: whoever removes it lets a second daemon bind a new
//! one, and two daemons would then manage the same containers. The kernel
//! drops the lock when the process dies, so a crash leaves nothing stale.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// The lock file's name in the root and state dirs.
pub const LOCK_FILE: &str = "cri-server.lock";

/// Why a directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another cri-server{} holds {}", holder.map(|p| format!(" (pid {p})")).unwrap_or_default(), path.display())]
    Held { path: PathBuf, holder: Option<u32> },
    #[error("lock {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The held locks; dropping this releases them.
#[derive(Debug)]
pub struct DirLocks {
    _held: Vec<Flock<File>>,
}

impl DirLocks {
    /// Locks `<dir>/cri-server.lock` in each of `dirs` (creating the dirs),
    /// writing our pid into each; fails on the first one held elsewhere.
    pub fn acquire(dirs: &[&Path]) -> Result<Self, LockError> {
        let mut held = Vec::new();
        for dir in dirs {
            held.push(lock_one(dir)?);
        }
        Ok(Self { _held: held })
    }
}

fn lock_one(dir: &Path) -> Result<Flock<File>, LockError> {
    let path = dir.join(LOCK_FILE);
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut locked) => {
            locked.set_len(0).map_err(io)?;
            locked.rewind().map_err(io)?;
            writeln!(locked, "{}", std::process::id()).map_err(io)?;
            Ok(locked)
        }
        Err((mut file, Errno::EWOULDBLOCK)) => {
            let mut text = String::new();
            let holder = file
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| text.trim().parse().ok());
            Err(LockError::Held { path, holder })
        }
        Err((_, errno)) => Err(io(std::io::Error::from(errno))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_dir_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (root, state) = (dir.path().join("root"), dir.path().join("state"));
        let first = DirLocks::acquire(&[&root, &state]).unwrap();
        let pid = std::fs::read_to_string(root.join(LOCK_FILE)).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());

        // flock locks belong to the open file description, so a second
        // open in this process conflicts just as another process would.
        let err = DirLocks::acquire(&[&dir.path().join("other"), &state]).unwrap_err();
        match &err {
            LockError::Held { path, holder } => {
                assert_eq!(path, &state.join(LOCK_FILE));
                assert_eq!(*holder, Some(std::process::id()));
            }
            other => panic!("{other}"),
        }
        assert!(err.to_string().contains("another cri-server (pid"), "{err}");

        drop(first);
        let _again = DirLocks::acquire(&[&root, &state]).unwrap();
    }
}
