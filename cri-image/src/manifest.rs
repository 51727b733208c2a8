//! Image manifests, indexes and configs: media types, decoding (OCI and Docker schema 2), picking the manifest for this node's platform from an index, and chain ids.

use cri_api::containerd::Descriptor;
use oci_spec::image::{Arch, ImageConfiguration, ImageIndex, ImageManifest, Os, Platform};
use sha2::{Digest as _, Sha256};

/// The media types a pull understands.
pub mod media {
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_SCHEMA1_MANIFEST: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";

    /// What a manifest request accepts.
    pub const ACCEPTED_MANIFESTS: &[&str] =
        &[DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX];
}

pub fn is_index_type(media_type: &str) -> bool {
    media_type == media::OCI_INDEX || media_type == media::DOCKER_LIST
}

pub fn is_manifest_type(media_type: &str) -> bool {
    media_type == media::OCI_MANIFEST || media_type == media::DOCKER_MANIFEST
}

pub fn is_config_type(media_type: &str) -> bool {
    media_type == media::OCI_CONFIG || media_type == media::DOCKER_CONFIG
}

/// containerd's `IsLayerType`.
pub fn is_layer_type(media_type: &str) -> bool {
    media_type.starts_with("application/vnd.oci.image.layer.")
        || media_type.starts_with("application/vnd.docker.image.rootfs.")
}

/// The media type of a manifest body: its `mediaType` field, else what
/// its shape says (an OCI index has `manifests`, a manifest `config`).
pub fn detect_media_type(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        #[serde(rename = "schemaVersion")]
        schema_version: Option<u32>,
        manifests: Option<serde_json::Value>,
        config: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(body).ok()?;
    if let Some(mt) = probe.media_type.filter(|m| !m.is_empty()) {
        return Some(mt);
    }
    if probe.schema_version == Some(1) {
        return Some(media::DOCKER_SCHEMA1_MANIFEST.to_owned());
    }
    if probe.manifests.is_some() {
        Some(media::OCI_INDEX.to_owned())
    } else if probe.config.is_some() {
        Some(media::OCI_MANIFEST.to_owned())
    } else {
        None
    }
}

pub fn parse_index(body: &[u8]) -> Result<ImageIndex, String> {
    serde_json::from_slice(body).map_err(|e| format!("decode index: {e}"))
}

pub fn parse_manifest(body: &[u8]) -> Result<ImageManifest, String> {
    serde_json::from_slice(body).map_err(|e| format!("decode manifest: {e}"))
}

pub fn parse_config(body: &[u8]) -> Result<ImageConfiguration, String> {
    serde_json::from_slice(body).map_err(|e| format!("decode image config: {e}"))
}

/// An OCI descriptor as the containerd seam carries it.
pub fn to_seam(desc: &oci_spec::image::Descriptor) -> Descriptor {
    Descriptor {
        media_type: desc.media_type().to_string(),
        digest: desc.digest().to_string(),
        size: i64::try_from(desc.size()).unwrap_or(i64::MAX),
        annotations: desc.annotations().clone().unwrap_or_default(),
    }
}

/// The platform images are pulled for: this node's (`linux/<GOARCH>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPlatform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl HostPlatform {
    /// `linux` and the Go name of the architecture this binary runs on.
    pub fn current() -> Self {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" => ("ppc64le", None),
            "riscv64" => ("riscv64", None),
            "s390x" => ("s390x", None),
            other => (other, None),
        };
        Self {
            os: "linux".to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
        }
    }

    /// `os/arch[/variant]`.
    pub fn describe(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }

    /// How well `platform` fits: `None` when it does not run here, lower
    /// is better (an exact variant beats a missing one).
    fn rank(&self, platform: &Platform) -> Option<u8> {
        let os = os_name(platform.os());
        let arch = arch_name(platform.architecture());
        if os != self.os || arch != self.architecture {
            return None;
        }
        let variant = platform.variant().as_deref().unwrap_or("");
        match (&self.variant, variant) {
            (None, "") => Some(0),
            (None, _) => Some(1),
            (Some(want), v) if v == want => Some(0),
            (Some(_), "") => Some(1),
            // arm64 images are v8 unless they say otherwise.
            (Some(_), _) => None,
        }
    }

    /// containerd's `FilterPlatforms` + `LimitManifests(.., 1)`: the best
    /// matching manifest of `index`; entries without a platform match
    /// anything but rank last.
    pub fn select<'a>(&self, index: &'a ImageIndex) -> Option<&'a oci_spec::image::Descriptor> {
        index
            .manifests()
            .iter()
            .filter_map(|d| match d.platform() {
                Some(p) => self.rank(p).map(|r| (r, d)),
                None => Some((u8::MAX, d)),
            })
            .min_by_key(|(rank, _)| *rank)
            .map(|(_, d)| d)
    }

    /// Whether an image config for `os`/`architecture` runs here.
    pub fn runs(&self, config: &ImageConfiguration) -> bool {
        os_name(config.os()) == self.os && arch_name(config.architecture()) == self.architecture
    }
}

