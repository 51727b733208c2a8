//! The daemon's one subscription to containerd's events, as containerd's
//! CRI `eventMonitor`: `/tasks/oom` marks containers `OOMKilled`, and
//! `/images/{create,update,delete}` keep the image store in step with what
//! any client (`ctr images import`, preloaders, nerdctl) does in the
//! namespace. Task exits are not taken from here: each task has its own
//! `Wait` (container `exit.rs`, sandbox `exit_monitor.rs`), which also
//! covers the time the daemon was down.
//!
//! containerd (grpc-go) answers a subscription only with its first event,
//! so the monitor cannot tell when it is subscribed; it publishes a marker
//! event of its own (`/cri-server/subscribed`) until the subscription
//! answers, and resyncs only then, so nothing between the resync's listing
//! and the subscription can be missed.
//!
//! Events are handled one at a time, in order. A failed image sync (its
//! content still being written, containerd busy) is retried with backoff;
//! a newer event for the same record supersedes the retry, since a sync
//! reads the record as it is now. When the stream breaks (containerd
//! restarted) the monitor resubscribes with backoff and then reloads the
//! image store in full, since events are lost while disconnected.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;

use crate::service::ServerState;
use cri_containerd::{decode_event, DecodedEvent};

/// The topic of the marker that makes a new subscription answer.
const MARKER_TOPIC: &str = "/cri-server/subscribed";
/// What the monitor subscribes to (the namespace is added by the seam).
const FILTERS: [&str; 3] = [
    r#"topic=="/tasks/oom""#,
    r#"topic~="^/images/""#,
    r#"topic=="/cri-server/subscribed""#,
];
/// When the marker is published until the subscription answers: first
/// soon after the subscription is sent (recovery's image load waits for
/// it), then at doubling intervals up to `MARKER_EVERY`, at most
/// `MARKER_LIMIT` times (then the first real event has to answer it). A
/// marker that overtakes the subscription inside containerd is lost and
/// costs one more.
const MARKER_FIRST: Duration = Duration::from_millis(2);
const MARKER_EVERY: Duration = Duration::from_millis(100);
const MARKER_LIMIT: u32 = 50;
const RESUBSCRIBE_INITIAL: Duration = Duration::from_millis(200);
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(30);
const RETRY_INITIAL: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// Attempts for one record before it is left to the next full resync.
const RETRY_ATTEMPTS: u32 = 10;

/// Starts the monitor for the life of the daemon.
pub fn spawn_event_monitor(state: Arc<ServerState>) -> tokio::task::JoinHandle<()> {
    state.images.set_event_subscription(false);
    tokio::spawn(async move {
        let mut delay = RESUBSCRIBE_INITIAL;
        let mut first = true;
        loop {
            match subscribe(state.containerd.events.as_ref()).await {
                Ok(stream) => {
                    delay = RESUBSCRIBE_INITIAL;
                    // At start-up recovery loads the store once this is
                    // subscribed (it waits a little for it); it only needs
                    // loading here if that load began first, so events in
                    // between could be missed.
                    if !first || state.images.load_started() {
                        resync_images(&state).await;
                    }
                    state.images.set_event_subscription(true);
                    first = false;
                    Monitor::new(&state).run(stream).await;
                }
                Err(e) => tracing::debug!(error = %e, "subscribe to containerd events"),
            }
            state.images.set_event_subscription(false);
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RESUBSCRIBE_MAX);
        }
    })
}

/// Subscribes, publishing the marker until containerd answers (with the
/// marker, or an earlier event).
async fn subscribe(
    events: &dyn cri_api::containerd::Events,
) -> cri_api::containerd::Result<
    futures::stream::BoxStream<'static, cri_api::containerd::Result<cri_api::containerd::Envelope>>,
> {
    let filters = FILTERS.iter().map(|f| (*f).to_owned()).collect();
    let subscription = events.subscribe(filters);
    tokio::pin!(subscription);
    let mut published = 0;
    let mut delay = MARKER_FIRST;
    loop {
        tokio::select! {
            result = &mut subscription => return result,
            () = tokio::time::sleep(delay), if published < MARKER_LIMIT => {
                published += 1;
                delay = marker_delay_after(delay);
                let marker = prost_types::Any {
                    type_url: "google.protobuf.Empty".to_owned(),
                    value: Vec::new(),
                };
                if let Err(e) = events.publish(MARKER_TOPIC, marker).await {
                    tracing::debug!(error = %e, "publish subscription marker");
                }
            }
        }
    }
}

/// The wait before the next marker: double the last, at most
/// [`MARKER_EVERY`].
fn marker_delay_after(last: Duration) -> Duration {
    (last * 2).min(MARKER_EVERY)
}

async fn resync_images(state: &ServerState) {
    match state.images.load().await {
        Ok(count) => tracing::info!(images = count, "image store resynced with containerd"),
        Err(e) => tracing::warn!(error = %e, "resync image store with containerd"),
    }
}

/// A pending retry of one image record's sync.
#[derive(Debug, Clone, Copy)]
struct Retry {
    attempts: u32,
    at: Instant,
}

struct Monitor<'a> {
    state: &'a ServerState,
    retries: HashMap<String, Retry>,
}

impl<'a> Monitor<'a> {
    fn new(state: &'a ServerState) -> Self {
        Self {
            state,
            retries: HashMap::new(),
        }
    }

