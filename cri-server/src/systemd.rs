//! systemd's readiness protocol (`Type=notify`): `READY=1` once recovery
//! has finished and the socket serves, `STOPPING=1` on shutdown. Without
//! `NOTIFY_SOCKET` (not under systemd) each call does nothing.

use sd_notify::NotifyState;

/// Tells systemd the service is ready, with a status line.
pub fn notify_ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells systemd the service is stopping.
pub fn notify_stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("shutting down")]);
}

/// A status line while starting (shown by `systemctl status`).
pub fn notify_status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

fn send(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "sd_notify");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// One test owns NOTIFY_SOCKET for the whole sequence (the env is
    /// process-wide).
    #[test]
    fn ready_and_stopping_reach_the_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        // No other test in this crate reads NOTIFY_SOCKET.
        std::env::set_var("NOTIFY_SOCKET", &path);
        let mut buf = [0u8; 256];
        notify_ready("serving");
        let n = socket.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=serving\n");
        notify_stopping();
        let n = socket.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1\nSTATUS=shutting down\n");
        std::env::remove_var("NOTIFY_SOCKET");
    }
}
