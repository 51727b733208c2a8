//! Stop signals as image configs spell them (`SIGTERM`, `TERM`, `15`,
//! `SIGRTMIN+3`), parsed like moby's `signal.ParseSignal` for Linux.

/// The signal StopContainer sends when the image names none.
pub const DEFAULT_STOP_SIGNAL: &str = "SIGTERM";
/// The signal that ends a stop after its timeout.
pub const SIGKILL: u32 = 9;

const SIGRTMIN: u32 = 34;
const SIGRTMAX: u32 = 64;

const NAMES: &[(&str, u32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
    ("UNUSED", 31),
];

/// The signal number of `raw`, or `None` if it names no Linux signal.
pub fn parse_signal(raw: &str) -> Option<u32> {
    if let Ok(n) = raw.parse::<u32>() {
        return (1..=SIGRTMAX).contains(&n).then_some(n);
    }
    let upper = raw.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = NAMES.iter().find(|(n, _)| *n == name) {
        return Some(n);
    }
    let offset = |s: &str| s.parse::<u32>().ok().filter(|n| (1..=15).contains(n));
    match name {
        "RTMIN" => Some(SIGRTMIN),
        "RTMAX" => Some(SIGRTMAX),
        _ => {
            if let Some(n) = name.strip_prefix("RTMIN+").and_then(offset) {
                Some(SIGRTMIN + n)
            } else {
                name.strip_prefix("RTMAX-")
                    .and_then(offset)
                    .map(|n| SIGRTMAX - n)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, expected: Option<u32>) {
        assert_eq!(parse_signal(raw), expected, "{raw}");
    }

    #[test]
    fn names_numbers_and_realtime() {
        check("SIGTERM", Some(15));
        check("term", Some(15));
        check("SIGKILL", Some(9));
        check("9", Some(9));
        check("SIGUSR1", Some(10));
        check("SIGRTMIN", Some(34));
        check("SIGRTMIN+3", Some(37));
        check("SIGRTMAX-1", Some(63));
        check("SIGWINCH", Some(28));
    }

    #[test]
    fn rejects_unknown() {
        check("0", None);
        check("65", None);
        check("SIGNOPE", None);
        check("", None);
        check("SIGRTMIN+16", None);
    }
}
