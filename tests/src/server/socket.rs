//! Talking to a CRI socket: a tonic channel over a unix socket, and checking which process listens on one.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use tonic::transport::{Channel, Endpoint, Uri};

/// A gRPC channel over the unix socket at `path`.
pub async fn connect(path: &Path) -> Result<Channel> {
    let path = path.to_path_buf();
    let channel = Endpoint::try_from("http://[::]:50051")?
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await?;
    Ok(channel)
}

/// Whether `pid` holds a listening unix socket bound to `path`.
pub(super) fn listens_on(pid: u32, path: &Path) -> bool {
    // /proc/net/unix: Num RefCount Protocol Flags Type St Inode Path;
    // flag 0x10000 (__SO_ACCEPTCON) marks listening sockets.
    let Ok(table) = std::fs::read_to_string(format!("/proc/{pid}/net/unix")) else {
        return false;
    };
    let wanted = path.to_string_lossy();
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = u32::from_str_radix(fields.get(3)?, 16).ok()?;
            (fields.get(7) == Some(&wanted.as_ref()) && flags & 0x10000 != 0)
                .then(|| format!("socket:[{}]", fields.get(6).unwrap_or(&"")))
        })
        .collect();
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .any(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listens_on_sees_only_our_listening_socket() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("s.sock");
        let me = std::process::id();
        assert!(!listens_on(me, &path));
        let _listener = std::os::unix::net::UnixListener::bind(&path)?;
        assert!(listens_on(me, &path));
        assert!(!listens_on(me, &dir.path().join("other.sock")));
        // pid 1 does not hold our socket.
        assert!(!listens_on(1, &path));
        Ok(())
    }
}
