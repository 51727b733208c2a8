//! Writing one blob into containerd's content store under the pull's lease, the way containerd's fetch handlers leave it: fetched only when absent, verified by digest on commit, with its children's GC labels and the distribution source label merged into whatever labels it already has.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use cri_api::containerd::{ContainerdError, ContentInfo, Descriptor};
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};

use super::error::{ImageError, Result};
use super::labels::{append_distribution_source, distribution_source_key, label_fits};
use super::manifest::{is_config_type, is_index_type, is_layer_type, is_manifest_type};
use super::pull::PullContext;

/// Where the blob's bytes come from.
pub enum Source {
    /// Already fetched (manifests and indexes).
    Bytes(Bytes),
    /// Fetched from the registry only if containerd lacks the blob.
    Remote,
    /// As `Remote`, and what streams to containerd (at most the
    /// descriptor's size) is also kept here.
    RemoteKept(Kept),
}

/// The bytes of a blob as they streamed into containerd.
pub type Kept = Arc<Mutex<Vec<u8>>>;

/// containerd's `remotes.MakeRefKey`: the ingest reference, shared with
/// any other client pulling the same blob so only one writes it.
pub fn ref_key(desc: &Descriptor) -> String {
    let mt = desc.media_type.as_str();
    let kind = if is_manifest_type(mt) {
        "manifest"
    } else if is_index_type(mt) {
        "index"
    } else if is_layer_type(mt) {
        "layer"
    } else if is_config_type(mt) {
        "config"
    } else {
        "unknown"
    };
    format!("{kind}-{}", desc.digest)
}

/// Stores `desc` with `labels` (the GC labels of its children) and the
/// distribution source label.
pub async fn store_blob(
    ctx: &Arc<PullContext>,
    desc: &Descriptor,
    source: Source,
    mut labels: HashMap<String, String>,
) -> Result<()> {
    let source_key = distribution_source_key(ctx.reference.domain());
    let repo = ctx.reference.path().to_owned();
    labels.insert(source_key.clone(), repo.clone());

    let polled = Arc::new(AtomicBool::new(false));
    let fetch_error: Arc<Mutex<Option<ImageError>>> = Arc::default();
    let data = body(
        ctx,
        desc,
        source,
        Arc::clone(&polled),
        Arc::clone(&fetch_error),
    );
    let written = ctx
        .containerd
        .content
        .write(
            &ref_key(desc),
            desc.clone(),
            labels.clone(),
            data,
            Some(ctx.lease.clone()),
        )
        .await;
    if let Some(e) = fetch_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
    {
        return Err(e);
    }
    match written {
        Ok(()) => {}
        // containerd hashed the bytes and they are not the blob's.
        Err(ContainerdError::FailedPrecondition { message, .. })
            if message.contains("unexpected commit") =>
        {
            return Err(ImageError::BadContent {
                reference: ctx.reference.to_string(),
                digest: desc.digest.clone(),
                message,
            })
        }
        Err(e) => return Err(ImageError::containerd("write content", desc.digest.clone())(e)),
    }
    if polled.load(Ordering::SeqCst) {
        // Committed by us, with every label.
        return Ok(());
    }
    // The blob was there already: merge our labels into its own.
    let info = ctx
        .containerd
        .content
        .info(&desc.digest)
        .await
        .map_err(ImageError::containerd("content info", desc.digest.clone()))?;
    let source_value =
        append_distribution_source(info.labels.get(&source_key).map(String::as_str), &repo);
    if label_fits(&source_key, &source_value) {
        labels.insert(source_key, source_value);
    } else {
        labels.remove(&source_key);
    }
    update_labels(ctx, &desc.digest, &info, labels).await
}

/// Sets `labels` on the blob `digest` where they differ from `info`.
pub async fn update_labels(
    ctx: &PullContext,
    digest: &str,
    info: &ContentInfo,
    labels: HashMap<String, String>,
) -> Result<()> {
    let changed: HashMap<String, String> = labels
        .into_iter()
        .filter(|(k, v)| info.labels.get(k) != Some(v))
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    let fieldpaths = changed.keys().map(|k| format!("labels.{k}")).collect();
    let update = ContentInfo {
        digest: digest.to_owned(),
        labels: changed,
        ..ContentInfo::default()
    };
    ctx.containerd
        .content
        .update(update, fieldpaths)
        .await
        .map_err(ImageError::containerd(
            "update content labels",
            digest.to_owned(),
        ))?;
    Ok(())
}

