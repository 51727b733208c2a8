//! Unpacking layers into the snapshotter as containerd's unpacker does: per layer, skip a chain id that is already committed, else prepare `extract-<nanos>-<rand> <chainID>` on the parent chain, apply the layer with the Diff service, check the diff id, commit it as `<chainID>`, and label the blob with its uncompressed digest. Layers download in the background while earlier ones are applied: the first alone, then at most `max_concurrent_downloads` at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use cri_api::containerd::{ContainerdError, Descriptor};
use futures::StreamExt;
use rand::RngCore;
use tokio::sync::{mpsc, OwnedMutexGuard};

use super::error::{ImageError, Result};
use super::ingest::{set_label, store_blob, Source};
use super::labels::{
    image_layers_label, SNAPSHOT_LABEL_PREFIX, SNAPSHOT_REF, TARGET_IMAGE_LAYERS,
    TARGET_LAYER_DIGEST, TARGET_MANIFEST_DIGEST, TARGET_REF, UNCOMPRESSED,
};
use super::manifest::chain_id;
use super::pull::PullContext;

/// In-process locks by key (chain ids), so concurrent pulls sharing a
/// layer unpack it once: containerd's unpack duplication suppressor.
#[derive(Debug, Default)]
pub struct KeyedLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl KeyedLocks {
    pub async fn lock(&self, key: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            locks.retain(|_, l| Arc::strong_count(l) > 1);
            Arc::clone(locks.entry(key.to_owned()).or_default())
        };
        lock.lock_owned().await
    }
}

/// Extraction snapshots prepared but not yet committed; removed when the
/// pull fails or is cancelled.
#[derive(Debug, Default)]
pub struct ActiveExtracts {
    keys: Mutex<Vec<String>>,
}

impl ActiveExtracts {
    fn add(&self, key: &str) {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(key.to_owned());
    }

    fn done(&self, key: &str) {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|k| k != key);
    }

    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.keys.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// containerd's `uniquePart`: `<nanoseconds of the second>-<base64url of
/// 3 random bytes>`.
pub fn unique_part() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let mut random = [0u8; 3];
    rand::thread_rng().fill_bytes(&mut random);
    format!(
        "{nanos}-{}",
        base64::engine::general_purpose::URL_SAFE.encode(random)
    )
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The layer descriptors as the unpacker sees them: with the CRI snapshot
/// annotations added unless `disable_snapshot_annotations`.
pub fn annotate_layers(
    ctx: &PullContext,
    manifest_digest: &str,
    layers: &[Descriptor],
) -> Vec<Descriptor> {
    if ctx.settings.disable_snapshot_annotations {
        return layers.to_vec();
    }
    let digests: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
    layers
        .iter()
        .enumerate()
        .map(|(i, layer)| {
            let mut layer = layer.clone();
            let a = &mut layer.annotations;
            a.insert(TARGET_REF.to_owned(), ctx.reference.to_string());
            a.insert(TARGET_LAYER_DIGEST.to_owned(), layer_digest(&digests, i));
            a.insert(
                TARGET_IMAGE_LAYERS.to_owned(),
                image_layers_label(&digests[i..]),
            );
            a.insert(
                TARGET_MANIFEST_DIGEST.to_owned(),
                manifest_digest.to_owned(),
            );
            layer
        })
        .collect()
}

fn layer_digest(digests: &[&str], i: usize) -> String {
    digests.get(i).map(|d| (*d).to_owned()).unwrap_or_default()
}

