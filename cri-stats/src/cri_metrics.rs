//! `ListMetricDescriptors` and `ListPodSandboxMetrics`: the cAdvisor-named
//! metrics the kubelet asks for (containerd's `metric_descriptors.go`
//! names, help texts and label keys), as far as cgroups, the pod netns and
//! the snapshotter give them. Values are integers: seconds are whole
//! seconds, as containerd reports them.

use cri_api::v1::{ContainerMetrics, Metric, MetricDescriptor, MetricType};

use super::cgroup::CgroupStats;
use super::convert::value;
use super::fs_usage::FsUsage;
use super::network::InterfaceStats;
use super::ContainerTarget;

const BASE: &[&str] = &["pod", "namespace", "container", "id", "image"];
const NS_PER_SEC: u64 = 1_000_000_000;

#[derive(Clone, Copy)]
enum Extra {
    None,
    Interface,
    Device,
    Failure,
}

/// (name, help, extra label keys): the descriptors we fill.
const DESCRIPTORS: &[(&str, &str, Extra)] = &[
    ("container_cpu_user_seconds_total", "Cumulative user CPU time consumed in seconds.", Extra::None),
    ("container_cpu_system_seconds_total", "Cumulative system CPU time consumed in seconds.", Extra::None),
    ("container_cpu_usage_seconds_total", "Cumulative CPU time consumed in seconds.", Extra::None),
    ("container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", Extra::None),
    ("container_cpu_cfs_throttled_periods_total", "Number of CPU throttled period intervals.", Extra::None),
    ("container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled.", Extra::None),
    ("container_memory_cache", "Number of bytes of memory used by the container for caching purposes.", Extra::None),
    ("container_memory_rss", "Size of RSS in bytes, total anonymous memory and swap cache memory used by the container.", Extra::None),
    ("container_memory_kernel_usage", "Size of kernel memory allocated to the container in bytes, includes page tables, socket buffers...", Extra::None),
    ("container_memory_mapped_file", "Size of container's memory mapped files in bytes.", Extra::None),
    ("container_memory_swap", "Container swap usage in bytes.", Extra::None),
    ("container_memory_failcnt", "Number of times container memory usage has hit its cgroup v1 upper memory limit, for cg2 this value is not currently supported", Extra::None),
    ("container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed", Extra::None),
    ("container_memory_max_usage_bytes", "Maximum container memory usage recorded in bytes", Extra::None),
    ("container_memory_working_set_bytes", "Amount of memory that is actively used by the container, excluding cached memory.", Extra::None),
    ("container_memory_total_active_file_bytes", "Amount of cache memory bytes, in use by the container, in file on disk.", Extra::None),
    ("container_memory_total_inactive_file_bytes", "Amount of inactive cache memory bytes, for the container, in file on disk.", Extra::None),
    ("container_memory_failures_total", "Cumulative count of container memory allocation failures.", Extra::Failure),
    ("container_oom_events_total", "Count of out of memory events observed for the container", Extra::None),
    ("container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", Extra::Device),
    ("container_network_receive_bytes_total", "Cumulative count of bytes received", Extra::Interface),
    ("container_network_receive_packets_total", "Cumulative count of packets received", Extra::Interface),
    ("container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving", Extra::Interface),
    ("container_network_receive_errors_total", "Cumulative count of errors encountered while receiving", Extra::Interface),
    ("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted", Extra::Interface),
    ("container_network_transmit_packets_total", "Cumulative count of packets transmitted", Extra::Interface),
    ("container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting", Extra::Interface),
    ("container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting", Extra::Interface),
    ("container_processes", "Number of processes running inside the container.", Extra::None),
    ("container_threads_max", "Maximum number of threads allowed inside the container, infinity if value is zero", Extra::None),
    ("container_last_seen", "Last time a container was seen by the exporter", Extra::None),
    ("container_start_time_seconds", "Start time of the container since unix epoch in seconds", Extra::None),
];

/// Every metric `pod_metrics` can return, with its label keys.
pub fn metric_descriptors() -> Vec<MetricDescriptor> {
    DESCRIPTORS
        .iter()
        .map(|(name, help, extra)| {
            let extra: &[&str] = match extra {
                Extra::None => &[],
                Extra::Interface => &["interface"],
                Extra::Device => &["device"],
                Extra::Failure => &["failure_type", "scope"],
            };
            MetricDescriptor {
                name: (*name).to_owned(),
                help: (*help).to_owned(),
                label_keys: BASE.iter().chain(extra).map(|k| (*k).to_owned()).collect(),
            }
        })
        .collect()
}

