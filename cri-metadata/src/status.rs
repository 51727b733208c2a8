//! The container status checkpoint JSON: Go's `versionedStatus{Version;
//! Status}` with `Status` embedded, so the fields are flat; `Starting`,
//! `Removing` and `Unknown` are `json:"-"`.

use std::borrow::Cow;

use cri_api::v1::ContainerResources;
use cri_store::container::ContainerStatus;
use serde::Deserialize;

use super::go_encode::{cri_value, GoValue};
use super::{go_decode, parse_v1, MetadataError, RecordKind, Result, VERSION};

const KIND: RecordKind = RecordKind::ContainerStatus;

/// The checkpoint bytes of `status` (of container `id`, for errors).
pub fn encode_status(id: &str, status: &ContainerStatus) -> Result<Vec<u8>> {
    let resources = cri_value(&status.resources).map_err(|source| MetadataError::Encode {
        kind: KIND,
        id: id.to_owned(),
        source,
    })?;
    let field = |name: &'static str, value: GoValue| (Cow::Borrowed(name), value);
    let value = GoValue::Struct(vec![
        field("Version", GoValue::from(VERSION)),
        field("Pid", GoValue::Uint(status.pid.into())),
        field("CreatedAt", GoValue::Int(status.created_at)),
        field("StartedAt", GoValue::Int(status.started_at)),
        field("FinishedAt", GoValue::Int(status.finished_at)),
        field("ExitCode", GoValue::Int(status.exit_code.into())),
        field("Reason", GoValue::from(status.reason.as_str())),
        field("Message", GoValue::from(status.message.as_str())),
        field("Resources", resources),
    ]);
    Ok(value.to_json())
}

#[derive(Deserialize)]
struct Wire {
    #[serde(rename = "Pid")]
    pid: u32,
    #[serde(rename = "CreatedAt")]
    created_at: i64,
    #[serde(rename = "StartedAt")]
    started_at: i64,
    #[serde(rename = "FinishedAt")]
    finished_at: i64,
    #[serde(rename = "ExitCode")]
    exit_code: i32,
    #[serde(rename = "Reason")]
    reason: String,
    #[serde(rename = "Message")]
    message: String,
    #[serde(rename = "Resources")]
    resources: Option<ContainerResources>,
}

