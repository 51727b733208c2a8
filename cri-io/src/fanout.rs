//! Fan-out of one container output stream to its attached clients, with a
//! bounded buffer per client so a slow client never stalls the container.

use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::log::StreamType;

/// Chunks (one FIFO read each, at most [`crate::container_io::READ_BUF_SIZE`]
/// bytes) buffered per attached client before it is dropped as too slow.
pub const ATTACH_BUFFER_CHUNKS: usize = 128;

/// The subscribers of one stream. Unlike containerd's `WriterGroup`, which
/// writes to every attacher inline, each subscriber has its own queue; a
/// full queue drops that subscriber (its session then ends) instead of
/// blocking the log.
#[derive(Debug)]
pub(crate) struct Fanout {
    stream: StreamType,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    closed: bool,
    next_id: u64,
    subscribers: Vec<(u64, mpsc::Sender<Bytes>)>,
}

impl Fanout {
    pub(crate) fn new(stream: StreamType) -> Self {
        Self {
            stream,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new subscriber that gets every chunk broadcast from now on. After
    /// [`Fanout::close`] the receiver ends at once. Dropping the receiver
    /// unsubscribes (noticed at the next broadcast).
    pub(crate) fn subscribe(&self) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(ATTACH_BUFFER_CHUNKS);
        let mut state = self.state();
        let id = state.next_id;
        state.next_id += 1;
        if !state.closed {
            state.subscribers.push((id, tx));
        }
        rx
    }

    /// Queues `data` for every subscriber; never waits.
    pub(crate) fn broadcast(&self, data: &[u8]) {
        let mut state = self.state();
        if state.subscribers.is_empty() {
            return;
        }
        let chunk = Bytes::copy_from_slice(data);
        let stream = self.stream.as_str();
        state
            .subscribers
            .retain(|(id, tx)| match tx.try_send(chunk.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    tracing::warn!(
                        stream,
                        subscriber = id,
                        "attach client too slow, detaching it"
                    );
                    false
                }
                Err(TrySendError::Closed(_)) => false,
            });
    }

    /// The stream hit EOF: every receiver ends after its queued chunks, and
    /// later subscribers end at once.
    pub(crate) fn close(&self) {
        let mut state = self.state();
        state.closed = true;
        state.subscribers.clear();
    }

    #[cfg(test)]
    pub(crate) fn subscriber_count(&self) -> usize {
        self.state().subscribers.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn subscribers_get_chunks_from_the_moment_they_join() {
        let fanout = Fanout::new(StreamType::Stdout);
        fanout.broadcast(b"nobody");
        let mut a = fanout.subscribe();
        fanout.broadcast(b"one");
        let mut b = fanout.subscribe();
        fanout.broadcast(b"two");
        fanout.close();
        assert_eq!(a.recv().await.as_deref(), Some(&b"one"[..]));
        assert_eq!(a.recv().await.as_deref(), Some(&b"two"[..]));
        assert_eq!(a.recv().await, None);
        assert_eq!(b.recv().await.as_deref(), Some(&b"two"[..]));
        assert_eq!(b.recv().await, None);
        let mut late = fanout.subscribe();
        assert_eq!(late.recv().await, None);
    }

    #[tokio::test]
    async fn a_full_subscriber_is_dropped_without_blocking() {
        let fanout = Fanout::new(StreamType::Stderr);
        let mut slow = fanout.subscribe();
        let mut fast = fanout.subscribe();
        for i in 0..=ATTACH_BUFFER_CHUNKS {
            fanout.broadcast(&[i as u8]);
            assert!(fast.recv().await.is_some());
        }
        assert_eq!(fanout.subscriber_count(), 1);
        // The slow one still drains what was queued, then ends.
        let mut got = 0;
        while slow.recv().await.is_some() {
            got += 1;
        }
        assert_eq!(got, ATTACH_BUFFER_CHUNKS);
    }

    #[tokio::test]
    async fn gone_receivers_are_forgotten() {
        let fanout = Fanout::new(StreamType::Stdout);
        let gone = fanout.subscribe();
        let _kept = fanout.subscribe();
        drop(gone);
        fanout.broadcast(b"x");
        assert_eq!(fanout.subscriber_count(), 1);
    }
}
