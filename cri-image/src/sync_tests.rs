#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cri_api::containerd::{ContainerdError, ImageRecord, MockImages};
use cri_store::image::ImageStore;

use super::super::tests::{containerd, content_with, fake_image, record, settings, NAME};
use super::*;
use crate::{IMAGE_LABEL_KEY, IMAGE_LABEL_VALUE};

const OTHER: &str = "registry.example/app:2";

fn not_found(name: &str) -> ContainerdError {
    ContainerdError::NotFound {
        op: "get image",
        what: name.to_owned(),
    }
}

/// containerd holding `records` (by name) and `blobs`; what the sync
/// creates is recorded.
fn manager(
    records: Arc<Mutex<HashMap<String, ImageRecord>>>,
    blobs: HashMap<String, Bytes>,
) -> ImageManager {
    let mut images = MockImages::new();
    let held = Arc::clone(&records);
    images.expect_get().returning(move |name| {
        held.lock()
            .unwrap()
            .get(name)
            .cloned()
            .ok_or_else(|| not_found(name))
    });
    let held = Arc::clone(&records);
    images.expect_create().returning(move |r| {
        held.lock().unwrap().insert(r.name.clone(), r.clone());
        Ok(r)
    });
    let held = Arc::clone(&records);
    images.expect_update().returning(move |r, _| {
        held.lock().unwrap().insert(r.name.clone(), r.clone());
        Ok(r)
    });
    let layer = format!("sha256:{}", "e".repeat(64));
    let mut content = content_with(blobs.clone());
    let present: Vec<String> = blobs.keys().cloned().chain([layer]).collect();
    content.expect_info().returning(move |digest| {
        if present.iter().any(|d| d == digest) {
            Ok(Default::default())
        } else {
            Err(not_found(digest))
        }
    });
    ImageManager::new(
        containerd(images, content),
        settings(),
        Arc::new(ImageStore::default()),
    )
}

#[tokio::test]
async fn a_record_from_another_client_is_adopted_and_listed() {
    let (desc, config_digest, blobs) = fake_image("");
    let records = Arc::new(Mutex::new(HashMap::from([(
        NAME.to_owned(),
        record(NAME, &desc, &[]),
    )])));
    let manager = manager(Arc::clone(&records), blobs);
    let outcome = manager.sync_record(NAME).await.unwrap();
    assert_eq!(
        outcome,
        SyncOutcome::Present {
            id: config_digest.clone()
        }
    );
    assert_eq!(
        manager.resolve_local(NAME).unwrap().unwrap().id,
        config_digest
    );
    let records = records.lock().unwrap();
    for name in [NAME, config_digest.as_str()] {
        assert_eq!(
            records[name]
                .labels
                .get(IMAGE_LABEL_KEY)
                .map(String::as_str),
            Some(IMAGE_LABEL_VALUE),
            "{name} carries the CRI label"
        );
    }
}

#[tokio::test]
async fn an_image_with_a_missing_layer_is_not_added() {
    let (mut desc, _, mut blobs) = fake_image("");
    // Another manifest whose layer is not in the content store.
    let manifest = String::from_utf8(blobs[&desc.digest].to_vec())
        .unwrap()
        .replace(&"e".repeat(64), &"f".repeat(64));
    blobs.remove(&desc.digest);
    desc.digest = crate::manifest::sha256_digest(manifest.as_bytes());
    desc.size = manifest.len() as i64;
    blobs.insert(desc.digest.clone(), Bytes::from(manifest));
    let managed = [(IMAGE_LABEL_KEY, IMAGE_LABEL_VALUE)];
    let records = Arc::new(Mutex::new(HashMap::from([(
        NAME.to_owned(),
        record(NAME, &desc, &managed),
    )])));
    let manager = manager(records, blobs);
    let err = manager.sync_record(NAME).await.unwrap_err();
    assert!(err.to_string().contains("find layer"), "{err}");
    assert!(manager.store().list().is_empty());
}

