//! PullImage: resolve, fetch and unpack under a lease, then create the image records (id, repo tag, repo digest) and update the store. Concurrent pulls of one reference with the same credentials share one run; a run that receives nothing for `image_pull_progress_timeout` is cancelled and leaves no image record.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use cri_api::containerd::{Containerd, ContainerdError, Descriptor, ImageRecord};
use cri_api::v1::AuthConfig;
use cri_store::image::{Image, ImageStore};
use futures::future::{BoxFuture, Shared};
use futures::FutureExt;
use oci_spec::image::ImageConfiguration;
use sha2::{Digest as _, Sha256};
use tracing::Instrument;

use super::error::{ImageError, Result};
use super::fetch::{ClientCache, Remote};
use super::hosts;
use super::ingest::{set_label, store_blob, Kept, Source};
use super::labels::{
    append_distribution_source, children_gc_labels, distribution_source_key, gc_snapshot_key,
    image_record_labels, label_fits, GC_EXPIRE, IMAGE_LABEL_KEY, IMAGE_LABEL_VALUE,
    PINNED_LABEL_KEY, PINNED_LABEL_VALUE,
};
use super::manifest::{
    chain_id, is_index_type, is_layer_type, is_manifest_type, parse_config, parse_index,
    parse_manifest, to_seam, HostPlatform,
};
use super::progress::Progress;
use super::reference::ImageRef;
use super::unpack::{
    annotate_layers, remove_extract, unique_part, unpack, ActiveExtracts, KeyedLocks,
};
use super::ImageSettings;

/// How long a pull's lease keeps its content if it is never deleted.
const LEASE_EXPIRY: Duration = Duration::from_secs(24 * 60 * 60);

type SharedPull = Shared<BoxFuture<'static, Result<Image, Arc<ImageError>>>>;

/// Runs pulls; shared by every PullImage call.
pub struct Puller {
    containerd: Containerd,
    settings: Arc<ImageSettings>,
    store: Arc<ImageStore>,
    chain_locks: Arc<KeyedLocks>,
    platform: HostPlatform,
    inflight: Mutex<HashMap<String, SharedPull>>,
    /// Registry clients reused from pull to pull.
    clients: ClientCache,
    /// Where finished pulls are recorded, once the daemon set it.
    metrics: std::sync::OnceLock<Arc<dyn crate::PullObserver>>,
    /// The record names pulls are writing (events for them wait).
    pub(crate) recording: crate::recording::Recording,
}

impl std::fmt::Debug for Puller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Puller")
            .field("platform", &self.platform)
            .finish_non_exhaustive()
    }
}

/// Everything one pull run works with.
pub struct PullContext {
    pub containerd: Containerd,
    pub settings: Arc<ImageSettings>,
    pub reference: ImageRef,
    pub remote: Remote,
    pub lease: String,
    pub chain_locks: Arc<KeyedLocks>,
    pub extracts: ActiveExtracts,
}

/// What a successful fetch and unpack produced.
pub struct Pulled {
    pub target: Descriptor,
    /// The manifest's annotations.
    pub annotations: HashMap<String, String>,
    pub config: ImageConfiguration,
    pub config_digest: String,
    pub chain_id: String,
    pub size: u64,
}

impl Puller {
    pub fn new(
        containerd: Containerd,
        settings: Arc<ImageSettings>,
        store: Arc<ImageStore>,
    ) -> Self {
        Self {
            containerd,
            settings,
            store,
            chain_locks: Arc::default(),
            platform: HostPlatform::current(),
            inflight: Mutex::default(),
            clients: ClientCache::default(),
            metrics: std::sync::OnceLock::new(),
            recording: Default::default(),
        }
    }

    /// Records every later successful pull (bytes fetched, duration) in
    /// `metrics`; the first call wins.
    pub fn set_metrics(&self, metrics: Arc<dyn crate::PullObserver>) {
        if self.metrics.set(metrics).is_err() {
            tracing::debug!("pull metrics already set");
        }
    }

