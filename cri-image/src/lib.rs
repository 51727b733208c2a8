//! Images: pulling from registries into containerd (content, records, unpacked snapshots), the CRI image store kept in step with containerd's image records, and the logic of the ImageService RPCs.
#![doc = include_str!("../README.md")]

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
mod recording;
pub mod reference;
mod remove;
mod status;
mod sync;
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
pub use fs_info::ActiveUsageObserver;
pub use labels::{IMAGE_LABEL_KEY, IMAGE_LABEL_VALUE, PINNED_LABEL_KEY, PINNED_LABEL_VALUE};
pub use reference::ImageRef;
pub use sync::SyncOutcome;

use cri_config::CriConfig;
use cri_config::RegistryConfig;
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
    /// The pinned images as configured (the sandbox image first).
    pub pinned_refs: Vec<String>,
    /// Their normalized references, worked out on first use: the first
    /// reference parse of a process compiles the grammar's regex (about
    /// 75 ms), which is not to delay start-up.
    pub pinned: std::sync::OnceLock<Vec<String>>,
    /// Every snapshotter images are unpacked into: the default first, then
    /// the runtime handlers' own (ImageFsInfo reports one filesystem each).
    pub snapshotters: Vec<String>,
    /// containerd's root as configured: where a snapshotter's directory
    /// is assumed to be when containerd does not export its `root`.
    pub containerd_root_dir: PathBuf,
}

impl ImageSettings {
    /// From the CRI config: `sandbox_image` and `pinned_images` are pinned.
    pub fn from_config(cri: &CriConfig) -> Self {
        let pinned_refs = std::iter::once(&cri.sandbox_image)
            .chain(cri.pinned_images.values())
            .cloned()
            .collect();
        Self {
            snapshotter: cri.snapshotter.clone(),
            registry: cri.registry.clone(),
            max_concurrent_downloads: usize::try_from(cri.max_concurrent_downloads)
                .unwrap_or(1)
                .max(1),
            image_pull_progress_timeout: cri.image_pull_progress_timeout,
            disable_snapshot_annotations: cri.disable_snapshot_annotations,
            discard_unpacked_layers: cri.discard_unpacked_layers,
            pinned_refs,
            pinned: std::sync::OnceLock::new(),
            snapshotters: std::iter::once(&cri.snapshotter)
                .chain(cri.runtimes.values().filter_map(|r| r.snapshotter.as_ref()))
                .fold(Vec::new(), |mut all, s| {
                    if !s.is_empty() && !all.contains(s) {
                        all.push(s.clone());
                    }
                    all
                }),
            containerd_root_dir: cri.containerd_root_dir.clone(),
        }
    }

