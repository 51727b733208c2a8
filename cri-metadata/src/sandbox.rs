//! The sandbox metadata extension: `SandboxMetadata` <->
//! `Any{type_url: github.com/containerd/cri/pkg/store/sandbox/Metadata,
//! value: {"Version":"v1","Metadata":{...}}}`, including go-cni's
//! `Result` in its Go field order.

use std::borrow::Cow;

use cri_api::ids::SandboxId;
use cri_api::v1::PodSandboxConfig;
use cri_store::sandbox::SandboxMetadata;
use prost_types::Any;
use serde::Deserialize;
use serde_json::Value;

use super::go_encode::{cri_value, GoValue};
use super::{
    check_type_url, go_decode, parse_v1, versioned, MetadataError, RecordKind, Result,
    SANDBOX_METADATA_TYPE_URL,
};

const KIND: RecordKind = RecordKind::SandboxMetadata;

/// The extension value for `metadata`, as containerd writes it.
pub fn sandbox_metadata_to_any(metadata: &SandboxMetadata) -> Result<Any> {
    Ok(Any {
        type_url: SANDBOX_METADATA_TYPE_URL.to_owned(),
        value: encode(metadata)?,
    })
}

/// The metadata in the extension of the pause container (or 2.x Sandbox
/// record) `id` (`id` only names the record in errors).
pub fn sandbox_metadata_from_any(id: &str, any: &Any) -> Result<SandboxMetadata> {
    check_type_url(KIND, SANDBOX_METADATA_TYPE_URL, id, any)?;
    decode(id, &any.value)
}

/// Go `json.Marshal` of containerd's sandbox `Metadata`: Go names, struct
/// order, nothing omitted; a nil `AdditionalIPs` or `CNIResult` is `null`.
fn encode(m: &SandboxMetadata) -> Result<Vec<u8>> {
    let config = cri_value(&m.config).map_err(|source| MetadataError::Encode {
        kind: KIND,
        id: m.id.to_string(),
        source,
    })?;
    let additional_ips = if m.additional_ips.is_empty() {
        GoValue::Null
    } else {
        GoValue::Array(
            m.additional_ips
                .iter()
                .map(|ip| GoValue::from(ip.as_str()))
                .collect(),
        )
    };
    let cni_result = m
        .cni_result
        .as_ref()
        .map_or(GoValue::Null, |r| shaped(r, &CNI_RESULT));
    let field = |name: &'static str, value: &str| (Cow::Borrowed(name), GoValue::from(value));
    let metadata = GoValue::Struct(vec![
        field("ID", m.id.as_ref()),
        field("Name", &m.name),
        (Cow::Borrowed("Config"), config),
        field("NetNSPath", &m.netns_path),
        field("IP", &m.ip),
        (Cow::Borrowed("AdditionalIPs"), additional_ips),
        field("RuntimeHandler", &m.runtime_handler),
        (Cow::Borrowed("CNIResult"), cni_result),
        field("ProcessLabel", &m.process_label),
    ]);
    Ok(versioned(metadata).to_json())
}