/// Sets one label on a blob, without reading it first.
pub async fn set_label(ctx: &PullContext, digest: &str, key: &str, value: &str) -> Result<()> {
    let update = ContentInfo {
        digest: digest.to_owned(),
        labels: HashMap::from([(key.to_owned(), value.to_owned())]),
        ..ContentInfo::default()
    };
    ctx.containerd
        .content
        .update(update, vec![format!("labels.{key}")])
        .await
        .map_err(ImageError::containerd(
            "update content labels",
            digest.to_owned(),
        ))?;
    Ok(())
}

/// The blob's bytes as a lazy stream: nothing is requested from the
/// registry unless containerd starts reading it (it does not when the
/// blob exists). Registry failures are kept typed in `fetch_error`.
fn body(
    ctx: &Arc<PullContext>,
    desc: &Descriptor,
    source: Source,
    polled: Arc<AtomicBool>,
    fetch_error: Arc<Mutex<Option<ImageError>>>,
) -> BoxStream<'static, std::io::Result<Bytes>> {
    let ctx = Arc::clone(ctx);
    let desc = desc.clone();
    let opened = async move {
        polled.store(true, Ordering::SeqCst);
        let inner: BoxStream<'static, std::io::Result<Bytes>> = match source {
            Source::Bytes(bytes) => stream::once(async move { Ok(bytes) }).boxed(),
            Source::Remote | Source::RemoteKept(_) => match ctx.remote.open_blob(&desc).await {
                Ok(s) => {
                    let remote_ctx = Arc::clone(&ctx);
                    let slot = Arc::clone(&fetch_error);
                    let digest = desc.digest.clone();
                    let typed = s
                        .map_err(move |e| {
                            let typed = remote_ctx.remote.stream_error(&digest, &e);
                            let message = typed.to_string();
                            slot.lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .get_or_insert(typed);
                            std::io::Error::other(message)
                        })
                        .boxed();
                    let bounded = at_most(
                        typed,
                        ctx.reference.to_string(),
                        &desc,
                        Arc::clone(&fetch_error),
                    );
                    let bounded = match source {
                        Source::RemoteKept(kept) => bounded
                            .inspect_ok(move |piece| {
                                kept.lock()
                                    .unwrap_or_else(PoisonError::into_inner)
                                    .extend_from_slice(piece);
                            })
                            .boxed(),
                        _ => bounded,
                    };
                    coalesce(bounded, WRITE_SIZE)
                }
                Err(e) => {
                    let message = e.to_string();
                    fetch_error
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get_or_insert(e);
                    stream::once(async move { Err(std::io::Error::other(message)) }).boxed()
                }
            },
        };
        Ok::<_, std::io::Error>(inner)
    };
    stream::once(opened).try_flatten().boxed()
}

/// `inner`, ended with an error (kept typed in `fetch_error`) as soon as
/// it brings more bytes than the descriptor's size: containerd would
/// refuse the commit anyway, and a registry must not be able to make the
/// daemon stream without end into containerd's ingest.
fn at_most(
    inner: BoxStream<'static, std::io::Result<Bytes>>,
    reference: String,
    desc: &Descriptor,
    fetch_error: Arc<Mutex<Option<ImageError>>>,
) -> BoxStream<'static, std::io::Result<Bytes>> {
    let Ok(limit) = u64::try_from(desc.size) else {
        return inner;
    };
    let digest = desc.digest.clone();
    let mut seen: u64 = 0;
    inner
        .map(move |item| {
            let piece = item?;
            seen = seen.saturating_add(piece.len() as u64);
            if seen <= limit {
                return Ok(piece);
            }
            let error = ImageError::BadContent {
                reference: reference.clone(),
                digest: digest.clone(),
                message: format!("the registry sent more than the {limit} bytes of the descriptor"),
            };
            let message = error.to_string();
            fetch_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert(error);
            Err(std::io::Error::other(message))
        })
        .boxed()
}

/// The size of one content `Write`: the HTTP body arrives in pieces of a
/// few KiB, and every `Write` is a message containerd decodes and answers,
/// so pieces are gathered up to this size first (containerd's own copy
/// uses 1 MiB buffers; 112 KiB messages cost containerd more CPU than
/// they saved here). It bounds what a layer holds in memory.
const WRITE_SIZE: usize = 1 << 20;

