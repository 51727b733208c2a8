//! StatsCollector tests over fake cgroups, netns and snapshots.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use cri_api::containerd::SnapshotUsage;
use cri_api::v1::{ContainerAttributes, PodSandboxAttributes, PodSandboxMetadata, UInt64Value};

use super::tests_support::{CountingCgroups, FakeNetns, FixedClock};
use super::*;

struct Setup {
    collector: Arc<StatsCollector>,
    cgroups: Arc<CountingCgroups>,
    netns: Arc<FakeNetns>,
    clock: Arc<FixedClock>,
}

fn setup(cgroups: CountingCgroups, netns: FakeNetns) -> Setup {
    let (cgroups, netns) = (Arc::new(cgroups), Arc::new(netns));
    let clock = Arc::new(FixedClock::at_secs(1_000));
    let fs = Arc::new(FsUsageCache::new(
        Path::new("/var/lib/containerd"),
        clock.clone(),
    ));
    let collector = StatsCollector::new(cgroups.clone(), netns.clone(), fs, clock.clone());
    Setup {
        collector,
        cgroups,
        netns,
        clock,
    }
}

fn cgroup(usage_ns: u64, memory: u64, pids: u64) -> CgroupStats {
    CgroupStats {
        cpu: Some(CpuStats {
            usage_ns,
            ..Default::default()
        }),
        memory: Some(MemoryStats {
            usage: memory,
            ..Default::default()
        }),
        swap: None,
        pids: Some(PidsStats {
            current: pids,
            limit: None,
        }),
    }
}

fn target(id: &str, sandbox: &str) -> ContainerTarget {
    ContainerTarget {
        id: id.into(),
        sandbox_id: sandbox.into(),
        cgroup: Some(CgroupPath::from_oci(&format!("/pods/{sandbox}/{id}")).unwrap()),
        attributes: ContainerAttributes {
            id: id.into(),
            ..Default::default()
        },
        image: "busybox".into(),
        started_at: 0,
    }
}

fn v(value: u64) -> Option<UInt64Value> {
    Some(UInt64Value { value })
}

