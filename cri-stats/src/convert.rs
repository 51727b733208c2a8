//! Cgroup, netns and snapshot readings as CRI stats messages, filled the way
//! containerd's CRI plugin fills them: `UInt64Value` wrappers, nanosecond
//! timestamps, working set = usage - inactive_file, available = limit -
//! working set (0 when unlimited), rss = `total_rss` (v1) or `anon` (v2),
//! and a writable layer of zeros until the snapshotter was first asked.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use cri_api::v1::{
    ContainerStats, CpuUsage, FilesystemIdentifier, FilesystemUsage, LinuxPodSandboxStats,
    MemoryUsage, NetworkInterfaceUsage, NetworkUsage, PodSandboxStats, ProcessUsage, SwapUsage,
    UInt64Value,
};

use super::cgroup::{CgroupStats, CpuStats, MemoryStats, SwapStats};
use super::fs_usage::FsUsage;
use super::network::{InterfaceStats, DEFAULT_INTERFACE};
use super::{ContainerTarget, PodTarget};

/// Nanoseconds since the epoch, as CRI timestamps are.
pub fn unix_nanos(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

pub(crate) fn value(v: u64) -> Option<UInt64Value> {
    Some(UInt64Value { value: v })
}

/// Cumulative cpu time and the rate since the previous sample.
pub fn cpu_usage(cpu: &CpuStats, usage_nano_cores: u64, timestamp: i64) -> CpuUsage {
    CpuUsage {
        timestamp,
        usage_core_nano_seconds: value(cpu.usage_ns),
        usage_nano_cores: value(usage_nano_cores),
    }
}

pub fn memory_usage(memory: &MemoryStats, timestamp: i64) -> MemoryUsage {
    MemoryUsage {
        timestamp,
        working_set_bytes: value(memory.working_set()),
        available_bytes: value(memory.available()),
        usage_bytes: value(memory.usage),
        rss_bytes: value(memory.rss),
        page_faults: value(memory.pgfault),
        major_page_faults: value(memory.pgmajfault),
    }
}

pub fn swap_usage(swap: &SwapStats, timestamp: i64) -> SwapUsage {
    SwapUsage {
        timestamp,
        swap_available_bytes: value(swap.available()),
        swap_usage_bytes: value(swap.usage),
    }
}

/// The writable layer from the cache: zeros (and timestamp 0) until the
/// first measurement, as containerd reports a layer it has no usage for.
pub fn writable_layer(usage: Option<FsUsage>, mountpoint: &Path) -> FilesystemUsage {
    FilesystemUsage {
        timestamp: usage.map(|u| unix_nanos(u.timestamp)).unwrap_or_default(),
        fs_id: Some(FilesystemIdentifier {
            mountpoint: mountpoint.display().to_string(),
        }),
        used_bytes: value(usage.map(|u| u.used_bytes).unwrap_or_default()),
        inodes_used: value(usage.map(|u| u.inodes_used).unwrap_or_default()),
    }
}

fn interface_usage(i: &InterfaceStats) -> NetworkInterfaceUsage {
    NetworkInterfaceUsage {
        name: i.name.clone(),
        rx_bytes: value(i.rx_bytes),
        rx_errors: value(i.rx_errors),
        tx_bytes: value(i.tx_bytes),
        tx_errors: value(i.tx_errors),
    }
}

/// `eth0` as the default interface, else the first interface but `lo` (as
/// containerd 2.x: the kubelet reads the default of any pod with a
/// network); every interface but `lo` in the list.
pub fn network_usage(interfaces: &[InterfaceStats], timestamp: i64) -> NetworkUsage {
    let listed: Vec<NetworkInterfaceUsage> = interfaces
        .iter()
        .filter(|i| i.name != "lo")
        .map(interface_usage)
        .collect();
    let default_interface = listed
        .iter()
        .find(|i| i.name == DEFAULT_INTERFACE)
        .or_else(|| listed.first())
        .cloned();
    NetworkUsage {
        timestamp,
        default_interface,
        interfaces: listed,
    }
}

/// One container's stats. `cgroup` is `None` for a container without a
/// live cgroup (created or exited): attributes and writable layer only.
pub fn container_stats(
    target: &ContainerTarget,
    cgroup: Option<&CgroupStats>,
    usage_nano_cores: u64,
    layer: Option<FilesystemUsage>,
    timestamp: i64,
) -> ContainerStats {
    ContainerStats {
        attributes: Some(target.attributes.clone()),
        cpu: cgroup
            .and_then(|c| c.cpu.as_ref())
            .map(|cpu| cpu_usage(cpu, usage_nano_cores, timestamp)),
        memory: cgroup
            .and_then(|c| c.memory.as_ref())
            .map(|m| memory_usage(m, timestamp)),
        writable_layer: layer,
        swap: cgroup
            .and_then(|c| c.swap.as_ref())
            .map(|s| swap_usage(s, timestamp)),
    }
}

/// What was read for one pod.
#[derive(Debug, Default)]
pub struct PodReading<'a> {
    pub cgroup: Option<&'a CgroupStats>,
    pub usage_nano_cores: u64,
    pub interfaces: Option<&'a [InterfaceStats]>,
    pub process_count: Option<u64>,
    pub containers: Vec<ContainerStats>,
}