/// The status in checkpoint bytes (of container `id`, for errors). The
/// in-memory flags read as false.
pub fn decode_status(id: &str, bytes: &[u8]) -> Result<ContainerStatus> {
    let value = parse_v1(KIND, id, bytes)?;
    let w: Wire = go_decode::from_value(&value).map_err(|source| MetadataError::Decode {
        kind: KIND,
        id: id.to_owned(),
        source,
    })?;
    Ok(ContainerStatus {
        pid: w.pid,
        created_at: w.created_at,
        started_at: w.started_at,
        finished_at: w.finished_at,
        exit_code: w.exit_code,
        reason: w.reason,
        message: w.message,
        resources: w.resources,
        starting: false,
        removing: false,
        unknown: false,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::HashMap;

    use cri_api::v1::{HugepageLimit, LinuxContainerResources};

    use super::*;

    fn running() -> ContainerStatus {
        ContainerStatus {
            pid: 4242,
            created_at: 1_714_557_600_123_456_789,
            started_at: 1_714_557_601_000_000_001,
            resources: Some(ContainerResources {
                linux: Some(LinuxContainerResources {
                    cpu_period: 100_000,
                    cpu_quota: 50_000,
                    cpu_shares: 512,
                    memory_limit_in_bytes: 134_217_728,
                    oom_score_adj: 968,
                    hugepage_limits: vec![HugepageLimit {
                        page_size: "2MB".into(),
                        limit: 0,
                    }],
                    unified: HashMap::from([
                        ("memory.max".to_owned(), "max".to_owned()),
                        ("memory.high".to_owned(), "100000000".to_owned()),
                    ]),
                    ..Default::default()
                }),
                windows: None,
            }),
            ..ContainerStatus::default()
        }
    }

    fn start_error() -> ContainerStatus {
        ContainerStatus {
            created_at: 1_714_557_600_000_000_000,
            finished_at: 1_714_557_602_000_000_000,
            exit_code: 128,
            reason: "StartError".into(),
            message: r#"failed to create task: "runc" <exit status 1> & more"#.into(),
            ..ContainerStatus::default()
        }
    }

    fn check(status: &ContainerStatus, expected_json: &str) {
        let bytes = encode_status("c1", status).unwrap();
        assert_eq!(String::from_utf8(bytes).unwrap(), expected_json);
    }

    fn read(json: &str) -> Result<ContainerStatus> {
        decode_status("c1", json.as_bytes())
    }

    #[test]
    fn encodes_running() {
        // Flat fields in Status order, no omitempty (FinishedAt 0, empty
        // strings written); Resources uses the CRI struct json (omitempty,
        // `unified` map sorted).
        check(
            &running(),
            concat!(
                r#"{"Version":"v1","Pid":4242,"CreatedAt":1714557600123456789,"StartedAt":1714557601000000001,"#,
                r#""FinishedAt":0,"ExitCode":0,"Reason":"","Message":"","#,
                r#""Resources":{"linux":{"cpu_period":100000,"cpu_quota":50000,"cpu_shares":512,"#,
                r#""memory_limit_in_bytes":134217728,"oom_score_adj":968,"hugepage_limits":[{"page_size":"2MB"}],"#,
                r#""unified":{"memory.high":"100000000","memory.max":"max"}}}}"#,
            ),
        );
    }

    #[test]
    fn encodes_start_error() {
        // nil Resources is `null`; `"`, `<`, `>`, `&` escaped as Go does.
        check(
            &start_error(),
            concat!(
                r#"{"Version":"v1","Pid":0,"CreatedAt":1714557600000000000,"StartedAt":0,"#,
                r#""FinishedAt":1714557602000000000,"ExitCode":128,"Reason":"StartError","#,
                r#""Message":"failed to create task: \"runc\" \u003cexit status 1\u003e \u0026 more","Resources":null}"#,
            ),
        );
    }

    #[test]
    fn in_memory_flags_not_written() {
        let flagged = ContainerStatus {
            starting: true,
            removing: true,
            unknown: true,
            ..start_error()
        };
        let plain = encode_status("c1", &start_error()).unwrap();
        assert_eq!(encode_status("c1", &flagged).unwrap(), plain);
        assert_eq!(decode_status("c1", &plain).unwrap(), start_error());
    }

    #[test]
    fn negative_exit_code() {
        let status = ContainerStatus {
            created_at: 1,
            finished_at: 2,
            exit_code: -1,
            ..ContainerStatus::default()
        };
        check(
            &status,
            r#"{"Version":"v1","Pid":0,"CreatedAt":1,"StartedAt":0,"FinishedAt":2,"ExitCode":-1,"Reason":"","Message":"","Resources":null}"#,
        );
    }

    #[test]
    fn round_trip() {
        for status in [running(), start_error(), ContainerStatus::default()] {
            let bytes = encode_status("c1", &status).unwrap();
            assert_eq!(decode_status("c1", &bytes).unwrap(), status);
        }
    }

    #[test]
    fn reads_unknown_keys_and_missing_fields() {
        let status = read(r#"{"Version":"v1","CreatedAt":5,"Starting":true,"Extra":{}}"#).unwrap();
        assert_eq!(
            status,
            ContainerStatus {
                created_at: 5,
                ..ContainerStatus::default()
            }
        );
    }

    #[test]
    fn other_versions_rejected() {
        let err = read(r#"{"Version":"v0","Pid":1}"#).unwrap_err();
        assert!(
            matches!(&err, MetadataError::UnsupportedVersion { kind: KIND, version, .. } if version == "v0"),
            "{err:?}"
        );
    }

    #[test]
    fn corrupt_rejected() {
        for json in [
            "",
            "{\"Version\":\"v1\",",
            r#"{"Version":"v1","Pid":-1}"#,
            r#"{"Version":"v1","Reason":3}"#,
        ] {
            let err = read(json).unwrap_err();
            assert!(
                matches!(err, MetadataError::Decode { kind: KIND, .. }),
                "{json}: {err:?}"
            );
        }
    }
}