    /// Whether records named `name` get the pinned label.
    pub fn is_pinned(&self, name: &str) -> bool {
        self.pinned
            .get_or_init(|| {
                self.pinned_refs
                    .iter()
                    .filter_map(|r| match ImageRef::parse(r) {
                        Ok(r) => Some(r.to_string()),
                        Err(e) => {
                            tracing::error!(image = %r, error = %e, "pinned image reference does not parse");
                            None
                        }
                    })
                    .collect()
            })
            .iter()
            .any(|p| p == name)
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
    load_started: AtomicBool,
    /// Whether an event monitor keeps the store in step: `None` without
    /// one, `Some(subscribed)` with one.
    event_subscription: tokio::sync::watch::Sender<Option<bool>>,
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
            puller: Arc::new(Puller::new(
                containerd.clone(),
                Arc::clone(&settings),
                Arc::clone(&store),
            )),
            containerd,
            settings,
            store,
            platform: HostPlatform::current(),
            loaded: AtomicBool::new(false),
            load_started: AtomicBool::new(false),
            event_subscription: tokio::sync::watch::Sender::new(None),
            load_lock: tokio::sync::Mutex::new(()),
            fs_usage: fs_info::UsageCache::default(),
        }
    }

    /// Records successful pulls in the daemon's metrics.
    pub fn set_metrics(&self, metrics: Arc<dyn PullObserver>) {
        self.puller.set_metrics(metrics);
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
        self.load_started.store(true, Ordering::SeqCst);
        let _guard = self.load_lock.lock().await;
        let images = load::load_all(&self.containerd, &self.settings, &self.platform).await?;
        let count = images.len();
        self.store.replace_all(images);
        self.loaded.store(true, Ordering::SeqCst);
        tracing::info!(images = count, "image store loaded from containerd");
        Ok(count)
    }

    /// The event monitor's state: started (`false`) or subscribed (`true`).
    pub fn set_event_subscription(&self, subscribed: bool) {
        self.event_subscription.send_replace(Some(subscribed));
    }

    /// Waits (at most `limit`) until the event monitor, if there is one,
    /// is subscribed: a full load after that cannot miss a change.
    pub async fn wait_event_subscription(&self, limit: std::time::Duration) {
        let mut state = self.event_subscription.subscribe();
        let subscribed = state.wait_for(|s| !matches!(s, Some(false)));
        if tokio::time::timeout(limit, subscribed).await.is_err() {
            tracing::debug!(?limit, "loading images before the event subscription is up");
        }
    }

    /// Whether a full load has begun (it may still be running).
    pub fn load_started(&self) -> bool {
        self.load_started.load(Ordering::SeqCst)
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

    /// PullImage: pulls `image` and returns it as stored.
    pub async fn pull(&self, image: &str, auth: Option<&AuthConfig>) -> Result<Image> {
        let reference = parse_reference(image)?;
        // Kubelets send an empty AuthConfig when they have none.
        let auth = auth.filter(|a| **a != AuthConfig::default()).cloned();
        let pulled = self.puller.pull(reference, auth).await;
        if pulled.is_ok() {
            self.mark_fs_info_stale();
        }
        pulled
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
}

/// Parses a CRI image reference; a malformed one is InvalidArgument.
pub fn parse_reference(image: &str) -> Result<ImageRef> {
    ImageRef::parse(image).map_err(|e| ImageError::InvalidReference {
        reference: image.to_owned(),
        reason: e.reason,
    })
}

/// Told of every completed pull (the daemon's Prometheus instruments).
pub trait PullObserver: Send + Sync + std::fmt::Debug {
    /// A pull of `bytes` (the layers fetched) took `elapsed`.
    fn image_pulled(&self, bytes: u64, elapsed: std::time::Duration);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::HashMap;
    use std::sync::Mutex;

    use bytes::Bytes;
    use cri_api::containerd::{
        ContainerdError, Descriptor, ImageRecord, MockContainers, MockContent, MockDiff,
        MockEvents, MockImages, MockIntrospection, MockLeases, MockNamespaces, MockSnapshots,
        MockTasks, MockVersion,
    };

    use super::manifest::{media, sha256_digest};
    use super::*;

    pub(super) const NAME: &str = "registry.example/app:1";
    pub(super) const PAUSE: &str = "registry.example/pause:3.8";

    /// A one-layer image in a fake content store: (manifest descriptor,
    /// config digest, blobs by digest).
    pub(super) fn fake_image(user: &str) -> (Descriptor, String, HashMap<String, Bytes>) {
        let arch = HostPlatform::current().architecture;
        let config = serde_json::json!({
            "architecture": arch, "os": "linux",
            "config": {"User": user},
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", "d".repeat(64))]}
        })
        .to_string();
        let config_digest = sha256_digest(config.as_bytes());
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": media::OCI_CONFIG, "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": media::OCI_LAYER_GZIP, "digest": format!("sha256:{}", "e".repeat(64)), "size": 1000}],
            "annotations": {"org.example/a": "b"}
        })
        .to_string();
        let desc = Descriptor {
            media_type: media::OCI_MANIFEST.to_owned(),
            digest: sha256_digest(manifest.as_bytes()),
            size: manifest.len() as i64,
            annotations: HashMap::new(),
        };
        let blobs = HashMap::from([
            (desc.digest.clone(), Bytes::from(manifest)),
            (config_digest.clone(), Bytes::from(config)),
        ]);
        (desc, config_digest, blobs)
    }

    pub(super) fn containerd(images: MockImages, content: MockContent) -> Containerd {
        Containerd {
            containers: Arc::new(MockContainers::new()),
            tasks: Arc::new(MockTasks::new()),
            content: Arc::new(content),
            images: Arc::new(images),
            snapshots: Arc::new(MockSnapshots::new()),
            diff: Arc::new(MockDiff::new()),
            leases: Arc::new(MockLeases::new()),
            events: Arc::new(MockEvents::new()),
            namespaces: Arc::new(MockNamespaces::new()),
            version: Arc::new(MockVersion::new()),
            introspection: Arc::new(MockIntrospection::new()),
        }
    }

    pub(super) fn content_with(blobs: HashMap<String, Bytes>) -> MockContent {
        let mut content = MockContent::new();
        content.expect_read().returning(move |digest, _, _| {
            blobs
                .get(digest)
                .cloned()
                .ok_or_else(|| ContainerdError::NotFound {
                    op: "read",
                    what: digest.to_owned(),
                })
        });
        content
    }

    pub(super) fn settings() -> ImageSettings {
        ImageSettings {
            snapshotter: "overlayfs".into(),
            registry: RegistryConfig::default(),
            max_concurrent_downloads: 3,
            image_pull_progress_timeout: Duration::from_secs(300),
            disable_snapshot_annotations: true,
            discard_unpacked_layers: false,
            pinned_refs: vec![PAUSE.to_owned()],
            pinned: std::sync::OnceLock::new(),
            snapshotters: vec!["overlayfs".into()],
            containerd_root_dir: PathBuf::from("/var/lib/containerd"),
        }
    }

    pub(super) fn record(name: &str, target: &Descriptor, labels: &[(&str, &str)]) -> ImageRecord {
        ImageRecord {
            name: name.to_owned(),
            target: target.clone(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..ImageRecord::default()
        }
    }

    #[test]
    fn pinned_references_are_normalized_on_first_use() {
        let mut config = CriConfig {
            sandbox_image: "pause:3.9".into(),
            ..CriConfig::default()
        };
        config
            .pinned_images
            .insert("bad".into(), "Not A Reference".into());
        let settings = ImageSettings::from_config(&config);
        assert!(settings.pinned.get().is_none(), "parsed at start-up");
        assert!(settings.is_pinned("docker.io/library/pause:3.9"));
        assert!(!settings.is_pinned("pause:3.9"), "compared normalized");
        // The one that does not parse is left out.
        assert_eq!(settings.pinned.get().map(Vec::len), Some(1));
    }

    #[tokio::test]
    async fn load_builds_the_store_and_adopts_unmanaged_records() {
        let (desc, config_digest, blobs) = fake_image("1000:1000");
        let config_len = blobs[&config_digest].len() as u64;
        let managed = [(IMAGE_LABEL_KEY, IMAGE_LABEL_VALUE)];
        let listed = vec![
            record(NAME, &desc, &managed),
            record(&config_digest, &desc, &managed),
            // Imported by another client: no CRI labels yet.
            record(PAUSE, &desc, &[]),
        ];
        let written: Arc<Mutex<Vec<ImageRecord>>> = Arc::default();
        let mut images = MockImages::new();
        let held = listed.clone();
        images.expect_list().returning(move |_| Ok(listed.clone()));
        images.expect_get().returning(move |name| {
            held.iter()
                .find(|r| r.name == name)
                .cloned()
                .ok_or_else(|| ContainerdError::NotFound {
                    op: "get image",
                    what: name.to_owned(),
                })
        });
        let seen = Arc::clone(&written);
        images.expect_update().returning(move |r, _| {
            seen.lock().unwrap().push(r.clone());
            Ok(r)
        });
        let manager = ImageManager::new(
            containerd(images, content_with(blobs)),
            settings(),
            Arc::new(ImageStore::default()),
        );
        assert_eq!(manager.load().await.unwrap(), 3);

        let image = manager.resolve_local(NAME).unwrap().unwrap();
        assert_eq!(image.id, config_digest);
        assert_eq!(image.references, [NAME, PAUSE]);
        assert!(image.pinned, "the sandbox image name pins it");
        assert_eq!(image.size, desc.size as u64 + config_len + 1000);
        assert_eq!(image.annotations["org.example/a"], "b");
        assert_eq!(
            manager
                .resolve_local(&config_digest[..20])
                .unwrap()
                .unwrap()
                .id,
            config_digest
        );
        assert!(manager
            .resolve_local("registry.example/other:1")
            .unwrap()
            .is_none());

        // The id record and the unmanaged record got the CRI labels, pinned.
        let written = written.lock().unwrap();
        let names: Vec<&str> = written.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, [config_digest.as_str(), PAUSE]);
        assert!(written.iter().all(
            |r| r.labels.get(PINNED_LABEL_KEY).map(String::as_str) == Some(PINNED_LABEL_VALUE)
        ));
    }

    #[tokio::test]
    async fn remove_deletes_every_record_the_id_last_and_synchronously() {
        let (desc, config_digest, blobs) = fake_image("");
        let managed = [(IMAGE_LABEL_KEY, IMAGE_LABEL_VALUE)];
        let listed = vec![
            record(NAME, &desc, &managed),
            record(&config_digest, &desc, &managed),
        ];
        let deleted: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
        let mut images = MockImages::new();
        images.expect_list().returning(move |_| Ok(listed.clone()));
        let seen = Arc::clone(&deleted);
        images.expect_delete().returning(move |name, sync| {
            seen.lock().unwrap().push((name.to_owned(), sync));
            if name.contains('@') {
                Err(ContainerdError::NotFound {
                    op: "delete image",
                    what: name.to_owned(),
                })
            } else {
                Ok(())
            }
        });
        let manager = ImageManager::new(
            containerd(images, content_with(blobs)),
            settings(),
            Arc::new(ImageStore::default()),
        );
        manager.remove(NAME).await.unwrap();
        assert_eq!(
            *deleted.lock().unwrap(),
            [(NAME.to_owned(), false), (config_digest.clone(), true)]
        );
        assert!(manager.resolve_local(&config_digest).unwrap().is_none());
        assert!(manager.store().list().is_empty());
        // Removing again is not an error.
        manager.remove(NAME).await.unwrap();
        assert!(manager.status(NAME, false).await.unwrap().image.is_none());
    }

    #[tokio::test]
    async fn a_failed_remove_keeps_the_names_containerd_still_has() {
        const OTHER: &str = "registry.example/app:2";
        let (desc, config_digest, blobs) = fake_image("");
        let managed = [(IMAGE_LABEL_KEY, IMAGE_LABEL_VALUE)];
        let listed = vec![
            record(NAME, &desc, &managed),
            record(OTHER, &desc, &managed),
            record(&config_digest, &desc, &managed),
        ];
        let mut images = MockImages::new();
        images.expect_list().returning(move |_| Ok(listed.clone()));
        // OTHER cannot be deleted; the id record is then not touched.
        images
            .expect_delete()
            .withf(|name, _| name == OTHER)
            .times(1)
            .returning(|_, _| {
                Err(ContainerdError::Unavailable {
                    address: "/run/containerd/containerd.sock".into(),
                    message: "connection refused".into(),
                })
            });
        images
            .expect_delete()
            .withf(|name, _| name == NAME)
            .times(1)
            .returning(|_, _| Ok(()));
        let manager = ImageManager::new(
            containerd(images, content_with(blobs)),
            settings(),
            Arc::new(ImageStore::default()),
        );
        assert!(manager.remove(NAME).await.is_err());
        assert!(manager.resolve_local(NAME).unwrap().is_none(), "deleted");
        let kept = manager.resolve_local(OTHER).unwrap().unwrap();
        assert_eq!(kept.id, config_digest);
        assert_eq!(kept.references, [OTHER]);
    }

    #[tokio::test]
    async fn malformed_references_are_invalid_arguments() {
        let manager = ImageManager::new(
            containerd(MockImages::new(), MockContent::new()),
            settings(),
            Arc::new(ImageStore::default()),
        );
        assert!(matches!(
            manager.pull("Not A Ref", None).await,
            Err(ImageError::InvalidReference { .. })
        ));
    }
}
