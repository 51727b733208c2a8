//! Images: pulling from registries into containerd (content, records, unpacked snapshots), the CRI image store kept in step with containerd's image records, and the logic of the ImageService RPCs.

mod auth;
mod error;
mod fetch;
mod fs_info;
pub mod hosts;
mod ingest;
mod labels;
mod list;
mod load;
pub mod manifest;
mod progress;
mod pull;
pub mod reference;
mod remove;
mod status;
mod unpack;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cri_api::containerd::Containerd;
use cri_api::v1::AuthConfig;
use cri_store::image::{Image, ImageStore};
use cri_store::StoreError;

pub use error::{ImageError, Result};
pub use labels::{IMAGE_LABEL_KEY, IMAGE_LABEL_VALUE, PINNED_LABEL_KEY, PINNED_LABEL_VALUE};
pub use reference::ImageRef;

use crate::config::RegistryConfig;
use crate::config::CriConfig;
use manifest::HostPlatform;
use pull::Puller;

/// The image settings of the CRI config, resolved once.
#[derive(Debug, Clone)]
pub struct ImageSettings {
    /// The snapshotter layers are unpacked into.
    pub snapshotter: String,
    pub registry: RegistryConfig,
    /// Layer downloads at once, per pull.
    pub max_concurrent_downloads: usize,
    /// Cancel a pull after this long without progress; zero: never.
    pub image_pull_progress_timeout: Duration,
    pub disable_snapshot_annotations: bool,
    pub discard_unpacked_layers: bool,
    /// Normalized references of pinned images (the sandbox image).
    pub pinned: Vec<String>,
    /// The snapshotter's directory, reported by ImageFsInfo.
    pub image_fs_path: PathBuf,
}

impl ImageSettings {
    /// From the CRI config: `sandbox_image` and `pinned_images` are pinned.
    pub fn from_config(cri: &CriConfig) -> Self {
        let pinned = std::iter::once(&cri.sandbox_image)
            .chain(cri.pinned_images.values())
            .filter_map(|r| match ImageRef::parse(r) {
                Ok(r) => Some(r.to_string()),
                Err(e) => {
                    tracing::error!(image = %r, error = %e, "pinned image reference does not parse");
                    None
                }
            })
            .collect();
        Self {
            snapshotter: cri.snapshotter.clone(),
            registry: cri.registry.clone(),
            max_concurrent_downloads: usize::try_from(cri.max_concurrent_downloads).unwrap_or(1).max(1),
            image_pull_progress_timeout: cri.image_pull_progress_timeout,
            disable_snapshot_annotations: cri.disable_snapshot_annotations,
            discard_unpacked_layers: cri.discard_unpacked_layers,
            pinned,
            image_fs_path: cri
                .containerd_root_dir
                .join(format!("io.containerd.snapshotter.v1.{}", cri.snapshotter)),
        }
    }

    /// Whether records named `name` get the pinned label.
    pub fn is_pinned(&self, name: &str) -> bool {
        self.pinned.iter().any(|p| p == name)
    }
}

/// The runtime's images: shared by the ImageService handlers and the
/// container and sandbox code that needs an image.
pub struct ImageManager {
    containerd: Containerd,
    settings: Arc<ImageSettings>,
    store: Arc<ImageStore>,
    puller: Arc<Puller>,
    platform: HostPlatform,
    loaded: AtomicBool,
    load_lock: tokio::sync::Mutex<()>,
    fs_usage: fs_info::UsageCache,
}

