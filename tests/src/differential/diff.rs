//! The comparison: normalized documents of both sides diffed path by path (JSON pointers), raw JSON text compared byte for byte where containerd stores bytes, and the deliberate differences of `docs/differences.md` (case, where, both values, reason) matched exactly, so nothing is tolerated unless it is listed.
//!
//! Plain std + serde_json on purpose: cri-spec's golden unit test includes
//! this file (`#[path]`) so that it matches builder output against the
//! reference goldens by the same rows and the same rules.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

/// One difference: `where` is `<document><json pointer>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Difference {
    pub case: String,
    pub at: String,
    /// containerd's value (compact JSON; `(absent)` when missing).
    pub reference: String,
    /// cri-server's value.
    pub ours: String,
}

impl Difference {
    /// The row for `docs/differences.md` (reason left to fill in).
    pub fn markdown_row(&self) -> String {
        format!(
            "| {} | `{}` | `{}` | `{}` | |",
            escape(&self.case),
            escape(&self.at),
            escape(&self.reference),
            escape(&self.ours)
        )
    }
}

pub const ABSENT: &str = "(absent)";

fn show(v: Option<&Value>) -> String {
    match v {
        None => ABSENT.into(),
        Some(v) => serde_json::to_string(v).unwrap_or_default(),
    }
}

/// Every difference between the documents of the two sides.
pub fn documents(
    case: &str,
    reference: &BTreeMap<String, Value>,
    ours: &BTreeMap<String, Value>,
) -> Vec<Difference> {
    let mut out = Vec::new();
    let mut names: Vec<&String> = reference.keys().chain(ours.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        value(
            case,
            name,
            reference.get(name.as_str()),
            ours.get(name.as_str()),
            &mut out,
        );
    }
    out
}

fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn value(case: &str, at: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<Difference>) {
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                value(
                    case,
                    &format!("{at}/{}", pointer_escape(k)),
                    x.get(k.as_str()),
                    y.get(k.as_str()),
                    out,
                );
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                value(case, &format!("{at}/{i}"), Some(p), Some(q), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(Difference {
            case: case.into(),
            at: at.into(),
            reference: show(a),
            ours: show(b),
        }),
    }
}

/// A deliberate difference from `docs/differences.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Documented {
    /// A case name, or `*` for every case.
    pub case: String,
    pub at: String,
    pub reference: String,
    pub ours: String,
    pub reason: String,
}

impl Documented {
    /// Exact match, except that `*` in a cell matches any run of
    /// characters (for a difference that shows in many places, e.g. one
    /// per field of one document; each such row says why).
    pub fn matches(&self, d: &Difference) -> bool {
        glob(&self.case, &d.case)
            && glob(&self.at, &d.at)
            && glob(&self.reference, &d.reference)
            && glob(&self.ours, &d.ours)
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of
/// characters.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// The table rows of `docs/differences.md`: `| case | `where` |
/// `containerd` | `cri-server` | reason |` (a `|` inside a cell is `\|`).
pub fn parse_documented(text: &str) -> Result<Vec<Documented>, String> {
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        let separator = line.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '));
        if !line.starts_with('|') || line.starts_with("| case") || separator {
            continue;
        }
        let cells = split_cells(line);
        let [case, at, reference, ours, reason] = cells.as_slice() else {
            return Err(format!(
                "line {}: want 5 cells, got {}: {line}",
                n + 1,
                cells.len()
            ));
        };
        if reason.is_empty() {
            return Err(format!(
                "line {}: a difference without a reason: {line}",
                n + 1
            ));
        }
        rows.push(Documented {
            case: case.clone(),
            at: unquote(at),
            reference: unquote(reference),
            ours: unquote(ours),
            reason: reason.clone(),
        });
    }
    Ok(rows)
}

pub fn read_documented(path: &Path) -> Result<Vec<Documented>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    parse_documented(&text).map_err(|e| format!("parse {}: {e}", path.display()))
}

fn split_cells(line: &str) -> Vec<String> {
    let inner = line.trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cell.push('|');
                chars.next();
            }
            '|' => cells.push(std::mem::take(&mut cell).trim().to_string()),
            c => cell.push(c),
        }
    }
    cells.push(cell.trim().to_string());
    cells
}

fn unquote(cell: &str) -> String {
    cell.strip_prefix('`')
        .and_then(|c| c.strip_suffix('`'))
        .unwrap_or(cell)
        .to_string()
}

fn escape(s: &str) -> String {
    s.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diffs_are_json_pointers_with_both_values() {
        let a = BTreeMap::from([("spec".to_string(), json!({"a": [1, 2], "b/c": "x", "d": 1}))]);
        let b = BTreeMap::from([("spec".to_string(), json!({"a": [1, 3], "b/c": "y", "e": 1}))]);
        let diffs = documents("case", &a, &b);
        let at: Vec<(&str, &str, &str)> = diffs
            .iter()
            .map(|d| (d.at.as_str(), d.reference.as_str(), d.ours.as_str()))
            .collect();
        assert_eq!(
            at,
            [
                ("spec/a/1", "2", "3"),
                ("spec/b~1c", "\"x\"", "\"y\""),
                ("spec/d", "1", ABSENT),
                ("spec/e", ABSENT, "1"),
            ]
        );
    }

    #[test]
    fn globs_match_runs() {
        assert!(glob("a*c", "abbc"));
        assert!(glob("*", ""));
        assert!(glob("x/*/y*", "x/1/y2"));
        assert!(!glob("a*c", "ab"));
        assert!(!glob("abc", "abcd"));
    }

    #[test]
    fn documented_rows_round_trip_and_match_exactly() -> Result<(), String> {
        let d = Difference {
            case: "c".into(),
            at: "spec/x".into(),
            reference: "\"a|b\"".into(),
            ours: ABSENT.into(),
        };
        let row = d.markdown_row().replace("| |", "| why |");
        let rows = parse_documented(&format!("| case | where |\n|---|\n{row}\n"))?;
        assert_eq!(rows.len(), 1);
        assert!(rows[0].matches(&d));
        assert_eq!(rows[0].reason, "why");
        let other = Difference {
            ours: "1".into(),
            ..d.clone()
        };
        assert!(!rows[0].matches(&other));
        assert!(parse_documented(&d.markdown_row()).is_err(), "no reason");
        Ok(())
    }
}
