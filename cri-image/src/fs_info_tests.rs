#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cri_api::containerd::{
    Containerd, ContainerdError, MockContainers, MockContent, MockDiff, MockEvents, MockImages,
    MockIntrospection, MockLeases, MockNamespaces, MockSnapshots, MockTasks, MockVersion,
    PluginInfo, SnapshotInfo, SnapshotKind, SnapshotUsage,
};
use cri_store::image::ImageStore;

use super::super::tests::settings;
use super::*;

fn snapshotter(id: &str, root: Option<&str>) -> PluginInfo {
    PluginInfo {
        kind: "io.containerd.snapshotter.v1".into(),
        id: id.into(),
        exports: root
            .map(|r| HashMap::from([("root".to_owned(), r.to_owned())]))
            .unwrap_or_default(),
        ..PluginInfo::default()
    }
}

fn snapshot(name: &str, kind: SnapshotKind) -> SnapshotInfo {
    SnapshotInfo {
        name: name.into(),
        kind,
        ..SnapshotInfo::default()
    }
}

/// overlayfs holds a committed layer (100 bytes, 10 inodes) and an active
/// container layer (5 bytes, 1 inode); `native` holds nothing.
fn manager(
    plugins: Result<Vec<PluginInfo>, ()>,
    snapshotters: &[&str],
    usage_calls: Arc<AtomicUsize>,
) -> ImageManager {
    let mut introspection = MockIntrospection::new();
    introspection.expect_plugins().returning(move |filters| {
        assert_eq!(filters, [SNAPSHOTTER_PLUGIN_FILTER]);
        plugins.clone().map_err(|()| ContainerdError::Unavailable {
            address: "/run/containerd.sock".into(),
            message: "down".into(),
        })
    });
    let mut snapshots = MockSnapshots::new();
    snapshots.expect_list().returning(|snapshotter, _| {
        Ok(match snapshotter {
            "overlayfs" => vec![
                snapshot("sha256:layer", SnapshotKind::Committed),
                snapshot("container", SnapshotKind::Active),
            ],
            _ => Vec::new(),
        })
    });
    snapshots.expect_usage().returning(move |_, name| {
        usage_calls.fetch_add(1, Ordering::SeqCst);
        Ok(match name {
            "sha256:layer" => SnapshotUsage {
                size: 100,
                inodes: 10,
            },
            _ => SnapshotUsage { size: 5, inodes: 1 },
        })
    });
    let containerd = Containerd {
        containers: Arc::new(MockContainers::new()),
        tasks: Arc::new(MockTasks::new()),
        content: Arc::new(MockContent::new()),
        images: Arc::new(MockImages::new()),
        snapshots: Arc::new(snapshots),
        diff: Arc::new(MockDiff::new()),
        leases: Arc::new(MockLeases::new()),
        events: Arc::new(MockEvents::new()),
        namespaces: Arc::new(MockNamespaces::new()),
        version: Arc::new(MockVersion::new()),
        introspection: Arc::new(introspection),
    };
    let mut settings = settings();
    settings.snapshotters = snapshotters.iter().map(|s| (*s).to_owned()).collect();
    settings.containerd_root_dir = "/data/containerd".into();
    ImageManager::new(containerd, settings, Arc::new(ImageStore::default()))
}

