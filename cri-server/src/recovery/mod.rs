//! Restart recovery: before the CRI services answer (see [`Readiness`]),
//! the stores are rebuilt from what containerd and the status checkpoints
//! hold, as containerd's CRI plugin does in `restart.go`: images, then pod
//! sandboxes (`sandboxes.rs`), then app containers (`containers.rs`), then
//! leftovers that belong to no known object are removed (`orphans.rs`).
//! One bad record never stops start-up: it is logged with its id and
//! kept visible in a degraded state that Remove cleans up. When
//! containerd cannot be reached, the whole pass is retried with backoff
//! while the gate answers `Unavailable`.

mod containers;
mod gate;
mod orphans;
mod sandboxes;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cri_api::containerd::{ContainerRecord, ContainerdError, TaskInfo};
use futures::stream::{self, StreamExt, TryStreamExt};

pub use gate::{Readiness, RecoveryGate, RecoveryGateLayer, RECOVERING_MESSAGE};

use crate::service::ServerState;

const BACKOFF_INITIAL: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How many records load at once (each reads its checkpoint and reopens
/// its FIFOs, and asks containerd only for a task the list lacks).
const LOAD_PARALLELISM: usize = 16;
/// How long the image load waits for the event monitor's subscription.
const EVENT_SUBSCRIPTION_WAIT: Duration = Duration::from_secs(2);
/// containerd's `filterLabel` strings for the two kinds of CRI containers.
const SANDBOX_FILTER: &str = r#"labels."io.cri-containerd.kind"=="sandbox""#;
const CONTAINER_FILTER: &str = r#"labels."io.cri-containerd.kind"=="container""#;
const KIND_LABEL: &str = "io.cri-containerd.kind";

/// How one record was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Loaded,
    /// Kept in a degraded state (unknown container, NOTREADY sandbox).
    Degraded,
    /// In the store from an earlier, interrupted pass.
    AlreadyLoaded,
}

/// What a recovery pass found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoverySummary {
    pub sandboxes: usize,
    pub containers: usize,
    /// Records kept in a degraded state.
    pub degraded: usize,
    /// Leftover dirs, netns pins and snapshots removed.
    pub orphans_removed: usize,
}

/// Why a recovery pass stopped: containerd could not list or answer.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("load images from containerd")]
    Images(#[source] cri_image::ImageError),
    #[error("recover {what} from containerd")]
    Containerd {
        what: &'static str,
        #[source]
        source: ContainerdError,
    },
}

/// One recovery pass. Idempotent: records already in the stores (from an
/// interrupted pass) are skipped.
pub async fn recover(state: &Arc<ServerState>) -> Result<RecoverySummary, RecoveryError> {
    // The images and the pods load side by side: neither needs the other.
    let images = async {
        // Loaded after the event monitor subscribed, nothing is missed
        // between the two (the monitor resyncs itself if this comes first).
        state
            .images
            .wait_event_subscription(EVENT_SUBSCRIPTION_WAIT)
            .await;
        state.images.load().await.map_err(RecoveryError::Images)
    };
    let (images, pods) = tokio::join!(images, recover_pods(state));
    images?;
    let summary = pods?;
    warn_missing_images(state);
    Ok(summary)
}

/// Warns of each recovered container whose image is not in the image
/// store; checked once both are loaded (a check while the images are still
/// loading would warn of images that are there).
fn warn_missing_images(state: &ServerState) {
    let images = state.images.store();
    for container in state.containers.store.list() {
        let meta = &container.metadata;
        if images.inspect(&meta.image_ref, |_| ()).is_err() {
            tracing::warn!(container_id = %meta.id, image = %meta.image_ref, "image of recovered container is not in the image store");
        }
    }
}

/// What one pass shares among its record loads: the tasks containerd
/// listed when it began, by container id (one `Tasks/List` instead of a
/// `Tasks/Get` per record), and the exit monitors to start once every
/// record is loaded. Their `Tasks/Wait` calls would otherwise compete with
/// the loading; a task that exits meanwhile keeps its exit status until it
/// is deleted, so no exit is missed.
///
/// The list comes in while the records load: each load decodes its record
/// and reads its checkpoint first, and waits for the list only when it
/// needs its task.
pub(super) struct Pass {
    listed: tokio::sync::watch::Receiver<Option<Arc<HashMap<String, TaskInfo>>>>,
    sandboxes: std::sync::Mutex<Vec<cri_api::ids::SandboxId>>,
    containers: std::sync::Mutex<Vec<cri_api::ids::ContainerId>>,
}

