//! App containers: the metadata kept in the containerd extension
//! `io.cri-containerd.container.metadata`, the status kept in the
//! `status` checkpoint, and the in-memory store of both.

use std::sync::Arc;

use cri_api::ids::{ContainerId, SandboxId};
use cri_api::v1::{ContainerConfig, ContainerResources, ContainerState};

use crate::error::{Result, StoreError};
use crate::records::{Keyed, Record, Records};

const KIND: &str = "container";

/// containerd's container `Metadata` (store/container/metadata.go):
/// immutable after the container is created.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerMetadata {
    pub id: ContainerId,
    /// `<ctr>_<pod>_<namespace>_<uid>_<attempt>`, reserved in the name index.
    pub name: String,
    pub sandbox_id: SandboxId,
    /// The CRI config as CreateContainer received it. Resource limits may
    /// since have been updated; the status holds the current ones.
    pub config: ContainerConfig,
    /// The image id, `sha256:<config digest>`.
    pub image_ref: String,
    /// Full path of the CRI log file, empty without one.
    pub log_path: String,
    /// The signal StopContainer sends first, e.g. `SIGTERM`.
    pub stop_signal: String,
    /// SELinux process label, empty without SELinux.
    pub process_label: String,
    /// The image record's target digest (containerd 2.x; empty from 1.7).
    pub image_digest: String,
    /// The containerd image name (containerd 2.x; empty from 1.7).
    pub image_name: String,
}

impl Keyed for ContainerMetadata {
    fn key(&self) -> &str {
        self.id.as_ref()
    }
}

/// containerd's container `Status` (store/container/status.go). Times are
/// unix nanoseconds, 0 when the event has not happened.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerStatus {
    /// Pid of the init process; 0 when not running.
    pub pid: u32,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    /// CamelCase reason, e.g. `OOMKilled`, `StartError`, `Unknown`.
    pub reason: String,
    pub message: String,
    /// The current resource limits.
    pub resources: Option<ContainerResources>,
    /// StartContainer is in progress. Not checkpointed.
    pub starting: bool,
    /// RemoveContainer is in progress. Not checkpointed.
    pub removing: bool,
    /// The status could not be loaded. Not checkpointed.
    pub unknown: bool,
}

impl ContainerStatus {
    /// The CRI state, derived as containerd's `Status.State()`: the
    /// unknown flag, then the latest timestamp that is set.
    pub fn state(&self) -> ContainerState {
        if self.unknown {
            ContainerState::ContainerUnknown
        } else if self.finished_at != 0 {
            ContainerState::ContainerExited
        } else if self.started_at != 0 {
            ContainerState::ContainerRunning
        } else if self.created_at != 0 {
            ContainerState::ContainerCreated
        } else {
            ContainerState::ContainerUnknown
        }
    }
}

/// A snapshot of one stored container.
pub type Container = Record<ContainerMetadata, ContainerStatus>;

/// The container store: one record per container holding its metadata,
/// its status and the runtime's handle `H` (open IO, stop signal; `()`
/// where nothing runs). The handle is added and removed with the record,
/// so the two cannot drift. All methods take `&self`; share it behind an
/// `Arc`.
#[derive(Debug)]
pub struct ContainerStore<H = ()> {
    records: Records<ContainerMetadata, ContainerStatus, H>,
}

impl<H> Default for ContainerStore<H> {
    fn default() -> Self {
        Self {
            records: Records::new(KIND),
        }
    }
}

impl<H> ContainerStore<H> {
    /// Adds a container with its handle; fails with `AlreadyExists` if its
    /// id is taken. Returns the stored handle.
    pub fn add(&self, container: Container, handle: H) -> Result<Arc<H>> {
        self.records.add(container, handle)
    }

    /// The container with this full id or unique id prefix.
    pub fn get(&self, id_or_prefix: &str) -> Result<Container> {
        self.records.get(id_or_prefix)
    }

    /// The container with this full id or unique id prefix and its handle.
    pub fn get_with_handle(&self, id_or_prefix: &str) -> Result<(Container, Arc<H>)> {
        self.records.get_attached(id_or_prefix)
    }

    /// The handle of the container with this full id, while it is stored.
    pub fn handle(&self, id: &str) -> Option<Arc<H>> {
        self.records.attached(id)
    }

    /// Every container, sorted by id.
    pub fn list(&self) -> Vec<Container> {
        self.records.list_where(|_| true)
    }

    /// `f` applied to every container in id order, keeping what it
    /// returns, without copying the records: what list RPCs build their
    /// answers with.
    pub fn filter_map<T>(
        &self,
        f: impl FnMut(&ContainerMetadata, &ContainerStatus) -> Option<T>,
    ) -> Vec<T> {
        let mut f = f;
        self.records.filter_map(|m, s| f(m, s))
    }

