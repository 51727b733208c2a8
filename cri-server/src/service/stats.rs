//! The stats RPCs over the server's two stores: targets built from the container and
//! sandbox stores (running containers carry their cgroup, pods their
//! `cgroup_parent` and netns), filtered as containerd filters them (only
//! READY sandboxes are listed), then handed to the [`StatsCollector`](cri_stats::StatsCollector).

use cri_api::v1::{
    ContainerAttributes, ContainerState, ContainerStats, ContainerStatsFilter,
    PodSandboxAttributes, PodSandboxMetrics, PodSandboxStats, PodSandboxStatsFilter,
};
use cri_store::container::Container;
use cri_store::sandbox::{Sandbox, SandboxState};

use crate::service::ServerState;
use cri_stats::StatsError;
use cri_stats::{select_containers, select_pods, CgroupPath, ContainerTarget, PodTarget};

/// Why a stats RPC failed.
#[derive(Debug, thiserror::Error)]
pub enum StatsRequestError {
    /// The container or sandbox id (or prefix) names nothing stored, or
    /// more than one.
    #[error(transparent)]
    Lookup(cri_store::StoreError),
    /// The object is there but has nothing to measure, or reading failed.
    #[error(transparent)]
    Stats(#[from] StatsError),
}

type Result<T, E = StatsRequestError> = std::result::Result<T, E>;

/// ContainerStats: the running container with this id or unique prefix
/// (an ambiguous prefix is an error); one without a task is NotFound, as
/// containerd has no task metrics for it.
pub async fn container_stats(state: &ServerState, id: &str) -> Result<ContainerStats> {
    let container = state
        .containers
        .store
        .get(id)
        .map_err(StatsRequestError::Lookup)?;
    if container.status.state() != ContainerState::ContainerRunning {
        return Err(StatsRequestError::Stats(StatsError::ContainerNotRunning {
            id: container.metadata.id.to_string(),
        }));
    }
    let target = container_target(state, &container);
    let stats = state.stats.container_stats(vec![target]).await?;
    stats
        .into_iter()
        .next()
        .ok_or(StatsRequestError::Stats(StatsError::Collection))
}

/// ListContainerStats: every container the filter selects, in any state,
/// as containerd's plugin lists them: one that does not run has its
/// attributes and writable layer but no cpu or memory.
pub async fn list_container_stats(
    state: &ServerState,
    filter: Option<&ContainerStatsFilter>,
) -> Result<Vec<ContainerStats>> {
    let targets = state
        .containers
        .store
        .list()
        .iter()
        .map(|c| container_target(state, c))
        .collect();
    // Either id may be a prefix, each of its own store.
    let container = |id: &str| {
        let found = state.containers.store.get(id).ok();
        found.map(|c| c.metadata.id.to_string())
    };
    let sandbox = |id: &str| {
        let found = state.sandboxes.store.get(id).ok();
        found.map(|s| s.metadata.id.to_string())
    };
    let targets = select_containers(targets, filter, container, sandbox);
    Ok(state.stats.container_stats(targets).await?)
}

/// PodSandboxStats: the READY sandbox with this id or unique prefix; a
/// stopped one is NotFound (its cgroup and netns are gone).
pub async fn pod_sandbox_stats(state: &ServerState, id: &str) -> Result<PodSandboxStats> {
    let sandbox = state
        .sandboxes
        .store
        .get(id)
        .map_err(StatsRequestError::Lookup)?;
    if sandbox.status.state != SandboxState::Ready {
        return Err(StatsRequestError::Stats(StatsError::SandboxNotReady {
            id: sandbox.metadata.id.to_string(),
        }));
    }
    let stats = state
        .stats
        .pod_stats(vec![pod_target(state, &sandbox)])
        .await?;
    stats
        .into_iter()
        .next()
        .ok_or(StatsRequestError::Stats(StatsError::Collection))
}

/// ListPodSandboxStats: the READY sandboxes the filter selects.
pub async fn list_pod_sandbox_stats(
    state: &ServerState,
    filter: Option<&PodSandboxStatsFilter>,
) -> Result<Vec<PodSandboxStats>> {
    let pods = select_pods(ready_pods(state), filter, |id| {
        state
            .sandboxes
            .store
            .get(id)
            .ok()
            .map(|s| s.metadata.id.to_string())
    });
    Ok(state.stats.pod_stats(pods).await?)
}

/// ListPodSandboxMetrics: cAdvisor-named metrics of every READY sandbox.
pub async fn list_pod_sandbox_metrics(state: &ServerState) -> Result<Vec<PodSandboxMetrics>> {
    Ok(state.stats.pod_metrics(ready_pods(state)).await?)
}

fn ready_pods(state: &ServerState) -> Vec<PodTarget> {
    state
        .sandboxes
        .store
        .list()
        .iter()
        .filter(|s| s.status.state == SandboxState::Ready)
        .map(|s| pod_target(state, s))
        .collect()
}

/// A container as stats see it; only a running one has a cgroup to read,
/// so an exited container reports no (stale) cpu or memory.
fn container_target(state: &ServerState, container: &Container) -> ContainerTarget {
    let (meta, config) = (&container.metadata, &container.metadata.config);
    let running = container.status.state() == ContainerState::ContainerRunning;
    let cgroup = running
        .then(|| state.containers.store.handle(meta.id.as_ref()))
        .flatten()
        .and_then(|handle| match handle.cgroups_path.as_str() {
            "" => None,
            path => CgroupPath::from_oci(path)
                .map_err(|e| tracing::debug!(container_id = %meta.id, error = %e, "no cgroup"))
                .ok(),
        });
    ContainerTarget {
        id: meta.id.to_string(),
        sandbox_id: meta.sandbox_id.to_string(),
        cgroup,
        attributes: ContainerAttributes {
            id: meta.id.to_string(),
            metadata: config.metadata.clone(),
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
        },
        image: config
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .unwrap_or_default(),
        started_at: container.status.started_at,
    }
}

/// A pod with all of its containers.
fn pod_target(state: &ServerState, sandbox: &Sandbox) -> PodTarget {
    let (meta, config) = (&sandbox.metadata, &sandbox.metadata.config);
    let cgroup = config
        .linux
        .as_ref()
        .map(|l| l.cgroup_parent.as_str())
        .filter(|p| !p.is_empty())
        .and_then(|parent| {
            CgroupPath::from_cgroup_parent(parent)
                .map_err(
                    |e| tracing::debug!(pod_sandbox_id = %meta.id, error = %e, "no pod cgroup"),
                )
                .ok()
        });
    PodTarget {
        id: meta.id.to_string(),
        attributes: PodSandboxAttributes {
            id: meta.id.to_string(),
            metadata: config.metadata.clone(),
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
        },
        cgroup,
        netns: (!meta.netns_path.is_empty()).then(|| meta.netns_path.clone().into()),
        containers: state
            .containers
            .store
            .list_by_sandbox(&meta.id)
            .iter()
            .map(|c| container_target(state, c))
            .collect(),
    }
}