/// Appends metrics sharing one label prefix and timestamp.
struct Emitter<'a> {
    out: &'a mut Vec<Metric>,
    labels: Vec<String>,
    timestamp: i64,
}

impl Emitter<'_> {
    fn push(&mut self, name: &str, kind: MetricType, v: u64, extra: &[&str]) {
        let mut label_values = self.labels.clone();
        label_values.extend(extra.iter().map(|s| (*s).to_owned()));
        self.out.push(Metric {
            name: name.to_owned(),
            timestamp: self.timestamp,
            metric_type: kind as i32,
            label_values,
            value: value(v),
        });
    }
    fn counter(&mut self, name: &str, v: u64) {
        self.push(name, MetricType::Counter, v, &[]);
    }
    fn gauge(&mut self, name: &str, v: u64) {
        self.push(name, MetricType::Gauge, v, &[]);
    }
}

/// The pod-level network metrics, one set per interface but `lo`; labels
/// `[pod, namespace, "", <sandbox id>, "", interface]` as containerd's.
pub fn pod_network_metrics(
    pod: (&str, &str),
    sandbox_id: &str,
    interfaces: &[InterfaceStats],
    timestamp: i64,
) -> Vec<Metric> {
    let mut out = Vec::new();
    for i in interfaces.iter().filter(|i| i.name != "lo") {
        let labels = [pod.0, pod.1, "", sandbox_id, "", &i.name]
            .map(str::to_owned)
            .to_vec();
        let mut e = Emitter {
            out: &mut out,
            labels,
            timestamp,
        };
        e.counter("container_network_receive_bytes_total", i.rx_bytes);
        e.counter("container_network_receive_packets_total", i.rx_packets);
        e.counter(
            "container_network_receive_packets_dropped_total",
            i.rx_dropped,
        );
        e.counter("container_network_receive_errors_total", i.rx_errors);
        e.counter("container_network_transmit_bytes_total", i.tx_bytes);
        e.counter("container_network_transmit_packets_total", i.tx_packets);
        e.counter(
            "container_network_transmit_packets_dropped_total",
            i.tx_dropped,
        );
        e.counter("container_network_transmit_errors_total", i.tx_errors);
    }
    out
}

