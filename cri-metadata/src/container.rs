//! The app container metadata extension: `ContainerMetadata` <->
//! `Any{type_url: github.com/containerd/cri/pkg/store/container/Metadata,
//! value: {"Version":"v1","Metadata":{...}}}`.

use std::borrow::Cow;

use cri_api::ids::{ContainerId, SandboxId};
use cri_api::v1::ContainerConfig;
use cri_store::container::ContainerMetadata;
use prost_types::Any;
use serde::Deserialize;

use super::go_encode::{cri_value, GoValue};
use super::{
    check_type_url, go_decode, parse_v1, versioned, MetadataError, RecordKind, Result,
    CONTAINER_METADATA_TYPE_URL,
};

const KIND: RecordKind = RecordKind::ContainerMetadata;

/// The extension value for `metadata`, as containerd 2.x writes it.
pub fn container_metadata_to_any(metadata: &ContainerMetadata) -> Result<Any> {
    Ok(Any {
        type_url: CONTAINER_METADATA_TYPE_URL.to_owned(),
        value: encode(metadata)?,
    })
}

/// A container's CRI config as containerd's Go `encoding/json` writes it
/// (the CRI's field names, `omitempty`): what containerd shows as `config`
/// in a verbose ContainerStatus, the same bytes as inside the metadata
/// extension.
pub fn container_config_json(id: &str, config: &ContainerConfig) -> Result<serde_json::Value> {
    let encode = |source| MetadataError::Encode {
        kind: KIND,
        id: id.to_owned(),
        source,
    };
    let value = cri_value(config).map_err(encode)?;
    serde_json::from_slice(&value.to_json()).map_err(encode)
}

/// The metadata in the extension of containerd container `id` (`id` only
/// names the record in errors).
pub fn container_metadata_from_any(id: &str, any: &Any) -> Result<ContainerMetadata> {
    check_type_url(KIND, CONTAINER_METADATA_TYPE_URL, id, any)?;
    decode(id, &any.value)
}

/// Go `json.Marshal` of containerd's container `Metadata`. The fields have
/// no json tags: Go names, struct order (2.x's, with `ImageDigest` and
/// `ImageName` after `ImageRef`), nothing omitted.
fn encode(m: &ContainerMetadata) -> Result<Vec<u8>> {
    let config = cri_value(&m.config).map_err(|source| MetadataError::Encode {
        kind: KIND,
        id: m.id.to_string(),
        source,
    })?;
    let field = |name: &'static str, value: &str| (Cow::Borrowed(name), GoValue::from(value));
    let metadata = GoValue::Struct(vec![
        field("ID", m.id.as_ref()),
        field("Name", &m.name),
        field("SandboxID", m.sandbox_id.as_ref()),
        (Cow::Borrowed("Config"), config),
        field("ImageRef", &m.image_ref),
        field("ImageDigest", &m.image_digest),
        field("ImageName", &m.image_name),
        field("LogPath", &m.log_path),
        field("StopSignal", &m.stop_signal),
        field("ProcessLabel", &m.process_label),
    ]);
    Ok(versioned(metadata).to_json())
}

/// The Go struct, as 1.7 (without the image fields) and 2.x write it.
#[derive(Deserialize)]
struct Wire {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "SandboxID")]
    sandbox_id: String,
    #[serde(rename = "Config")]
    config: Option<ContainerConfig>,
    #[serde(rename = "ImageRef")]
    image_ref: String,
    #[serde(rename = "ImageDigest")]
    image_digest: String,
    #[serde(rename = "ImageName")]
    image_name: String,
    #[serde(rename = "LogPath")]
    log_path: String,
    #[serde(rename = "StopSignal")]
    stop_signal: String,
    #[serde(rename = "ProcessLabel")]
    process_label: String,
}

#[derive(Deserialize)]
struct Versioned {
    #[serde(rename = "Metadata")]
    metadata: Wire,
}