    /// Handles the stream until it ends or breaks.
    async fn run(
        &mut self,
        mut stream: futures::stream::BoxStream<
            'static,
            cri_api::containerd::Result<cri_api::containerd::Envelope>,
        >,
    ) {
        loop {
            let next_retry = self.retries.values().map(|r| r.at).min();
            let item = tokio::select! {
                item = stream.next() => item,
                () = sleep_until(next_retry) => {
                    self.run_due_retries().await;
                    continue;
                }
            };
            match item {
                Some(Ok(envelope)) => {
                    if let Some(event) = envelope.event.as_ref().and_then(decode_event) {
                        self.handle(event).await;
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "containerd event stream broke; resubscribing");
                    return;
                }
                None => {
                    tracing::warn!("containerd event stream ended; resubscribing");
                    return;
                }
            }
        }
    }

    async fn handle(&mut self, event: DecodedEvent) {
        match event {
            DecodedEvent::TaskOom(oom) => {
                crate::container::record_oom(&self.state.containers, &oom.container_id).await
            }
            DecodedEvent::ImageCreate(e) => self.sync_image_created(e.name).await,
            DecodedEvent::ImageUpdate(e) => self.sync_image(e.name, 0).await,
            DecodedEvent::ImageDelete(e) => self.sync_image_deleted(e.name).await,
            _ => {}
        }
    }

    async fn run_due_retries(&mut self) {
        let now = Instant::now();
        let due: Vec<(String, u32)> = self
            .retries
            .iter()
            .filter(|(_, r)| r.at <= now)
            .map(|(name, r)| (name.clone(), r.attempts))
            .collect();
        for (name, attempts) in due {
            self.sync_image(name, attempts).await;
        }
    }

    /// containerd's `UpdateImage` for `name`; `attempts` earlier failures.
    async fn sync_image(&mut self, name: String, attempts: u32) {
        self.retries.remove(&name);
        let outcome = self.state.images.sync_record(&name).await;
        self.synced(name, attempts, outcome);
    }

    /// A create event: a name the store already holds (this daemon's own
    /// pull) needs no containerd call.
    async fn sync_image_created(&mut self, name: String) {
        if self.retries.contains_key(&name) {
            return self.sync_image(name, 0).await;
        }
        let outcome = self.state.images.sync_created(&name).await;
        self.synced(name, 0, outcome);
    }

    /// A delete event: a name the store does not hold needs no containerd
    /// call.
    async fn sync_image_deleted(&mut self, name: String) {
        if self.retries.contains_key(&name) {
            return self.sync_image(name, 0).await;
        }
        let outcome = self.state.images.sync_deleted(&name).await;
        self.synced(name, 0, outcome);
    }

    /// Logs a sync; a failed one is retried later, with backoff, until
    /// `RETRY_ATTEMPTS` attempts failed.
    fn synced(
        &mut self,
        name: String,
        attempts: u32,
        outcome: cri_image::Result<cri_image::SyncOutcome>,
    ) {
        match outcome {
            Ok(outcome) => tracing::debug!(image = %name, ?outcome, "image store synced"),
            Err(e) if attempts + 1 >= RETRY_ATTEMPTS => tracing::warn!(
                image = %name,
                error = %e,
                attempts = attempts + 1,
                "giving up syncing image record until the next resync"
            ),
            Err(e) => {
                let delay = RETRY_INITIAL
                    .saturating_mul(1 << attempts.min(16))
                    .min(RETRY_MAX);
                tracing::debug!(image = %name, error = %e, ?delay, "image sync failed; retrying");
                self.retries.insert(
                    name,
                    Retry {
                        attempts: attempts + 1,
                        at: Instant::now() + delay,
                    },
                );
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cri_api::containerd::{Envelope, Events, Result};
    use futures::stream::BoxStream;
    use prost_types::Any;
    use std::sync::Mutex;

    /// containerd 1.6 as the monitor sees it: the subscription answers
    /// only with an event, here the `answer_after`-th marker published.
    struct SilentUntilMarker {
        answer_after: usize,
        start: Instant,
        published: Mutex<Vec<Duration>>,
        answered: tokio::sync::Notify,
    }

    #[async_trait::async_trait]
    impl Events for SilentUntilMarker {
        async fn subscribe(
            &self,
            filters: Vec<String>,
        ) -> Result<BoxStream<'static, Result<Envelope>>> {
            assert!(
                filters.iter().any(|f| f.contains(MARKER_TOPIC)),
                "{filters:?}"
            );
            self.answered.notified().await;
            Ok(futures::stream::empty().boxed())
        }

        async fn publish(&self, topic: &str, _event: Any) -> Result<()> {
            assert_eq!(topic, MARKER_TOPIC);
            let mut published = self.published.lock().unwrap();
            published.push(self.start.elapsed());
            if published.len() == self.answer_after {
                self.answered.notify_one();
            }
            Ok(())
        }
    }

    async fn markers_until_answer(answer_after: usize) -> Vec<Duration> {
        let events = SilentUntilMarker {
            answer_after,
            start: Instant::now(),
            published: Mutex::default(),
            answered: tokio::sync::Notify::new(),
        };
        let _stream = subscribe(&events).await.unwrap();
        events.published.into_inner().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_marker_goes_out_at_once_and_answers_the_subscription() {
        assert_eq!(markers_until_answer(1).await, vec![MARKER_FIRST]);
    }

    #[tokio::test(start_paused = true)]
    async fn lost_markers_are_sent_again_at_doubling_intervals_up_to_the_period() {
        let ms = Duration::from_millis;
        assert_eq!(
            markers_until_answer(9).await,
            vec![
                ms(2),
                ms(6),
                ms(14),
                ms(30),
                ms(62),
                ms(126),
                ms(226),
                ms(326),
                ms(426)
            ]
        );
    }
}
