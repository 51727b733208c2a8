//! Go duration strings ("5m", "1h30m", "0s", "500ms"): parsing exactly as
//! Go's `time.ParseDuration` does, and printing as Go's `Duration.String`.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Serializer;

/// The largest duration Go can represent (`1<<63 - 1` nanoseconds).
const MAX_NANOS: u128 = i64::MAX as u128;

/// Why a Go duration string did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("invalid duration {0:?}")]
    Invalid(String),
    #[error("missing unit in duration {0:?}")]
    MissingUnit(String),
    #[error("unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit { unit: String, input: String },
    #[error("duration {0:?} is out of range")]
    Overflow(String),
    #[error("negative duration {0:?} is not allowed")]
    Negative(String),
}

/// Parses a Go duration string, as `time.ParseDuration` does. Negative
/// durations are refused since none of the settings allows one.
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(input.to_owned());
    let overflow = || DurationError::Overflow(input.to_owned());
    let mut rest = input;
    let mut negative = false;
    if let Some(stripped) = rest.strip_prefix('-') {
        negative = true;
        rest = stripped;
    } else if let Some(stripped) = rest.strip_prefix('+') {
        rest = stripped;
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        if !rest.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        let (whole, after_whole) = leading_int(rest).ok_or_else(invalid)?;
        let has_whole = after_whole.len() != rest.len();
        rest = after_whole;
        let (mut fraction, mut scale, mut has_fraction) = (0u64, 1f64, false);
        if let Some(after_dot) = rest.strip_prefix('.') {
            let (f, s, after_fraction) = leading_fraction(after_dot);
            has_fraction = after_fraction.len() != after_dot.len();
            (fraction, scale) = (f, s);
            rest = after_fraction;
        }
        if !has_whole && !has_fraction {
            return Err(invalid());
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit(input.to_owned()));
        }
        let (unit, after_unit) = rest.split_at(unit_len);
        rest = after_unit;
        let unit_nanos = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit.to_owned(),
            input: input.to_owned(),
        })?;
        let mut value = u128::from(whole)
            .checked_mul(u128::from(unit_nanos))
            .filter(|v| *v <= MAX_NANOS + 1)
            .ok_or_else(overflow)?;
        if fraction > 0 {
            // Go does this step in float64 too, so the results match.
            value += (fraction as f64 * (unit_nanos as f64 / scale)) as u128;
            if value > MAX_NANOS + 1 {
                return Err(overflow());
            }
        }
        total += value;
        if total > MAX_NANOS + 1 {
            return Err(overflow());
        }
    }
    if negative && total != 0 {
        return Err(DurationError::Negative(input.to_owned()));
    }
    if total > MAX_NANOS {
        return Err(overflow());
    }
    let total = u64::try_from(total).map_err(|_| overflow())?;
    Ok(Duration::from_nanos(total))
}

/// Formats as Go's `Duration.String`: "0s", "500ms", "1.5µs", "5m0s",
/// "4h0m0s", "1h30m15.5s".
pub fn format_go_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos().min(MAX_NANOS);
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", decimal(nanos, 3));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", decimal(nanos, 6));
    }
    let seconds = nanos / 1_000_000_000;
    let (hours, minutes) = (seconds / 3600, (seconds / 60) % 60);
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    let sub_minute = nanos % 60_000_000_000;
    out.push_str(&decimal(sub_minute, 9));
    out.push('s');
    out
}

/// `value / 10^digits` written with its fractional digits, trailing zeros
/// trimmed.
fn decimal(value: u128, digits: u32) -> String {
    let unit = 10u128.pow(digits);
    let (whole, fraction) = (value / unit, value % unit);
    if fraction == 0 {
        return whole.to_string();
    }
    let fraction = format!("{fraction:0width$}", width = digits as usize);
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3600 * 1_000_000_000,
        _ => return None,
    })
}

/// The leading decimal integer and the rest; `None` on overflow.
fn leading_int(s: &str) -> Option<(u64, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let mut value: u64 = 0;
    for digit in s[..end].bytes() {
        value = value
            .checked_mul(10)?
            .checked_add(u64::from(digit - b'0'))?;
        if value > MAX_NANOS as u64 + 1 {
            return None;
        }
    }
    Some((value, &s[end..]))
}