    /// Pulls `reference`, joining a pull of the same reference with the
    /// same credentials that is already running. The run continues even
    /// if every caller goes away, so its cleanup always happens.
    pub async fn pull(
        self: &Arc<Self>,
        reference: ImageRef,
        auth: Option<AuthConfig>,
    ) -> Result<Image> {
        let key = format!("{reference}\n{}", auth_fingerprint(auth.as_ref()));
        let shared = {
            let mut inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
            match inflight.get(&key) {
                Some(running) => {
                    tracing::debug!(image = %reference, "joining a running pull");
                    running.clone()
                }
                None => {
                    let this = Arc::clone(self);
                    let task_key = key.clone();
                    let shown = reference.to_string();
                    // A child of the caller that started the pull; callers
                    // that join it are not linked.
                    let span = tracing::info_span!("image.pull", image = %shown);
                    let handle = tokio::spawn(
                        async move {
                            let result = this.run(reference, auth).await.map_err(Arc::new);
                            this.inflight
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .remove(&task_key);
                            result
                        }
                        .instrument(span),
                    );
                    let shared = async move {
                        handle.await.unwrap_or_else(|e| {
                            Err(Arc::new(ImageError::Task {
                                reference: shown,
                                message: e.to_string(),
                            }))
                        })
                    }
                    .boxed()
                    .shared();
                    inflight.insert(key, shared.clone());
                    shared
                }
            }
        };
        shared.await.map_err(ImageError::Shared)
    }

    async fn run(&self, reference: ImageRef, auth: Option<AuthConfig>) -> Result<Image> {
        let started = std::time::Instant::now();
        let hosts = hosts::resolve(&self.settings.registry, reference.domain()).map_err(|e| {
            ImageError::Config {
                reference: reference.to_string(),
                message: e.to_string(),
            }
        })?;
        let progress = Arc::new(Progress::default());
        let timeout = self.settings.image_pull_progress_timeout;
        let auth_key = auth_fingerprint(auth.as_ref());
        let remote = tokio::select! {
            remote = Remote::connect(&reference, hosts, (auth.as_ref(), &auth_key), &self.settings.registry, &self.clients, Arc::clone(&progress)) => remote?,
            () = progress.stalled(timeout) => return Err(ImageError::ProgressTimeout { reference: reference.to_string(), timeout }),
        };
        let resolved = tokio::select! {
            resolved = remote.resolve() => resolved,
            () = progress.stalled(timeout) => Err(ImageError::ProgressTimeout { reference: reference.to_string(), timeout }),
        };
        let result = match resolved {
            Ok(resolved) => match self.present(&reference, &resolved).await {
                Some(image) => Ok(image),
                None => self.fetch(&reference, remote, resolved, &progress).await,
            },
            Err(e) => Err(e),
        };
        let (_, bytes) = progress.snapshot();
        match &result {
            Ok(image) => {
                if let Some(metrics) = self.metrics.get() {
                    metrics.image_pulled(bytes, started.elapsed());
                }
                tracing::info!(image = %reference, id = %image.id, bytes, elapsed = ?started.elapsed(), "pulled image")
            }
            Err(e) => {
                tracing::warn!(image = %reference, error = %e, bytes, elapsed = ?started.elapsed(), "pull failed")
            }
        }
        result
    }

    /// The full way: fetch what containerd lacks and unpack it under a
    /// lease, then write the image records.
    async fn fetch(
        &self,
        reference: &ImageRef,
        remote: Remote,
        resolved: (Descriptor, Bytes),
        progress: &Progress,
    ) -> Result<Image> {
        let timeout = self.settings.image_pull_progress_timeout;
        let lease = self.create_lease(reference).await?;
        let ctx = Arc::new(PullContext {
            containerd: self.containerd.clone(),
            settings: Arc::clone(&self.settings),
            reference: reference.clone(),
            remote,
            lease: lease.clone(),
            chain_locks: Arc::clone(&self.chain_locks),
            extracts: ActiveExtracts::default(),
        });
        let fetched = tokio::select! {
            pulled = fetch_and_unpack(&ctx, &self.platform, resolved) => pulled,
            () = progress.stalled(timeout) => Err(ImageError::ProgressTimeout { reference: reference.to_string(), timeout }),
        };
        let result = match fetched {
            Ok(pulled) => self.record(reference, pulled).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            for key in ctx.extracts.take() {
                remove_extract(&ctx, &key).await;
            }
        }
        if let Err(e) = self.containerd.leases.delete(&lease, false).await {
            tracing::warn!(lease, error = %e, "failed to delete pull lease; it expires in 24h");
        }
        result
    }