/// One pod's stats: its cgroup's cpu and memory, its network, its process
/// count and its containers.
pub fn pod_stats(pod: &PodTarget, reading: PodReading<'_>, timestamp: i64) -> PodSandboxStats {
    let linux = LinuxPodSandboxStats {
        cpu: reading
            .cgroup
            .and_then(|c| c.cpu.as_ref())
            .map(|cpu| cpu_usage(cpu, reading.usage_nano_cores, timestamp)),
        memory: reading
            .cgroup
            .and_then(|c| c.memory.as_ref())
            .map(|m| memory_usage(m, timestamp)),
        network: reading
            .interfaces
            .map(|interfaces| network_usage(interfaces, timestamp)),
        process: reading.process_count.map(|count| ProcessUsage {
            timestamp,
            process_count: value(count),
        }),
        containers: reading.containers,
    };
    PodSandboxStats {
        attributes: Some(pod.attributes.clone()),
        linux: Some(linux),
        windows: None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    #[test]
    fn memory_as_containerd_reports_it() {
        let m = MemoryStats {
            usage: 10_000,
            limit: Some(50_000),
            rss: 4_000,
            inactive_file: 3_000,
            pgfault: 9,
            pgmajfault: 1,
            ..Default::default()
        };
        let got = memory_usage(&m, 42);
        assert_eq!(got.timestamp, 42);
        assert_eq!(got.working_set_bytes, value(7_000));
        assert_eq!(got.available_bytes, value(43_000));
        assert_eq!(got.usage_bytes, value(10_000));
        assert_eq!(got.rss_bytes, value(4_000));
        assert_eq!(got.page_faults, value(9));
        assert_eq!(got.major_page_faults, value(1));
        // inactive_file above usage: working set 0, not an underflow.
        let m = MemoryStats {
            usage: 1,
            inactive_file: 5,
            ..Default::default()
        };
        assert_eq!(memory_usage(&m, 0).working_set_bytes, value(0));
    }

    #[test]
    fn writable_layer_before_and_after_measurement() {
        let mount = Path::new("/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs");
        let empty = writable_layer(None, mount);
        assert_eq!((empty.timestamp, empty.used_bytes), (0, value(0)));
        let usage = FsUsage {
            used_bytes: 5,
            inodes_used: 2,
            timestamp: UNIX_EPOCH + Duration::from_secs(3),
        };
        let got = writable_layer(Some(usage), mount);
        assert_eq!(got.timestamp, 3_000_000_000);
        assert_eq!(got.inodes_used, value(2));
        assert_eq!(got.fs_id.unwrap().mountpoint, mount.display().to_string());
    }

    #[test]
    fn network_default_is_eth0_else_the_first_and_lo_is_left_out() {
        let iface = |name: &str, rx| InterfaceStats {
            name: name.into(),
            rx_bytes: rx,
            ..Default::default()
        };
        let got = network_usage(&[iface("lo", 1), iface("eth0", 2), iface("net1", 3)], 7);
        assert_eq!(got.default_interface.unwrap().rx_bytes, value(2));
        let names: Vec<_> = got.interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["eth0", "net1"]);
        assert_eq!(network_usage(&[iface("lo", 1)], 0).default_interface, None);
        // Without eth0, the first one but lo.
        let got = network_usage(&[iface("lo", 1), iface("net1", 3), iface("net2", 4)], 7);
        assert_eq!(got.default_interface.unwrap().name, "net1");
    }
}
