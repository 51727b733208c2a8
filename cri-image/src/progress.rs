//! Pull progress as containerd's CRI plugin measures it (open registry requests and bytes received) and the watchdog that gives up on a pull when requests are open but no byte arrived for `image_pull_progress_timeout`.

use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::time::Instant;

/// Shared counters of one pull.
#[derive(Debug, Default)]
pub struct Progress {
    active: AtomicI64,
    bytes: AtomicU64,
}

impl Progress {
    /// Marks a registry request open until the guard is dropped.
    pub fn request(self: &Arc<Self>) -> RequestGuard {
        self.active.fetch_add(1, Ordering::SeqCst);
        RequestGuard {
            progress: Arc::clone(self),
        }
    }

    /// Counts `n` received bytes.
    pub fn received(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::SeqCst);
    }

    /// (open requests, bytes received so far).
    pub fn snapshot(&self) -> (i64, u64) {
        (
            self.active.load(Ordering::SeqCst),
            self.bytes.load(Ordering::SeqCst),
        )
    }

    /// Resolves once requests were open for `timeout` without a byte
    /// arriving; never resolves for a zero timeout. Checks every
    /// `timeout / 4` (at least 50ms, at most 10s).
    pub async fn stalled(&self, timeout: Duration) {
        if timeout.is_zero() {
            return futures::future::pending().await;
        }
        let interval = (timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(10));
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_bytes = 0;
        let mut last_seen = Instant::now();
        loop {
            ticker.tick().await;
            let (active, bytes) = self.snapshot();
            if active <= 0 || bytes > last_bytes {
                last_bytes = bytes;
                last_seen = Instant::now();
                continue;
            }
            if last_seen.elapsed() >= timeout {
                tracing::warn!(active, bytes, ?timeout, "pull made no progress");
                return;
            }
        }
    }
}

/// One open registry request.
#[derive(Debug)]
pub struct RequestGuard {
    progress: Arc<Progress>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.progress.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that counts what it yields and holds its request open
/// until it ends or is dropped.
pub struct Counted<S> {
    inner: S,
    progress: Arc<Progress>,
    guard: Option<RequestGuard>,
}

impl<S> Counted<S> {
    pub fn new(inner: S, progress: Arc<Progress>, guard: RequestGuard) -> Self {
        Self {
            inner,
            progress,
            guard: Some(guard),
        }
    }
}

impl<S, E> Stream for Counted<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => self.progress.received(chunk.len()),
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.guard = None,
            Poll::Pending => {}
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test(start_paused = true)]
    async fn stalls_only_with_open_requests() {
        let progress = Arc::new(Progress::default());
        // Nothing open: never stalls.
        let idle = tokio::time::timeout(
            Duration::from_secs(5),
            progress.stalled(Duration::from_secs(1)),
        )
        .await;
        assert!(idle.is_err());
        let _open = progress.request();
        let started = Instant::now();
        progress.stalled(Duration::from_secs(1)).await;
        assert!(started.elapsed() >= Duration::from_secs(1));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_keep_it_alive() {
        let progress = Arc::new(Progress::default());
        let _open = progress.request();
        let feeder = {
            let progress = Arc::clone(&progress);
            async move {
                for _ in 0..20 {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    progress.received(1);
                }
            }
        };
        tokio::select! {
            _ = progress.stalled(Duration::from_secs(1)) => panic!("stalled while bytes arrived"),
            _ = feeder => {}
        }
    }

    #[tokio::test]
    async fn counted_streams_count_and_close() {
        let progress = Arc::new(Progress::default());
        let body = futures::stream::iter(vec![
            Ok::<_, std::io::Error>(Bytes::from_static(b"abc")),
            Ok(Bytes::from_static(b"de")),
        ]);
        let guard = progress.request();
        let mut counted = Counted::new(body, Arc::clone(&progress), guard);
        assert_eq!(progress.snapshot(), (1, 0));
        while counted.next().await.is_some() {}
        assert_eq!(progress.snapshot(), (0, 5));
    }
}
