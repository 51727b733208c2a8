//! A small, strict parser of the Prometheus text exposition format (and
//! the OpenMetrics text subset we emit), for tests and checks: every line
//! must be a `# HELP`/`# TYPE`/`# UNIT`/`# EOF` comment or a sample
//! `name{label="value",...} value [timestamp]`.

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A line that is not valid exposition text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}: {text:?}")]
pub struct ParseError {
    pub line: usize,
    pub reason: &'static str,
    pub text: String,
}

const TYPES: [&str; 7] = [
    "counter",
    "gauge",
    "histogram",
    "summary",
    "untyped",
    "unknown",
    "info",
];

/// Parses `text`; returns the samples in order.
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    let mut samples = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let fail = |reason| ParseError {
            line: i + 1,
            reason,
            text: line.to_owned(),
        };
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            check_comment(comment).map_err(fail)?;
            continue;
        }
        samples.push(parse_sample(line).map_err(fail)?);
    }
    Ok(samples)
}

/// The samples named `name` whose labels include every pair of `labels`.
pub fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
        .collect()
}

fn check_comment(comment: &str) -> Result<(), &'static str> {
    let mut words = comment.trim_start().splitn(3, ' ');
    match (words.next(), words.next(), words.next()) {
        (Some("EOF"), None, None) => Ok(()),
        (Some("HELP"), Some(name), _) | (Some("UNIT"), Some(name), _) if valid_name(name) => Ok(()),
        (Some("TYPE"), Some(name), Some(kind))
            if valid_name(name) && TYPES.contains(&kind.trim()) =>
        {
            Ok(())
        }
        (Some("HELP" | "TYPE" | "UNIT" | "EOF"), _, _) => Err("malformed metadata comment"),
        _ => Ok(()),
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_sample(line: &str) -> Result<Sample, &'static str> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if !valid_name(name) {
        return Err("invalid metric name");
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, remainder) = parse_labels(after)?;
        labels = parsed;
        rest = remainder;
    }
    let mut fields = rest.split_whitespace();
    let value = parse_value(fields.next().ok_or("no value")?)?;
    if let Some(ts) = fields.next() {
        ts.parse::<f64>().map_err(|_| "invalid timestamp")?;
    }
    if fields.next().is_some() {
        return Err("trailing fields");
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

type Labels = Vec<(String, String)>;

/// Parses `key="value",...}`; returns the labels and what follows `}`.
fn parse_labels(mut s: &str) -> Result<(Labels, &str), &'static str> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let eq = s.find('=').ok_or("label without value")?;
        let key = s[..eq].trim();
        if !valid_name(key) || key.contains(':') {
            return Err("invalid label name");
        }
        let mut chars = s[eq + 1..].char_indices();
        if chars.next().map(|(_, c)| c) != Some('"') {
            return Err("label value not quoted");
        }
        let mut value = String::new();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break eq + 1 + i + 1,
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    _ => return Err("invalid escape"),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.to_owned(), value));
        s = &s[end..];
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

fn parse_value(v: &str) -> Result<f64, &'static str> {
    match v {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => v.parse().map_err(|_| "invalid value"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_samples_and_metadata() {
        let text = "# HELP a_total A \"counter\".\n# TYPE a_total counter\na_total{m=\"/x/Y\",code=\"OK\"} 3\nb_bucket{le=\"+Inf\"} 1 1700000000\nc 1.5e-3\n# EOF\n";
        let samples = parse(text).unwrap();
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].label("m"), Some("/x/Y"));
        assert_eq!(find(&samples, "a_total", &[("code", "OK")]).len(), 1);
        assert_eq!(samples[2].value, 0.0015);
    }

    #[test]
    fn escapes_in_label_values() {
        let s = parse("x{a=\"q\\\"b\\\\c\\nd\"} 1\n").unwrap();
        assert_eq!(s[0].label("a"), Some("q\"b\\c\nd"));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "1abc 1",
            "x{a=b} 1",
            "x{a=\"b} 1",
            "x 1 2 3",
            "x abc",
            "x",
            "# TYPE x weird",
            "x{a-b=\"c\"} 1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