fn decode(id: &str, bytes: &[u8]) -> Result<ContainerMetadata> {
    let value = parse_v1(KIND, id, bytes)?;
    let Versioned { metadata: w } =
        go_decode::from_value(&value).map_err(|source| MetadataError::Decode {
            kind: KIND,
            id: id.to_owned(),
            source,
        })?;
    Ok(ContainerMetadata {
        id: ContainerId(w.id),
        name: w.name,
        sandbox_id: SandboxId(w.sandbox_id),
        // A nil Config (never written by containerd) reads as empty.
        config: w.config.unwrap_or_default(),
        image_ref: w.image_ref,
        log_path: w.log_path,
        stop_signal: w.stop_signal,
        process_label: w.process_label,
        image_digest: w.image_digest,
        image_name: w.image_name,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::HashMap;

    use cri_api::v1::{
        Capability, ContainerMetadata as CriContainerMetadata, Device, HugepageLimit, ImageSpec,
        Int64Value, KeyValue, LinuxContainerConfig, LinuxContainerResources,
        LinuxContainerSecurityContext, Mount, NamespaceOption, SecurityProfile,
    };

    use super::*;

    #[test]
    fn config_json_omits_what_go_omits() {
        let config = ContainerConfig {
            metadata: Some(cri_api::v1::ContainerMetadata {
                name: "app".into(),
                attempt: 0,
            }),
            args: vec!["sleep".into(), "1".into()],
            ..ContainerConfig::default()
        };
        let json = container_config_json("c1", &config).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"metadata": {"name": "app"}, "args": ["sleep", "1"]})
        );
    }

    const CID: &str = "3f2a5b7c9d1e4f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";
    const SID: &str = "9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b";
    const POD_UID: &str = "7c3e1a52-96d4-4f0b-a1c2-5e6f7a8b9c0d";
    const IMAGE_ID: &str =
        "sha256:4af177a024eb8bd0e5fa5b6b5f8ae1b5f1fd0c5e58cc7bb5b2a0a43a36e0e3c6";

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    /// A ContainerConfig as the kubelet sends it for an nginx container.
    fn kubelet_config() -> ContainerConfig {
        ContainerConfig {
            metadata: Some(CriContainerMetadata { name: "nginx".into(), attempt: 1 }),
            image: Some(ImageSpec {
                image: IMAGE_ID.into(),
                user_specified_image: "nginx:1.25".into(),
                ..Default::default()
            }),
            command: strings(&["nginx"]),
            args: strings(&["-g", "daemon off;"]),
            working_dir: "/usr/share/nginx/html".into(),
            envs: vec![
                KeyValue { key: "KUBERNETES_SERVICE_HOST".into(), value: "10.96.0.1".into() },
                KeyValue { key: "KUBERNETES_PORT".into(), value: "tcp://10.96.0.1:443".into() },
                KeyValue { key: "EMPTY".into(), value: String::new() },
            ],
            mounts: vec![
                Mount {
                    container_path: "/var/run/secrets/kubernetes.io/serviceaccount".into(),
                    host_path: "/var/lib/kubelet/pods/7c3e/volumes/kubernetes.io~projected/kube-api-access-x".into(),
                    readonly: true,
                    ..Default::default()
                },
                Mount {
                    container_path: "/etc/hosts".into(),
                    host_path: "/var/lib/kubelet/pods/7c3e/etc-hosts".into(),
                    ..Default::default()
                },
                Mount {
                    container_path: "/data".into(),
                    host_path: "/mnt/data".into(),
                    selinux_relabel: true,
                    propagation: 2, // PROPAGATION_BIDIRECTIONAL
                    ..Default::default()
                },
            ],
            devices: vec![Device {
                container_path: "/dev/fuse".into(),
                host_path: "/dev/fuse".into(),
                permissions: "rwm".into(),
            }],
            labels: map(&[
                ("io.kubernetes.pod.uid", POD_UID),
                ("io.kubernetes.pod.name", "web-0"),
                ("io.kubernetes.pod.namespace", "default"),
                ("io.kubernetes.container.name", "nginx"),
            ]),
            annotations: map(&[
                ("io.kubernetes.pod.terminationGracePeriod", "30"),
                ("io.kubernetes.container.terminationMessagePolicy", "File"),
                ("io.kubernetes.container.terminationMessagePath", "/dev/termination-log"),
                ("io.kubernetes.container.restartCount", "1"),
                ("io.kubernetes.container.ports", r#"[{"name":"http","containerPort":80,"protocol":"TCP"}]"#),
                ("io.kubernetes.container.hash", "5b1f3c2a"),
            ]),
            log_path: "nginx/1.log".into(),
            stdin: false,
            stdin_once: false,
            tty: true,
            linux: Some(LinuxContainerConfig {
                resources: Some(LinuxContainerResources {
                    cpu_period: 100_000,
                    cpu_quota: 50_000,
                    cpu_shares: 512,
                    memory_limit_in_bytes: 134_217_728,
                    oom_score_adj: 968,
                    hugepage_limits: vec![
                        HugepageLimit { page_size: "2MB".into(), limit: 0 },
                        HugepageLimit { page_size: "1GB".into(), limit: 0 },
                    ],
                    ..Default::default()
                }),
                security_context: Some(LinuxContainerSecurityContext {
                    capabilities: Some(Capability {
                        add_capabilities: strings(&["NET_BIND_SERVICE"]),
                        drop_capabilities: strings(&["ALL"]),
                        ..Default::default()
                    }),
                    namespace_options: Some(NamespaceOption { pid: 1, ..Default::default() }),
                    run_as_user: Some(Int64Value { value: 0 }),
                    no_new_privs: true,
                    masked_paths: strings(&["/proc/acpi", "/proc/kcore"]),
                    readonly_paths: strings(&["/proc/bus", "/proc/sys"]),
                    seccomp: Some(SecurityProfile::default()),
                    apparmor: Some(SecurityProfile::default()),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }
    }

    fn kubelet_metadata() -> ContainerMetadata {
        ContainerMetadata {
            id: ContainerId::from(CID),
            name: format!("nginx_web-0_default_{POD_UID}_1"),
            sandbox_id: SandboxId::from(SID),
            config: kubelet_config(),
            image_ref: IMAGE_ID.into(),
            log_path: format!("/var/log/pods/default_web-0_{POD_UID}/nginx/1.log"),
            stop_signal: "SIGQUIT".into(),
            process_label: String::new(),
            image_digest: "sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31"
                .into(),
            image_name: "docker.io/library/nginx:1.25".into(),
        }
    }

    /// The value of `kubelet_config()` (written by hand from Go's rules) as
    /// Go's `encoding/json` writes the generated struct. Rules exercised:
    /// - struct fields in proto declaration order with proto names;
    /// - omitempty: `attempt` kept (1), `value` of EMPTY, `readonly:false`,
    ///   `propagation:0`, `stdin`, `stdin_once`, `limit:0`, `privileged`,
    ///   `cpuset_*`, `unified`, `memory_swap_limit_in_bytes` dropped;
    /// - enums as integers (`propagation:2`, `pid:1` = CONTAINER);
    /// - a non-nil message whose fields are all zero is `{}`
    ///   (`run_as_user` = `&Int64Value{Value: 0}`, `seccomp`, `apparmor`);
    /// - maps sorted by key; `"` in a value escaped as `\"`.
    const KUBELET_CONFIG_JSON: &str = concat!(
        r#"{"metadata":{"name":"nginx","attempt":1},"#,
        r#""image":{"image":"sha256:4af177a024eb8bd0e5fa5b6b5f8ae1b5f1fd0c5e58cc7bb5b2a0a43a36e0e3c6","user_specified_image":"nginx:1.25"},"#,
        r#""command":["nginx"],"args":["-g","daemon off;"],"working_dir":"/usr/share/nginx/html","#,
        r#""envs":[{"key":"KUBERNETES_SERVICE_HOST","value":"10.96.0.1"},{"key":"KUBERNETES_PORT","value":"tcp://10.96.0.1:443"},{"key":"EMPTY"}],"#,
        r#""mounts":[{"container_path":"/var/run/secrets/kubernetes.io/serviceaccount","host_path":"/var/lib/kubelet/pods/7c3e/volumes/kubernetes.io~projected/kube-api-access-x","readonly":true},"#,
        r#"{"container_path":"/etc/hosts","host_path":"/var/lib/kubelet/pods/7c3e/etc-hosts"},"#,
        r#"{"container_path":"/data","host_path":"/mnt/data","selinux_relabel":true,"propagation":2}],"#,
        r#""devices":[{"container_path":"/dev/fuse","host_path":"/dev/fuse","permissions":"rwm"}],"#,
        r#""labels":{"io.kubernetes.container.name":"nginx","io.kubernetes.pod.name":"web-0","io.kubernetes.pod.namespace":"default","io.kubernetes.pod.uid":"7c3e1a52-96d4-4f0b-a1c2-5e6f7a8b9c0d"},"#,
        r#""annotations":{"io.kubernetes.container.hash":"5b1f3c2a","#,
        r#""io.kubernetes.container.ports":"[{\"name\":\"http\",\"containerPort\":80,\"protocol\":\"TCP\"}]","#,
        r#""io.kubernetes.container.restartCount":"1","#,
        r#""io.kubernetes.container.terminationMessagePath":"/dev/termination-log","#,
        r#""io.kubernetes.container.terminationMessagePolicy":"File","#,
        r#""io.kubernetes.pod.terminationGracePeriod":"30"},"#,
        r#""log_path":"nginx/1.log","tty":true,"#,
        r#""linux":{"resources":{"cpu_period":100000,"cpu_quota":50000,"cpu_shares":512,"memory_limit_in_bytes":134217728,"oom_score_adj":968,"hugepage_limits":[{"page_size":"2MB"},{"page_size":"1GB"}]},"#,
        r#""security_context":{"capabilities":{"add_capabilities":["NET_BIND_SERVICE"],"drop_capabilities":["ALL"]},"#,
        r#""namespace_options":{"pid":1},"run_as_user":{},"no_new_privs":true,"#,
        r#""masked_paths":["/proc/acpi","/proc/kcore"],"readonly_paths":["/proc/bus","/proc/sys"],"seccomp":{},"apparmor":{}}}}"#,
    );

    /// The whole extension value, containerd 2.x layout. Rules: the
    /// wrapper is `{"Version":"v1","Metadata":...}`; the inner struct has
    /// no json tags, so Go names in struct order and empty strings kept.
    fn hand_written_metadata_json() -> String {
        format!(
            concat!(
                r#"{{"Version":"v1","Metadata":{{"ID":"{cid}","Name":"nginx_web-0_default_{uid}_1","SandboxID":"{sid}","#,
                r#""Config":{config},"ImageRef":"{image}","#,
                r#""ImageDigest":"sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31","#,
                r#""ImageName":"docker.io/library/nginx:1.25","#,
                r#""LogPath":"/var/log/pods/default_web-0_{uid}/nginx/1.log","StopSignal":"SIGQUIT","ProcessLabel":""}}}}"#,
            ),
            cid = CID,
            sid = SID,
            uid = POD_UID,
            config = KUBELET_CONFIG_JSON,
            image = IMAGE_ID,
        )
    }

    fn any(json: &str) -> Any {
        Any {
            type_url: CONTAINER_METADATA_TYPE_URL.into(),
            value: json.as_bytes().to_vec(),
        }
    }

    /// Encodes `metadata` and compares with the hand-written JSON.
    fn check(metadata: &ContainerMetadata, expected_json: &str) {
        let any = container_metadata_to_any(metadata).unwrap();
        assert_eq!(
            any.type_url,
            "github.com/containerd/cri/pkg/store/container/Metadata"
        );
        assert_eq!(String::from_utf8(any.value).unwrap(), expected_json);
    }

    fn read(json: &str) -> Result<ContainerMetadata> {
        container_metadata_from_any(CID, &any(json))
    }

    fn empty_metadata() -> ContainerMetadata {
        ContainerMetadata {
            id: ContainerId::from("c1"),
            name: String::new(),
            sandbox_id: SandboxId::from(""),
            config: ContainerConfig::default(),
            image_ref: String::new(),
            log_path: String::new(),
            stop_signal: String::new(),
            process_label: String::new(),
            image_digest: String::new(),
            image_name: String::new(),
        }
    }

    #[test]
    fn encodes_kubelet_container() {
        check(&kubelet_metadata(), &hand_written_metadata_json());
    }

    #[test]
    fn empty_fields_are_written() {
        // No omitempty at the Metadata level; an empty config is `{}`.
        check(
            &empty_metadata(),
            r#"{"Version":"v1","Metadata":{"ID":"c1","Name":"","SandboxID":"","Config":{},"ImageRef":"","ImageDigest":"","ImageName":"","LogPath":"","StopSignal":"","ProcessLabel":""}}"#,
        );
    }

    #[test]
    fn html_characters_escaped() {
        // Go's default HTMLEscape: <, >, & as \u003c, \u003e, \u0026.
        let mut m = empty_metadata();
        m.config.args = strings(&["-c", "nginx -t && exec nginx > /dev/stdout <&-"]);
        m.stop_signal = "SIGTERM\u{2028}".into();
        check(
            &m,
            concat!(
                r#"{"Version":"v1","Metadata":{"ID":"c1","Name":"","SandboxID":"","#,
                r#""Config":{"args":["-c","nginx -t \u0026\u0026 exec nginx \u003e /dev/stdout \u003c\u0026-"]},"#,
                r#""ImageRef":"","ImageDigest":"","ImageName":"","LogPath":"","StopSignal":"SIGTERM\u2028","ProcessLabel":""}}"#,
            ),
        );
    }

    #[test]
    fn round_trip() {
        let m = kubelet_metadata();
        let any = container_metadata_to_any(&m).unwrap();
        assert_eq!(container_metadata_from_any(CID, &any).unwrap(), m);
    }

    #[test]
    fn reads_hand_written() {
        assert_eq!(
            read(&hand_written_metadata_json()).unwrap(),
            kubelet_metadata()
        );
    }

    #[test]
    fn reads_containerd_1_7_layout() {
        // 1.7 has no ImageDigest/ImageName; its config is written the same.
        let json = format!(
            concat!(
                r#"{{"Version":"v1","Metadata":{{"ID":"{cid}","Name":"n","SandboxID":"{sid}","Config":{config},"#,
                r#""ImageRef":"{image}","LogPath":"/l","StopSignal":"SIGTERM","ProcessLabel":"system_u:system_r:container_t:s0:c1,c2"}}}}"#,
            ),
            cid = CID,
            sid = SID,
            config = KUBELET_CONFIG_JSON,
            image = IMAGE_ID
        );
        let m = read(&json).unwrap();
        assert_eq!(m.config, kubelet_config());
        assert_eq!((m.image_digest.as_str(), m.image_name.as_str()), ("", ""));
        assert_eq!(m.process_label, "system_u:system_r:container_t:s0:c1,c2");
        assert_eq!(m.sandbox_id, SandboxId::from(SID));
    }

    #[test]
    fn reads_containerd_2_image_fields() {
        let m = read(r#"{"Version":"v1","Metadata":{"ID":"c1","ImageDigest":"sha256:d","ImageName":"docker.io/library/busybox:1.36","Config":{}}}"#).unwrap();
        assert_eq!(m.image_digest, "sha256:d");
        assert_eq!(m.image_name, "docker.io/library/busybox:1.36");
    }

    #[test]
    fn unknown_keys_ignored() {
        // e.g. `Mode` from a 1.7 development build, `stop_signal` in a 2.x config.
        let m = read(r#"{"Version":"v1","Future":1,"Metadata":{"ID":"c1","Mode":"x","Config":{"stop_signal":15,"tty":true}}}"#).unwrap();
        assert_eq!(m.id, ContainerId::from("c1"));
        assert!(m.config.tty);
    }

    #[test]
    fn keys_case_insensitive() {
        let m = read(r#"{"version":"v1","metadata":{"id":"c1","sandboxid":"s1","CONFIG":{"Working_Dir":"/w"}}}"#).unwrap();
        assert_eq!((m.id.as_ref(), m.sandbox_id.as_ref()), ("c1", "s1"));
        assert_eq!(m.config.working_dir, "/w");
    }

    #[test]
    fn null_config_and_missing_fields_read_as_empty() {
        let m = read(r#"{"Version":"v1","Metadata":{"ID":"c1","Config":null}}"#).unwrap();
        assert_eq!(m, empty_metadata());
    }

    #[test]
    fn other_versions_rejected() {
        for (json, version) in [
            (
                r#"{"Version":"v2","Metadata":{"ID":"c1","Config":"CgVuZ2lueA=="}}"#,
                "v2",
            ),
            (r#"{"Metadata":{"ID":"c1"}}"#, ""),
        ] {
            match read(json) {
                Err(MetadataError::UnsupportedVersion {
                    kind,
                    id,
                    version: v,
                }) => {
                    assert_eq!((kind, id.as_str(), v.as_str()), (KIND, CID, version));
                }
                other => panic!("{json}: {other:?}"),
            }
        }
    }

    #[test]
    fn wrong_type_url_rejected() {
        let mut a = any(r#"{"Version":"v1","Metadata":{}}"#);
        a.type_url =
            "type.googleapis.com/github.com/containerd/cri/pkg/store/container/Metadata".into();
        let err = container_metadata_from_any(CID, &a).unwrap_err();
        assert!(
            matches!(err, MetadataError::TypeUrl { kind: KIND, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn malformed_json_rejected() {
        for json in ["", "{", "[]", r#"{"Version":"v1","Metadata":{"ID":7}}"#] {
            let err = read(json).unwrap_err();
            assert!(
                matches!(err, MetadataError::Decode { kind: KIND, .. }),
                "{json}: {err:?}"
            );
        }
    }
}