fn os_name(os: &Os) -> String {
    os.to_string()
}

fn arch_name(arch: &Arch) -> String {
    arch.to_string()
}

/// The OCI chain id of layers with these diff ids: the first diff id,
/// then `sha256(parent + " " + diff id)` for each next one.
pub fn chain_id(diff_ids: &[String]) -> String {
    let mut chain = String::new();
    for diff_id in diff_ids {
        chain = if chain.is_empty() {
            diff_id.clone()
        } else {
            format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{chain} {diff_id}")))
            )
        };
    }
    chain
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn index(entries: &[(&str, &str, Option<&str>)]) -> ImageIndex {
        let manifests: Vec<serde_json::Value> = entries
            .iter()
            .enumerate()
            .map(|(i, (os, arch, variant))| {
                let mut platform = serde_json::json!({"os": os, "architecture": arch});
                if let Some(v) = variant {
                    platform["variant"] = serde_json::json!(v);
                }
                serde_json::json!({
                    "mediaType": media::OCI_MANIFEST,
                    "digest": format!("sha256:{}", format!("{i}").repeat(64)),
                    "size": 10,
                    "platform": platform,
                })
            })
            .collect();
        let body = serde_json::json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": manifests});
        parse_index(body.to_string().as_bytes()).unwrap()
    }

    fn amd64() -> HostPlatform {
        HostPlatform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }

    #[test]
    fn picks_the_host_platform() {
        let idx = index(&[
            ("linux", "arm64", Some("v8")),
            ("linux", "amd64", None),
            ("windows", "amd64", None),
        ]);
        let chosen = amd64().select(&idx).unwrap();
        assert!(chosen.digest().to_string().starts_with("sha256:1111"));
        let arm = HostPlatform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: Some("v8".into()),
        };
        assert!(arm
            .select(&idx)
            .unwrap()
            .digest()
            .to_string()
            .starts_with("sha256:0000"));
        let none = index(&[("linux", "s390x", None)]);
        assert!(amd64().select(&none).is_none());
    }

    #[test]
    fn detects_media_types() {
        assert_eq!(
            detect_media_type(br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#).as_deref(),
            Some(media::DOCKER_MANIFEST)
        );
        assert_eq!(
            detect_media_type(br#"{"schemaVersion":2,"manifests":[]}"#).as_deref(),
            Some(media::OCI_INDEX)
        );
        assert_eq!(
            detect_media_type(br#"{"schemaVersion":2,"config":{}}"#).as_deref(),
            Some(media::OCI_MANIFEST)
        );
        assert_eq!(
            detect_media_type(br#"{"schemaVersion":1}"#).as_deref(),
            Some(media::DOCKER_SCHEMA1_MANIFEST)
        );
        assert_eq!(detect_media_type(b"not json"), None);
    }

    #[test]
    fn chain_ids() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        assert_eq!(chain_id(std::slice::from_ref(&a)), a);
        assert_eq!(
            chain_id(&[a.clone(), b.clone()]),
            sha256_digest(format!("{a} {b}").as_bytes())
        );
        assert_eq!(chain_id(&[]), "");
    }

    #[test]
    fn media_type_classes() {
        assert!(is_layer_type(media::OCI_LAYER_ZSTD));
        assert!(is_layer_type(media::DOCKER_LAYER_GZIP));
        assert!(is_layer_type(
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
        ));
        assert!(!is_layer_type(media::OCI_CONFIG));
        assert!(is_config_type(media::DOCKER_CONFIG));
        assert!(is_index_type(media::DOCKER_LIST));
        assert!(is_manifest_type(media::OCI_MANIFEST));
    }
}
