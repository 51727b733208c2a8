//! What the benchmark measured: samples per operation and side, their
//! nearest-rank percentiles, the ratio of medians (A/B) and the geometric
//! mean of the ratios over the critest-shaped operations, printed as a
//! Markdown table.

use std::fmt::Write as _;
use std::time::Duration;

/// The unit of an operation's samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Latency, shown in ms.
    Millis,
    /// Memory, shown in MiB.
    MiB,
    /// Sizes of answers, shown in KiB.
    KiB,
    /// Processor time (user and system), shown in CPU seconds.
    CpuSeconds,
}

impl Unit {
    fn suffix(self) -> &'static str {
        match self {
            Unit::Millis => "ms",
            Unit::MiB => "MiB",
            Unit::KiB => "KiB",
            Unit::CpuSeconds => "CPU s",
        }
    }
}

/// Which group an operation belongs to; the geometric mean covers
/// [`Group::Critest`] only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// The operations of critest's `-benchmark` (pod, container and image
    /// lifecycles).
    Critest,
    /// Everything else: storms, stats, parallel start, restart, memory,
    /// cold pull.
    Other,
}

#[derive(Debug)]
struct Operation {
    name: String,
    unit: Unit,
    group: Group,
    samples: Vec<Vec<f64>>,
}

/// Samples per operation for each side, in the order operations were
/// first recorded.
#[derive(Debug)]
pub struct Report {
    sides: Vec<String>,
    operations: Vec<Operation>,
    notes: Vec<(String, String)>,
}

impl Report {
    /// An empty report for the named sides (one or two).
    pub fn new(sides: Vec<String>) -> Report {
        Report {
            sides,
            operations: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// The sides' names.
    pub fn sides(&self) -> &[String] {
        &self.sides
    }

    /// Records one latency sample of `name` on `side`.
    pub fn time(&mut self, side: usize, group: Group, name: &str, took: Duration) {
        self.value(side, group, Unit::Millis, name, took.as_secs_f64() * 1000.0);
    }

    /// Records one sample of `name` on `side` in `unit`.
    pub fn value(&mut self, side: usize, group: Group, unit: Unit, name: &str, value: f64) {
        let sides = self.sides.len();
        let index = match self.operations.iter().position(|o| o.name == name) {
            Some(index) => index,
            None => {
                self.operations.push(Operation {
                    name: name.to_owned(),
                    unit,
                    group,
                    samples: vec![Vec::new(); sides],
                });
                self.operations.len() - 1
            }
        };
        if let Some(samples) = self.operations[index].samples.get_mut(side) {
            samples.push(value);
        }
    }

    /// A line printed under the table; only the first note for each
    /// `key` is kept.
    pub fn note(&mut self, key: &str, line: String) {
        if !self.notes.iter().any(|(k, _)| k == key) {
            self.notes.push((key.to_owned(), line));
        }
    }

    /// The median of `name` on `side`, if it was measured.
    pub fn median(&self, side: usize, name: &str) -> Option<f64> {
        let op = self.operations.iter().find(|o| o.name == name)?;
        let mut values = op.samples.get(side)?.clone();
        values.sort_by(f64::total_cmp);
        percentile(&values, 50)
    }

    /// The geometric mean of the A/B ratios of medians over the critest
    /// operations measured on both sides, and how many there were.
    pub fn critest_geomean(&self) -> Option<(f64, usize)> {
        let ratios: Vec<f64> = self
            .operations
            .iter()
            .filter(|o| o.group == Group::Critest)
            .filter_map(ratio)
            .collect();
        if ratios.is_empty() {
            return None;
        }
        let log_sum: f64 = ratios.iter().map(|r| r.ln()).sum();
        Some(((log_sum / ratios.len() as f64).exp(), ratios.len()))
    }

    /// The table: per operation the sample count, p50/p90/p99 of each
    /// side and, with two sides, the ratio of medians; then the geometric
    /// mean and the notes.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut header = String::from("| operation | unit | n |");
        let mut rule = String::from("| --- | --- | --- |");
        for side in &self.sides {
            let _ = write!(header, " {side} p50 | p90 | p99 |");
            rule.push_str(" ---: | ---: | ---: |");
        }
        if self.sides.len() == 2 {
            let _ = write!(header, " {} / {} |", self.sides[0], self.sides[1]);
            rule.push_str(" ---: |");
        }
        let _ = writeln!(out, "{header}\n{rule}");
        for op in &self.operations {
            let n = op.samples.iter().map(Vec::len).max().unwrap_or(0);
            let _ = write!(out, "| {} | {} | {n} |", op.name, op.unit.suffix());
            for samples in &op.samples {
                let mut sorted = samples.clone();
                sorted.sort_by(f64::total_cmp);
                for p in [50, 90, 99] {
                    let _ = write!(out, " {} |", show(percentile(&sorted, p)));
                }
            }
            if self.sides.len() == 2 {
                let _ = write!(
                    out,
                    " {} |",
                    ratio(op).map_or("-".into(), |r| format!("{r:.2}"))
                );
            }
            out.push('\n');
        }
        if let Some((mean, count)) = self.critest_geomean() {
            let _ = writeln!(
                out,
                "\ngeometric mean of the ratios over the {count} critest-shaped operations: {mean:.2}"
            );
        }
        for (_, note) in &self.notes {
            let _ = writeln!(out, "{note}");
        }
        out
    }
}

/// The ratio of the two sides' medians, when both were measured and the
/// second is not zero.
fn ratio(op: &Operation) -> Option<f64> {
    let median = |side: usize| {
        let mut values = op.samples.get(side)?.clone();
        values.sort_by(f64::total_cmp);
        percentile(&values, 50)
    };
    let (a, b) = (median(0)?, median(1)?);
    (b > 0.0).then(|| a / b)
}

fn show(value: Option<f64>) -> String {
    match value {
        None => "-".into(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// The nearest-rank percentile `p` of `sorted`.
pub fn percentile(sorted: &[f64], p: usize) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&values, 50), Some(5.0));
        assert_eq!(percentile(&values, 90), Some(9.0));
        assert_eq!(percentile(&values, 99), Some(10.0));
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[3.0], 99), Some(3.0));
    }

    #[test]
    fn ratios_and_geomean_cover_critest_operations_only() {
        let mut report = Report::new(vec!["a".into(), "b".into()]);
        let ms = Duration::from_millis;
        report.time(0, Group::Critest, "x", ms(2));
        report.time(1, Group::Critest, "x", ms(4));
        report.time(0, Group::Critest, "y", ms(8));
        report.time(1, Group::Critest, "y", ms(4));
        report.time(0, Group::Other, "z", ms(100));
        report.time(1, Group::Other, "z", ms(1));
        let (mean, count) = report.critest_geomean().unwrap_or_default();
        assert_eq!(count, 2);
        assert!((mean - 1.0).abs() < 1e-9, "{mean}");
        let table = report.render();
        assert!(
            table.contains("| x | ms | 1 | 2.00 | 2.00 | 2.00 | 4.00 | 4.00 | 4.00 | 0.50 |"),
            "{table}"
        );
        assert!(table.contains("| z | ms | 1 | 100 |"), "{table}");
    }
}
