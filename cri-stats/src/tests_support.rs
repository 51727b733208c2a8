//! Fakes for the stats tests: clocks, a counting cgroup reader and a netns
//! reader that answers from a table.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::{
    CgroupPath, CgroupReader, CgroupStats, Clock, InterfaceStats, NetnsStats, Result, StatsError,
};

/// A clock that reads what the test set.
#[derive(Debug)]
pub struct FixedClock(Mutex<SystemTime>);

impl FixedClock {
    pub fn at_secs(secs: u64) -> Self {
        Self(Mutex::new(
            SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
        ))
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += by;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Cgroups from a table (by `/path`), counting reads; each read can be slow
/// so concurrent requests overlap.
#[derive(Debug, Default)]
pub struct CountingCgroups {
    pub stats: Mutex<HashMap<String, CgroupStats>>,
    pub reads: AtomicUsize,
    pub delay: Duration,
}

impl CountingCgroups {
    pub fn set(&self, path: &str, stats: CgroupStats) {
        self.stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(path.to_owned(), stats);
    }

    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

impl CgroupReader for CountingCgroups {
    fn read(&self, path: &CgroupPath) -> Result<CgroupStats> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(self.delay);
        self.stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&path.to_string())
            .copied()
            .ok_or_else(|| StatsError::CgroupNotFound {
                path: path.as_path().to_owned(),
            })
    }
}

/// Interfaces by netns path.
#[derive(Debug, Default)]
pub struct FakeNetns {
    pub interfaces: HashMap<PathBuf, Vec<InterfaceStats>>,
    pub calls: AtomicUsize,
}

#[async_trait]
impl NetnsStats for FakeNetns {
    async fn interfaces(&self, netns: Vec<PathBuf>) -> Vec<Result<Vec<InterfaceStats>>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        netns
            .iter()
            .map(|p| {
                self.interfaces
                    .get(p)
                    .cloned()
                    .ok_or(StatsError::NetnsThread("no such netns"))
            })
            .collect()
    }
}
