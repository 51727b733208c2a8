//! The image record names a pull of this daemon is writing. containerd
//! publishes `/images/create` as each record is made, before the pull has
//! put the image into the store; the event monitor's sync of such a name
//! waits for the pull to finish recording, then finds the name in the
//! store and asks containerd nothing. A pull that failed leaves the name
//! out of the store, and the sync reads the record as before.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use tokio::sync::watch;

/// Names being recorded, each with the channel its pull closes when done.
#[derive(Debug, Default)]
pub struct Recording {
    names: Mutex<HashMap<String, watch::Receiver<()>>>,
}

impl Recording {
    /// Marks `names` as being recorded until the guard drops.
    pub fn begin(&self, names: impl IntoIterator<Item = String>) -> RecordingGuard<'_> {
        let (done, watcher) = watch::channel(());
        let names: Vec<String> = names.into_iter().collect();
        let mut map = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        for name in &names {
            map.insert(name.clone(), watcher.clone());
        }
        RecordingGuard {
            recording: self,
            names,
            watcher,
            _done: done,
        }
    }

    /// Returns once no pull is recording `name` (at once if none is).
    pub async fn settled(&self, name: &str) {
        let watcher = self
            .names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned();
        if let Some(mut watcher) = watcher {
            // Err once the pull's guard dropped its sender: that is all
            // that is waited for.
            let _ = watcher.changed().await;
        }
    }
}

/// Unmarks its names on drop, then wakes whoever waits for them.
pub struct RecordingGuard<'a> {
    recording: &'a Recording,
    names: Vec<String>,
    /// Its own channel, to unmark only the names it still owns.
    watcher: watch::Receiver<()>,
    _done: watch::Sender<()>,
}

impl Drop for RecordingGuard<'_> {
    fn drop(&mut self) {
        let mut map = self
            .recording
            .names
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for name in &self.names {
            if map.get(name).is_some_and(|w| w.same_channel(&self.watcher)) {
                map.remove(name);
            }
        }
        // `_done` drops after this: the waiters wake with the map clean.
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_name_settles_when_its_recording_ends() {
        let recording = Arc::new(Recording::default());
        // Nothing recorded: at once.
        recording.settled("a").await;

        let guard = recording.begin(["a".to_owned(), "b".to_owned()]);
        let waiter = {
            let recording = Arc::clone(&recording);
            tokio::spawn(async move { recording.settled("a").await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "settled while still recording");
        drop(guard);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("settled after the guard dropped")
            .expect("waiter task");
        assert!(recording
            .names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty());
    }

    #[tokio::test]
    async fn a_later_recording_of_the_same_name_keeps_it() {
        let recording = Recording::default();
        let first = recording.begin(["id".to_owned()]);
        let second = recording.begin(["id".to_owned()]);
        drop(first);
        let waiting = recording.settled("id");
        tokio::pin!(waiting);
        let finished = tokio::time::timeout(Duration::from_millis(20), &mut waiting).await;
        assert!(
            finished.is_err(),
            "the second recording still holds the name"
        );
        drop(second);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("settled once both ended");
    }
}
