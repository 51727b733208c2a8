//! Keeping the image store in step with containerd after start-up:
//! containerd's `UpdateImage`, run for the record an `/images/create`,
//! `/images/update` or `/images/delete` event names, whoever made the
//! change (`ctr images import`, a preloader, nerdctl, this daemon).

use cri_api::containerd::ImageRecord;

use super::error::{ImageError, Result};
use super::load::{load_record, ContentCheck};
use super::reference::is_digest;
use super::ImageManager;

/// What a sync did to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOutcome {
    /// The record exists: its image is in the store under `id`.
    Present { id: String },
    /// The record is gone; `removed_image` is the image that went with it
    /// (its last reference, and no id record left).
    Gone { removed_image: Option<String> },
}

impl ImageManager {
    /// Brings the store in line with containerd's record `name` as it is
    /// now. Serialized with [`load`](Self::load), so a full reload never
    /// undoes a newer sync. An image whose layers are not all in the
    /// content store yet is an error (retry later), never half-added.
    pub async fn sync_record(&self, name: &str) -> Result<SyncOutcome> {
        let _guard = self.load_lock.lock().await;
        match self.containerd.images.get(name).await {
            Ok(record) => self.sync_present(&record).await,
            Err(e) if e.is_not_found() => self.sync_gone(name).await,
            Err(e) => Err(ImageError::containerd("get image record", name.to_owned())(
                e,
            )),
        }
    }

    /// [`sync_record`](Self::sync_record) for an `/images/delete` event:
    /// a name the store holds neither as a reference nor as an image id
    /// changes nothing, so containerd is not asked. RemoveImage drops its
    /// names from the store before their events arrive.
    pub async fn sync_deleted(&self, name: &str) -> Result<SyncOutcome> {
        if !self.holds(name) {
            return Ok(SyncOutcome::Gone {
                removed_image: None,
            });
        }
        self.sync_record(name).await
    }

    /// [`sync_record`](Self::sync_record) for an `/images/create` event:
    /// a name the store already holds is the record a pull of this daemon
    /// just wrote, so containerd is not asked again. A name a pull is
    /// still recording is waited for first: the event comes before the
    /// pull puts the image into the store. (A record deleted and made
    /// anew by someone else is synced at its delete event, which comes
    /// first on the same stream and reads the record as it is then.)
    pub async fn sync_created(&self, name: &str) -> Result<SyncOutcome> {
        self.puller.recording.settled(name).await;
        match self.store_id_of(name) {
            Some(id) => Ok(SyncOutcome::Present { id }),
            None => self.sync_record(name).await,
        }
    }

    fn holds(&self, name: &str) -> bool {
        self.store_id_of(name).is_some()
    }

    /// The id of the stored image `name` is a reference or the id of.
    fn store_id_of(&self, name: &str) -> Option<String> {
        if let Some(image) = self.store.resolve(name) {
            return Some(image.id);
        }
        let image = self.store.get(name).ok().filter(|_| is_digest(name))?;
        (image.id == name).then_some(image.id)
    }

    async fn sync_present(&self, record: &ImageRecord) -> Result<SyncOutcome> {
        let image = load_record(
            &self.containerd,
            &self.settings,
            &self.platform,
            record,
            ContentCheck::AllLayers,
        )
        .await?;
        let id = image.id.clone();
        self.store.upsert(image);
        self.mark_fs_info_stale();
        Ok(SyncOutcome::Present { id })
    }

    /// The record `name` no longer exists: drop the reference; the image
    /// goes when neither a reference nor its id record is left (an id
    /// record alone keeps an image listed, untagged, as in containerd).
    async fn sync_gone(&self, name: &str) -> Result<SyncOutcome> {
        let image = if is_digest(name) {
            self.store.get(name).ok()
        } else {
            self.store.remove_reference(name)
        };
        let Some(image) = image else {
            return Ok(SyncOutcome::Gone {
                removed_image: None,
            });
        };
        if !image.references.is_empty() {
            return Ok(SyncOutcome::Gone {
                removed_image: None,
            });
        }
        let id_record_left = if image.id == name {
            false
        } else {
            match self.containerd.images.get(&image.id).await {
                Ok(_) => true,
                Err(e) if e.is_not_found() => false,
                Err(e) => {
                    return Err(ImageError::containerd("get image record", image.id.clone())(e))
                }
            }
        };
        if id_record_left {
            return Ok(SyncOutcome::Gone {
                removed_image: None,
            });
        }
        self.store.remove(&image.id);
        self.mark_fs_info_stale();
        Ok(SyncOutcome::Gone {
            removed_image: Some(image.id),
        })
    }
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