    async fn create_lease(&self, reference: &ImageRef) -> Result<String> {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let part = unique_part();
        let random = part.split_once('-').map_or(part.as_str(), |(_, r)| r);
        let id = format!("{nanos}-{random}");
        let expire = rfc3339(SystemTime::now() + LEASE_EXPIRY);
        self.containerd
            .leases
            .create(&id, HashMap::from([(GC_EXPIRE.to_owned(), expire)]))
            .await
            .map_err(ImageError::containerd(
                "create lease for pull of",
                reference.to_string(),
            ))?;
        Ok(id)
    }

    /// The short path of a pull (the kubelet's `Always` policy on an image
    /// it has): when the resolved manifest, its config and the unpacked
    /// snapshot are all in containerd with the labels a full pull would
    /// set, and the three image records already point at the manifest,
    /// nothing is fetched, written or leased. The checks run side by side;
    /// the image config comes from the store. `None` sends the pull the
    /// full way, which puts right whatever is missing.
    async fn present(&self, reference: &ImageRef, resolved: &(Descriptor, Bytes)) -> Option<Image> {
        let (target, target_body) = resolved;
        let discard = self.settings.discard_unpacked_layers;
        let content = &self.containerd.content;
        // (digest, the labels a full pull leaves on it)
        let mut blobs: Vec<(String, HashMap<String, String>)> = Vec::new();
        let (manifest_desc, manifest_body, child) = if is_index_type(&target.media_type) {
            let index = parse_index(target_body).ok()?;
            let children: Vec<(String, String)> = index
                .manifests()
                .iter()
                .map(|d| (d.media_type().to_string(), d.digest().to_string()))
                .collect();
            blobs.push((
                target.digest.clone(),
                children_gc_labels(
                    children.iter().map(|(m, d)| (m.as_str(), d.as_str())),
                    discard,
                ),
            ));
            let desc = to_seam(self.platform.select(&index)?);
            if !is_manifest_type(&desc.media_type) {
                return None;
            }
            let body = content.read(&desc.digest, 0, 0).await.ok()?;
            check_blob(&desc, &body).ok()?;
            (desc.clone(), body, Some(desc))
        } else if is_manifest_type(&target.media_type) {
            (target.clone(), target_body.clone(), None)
        } else {
            return None;
        };
        let manifest = parse_manifest(&manifest_body).ok()?;
        let config_desc = to_seam(manifest.config());
        let layers: Vec<Descriptor> = manifest.layers().iter().map(to_seam).collect();
        let stored = self.store.get(&config_desc.digest).ok()?;
        if stored.id != config_desc.digest {
            return None;
        }
        let diff_ids = stored.config.rootfs().diff_ids();
        if diff_ids.len() != layers.len() || layers.is_empty() {
            return None;
        }
        let top = chain_id(diff_ids);
        let children =
            std::iter::once((config_desc.media_type.as_str(), config_desc.digest.as_str())).chain(
                layers
                    .iter()
                    .map(|l| (l.media_type.as_str(), l.digest.as_str())),
            );
        blobs.push((
            manifest_desc.digest.clone(),
            children_gc_labels(children, discard),
        ));
        blobs.push((
            config_desc.digest.clone(),
            HashMap::from([(gc_snapshot_key(&self.settings.snapshotter), top.clone())]),
        ));

        let pinned = self.settings.is_pinned(&reference.to_string());
        let labels = image_record_labels(pinned);
        let names: Vec<String> = [
            Some(config_desc.digest.clone()),
            reference.repo_tag(),
            Some(reference.repo_digest(&target.digest)),
        ]
        .into_iter()
        .flatten()
        .collect();
        let source_key = distribution_source_key(reference.domain());
        let infos = futures::future::join_all(blobs.iter().map(|(digest, _)| content.info(digest)));
        let records =
            futures::future::join_all(names.iter().map(|n| self.containerd.images.get(n)));
        let snapshot = self
            .containerd
            .snapshots
            .stat(&self.settings.snapshotter, &top);
        let (infos, records, snapshot) = futures::join!(infos, records, snapshot);
        snapshot.ok()?;
        for ((_, wanted), info) in blobs.iter().zip(infos) {
            let info = info.ok()?;
            let has = |k: &String, v: &String| info.labels.get(k) == Some(v);
            if !wanted.iter().all(|(k, v)| has(k, v)) {
                return None;
            }
            let existing = info.labels.get(&source_key).map(String::as_str);
            let source = append_distribution_source(existing, reference.path());
            if label_fits(&source_key, &source) && existing != Some(source.as_str()) {
                return None;
            }
        }
        for record in records {
            if !record_is_current(&record.ok()?, target, &labels) {
                return None;
            }
        }
        let pulled = Pulled {
            target: target.clone(),
            size: pulled_size(target, child.as_ref(), &config_desc, &layers),
            annotations: manifest.annotations().clone().unwrap_or_default(),
            config: stored.config,
            config_digest: config_desc.digest,
            chain_id: top,
        };
        self.remember(reference, pulled, pinned).ok()
    }

