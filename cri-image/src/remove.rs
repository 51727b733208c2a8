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
        // The references side by side, then the id record, synchronously.
        let deleted = futures::future::join_all(
            found
                .references
                .iter()
                .map(|name| self.delete_record(name, &found.id, false)),
        )
        .await;
        for (name, result) in found.references.iter().zip(deleted) {
            result?;
            self.store.remove_reference(name);
        }
        self.delete_record(&found.id, &found.id, true).await?;
        self.store.remove(&found.id);
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
