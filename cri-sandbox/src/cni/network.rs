//! What CNI needs to know about one pod: its ids and netns, `CNI_ARGS`
//! (go-cni labels) and the capability args offered to plugins, built as
//! containerd's `cniNamespaceOpts` does.

use std::collections::BTreeMap;
use std::path::PathBuf;

use cri_api::ids::SandboxId;
use cri_api::v1;
use serde_json::{json, Map, Value};

use super::error::CniError;
use super::quantity::parse_quantity_value;

/// Pod annotation with the ingress rate limit (`kubernetes.io/ingress-bandwidth`).
pub const INGRESS_BANDWIDTH_ANNOTATION: &str = "kubernetes.io/ingress-bandwidth";
/// Pod annotation with the egress rate limit (`kubernetes.io/egress-bandwidth`).
pub const EGRESS_BANDWIDTH_ANNOTATION: &str = "kubernetes.io/egress-bandwidth";
/// Capability carrying the pod annotations (containerd `annotations.PodAnnotations`).
pub const POD_ANNOTATIONS_CAPABILITY: &str = "io.kubernetes.cri.pod-annotations";

/// Rate limits for the `bandwidth` capability, in bits per second and
/// bits, as go-cni's `BandWidth`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bandwidth {
    pub ingress_rate: u64,
    pub ingress_burst: u64,
    pub egress_rate: u64,
    pub egress_burst: u64,
}

/// One range of an `ipRanges` range set (CNI conventions).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpRange {
    pub subnet: String,
    pub range_start: String,
    pub range_end: String,
    pub gateway: String,
}

/// The inputs of CNI setup and teardown for one sandbox.
#[derive(Clone, Debug, PartialEq)]
pub struct SandboxNetwork {
    pub sandbox_id: SandboxId,
    /// The pinned netns path; empty at teardown when the netns is gone.
    pub netns_path: PathBuf,
    pub pod_name: String,
    pub pod_namespace: String,
    pub pod_uid: String,
    pub port_mappings: Vec<v1::PortMapping>,
    pub dns: Option<v1::DnsConfig>,
    pub annotations: BTreeMap<String, String>,
    /// `linux.cgroup_parent`; offered as `cgroupPath` when not empty.
    pub cgroup_parent: String,
    pub bandwidth: Option<Bandwidth>,
    /// Offered as `ipRanges` only when not empty (containerd never sets it).
    pub ip_ranges: Vec<Vec<IpRange>>,
}

impl SandboxNetwork {
    /// A sandbox with no pod metadata, ports, DNS, annotations or limits.
    pub fn new(sandbox_id: SandboxId, netns_path: impl Into<PathBuf>) -> Self {
        Self {
            sandbox_id,
            netns_path: netns_path.into(),
            pod_name: String::new(),
            pod_namespace: String::new(),
            pod_uid: String::new(),
            port_mappings: Vec::new(),
            dns: None,
            annotations: BTreeMap::new(),
            cgroup_parent: String::new(),
            bandwidth: None,
            ip_ranges: Vec::new(),
        }
    }

    /// Everything from the pod config, as containerd's `cniNamespaceOpts`;
    /// fails if a bandwidth annotation is malformed or unreasonable.
    pub fn from_pod_config(
        sandbox_id: SandboxId,
        netns_path: impl Into<PathBuf>,
        config: &v1::PodSandboxConfig,
    ) -> Result<Self, CniError> {
        let metadata = config.metadata.clone().unwrap_or_default();
        let annotations: BTreeMap<String, String> = config
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let bandwidth = bandwidth_from_annotations(&annotations)?;
        Ok(Self {
            sandbox_id,
            netns_path: netns_path.into(),
            pod_name: metadata.name,
            pod_namespace: metadata.namespace,
            pod_uid: metadata.uid,
            port_mappings: config.port_mappings.clone(),
            dns: config.dns_config.clone(),
            annotations,
            cgroup_parent: config
                .linux
                .as_ref()
                .map(|l| l.cgroup_parent.clone())
                .unwrap_or_default(),
            bandwidth,
            ip_ranges: Vec::new(),
        })
    }