#[tokio::test]
async fn a_delete_event_asks_containerd_only_for_names_the_store_holds() {
    let (desc, config_digest, blobs) = fake_image("");
    let managed = [(IMAGE_LABEL_KEY, IMAGE_LABEL_VALUE)];
    let records = Arc::new(Mutex::new(HashMap::from([
        (NAME.to_owned(), record(NAME, &desc, &managed)),
        (
            config_digest.clone(),
            record(&config_digest, &desc, &managed),
        ),
    ])));
    let manager = manager(Arc::clone(&records), blobs);
    manager.sync_record(NAME).await.unwrap();

    // OTHER is not in the store. Had containerd been asked, its record
    // (made after the event) would have been adopted.
    records
        .lock()
        .unwrap()
        .insert(OTHER.to_owned(), record(OTHER, &desc, &managed));
    let outcome = manager.sync_deleted(OTHER).await.unwrap();
    assert_eq!(
        outcome,
        SyncOutcome::Gone {
            removed_image: None
        }
    );
    assert!(manager.resolve_local(OTHER).unwrap().is_none());

    // NAME is in the store: containerd is asked, and the tag goes.
    records.lock().unwrap().remove(NAME);
    manager.sync_deleted(NAME).await.unwrap();
    assert!(manager.resolve_local(NAME).unwrap().is_none());
    assert!(
        manager.store().get(&config_digest).is_ok(),
        "the id record keeps the image"
    );
}

#[tokio::test]
async fn a_create_event_asks_containerd_only_for_names_the_store_lacks() {
    let (desc, config_digest, blobs) = fake_image("");
    let managed = [(IMAGE_LABEL_KEY, IMAGE_LABEL_VALUE)];
    let records = Arc::new(Mutex::new(HashMap::from([(
        NAME.to_owned(),
        record(NAME, &desc, &managed),
    )])));
    let manager = manager(Arc::clone(&records), blobs);
    // Not in the store: read from containerd and adopted.
    assert_eq!(
        manager.sync_created(NAME).await.unwrap(),
        SyncOutcome::Present {
            id: config_digest.clone()
        }
    );
    // In the store: answered from it. Had containerd been asked, the
    // record removed meanwhile would have been found gone.
    records.lock().unwrap().remove(NAME);
    assert_eq!(
        manager.sync_created(NAME).await.unwrap(),
        SyncOutcome::Present {
            id: config_digest.clone()
        }
    );
    assert!(manager.resolve_local(NAME).unwrap().is_some());
}