/// One container's metrics; labels `[pod, namespace, container, id, image]`.
pub fn container_metrics(
    pod: (&str, &str),
    target: &ContainerTarget,
    cgroup: Option<&CgroupStats>,
    layer: Option<(FsUsage, String)>,
    now_secs: u64,
    timestamp: i64,
) -> ContainerMetrics {
    let name = target
        .attributes
        .metadata
        .as_ref()
        .map(|m| m.name.as_str())
        .unwrap_or_default();
    let labels = [pod.0, pod.1, name, &target.id, &target.image]
        .map(str::to_owned)
        .to_vec();
    let mut metrics = Vec::new();
    let mut e = Emitter {
        out: &mut metrics,
        labels,
        timestamp,
    };
    e.gauge("container_last_seen", now_secs);
    let started = u64::try_from(target.started_at).unwrap_or_default() / NS_PER_SEC;
    e.gauge("container_start_time_seconds", started);
    if let Some(cpu) = cgroup.and_then(|c| c.cpu) {
        e.counter(
            "container_cpu_usage_seconds_total",
            cpu.usage_ns / NS_PER_SEC,
        );
        e.counter("container_cpu_user_seconds_total", cpu.user_ns / NS_PER_SEC);
        e.counter(
            "container_cpu_system_seconds_total",
            cpu.system_ns / NS_PER_SEC,
        );
        e.counter("container_cpu_cfs_periods_total", cpu.periods);
        e.counter(
            "container_cpu_cfs_throttled_periods_total",
            cpu.throttled_periods,
        );
        e.counter(
            "container_cpu_cfs_throttled_seconds_total",
            cpu.throttled_ns / NS_PER_SEC,
        );
    }
    if let Some(m) = cgroup.and_then(|c| c.memory) {
        e.gauge("container_memory_usage_bytes", m.usage);
        e.gauge("container_memory_working_set_bytes", m.working_set());
        e.gauge("container_memory_max_usage_bytes", m.max_usage);
        e.gauge("container_memory_rss", m.rss);
        e.gauge("container_memory_cache", m.cache);
        e.gauge("container_memory_mapped_file", m.mapped_file);
        e.gauge("container_memory_kernel_usage", m.kernel);
        e.gauge("container_memory_total_active_file_bytes", m.active_file);
        e.gauge(
            "container_memory_total_inactive_file_bytes",
            m.inactive_file,
        );
        e.push(
            "container_memory_failures_total",
            MetricType::Counter,
            m.pgfault,
            &["pgfault", "container"],
        );
        e.push(
            "container_memory_failures_total",
            MetricType::Counter,
            m.pgmajfault,
            &["pgmajfault", "container"],
        );
        e.counter("container_memory_failcnt", m.failcnt);
        e.counter("container_oom_events_total", m.oom_kills);
    }
    if let Some(swap) = cgroup.and_then(|c| c.swap) {
        e.gauge("container_memory_swap", swap.usage);
    }
    if let Some(pids) = cgroup.and_then(|c| c.pids) {
        e.gauge("container_processes", pids.current);
        e.gauge("container_threads_max", pids.limit.unwrap_or(0));
    }
    if let Some((usage, device)) = layer {
        e.push(
            "container_fs_usage_bytes",
            MetricType::Gauge,
            usage.used_bytes,
            &[&device],
        );
    }
    ContainerMetrics {
        container_id: target.id.clone(),
        metrics,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cgroup::{CpuStats, MemoryStats, PidsStats};
    use cri_api::v1::{ContainerAttributes, ContainerMetadata};
    use std::collections::HashSet;

    #[test]
    fn descriptors_are_unique_and_keyed() {
        let d = metric_descriptors();
        let names: HashSet<_> = d.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names.len(), d.len());
        for wanted in [
            "container_cpu_usage_seconds_total",
            "container_memory_working_set_bytes",
            "container_network_receive_bytes_total",
        ] {
            assert!(names.contains(wanted), "{wanted}");
        }
        let net = d
            .iter()
            .find(|d| d.name == "container_network_receive_bytes_total")
            .unwrap();
        assert_eq!(
            net.label_keys,
            ["pod", "namespace", "container", "id", "image", "interface"]
        );
    }

    #[test]
    fn every_emitted_metric_is_described_with_matching_labels() {
        let target = ContainerTarget {
            id: "c1".into(),
            image: "busybox".into(),
            started_at: 5_000_000_000,
            attributes: ContainerAttributes {
                id: "c1".into(),
                metadata: Some(ContainerMetadata {
                    name: "app".into(),
                    attempt: 0,
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let cgroup = CgroupStats {
            cpu: Some(CpuStats {
                usage_ns: 3_500_000_000,
                ..Default::default()
            }),
            memory: Some(MemoryStats {
                usage: 10,
                inactive_file: 4,
                ..Default::default()
            }),
            pids: Some(PidsStats {
                current: 2,
                limit: None,
            }),
            swap: None,
        };
        let usage = FsUsage {
            used_bytes: 9,
            inodes_used: 1,
            timestamp: std::time::UNIX_EPOCH,
        };
        let m = container_metrics(
            ("web", "default"),
            &target,
            Some(&cgroup),
            Some((usage, "/fs".into())),
            100,
            7,
        );
        let mut all = m.metrics.clone();
        let iface = InterfaceStats {
            name: "eth0".into(),
            rx_bytes: 5,
            ..Default::default()
        };
        let lo = InterfaceStats {
            name: "lo".into(),
            ..Default::default()
        };
        all.extend(pod_network_metrics(
            ("web", "default"),
            "sb1",
            &[lo, iface],
            7,
        ));
        let descriptors = metric_descriptors();
        for metric in &all {
            let d = descriptors.iter().find(|d| d.name == metric.name).unwrap();
            assert_eq!(
                d.label_keys.len(),
                metric.label_values.len(),
                "{}",
                metric.name
            );
        }
        let get = |name: &str| all.iter().find(|m| m.name == name).unwrap();
        assert_eq!(get("container_cpu_usage_seconds_total").value, value(3));
        assert_eq!(get("container_memory_working_set_bytes").value, value(6));
        assert_eq!(get("container_start_time_seconds").value, value(5));
        assert_eq!(
            get("container_cpu_usage_seconds_total").label_values,
            ["web", "default", "app", "c1", "busybox"]
        );
        let rx = get("container_network_receive_bytes_total");
        assert_eq!(rx.label_values, ["web", "default", "", "sb1", "", "eth0"]);
        assert_eq!(rx.metric_type, MetricType::Counter as i32);
        assert_eq!(
            all.iter()
                .filter(|m| m.name == "container_network_receive_bytes_total")
                .count(),
            1,
            "lo left out"
        );
    }
}