    /// A count that changes whenever a container is added or removed or
    /// its status changes: a list answer built after reading it stays
    /// true while it is unchanged.
    pub fn generation(&self) -> u64 {
        self.records.generation()
    }

    /// The containers of one sandbox, sorted by id.
    pub fn list_by_sandbox(&self, sandbox_id: &SandboxId) -> Vec<Container> {
        self.records.list_where(|m| m.sandbox_id == *sandbox_id)
    }

    /// Applies `update` to a copy of the status of the container with this
    /// full id and stores the copy if `update` succeeds; returns it. Runs
    /// under the container's own lock, so `update` may write the status
    /// checkpoint (it must not await).
    pub fn update_status<E>(
        &self,
        id: &ContainerId,
        update: impl FnOnce(&mut ContainerStatus) -> Result<(), E>,
    ) -> Result<ContainerStatus, E>
    where
        E: From<StoreError>,
    {
        self.records.update_status(id.as_ref(), update)
    }

    /// Removes the container with this full id; returns its last snapshot.
    pub fn remove(&self, id: &ContainerId) -> Result<Container> {
        self.records.remove(id.as_ref())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn metadata(id: &str, sandbox_id: &str) -> ContainerMetadata {
        ContainerMetadata {
            id: ContainerId::from(id),
            name: format!("name-{id}"),
            sandbox_id: SandboxId::from(sandbox_id),
            config: ContainerConfig::default(),
            image_ref: String::new(),
            log_path: String::new(),
            stop_signal: String::new(),
            process_label: String::new(),
            image_digest: String::new(),
            image_name: String::new(),
        }
    }

    fn store_with(ids: &[(&str, &str)]) -> ContainerStore {
        let store: ContainerStore = ContainerStore::default();
        for (id, sandbox_id) in ids {
            store
                .add(
                    Container::new(metadata(id, sandbox_id), ContainerStatus::default()),
                    (),
                )
                .unwrap();
        }
        store
    }

    fn ids(containers: &[Container]) -> Vec<&str> {
        containers.iter().map(|c| c.metadata.id.as_ref()).collect()
    }

    fn check_state(
        created: i64,
        started: i64,
        finished: i64,
        unknown: bool,
        expected: ContainerState,
    ) {
        let status = ContainerStatus {
            created_at: created,
            started_at: started,
            finished_at: finished,
            unknown,
            ..ContainerStatus::default()
        };
        assert_eq!(status.state(), expected, "{status:?}");
    }

    #[test]
    fn state_from_timestamps() {
        check_state(0, 0, 0, false, ContainerState::ContainerUnknown);
        check_state(1, 0, 0, false, ContainerState::ContainerCreated);
        check_state(1, 2, 0, false, ContainerState::ContainerRunning);
        check_state(1, 2, 3, false, ContainerState::ContainerExited);
        // A container that never started but has an exit (StartError).
        check_state(1, 0, 3, false, ContainerState::ContainerExited);
    }

    #[test]
    fn unknown_flag_wins() {
        check_state(1, 2, 0, true, ContainerState::ContainerUnknown);
        check_state(1, 2, 3, true, ContainerState::ContainerUnknown);
    }

    #[test]
    fn get_by_id_and_prefix() {
        let store = store_with(&[("abc1", "s1"), ("abd2", "s1")]);
        assert_eq!(store.get("abc1").unwrap().metadata.name, "name-abc1");
        assert_eq!(store.get("abd").unwrap().metadata.id.as_ref(), "abd2");
        assert!(matches!(store.get("ab"), Err(StoreError::Ambiguous { .. })));
        assert!(matches!(store.get("x"), Err(StoreError::NotFound { .. })));
    }

    #[test]
    fn add_twice_fails() {
        let store = store_with(&[("abc1", "s1")]);
        let err = store
            .add(
                Container::new(metadata("abc1", "s2"), ContainerStatus::default()),
                (),
            )
            .unwrap_err();
        assert_eq!(
            err,
            StoreError::AlreadyExists {
                kind: "container",
                id: "abc1".into()
            }
        );
    }

    #[test]
    fn add_empty_id_fails() {
        let store: ContainerStore = ContainerStore::default();
        let err = store
            .add(
                Container::new(metadata("", "s1"), ContainerStatus::default()),
                (),
            )
            .unwrap_err();
        assert_eq!(err, StoreError::EmptyId { kind: "container" });
    }

    #[test]
    fn generation_changes_with_every_change_and_only_then() {
        let store = store_with(&[("c1", "s1")]);
        let mut seen = store.generation();
        let mut changed = |store: &ContainerStore, what: &str| {
            let now = store.generation();
            assert_ne!(now, seen, "{what} left the generation at {now}");
            seen = now;
        };
        store
            .add(
                Container::new(metadata("c2", "s1"), ContainerStatus::default()),
                (),
            )
            .unwrap();
        changed(&store, "add");
        let id = ContainerId::from("c1");
        store
            .update_status(&id, |s| {
                s.started_at = 2;
                Ok::<(), StoreError>(())
            })
            .unwrap();
        changed(&store, "a status update");
        store.remove(&id).unwrap();
        changed(&store, "remove");

        // Reads and refused changes leave it alone.
        let before = store.generation();
        let _ = store.list();
        let _ = store.get("c2");
        let refused = store.update_status(&ContainerId::from("c2"), |_| {
            Err::<(), _>(StoreError::EmptyId { kind: "container" })
        });
        assert!(refused.is_err());
        assert!(store
            .add(
                Container::new(metadata("c2", "s1"), ContainerStatus::default()),
                (),
            )
            .is_err());
        assert!(store.remove(&id).is_err());
        assert_eq!(store.generation(), before);
    }

    #[test]
    fn list_sorted_and_by_sandbox() {
        let store = store_with(&[("c3", "s1"), ("c1", "s2"), ("c2", "s1")]);
        assert_eq!(ids(&store.list()), ["c1", "c2", "c3"]);
        assert_eq!(
            ids(&store.list_by_sandbox(&SandboxId::from("s1"))),
            ["c2", "c3"]
        );
        assert!(store.list_by_sandbox(&SandboxId::from("s9")).is_empty());
    }

    #[test]
    fn update_status_commits_on_ok() {
        let store = store_with(&[("c1", "s1")]);
        let id = ContainerId::from("c1");
        let new = store
            .update_status(&id, |s| {
                s.created_at = 5;
                Ok::<_, StoreError>(())
            })
            .unwrap();
        assert_eq!(new.created_at, 5);
        assert_eq!(store.get("c1").unwrap().status.created_at, 5);
    }

    #[test]
    fn update_status_rolls_back_on_err() {
        let store = store_with(&[("c1", "s1")]);
        let id = ContainerId::from("c1");
        let err = store
            .update_status(&id, |s| {
                s.pid = 42;
                Err(StoreError::EmptyId { kind: "test" })
            })
            .unwrap_err();
        assert_eq!(err, StoreError::EmptyId { kind: "test" });
        assert_eq!(store.get("c1").unwrap().status.pid, 0);
    }

    #[test]
    fn update_status_of_missing_container() {
        let store: ContainerStore = ContainerStore::default();
        let err = store
            .update_status(&ContainerId::from("c1"), |_| Ok::<_, StoreError>(()))
            .unwrap_err();
        assert_eq!(
            err,
            StoreError::NotFound {
                kind: "container",
                id: "c1".into()
            }
        );
    }

    #[test]
    fn handles_live_and_die_with_their_records() {
        let store: ContainerStore<String> = ContainerStore::default();
        let meta = metadata("c1", "s1");
        let handle = store
            .add(
                Container::new(meta, ContainerStatus::default()),
                "io".into(),
            )
            .unwrap();
        assert_eq!(*handle, "io");
        assert_eq!(
            store.handle("c1").as_deref().map(String::as_str),
            Some("io")
        );
        let (record, by_prefix) = store.get_with_handle("c").unwrap();
        assert_eq!(record.metadata.id.as_ref(), "c1");
        assert!(Arc::ptr_eq(&handle, &by_prefix));
        // A prefix names the record, never a handle alone.
        assert!(store.handle("c").is_none());
        store.remove(&ContainerId::from("c1")).unwrap();
        assert!(store.handle("c1").is_none());
        assert!(store.get_with_handle("c1").is_err());
    }

    #[test]
    fn snapshots_are_copies() {
        let store = store_with(&[("c1", "s1")]);
        let mut snapshot = store.get("c1").unwrap();
        snapshot.status.pid = 7;
        assert_eq!(store.get("c1").unwrap().status.pid, 0);
    }

    #[test]
    fn remove_by_full_id_only() {
        let store = store_with(&[("c1", "s1")]);
        assert!(matches!(
            store.remove(&ContainerId::from("c")),
            Err(StoreError::NotFound { .. })
        ));
        assert_eq!(
            store
                .remove(&ContainerId::from("c1"))
                .unwrap()
                .metadata
                .id
                .as_ref(),
            "c1"
        );
        assert!(matches!(store.get("c1"), Err(StoreError::NotFound { .. })));
        assert!(store.list().is_empty());
        // The id is free again.
        store
            .add(
                Container::new(metadata("c1", "s1"), ContainerStatus::default()),
                (),
            )
            .unwrap();
    }

    #[test]
    fn shared_between_threads() {
        let store = std::sync::Arc::new(store_with(&[("c1", "s1")]));
        let id = ContainerId::from("c1");
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (store, id) = (std::sync::Arc::clone(&store), id.clone());
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        store
                            .update_status(&id, |s| {
                                s.exit_code += 1;
                                Ok::<_, StoreError>(())
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(store.get("c1").unwrap().status.exit_code, 800);
    }
}