/// `inner` regrouped into chunks of exactly `size` bytes (the last one
/// shorter). A chunk is gathered in a buffer of exactly that size, which
/// it then owns whole, so the content writer moves it into its message
/// without copying; a piece that covers a whole chunk is passed on as it
/// is. An error ends the stream; bytes gathered before it are dropped, as
/// the write fails anyway.
fn coalesce(
    inner: BoxStream<'static, std::io::Result<Bytes>>,
    size: usize,
) -> BoxStream<'static, std::io::Result<Bytes>> {
    struct Pieces {
        inner: BoxStream<'static, std::io::Result<Bytes>>,
        /// What is left of the last piece.
        rest: Bytes,
        ended: bool,
    }
    let start = Pieces {
        inner,
        rest: Bytes::new(),
        ended: false,
    };
    stream::unfold(Some(start), move |state| async move {
        let mut p = state?;
        let mut gathered = bytes::BytesMut::new();
        loop {
            if p.rest.is_empty() {
                if p.ended {
                    break;
                }
                match p.inner.next().await {
                    Some(Ok(piece)) => p.rest = piece,
                    Some(Err(e)) => return Some((Err(e), None)),
                    None => p.ended = true,
                }
                continue;
            }
            if gathered.is_empty() && p.rest.len() >= size {
                let chunk = p.rest.split_to(size);
                return Some((Ok(chunk), Some(p)));
            }
            if gathered.capacity() == 0 {
                gathered.reserve(size);
            }
            let take = (size - gathered.len()).min(p.rest.len());
            gathered.extend_from_slice(&p.rest.split_to(take));
            if gathered.len() == size {
                return Some((Ok(gathered.freeze()), Some(p)));
            }
        }
        if gathered.is_empty() {
            None
        } else {
            Some((Ok(gathered.freeze()), Some(p)))
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::coalesce;

    #[tokio::test]
    async fn pieces_are_gathered_into_writes_of_the_given_size() {
        use futures::StreamExt;
        // Small pieces, one that spans several chunks, a short tail.
        let lens = [300, 300, 300, 2500, 50];
        let pieces: Vec<std::io::Result<bytes::Bytes>> = lens
            .iter()
            .enumerate()
            .map(|(i, &n)| Ok(bytes::Bytes::from(vec![i as u8; n])))
            .collect();
        let chunks: Vec<bytes::Bytes> = coalesce(futures::stream::iter(pieces).boxed(), 1000)
            .map(|c| c.unwrap())
            .collect()
            .await;
        let sizes: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [1000, 1000, 1000, 450]);
        let all: Vec<u8> = chunks.concat();
        let want: Vec<u8> = lens
            .iter()
            .enumerate()
            .flat_map(|(i, &n)| vec![i as u8; n])
            .collect();
        assert_eq!(all, want, "bytes and order unchanged");
    }

    #[tokio::test]
    async fn more_bytes_than_the_descriptor_says_end_the_stream_typed() {
        use futures::StreamExt;
        let desc = Descriptor {
            digest: "sha256:ab".to_owned(),
            size: 5,
            ..Descriptor::default()
        };
        let slot: Arc<Mutex<Option<ImageError>>> = Arc::default();
        let pieces: Vec<std::io::Result<Bytes>> = vec![
            Ok(Bytes::from_static(b"abc")),
            Ok(Bytes::from_static(b"de")),
            Ok(Bytes::from_static(b"f")),
        ];
        let out: Vec<std::io::Result<Bytes>> = at_most(
            futures::stream::iter(pieces).boxed(),
            "r/i:1".to_owned(),
            &desc,
            Arc::clone(&slot),
        )
        .collect()
        .await;
        assert_eq!(out.len(), 3);
        assert!(out[0].is_ok() && out[1].is_ok(), "the first 5 bytes pass");
        assert!(out[2].is_err());
        let error = slot.lock().unwrap().take();
        assert!(
            matches!(&error, Some(ImageError::BadContent { digest, .. }) if digest == "sha256:ab"),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn an_error_ends_the_stream() {
        use futures::StreamExt;
        let pieces: Vec<std::io::Result<bytes::Bytes>> = vec![
            Ok(bytes::Bytes::from_static(b"abc")),
            Err(std::io::Error::other("reset")),
            Ok(bytes::Bytes::from_static(b"never")),
        ];
        let out: Vec<std::io::Result<bytes::Bytes>> =
            coalesce(futures::stream::iter(pieces).boxed(), 1000)
                .collect()
                .await;
        assert_eq!(out.len(), 1);
        assert!(out[0].is_err());
    }
    use super::*;
    use crate::manifest::media;

    fn desc(mt: &str) -> Descriptor {
        Descriptor {
            media_type: mt.to_owned(),
            digest: "sha256:ab".to_owned(),
            ..Descriptor::default()
        }
    }

    #[test]
    fn ref_keys_like_containerd() {
        assert_eq!(ref_key(&desc(media::OCI_MANIFEST)), "manifest-sha256:ab");
        assert_eq!(ref_key(&desc(media::DOCKER_LIST)), "index-sha256:ab");
        assert_eq!(ref_key(&desc(media::DOCKER_LAYER_GZIP)), "layer-sha256:ab");
        assert_eq!(ref_key(&desc(media::OCI_CONFIG)), "config-sha256:ab");
        assert_eq!(ref_key(&desc("text/plain")), "unknown-sha256:ab");
    }
}
