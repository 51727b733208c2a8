//! The image store rebuilt from containerd's image records (at start-up, and for one record after it changes): what a record's target resolves to in the content store, and containerd's `updateImage`, which gives records that other clients made the CRI's labels and an id record.

use std::collections::HashMap;

use cri_api::containerd::{Containerd, Descriptor, ImageRecord};
use cri_store::image::Image;
use futures::StreamExt;

use super::error::{ImageError, Result};
use super::labels::{
    image_record_labels, IMAGE_LABEL_KEY, IMAGE_LABEL_VALUE, PINNED_LABEL_KEY, PINNED_LABEL_VALUE,
};
use super::manifest::{
    chain_id, is_index_type, parse_config, parse_index, parse_manifest, to_seam, HostPlatform,
};
use super::pull::{create_image_record, RecordFirst};
use super::reference::ImageRef;
use super::ImageSettings;

/// How many records are read from containerd at once.
const LOAD_CONCURRENCY: usize = 8;

/// How much of an image's content must be in the content store for its
/// record to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentCheck {
    /// Index, manifest and config (read anyway): enough at start-up.
    Metadata,
    /// Every layer blob too: a record that appears while its image is
    /// still being written (an import in progress) is not half-added.
    AllLayers,
}

/// The image a record points at, as the store keeps it. `references`
/// holds the record's name when it is a normalized repo tag or digest.
pub async fn image_from_record(
    containerd: &Containerd,
    platform: &HostPlatform,
    record: &ImageRecord,
    check: ContentCheck,
) -> Result<Image> {
    let read = |desc: Descriptor| async move {
        containerd
            .content
            .read(&desc.digest, 0, 0)
            .await
            .map_err(ImageError::containerd(
                "read content of image",
                record.name.clone(),
            ))
    };
    let bad = |digest: &str, message: String| ImageError::BadContent {
        reference: record.name.clone(),
        digest: digest.to_owned(),
        message,
    };
    let target = record.target.clone();
    let mut size = u64::try_from(target.size).unwrap_or_default();
    let mut body = read(target.clone()).await?;
    let mut manifest_digest = target.digest.clone();
    if is_index_type(&target.media_type) {
        let index = parse_index(&body).map_err(|m| bad(&target.digest, m))?;
        let chosen = platform
            .select(&index)
            .ok_or_else(|| ImageError::NoMatchingPlatform {
                reference: record.name.clone(),
                digest: target.digest.clone(),
                platform: platform.describe(),
            })?;
        let desc = to_seam(chosen);
        size += u64::try_from(desc.size).unwrap_or_default();
        manifest_digest = desc.digest.clone();
        body = read(desc).await?;
    }
    let manifest = parse_manifest(&body).map_err(|m| bad(&manifest_digest, m))?;
    let config_desc = to_seam(manifest.config());
    let config_body = read(config_desc.clone()).await?;
    let config = parse_config(&config_body).map_err(|m| bad(&config_desc.digest, m))?;
    size += u64::try_from(config_desc.size).unwrap_or_default();
    size += manifest.layers().iter().map(|l| l.size()).sum::<u64>();
    if check == ContentCheck::AllLayers {
        for layer in manifest.layers() {
            let digest = layer.digest().to_string();
            containerd
                .content
                .info(&digest)
                .await
                .map_err(ImageError::containerd(
                    "find layer of image",
                    format!("{} ({digest})", record.name),
                ))?;
        }
    }
    let references = match ImageRef::parse(&record.name) {
        Ok(r) if r.to_string() == record.name => vec![record.name.clone()],
        _ => Vec::new(),
    };
    Ok(Image {
        id: config_desc.digest,
        references,
        chain_id: chain_id(config.rootfs().diff_ids()),
        size,
        pinned: record.labels.get(PINNED_LABEL_KEY).map(String::as_str) == Some(PINNED_LABEL_VALUE),
        annotations: manifest.annotations().clone().unwrap_or_default(),
        config,
    })
}

/// containerd's `updateImage` for a record the CRI does not manage yet:
/// creates the id record and adds the labels to the named one.
async fn adopt(
    containerd: &Containerd,
    settings: &ImageSettings,
    record: &ImageRecord,
    image: &Image,
) -> Result<()> {
    let labels: HashMap<String, String> = image_record_labels(settings.is_pinned(&record.name));
    create_image_record(
        containerd,
        &image.id,
        &record.target,
        &labels,
        RecordFirst::Read,
    )
    .await?;
    create_image_record(
        containerd,
        &record.name,
        &record.target,
        &labels,
        RecordFirst::Read,
    )
    .await
}

/// Reads one record into an image, adopting it first if unmanaged.
pub async fn load_record(
    containerd: &Containerd,
    settings: &ImageSettings,
    platform: &HostPlatform,
    record: &ImageRecord,
    check: ContentCheck,
) -> Result<Image> {
    let mut image = image_from_record(containerd, platform, record, check).await?;
    if record.labels.get(IMAGE_LABEL_KEY).map(String::as_str) != Some(IMAGE_LABEL_VALUE) {
        adopt(containerd, settings, record, &image).await?;
        image.pinned |= settings.is_pinned(&record.name);
    }
    Ok(image)
}

/// Every image containerd has records of; records whose content is
/// incomplete are skipped with a warning, as containerd does.
pub async fn load_all(
    containerd: &Containerd,
    settings: &ImageSettings,
    platform: &HostPlatform,
) -> Result<Vec<Image>> {
    let records = containerd
        .images
        .list(Vec::new())
        .await
        .map_err(ImageError::containerd(
            "list image records",
            "in the namespace",
        ))?;
    let loaded: Vec<(String, Result<Image>)> = futures::stream::iter(records)
        .map(|record| async move {
            let image = load_record(
                containerd,
                settings,
                platform,
                &record,
                ContentCheck::Metadata,
            )
            .await;
            (record.name, image)
        })
        .buffer_unordered(LOAD_CONCURRENCY)
        .collect()
        .await;
    let mut images = Vec::new();
    for (name, image) in loaded {
        match image {
            Ok(image) => images.push(image),
            Err(e) if e.is_unavailable() => return Err(e),
            Err(e) => tracing::warn!(image = %name, error = %e, "skipping image record"),
        }
    }
    Ok(images)
}
