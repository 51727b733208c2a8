//! The daemon's own process metrics under the standard Prometheus names
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`,
//! `process_start_time_seconds`), read from `/proc/self` on each scrape.

use std::path::{Path, PathBuf};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// What one look at `/proc/<pid>` gives.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    pub max_fds: Option<u64>,
}

/// Reads a process's `/proc` entry on each scrape.
#[derive(Debug)]
pub struct ProcessCollector {
    dir: PathBuf,
    clock_ticks: f64,
    page_size: u64,
    start_time_seconds: Option<f64>,
}

impl ProcessCollector {
    /// The daemon itself.
    pub fn for_self() -> Self {
        Self::new(Path::new("/proc/self"), Path::new("/proc/stat"))
    }

    /// The process at `dir` (a `/proc/<pid>`); `proc_stat` gives the boot
    /// time its start time counts from.
    pub fn new(dir: &Path, proc_stat: &Path) -> Self {
        use nix::unistd::{sysconf, SysconfVar};
        let conf = |var| {
            sysconf(var)
                .ok()
                .flatten()
                .and_then(|v| u64::try_from(v).ok())
                .filter(|v| *v > 0)
        };
        let clock_ticks = conf(SysconfVar::CLK_TCK).unwrap_or(100) as f64;
        let page_size = conf(SysconfVar::PAGE_SIZE).unwrap_or(4096);
        let boot_time = std::fs::read_to_string(proc_stat).ok().and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<u64>().ok())
        });
        let start_ticks = std::fs::read_to_string(dir.join("stat"))
            .ok()
            .and_then(|s| stat_field(&s, 22));
        let start_time_seconds = boot_time
            .zip(start_ticks)
            .map(|(boot, ticks)| boot as f64 + ticks as f64 / clock_ticks);
        Self {
            dir: dir.to_owned(),
            clock_ticks,
            page_size,
            start_time_seconds,
        }
    }

    /// The current numbers, `None` if `/proc` could not be read.
    pub fn read(&self) -> Option<ProcessStats> {
        let stat = std::fs::read_to_string(self.dir.join("stat")).ok()?;
        let ticks = stat_field(&stat, 14)? + stat_field(&stat, 15)?;
        let open_fds = std::fs::read_dir(self.dir.join("fd")).ok()?.count() as u64;
        let max_fds = std::fs::read_to_string(self.dir.join("limits"))
            .ok()
            .and_then(|text| {
                let line = text.lines().find(|l| l.starts_with("Max open files"))?;
                line.trim_start_matches("Max open files")
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            });
        Some(ProcessStats {
            cpu_seconds: ticks as f64 / self.clock_ticks,
            resident_bytes: stat_field(&stat, 24)?.saturating_mul(self.page_size),
            virtual_bytes: stat_field(&stat, 23)?,
            open_fds,
            max_fds,
        })
    }
}

/// Field `n` (1-based, as in proc(5)) of `/proc/<pid>/stat`; fields are
/// counted after the parenthesised command name, which may hold spaces.
fn stat_field(stat: &str, n: usize) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(n.checked_sub(3)?)?.parse().ok()
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(stats) = self.read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(stats.cpu_seconds);
        let name = "process_cpu_seconds";
        let help = "Total user and system CPU time spent in seconds.";
        cpu.encode(encoder.encode_descriptor(name, help, None, cpu.metric_type())?)?;
        let mut gauges = vec![
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                stats.resident_bytes as f64,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                stats.virtual_bytes as f64,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                stats.open_fds as f64,
            ),
        ];
        if let Some(max) = stats.max_fds {
            gauges.push((
                "process_max_fds",
                "Maximum number of open file descriptors.",
                max as f64,
            ));
        }
        if let Some(start) = self.start_time_seconds {
            gauges.push((
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                start,
            ));
        }
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn stat_fields_after_a_command_with_spaces() {
        let stat = "42 (cri server) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 12345 1048576 300 rest";
        assert_eq!(stat_field(stat, 3), None, "state is not a number");
        assert_eq!(stat_field(stat, 4), Some(1));
        assert_eq!(stat_field(stat, 14), Some(250));
        assert_eq!(stat_field(stat, 15), Some(50));
        assert_eq!(stat_field(stat, 22), Some(12345));
        assert_eq!(stat_field(stat, 23), Some(1048576));
        assert_eq!(stat_field(stat, 24), Some(300));
    }

    #[test]
    fn reads_this_process() {
        let collector = ProcessCollector::for_self();
        let stats = collector.read().unwrap();
        assert!(stats.resident_bytes > 0);
        assert!(stats.virtual_bytes >= stats.resident_bytes);
        assert!(stats.open_fds > 0);
        assert!(stats.max_fds.unwrap() > 0);
        let start = collector.start_time_seconds.unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(start > 1.0e9 && start <= now + 1.0, "{start} vs {now}");
    }
}
