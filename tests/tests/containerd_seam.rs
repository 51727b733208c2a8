//! The containerd seam (`cri_containerd`) against a real, private containerd: every service the CRI uses, error classification, events, and recovery after containerd restarts.

use std::collections::HashMap;
use std::io::Write as _;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use cri_api::containerd::{
    Any, ContainerRecord, Containerd, ContainerdError, Descriptor, Envelope, ImageRecord,
    LeaseResource, RuntimeInfo, SnapshotKind,
};
use cri_containerd::{connect_lazy, decode_event, DecodedEvent};
use cri_tests::{ContainerdProcess, K8S_NAMESPACE};
use futures::StreamExt;
use sha2::{Digest, Sha256};

const SNAPSHOTTER: &str = "overlayfs";
const CONTAINER_METADATA_URL: &str = "github.com/containerd/cri/pkg/store/container/Metadata";
const SPEC_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";

async fn start() -> Result<(ContainerdProcess, Containerd)> {
    let process = ContainerdProcess::start().await?;
    let containerd = connect_lazy(process.socket(), K8S_NAMESPACE)?;
    containerd
        .namespaces
        .ensure(K8S_NAMESPACE, HashMap::new())
        .await?;
    Ok((process, containerd))
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn blob(media_type: &str, data: &[u8]) -> Descriptor {
    Descriptor {
        media_type: media_type.to_owned(),
        digest: sha256(data),
        size: data.len() as i64,
        annotations: HashMap::new(),
    }
}

/// `data` as the chunked byte stream `Content::write` takes (its item type
/// is the seam's `Bytes`, inferred at the call).
fn chunks<B: From<Vec<u8>> + Send + 'static>(
    data: &[u8],
    chunk: usize,
) -> futures::stream::BoxStream<'static, std::io::Result<B>> {
    let parts: Vec<std::io::Result<B>> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(B::from(c.to_vec())))
        .collect();
    futures::stream::iter(parts).boxed()
}

/// Like [`chunks`], with a pause before each chunk.
fn slow_chunks<B: From<Vec<u8>> + Send + 'static>(
    data: &[u8],
    chunk: usize,
    pause: Duration,
) -> futures::stream::BoxStream<'static, std::io::Result<B>> {
    chunks(data, chunk)
        .then(move |part| async move {
            tokio::time::sleep(pause).await;
            part
        })
        .boxed()
}

