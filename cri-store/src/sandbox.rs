//! Pod sandboxes: the metadata kept in the containerd extension
//! `io.cri-containerd.sandbox.metadata`, the in-memory status (sandboxes
//! have no status checkpoint), and the store of both.

use cri_api::ids::SandboxId;
use cri_api::v1::{PodSandboxConfig, PodSandboxState};

use crate::error::{Result, StoreError};
use crate::records::{Keyed, Record, Records};

const KIND: &str = "sandbox";

/// containerd's sandbox `Metadata` (store/sandbox/metadata.go).
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxMetadata {
    pub id: SandboxId,
    /// `<name>_<namespace>_<uid>_<attempt>`, reserved in the name index.
    pub name: String,
    pub config: PodSandboxConfig,
    /// The network namespace bind mount; empty with host networking. Kept
    /// after the namespace is removed at stop.
    pub netns_path: String,
    /// The pod IP, empty with host networking.
    pub ip: String,
    /// The other pod IPs (the other address family).
    pub additional_ips: Vec<String>,
    /// The CRI runtime handler, empty for the default runtime.
    pub runtime_handler: String,
    /// go-cni's `Result` as JSON (`Interfaces`, `DNS`, `Routes`); `None`
    /// with host networking.
    pub cni_result: Option<serde_json::Value>,
    /// SELinux process label, empty without SELinux.
    pub process_label: String,
}

impl Keyed for SandboxMetadata {
    fn key(&self) -> &str {
        self.id.as_ref()
    }
}

/// The lifecycle state of a sandbox, as containerd's sandbox store has it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SandboxState {
    /// The pause task runs.
    Ready,
    /// Stopped, or the pause task is gone.
    NotReady,
    /// Being created, or could not be recovered.
    #[default]
    Unknown,
}

impl SandboxState {
    /// The CRI state: only a ready sandbox is `SANDBOX_READY`.
    pub fn to_cri(self) -> PodSandboxState {
        match self {
            SandboxState::Ready => PodSandboxState::SandboxReady,
            SandboxState::NotReady | SandboxState::Unknown => PodSandboxState::SandboxNotready,
        }
    }
}

/// The mutable part of a sandbox; kept in memory only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxStatus {
    pub state: SandboxState,
    /// Pid of the pause process; 0 when not running.
    pub pid: u32,
    /// Unix nanoseconds.
    pub created_at: i64,
    /// This daemon ran CNI DEL for the pod and removed its netns pin: a
    /// later StopPodSandbox or RemovePodSandbox does not run DEL again.
    /// False after a restart, so the first stop after one runs it.
    pub network_down: bool,
}

/// A snapshot of one stored sandbox.
pub type Sandbox = Record<SandboxMetadata, SandboxStatus>;

/// The sandbox store. All methods take `&self`; share it behind an `Arc`.
#[derive(Debug)]
pub struct SandboxStore {
    records: Records<SandboxMetadata, SandboxStatus>,
}

impl Default for SandboxStore {
    fn default() -> Self {
        Self {
            records: Records::new(KIND),
        }
    }
}

impl SandboxStore {
    /// Adds a sandbox; fails with `AlreadyExists` if its id is taken.
    pub fn add(&self, sandbox: Sandbox) -> Result<()> {
        self.records.add(sandbox, ()).map(|_| ())
    }

    /// The sandbox with this full id or unique id prefix.
    pub fn get(&self, id_or_prefix: &str) -> Result<Sandbox> {
        self.records.get(id_or_prefix)
    }

    /// Every sandbox, sorted by id.
    pub fn list(&self) -> Vec<Sandbox> {
        self.records.list_where(|_| true)
    }

    /// A count that changes whenever a sandbox is added or removed or
    /// its status changes: a list answer built after reading it stays
    /// true while it is unchanged.
    pub fn generation(&self) -> u64 {
        self.records.generation()
    }

