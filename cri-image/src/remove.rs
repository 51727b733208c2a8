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
        let mut names = found.references.clone();
        names.push(found.id.clone());
        let last = names.len() - 1;
        for (i, name) in names.iter().enumerate() {
            match self.containerd.images.delete(name, i == last).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    return Err(ImageError::containerd(
                        "delete image record",
                        format!("{name} of {}", found.id),
                    )(e))
                }
            }
            if i == last {
                self.store.remove(name);
            } else {
                self.store.remove_reference(name);
            }
        }
        self.mark_fs_info_stale();
        tracing::info!(id = %found.id, references = ?found.references, "removed image");
        Ok(())
    }
}
