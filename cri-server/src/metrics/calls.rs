//! containerd round trips, by method: `cri_server_containerd_calls_total
//! {service,method}`, from the counts the containerd client keeps
//! (`cri_containerd::containerd_call_counts`), read on each scrape.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;

/// `(service, method, calls so far)` for each method called.
pub type CallCounts = fn() -> Vec<(&'static str, &'static str, u64)>;

/// Serves the counts of `source` as one counter family.
#[derive(Debug)]
pub struct ContainerdCalls {
    source: CallCounts,
}

impl ContainerdCalls {
    pub fn new(source: CallCounts) -> Self {
        Self { source }
    }
}

impl Collector for ContainerdCalls {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counts = (self.source)();
        if counts.is_empty() {
            return Ok(());
        }
        let mut family = encoder.encode_descriptor(
            "containerd_calls",
            "gRPC calls made to containerd, by service and method.",
            None,
            MetricType::Counter,
        )?;
        for (service, method, calls) in counts {
            let labels = [("service", service), ("method", method)];
            ConstCounter::new(calls).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
