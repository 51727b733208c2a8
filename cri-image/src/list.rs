//! ListImages: every stored image as CRI reports it, or only the one the filter's image resolves to.

use cri_api::v1::{Image as CriImage, ImageFilter};

use super::error::Result;
use super::status::to_cri_image;
use super::ImageManager;

impl ImageManager {
    /// ListImages.
    pub async fn list(&self, filter: Option<&ImageFilter>) -> Result<Vec<CriImage>> {
        self.ensure_loaded().await?;
        let wanted = filter
            .and_then(|f| f.image.as_ref())
            .map(|spec| spec.image.as_str())
            .filter(|image| !image.is_empty());
        Ok(match wanted {
            Some(image) => self
                .resolve_local(image)?
                .iter()
                .map(to_cri_image)
                .collect(),
            None => self.store.list().iter().map(to_cri_image).collect(),
        })
    }
}
