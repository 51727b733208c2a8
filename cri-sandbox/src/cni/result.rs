//! CNI results: plugin output in spec versions 0.1.0 to 1.1.0, conversion
//! between versions (for `prevResult`), and the merged [`CniResult`] that
//! serializes exactly like go-cni's `Result` (compat.md §2).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// The interface go-cni always reports: prefix `eth`, index 0.
pub const DEFAULT_INTERFACE: &str = "eth0";

/// One address of an interface in the merged result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    #[serde(rename = "IP", with = "go_ip")]
    pub ip: Option<IpAddr>,
    #[serde(rename = "Gateway", with = "go_ip", default)]
    pub gateway: Option<IpAddr>,
}

/// go-cni `Config`: the addresses, MAC and sandbox of one interface.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceConfig {
    #[serde(rename = "IPConfigs", with = "null_vec", default)]
    pub ip_configs: Vec<IpConfig>,
    #[serde(rename = "Mac", default)]
    pub mac: String,
    #[serde(rename = "Sandbox", default)]
    pub sandbox: String,
}

/// CNI `types.DNS`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// CNI `types.Route`: destination CIDR and optional gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

/// The merged result of all networks, as go-cni's `Result`: kept in the
/// sandbox metadata as `CNIResult`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniResult {
    #[serde(rename = "Interfaces", default)]
    pub interfaces: BTreeMap<String, InterfaceConfig>,
    #[serde(rename = "DNS", with = "null_vec", default)]
    pub dns: Vec<Dns>,
    #[serde(rename = "Routes", with = "null_vec", default)]
    pub routes: Vec<Route>,
}

impl CniResult {
    /// Merges one plugin-list result per network, as go-cni's
    /// `createResult`: `eth0` is always present; IPs without an interface
    /// index go to `eth0`; one DNS entry per network.
    pub(crate) fn from_results(results: &[PluginResult]) -> Result<Self, String> {
        let mut r = CniResult::default();
        r.interfaces
            .insert(DEFAULT_INTERFACE.to_owned(), InterfaceConfig::default());
        for result in results {
            for intf in &result.interfaces {
                r.interfaces.insert(
                    intf.name.clone(),
                    InterfaceConfig {
                        ip_configs: Vec::new(),
                        mac: intf.mac.clone(),
                        sandbox: intf.sandbox.clone(),
                    },
                );
            }
            for ip in &result.ips {
                let name = match ip.interface {
                    Some(idx) => {
                        let intf = usize::try_from(idx)
                            .ok()
                            .and_then(|i| result.interfaces.get(i))
                            .ok_or_else(|| {
                                format!(
                                    "invalid interface config: invalid IP configuration (interface number {idx} is > number of interfaces {})",
                                    result.interfaces.len()
                                )
                            })?;
                        intf.name.clone()
                    }
                    None => DEFAULT_INTERFACE.to_owned(),
                };
                let (addr, _) = parse_cidr(&ip.address)?;
                r.interfaces
                    .entry(name)
                    .or_default()
                    .ip_configs
                    .push(IpConfig {
                        ip: Some(addr),
                        gateway: ip.gateway,
                    });
            }
            r.dns.push(result.dns.clone());
            r.routes.extend(result.routes.iter().cloned());
        }
        Ok(r)
    }

    /// The pod IP and the additional IPs from `eth0`, as containerd's
    /// `selectPodIPs`: `ip_pref` `ipv4` (default; anything unknown falls
    /// back to it) or `ipv6` picks the first address of that family as
    /// primary, the others following in order; `cni` keeps the plugin order.
    /// `None` when `eth0` has no address.
    pub fn pod_ips(&self, ip_pref: &str) -> Option<(String, Vec<String>)> {
        let ips: Vec<IpAddr> = self
            .interfaces
            .get(DEFAULT_INTERFACE)?
            .ip_configs
            .iter()
            .filter_map(|c| c.ip)
            .collect();
        let first = ips.first()?;
        if ips.len() == 1 {
            return Some((first.to_string(), Vec::new()));
        }
        let wanted: Option<fn(&IpAddr) -> bool> = match ip_pref {
            "cni" => None,
            "ipv6" => Some(IpAddr::is_ipv6),
            other => {
                if !other.is_empty() && other != "ipv4" {
                    tracing::warn!(ip_pref = other, "invalid ip_pref, falling back to ipv4");
                }
                Some(IpAddr::is_ipv4)
            }
        };
        let primary = wanted.and_then(|is| ips.iter().position(is)).unwrap_or(0);
        let rest = ips
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != primary)
            .map(|(_, ip)| ip.to_string())
            .collect();
        Some((ips[primary].to_string(), rest))
    }
}

