//! The daemon's own process metrics under the standard Prometheus names
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`,
//! `process_start_time_seconds`), read from `/proc/self` with `procfs` on
//! each scrape.

use procfs::process::{LimitValue, Process};
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

/// Reads the daemon's `/proc/self` (with `procfs`) on each scrape.
#[derive(Debug)]
pub struct ProcessCollector {
    clock_ticks: f64,
    page_size: u64,
    start_time_seconds: Option<f64>,
}

impl ProcessCollector {
    /// The daemon itself.
    pub fn for_self() -> Self {
        let clock_ticks = procfs::ticks_per_second().max(1) as f64;
        let start_ticks = Process::myself()
            .and_then(|p| p.stat())
            .ok()
            .map(|s| s.starttime);
        let start_time_seconds = procfs::boot_time_secs()
            .ok()
            .zip(start_ticks)
            .map(|(boot, ticks)| boot as f64 + ticks as f64 / clock_ticks);
        Self {
            clock_ticks,
            page_size: procfs::page_size(),
            start_time_seconds,
        }
    }

    /// The current numbers, `None` if `/proc` could not be read.
    pub fn read(&self) -> Option<ProcessStats> {
        let process = Process::myself().ok()?;
        let stat = process.stat().ok()?;
        let max_fds = process
            .limits()
            .ok()
            .and_then(|l| match l.max_open_files.soft_limit {
                LimitValue::Value(v) => Some(v),
                LimitValue::Unlimited => None,
            });
        Some(ProcessStats {
            cpu_seconds: (stat.utime + stat.stime) as f64 / self.clock_ticks,
            resident_bytes: stat.rss.saturating_mul(self.page_size),
            virtual_bytes: stat.vsize,
            open_fds: process.fd_count().ok()? as u64,
            max_fds,
        })
    }
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