#[tokio::test]
async fn container_stats_cpu_rate_memory_and_writable_layer() {
    let cgroups = CountingCgroups::default();
    cgroups.set("/pods/sb/c1", cgroup(1_000_000_000, 4096, 1));
    let s = setup(cgroups, FakeNetns::default());
    s.collector.fs_usage().register(
        "c1",
        WritableLayer {
            snapshotter: "overlayfs".into(),
            key: "c1".into(),
        },
    );
    s.collector.fs_usage().record(
        "overlayfs",
        Path::new("/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs"),
        &HashMap::from([(
            "c1".to_owned(),
            SnapshotUsage {
                size: 300,
                inodes: 3,
            },
        )]),
    );
    let gone = target("c2", "sb");

    let first = s
        .collector
        .container_stats(vec![target("c1", "sb"), gone.clone()])
        .await
        .unwrap();
    let cpu = first[0].cpu.unwrap();
    assert_eq!(cpu.usage_core_nano_seconds, v(1_000_000_000));
    assert_eq!(cpu.usage_nano_cores, v(0), "one sample gives no rate");
    assert_eq!(cpu.timestamp, 1_000_000_000_000);
    assert_eq!(first[0].memory.unwrap().working_set_bytes, v(4096));
    let layer = first[0].writable_layer.clone().unwrap();
    assert_eq!((layer.used_bytes, layer.inodes_used), (v(300), v(3)));
    // A container without a live cgroup: attributes only.
    assert_eq!(first[1].attributes.as_ref().unwrap().id, "c2");
    assert!(
        first[1].cpu.is_none() && first[1].memory.is_none() && first[1].writable_layer.is_none()
    );

    s.cgroups.set("/pods/sb/c1", cgroup(3_000_000_000, 4096, 1));
    s.clock.advance(Duration::from_secs(4));
    let second = s
        .collector
        .container_stats(vec![target("c1", "sb")])
        .await
        .unwrap();
    assert_eq!(second[0].cpu.unwrap().usage_nano_cores, v(500_000_000));

    s.collector.forget("c1");
    assert!(s.collector.fs_usage().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_requests_share_one_collection() {
    let cgroups = CountingCgroups {
        delay: Duration::from_millis(2),
        ..Default::default()
    };
    let targets: Vec<_> = (0..100).map(|i| target(&format!("c{i}"), "sb")).collect();
    for t in &targets {
        cgroups.set(&t.cgroup.as_ref().unwrap().to_string(), cgroup(1, 1, 1));
    }
    let s = setup(cgroups, FakeNetns::default());
    let calls = (0..10).map(|_| s.collector.container_stats(targets.clone()));
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(|r| r.as_ref().unwrap().len() == 100));
    assert_eq!(
        s.cgroups.reads(),
        100,
        "one read per container for ten requests"
    );
    assert_eq!(s.collector.container_flights.in_flight(), 0);

    // Sequential requests each read again: results are not kept.
    s.collector.container_stats(targets.clone()).await.unwrap();
    assert_eq!(s.cgroups.reads(), 200);
    // Bounded state: one cpu sample per id, however many requests.
    assert_eq!(s.collector.cpu.len(), 100);
}

fn pod(id: &str, netns: Option<&str>, containers: Vec<ContainerTarget>) -> PodTarget {
    PodTarget {
        id: id.into(),
        attributes: PodSandboxAttributes {
            id: id.into(),
            metadata: Some(PodSandboxMetadata {
                name: format!("{id}-name"),
                namespace: "default".into(),
                ..Default::default()
            }),
            labels: HashMap::new(),
            annotations: HashMap::new(),
        },
        cgroup: Some(CgroupPath::from_oci(&format!("/pods/{id}")).unwrap()),
        netns: netns.map(PathBuf::from),
        containers,
    }
}

fn netns_with_eth0() -> FakeNetns {
    let iface = |name: &str, rx| InterfaceStats {
        name: name.into(),
        rx_bytes: rx,
        tx_errors: 1,
        ..Default::default()
    };
    FakeNetns {
        interfaces: [(
            PathBuf::from("/run/netns/cni-1"),
            vec![iface("lo", 10), iface("eth0", 2000)],
        )]
        .into_iter()
        .collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn pod_stats_cover_cgroup_network_processes_and_containers() {
    let cgroups = CountingCgroups::default();
    cgroups.set("/pods/sb", cgroup(9_000, 8192, 5));
    cgroups.set("/pods/sb/c1", cgroup(1_000, 4096, 2));
    cgroups.set("/pods/sb/c2", cgroup(2_000, 2048, 1));
    let s = setup(cgroups, netns_with_eth0());
    let pods = vec![
        pod(
            "sb",
            Some("/run/netns/cni-1"),
            vec![target("c1", "sb"), target("c2", "sb")],
        ),
        pod("hostnet", None, vec![]),
    ];
    let stats = s.collector.pod_stats(pods).await.unwrap();
    assert_eq!(s.cgroups.reads(), 4, "pod + 2 containers + hostnet pod");
    assert_eq!(
        s.netns.calls.load(Ordering::SeqCst),
        1,
        "one netns pass per request"
    );

    let linux = stats[0].linux.clone().unwrap();
    assert_eq!(stats[0].attributes.as_ref().unwrap().id, "sb");
    assert_eq!(linux.cpu.unwrap().usage_core_nano_seconds, v(9_000));
    assert_eq!(linux.memory.unwrap().usage_bytes, v(8192));
    let network = linux.network.unwrap();
    let eth0 = network.default_interface.unwrap();
    assert_eq!(
        (eth0.name.as_str(), eth0.rx_bytes, eth0.tx_errors),
        ("eth0", v(2000), v(1))
    );
    assert_eq!(network.interfaces.len(), 1, "lo is left out");
    assert_eq!(
        linux.process.unwrap().process_count,
        v(3),
        "processes of the containers"
    );
    let ids: Vec<_> = linux
        .containers
        .iter()
        .map(|c| c.attributes.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(ids, ["c1", "c2"]);

    // The hostnet pod has no cgroup in the table and no netns.
    let host = stats[1].linux.clone().unwrap();
    assert!(host.cpu.is_none() && host.network.is_none() && host.process.is_none());
}

#[tokio::test]
async fn pod_metrics_carry_kubelet_labels() {
    let cgroups = CountingCgroups::default();
    cgroups.set("/pods/sb/c1", cgroup(7_000_000_000, 4096, 2));
    let s = setup(cgroups, netns_with_eth0());
    let mut c1 = target("c1", "sb");
    c1.attributes.metadata = Some(cri_api::v1::ContainerMetadata {
        name: "app".into(),
        attempt: 0,
    });
    let metrics = s
        .collector
        .pod_metrics(vec![pod("sb", Some("/run/netns/cni-1"), vec![c1])])
        .await
        .unwrap();
    let pod = &metrics[0];
    assert_eq!(pod.pod_sandbox_id, "sb");
    let rx = pod
        .metrics
        .iter()
        .find(|m| m.name == "container_network_receive_bytes_total")
        .unwrap();
    assert_eq!(
        rx.label_values,
        ["sb-name", "default", "", "sb", "", "eth0"]
    );
    assert_eq!(rx.value, v(2000));
    let c = &pod.container_metrics[0];
    assert_eq!(c.container_id, "c1");
    let cpu = c
        .metrics
        .iter()
        .find(|m| m.name == "container_cpu_usage_seconds_total")
        .unwrap();
    assert_eq!(
        cpu.label_values,
        ["sb-name", "default", "app", "c1", "busybox"]
    );
    assert_eq!(cpu.value, v(7));
    assert_eq!(
        s.collector.metric_descriptors().len(),
        metric_descriptors().len()
    );
}