/// The Go type of a JSON value inside `CNIResult`, to write it in Go order.
enum Shape {
    /// A struct: these keys first, in this order; unknown keys after them.
    Struct(&'static [(&'static str, Shape)]),
    /// A map: keys sorted.
    MapOf(&'static Shape),
    ArrayOf(&'static Shape),
    /// A scalar, or anything else: written as found.
    Scalar,
}

/// go-cni `IPConfig{IP, Gateway net.IP}`.
static IP_CONFIG: Shape = Shape::Struct(&[("IP", Shape::Scalar), ("Gateway", Shape::Scalar)]);
/// go-cni `Config`; `PciID` and `SocketPath` are go-cni 1.1.13 (2.x).
static INTERFACE: Shape = Shape::Struct(&[
    ("IPConfigs", Shape::ArrayOf(&IP_CONFIG)),
    ("Mac", Shape::Scalar),
    ("Sandbox", Shape::Scalar),
    ("PciID", Shape::Scalar),
    ("SocketPath", Shape::Scalar),
]);
/// CNI `types.DNS`.
static DNS: Shape = Shape::Struct(&[
    ("nameservers", Shape::Scalar),
    ("domain", Shape::Scalar),
    ("search", Shape::Scalar),
    ("options", Shape::Scalar),
]);
/// CNI `types.Route`; the fields after `gw` are CNI 1.3 (2.x).
static ROUTE: Shape = Shape::Struct(&[
    ("dst", Shape::Scalar),
    ("gw", Shape::Scalar),
    ("mtu", Shape::Scalar),
    ("advmss", Shape::Scalar),
    ("priority", Shape::Scalar),
    ("table", Shape::Scalar),
    ("scope", Shape::Scalar),
]);
/// go-cni `Result{Interfaces map[string]*Config; DNS []types.DNS; Routes []*types.Route}`.
static CNI_RESULT: Shape = Shape::Struct(&[
    ("Interfaces", Shape::MapOf(&INTERFACE)),
    ("DNS", Shape::ArrayOf(&DNS)),
    ("Routes", Shape::ArrayOf(&ROUTE)),
]);

/// `value` as Go writes the typed struct it was decoded from.
fn shaped(value: &Value, shape: &Shape) -> GoValue {
    match (value, shape) {
        (Value::Object(object), Shape::Struct(fields)) => {
            let mut out: Vec<(Cow<'static, str>, GoValue)> = fields
                .iter()
                .filter_map(|(name, field_shape)| {
                    object
                        .get(*name)
                        .map(|v| (Cow::Borrowed(*name), shaped(v, field_shape)))
                })
                .collect();
            // serde_json's map iterates sorted, as Go would write a map.
            out.extend(
                object
                    .iter()
                    .filter(|(key, _)| !fields.iter().any(|(name, _)| name == key))
                    .map(|(key, v)| (Cow::Owned(key.clone()), GoValue::from_json(v))),
            );
            GoValue::Struct(out)
        }
        (Value::Object(object), Shape::MapOf(entry)) => GoValue::Map(
            object
                .iter()
                .map(|(k, v)| (k.clone(), shaped(v, entry)))
                .collect(),
        ),
        (Value::Array(items), Shape::ArrayOf(item)) => {
            GoValue::Array(items.iter().map(|v| shaped(v, item)).collect())
        }
        _ => GoValue::from_json(value),
    }
}

/// The Go struct, as 1.7 and 2.x write it.
#[derive(Deserialize)]
struct Wire {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Config")]
    config: Option<PodSandboxConfig>,
    #[serde(rename = "NetNSPath")]
    netns_path: String,
    #[serde(rename = "IP")]
    ip: String,
    #[serde(rename = "AdditionalIPs")]
    additional_ips: Vec<String>,
    #[serde(rename = "RuntimeHandler")]
    runtime_handler: String,
    #[serde(rename = "CNIResult")]
    cni_result: Option<Value>,
    #[serde(rename = "ProcessLabel")]
    process_label: String,
}

#[derive(Deserialize)]
struct Versioned {
    #[serde(rename = "Metadata")]
    metadata: Wire,
}

fn decode(id: &str, bytes: &[u8]) -> Result<SandboxMetadata> {
    let value = parse_v1(KIND, id, bytes)?;
    let Versioned { metadata: w } =
        go_decode::from_value(&value).map_err(|source| MetadataError::Decode {
            kind: KIND,
            id: id.to_owned(),
            source,
        })?;
    Ok(SandboxMetadata {
        id: SandboxId(w.id),
        name: w.name,
        config: w.config.unwrap_or_default(),
        netns_path: w.netns_path,
        ip: w.ip,
        additional_ips: w.additional_ips,
        runtime_handler: w.runtime_handler,
        cni_result: w.cni_result,
        process_label: w.process_label,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::HashMap;

    use cri_api::v1::{
        DnsConfig, LinuxContainerResources, LinuxPodSandboxConfig, LinuxSandboxSecurityContext,
        NamespaceOption, PodSandboxMetadata, PortMapping, SecurityProfile,
    };
    use serde_json::json;

    use super::*;

    const SID: &str = "9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b";
    const POD_UID: &str = "7c3e1a52-96d4-4f0b-a1c2-5e6f7a8b9c0d";
    const NETNS: &str = "/var/run/netns/cni-1b2c3d4e-5f60-7182-93a4-b5c6d7e8f90a";

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn kubelet_config() -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: "web-0".into(),
                uid: POD_UID.into(),
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: "web-0".into(),
            log_directory: format!("/var/log/pods/default_web-0_{POD_UID}"),
            dns_config: Some(DnsConfig {
                servers: strings(&["10.96.0.10"]),
                searches: strings(&[
                    "default.svc.cluster.local",
                    "svc.cluster.local",
                    "cluster.local",
                ]),
                options: strings(&["ndots:5"]),
            }),
            port_mappings: vec![PortMapping {
                protocol: 0,
                container_port: 80,
                host_port: 8080,
                host_ip: String::new(),
            }],
            labels: map(&[
                ("io.kubernetes.pod.uid", POD_UID),
                ("io.kubernetes.pod.namespace", "default"),
                ("io.kubernetes.pod.name", "web-0"),
                ("app", "web"),
            ]),
            annotations: map(&[
                ("kubernetes.io/config.source", "api"),
                (
                    "kubernetes.io/config.seen",
                    "2024-05-01T10:00:00.000000000Z",
                ),
            ]),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: "kubepods-besteffort-pod7c3e1a52.slice".into(),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption::default()),
                    seccomp: Some(SecurityProfile::default()),
                    ..Default::default()
                }),
                resources: Some(LinuxContainerResources {
                    cpu_period: 100_000,
                    cpu_shares: 2,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            windows: None,
        }
    }

    /// A go-cni result with the bridge plugin: eth0, the bridge and the
    /// host veth, one (empty) DNS entry per network, one route. Built as a
    /// serde_json map, so its keys iterate sorted (DNS, Interfaces, Routes;
    /// Gateway, IP), not in Go order.
    fn cni_result() -> Value {
        json!({
            "Routes": [{"gw": "10.88.0.1", "dst": "0.0.0.0/0"}],
            "Interfaces": {
                "vethc0ffee1": {"Sandbox": "", "Mac": "6a:1b:2c:3d:4e:5f", "IPConfigs": null},
                "eth0": {"Sandbox": NETNS, "Mac": "a2:b3:c4:d5:e6:f7", "IPConfigs": [{"Gateway": "10.88.0.1", "IP": "10.88.0.5"}]},
                "cni0": {"Sandbox": "", "Mac": "02:42:ac:11:00:01", "IPConfigs": null}
            },
            "DNS": [{}]
        })
    }

    fn kubelet_metadata() -> SandboxMetadata {
        SandboxMetadata {
            id: SandboxId::from(SID),
            name: format!("web-0_default_{POD_UID}_0"),
            config: kubelet_config(),
            netns_path: NETNS.into(),
            ip: "10.88.0.5".into(),
            additional_ips: Vec::new(),
            runtime_handler: String::new(),
            cni_result: Some(cni_result()),
            process_label: String::new(),
        }
    }

    /// Rules exercised: Go names in struct order, no omitempty at this
    /// level (`RuntimeHandler:""`, nil `AdditionalIPs` is `null`); in
    /// Config: `attempt:0` and `protocol:0` (TCP) dropped, the all-POD
    /// `namespace_options` and RuntimeDefault `seccomp` written `{}`, maps
    /// sorted; in CNIResult: go-cni field order (Interfaces, DNS, Routes;
    /// IPConfigs, Mac, Sandbox; IP, Gateway; dst, gw), the Interfaces map
    /// sorted, a nil IPConfigs `null`, an empty DNS entry `{}`.
    fn hand_written_json() -> String {
        format!(
            concat!(
                r#"{{"Version":"v1","Metadata":{{"ID":"{sid}","Name":"web-0_default_{uid}_0","#,
                r#""Config":{{"metadata":{{"name":"web-0","uid":"{uid}","namespace":"default"}},"hostname":"web-0","#,
                r#""log_directory":"/var/log/pods/default_web-0_{uid}","#,
                r#""dns_config":{{"servers":["10.96.0.10"],"searches":["default.svc.cluster.local","svc.cluster.local","cluster.local"],"options":["ndots:5"]}},"#,
                r#""port_mappings":[{{"container_port":80,"host_port":8080}}],"#,
                r#""labels":{{"app":"web","io.kubernetes.pod.name":"web-0","io.kubernetes.pod.namespace":"default","io.kubernetes.pod.uid":"{uid}"}},"#,
                r#""annotations":{{"kubernetes.io/config.seen":"2024-05-01T10:00:00.000000000Z","kubernetes.io/config.source":"api"}},"#,
                r#""linux":{{"cgroup_parent":"kubepods-besteffort-pod7c3e1a52.slice","#,
                r#""security_context":{{"namespace_options":{{}},"seccomp":{{}}}},"#,
                r#""resources":{{"cpu_period":100000,"cpu_shares":2}}}}}},"#,
                r#""NetNSPath":"{netns}","IP":"10.88.0.5","AdditionalIPs":null,"RuntimeHandler":"","#,
                r#""CNIResult":{{"Interfaces":{{"#,
                r#""cni0":{{"IPConfigs":null,"Mac":"02:42:ac:11:00:01","Sandbox":""}},"#,
                r#""eth0":{{"IPConfigs":[{{"IP":"10.88.0.5","Gateway":"10.88.0.1"}}],"Mac":"a2:b3:c4:d5:e6:f7","Sandbox":"{netns}"}},"#,
                r#""vethc0ffee1":{{"IPConfigs":null,"Mac":"6a:1b:2c:3d:4e:5f","Sandbox":""}}}},"#,
                r#""DNS":[{{}}],"Routes":[{{"dst":"0.0.0.0/0","gw":"10.88.0.1"}}]}},"#,
                r#""ProcessLabel":""}}}}"#,
            ),
            sid = SID,
            uid = POD_UID,
            netns = NETNS,
        )
    }

    /// Encodes `metadata` and compares with the hand-written JSON.
    fn check(metadata: &SandboxMetadata, expected_json: &str) {
        let any = sandbox_metadata_to_any(metadata).unwrap();
        assert_eq!(
            any.type_url,
            "github.com/containerd/cri/pkg/store/sandbox/Metadata"
        );
        assert_eq!(String::from_utf8(any.value).unwrap(), expected_json);
    }

    fn read(json: &str) -> Result<SandboxMetadata> {
        let any = Any {
            type_url: SANDBOX_METADATA_TYPE_URL.into(),
            value: json.as_bytes().to_vec(),
        };
        sandbox_metadata_from_any(SID, &any)
    }

    fn host_network_metadata() -> SandboxMetadata {
        SandboxMetadata {
            id: SandboxId::from("s1"),
            name: "n".into(),
            config: PodSandboxConfig::default(),
            netns_path: String::new(),
            ip: String::new(),
            additional_ips: Vec::new(),
            runtime_handler: String::new(),
            cni_result: None,
            process_label: String::new(),
        }
    }

    #[test]
    fn encodes_kubelet_sandbox() {
        check(&kubelet_metadata(), &hand_written_json());
    }

    #[test]
    fn host_network_sandbox() {
        // Before CNI setup or with host networking: no IPs, nil CNIResult.
        check(
            &host_network_metadata(),
            r#"{"Version":"v1","Metadata":{"ID":"s1","Name":"n","Config":{},"NetNSPath":"","IP":"","AdditionalIPs":null,"RuntimeHandler":"","CNIResult":null,"ProcessLabel":""}}"#,
        );
    }

    #[test]
    fn dual_stack_additional_ips() {
        let mut m = host_network_metadata();
        m.ip = "10.88.0.5".into();
        m.additional_ips = strings(&["fd00:10:88::5"]);
        m.runtime_handler = "runc".into();
        check(
            &m,
            r#"{"Version":"v1","Metadata":{"ID":"s1","Name":"n","Config":{},"NetNSPath":"","IP":"10.88.0.5","AdditionalIPs":["fd00:10:88::5"],"RuntimeHandler":"runc","CNIResult":null,"ProcessLabel":""}}"#,
        );
    }

    #[test]
    fn cni_result_2x_fields_in_go_order() {
        // go-cni 1.1.13 Config adds PciID, SocketPath; CNI 1.3 routes add mtu...
        // Unknown keys go last, sorted.
        let mut m = host_network_metadata();
        m.cni_result = Some(json!({
            "Zeta": 1,
            "Routes": [{"table": 254, "scope": 0, "priority": 10, "mtu": 1500, "gw": "", "dst": "::/0", "advmss": 1460}],
            "Interfaces": {"eth0": {"SocketPath": "", "PciID": "0000:00:01.0", "Sandbox": "", "Mac": "", "IPConfigs": []}},
            "DNS": [{"search": ["a"], "options": ["o"], "nameservers": ["1.1.1.1"], "domain": "d"}]
        }));
        let expected = concat!(
            r#"{"Version":"v1","Metadata":{"ID":"s1","Name":"n","Config":{},"NetNSPath":"","IP":"","AdditionalIPs":null,"RuntimeHandler":"","#,
            r#""CNIResult":{"Interfaces":{"eth0":{"IPConfigs":[],"Mac":"","Sandbox":"","PciID":"0000:00:01.0","SocketPath":""}},"#,
            r#""DNS":[{"nameservers":["1.1.1.1"],"domain":"d","search":["a"],"options":["o"]}],"#,
            r#""Routes":[{"dst":"::/0","gw":"","mtu":1500,"advmss":1460,"priority":10,"table":254,"scope":0}],"Zeta":1},"#,
            r#""ProcessLabel":""}}"#,
        );
        check(&m, expected);
    }

    #[test]
    fn round_trip() {
        let m = kubelet_metadata();
        let any = sandbox_metadata_to_any(&m).unwrap();
        assert_eq!(sandbox_metadata_from_any(SID, &any).unwrap(), m);
        let host = host_network_metadata();
        let any = sandbox_metadata_to_any(&host).unwrap();
        assert_eq!(sandbox_metadata_from_any("s1", &any).unwrap(), host);
    }

    #[test]
    fn reads_hand_written() {
        assert_eq!(read(&hand_written_json()).unwrap(), kubelet_metadata());
    }

    #[test]
    fn reads_empty_additional_ips_list() {
        // A Go `[]string{}` is written `[]`; it reads as empty.
        let m =
            read(r#"{"Version":"v1","Metadata":{"ID":"s1","AdditionalIPs":[],"CNIResult":null}}"#)
                .unwrap();
        assert!(m.additional_ips.is_empty());
        assert_eq!(m.cni_result, None);
    }

    #[test]
    fn an_extension_written_before_the_network_reads_without_ip() {
        // A crash between the record's create and the update after CNI
        // ADD leaves this (containerd 1.7 leaves the same): netns, no IP.
        let m = read(&format!(
            r#"{{"Version":"v1","Metadata":{{"ID":"s1","Name":"n","Config":{{}},"NetNSPath":"{NETNS}","IP":"","AdditionalIPs":null,"RuntimeHandler":"runc","CNIResult":null,"ProcessLabel":""}}}}"#
        ))
        .unwrap();
        assert_eq!(m.netns_path, NETNS);
        assert_eq!((m.ip.as_str(), m.additional_ips.len()), ("", 0));
        assert_eq!(m.cni_result, None);
        assert_eq!(m.runtime_handler, "runc");
    }

    #[test]
    fn unknown_keys_ignored() {
        // `CRIHandler` existed in a 1.7 development build.
        let m = read(r#"{"Version":"v1","Metadata":{"ID":"s1","CRIHandler":"podsandbox","Config":{"hostname":"h","new_field":[1]}}}"#).unwrap();
        assert_eq!(m.config.hostname, "h");
    }

    #[test]
    fn other_versions_rejected() {
        let err =
            read(r#"{"Version":"v2","Metadata":{"ID":"s1","Config":"CgV3ZWItMA=="}}"#).unwrap_err();
        assert!(
            matches!(&err, MetadataError::UnsupportedVersion { kind: KIND, version, .. } if version == "v2"),
            "{err:?}"
        );
    }

    #[test]
    fn wrong_type_url_rejected() {
        let any = Any {
            type_url: "github.com/containerd/cri/pkg/store/container/Metadata".into(),
            value: b"{}".to_vec(),
        };
        let err = sandbox_metadata_from_any(SID, &any).unwrap_err();
        assert!(
            matches!(err, MetadataError::TypeUrl { kind: KIND, .. }),
            "{err:?}"
        );
    }
}