impl std::fmt::Debug for ImageManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageManager")
            .field("settings", &self.settings)
            .field("loaded", &self.loaded.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl ImageManager {
    pub fn new(containerd: Containerd, settings: ImageSettings, store: Arc<ImageStore>) -> Self {
        let settings = Arc::new(settings);
        Self {
            puller: Arc::new(Puller::new(containerd.clone(), Arc::clone(&settings), Arc::clone(&store))),
            containerd,
            settings,
            store,
            platform: HostPlatform::current(),
            loaded: AtomicBool::new(false),
            load_lock: tokio::sync::Mutex::new(()),
            fs_usage: fs_info::UsageCache::default(),
        }
    }

    pub fn settings(&self) -> &ImageSettings {
        &self.settings
    }

    /// The in-memory image store.
    pub fn store(&self) -> &Arc<ImageStore> {
        &self.store
    }

    /// Rebuilds the store from containerd's image records.
    pub async fn load(&self) -> Result<usize> {
        let _guard = self.load_lock.lock().await;
        let images = load::load_all(&self.containerd, &self.settings, &self.platform).await?;
        let count = images.len();
        self.store.replace_all(images);
        self.loaded.store(true, Ordering::SeqCst);
        tracing::info!(images = count, "image store loaded from containerd");
        Ok(count)
    }

    /// Loads the store unless it has been loaded: handlers call this so
    /// they never answer from an empty store while containerd was down at
    /// start-up.
    pub async fn ensure_loaded(&self) -> Result<()> {
        if self.loaded.load(Ordering::SeqCst) {
            return Ok(());
        }
        let guard = self.load_lock.lock().await;
        if self.loaded.load(Ordering::SeqCst) {
            return Ok(());
        }
        drop(guard);
        self.load().await.map(|_| ())
    }

    /// Retries [`Self::load`] until it succeeds (containerd may be down
    /// when the daemon starts), with a capped backoff.
    pub async fn load_with_retry(&self) {
        let mut delay = Duration::from_millis(500);
        loop {
            if self.loaded.load(Ordering::SeqCst) {
                return;
            }
            match self.load().await {
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?delay, "cannot load images from containerd yet");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// PullImage: pulls `image` and returns it as stored.
    pub async fn pull(&self, image: &str, auth: Option<&AuthConfig>) -> Result<Image> {
        let reference = parse_reference(image)?;
        // Kubelets send an empty AuthConfig when they have none.
        let auth = auth.filter(|a| **a != AuthConfig::default()).cloned();
        self.puller.pull(reference, auth).await
    }

    /// The image `reference` resolves to locally, pulled first if it is
    /// missing: what the sandbox code uses for the pause image.
    pub async fn ensure_image(&self, reference: &str, auth: Option<&AuthConfig>) -> Result<Image> {
        self.ensure_loaded().await?;
        match self.resolve_local(reference)? {
            Some(image) => Ok(image),
            None => self.pull(reference, auth).await,
        }
    }

    /// containerd's `localResolve`: a digest is an image id; anything else
    /// is normalized and looked up as a reference, and if that fails
    /// tried as an id or unique id prefix.
    pub fn resolve_local(&self, ref_or_id: &str) -> Result<Option<Image>> {
        let by_reference = if reference::is_digest(ref_or_id) {
            None
        } else {
            ImageRef::parse(ref_or_id)
                .ok()
                .and_then(|r| self.store.resolve(&r.to_string()))
        };
        if let Some(image) = by_reference {
            return Ok(Some(image));
        }
        match self.store.get(ref_or_id) {
            Ok(image) => Ok(Some(image)),
            Err(StoreError::Ambiguous { prefix, .. }) => Err(ImageError::Ambiguous { prefix }),
            Err(_) => Ok(None),
        }
    }

    /// Brings the store in line with containerd's record `name` after it
    /// was created, updated or deleted (by us or another client).
    pub async fn refresh(&self, name: &str) -> Result<()> {
        match self.containerd.images.get(name).await {
            Ok(record) => {
                let image = load::load_record(&self.containerd, &self.settings, &self.platform, &record).await?;
                self.store.upsert(image);
                Ok(())
            }
            Err(e) if e.is_not_found() => {
                if reference::is_digest(name) {
                    self.store.remove(name);
                } else {
                    self.store.remove_reference(name);
                }
                Ok(())
            }
            Err(e) => Err(ImageError::containerd("get image record", name.to_owned())(e)),
        }
    }
}

/// Parses a CRI image reference; a malformed one is InvalidArgument.
pub fn parse_reference(image: &str) -> Result<ImageRef> {
    ImageRef::parse(image).map_err(|e| ImageError::InvalidReference {
        reference: image.to_owned(),
        reason: e.reason,
    })
}
