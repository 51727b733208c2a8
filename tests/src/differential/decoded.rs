//! Reading in both directions, first half: cri-metadata (the decoder cri-server recovers with) reads each side's metadata extension and status file, and the records it yields are shown as JSON documents (`*.metadata.decoded`, `*.status-file.decoded`), so the suite diffs what our decoder makes of containerd's bytes against what it makes of ours. A record that does not decode shows as its error.

use cri_metadata::{
    container_metadata_from_any, decode_status, sandbox_metadata_from_any,
    CONTAINER_METADATA_EXTENSION, SANDBOX_METADATA_EXTENSION,
};
use serde_json::{json, Value};

/// The record cri-metadata reads from the metadata extension `extension`
/// of container `id`.
pub fn metadata(extension: &str, id: &str, any: &prost_types::Any) -> Value {
    match extension {
        SANDBOX_METADATA_EXTENSION => match sandbox_metadata_from_any(id, any) {
            Ok(m) => json!({
                "id": m.id.as_ref(),
                "name": m.name,
                "config": to_value(&m.config),
                "netns_path": m.netns_path,
                "ip": m.ip,
                "additional_ips": m.additional_ips,
                "runtime_handler": m.runtime_handler,
                "cni_result": m.cni_result,
                "process_label": m.process_label,
            }),
            Err(e) => json!(format!("decode error: {e}")),
        },
        CONTAINER_METADATA_EXTENSION => match container_metadata_from_any(id, any) {
            Ok(m) => json!({
                "id": m.id.as_ref(),
                "name": m.name,
                "sandbox_id": m.sandbox_id.as_ref(),
                "config": to_value(&m.config),
                "image_ref": m.image_ref,
                "log_path": m.log_path,
                "stop_signal": m.stop_signal,
                "process_label": m.process_label,
                "image_digest": m.image_digest,
                "image_name": m.image_name,
            }),
            Err(e) => json!(format!("decode error: {e}")),
        },
        other => json!(format!("not a CRI metadata extension: {other}")),
    }
}

/// The status record cri-metadata reads from container `id`'s status file.
pub fn status(id: &str, bytes: &[u8]) -> Value {
    match decode_status(id, bytes) {
        Ok(s) => json!({
            "pid": s.pid,
            "created_at": s.created_at,
            "started_at": s.started_at,
            "finished_at": s.finished_at,
            "exit_code": s.exit_code,
            "reason": s.reason,
            "message": s.message,
            "resources": to_value(&s.resources),
            "state": format!("{:?}", s.state()),
        }),
        Err(e) => json!(format!("decode error: {e}")),
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or_else(|e| json!(format!("not serializable: {e}")))
}