    /// Creates or updates the image records and the store entry.
    async fn record(&self, reference: &ImageRef, pulled: Pulled) -> Result<Image> {
        let id = pulled.config_digest.clone();
        let pinned = self.settings.is_pinned(&reference.to_string());
        let labels = image_record_labels(pinned);
        let names = [
            Some(id),
            reference.repo_tag(),
            Some(reference.repo_digest(&pulled.target.digest)),
        ];
        // An image the store holds is being repaired: its records are
        // likely there. One it lacks was fetched: they are likely new.
        let first = if self.store.get(&pulled.config_digest).is_ok() {
            RecordFirst::Read
        } else {
            RecordFirst::Create
        };
        // Until the store holds the image, an `/images/create` event for
        // these names waits for this pull instead of reading them back.
        let _recording = self.recording.begin(names.iter().flatten().cloned());
        futures::future::try_join_all(names.iter().flatten().map(|name| {
            create_image_record(&self.containerd, name, &pulled.target, &labels, first)
        }))
        .await?;
        self.remember(reference, pulled, pinned)
    }

    /// Puts the pulled image into the store and returns it as stored.
    fn remember(&self, reference: &ImageRef, pulled: Pulled, pinned: bool) -> Result<Image> {
        let id = pulled.config_digest.clone();
        let repo_tag = reference.repo_tag();
        let repo_digest = reference.repo_digest(&pulled.target.digest);
        let image = Image {
            id: id.clone(),
            references: [repo_tag, Some(repo_digest)]
                .into_iter()
                .flatten()
                .collect(),
            chain_id: pulled.chain_id,
            size: pulled.size,
            config: pulled.config,
            pinned,
            annotations: pulled.annotations,
        };
        self.store.upsert(image);
        self.store
            .get(&id)
            .map_err(|_| ImageError::NotFound { reference: id })
    }
}

/// Which request [`create_image_record`] tries first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFirst {
    /// Create, and read only if it exists: containerd's own order, one
    /// round trip for a record that is new (a pull that fetched).
    Create,
    /// Read, and create only if it is missing: one round trip for a
    /// record that is already current (an image containerd holds).
    Read,
}

/// containerd's `createImageReference`: create the record, or update its
/// target and labels when it exists with different ones.
pub async fn create_image_record(
    containerd: &Containerd,
    name: &str,
    target: &Descriptor,
    labels: &HashMap<String, String>,
    first: RecordFirst,
) -> Result<()> {
    let record = ImageRecord {
        name: name.to_owned(),
        labels: labels.clone(),
        target: target.clone(),
        ..ImageRecord::default()
    };
    let get = || async {
        containerd
            .images
            .get(name)
            .await
            .map_err(ImageError::containerd("get image record", name.to_owned()))
    };
    // `None` when made; else the record that is there, to compare with.
    let create = || async {
        match containerd.images.create(record.clone()).await {
            Ok(_) => Ok(None),
            Err(ContainerdError::AlreadyExists { .. }) => get().await.map(Some),
            Err(e) => Err(ImageError::containerd(
                "create image record",
                name.to_owned(),
            )(e)),
        }
    };
    let existing = match first {
        RecordFirst::Create => create().await?,
        RecordFirst::Read => match containerd.images.get(name).await {
            Ok(old) => Some(old),
            Err(e) if e.is_not_found() => create().await?,
            Err(e) => {
                return Err(ImageError::containerd("get image record", name.to_owned())(
                    e,
                ))
            }
        },
    };
    let Some(old) = existing else {
        return Ok(());
    };
    if record_is_current(&old, target, labels) {
        return Ok(());
    }
    let pinned = labels.contains_key(PINNED_LABEL_KEY);
    let mut fieldpaths = vec!["target".to_owned(), format!("labels.{IMAGE_LABEL_KEY}")];
    if pinned {
        fieldpaths.push(format!("labels.{PINNED_LABEL_KEY}"));
    }
    containerd
        .images
        .update(record, fieldpaths)
        .await
        .map_err(ImageError::containerd(
            "update image record",
            name.to_owned(),
        ))?;
    Ok(())
}

