//! Leftovers of objects that no longer exist, removed once recovery has
//! loaded everything (a crash mid-create or mid-remove leaves them):
//! container and sandbox dirs under the root and state dirs with no
//! record, netns pins under `<state>/netns` no sandbox refers to, and
//! active snapshots keyed like a CRI object id with no containerd
//! container (a create killed between its snapshot and its record).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use cri_api::containerd::{ContainerRecord, SnapshotInfo, SnapshotKind};
use cri_api::ids::SandboxId;
use cri_sandbox::cni::{SandboxNetwork, DEFAULT_CACHE_DIR};

use crate::service::ServerState;

/// The snapshots of each snapshotter in use, listed while the records
/// load (nothing makes CRI snapshots until recovery ends); a snapshotter
/// that could not be listed is left out, with a warning.
pub(super) struct Snapshots(Vec<(String, Vec<SnapshotInfo>)>);

/// Lists the snapshots [`clean`] goes through.
pub(super) async fn list_snapshots(state: &ServerState) -> Snapshots {
    let mut snapshotters: Vec<&str> = vec![state.config.cri.snapshotter.as_str()];
    for name in state.config.cri.runtimes.keys() {
        let s = state.config.cri.snapshotter_for(name);
        if !snapshotters.contains(&s) {
            snapshotters.push(s);
        }
    }
    let lists = snapshotters.into_iter().map(|snapshotter| async move {
        match state
            .containerd
            .snapshots
            .list(snapshotter, Vec::new())
            .await
        {
            Ok(list) => Some((snapshotter.to_owned(), list)),
            Err(e) => {
                tracing::warn!(snapshotter, error = %e, "list snapshots for leftovers");
                None
            }
        }
    });
    Snapshots(
        futures::future::join_all(lists)
            .await
            .into_iter()
            .flatten()
            .collect(),
    )
}

/// Removes the leftovers; returns how many were removed. Failures are
/// logged, never fatal.
pub(super) async fn clean(
    state: &ServerState,
    records: &[&ContainerRecord],
    snapshots: Snapshots,
) -> usize {
    let server = &state.config.server;
    let containers: HashSet<String> = state
        .containers
        .store
        .list()
        .into_iter()
        .map(|c| c.metadata.id.to_string())
        .collect();
    let sandboxes = state.sandboxes.store.list();
    let sandbox_ids: HashSet<String> = sandboxes
        .iter()
        .map(|s| s.metadata.id.to_string())
        .collect();
    let mut removed = 0;

    for base in [&server.root_dir, &server.state_dir] {
        for (name, path) in entries(&base.join("containers")) {
            if containers.contains(&name) {
                continue;
            }
            tracing::info!(path = %path.display(), "removing leftover container dir");
            match remove_all(&path) {
                Ok(()) => removed += 1,
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "remove leftover"),
            }
        }
    }

    let orphan_sandboxes: HashSet<String> = [&server.root_dir, &server.state_dir]
        .into_iter()
        .flat_map(|base| entries(&base.join("sandboxes")))
        .map(|(name, _)| name)
        .filter(|name| !sandbox_ids.contains(name))
        .collect();
    for name in orphan_sandboxes {
        tracing::info!(pod_sandbox_id = %name, "removing leftover sandbox files");
        let files = state.sandboxes.manager.files().clone();
        let id = SandboxId::from(name.as_str());
        match tokio::task::spawn_blocking(move || files.remove(&id)).await {
            Ok(Ok(())) => removed += 1,
            Ok(Err(e)) => {
                tracing::warn!(pod_sandbox_id = %name, error = %e, "remove leftover sandbox files")
            }
            Err(e) => {
                tracing::warn!(pod_sandbox_id = %name, error = %e, "remove leftover sandbox files")
            }
        }
    }

    if state.config.cri.netns_mounts_under_state_dir {
        let used: HashSet<PathBuf> = sandboxes
            .iter()
            .filter(|s| !s.metadata.netns_path.is_empty())
            .map(|s| PathBuf::from(&s.metadata.netns_path))
            .collect();
        for (_, path) in entries(&server.state_dir.join("netns")) {
            if used.contains(&path) {
                continue;
            }
            tracing::info!(path = %path.display(), "removing leftover network namespace");
            // A create killed after CNI ADD: DEL from the cached result
            // frees the pod's IP.
            for id in cni_cache_ids_for(Path::new(DEFAULT_CACHE_DIR), &path) {
                let network = SandboxNetwork::new(SandboxId::from(id.as_str()), &path);
                if let Err(e) = state.sandboxes.manager.cni().teardown(&network).await {
                    tracing::warn!(pod_sandbox_id = %id, error = %e, "tear down network of leftover netns");
                }
            }
            match state.sandboxes.manager.netns().remove(&path).await {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "remove leftover netns")
                }
            }
        }
    }

    removed + clean_snapshots(state, records, snapshots).await
}