/// The leading fraction digits as (value, 10^consumed, rest); digits past
/// what fits are dropped, as in Go.
fn leading_fraction(s: &str) -> (u64, f64, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (mut value, mut scale, mut overflowed) = (0u64, 1f64, false);
    for digit in s[..end].bytes() {
        if overflowed {
            continue;
        }
        if value > i64::MAX as u64 / 10 {
            overflowed = true;
            continue;
        }
        let next = value * 10 + u64::from(digit - b'0');
        if next > 1 << 63 {
            overflowed = true;
            continue;
        }
        value = next;
        scale *= 10.0;
    }
    (value, scale, &s[end..])
}

/// Deserializes an optional Go duration string; an empty string counts as
/// unset, as containerd treats it.
pub(super) fn deserialize_opt<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    struct GoDurationVisitor;
    impl Visitor<'_> for GoDurationVisitor {
        type Value = Option<Duration>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a Go duration string such as \"5m\" or \"1h30m\"")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            if v.is_empty() {
                return Ok(None);
            }
            parse_go_duration(v).map(Some).map_err(E::custom)
        }
    }
    deserializer.deserialize_str(GoDurationVisitor)
}

/// `#[serde(with = "go_duration")]` for a `Duration` kept as a Go
/// duration string.
pub mod go_duration {
    use super::*;

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_go_duration(*duration))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        Ok(deserialize_opt(deserializer)?.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<Duration, DurationError>) {
        assert_eq!(parse_go_duration(input), expected, "parse {input:?}");
    }

    fn ok(nanos: u64) -> Result<Duration, DurationError> {
        Ok(Duration::from_nanos(nanos))
    }

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn zero_forms() {
        check("0", ok(0));
        check("0s", ok(0));
        check("-0", ok(0));
        check("+0s", ok(0));
    }

    #[test]
    fn single_units() {
        check("5m", ok(5 * 60 * SEC));
        check("4h", ok(4 * 3600 * SEC));
        check("500ms", ok(500_000_000));
        check("10us", ok(10_000));
        check("10µs", ok(10_000));
        check("10μs", ok(10_000));
        check("7ns", ok(7));
    }

    #[test]
    fn compound_and_fractions() {
        check("1h30m", ok(5400 * SEC));
        check("2h45m10.5s", ok((2 * 3600 + 45 * 60 + 10) * SEC + SEC / 2));
        check("1.5h", ok(5400 * SEC));
        check(".5s", ok(SEC / 2));
        check("1.s", ok(SEC));
        check("4h0m0s", ok(4 * 3600 * SEC));
    }

    #[test]
    fn errors() {
        check("", Err(DurationError::Invalid(String::new())));
        check("abc", Err(DurationError::Invalid("abc".into())));
        check(".s", Err(DurationError::Invalid(".s".into())));
        check("5", Err(DurationError::MissingUnit("5".into())));
        check(
            "5x",
            Err(DurationError::UnknownUnit {
                unit: "x".into(),
                input: "5x".into(),
            }),
        );
        check("-5s", Err(DurationError::Negative("-5s".into())));
        check("3000000h", Err(DurationError::Overflow("3000000h".into())));
    }

    #[test]
    fn largest_go_duration() {
        check("2562047h47m16.854775807s", ok(i64::MAX as u64));
        check(
            "2562047h47m16.854775808s",
            Err(DurationError::Overflow("2562047h47m16.854775808s".into())),
        );
    }

    fn check_format(nanos: u64, expected: &str) {
        assert_eq!(format_go_duration(Duration::from_nanos(nanos)), expected);
    }

    #[test]
    fn formats_like_go() {
        check_format(0, "0s");
        check_format(1, "1ns");
        check_format(1_500, "1.5µs");
        check_format(500_000_000, "500ms");
        check_format(SEC, "1s");
        check_format(SEC + SEC / 2, "1.5s");
        check_format(5 * 60 * SEC, "5m0s");
        check_format(90 * SEC, "1m30s");
        check_format(4 * 3600 * SEC, "4h0m0s");
        check_format(3600 * SEC + 5 * SEC, "1h0m5s");
    }

    #[test]
    fn format_then_parse_round_trips() {
        for nanos in [1, 999, 1_500, 2_000_000, 61 * SEC + 7, 4 * 3600 * SEC] {
            let d = Duration::from_nanos(nanos);
            assert_eq!(parse_go_duration(&format_go_duration(d)), Ok(d));
        }
    }
}