/// Whether an image record already points at `target` with the CRI
/// labels in `labels`: then it is left as it is.
fn record_is_current(
    old: &ImageRecord,
    target: &Descriptor,
    labels: &HashMap<String, String>,
) -> bool {
    let pinned = labels.contains_key(PINNED_LABEL_KEY);
    let label_is = |key: &str, value: &str| old.labels.get(key).map(String::as_str) == Some(value);
    old.target.digest == target.digest
        && label_is(IMAGE_LABEL_KEY, IMAGE_LABEL_VALUE)
        && (!pinned || label_is(PINNED_LABEL_KEY, PINNED_LABEL_VALUE))
}

/// The image's size as containerd's CRI plugin reports it: the target,
/// the chosen manifest of an index, the config and the layers.
fn pulled_size(
    target: &Descriptor,
    child: Option<&Descriptor>,
    config: &Descriptor,
    layers: &[Descriptor],
) -> u64 {
    std::iter::once(target)
        .chain(child)
        .chain(std::iter::once(config))
        .chain(layers)
        .map(|d| u64::try_from(d.size).unwrap_or_default())
        .sum()
}

/// Fetches the manifest (through an index if need be), config and layers
/// into the content store and unpacks the layers.
async fn fetch_and_unpack(
    ctx: &Arc<PullContext>,
    platform: &HostPlatform,
    (target, target_body): (Descriptor, Bytes),
) -> Result<Pulled> {
    let reference = ctx.reference.to_string();
    let discard = ctx.settings.discard_unpacked_layers;
    let bad = |digest: &str, message: String| ImageError::BadContent {
        reference: reference.clone(),
        digest: digest.to_owned(),
        message,
    };
    let (manifest_desc, manifest_body, child) = if is_index_type(&target.media_type) {
        let index = parse_index(&target_body).map_err(|m| bad(&target.digest, m))?;
        let children: Vec<(String, String)> = index
            .manifests()
            .iter()
            .map(|d| (d.media_type().to_string(), d.digest().to_string()))
            .collect();
        let labels = children_gc_labels(
            children.iter().map(|(m, d)| (m.as_str(), d.as_str())),
            discard,
        );
        store_blob(ctx, &target, Source::Bytes(target_body.clone()), labels).await?;
        let chosen = platform
            .select(&index)
            .ok_or_else(|| ImageError::NoMatchingPlatform {
                reference: reference.clone(),
                digest: target.digest.clone(),
                platform: platform.describe(),
            })?;
        let desc = to_seam(chosen);
        if !is_manifest_type(&desc.media_type) {
            return Err(ImageError::UnsupportedMediaType {
                reference: reference.clone(),
                media_type: desc.media_type,
            });
        }
        let body = ctx.remote.fetch_manifest(&desc).await?;
        check_blob(&desc, &body).map_err(|m| bad(&desc.digest, m))?;
        (desc.clone(), body, Some(desc))
    } else if is_manifest_type(&target.media_type) {
        (target.clone(), target_body.clone(), None)
    } else {
        return Err(ImageError::UnsupportedMediaType {
            reference: reference.clone(),
            media_type: target.media_type.clone(),
        });
    };

    let manifest = parse_manifest(&manifest_body).map_err(|m| bad(&manifest_desc.digest, m))?;
    let config_desc = to_seam(manifest.config());
    let layers: Vec<Descriptor> = manifest.layers().iter().map(to_seam).collect();
    if let Some(layer) = layers.iter().find(|l| !is_layer_type(&l.media_type)) {
        return Err(ImageError::UnsupportedMediaType {
            reference: reference.clone(),
            media_type: layer.media_type.clone(),
        });
    }
    let children = std::iter::once((config_desc.media_type.as_str(), config_desc.digest.as_str()))
        .chain(
            layers
                .iter()
                .map(|l| (l.media_type.as_str(), l.digest.as_str())),
        );
    let labels = children_gc_labels(children, discard);
    // The manifest and the config go in side by side (the lease holds
    // both until the image record refers to them).
    let (manifest_stored, config_body) = tokio::join!(
        store_blob(
            ctx,
            &manifest_desc,
            Source::Bytes(manifest_body.clone()),
            labels,
        ),
        store_config(ctx, &config_desc)
    );
    manifest_stored?;
    let config_body = config_body?;
    let config = parse_config(&config_body).map_err(|m| bad(&config_desc.digest, m))?;
    if !platform.runs(&config) {
        return Err(ImageError::NoMatchingPlatform {
            reference: reference.clone(),
            digest: config_desc.digest.clone(),
            platform: platform.describe(),
        });
    }
    let diff_ids: Vec<String> = config.rootfs().diff_ids().clone();
    if diff_ids.len() != layers.len() {
        return Err(bad(
            &config_desc.digest,
            format!("{} layers but {} diff ids", layers.len(), diff_ids.len()),
        ));
    }
    let size = pulled_size(&target, child.as_ref(), &config_desc, &layers);

    let annotated = annotate_layers(ctx, &manifest_desc.digest, &layers);
    let top = unpack(ctx, &annotated, &diff_ids).await?;
    if !top.is_empty() {
        set_label(
            ctx,
            &config_desc.digest,
            &gc_snapshot_key(&ctx.settings.snapshotter),
            &top,
        )
        .await?;
    }
    Ok(Pulled {
        annotations: manifest.annotations().clone().unwrap_or_default(),
        target,
        config,
        config_digest: config_desc.digest,
        chain_id: chain_id(&diff_ids),
        size,
    })
}