    /// `CNI_ARGS` pairs (containerd `toCNILabels`), in a fixed order.
    pub fn cni_args(&self) -> Vec<(String, String)> {
        [
            ("IgnoreUnknown", "1"),
            ("K8S_POD_NAMESPACE", self.pod_namespace.as_str()),
            ("K8S_POD_NAME", self.pod_name.as_str()),
            ("K8S_POD_INFRA_CONTAINER_ID", self.sandbox_id.as_ref()),
            ("K8S_POD_UID", self.pod_uid.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Every capability arg offered; each plugin gets those it declares.
    /// JSON shapes are go-cni's: its structs have no json tags, so the keys
    /// are Go field names (`HostPort`, `IngressRate`, `Servers`), and empty
    /// lists/maps are `null`.
    pub fn capability_args(&self) -> Map<String, Value> {
        let mut caps = Map::new();
        caps.insert(
            POD_ANNOTATIONS_CAPABILITY.into(),
            if self.annotations.is_empty() {
                Value::Null
            } else {
                json!(self.annotations)
            },
        );
        let ports: Vec<Value> = self
            .port_mappings
            .iter()
            .filter(|m| m.host_port > 0)
            .map(|m| {
                json!({
                    "HostPort": m.host_port,
                    "ContainerPort": m.container_port,
                    "Protocol": protocol_name(m.protocol).to_lowercase(),
                    "HostIP": m.host_ip,
                })
            })
            .collect();
        if !ports.is_empty() {
            caps.insert("portMappings".into(), Value::Array(ports));
        }
        if let Some(bw) = &self.bandwidth {
            caps.insert(
                "bandwidth".into(),
                json!({
                    "IngressRate": bw.ingress_rate,
                    "IngressBurst": bw.ingress_burst,
                    "EgressRate": bw.egress_rate,
                    "EgressBurst": bw.egress_burst,
                }),
            );
        }
        if let Some(dns) = &self.dns {
            caps.insert(
                "dns".into(),
                json!({
                    "Servers": null_if_empty(&dns.servers),
                    "Searches": null_if_empty(&dns.searches),
                    "Options": null_if_empty(&dns.options),
                }),
            );
        }
        if !self.cgroup_parent.is_empty() {
            caps.insert("cgroupPath".into(), json!(self.cgroup_parent));
        }
        if !self.ip_ranges.is_empty() {
            let sets: Vec<Value> = self
                .ip_ranges
                .iter()
                .map(|set| Value::Array(set.iter().map(ip_range_json).collect()))
                .collect();
            caps.insert("ipRanges".into(), Value::Array(sets));
        }
        caps
    }
}

fn ip_range_json(r: &IpRange) -> Value {
    let mut m = Map::new();
    m.insert("subnet".into(), json!(r.subnet));
    for (key, value) in [
        ("rangeStart", &r.range_start),
        ("rangeEnd", &r.range_end),
        ("gateway", &r.gateway),
    ] {
        if !value.is_empty() {
            m.insert(key.into(), json!(value));
        }
    }
    Value::Object(m)
}

fn null_if_empty(list: &[String]) -> Value {
    if list.is_empty() {
        Value::Null
    } else {
        json!(list)
    }
}

/// Go's `Protocol.String()`: the enum name, or the number if unknown.
fn protocol_name(protocol: i32) -> String {
    match v1::Protocol::try_from(protocol) {
        Ok(p) => p.as_str_name().to_owned(),
        Err(_) => protocol.to_string(),
    }
}

/// The `bandwidth` capability from the pod annotations, as containerd's
/// `toCNIBandWidth`: rates must lie in [1k, 1P]; a set rate gets the burst
/// `u32::MAX`. `None` when neither annotation is present.
pub fn bandwidth_from_annotations(
    annotations: &BTreeMap<String, String>,
) -> Result<Option<Bandwidth>, CniError> {
    let rate = |key: &str| -> Result<Option<u64>, CniError> {
        let Some(value) = annotations.get(key) else {
            return Ok(None);
        };
        let err = |reason: String| CniError::Bandwidth {
            annotation: key.to_owned(),
            value: value.clone(),
            reason,
        };
        let v = parse_quantity_value(value).map_err(err)?;
        if v < 1_000 {
            return Err(err("resource is unreasonably small (< 1kbit)".into()));
        }
        if v > 1_000_000_000_000_000 {
            return Err(err("resoruce is unreasonably large (> 1Pbit)".into()));
        }
        Ok(Some(v as u64))
    };
    let ingress = rate(INGRESS_BANDWIDTH_ANNOTATION)?;
    let egress = rate(EGRESS_BANDWIDTH_ANNOTATION)?;
    if ingress.is_none() && egress.is_none() {
        return Ok(None);
    }
    let burst = u64::from(u32::MAX);
    Ok(Some(Bandwidth {
        ingress_rate: ingress.unwrap_or(0),
        ingress_burst: if ingress.is_some() { burst } else { 0 },
        egress_rate: egress.unwrap_or(0),
        egress_burst: if egress.is_some() { burst } else { 0 },
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn check(net: &SandboxNetwork, expected: Value) {
        assert_eq!(Value::Object(net.capability_args()), expected);
    }

    fn pod() -> SandboxNetwork {
        SandboxNetwork {
            pod_name: "web".into(),
            pod_namespace: "default".into(),
            pod_uid: "uid-1".into(),
            ..SandboxNetwork::new(SandboxId::from("sb1"), "/var/run/netns/cni-1")
        }
    }

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn cni_args_are_containerd_labels() {
        let args = pod().cni_args();
        let joined: Vec<String> = args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            joined.join(";"),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;\
             K8S_POD_INFRA_CONTAINER_ID=sb1;K8S_POD_UID=uid-1"
        );
    }

    #[test]
    fn minimal_pod_offers_only_null_annotations() {
        check(&pod(), json!({POD_ANNOTATIONS_CAPABILITY: null}));
    }

    #[test]
    fn port_mappings_skip_zero_host_port_and_lowercase_protocol() {
        let mut net = pod();
        net.port_mappings = vec![
            v1::PortMapping {
                protocol: v1::Protocol::Udp as i32,
                container_port: 53,
                host_port: 5353,
                host_ip: "127.0.0.1".into(),
            },
            v1::PortMapping {
                protocol: v1::Protocol::Tcp as i32,
                container_port: 80,
                host_port: 0,
                host_ip: String::new(),
            },
        ];
        check(
            &net,
            json!({
                POD_ANNOTATIONS_CAPABILITY: null,
                "portMappings": [{"HostPort": 5353, "ContainerPort": 53, "Protocol": "udp", "HostIP": "127.0.0.1"}],
            }),
        );
    }

    #[test]
    fn dns_cgroup_annotations_and_ranges() {
        let mut net = pod();
        net.dns = Some(v1::DnsConfig {
            servers: vec!["10.96.0.10".into()],
            searches: vec![],
            options: vec!["ndots:5".into()],
        });
        net.cgroup_parent = "/kubepods/pod1".into();
        net.annotations = annotations(&[("a", "b")]);
        net.ip_ranges = vec![vec![IpRange {
            subnet: "10.1.0.0/24".into(),
            ..Default::default()
        }]];
        check(
            &net,
            json!({
                POD_ANNOTATIONS_CAPABILITY: {"a": "b"},
                "dns": {"Servers": ["10.96.0.10"], "Searches": null, "Options": ["ndots:5"]},
                "cgroupPath": "/kubepods/pod1",
                "ipRanges": [[{"subnet": "10.1.0.0/24"}]],
            }),
        );
    }

    #[test]
    fn bandwidth_from_pod_annotations() {
        let bw = bandwidth_from_annotations(&annotations(&[(INGRESS_BANDWIDTH_ANNOTATION, "10M")]))
            .unwrap()
            .unwrap();
        assert_eq!(
            bw,
            Bandwidth {
                ingress_rate: 10_000_000,
                ingress_burst: 4_294_967_295,
                egress_rate: 0,
                egress_burst: 0
            }
        );
        let mut net = pod();
        net.bandwidth = Some(bw);
        check(
            &net,
            json!({
                POD_ANNOTATIONS_CAPABILITY: null,
                "bandwidth": {"IngressRate": 10_000_000u64, "IngressBurst": 4_294_967_295u64, "EgressRate": 0, "EgressBurst": 0},
            }),
        );
        assert_eq!(bandwidth_from_annotations(&annotations(&[])).unwrap(), None);
    }

    #[test]
    fn unreasonable_bandwidth_is_rejected() {
        for value in ["999", "2P", "fast"] {
            let err =
                bandwidth_from_annotations(&annotations(&[(EGRESS_BANDWIDTH_ANNOTATION, value)]))
                    .unwrap_err();
            assert!(matches!(err, CniError::Bandwidth { .. }), "{value}: {err}");
        }
    }

    #[test]
    fn from_pod_config_reads_metadata_and_linux() {
        let config = v1::PodSandboxConfig {
            metadata: Some(v1::PodSandboxMetadata {
                name: "web".into(),
                uid: "uid-1".into(),
                namespace: "default".into(),
                attempt: 0,
            }),
            linux: Some(v1::LinuxPodSandboxConfig {
                cgroup_parent: "/kubepods".into(),
                ..Default::default()
            }),
            annotations: [(EGRESS_BANDWIDTH_ANNOTATION.to_string(), "1M".to_string())].into(),
            ..Default::default()
        };
        let net = SandboxNetwork::from_pod_config(SandboxId::from("sb1"), "/ns", &config).unwrap();
        assert_eq!(net.pod_name, "web");
        assert_eq!(net.pod_namespace, "default");
        assert_eq!(net.cgroup_parent, "/kubepods");
        assert_eq!(net.bandwidth.unwrap().egress_rate, 1_000_000);
    }
}
