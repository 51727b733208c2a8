//! The spec as containerd stores it on a container record: JSON, with the capability lists in containerd's order (oci-spec keeps them in hash sets, whose order changes per process).

use oci_spec::runtime::Spec;
use serde_json::Value;

use crate::base::DEFAULT_CAPABILITIES;
use crate::capabilities::KNOWN_CAPABILITIES;

/// Sets larger than the defaults by this much come from containerd's
/// `GetAllCapabilities` (privileged, or `ALL` added), which is in kernel
/// number order.
const ALL_CAPS_THRESHOLD: usize = DEFAULT_CAPABILITIES.len() + 10;

/// `spec` as JSON bytes, capability lists ordered as containerd writes
/// them: `defaultUnixCaps` order, then added capabilities in kernel
/// number order; a near-complete set (privileged, `ALL`) entirely in
/// kernel number order, as `GetAllCapabilities` returns it.
pub fn spec_to_json(spec: &Spec) -> serde_json::Result<Vec<u8>> {
    let text = serde_json::to_string(spec)?;
    const KEY: &str = "\"capabilities\":{";
    let Some(at) = text.find(KEY) else {
        return Ok(text.into_bytes());
    };
    let start = at + KEY.len() - 1;
    // The object holds only arrays of strings without braces.
    let Some(len) = text[start..].find('}') else {
        return Ok(text.into_bytes());
    };
    let end = start + len + 1;
    let object: serde_json::Map<String, Value> = serde_json::from_str(&text[start..end])?;
    let mut keys: Vec<(usize, &String)> = object
        .keys()
        .map(|k| (text[start..end].find(&format!("\"{k}\"")).unwrap_or(0), k))
        .collect();
    keys.sort();
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..start]);
    out.push('{');
    for (i, (_, key)) in keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let value = match &object[key.as_str()] {
            Value::Array(items) => {
                let names: Vec<String> = items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect();
                serde_json::to_value(containerd_order(names))?
            }
            other => other.clone(),
        };
        out.push_str(&serde_json::to_string(key)?);
        out.push(':');
        out.push_str(&serde_json::to_string(&value)?);
    }
    out.push('}');
    out.push_str(&text[end..]);
    Ok(out.into_bytes())
}

/// Capability names in the order containerd's option chain leaves them.
pub(crate) fn containerd_order(mut names: Vec<String>) -> Vec<String> {
    let number = |name: &str| {
        KNOWN_CAPABILITIES
            .iter()
            .position(|k| *k == name)
            .unwrap_or(usize::MAX)
    };
    if names.len() > ALL_CAPS_THRESHOLD {
        names.sort_by(|a, b| (number(a), a).cmp(&(number(b), b)));
        return names;
    }
    let defaults: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|c| cap_name(*c)).collect();
    let default_rank = |name: &str| defaults.iter().position(|c| c == name);
    names.sort_by(|a, b| {
        let key = |n: &str| match default_rank(n) {
            Some(rank) => (0, rank, n.to_string()),
            None => (1, number(n), n.to_string()),
        };
        key(a).cmp(&key(b))
    });
    names
}

/// `CAP_CHOWN` for `Capability::Chown` (its serde name).
fn cap_name(cap: oci_spec::runtime::Capability) -> String {
    match serde_json::to_value(cap) {
        Ok(Value::String(name)) => name,
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn names(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_first_in_containerd_order_then_added_by_number() {
        let shuffled = names(&[
            "CAP_SYS_TIME",
            "CAP_KILL",
            "CAP_CHOWN",
            "CAP_NET_ADMIN",
            "CAP_AUDIT_WRITE",
            "CAP_FSETID",
            "CAP_DAC_OVERRIDE",
        ]);
        assert_eq!(
            containerd_order(shuffled),
            names(&[
                "CAP_CHOWN",
                "CAP_DAC_OVERRIDE",
                "CAP_FSETID",
                "CAP_KILL",
                "CAP_AUDIT_WRITE",
                "CAP_NET_ADMIN",
                "CAP_SYS_TIME",
            ])
        );
    }

    #[test]
    fn a_full_set_is_in_kernel_order() {
        let mut all = names(&KNOWN_CAPABILITIES);
        all.reverse();
        assert_eq!(containerd_order(all), names(&KNOWN_CAPABILITIES));
    }

    #[test]
    fn spec_json_orders_every_capability_list() {
        let spec = crate::base::default_unix_spec("id").unwrap();
        let json: Value = serde_json::from_slice(&spec_to_json(&spec).unwrap()).unwrap();
        let want: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|c| cap_name(*c)).collect();
        for set in ["bounding", "effective", "permitted"] {
            let got: Vec<String> =
                serde_json::from_value(json["process"]["capabilities"][set].clone()).unwrap();
            assert_eq!(got, want, "{set}");
        }
        assert_eq!(
            json["ociVersion"],
            serde_json::to_value(spec.version()).unwrap()
        );
    }
}