/// Stores the image config and returns its bytes: those that streamed
/// into containerd when they check out against the descriptor, else
/// (containerd had the blob already) read back from containerd.
async fn store_config(ctx: &Arc<PullContext>, desc: &Descriptor) -> Result<Bytes> {
    let kept = Kept::default();
    store_blob(
        ctx,
        desc,
        Source::RemoteKept(Arc::clone(&kept)),
        HashMap::new(),
    )
    .await?;
    let streamed = Bytes::from(std::mem::take(
        &mut *kept.lock().unwrap_or_else(PoisonError::into_inner),
    ));
    if check_blob(desc, &streamed).is_ok() {
        return Ok(streamed);
    }
    ctx.containerd
        .content
        .read(&desc.digest, 0, 0)
        .await
        .map_err(ImageError::containerd(
            "read image config",
            desc.digest.clone(),
        ))
}

/// The body must match its descriptor's digest and size.
fn check_blob(desc: &Descriptor, body: &Bytes) -> std::result::Result<(), String> {
    let digest = super::manifest::sha256_digest(body);
    if digest != desc.digest {
        return Err(format!("content has digest {digest}"));
    }
    if usize::try_from(desc.size).ok() != Some(body.len()) {
        return Err(format!(
            "content is {} bytes, descriptor says {}",
            body.len(),
            desc.size
        ));
    }
    Ok(())
}

/// Distinguishes credentials without keeping them.
fn auth_fingerprint(auth: Option<&AuthConfig>) -> String {
    let Some(a) = auth else {
        return String::new();
    };
    let mut hasher = Sha256::new();
    for field in [
        &a.username,
        &a.password,
        &a.auth,
        &a.server_address,
        &a.identity_token,
        &a.registry_token,
    ] {
        hasher.update(field.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

/// `YYYY-MM-DDTHH:MM:SSZ`, as Go's `time.RFC3339` prints UTC.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_utc() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn fingerprints_differ_by_credentials() {
        let a = AuthConfig {
            username: "u".into(),
            password: "p".into(),
            ..Default::default()
        };
        let b = AuthConfig {
            username: "u".into(),
            password: "q".into(),
            ..Default::default()
        };
        assert_ne!(auth_fingerprint(Some(&a)), auth_fingerprint(Some(&b)));
        assert_eq!(auth_fingerprint(None), "");
        assert!(!auth_fingerprint(Some(&a)).contains('p'));
    }

    #[test]
    fn blob_checks() {
        let body = Bytes::from_static(b"{}");
        let desc = Descriptor {
            digest: super::super::manifest::sha256_digest(&body),
            size: 2,
            ..Descriptor::default()
        };
        assert!(check_blob(&desc, &body).is_ok());
        assert!(check_blob(
            &Descriptor {
                size: 3,
                ..desc.clone()
            },
            &body
        )
        .is_err());
        assert!(check_blob(
            &Descriptor {
                digest: "sha256:0".into(),
                ..desc
            },
            &body
        )
        .is_err());
    }
}
