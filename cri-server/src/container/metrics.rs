//! Latency metrics of the container RPCs, recorded in memory by runtime
//! type until the Prometheus endpoint exists (containerd's
//! `container_create_seconds` and friends).

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Bucket upper bounds in seconds (Prometheus' default buckets).
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram: how many observations fell at or below each bucket bound,
/// plus their count and sum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Cumulative counts, one per [`BUCKETS`] entry.
    pub buckets: [u64; BUCKETS.len()],
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bound, n) in BUCKETS.iter().zip(self.buckets.iter_mut()) {
            if secs <= *bound {
                *n += 1;
            }
        }
        self.count += 1;
        self.sum_seconds += secs;
    }
}

/// Which operation a latency belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    Create,
    Start,
    Stop,
    Remove,
}

/// Latency histograms per operation and runtime type.
#[derive(Debug, Default)]
pub struct ContainerMetrics {
    histograms: Mutex<BTreeMap<(Operation, String), Histogram>>,
}

impl ContainerMetrics {
    /// Records that `op` took `elapsed` on a runtime of `runtime_type`.
    pub fn observe(&self, op: Operation, runtime_type: &str, elapsed: Duration) {
        self.histograms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((op, runtime_type.to_owned()))
            .or_default()
            .observe(elapsed);
    }

    /// The histogram of `op` on `runtime_type`, if anything was recorded.
    pub fn histogram(&self, op: Operation, runtime_type: &str) -> Option<Histogram> {
        self.histograms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(op, runtime_type.to_owned()))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative() {
        let metrics = ContainerMetrics::default();
        metrics.observe(
            Operation::Create,
            "io.containerd.runc.v2",
            Duration::from_millis(30),
        );
        metrics.observe(
            Operation::Create,
            "io.containerd.runc.v2",
            Duration::from_secs(20),
        );
        let h = metrics
            .histogram(Operation::Create, "io.containerd.runc.v2")
            .unwrap_or_default();
        assert_eq!(h.count, 2);
        assert_eq!(h.buckets, [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]);
        assert!((h.sum_seconds - 20.03).abs() < 1e-9);
        assert_eq!(
            metrics.histogram(Operation::Start, "io.containerd.runc.v2"),
            None
        );
    }
}