/// Unpacks `layers` (whose diff ids are `diff_ids`) and returns the chain
/// id of the top layer.
pub async fn unpack(
    ctx: &Arc<PullContext>,
    layers: &[Descriptor],
    diff_ids: &[String],
) -> Result<String> {
    let snapshotter = ctx.settings.snapshotter.clone();
    let snapshots = &ctx.containerd.snapshots;
    let mut fetched: Option<(mpsc::Receiver<Result<()>>, AbortOnDrop)> = None;
    let mut top = String::new();
    for (i, layer) in layers.iter().enumerate() {
        let parent = chain_id(&diff_ids[..i]);
        let chain = chain_id(&diff_ids[..=i]);
        top = chain.clone();
        let _lock = ctx
            .chain_locks
            .lock(&format!("sn://{snapshotter}/{chain}"))
            .await;
        if exists(ctx, &chain).await? {
            continue;
        }
        let mut labels: HashMap<String, String> = layer
            .annotations
            .iter()
            .filter(|(k, _)| k.starts_with(SNAPSHOT_LABEL_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.insert(SNAPSHOT_REF.to_owned(), chain.clone());

        let mut prepared = None;
        for _attempt in 0..3 {
            let key = format!("extract-{} {chain}", unique_part());
            match snapshots
                .prepare(
                    &snapshotter,
                    &key,
                    &parent,
                    labels.clone(),
                    Some(ctx.lease.clone()),
                )
                .await
            {
                Ok(mounts) => {
                    prepared = Some((key, mounts));
                    break;
                }
                Err(ContainerdError::AlreadyExists { .. }) => {
                    if exists(ctx, &chain).await? {
                        break;
                    }
                }
                Err(e) => {
                    return Err(ImageError::containerd("prepare extraction snapshot", key)(
                        e,
                    ))
                }
            }
        }
        let Some((key, mounts)) = prepared else {
            if exists(ctx, &chain).await? {
                continue;
            }
            return Err(
                ImageError::containerd("prepare extraction snapshot", chain)(
                    ContainerdError::AlreadyExists {
                        op: "prepare snapshot",
                        what: "extraction key".to_owned(),
                    },
                ),
            );
        };
        ctx.extracts.add(&key);

        // Start downloading this and every later layer, once.
        if fetched.is_none() {
            fetched = Some(start_fetch(ctx, layers[i..].to_vec()));
        }
        let applied = async {
            wait_fetched(ctx, &mut fetched, i, layer).await?;
            let diff = ctx
                .containerd
                .diff
                .apply(layer.clone(), mounts)
                .await
                .map_err(ImageError::containerd("apply layer", layer.digest.clone()))?;
            if diff.digest != diff_ids[i] {
                return Err(ImageError::BadContent {
                    reference: ctx.reference.to_string(),
                    digest: layer.digest.clone(),
                    message: format!(
                        "layer unpacked to diff id {}, the image config says {}",
                        diff.digest, diff_ids[i]
                    ),
                });
            }
            match snapshots
                .commit(
                    &snapshotter,
                    &chain,
                    &key,
                    labels.clone(),
                    Some(ctx.lease.clone()),
                )
                .await
            {
                Ok(()) => Ok(true),
                Err(ContainerdError::AlreadyExists { .. }) => Ok(false),
                Err(e) => Err(ImageError::containerd("commit snapshot", chain.clone())(e)),
            }
        }
        .await;
        match applied {
            Ok(committed) => {
                ctx.extracts.done(&key);
                if !committed {
                    // Someone else committed the chain meanwhile.
                    remove_extract(ctx, &key).await;
                    continue;
                }
            }
            Err(e) => {
                ctx.extracts.done(&key);
                remove_extract(ctx, &key).await;
                return Err(e);
            }
        }
        set_label(ctx, &layer.digest, UNCOMPRESSED, &diff_ids[i]).await?;
    }
    Ok(top)
}

async fn exists(ctx: &PullContext, chain: &str) -> Result<bool> {
    match ctx
        .containerd
        .snapshots
        .stat(&ctx.settings.snapshotter, chain)
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(ImageError::containerd("stat snapshot", chain.to_owned())(e)),
    }
}

/// Removes an extraction snapshot; best effort.
pub async fn remove_extract(ctx: &PullContext, key: &str) {
    if let Err(e) = ctx
        .containerd
        .snapshots
        .remove(&ctx.settings.snapshotter, key)
        .await
    {
        if !e.is_not_found() {
            tracing::warn!(key, error = %e, "failed to remove extraction snapshot");
        }
    }
}

/// Downloads `layers` in a background task, reporting each result in
/// order. The first one downloads alone: nothing can be applied before
/// it is in, and downloads running side by side share the bandwidth
/// (on a near registry, the daemon's copy into containerd), so each of
/// them would arrive late. The others then download while it is
/// applied, at most `max_concurrent_downloads` at once.
fn start_fetch(
    ctx: &Arc<PullContext>,
    layers: Vec<Descriptor>,
) -> (mpsc::Receiver<Result<()>>, AbortOnDrop) {
    let (tx, rx) = mpsc::channel(layers.len().max(1));
    let limit = ctx.settings.max_concurrent_downloads.max(1);
    let task_ctx = Arc::clone(ctx);
    let handle = tokio::spawn(async move {
        let ctx = task_ctx;
        let mut layers = layers.into_iter();
        if let Some(first) = layers.next() {
            let result = store_blob(&ctx, &first, Source::Remote, HashMap::new()).await;
            let failed = result.is_err();
            if tx.send(result).await.is_err() || failed {
                return;
            }
        }
        let mut results = futures::stream::iter(layers)
            .map(|layer| {
                let ctx = Arc::clone(&ctx);
                async move { store_blob(&ctx, &layer, Source::Remote, HashMap::new()).await }
            })
            .buffered(limit);
        while let Some(result) = results.next().await {
            let failed = result.is_err();
            if tx.send(result).await.is_err() || failed {
                break;
            }
        }
    });
    (rx, AbortOnDrop(handle))
}

/// Waits until layer `i` is in the content store.
async fn wait_fetched(
    ctx: &PullContext,
    fetched: &mut Option<(mpsc::Receiver<Result<()>>, AbortOnDrop)>,
    i: usize,
    layer: &Descriptor,
) -> Result<()> {
    let Some((rx, _)) = fetched.as_mut() else {
        return Ok(());
    };
    match rx.recv().await {
        Some(result) => result,
        None => Err(ImageError::Task {
            reference: ctx.reference.to_string(),
            message: format!("download of layer {} ({i}) stopped", layer.digest),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_parts_look_like_containerd() {
        let part = unique_part();
        let (nanos, random) = part.split_once('-').unwrap_or_default();
        assert!(nanos.parse::<u32>().is_ok(), "{part}");
        assert_eq!(random.len(), 4, "{part}");
    }

    #[tokio::test]
    async fn keyed_locks_serialize_one_key() {
        let locks = Arc::new(KeyedLocks::default());
        let held = locks.lock("a").await;
        let other = locks.lock("b").await;
        let waiter = {
            let locks = Arc::clone(&locks);
            tokio::spawn(async move {
                let _g = locks.lock("a").await;
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(held);
        drop(other);
        waiter.await.unwrap_or_default();
    }
}
