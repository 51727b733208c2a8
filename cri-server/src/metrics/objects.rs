//! The `pods{state}` and `containers{state}` gauges: a collector that asks
//! a callback on each scrape, and the callback the daemon installs, which
//! counts the sandbox and container stores by CRI state.

use std::sync::{Arc, RwLock};

use cri_api::v1::{ContainerState, PodSandboxState};
use cri_store::container::ContainerStore;
use cri_store::sandbox::SandboxStore;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

/// Pods and containers by CRI state, for the `pods` / `containers` gauges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectCounts {
    /// e.g. `("ready", 3)`, `("notready", 1)`.
    pub pods: Vec<(&'static str, u64)>,
    /// e.g. `("running", 5)`, `("exited", 2)`.
    pub containers: Vec<(&'static str, u64)>,
}

pub(super) type CountsSource = Arc<dyn Fn() -> ObjectCounts + Send + Sync>;

/// Asks the source on each scrape.
#[derive(Default)]
pub(super) struct ObjectGauges {
    source: RwLock<Option<CountsSource>>,
}

impl std::fmt::Debug for ObjectGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectGauges").finish_non_exhaustive()
    }
}

impl Collector for ObjectGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let source = self
            .source
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let counts = source.map(|f| f()).unwrap_or_default();
        for (name, help, by_state) in [
            ("pods", "Pod sandboxes by state.", &counts.pods),
            ("containers", "Containers by state.", &counts.containers),
        ] {
            if by_state.is_empty() {
                continue;
            }
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (state, n) in by_state {
                let labels = [("state", *state)];
                let value = i64::try_from(*n).unwrap_or(i64::MAX);
                ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

impl ObjectGauges {
    pub(super) fn set_source(&self, source: CountsSource) {
        *self
            .source
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(source);
    }
}

/// Counts the stores by CRI state; every state is reported, zeros too, so
/// the series do not come and go.
pub fn count_objects<H>(sandboxes: &SandboxStore, containers: &ContainerStore<H>) -> ObjectCounts {
    let (mut ready, mut notready) = (0, 0);
    for sandbox in sandboxes.list() {
        match sandbox.status.state.to_cri() {
            PodSandboxState::SandboxReady => ready += 1,
            PodSandboxState::SandboxNotready => notready += 1,
        }
    }
    let mut by_state = [0u64; 4];
    for container in containers.list() {
        let slot = match container.status.state() {
            ContainerState::ContainerCreated => 0,
            ContainerState::ContainerRunning => 1,
            ContainerState::ContainerExited => 2,
            ContainerState::ContainerUnknown => 3,
        };
        by_state[slot] += 1;
    }
    let [created, running, exited, unknown] = by_state;
    ObjectCounts {
        pods: vec![("ready", ready), ("notready", notready)],
        containers: vec![
            ("created", created),
            ("running", running),
            ("exited", exited),
            ("unknown", unknown),
        ],
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cri_store::sandbox::{Sandbox, SandboxMetadata, SandboxState, SandboxStatus};

    #[test]
    fn empty_stores_report_zeros_for_every_state() {
        let counts = count_objects(&SandboxStore::default(), &ContainerStore::<()>::default());
        assert_eq!(counts.pods, [("ready", 0), ("notready", 0)]);
        assert_eq!(counts.containers.len(), 4);
        assert!(counts.containers.iter().all(|(_, n)| *n == 0));
    }

    #[test]
    fn sandboxes_are_counted_by_cri_state() {
        let store = SandboxStore::default();
        for (id, state) in [
            ("a", SandboxState::Ready),
            ("b", SandboxState::NotReady),
            ("c", SandboxState::Unknown),
        ] {
            let metadata = SandboxMetadata {
                id: id.into(),
                name: id.into(),
                config: Default::default(),
                netns_path: String::new(),
                ip: String::new(),
                additional_ips: Vec::new(),
                runtime_handler: String::new(),
                cni_result: None,
                process_label: String::new(),
            };
            let status = SandboxStatus {
                state,
                ..Default::default()
            };
            store.add(Sandbox::new(metadata, status)).unwrap();
        }
        let counts = count_objects(&store, &ContainerStore::<()>::default());
        assert_eq!(counts.pods, [("ready", 1), ("notready", 2)]);
    }
}
