//! Idle tracking for a streaming connection: every frame read or written
//! touches it, and `expired` resolves once nothing moved for the timeout.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Last-activity clock of one connection.
#[derive(Debug)]
pub struct IdleTracker {
    last: Mutex<Instant>,
    timeout: Option<Duration>,
}

impl IdleTracker {
    /// A tracker; `None` or a zero timeout never expires.
    pub fn new(timeout: Option<Duration>) -> Self {
        Self {
            last: Mutex::new(Instant::now()),
            timeout: timeout.filter(|t| !t.is_zero()),
        }
    }

    /// Records activity now.
    pub fn touch(&self) {
        if let Ok(mut last) = self.last.lock() {
            *last = Instant::now();
        }
    }

    fn last(&self) -> Instant {
        self.last
            .lock()
            .map(|l| *l)
            .unwrap_or_else(|_| Instant::now())
    }

    /// Resolves when the connection has been idle for the timeout.
    pub async fn expired(&self) {
        let Some(timeout) = self.timeout else {
            return std::future::pending().await;
        };
        loop {
            let deadline = self.last() + timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn expires_only_after_a_quiet_timeout() {
        let idle = IdleTracker::new(Some(Duration::from_secs(10)));
        let start = Instant::now();
        let waiter = async {
            idle.expired().await;
            Instant::now()
        };
        let toucher = async {
            tokio::time::sleep(Duration::from_secs(6)).await;
            idle.touch();
        };
        let (expired_at, ()) = tokio::join!(waiter, toucher);
        assert_eq!(expired_at - start, Duration::from_secs(16));
    }

    #[tokio::test(start_paused = true)]
    async fn no_timeout_never_expires() {
        let idle = IdleTracker::new(Some(Duration::ZERO));
        let r = tokio::time::timeout(Duration::from_secs(3600), idle.expired()).await;
        assert!(r.is_err());
    }
}