fn check(response: &ImageFsInfoResponse, want: &[(&str, u64, u64)]) {
    let got: Vec<(String, u64, u64)> = response
        .image_filesystems
        .iter()
        .map(|fs| {
            (
                fs.fs_id.as_ref().unwrap().mountpoint.clone(),
                fs.used_bytes.as_ref().unwrap().value,
                fs.inodes_used.as_ref().unwrap().value,
            )
        })
        .collect();
    let want: Vec<(String, u64, u64)> = want
        .iter()
        .map(|(m, b, i)| ((*m).to_owned(), *b, *i))
        .collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn reports_the_exported_root_and_the_snapshot_usage() {
    let calls = Arc::new(AtomicUsize::new(0));
    let manager = manager(
        Ok(vec![
            snapshotter("overlayfs", Some("/srv/ctd/overlay-root")),
            snapshotter("native", Some("/srv/ctd/native-root")),
        ]),
        &["overlayfs", "native"],
        Arc::clone(&calls),
    );
    let response = manager.fs_info().await.unwrap();
    // `native` holds no snapshots: only the default is reported.
    check(&response, &[("/srv/ctd/overlay-root", 105, 11)]);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // The next call is answered from the last answer.
    manager.fs_info().await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // A refresh (the syncer's, or after images changed): the committed
    // layer's usage is cached, the active one is read again.
    manager.mark_fs_info_stale();
    check(
        &manager.fs_info().await.unwrap(),
        &[("/srv/ctd/overlay-root", 105, 11)],
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    manager.refresh_fs_info().await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_handler_snapshotter_with_snapshots_follows_the_default() {
    let manager = manager(
        Ok(vec![
            snapshotter("native", Some("/srv/native")),
            snapshotter("overlayfs", Some("/srv/overlay")),
        ]),
        &["native", "overlayfs"],
        Arc::default(),
    );
    let response = manager.fs_info().await.unwrap();
    check(
        &response,
        &[("/srv/native", 0, 0), ("/srv/overlay", 105, 11)],
    );
}

#[tokio::test]
async fn without_an_export_the_usual_directory_under_the_root_is_reported() {
    for plugins in [Ok(vec![snapshotter("overlayfs", None)]), Err(())] {
        let manager = manager(plugins, &["overlayfs"], Arc::default());
        let response = manager.fs_info().await.unwrap();
        check(
            &response,
            &[(
                "/data/containerd/io.containerd.snapshotter.v1.overlayfs",
                105,
                11,
            )],
        );
    }
}

/// Records what each pass tells it.
#[derive(Debug, Default)]
struct Told(std::sync::Mutex<Vec<ToldPass>>);

/// Snapshotter, mountpoint and active usages of one pass.
type ToldPass = (String, String, HashMap<String, SnapshotUsage>);

impl ActiveUsageObserver for Told {
    fn active_usages(
        &self,
        snapshotter: &str,
        mountpoint: &std::path::Path,
        usages: &HashMap<String, SnapshotUsage>,
    ) {
        self.0.lock().unwrap().push((
            snapshotter.to_owned(),
            mountpoint.display().to_string(),
            usages.clone(),
        ));
    }
}

#[tokio::test]
async fn each_pass_tells_the_observer_the_active_snapshots_usage_and_nothing_committed() {
    let calls = Arc::new(AtomicUsize::new(0));
    let manager = manager(
        Ok(vec![snapshotter(
            "overlayfs",
            Some("/srv/ctd/overlay-root"),
        )]),
        &["overlayfs", "native"],
        Arc::clone(&calls),
    );
    let told = Arc::new(Told::default());
    manager
        .set_active_usage_observer(Arc::clone(&told) as Arc<dyn ActiveUsageObserver>)
        .unwrap();
    assert!(
        manager
            .set_active_usage_observer(Arc::new(Told::default()))
            .is_err(),
        "a second observer is refused"
    );
    manager.refresh_fs_info().await.unwrap();
    manager.refresh_fs_info().await.unwrap();
    let container = HashMap::from([("container".to_owned(), SnapshotUsage { size: 5, inodes: 1 })]);
    let told = told.0.lock().unwrap().clone();
    // The mountpoints are ImageFsInfo's: the exported root, else the
    // usual directory under containerd's root.
    let overlay = || ("overlayfs".to_owned(), "/srv/ctd/overlay-root".to_owned());
    let native = || {
        (
            "native".to_owned(),
            "/data/containerd/io.containerd.snapshotter.v1.native".to_owned(),
        )
    };
    let with = |(s, m): (String, String), u: &HashMap<String, SnapshotUsage>| (s, m, u.clone());
    let none = HashMap::new();
    assert_eq!(
        told,
        vec![
            with(overlay(), &container),
            with(native(), &none),
            with(overlay(), &container),
            with(native(), &none),
        ]
    );
    // The active layer was asked for once a pass, the committed one once.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}