fn container(id: &str) -> ContainerRecord {
    ContainerRecord {
        id: id.to_owned(),
        labels: HashMap::from([
            ("io.cri-containerd.kind".to_owned(), "container".to_owned()),
            ("io.kubernetes.pod.name".to_owned(), "seam".to_owned()),
        ]),
        image: "example.invalid/seam:latest".to_owned(),
        runtime: RuntimeInfo {
            name: "io.containerd.runc.v2".to_owned(),
            options: None,
        },
        spec: Some(Any {
            type_url: SPEC_URL.to_owned(),
            value: br#"{"ociVersion":"1.0.2"}"#.to_vec(),
        }),
        snapshotter: SNAPSHOTTER.to_owned(),
        snapshot_key: id.to_owned(),
        extensions: HashMap::from([(
            "io.cri-containerd.container.metadata".to_owned(),
            Any {
                type_url: CONTAINER_METADATA_URL.to_owned(),
                value: format!(r#"{{"Version":"v1","Metadata":{{"ID":"{id}","Name":"seam"}}}}"#)
                    .into_bytes(),
            },
        )]),
        ..Default::default()
    }
}

#[tokio::test]
async fn version_namespaces_and_not_found() -> Result<()> {
    let (_process, containerd) = start().await?;
    let version = containerd.version.version().await?;
    ensure!(!version.version.is_empty(), "{version:?}");
    ensure!(!containerd.introspection.server_uuid().await?.is_empty());
    let plugins = containerd
        .introspection
        .plugins(vec![r#"type=="io.containerd.snapshotter.v1""#.to_owned()])
        .await?;
    ensure!(
        plugins
            .iter()
            .any(|p| p.id == SNAPSHOTTER && p.init_error.is_none()),
        "{plugins:?}"
    );

    // ensure is idempotent
    containerd
        .namespaces
        .ensure(K8S_NAMESPACE, HashMap::new())
        .await?;
    ensure!(containerd
        .namespaces
        .list()
        .await?
        .contains(&K8S_NAMESPACE.to_owned()));

    match containerd.containers.get("no-such-container").await {
        Err(ContainerdError::NotFound { what, .. }) => ensure!(what == "no-such-container"),
        other => bail!("get of a missing container: {other:?}"),
    }
    ensure!(matches!(
        containerd.images.get("example.invalid/none:latest").await,
        Err(ContainerdError::NotFound { .. })
    ));
    ensure!(matches!(
        containerd.content.info(&sha256(b"never written")).await,
        Err(ContainerdError::NotFound { .. })
    ));
    ensure!(matches!(
        containerd.tasks.get("no-such-container", "").await,
        Err(ContainerdError::NotFound { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn content_and_images() -> Result<()> {
    let (_process, containerd) = start().await?;
    let lease = containerd
        .leases
        .create(
            "seam-lease",
            HashMap::from([("purpose".into(), "test".into())]),
        )
        .await?;
    ensure!(lease.id == "seam-lease");

    // A blob bigger than one write chunk, so the write takes several rounds.
    let data: Vec<u8> = (0..(3 << 20) + 17).map(|i| (i % 251) as u8).collect();
    let desc = blob("application/vnd.oci.image.manifest.v1+json", &data);
    containerd
        .content
        .write(
            "seam-blob",
            desc.clone(),
            HashMap::from([("seam".into(), "one".into())]),
            chunks(&data, 700_000),
            Some(lease.id.clone()),
        )
        .await?;
    let info = containerd.content.info(&desc.digest).await?;
    ensure!(info.size == desc.size, "{info:?}");
    ensure!(info.labels.get("seam").map(String::as_str) == Some("one"));
    ensure!(info.created_at.is_some());

    let read = containerd.content.read(&desc.digest, 0, 0).await?;
    ensure!(
        read.len() == data.len() && read[..] == data[..],
        "read back"
    );
    let part = containerd.content.read(&desc.digest, 10, 5).await?;
    ensure!(part[..] == data[10..15], "ranged read");

    // Writing a blob that exists is a success.
    containerd
        .content
        .write(
            "seam-blob-again",
            desc.clone(),
            HashMap::new(),
            chunks(&data, 1 << 20),
            None,
        )
        .await?;

    let mut labelled = info.clone();
    labelled.labels = HashMap::from([("seam".into(), "two".into())]);
    let updated = containerd
        .content
        .update(labelled, vec!["labels.seam".into()])
        .await?;
    ensure!(updated.labels.get("seam").map(String::as_str) == Some("two"));
    let listed = containerd
        .content
        .list(vec![format!("digest=={}", desc.digest)])
        .await?;
    ensure!(listed.len() == 1, "{listed:?}");

    // An image record pointing at the blob.
    let name = "example.invalid/seam/image:latest";
    let created = containerd
        .images
        .create(ImageRecord {
            name: name.to_owned(),
            labels: HashMap::from([("io.cri-containerd.image".into(), "managed".into())]),
            target: desc.clone(),
            ..Default::default()
        })
        .await?;
    ensure!(created.target == desc, "{created:?}");
    ensure!(matches!(
        containerd
            .images
            .create(ImageRecord {
                name: name.to_owned(),
                target: desc.clone(),
                ..Default::default()
            })
            .await,
        Err(ContainerdError::AlreadyExists { .. })
    ));
    let got = containerd.images.get(name).await?;
    ensure!(got.target.digest == desc.digest && got.created_at.is_some());
    let listed = containerd
        .images
        .list(vec![r#"labels."io.cri-containerd.image"==managed"#.into()])
        .await?;
    ensure!(
        listed.iter().map(|i| i.name.as_str()).collect::<Vec<_>>() == [name],
        "{listed:?}"
    );
    let mut pinned = got.clone();
    pinned
        .labels
        .insert("io.cri-containerd.pinned".into(), "pinned".into());
    let updated = containerd
        .images
        .update(pinned, vec!["labels.io.cri-containerd.pinned".into()])
        .await?;
    ensure!(updated.labels.len() == 2, "{:?}", updated.labels);
    containerd.images.delete(name, true).await?;
    ensure!(matches!(
        containerd.images.get(name).await,
        Err(ContainerdError::NotFound { .. })
    ));

    containerd.content.delete(&desc.digest).await?;
    ensure!(matches!(
        containerd.content.info(&desc.digest).await,
        Err(ContainerdError::NotFound { .. })
    ));
    containerd.leases.delete(&lease.id, true).await?;
    ensure!(!containerd
        .leases
        .list(vec![])
        .await?
        .iter()
        .any(|l| l.id == lease.id));
    Ok(())
}

#[tokio::test]
async fn concurrent_writes_of_one_blob_both_succeed() -> Result<()> {
    let (_process, containerd) = start().await?;
    let data = vec![7u8; 4 << 20];
    let desc = blob("application/octet-stream", &data);
    let lease = containerd
        .leases
        .create("seam-race", HashMap::new())
        .await?;
    let slow = slow_chunks(&data, 1 << 20, Duration::from_millis(150));
    let first = containerd.content.write(
        "seam-race",
        desc.clone(),
        HashMap::new(),
        slow,
        Some(lease.id.clone()),
    );
    let second = async {
        // Let the first writer take the ingest's lock.
        tokio::time::sleep(Duration::from_millis(100)).await;
        containerd
            .content
            .write(
                "seam-race",
                desc.clone(),
                HashMap::new(),
                chunks(&data, 1 << 20),
                Some(lease.id.clone()),
            )
            .await
    };
    let (first, second) = tokio::join!(first, second);
    first.context("first writer")?;
    second.context("second writer")?;
    let read = containerd.content.read(&desc.digest, 0, 0).await?;
    ensure!(read[..] == data[..]);

    // A failing data source aborts the write and names the reference.
    let broken = futures::stream::iter(vec![
        Ok(b"partial".to_vec().into()),
        Err(std::io::Error::other("network went away")),
    ])
    .boxed();
    let other = blob("application/octet-stream", b"partial and more");
    match containerd
        .content
        .write("seam-broken", other, HashMap::new(), broken, None)
        .await
    {
        Err(e) => ensure!(
            e.to_string().contains("seam-broken") && e.to_string().contains("network went away"),
            "{e}"
        ),
        Ok(()) => bail!("a write whose data failed succeeded"),
    }
    Ok(())
}

/// A gzipped layer holding `hello.txt`, and its uncompressed digest.
fn layer() -> Result<(Vec<u8>, String)> {
    let mut tar = tar::Builder::new(Vec::new());
    let body = b"hello from the seam\n";
    let mut header = tar::Header::new_gnu();
    header.set_size(body.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "hello.txt", &body[..])?;
    let tar = tar.into_inner()?;
    let diff_id = sha256(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar)?;
    Ok((gz.finish()?, diff_id))
}

#[tokio::test]
async fn snapshots_and_diff_on_overlayfs() -> Result<()> {
    let (_process, containerd) = start().await?;
    let snapshots = &containerd.snapshots;
    let lease = containerd
        .leases
        .create("seam-unpack", HashMap::new())
        .await?;
    let (layer, diff_id) = layer()?;
    let desc = blob("application/vnd.oci.image.layer.v1.tar+gzip", &layer);
    containerd
        .content
        .write(
            "seam-layer",
            desc.clone(),
            HashMap::new(),
            chunks(&layer, 1 << 20),
            Some(lease.id.clone()),
        )
        .await?;

    let mounts = snapshots
        .prepare(
            SNAPSHOTTER,
            "seam-extract",
            "",
            HashMap::from([("seam".into(), "yes".into())]),
            Some(lease.id.clone()),
        )
        .await?;
    ensure!(!mounts.is_empty(), "no mounts");
    let info = snapshots.stat(SNAPSHOTTER, "seam-extract").await?;
    ensure!(
        info.kind == SnapshotKind::Active && info.parent.is_empty(),
        "{info:?}"
    );
    ensure!(info.labels.get("seam").map(String::as_str) == Some("yes"));
    ensure!(snapshots.mounts(SNAPSHOTTER, "seam-extract").await? == mounts);

    let applied = containerd.diff.apply(desc.clone(), mounts).await?;
    ensure!(
        applied.digest == diff_id,
        "applied {applied:?}, want {diff_id}"
    );

    snapshots
        .commit(
            SNAPSHOTTER,
            "seam-layer-1",
            "seam-extract",
            HashMap::from([("containerd.io/snapshot.ref".into(), diff_id.clone())]),
            Some(lease.id.clone()),
        )
        .await?;
    let committed = snapshots.stat(SNAPSHOTTER, "seam-layer-1").await?;
    ensure!(committed.kind == SnapshotKind::Committed, "{committed:?}");
    ensure!(matches!(
        snapshots.stat(SNAPSHOTTER, "seam-extract").await,
        Err(ContainerdError::NotFound { .. })
    ));

    let view = snapshots
        .view(
            SNAPSHOTTER,
            "seam-view",
            "seam-layer-1",
            Some(lease.id.clone()),
        )
        .await?;
    ensure!(view.len() == 1, "{view:?}");
    // A one-layer view is a read-only bind mount of the layer itself.
    let file = std::path::Path::new(&view[0].source).join("hello.txt");
    let text = std::fs::read_to_string(&file).with_context(|| file.display().to_string())?;
    ensure!(text == "hello from the seam\n", "{text:?}");
    let usage = snapshots.usage(SNAPSHOTTER, "seam-layer-1").await?;
    ensure!(usage.size > 0, "{usage:?}");
    let listed = snapshots.list(SNAPSHOTTER, vec![]).await?;
    ensure!(listed.len() == 2, "{listed:?}");

    // The view moves to a second lease: added there before it leaves the
    // first, so the garbage collector never finds it without a lease.
    let resource = LeaseResource {
        id: "seam-view".into(),
        kind: format!("snapshots/{SNAPSHOTTER}"),
    };
    let holder = containerd
        .leases
        .create("seam-holder", HashMap::new())
        .await?;
    containerd
        .leases
        .add_resource(&holder.id, resource.clone())
        .await?;
    containerd
        .leases
        .delete_resource(&lease.id, resource)
        .await?;

    snapshots.remove(SNAPSHOTTER, "seam-view").await?;
    snapshots.remove(SNAPSHOTTER, "seam-layer-1").await?;
    ensure!(snapshots.list(SNAPSHOTTER, vec![]).await?.is_empty());
    containerd.leases.delete(&holder.id, false).await?;
    containerd.leases.delete(&lease.id, true).await?;
    Ok(())
}

#[tokio::test]
async fn containers_keep_labels_and_extensions() -> Result<()> {
    let (_process, containerd) = start().await?;
    let record = container("seam-c1");
    let created = containerd.containers.create(record.clone()).await?;
    ensure!(created.created_at.is_some() && created.updated_at.is_some());
    ensure!(matches!(
        containerd.containers.create(record.clone()).await,
        Err(ContainerdError::AlreadyExists { .. })
    ));
    let mut sandbox = container("seam-s1");
    sandbox
        .labels
        .insert("io.cri-containerd.kind".into(), "sandbox".into());
    containerd.containers.create(sandbox).await?;

    let got = containerd.containers.get("seam-c1").await?;
    let want = &record.extensions["io.cri-containerd.container.metadata"];
    let ext = got
        .extensions
        .get("io.cri-containerd.container.metadata")
        .context("extension lost")?;
    ensure!(ext.type_url == CONTAINER_METADATA_URL, "{}", ext.type_url);
    ensure!(ext.value == want.value, "extension bytes changed");
    ensure!(got.spec == record.spec && got.labels == record.labels);
    ensure!(got.runtime.name == "io.containerd.runc.v2");

    let sandboxes = containerd
        .containers
        .list(vec![r#"labels."io.cri-containerd.kind"=="sandbox""#.into()])
        .await?;
    ensure!(
        sandboxes.iter().map(|c| c.id.as_str()).collect::<Vec<_>>() == ["seam-s1"],
        "{sandboxes:?}"
    );
    let all = containerd.containers.list(vec![]).await?;
    ensure!(all.len() == 2, "{all:?}");

    // Update one label and one extension by field path; the rest stays.
    let mut change = got.clone();
    change.labels.insert("seam.updated".into(), "yes".into());
    change.labels.remove("io.kubernetes.pod.name");
    change.extensions.insert(
        "io.cri-containerd.container.metadata".into(),
        Any {
            type_url: CONTAINER_METADATA_URL.into(),
            value: br#"{"Version":"v1","Metadata":{"ID":"seam-c1","Name":"renamed"}}"#.to_vec(),
        },
    );
    change.image = "ignored.invalid/not:updated".into();
    let updated = containerd
        .containers
        .update(
            change,
            vec![
                "labels.seam.updated".into(),
                "extensions.io.cri-containerd.container.metadata".into(),
            ],
        )
        .await?;
    ensure!(updated.labels.get("seam.updated").map(String::as_str) == Some("yes"));
    ensure!(
        updated.labels.contains_key("io.kubernetes.pod.name"),
        "a label outside the field paths changed: {:?}",
        updated.labels
    );
    ensure!(updated.image == record.image, "{}", updated.image);
    let ext = &updated.extensions["io.cri-containerd.container.metadata"];
    ensure!(ext.type_url == CONTAINER_METADATA_URL);
    ensure!(String::from_utf8_lossy(&ext.value).contains("renamed"));

    containerd.containers.delete("seam-c1").await?;
    containerd.containers.delete("seam-s1").await?;
    ensure!(matches!(
        containerd.containers.get("seam-c1").await,
        Err(ContainerdError::NotFound { .. })
    ));
    ensure!(matches!(
        containerd.containers.delete("seam-c1").await,
        Err(ContainerdError::NotFound { .. })
    ));
    Ok(())
}

/// Waits for the next envelope, failing after `within`.
async fn next_event(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Result<Envelope, ContainerdError>>,
    within: Duration,
) -> Result<Option<Result<Envelope, ContainerdError>>> {
    match tokio::time::timeout(within, rx.recv()).await {
        Ok(item) => Ok(item),
        Err(_) => bail!("no event within {within:?}"),
    }
}

#[tokio::test]
async fn events_and_recovery_after_a_restart() -> Result<()> {
    let (mut process, containerd) = start().await?;
    let socket = process.socket().display().to_string();

    // On containerd 1.6 Subscribe returns only with the first event, so it
    // runs in a task of its own that forwards what it gets.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let events = containerd.events.clone();
    let subscriber = tokio::spawn(async move {
        match events
            .subscribe(vec![r#"topic~="/containers/""#.into()])
            .await
        {
            Ok(mut stream) => {
                while let Some(item) = stream.next().await {
                    if tx.send(item).is_err() {
                        break;
                    }
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        }
    });

    // The subscription may not be registered yet: create containers until
    // one of their events shows up.
    let mut created = Vec::new();
    let first = loop {
        if created.len() == 20 {
            bail!("no /containers/create event for {created:?}");
        }
        let id = format!("seam-ev{}", created.len());
        containerd.containers.create(container(&id)).await?;
        created.push(id);
        if let Ok(Some(item)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
            break item?;
        }
    };
    ensure!(first.topic == "/containers/create", "{first:?}");
    ensure!(first.namespace == K8S_NAMESPACE);
    ensure!(first.timestamp.is_some());
    let any = first.event.as_ref().context("event without payload")?;
    // containerd 1.6 sends type URLs without a leading slash.
    ensure!(
        any.type_url.trim_start_matches('/') == "containerd.events.ContainerCreate",
        "{}",
        any.type_url
    );
    match decode_event(any) {
        Some(DecodedEvent::ContainerCreate(event)) => {
            ensure!(created.contains(&event.id), "{event:?}")
        }
        other => bail!("decoded {other:?}"),
    }

    let deleted = created.first().context("nothing created")?.clone();
    containerd.containers.delete(&deleted).await?;
    let mut saw_delete = false;
    while !saw_delete {
        let envelope = next_event(&mut rx, Duration::from_secs(10))
            .await?
            .context("event stream ended")??;
        if let Some(DecodedEvent::ContainerDelete(event)) =
            envelope.event.as_ref().and_then(decode_event)
        {
            ensure!(envelope.topic == "/containers/delete");
            saw_delete = event.id == deleted;
        }
    }

    containerd.containers.create(container("seam-keep")).await?;

    // containerd goes away: the stream ends with Unavailable, and so does
    // every call, naming the socket.
    process.stop().await?;
    loop {
        match next_event(&mut rx, Duration::from_secs(10)).await? {
            // Events sent before the stop (the create above).
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                ensure!(e.is_unavailable(), "stream ended with {e:?}");
                break;
            }
            None => bail!("event stream ended without an error"),
        }
    }
    ensure!(next_event(&mut rx, Duration::from_secs(10))
        .await?
        .is_none());
    subscriber.await?;
    for _ in 0..2 {
        match containerd.version.version().await {
            Err(e @ ContainerdError::Unavailable { .. }) => {
                ensure!(e.to_string().contains(&socket), "{e}")
            }
            other => bail!("version while containerd is down: {other:?}"),
        }
    }
    ensure!(containerd
        .containers
        .get("seam-keep")
        .await
        .is_err_and(|e| e.is_unavailable()));

    // It comes back: the same client works without being rebuilt.
    process.start_again().await?;
    containerd.version.version().await?;
    let kept = containerd.containers.get("seam-keep").await?;
    ensure!(kept.id == "seam-keep");
    Ok(())
}