/// The sending half of [`Pass`]'s task list.
struct TaskListSender(tokio::sync::watch::Sender<Option<Arc<HashMap<String, TaskInfo>>>>);

impl TaskListSender {
    fn send(&self, tasks: Vec<TaskInfo>) {
        let by_id = tasks.into_iter().map(|t| (t.id.clone(), t)).collect();
        self.0.send_replace(Some(Arc::new(by_id)));
    }
}

impl Pass {
    fn new() -> (Self, TaskListSender) {
        let (tx, listed) = tokio::sync::watch::channel(None);
        let pass = Self {
            listed,
            sandboxes: std::sync::Mutex::default(),
            containers: std::sync::Mutex::default(),
        };
        (pass, TaskListSender(tx))
    }

    /// Watch sandbox `id` once the records are loaded.
    pub(super) fn watch_sandbox(&self, id: cri_api::ids::SandboxId) {
        self.sandboxes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(id);
    }

    /// Watch container `id` once the records are loaded.
    pub(super) fn watch_container(&self, id: cri_api::ids::ContainerId) {
        self.containers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(id);
    }

    /// Starts the exit monitors asked for.
    fn start_watches(self, state: &Arc<ServerState>) {
        for id in into_inner(self.sandboxes) {
            crate::sandbox::exit_monitor::spawn_exit_monitor(Arc::clone(&state.sandboxes), id);
        }
        for id in into_inner(self.containers) {
            crate::container::exit::spawn_exit_monitor(Arc::clone(&state.containers), id, None);
        }
    }

    /// The task of container `id`: from the list once it is in, else
    /// asked for. A task can be missing from the list because it is gone
    /// or because its shim did not report its state in time (containerd
    /// leaves such a task out of the list); `Tasks/Get` tells the two
    /// apart. Without a list (its call failed, and the pass with it) each
    /// task is asked for.
    pub(super) async fn get(
        &self,
        state: &ServerState,
        id: &str,
    ) -> Result<TaskInfo, ContainerdError> {
        let mut listed = self.listed.clone();
        let tasks = match listed.wait_for(Option::is_some).await {
            Ok(tasks) => tasks.clone(),
            Err(_) => None,
        };
        match tasks.as_ref().and_then(|tasks| tasks.get(id)) {
            Some(task) => Ok(task.clone()),
            None => state.containerd.tasks.get(id, "").await,
        }
    }
}

