//! The data containerd's CRI plugin keeps about containers and sandboxes,
//! in its exact formats (compat.md §2, §3), so records written by either
//! side load in the other: the container and sandbox metadata extensions
//! (`prost_types::Any` holding Go `encoding/json` bytes) and the container
//! `status` checkpoint file.
//!
//! Writes follow containerd 2.x byte for byte (1.7 writes the same, minus
//! the 2.x-only keys). Reads accept what 1.7 and 2.x write, with Go's
//! `json.Unmarshal` rules, and refuse a `Version` other than `v1`.
#![doc = include_str!("../README.md")]

mod checkpoint;
mod container;
#[cfg(test)]
mod containerd_fixtures;
mod error;
mod go_decode;
mod go_encode;
mod sandbox;
mod status;

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

pub use checkpoint::StatusCheckpoints;
pub use container::{
    container_config_json, container_metadata_from_any, container_metadata_to_any,
};
pub use error::{MetadataError, RecordKind, Result};
pub use sandbox::{sandbox_metadata_from_any, sandbox_metadata_to_any};
pub use status::{decode_status, encode_status};

use go_encode::GoValue;

/// Extension key of the app container metadata on the containerd container.
pub const CONTAINER_METADATA_EXTENSION: &str = "io.cri-containerd.container.metadata";
/// Extension key of the sandbox metadata on the pause container (and, in
/// containerd 2.x, `metadata` on the containerd Sandbox record).
pub const SANDBOX_METADATA_EXTENSION: &str = "io.cri-containerd.sandbox.metadata";
/// `type_url` of the container metadata `Any`: containerd's typeurl
/// registration path, without a `type.googleapis.com/` prefix.
pub const CONTAINER_METADATA_TYPE_URL: &str =
    "github.com/containerd/cri/pkg/store/container/Metadata";
/// `type_url` of the sandbox metadata `Any`.
pub const SANDBOX_METADATA_TYPE_URL: &str = "github.com/containerd/cri/pkg/store/sandbox/Metadata";
/// The only metadata and status version containerd reads and writes.
pub const VERSION: &str = "v1";

/// `{"Version":"v1","Metadata":<metadata>}`: Go's `versionedMetadata`.
/// Fails unless `any` carries `expected`, the type URL of `kind`.
fn check_type_url(
    kind: RecordKind,
    expected: &'static str,
    id: &str,
    any: &prost_types::Any,
) -> Result<()> {
    if any.type_url == expected {
        return Ok(());
    }
    Err(MetadataError::TypeUrl {
        kind,
        id: id.to_owned(),
        expected,
        found: any.type_url.clone(),
    })
}

fn versioned(metadata: GoValue) -> GoValue {
    GoValue::Struct(vec![
        (Cow::Borrowed("Version"), GoValue::from(VERSION)),
        (Cow::Borrowed("Metadata"), metadata),
    ])
}

#[derive(Deserialize)]
struct VersionField {
    #[serde(rename = "Version")]
    version: String,
}

/// Parses JSON bytes and checks the `Version` key, as Go's `UnmarshalJSON`
/// of the versioned records does (though Go decodes the rest first).
fn parse_v1(kind: RecordKind, id: &str, bytes: &[u8]) -> Result<Value> {
    let decode = |source| MetadataError::Decode {
        kind,
        id: id.to_owned(),
        source,
    };
    let value: Value = serde_json::from_slice(bytes).map_err(decode)?;
    let VersionField { version } = go_decode::from_value(&value).map_err(decode)?;
    if version != VERSION {
        return Err(MetadataError::UnsupportedVersion {
            kind,
            id: id.to_owned(),
            version,
        });
    }
    Ok(value)
}