/// Active snapshots named like a CRI id (64 hex digits) that no
/// containerd container holds.
async fn clean_snapshots(
    state: &ServerState,
    records: &[&ContainerRecord],
    snapshots: Snapshots,
) -> usize {
    let held: HashSet<(&str, &str)> = records
        .iter()
        .map(|r| (r.snapshotter.as_str(), r.snapshot_key.as_str()))
        .collect();
    let mut removed = 0;
    for (snapshotter, list) in &snapshots.0 {
        for snapshot in list {
            if snapshot.kind != SnapshotKind::Active
                || !is_cri_id(&snapshot.name)
                || held.contains(&(snapshotter.as_str(), snapshot.name.as_str()))
            {
                continue;
            }
            tracing::info!(snapshotter, key = %snapshot.name, "removing leftover snapshot");
            match state
                .containerd
                .snapshots
                .remove(snapshotter, &snapshot.name)
                .await
            {
                Ok(()) => removed += 1,
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    tracing::warn!(key = %snapshot.name, error = %e, "remove leftover snapshot")
                }
            }
        }
    }
    removed
}

/// The sandbox ids of the libcni cache entries (`<cache>/results/*`)
/// made for the netns pinned at `netns`.
fn cni_cache_ids_for(cache_dir: &Path, netns: &Path) -> Vec<String> {
    let netns = netns.display().to_string();
    let mut ids: Vec<String> = entries(&cache_dir.join("results"))
        .into_iter()
        .filter_map(|(_, path)| {
            let entry: serde_json::Value =
                serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
            (entry.get("netns")?.as_str()? == netns)
                .then(|| entry.get("containerId")?.as_str().map(str::to_owned))
                .flatten()
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// An id as containerd's `util.GenerateID` makes them.
fn is_cri_id(name: &str) -> bool {
    name.len() == 64
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `(file name, path)` of the entries of `dir`; none when it is missing.
fn entries(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    read.flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect()
}

fn remove_all(path: &Path) -> std::io::Result<()> {
    let result = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cni_cache_entries_are_matched_by_netns() {
        let cache = tempfile::tempdir().unwrap();
        let results = cache.path().join("results");
        std::fs::create_dir_all(&results).unwrap();
        for (file, id, netns) in [
            ("net-a-eth0", "a", "/state/netns/cni-1"),
            ("net2-a-eth0", "a", "/state/netns/cni-1"),
            ("net-b-eth0", "b", "/state/netns/cni-2"),
        ] {
            let entry =
                serde_json::json!({"kind": "cniCacheV1", "containerId": id, "netns": netns});
            std::fs::write(results.join(file), entry.to_string()).unwrap();
        }
        std::fs::write(results.join("garbage"), "{").unwrap();
        assert_eq!(
            cni_cache_ids_for(cache.path(), Path::new("/state/netns/cni-1")),
            ["a"]
        );
        assert!(cni_cache_ids_for(cache.path(), Path::new("/state/netns/cni-3")).is_empty());
    }

    #[test]
    fn cri_ids_are_64_lowercase_hex() {
        assert!(is_cri_id(&"a1".repeat(32)));
        assert!(!is_cri_id(&"A1".repeat(32)));
        assert!(!is_cri_id("sha256:abc"));
        assert!(!is_cri_id(&"a".repeat(63)));
    }
}