/// A plugin (list) result in the 1.0.0 shape, whatever version it came in.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct PluginResult {
    pub interfaces: Vec<PluginInterface>,
    pub ips: Vec<PluginIp>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub(crate) struct PluginInterface {
    pub name: String,
    #[serde(default)]
    pub mac: String,
    #[serde(default)]
    pub sandbox: String,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub(crate) struct PluginIp {
    pub address: String,
    #[serde(default, with = "go_ip")]
    pub gateway: Option<IpAddr>,
    #[serde(default)]
    pub interface: Option<i64>,
}

#[derive(Deserialize)]
struct Current {
    #[serde(default)]
    interfaces: Vec<PluginInterface>,
    #[serde(default)]
    ips: Vec<PluginIp>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    dns: Option<Dns>,
}

#[derive(Deserialize)]
struct LegacyIp {
    ip: String,
    #[serde(default, with = "go_ip")]
    gateway: Option<IpAddr>,
    #[serde(default)]
    routes: Vec<Route>,
}

#[derive(Deserialize)]
struct Legacy {
    #[serde(default)]
    ip4: Option<LegacyIp>,
    #[serde(default)]
    ip6: Option<LegacyIp>,
    #[serde(default)]
    dns: Option<Dns>,
}

const CURRENT_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
const LEGACY_VERSIONS: &[&str] = &["0.1.0", "0.2.0"];

fn version_of(value: &Value) -> &str {
    value
        .get("cniVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Parses a result of any supported version into the 1.0.0 shape.
pub(crate) fn parse_plugin_result(value: &Value) -> Result<PluginResult, String> {
    let version = version_of(value);
    if CURRENT_VERSIONS.contains(&version) {
        let c: Current = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
        for ip in &c.ips {
            parse_cidr(&ip.address)?;
        }
        for route in &c.routes {
            parse_cidr(&route.dst)?;
        }
        return Ok(PluginResult {
            interfaces: c.interfaces,
            ips: c.ips,
            routes: c.routes,
            dns: c.dns.unwrap_or_default(),
        });
    }
    if LEGACY_VERSIONS.contains(&version) {
        let l: Legacy = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
        let mut r = PluginResult {
            dns: l.dns.unwrap_or_default(),
            ..Default::default()
        };
        for ip in [l.ip4, l.ip6].into_iter().flatten() {
            parse_cidr(&ip.ip)?;
            r.ips.push(PluginIp {
                address: ip.ip,
                gateway: ip.gateway,
                interface: None,
            });
            r.routes.extend(ip.routes);
        }
        return Ok(r);
    }
    Err(format!("unsupported CNI result version {version:?}"))
}

/// Makes a plugin's stdout a result value; a missing `cniVersion` is taken
/// from the config, as libcni's `fixupResultVersion`.
pub(crate) fn decode_plugin_output(stdout: &[u8], conf_version: &str) -> Result<Value, String> {
    let mut value: Value = serde_json::from_slice(stdout).map_err(|e| e.to_string())?;
    let obj = value
        .as_object_mut()
        .ok_or_else(|| "result is not a JSON object".to_string())?;
    if obj
        .get("cniVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .is_empty()
    {
        obj.insert("cniVersion".into(), Value::String(conf_version.to_owned()));
    }
    parse_plugin_result(&value)?;
    Ok(value)
}

/// Converts a result to another spec version (libcni `GetAsVersion`), for
/// `prevResult` from the cache: 0.3.x/0.4.0 carry a `version` per IP,
/// 1.x do not. Legacy (0.1/0.2) results are upgraded first.
pub(crate) fn convert_result(value: &Value, target: &str) -> Result<Value, String> {
    if !CURRENT_VERSIONS.contains(&target) {
        return Err(format!("cannot convert a result to version {target:?}"));
    }
    let mut value = if LEGACY_VERSIONS.contains(&version_of(value)) {
        let r = parse_plugin_result(value)?;
        let ips: Vec<Value> = r
            .ips
            .iter()
            .map(|ip| {
                let mut m = Map::new();
                m.insert("address".into(), Value::String(ip.address.clone()));
                if let Some(gw) = ip.gateway {
                    m.insert("gateway".into(), Value::String(gw.to_string()));
                }
                Value::Object(m)
            })
            .collect();
        serde_json::json!({"ips": ips, "routes": r.routes, "dns": r.dns})
    } else {
        parse_plugin_result(value)?;
        value.clone()
    };
    let legacy_ip_version = target != "1.0.0" && target != "1.1.0";
    if let Some(ips) = value.get_mut("ips").and_then(Value::as_array_mut) {
        for ip in ips.iter_mut().filter_map(Value::as_object_mut) {
            if legacy_ip_version {
                let v4 = ip
                    .get("address")
                    .and_then(Value::as_str)
                    .and_then(|a| parse_cidr(a).ok())
                    .is_some_and(|(a, _)| a.is_ipv4());
                ip.insert(
                    "version".into(),
                    Value::String(if v4 { "4" } else { "6" }.into()),
                );
            } else {
                ip.remove("version");
            }
        }
    }
    if let Some(obj) = value.as_object_mut() {
        obj.insert("cniVersion".into(), Value::String(target.to_owned()));
    }
    Ok(value)
}

/// `a.b.c/len` or `a:b::c/len`, host bits kept (CNI `types.ParseCIDR`).
pub(crate) fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let (ip, len) = s
        .split_once('/')
        .ok_or_else(|| format!("invalid CIDR address: {s}"))?;
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| format!("invalid CIDR address: {s}"))?;
    let len: u8 = len
        .parse()
        .map_err(|_| format!("invalid CIDR address: {s}"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(format!("invalid CIDR address: {s}"));
    }
    Ok((ip, len))
}

/// Go's `net.IP` JSON: the text form, `""` for nil.
mod go_ip {
    use super::*;

    pub fn serialize<S: Serializer>(ip: &Option<IpAddr>, s: S) -> Result<S::Ok, S::Error> {
        match ip {
            Some(ip) => s.collect_str(ip),
            None => s.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpAddr>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        match text.as_deref() {
            None | Some("") => Ok(None),
            Some(t) => t.parse().map(Some).map_err(serde::de::Error::custom),
        }
    }
}

/// A Go slice: `null` when empty, and `null` reads as empty.
mod null_vec {
    use super::*;

    pub fn serialize<T: Serialize, S: Serializer>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
        if v.is_empty() {
            s.serialize_none()
        } else {
            v.serialize(s)
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<T>, D::Error> {
        Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn check(results: &[Value], expected_json: &str) {
        let parsed: Vec<PluginResult> = results
            .iter()
            .map(|r| parse_plugin_result(r).unwrap())
            .collect();
        let merged = CniResult::from_results(&parsed).unwrap();
        assert_eq!(serde_json::to_string(&merged).unwrap(), expected_json);
        let back: CniResult = serde_json::from_str(expected_json).unwrap();
        assert_eq!(back, merged);
    }

    fn bridge_result(version: &str) -> Value {
        let mut ip = json!({"address": "10.88.0.5/16", "gateway": "10.88.0.1", "interface": 2});
        if version != "1.0.0" {
            ip["version"] = json!("4");
        }
        json!({
            "cniVersion": version,
            "interfaces": [
                {"name": "cni0", "mac": "aa:bb:cc:00:00:01"},
                {"name": "veth1234", "mac": "aa:bb:cc:00:00:02"},
                {"name": "eth0", "mac": "aa:bb:cc:00:00:03", "sandbox": "/var/run/netns/cni-1"}
            ],
            "ips": [ip],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.88.0.1"}],
            "dns": {}
        })
    }

    const BRIDGE_GO_CNI_JSON: &str = concat!(
        r#"{"Interfaces":{"cni0":{"IPConfigs":null,"Mac":"aa:bb:cc:00:00:01","Sandbox":""},"#,
        r#""eth0":{"IPConfigs":[{"IP":"10.88.0.5","Gateway":"10.88.0.1"}],"Mac":"aa:bb:cc:00:00:03","Sandbox":"/var/run/netns/cni-1"},"#,
        r#""veth1234":{"IPConfigs":null,"Mac":"aa:bb:cc:00:00:02","Sandbox":""}},"#,
        r#""DNS":[{},{}],"Routes":[{"dst":"0.0.0.0/0","gw":"10.88.0.1"}]}"#
    );

    #[test]
    fn go_cni_json_for_loopback_and_bridge_1_0_0() {
        let lo = json!({"cniVersion": "0.3.1"});
        check(&[lo, bridge_result("1.0.0")], BRIDGE_GO_CNI_JSON);
    }

    #[test]
    fn the_loopback_plugins_lo_interface_is_kept() {
        // What containernetworking-plugins 1.x's loopback returns.
        let lo = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": "/var/run/netns/cni-1"}],
            "ips": [
                {"interface": 0, "address": "127.0.0.1/8"},
                {"interface": 0, "address": "::1/128"}
            ],
            "dns": {}
        });
        let merged = CniResult::from_results(&[
            parse_plugin_result(&lo).unwrap(),
            parse_plugin_result(&bridge_result("1.0.0")).unwrap(),
        ])
        .unwrap();
        let lo = &merged.interfaces["lo"];
        let ips: Vec<String> = lo
            .ip_configs
            .iter()
            .map(|c| c.ip.unwrap().to_string())
            .collect();
        assert_eq!(ips, ["127.0.0.1", "::1"]);
        assert_eq!(lo.sandbox, "/var/run/netns/cni-1");
        assert!(merged.interfaces.contains_key("eth0"));
    }

    #[test]
    fn go_cni_json_for_0_4_0_and_0_3_1() {
        let lo = json!({"cniVersion": "0.3.1"});
        check(&[lo.clone(), bridge_result("0.4.0")], BRIDGE_GO_CNI_JSON);
        check(&[lo, bridge_result("0.3.1")], BRIDGE_GO_CNI_JSON);
    }

    #[test]
    fn ips_without_interface_go_to_eth0_and_empty_is_null() {
        check(
            &[json!({"cniVersion": "1.0.0", "ips": [{"address": "fd00::5/64"}]})],
            r#"{"Interfaces":{"eth0":{"IPConfigs":[{"IP":"fd00::5","Gateway":""}],"Mac":"","Sandbox":""}},"DNS":[{}],"Routes":null}"#,
        );
        check(
            &[json!({"cniVersion": "1.0.0", "dns": {"nameservers": ["1.1.1.1"], "search": ["x"]}})],
            r#"{"Interfaces":{"eth0":{"IPConfigs":null,"Mac":"","Sandbox":""}},"DNS":[{"nameservers":["1.1.1.1"],"search":["x"]}],"Routes":null}"#,
        );
    }

    #[test]
    fn legacy_0_2_0_result() {
        check(
            &[
                json!({"cniVersion": "0.2.0", "ip4": {"ip": "10.1.0.5/16", "gateway": "10.1.0.1", "routes": [{"dst": "0.0.0.0/0"}]}}),
            ],
            r#"{"Interfaces":{"eth0":{"IPConfigs":[{"IP":"10.1.0.5","Gateway":"10.1.0.1"}],"Mac":"","Sandbox":""}},"DNS":[{}],"Routes":[{"dst":"0.0.0.0/0"}]}"#,
        );
    }

    #[test]
    fn bad_results_are_rejected() {
        for bad in [
            json!({"cniVersion": "9.9.9"}),
            json!({"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.5"}]}),
            json!({"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.5/40"}]}),
            json!({"cniVersion": "1.0.0", "ips": "x"}),
        ] {
            assert!(parse_plugin_result(&bad).is_err(), "{bad}");
        }
        let out_of_range = parse_plugin_result(
            &json!({"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.5/24", "interface": 3}]}),
        )
        .unwrap();
        assert!(CniResult::from_results(&[out_of_range]).is_err());
    }

    #[test]
    fn plugin_output_gets_conf_version_when_missing() {
        let v = decode_plugin_output(br#"{"ips":[{"address":"10.0.0.2/24"}]}"#, "1.0.0").unwrap();
        assert_eq!(v["cniVersion"], "1.0.0");
        assert!(decode_plugin_output(b"", "1.0.0").is_err());
        assert!(decode_plugin_output(b"[]", "1.0.0").is_err());
    }

    #[test]
    fn version_conversion_adds_and_drops_ip_version() {
        let v040 = convert_result(&bridge_result("1.0.0"), "0.4.0").unwrap();
        assert_eq!(v040["cniVersion"], "0.4.0");
        assert_eq!(v040["ips"][0]["version"], "4");
        let v100 = convert_result(&v040, "1.0.0").unwrap();
        assert_eq!(v100, bridge_result("1.0.0"));
        let legacy = json!({"cniVersion": "0.2.0", "ip6": {"ip": "fd00::2/64"}});
        let up = convert_result(&legacy, "0.3.1").unwrap();
        assert_eq!(
            up["ips"][0],
            json!({"address": "fd00::2/64", "version": "6"})
        );
        assert!(convert_result(&bridge_result("1.0.0"), "0.2.0").is_err());
    }

    fn pod_ips_of(ips: &[&str], pref: &str) -> Option<(String, Vec<String>)> {
        let mut r = CniResult::default();
        r.interfaces.insert(
            DEFAULT_INTERFACE.into(),
            InterfaceConfig {
                ip_configs: ips
                    .iter()
                    .map(|ip| IpConfig {
                        ip: Some(ip.parse().unwrap()),
                        gateway: None,
                    })
                    .collect(),
                ..Default::default()
            },
        );
        r.pod_ips(pref)
    }

    #[test]
    fn pod_ip_selection_follows_ip_pref() {
        let own = |p: &str, rest: &[&str]| {
            Some((p.to_string(), rest.iter().map(|s| s.to_string()).collect()))
        };
        let dual = ["fd00::5", "10.0.0.5", "10.0.0.6"];
        assert_eq!(
            pod_ips_of(&dual, ""),
            own("10.0.0.5", &["fd00::5", "10.0.0.6"])
        );
        assert_eq!(
            pod_ips_of(&dual, "ipv4"),
            own("10.0.0.5", &["fd00::5", "10.0.0.6"])
        );
        assert_eq!(
            pod_ips_of(&dual, "bogus"),
            own("10.0.0.5", &["fd00::5", "10.0.0.6"])
        );
        assert_eq!(
            pod_ips_of(&["10.0.0.5", "fd00::5"], "ipv6"),
            own("fd00::5", &["10.0.0.5"])
        );
        assert_eq!(
            pod_ips_of(&dual, "cni"),
            own("fd00::5", &["10.0.0.5", "10.0.0.6"])
        );
        assert_eq!(pod_ips_of(&["fd00::1"], "ipv4"), own("fd00::1", &[]));
        assert_eq!(
            pod_ips_of(&["fd00::1", "fd00::2"], "ipv4"),
            own("fd00::1", &["fd00::2"])
        );
        assert_eq!(pod_ips_of(&[], "ipv4"), None);
    }
}