/// A create event that comes while a pull of this daemon is recording
/// the name waits for the pull: when the pull put the image into the
/// store, containerd is not asked; when it failed, the record is read.
#[tokio::test]
async fn a_create_event_during_a_pull_waits_for_it() {
    let (desc, config_digest, blobs) = fake_image("");
    let managed = [(IMAGE_LABEL_KEY, IMAGE_LABEL_VALUE)];
    let records = Arc::new(Mutex::new(HashMap::from([(
        NAME.to_owned(),
        record(NAME, &desc, &managed),
    )])));
    let manager = Arc::new(manager(Arc::clone(&records), blobs));

    // The pull succeeds: it stores the image, then ends its recording.
    let recording = manager.puller.recording.begin([NAME.to_owned()]);
    let event = tokio::spawn({
        let manager = Arc::clone(&manager);
        async move { manager.sync_created(NAME).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(!event.is_finished(), "the event did not wait for the pull");
    let stored = manager.sync_record(NAME).await.unwrap();
    // Had containerd been asked after this, the record would be gone.
    records.lock().unwrap().remove(NAME);
    drop(recording);
    assert_eq!(event.await.unwrap().unwrap(), stored);

    // The pull fails after making the record: the event reads it.
    manager.store.remove(&config_digest);
    records
        .lock()
        .unwrap()
        .insert(NAME.to_owned(), record(NAME, &desc, &managed));
    let recording = manager.puller.recording.begin([NAME.to_owned()]);
    let event = tokio::spawn({
        let manager = Arc::clone(&manager);
        async move { manager.sync_created(NAME).await }
    });
    drop(recording);
    assert_eq!(
        event.await.unwrap().unwrap(),
        SyncOutcome::Present { id: config_digest }
    );
    assert!(manager.resolve_local(NAME).unwrap().is_some());
}

#[tokio::test]
async fn a_deleted_tag_keeps_the_image_while_its_id_record_is_there() {
    let (desc, config_digest, blobs) = fake_image("");
    let managed = [(IMAGE_LABEL_KEY, IMAGE_LABEL_VALUE)];
    let records = Arc::new(Mutex::new(HashMap::from([
        (NAME.to_owned(), record(NAME, &desc, &managed)),
        (OTHER.to_owned(), record(OTHER, &desc, &managed)),
        (
            config_digest.clone(),
            record(&config_digest, &desc, &managed),
        ),
    ])));
    let manager = manager(Arc::clone(&records), blobs);
    for name in [NAME, OTHER, config_digest.as_str()] {
        manager.sync_record(name).await.unwrap();
    }
    assert_eq!(
        manager.store().get(&config_digest).unwrap().references,
        [NAME, OTHER]
    );

    // One tag goes: the other still names it.
    records.lock().unwrap().remove(NAME);
    let outcome = manager.sync_record(NAME).await.unwrap();
    assert_eq!(
        outcome,
        SyncOutcome::Gone {
            removed_image: None
        }
    );
    assert!(manager.resolve_local(NAME).unwrap().is_none());
    assert_eq!(
        manager.resolve_local(OTHER).unwrap().unwrap().id,
        config_digest
    );

    // The last tag goes: the id record keeps it, untagged.
    records.lock().unwrap().remove(OTHER);
    manager.sync_record(OTHER).await.unwrap();
    assert!(manager
        .store()
        .get(&config_digest)
        .unwrap()
        .references
        .is_empty());

    // The id record goes too: the image is gone.
    records.lock().unwrap().remove(&config_digest);
    let outcome = manager.sync_record(&config_digest).await.unwrap();
    assert_eq!(
        outcome,
        SyncOutcome::Gone {
            removed_image: Some(config_digest.clone())
        }
    );
    assert!(manager.store().list().is_empty());
}

#[tokio::test]
async fn the_last_tag_without_an_id_record_takes_the_image() {
    let (desc, config_digest, blobs) = fake_image("");
    let managed = [(IMAGE_LABEL_KEY, IMAGE_LABEL_VALUE)];
    let records = Arc::new(Mutex::new(HashMap::from([(
        NAME.to_owned(),
        record(NAME, &desc, &managed),
    )])));
    let manager = manager(Arc::clone(&records), blobs);
    manager.sync_record(NAME).await.unwrap();
    // `ctr images rm NAME sha256:<id>`: both records are gone by the time
    // the first event is handled.
    records.lock().unwrap().clear();
    let outcome = manager.sync_record(NAME).await.unwrap();
    assert_eq!(
        outcome,
        SyncOutcome::Gone {
            removed_image: Some(config_digest)
        }
    );
    assert!(manager.store().list().is_empty());
}

#[tokio::test]
async fn a_tag_that_moves_leaves_its_old_image() {
    let (desc, old_id, mut blobs) = fake_image("1:1");
    let (new_desc, new_id, new_blobs) = fake_image("2:2");
    blobs.extend(new_blobs);
    let managed = [(IMAGE_LABEL_KEY, IMAGE_LABEL_VALUE)];
    let records = Arc::new(Mutex::new(HashMap::from([(
        NAME.to_owned(),
        record(NAME, &desc, &managed),
    )])));
    let manager = manager(Arc::clone(&records), blobs);
    manager.sync_record(NAME).await.unwrap();
    records
        .lock()
        .unwrap()
        .insert(NAME.to_owned(), record(NAME, &new_desc, &managed));
    manager.sync_record(NAME).await.unwrap();
    assert_eq!(manager.resolve_local(NAME).unwrap().unwrap().id, new_id);
    assert!(manager.store().get(&old_id).unwrap().references.is_empty());
}
