//! RemoveImage: deletes every record of the image (repo tags, repo digests, then the id record synchronously so containerd collects its content and snapshots). Removing an unknown image succeeds; containers made from the image keep their own snapshots.

use super::error::{ImageError, Result};
use super::ImageManager;

impl ImageManager {
    /// RemoveImage.
    pub async fn remove(&self, image: &str) -> Result<()> {
        self.ensure_loaded().await?;
        let Some(found) = self.resolve_local(image)? else {
            return Ok(());
        };
        // Out of the store first, so the delete events of these names ask
        // containerd nothing; what could not be deleted is put back. The
        // references go side by side, then the id record, synchronously.
        self.store.remove(&found.id);
        let deleted = futures::future::join_all(
            found
                .references
                .iter()
                .map(|name| self.delete_record(name, &found.id, false)),
        )
        .await;
        let mut kept = Vec::new();
        let mut failed = None;
        for (name, result) in found.references.iter().zip(deleted) {
            if let Err(e) = result {
                kept.push(name.clone());
                failed.get_or_insert(e);
            }
        }
        let result = match failed {
            Some(e) => Err(e),
            None => self.delete_record(&found.id, &found.id, true).await,
        };
        if let Err(e) = result {
            self.store.upsert(cri_store::image::Image {
                references: kept,
                ..found
            });
            return Err(e);
        }
        self.mark_fs_info_stale();
        tracing::info!(id = %found.id, references = ?found.references, "removed image");
        Ok(())
    }

    /// Deletes the record `name` of image `id`; a missing one is fine.
    async fn delete_record(&self, name: &str, id: &str, sync: bool) -> Result<()> {
        match self.containerd.images.delete(name, sync).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(ImageError::containerd(
                "delete image record",
                format!("{name} of {id}"),
            )(e)),
        }
    }
}
