//! CRI log timestamps: the injected [`Clock`] and Go's `time.RFC3339Nano`
//! layout (`2006-01-02T15:04:05.999999999Z07:00`).
//!
//! containerd formats `time.Now()`, i.e. the daemon's local zone. We always
//! format in UTC and print the zone as `Z`, which is what Go prints on a node
//! whose zone is UTC (the usual case); the kubelet parses any RFC 3339
//! offset, so a log that mixes both writers stays readable. As in Go, the
//! fraction drops its trailing zeros, and the dot too when it is all zeros.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// The source of "now" for log lines; injected so tests are deterministic.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;
}

/// The real clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Formats `t` as Go's `t.UTC().Format(time.RFC3339Nano)`.
pub fn rfc3339_nano(t: SystemTime) -> String {
    let mut out = Vec::with_capacity(30);
    push_rfc3339_nano(t, &mut out);
    // Only ASCII digits and separators are pushed.
    String::from_utf8_lossy(&out).into_owned()
}

/// Appends `t` in Go's RFC3339Nano layout (UTC, `Z`) to `out`.
pub fn push_rfc3339_nano(t: SystemTime, out: &mut Vec<u8>) {
    let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        ),
        Err(e) => {
            let d = e.duration();
            let secs = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            match d.subsec_nanos() {
                0 => (secs, 0),
                n => (secs - 1, 1_000_000_000 - n),
            }
        }
    };
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);

    push_num(out, year, 4);
    out.push(b'-');
    push_num(out, i64::from(month), 2);
    out.push(b'-');
    push_num(out, i64::from(day), 2);
    out.push(b'T');
    push_num(out, sod / 3600, 2);
    out.push(b':');
    push_num(out, sod / 60 % 60, 2);
    out.push(b':');
    push_num(out, sod % 60, 2);
    if nanos != 0 {
        out.push(b'.');
        let mut digits = [0u8; 9];
        let mut n = nanos;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
        let len = digits.iter().rposition(|&d| d != b'0').map_or(0, |i| i + 1);
        out.extend_from_slice(&digits[..len]);
    }
    out.push(b'Z');
}

/// Appends `v` zero-padded to `width` digits (a `-` first when negative).
fn push_num(out: &mut Vec<u8>, v: i64, width: usize) {
    if v < 0 {
        out.push(b'-');
    }
    let mut v = v.unsigned_abs();
    let mut digits = [0u8; 20];
    let mut len = 0;
    while v > 0 || len < width {
        digits[len] = b'0' + (v % 10) as u8;
        v /= 10;
        len += 1;
    }
    out.extend(digits[..len].iter().rev());
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day);
/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    fn check(secs: u64, nanos: u32, expected: &str) {
        let t = UNIX_EPOCH + Duration::new(secs, nanos);
        assert_eq!(rfc3339_nano(t), expected, "secs={secs} nanos={nanos}");
    }

    // 2026-11-29T06:00:00Z
    const BASE: u64 = 1_795_932_000;

    #[test]
    fn whole_seconds_have_no_fraction() {
        check(BASE, 0, "2026-11-29T06:00:00Z");
    }

    #[test]
    fn trailing_zeros_are_trimmed() {
        check(BASE, 100_000_000, "2026-11-29T06:00:00.1Z");
        check(BASE, 120_000_000, "2026-11-29T06:00:00.12Z");
        check(BASE, 123_456_000, "2026-11-29T06:00:00.123456Z");
        check(BASE, 1_000, "2026-11-29T06:00:00.000001Z");
    }

    #[test]
    fn full_nanoseconds() {
        check(BASE, 123_456_789, "2026-11-29T06:00:00.123456789Z");
        check(BASE, 1, "2026-11-29T06:00:00.000000001Z");
    }

    #[test]
    fn calendar_edges() {
        check(0, 0, "1970-01-01T00:00:00Z");
        check(951_782_400, 0, "2000-02-29T00:00:00Z");
        check(1_709_251_199, 500_000_000, "2024-02-29T23:59:59.5Z");
        check(1_735_689_599, 0, "2024-12-31T23:59:59Z");
        check(
            253_402_300_799,
            999_999_999,
            "9999-12-31T23:59:59.999999999Z",
        );
    }

    #[test]
    fn before_the_epoch() {
        let t = UNIX_EPOCH - Duration::new(1, 500_000_000);
        assert_eq!(rfc3339_nano(t), "1969-12-31T23:59:58.5Z");
    }
}
