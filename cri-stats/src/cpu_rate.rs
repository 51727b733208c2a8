//! `usage_nano_cores`: the cpu rate between two cumulative samples of a
//! container or pod, as containerd's `getUsageNanoCores`. Samples live in a
//! bounded map keyed by id; ids that disappear are evicted.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// How many ids are tracked at most.
pub const DEFAULT_CAPACITY: usize = 16_384;
/// Samples older than this are dropped when room is needed.
pub const DEFAULT_TTL: Duration = Duration::from_secs(600);
/// Two samples closer than this give the previous rate: back-to-back
/// requests would otherwise report noise.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Sample {
    usage_ns: u64,
    at: SystemTime,
    rate: u64,
}

/// The last cpu sample per id.
#[derive(Debug)]
pub struct CpuRates {
    samples: Mutex<HashMap<String, Sample>>,
    capacity: usize,
    ttl: Duration,
}

impl Default for CpuRates {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY, DEFAULT_TTL)
    }
}

impl CpuRates {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            samples: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            ttl,
        }
    }

    /// Records `usage_ns` of `id` taken at `at`; returns nano cores since
    /// the previous sample (0 for the first one).
    pub fn update(&self, id: &str, usage_ns: u64, at: SystemTime) -> u64 {
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        let next = Sample {
            usage_ns,
            at,
            rate: 0,
        };
        let Some(prev) = samples.get_mut(id) else {
            if samples.len() >= self.capacity {
                self.make_room(&mut samples, at);
            }
            samples.insert(id.to_owned(), next);
            return 0;
        };
        let Ok(elapsed) = at.duration_since(prev.at) else {
            // The clock went back: start over from this sample.
            *prev = next;
            return 0;
        };
        if elapsed < MIN_INTERVAL {
            return prev.rate;
        }
        let used = usage_ns.saturating_sub(prev.usage_ns);
        let rate = (used as f64 / elapsed.as_nanos() as f64 * 1e9) as u64;
        *prev = Sample { rate, ..next };
        rate
    }

    /// Drops the sample of `id` (the container or pod was removed).
    pub fn forget(&self, id: &str) {
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    /// Keeps only the ids for which `live` holds.
    pub fn retain(&self, live: impl Fn(&str) -> bool) {
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|id, _| live(id));
    }

    /// How many ids are tracked.
    pub fn len(&self) -> usize {
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops expired samples; if none expired, the oldest one.
    fn make_room(&self, samples: &mut HashMap<String, Sample>, now: SystemTime) {
        let before = samples.len();
        samples.retain(|_, s| now.duration_since(s.at).map_or(true, |age| age <= self.ttl));
        if samples.len() < before {
            return;
        }
        let oldest = samples
            .iter()
            .min_by_key(|(_, s)| s.at)
            .map(|(id, _)| id.clone());
        if let Some(id) = oldest {
            samples.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs_millis: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(secs_millis)
    }

    #[test]
    fn rate_from_two_samples() {
        let rates = CpuRates::default();
        assert_eq!(
            rates.update("a", 1_000_000_000, at(10_000)),
            0,
            "first sample"
        );
        // 0.5 s of cpu over 2 s of wall time: a quarter of a core.
        assert_eq!(rates.update("a", 1_500_000_000, at(12_000)), 250_000_000);
        // Too close: the previous rate, and the sample is kept.
        assert_eq!(rates.update("a", 1_600_000_000, at(12_100)), 250_000_000);
        // 2 cores over the next 1 s.
        assert_eq!(rates.update("a", 3_500_000_000, at(13_000)), 2_000_000_000);
    }

    #[test]
    fn clock_going_back_or_counter_reset_gives_zero() {
        let rates = CpuRates::default();
        rates.update("a", 100, at(10_000));
        assert_eq!(rates.update("a", 200, at(5_000)), 0);
        assert_eq!(rates.update("a", 50, at(7_000)), 0, "counter went down");
    }

    #[test]
    fn ids_are_independent_and_forgotten() {
        let rates = CpuRates::default();
        rates.update("a", 0, at(0));
        rates.update("b", 0, at(0));
        assert_eq!(rates.update("b", 1_000_000_000, at(1_000)), 1_000_000_000);
        rates.forget("a");
        rates.retain(|id| id != "b");
        assert!(rates.is_empty());
    }

    #[test]
    fn capacity_is_bounded() {
        let rates = CpuRates::new(3, Duration::from_secs(60));
        for (i, id) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            rates.update(id, 0, at(i as u64 * 1000));
        }
        assert_eq!(rates.len(), 3);
        // The oldest went first.
        assert_eq!(rates.update("e", 1_000_000_000, at(5_000)), 1_000_000_000);
        assert_eq!(rates.update("a", 0, at(6_000)), 0, "a was evicted");
        // Expired samples make room before the oldest live one goes.
        let rates = CpuRates::new(2, Duration::from_secs(10));
        rates.update("old", 0, at(0));
        rates.update("live", 0, at(95_000));
        rates.update("new", 0, at(100_000));
        assert_eq!(
            rates.update("live", 1_000_000_000, at(101_000)),
            166_666_666
        );
    }
}