fn into_inner<T>(m: std::sync::Mutex<T>) -> T {
    m.into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The sandboxes and the app containers, each kind [`LOAD_PARALLELISM`]
/// records at a time as soon as its records are listed, while containerd
/// lists the tasks and the snapshots; then the orphans.
async fn recover_pods(state: &Arc<ServerState>) -> Result<RecoverySummary, RecoveryError> {
    let containerd_err = |what| move |source| RecoveryError::Containerd { what, source };
    let mut summary = RecoverySummary::default();
    let (pass, task_list) = Pass::new();
    let list_tasks = async {
        let tasks = state
            .containerd
            .tasks
            .list()
            .await
            .map_err(containerd_err("list tasks"))?;
        task_list.send(tasks);
        Ok(())
    };
    // The futures are made up front: a `Stream::map` closure over borrowed
    // records trips the compiler's Send check of the spawned recovery.
    let sandboxes = async {
        let records = list_records(state, SANDBOX_FILTER, "list sandboxes").await?;
        let loads: Vec<_> = records
            .iter()
            .map(|record| sandboxes::load(state, record, &pass))
            .collect();
        let outcomes = load_all(loads).await.map_err(containerd_err("sandbox"))?;
        Ok::<_, RecoveryError>((records, outcomes))
    };
    let containers = async {
        let records = list_records(state, CONTAINER_FILTER, "list containers").await?;
        let loads: Vec<_> = records
            .iter()
            .map(|record| containers::load(state, record, &pass))
            .collect();
        let outcomes = load_all(loads).await.map_err(containerd_err("container"))?;
        Ok::<_, RecoveryError>((records, outcomes))
    };
    let snapshots = async { Ok(orphans::list_snapshots(state).await) };
    let loaded = tokio::try_join!(list_tasks, sandboxes, containers, snapshots);
    // Also after a failed load: what was loaded stays in the stores, and
    // the retried pass skips it.
    pass.start_watches(state);
    let (
        (),
        (sandbox_records, sandbox_outcomes),
        (container_records, container_outcomes),
        snapshots,
    ) = loaded?;
    summary.sandboxes = sandbox_outcomes.len();
    summary.containers = container_outcomes.len();
    summary.degraded = sandbox_outcomes
        .iter()
        .chain(&container_outcomes)
        .filter(|o| **o == Outcome::Degraded)
        .count();
    let records: Vec<&ContainerRecord> = sandbox_records.iter().chain(&container_records).collect();
    summary.orphans_removed = orphans::clean(state, &records, snapshots).await;
    Ok(summary)
}

/// The container records of one kind (`filter`, containerd's syntax).
async fn list_records(
    state: &ServerState,
    filter: &str,
    what: &'static str,
) -> Result<Vec<ContainerRecord>, RecoveryError> {
    state
        .containerd
        .containers
        .list(vec![filter.to_owned()])
        .await
        .map_err(|source| RecoveryError::Containerd { what, source })
}

/// Runs `loads`, [`LOAD_PARALLELISM`] at a time, until the first error.
async fn load_all<F>(loads: Vec<F>) -> Result<Vec<Outcome>, ContainerdError>
where
    F: std::future::Future<Output = Result<Outcome, ContainerdError>>,
{
    stream::iter(loads)
        .buffer_unordered(LOAD_PARALLELISM)
        .try_collect()
        .await
}

/// Recovers (retrying with backoff while containerd is unreachable), then
/// opens the gate. Runs until done; the daemon spawns it.
pub async fn recover_then_serve(state: Arc<ServerState>, readiness: Readiness) {
    let mut delay = BACKOFF_INITIAL;
    loop {
        let namespace = &state.config.server.containerd_namespace;
        let ready = match state
            .containerd
            .namespaces
            .ensure(namespace, HashMap::new())
            .await
        {
            Ok(()) => recover(&state).await,
            Err(source) => Err(RecoveryError::Containerd {
                what: "namespace",
                source,
            }),
        };
        match ready {
            Ok(summary) => {
                tracing::info!(
                    sandboxes = summary.sandboxes,
                    containers = summary.containers,
                    degraded = summary.degraded,
                    orphans_removed = summary.orphans_removed,
                    "recovered state from containerd; serving"
                );
                readiness.set_ready();
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "recovery failed; answering Unavailable until it succeeds");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// The record's labels without the CRI kind label: the CRI config's.
fn record_labels(record: &ContainerRecord) -> HashMap<String, String> {
    let mut labels = record.labels.clone();
    labels.remove(KIND_LABEL);
    labels
}

/// The OCI spec stored on a record, if it decodes.
fn spec_of(record: &ContainerRecord) -> Option<oci_spec::runtime::Spec> {
    let any = record.spec.as_ref()?;
    match serde_json::from_slice(&any.value) {
        Ok(spec) => Some(spec),
        Err(e) => {
            tracing::warn!(id = %record.id, error = %e, "cannot decode the stored spec");
            None
        }
    }
}

/// containerd's `task.Delete(WithProcessKill)` for a task that is not
/// running (or must not run): SIGKILL, then delete; gone is fine.
async fn kill_and_delete_task(state: &ServerState, id: &str) -> Result<(), ContainerdError> {
    let tasks = &state.containerd.tasks;
    match tasks
        .kill(id, "", crate::container::signal::SIGKILL, true)
        .await
    {
        Err(e) if e.is_unavailable() => return Err(e),
        Err(e) => tracing::debug!(id, error = %e, "kill task before delete"),
        Ok(()) => {}
    }
    let mut attempt = 0;
    loop {
        match tasks.delete(id, "").await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) if e.is_unavailable() || attempt >= 20 => return Err(e),
            // A killed task may take a moment to be reaped.
            Err(e) => {
                tracing::debug!(id, error = %e, "delete task; retrying");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests;