    /// Applies `update` to a copy of the status of the sandbox with this
    /// full id and stores the copy if `update` succeeds; returns it.
    pub fn update_status<E>(
        &self,
        id: &SandboxId,
        update: impl FnOnce(&mut SandboxStatus) -> Result<(), E>,
    ) -> Result<SandboxStatus, E>
    where
        E: From<StoreError>,
    {
        self.records.update_status(id.as_ref(), update)
    }

    /// Removes the sandbox with this full id; returns its last snapshot.
    pub fn remove(&self, id: &SandboxId) -> Result<Sandbox> {
        self.records.remove(id.as_ref())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn metadata(id: &str) -> SandboxMetadata {
        SandboxMetadata {
            id: SandboxId::from(id),
            name: format!("name-{id}"),
            config: PodSandboxConfig::default(),
            netns_path: String::new(),
            ip: String::new(),
            additional_ips: Vec::new(),
            runtime_handler: String::new(),
            cni_result: None,
            process_label: String::new(),
        }
    }

    fn store_with(ids: &[&str]) -> SandboxStore {
        let store = SandboxStore::default();
        for id in ids {
            store
                .add(Sandbox::new(metadata(id), SandboxStatus::default()))
                .unwrap();
        }
        store
    }

    fn check_cri_state(state: SandboxState, expected: PodSandboxState) {
        assert_eq!(state.to_cri(), expected, "{state:?}");
    }

    #[test]
    fn cri_state() {
        check_cri_state(SandboxState::Ready, PodSandboxState::SandboxReady);
        check_cri_state(SandboxState::NotReady, PodSandboxState::SandboxNotready);
        check_cri_state(SandboxState::Unknown, PodSandboxState::SandboxNotready);
    }

    #[test]
    fn new_sandbox_is_unknown() {
        assert_eq!(SandboxStatus::default().state, SandboxState::Unknown);
    }

    #[test]
    fn get_by_id_and_prefix() {
        let store = store_with(&["abc1", "abd2"]);
        assert_eq!(store.get("abc").unwrap().metadata.name, "name-abc1");
        assert!(matches!(
            store.get("ab"),
            Err(StoreError::Ambiguous {
                kind: "sandbox",
                ..
            })
        ));
        assert!(matches!(
            store.get("zz"),
            Err(StoreError::NotFound {
                kind: "sandbox",
                ..
            })
        ));
    }

    #[test]
    fn add_twice_fails() {
        let store = store_with(&["s1"]);
        let err = store
            .add(Sandbox::new(metadata("s1"), SandboxStatus::default()))
            .unwrap_err();
        assert_eq!(
            err,
            StoreError::AlreadyExists {
                kind: "sandbox",
                id: "s1".into()
            }
        );
    }

    #[test]
    fn list_sorted() {
        let store = store_with(&["s2", "s3", "s1"]);
        let ids: Vec<String> = store
            .list()
            .iter()
            .map(|s| s.metadata.id.0.clone())
            .collect();
        assert_eq!(ids, ["s1", "s2", "s3"]);
    }

    #[test]
    fn update_status_then_remove() {
        let store = store_with(&["s1"]);
        let id = SandboxId::from("s1");
        store
            .update_status(&id, |s| {
                s.state = SandboxState::Ready;
                s.pid = 10;
                Ok::<_, StoreError>(())
            })
            .unwrap();
        let status = store.get("s1").unwrap().status;
        assert_eq!((status.state, status.pid), (SandboxState::Ready, 10));
        let removed = store.remove(&id).unwrap();
        assert_eq!(removed.status.state, SandboxState::Ready);
        assert!(store.list().is_empty());
        assert!(matches!(
            store.remove(&id),
            Err(StoreError::NotFound { .. })
        ));
    }

    #[test]
    fn failed_update_keeps_status() {
        let store = store_with(&["s1"]);
        let result = store.update_status(&SandboxId::from("s1"), |s| {
            s.state = SandboxState::Ready;
            Err(StoreError::EmptyId { kind: "test" })
        });
        assert!(result.is_err());
        assert_eq!(store.get("s1").unwrap().status.state, SandboxState::Unknown);
    }
}
