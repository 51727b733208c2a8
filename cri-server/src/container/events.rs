//! CRI container events (`GetContainerEvents`, the kubelet's evented PLEG):
//! CREATED, STARTED, STOPPED and DELETED with the pod's status, for app
//! containers and (as containerd sends them, under the pod's id) for pods. Every
//! subscriber has its own bounded buffer; the runtime never waits for a
//! subscriber, and events a slow one misses are counted as dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cri_api::v1::{ContainerEventResponse, ContainerEventType};
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::sync::broadcast;

use super::ContainerService;

/// Events buffered per subscriber (containerd buffers 1000).
pub const EVENT_BUFFER: usize = 1000;

/// The broadcaster of container events.
#[derive(Debug, Clone)]
pub struct ContainerEvents {
    sender: broadcast::Sender<ContainerEventResponse>,
    dropped: Arc<AtomicU64>,
}

impl Default for ContainerEvents {
    fn default() -> Self {
        Self::with_capacity(EVENT_BUFFER)
    }
}

impl ContainerEvents {
    /// A broadcaster buffering `capacity` events per subscriber.
    pub fn with_capacity(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self {
            sender,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Hands `event` to every subscriber; never blocks. Without subscribers
    /// the event is dropped (and counted).
    pub fn send(&self, event: ContainerEventResponse) {
        if self.sender.send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A stream of the events sent from now on. A subscriber that falls
    /// more than the buffer behind loses the oldest events; they are
    /// counted in [`Self::dropped`].
    pub fn subscribe(&self) -> BoxStream<'static, ContainerEventResponse> {
        let receiver = self.sender.subscribe();
        let dropped = Arc::clone(&self.dropped);
        futures::stream::unfold((receiver, dropped), |(mut receiver, dropped)| async move {
            loop {
                match receiver.recv().await {
                    Ok(event) => return Some((event, (receiver, dropped))),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(dropped = n, "container event subscriber too slow");
                        dropped.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .boxed()
    }

    /// Whether anyone listens; without a subscriber an event is counted as
    /// dropped here and need not be built.
    fn heard(&self) -> bool {
        if self.sender.receiver_count() > 0 {
            return true;
        }
        self.dropped.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Events no subscriber received, or a slow subscriber missed.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// containerd's `generateAndSendContainerEvent`: the event for
/// `container_id` with its pod's status and the statuses of every
/// container of the pod, built only when someone subscribes.
pub(crate) async fn emit(
    state: &ContainerService,
    container_id: &str,
    sandbox_id: &str,
    kind: ContainerEventType,
) {
    // Without a subscriber (no evented PLEG), the statuses are not read.
    if !state.events.heard() {
        return;
    }
    let pod_sandbox_status = match state.sandboxes.status(sandbox_id).await {
        Ok(status) => Some(status),
        Err(e) => {
            tracing::warn!(sandbox_id, error = %e, "no pod status for container event");
            None
        }
    };
    let containers_statuses = super::status::sandbox_container_statuses(state, sandbox_id);
    state.events.send(ContainerEventResponse {
        container_id: container_id.to_owned(),
        container_event_type: kind as i32,
        created_at: super::now_nanos(),
        pod_sandbox_status,
        containers_statuses,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> ContainerEventResponse {
        ContainerEventResponse {
            container_id: id.into(),
            container_event_type: ContainerEventType::ContainerCreatedEvent as i32,
            ..ContainerEventResponse::default()
        }
    }

    #[tokio::test]
    async fn every_subscriber_gets_every_event() {
        let events = ContainerEvents::with_capacity(4);
        let mut a = events.subscribe();
        let mut b = events.subscribe();
        events.send(event("c1"));
        events.send(event("c2"));
        for s in [&mut a, &mut b] {
            assert_eq!(s.next().await.map(|e| e.container_id), Some("c1".into()));
            assert_eq!(s.next().await.map(|e| e.container_id), Some("c2".into()));
        }
        assert_eq!(events.dropped(), 0);
    }

    #[tokio::test]
    async fn slow_subscriber_loses_oldest_and_they_are_counted() {
        let events = ContainerEvents::with_capacity(2);
        let mut slow = events.subscribe();
        for i in 0..5 {
            events.send(event(&format!("c{i}")));
        }
        assert_eq!(slow.next().await.map(|e| e.container_id), Some("c3".into()));
        assert_eq!(slow.next().await.map(|e| e.container_id), Some("c4".into()));
        assert_eq!(events.dropped(), 3);
    }

    #[test]
    fn an_event_is_heard_only_with_a_subscriber() {
        let events = ContainerEvents::default();
        assert!(!events.heard());
        assert_eq!(events.dropped(), 1);
        let _subscriber = events.subscribe();
        assert!(events.heard());
        assert_eq!(events.dropped(), 1);
    }

    #[test]
    fn without_subscribers_events_are_dropped() {
        let events = ContainerEvents::default();
        events.send(event("c1"));
        assert_eq!(events.dropped(), 1);
    }
}
