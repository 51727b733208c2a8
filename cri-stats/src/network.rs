//! Interface counters inside a pod's network namespace: a plain OS thread
//! (never a tokio worker or blocking-pool thread, whose namespace would leak
//! into later tasks) enters each netns in turn and reads
//! `/proc/thread-self/net/dev`, which shows the calling thread's namespace
//! (`/sys/class/net` would show the namespace sysfs was mounted in). The
//! thread exits afterwards, so its namespace never needs restoring.

use std::fs::File;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use nix::sched::{setns, CloneFlags};

use super::error::{Result, StatsError};

/// The interface containerd reports as the pod's default.
pub const DEFAULT_INTERFACE: &str = "eth0";

/// One interface's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceStats {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// Reads interface counters inside network namespaces; faked in tests.
#[async_trait]
pub trait NetnsStats: Send + Sync + std::fmt::Debug {
    /// The interfaces of each namespace, in the order given.
    async fn interfaces(&self, netns: Vec<PathBuf>) -> Vec<Result<Vec<InterfaceStats>>>;
}

/// The real reader: one short-lived thread per call, for all namespaces.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxNetnsStats;

#[async_trait]
impl NetnsStats for LinuxNetnsStats {
    async fn interfaces(&self, netns: Vec<PathBuf>) -> Vec<Result<Vec<InterfaceStats>>> {
        if netns.is_empty() {
            return Vec::new();
        }
        let count = netns.len();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("cri-netns-stats".into())
            .spawn(move || {
                let results: Vec<_> = netns.iter().map(|p| read_in_netns(p)).collect();
                let _ = tx.send(results);
            });
        if spawned.is_err() {
            return (0..count)
                .map(|_| Err(StatsError::NetnsThread("spawn failed")))
                .collect();
        }
        match rx.await {
            Ok(results) => results,
            Err(_) => (0..count)
                .map(|_| Err(StatsError::NetnsThread("panicked")))
                .collect(),
        }
    }
}

/// Enters `netns` on the calling thread and reads its counters. Only for a
/// thread that is about to exit.
fn read_in_netns(netns: &Path) -> Result<Vec<InterfaceStats>> {
    let enter = |source| StatsError::EnterNetns {
        path: netns.to_owned(),
        source,
    };
    let file = File::open(netns).map_err(enter)?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| enter(std::io::Error::from(e)))?;
    let text = std::fs::read_to_string("/proc/thread-self/net/dev").map_err(|source| {
        StatsError::ReadNetDev {
            path: netns.to_owned(),
            source,
        }
    })?;
    Ok(parse_net_dev(&text))
}

/// Parses `/proc/net/dev`: two header lines, then
/// `name: rx_bytes rx_packets rx_errs rx_drop fifo frame compressed multicast
/// tx_bytes tx_packets tx_errs tx_drop ...`.
pub fn parse_net_dev(text: &str) -> Vec<InterfaceStats> {
    text.lines()
        .filter_map(|line| {
            let (name, counters) = line.split_once(':')?;
            let values: Vec<u64> = counters
                .split_whitespace()
                .map(str::parse)
                .collect::<std::result::Result<_, _>>()
                .ok()?;
            let v = |i: usize| values.get(i).copied().unwrap_or_default();
            (values.len() >= 12).then(|| InterfaceStats {
                name: name.trim().to_owned(),
                rx_bytes: v(0),
                rx_packets: v(1),
                rx_errors: v(2),
                rx_dropped: v(3),
                tx_bytes: v(8),
                tx_packets: v(9),
                tx_errors: v(10),
                tx_dropped: v(11),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     840      10    0    0    0     0          0         0      840      10    0    0    0     0       0          0
  eth0: 1234567     890    1    2    0     0          0         3   765432     321    4    5    0     0       0          0
";

    #[test]
    fn parses_proc_net_dev() {
        let stats = parse_net_dev(NET_DEV);
        assert_eq!(stats.len(), 2);
        assert_eq!(stats[0].name, "lo");
        assert_eq!(
            stats[1],
            InterfaceStats {
                name: "eth0".into(),
                rx_bytes: 1234567,
                rx_packets: 890,
                rx_errors: 1,
                rx_dropped: 2,
                tx_bytes: 765432,
                tx_packets: 321,
                tx_errors: 4,
                tx_dropped: 5,
            }
        );
        assert!(parse_net_dev("junk\nx: 1 2\n").is_empty());
    }

    #[tokio::test]
    async fn missing_netns_is_an_error_per_entry() {
        let got = LinuxNetnsStats
            .interfaces(vec![PathBuf::from("/nonexistent/netns/x")])
            .await;
        assert_eq!(got.len(), 1);
        let err = got.into_iter().next().unwrap().unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }
}
