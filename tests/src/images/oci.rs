//! Content-addressed blobs and the JSON documents of an image: config, manifest (OCI or Docker schema2) and OCI image index.

use anyhow::Result;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::layer::Layer;
use super::media_types as mt;

/// The creation time recorded in configs, fixed for stable digests.
const CREATED: &str = "2023-11-14T22:13:20Z";
/// `$PATH` in every test image's config.
pub const IMAGE_PATH_ENV: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `sha256:<hex>` of `data`.
pub fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A blob and the descriptor fields that point at it.
#[derive(Debug, Clone)]
pub struct Blob {
    pub media_type: String,
    pub digest: String,
    pub data: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: &str, data: Vec<u8>) -> Self {
        Blob {
            media_type: media_type.to_string(),
            digest: digest(&data),
            data,
        }
    }

    pub fn size(&self) -> u64 {
        self.data.len() as u64
    }

    /// `{mediaType, digest, size}`.
    pub fn descriptor(&self) -> Value {
        json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.size() })
    }
}

/// The flavour of manifest to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestFormat {
    Oci,
    DockerSchema2,
}

/// What goes into an image's config besides its layers.
#[derive(Debug, Clone, Default)]
pub struct ImageSpec {
    pub architecture: String,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub user: Option<String>,
    /// `StopSignal`, e.g. `SIGQUIT`.
    pub stop_signal: Option<String>,
    pub labels: Vec<(String, String)>,
    pub created_by: String,
}

/// One single-platform image: manifest, config and layers.
#[derive(Debug, Clone)]
pub struct Image {
    pub architecture: String,
    pub manifest: Blob,
    pub config: Blob,
    pub layers: Vec<Blob>,
    pub diff_ids: Vec<String>,
}

impl Image {
    pub fn build(spec: &ImageSpec, layers: &[&Layer], format: ManifestFormat) -> Result<Image> {
        let (manifest_type, config_type, layer_type) = match format {
            ManifestFormat::Oci => (mt::OCI_MANIFEST, mt::OCI_CONFIG, mt::OCI_LAYER_GZIP),
            ManifestFormat::DockerSchema2 => (
                mt::DOCKER_MANIFEST,
                mt::DOCKER_CONFIG,
                mt::DOCKER_LAYER_GZIP,
            ),
        };
        let diff_ids: Vec<String> = layers.iter().map(|l| digest(&l.tar)).collect();
        let layer_blobs: Vec<Blob> = layers
            .iter()
            .map(|l| Blob::new(layer_type, l.gzip.clone()))
            .collect();

        let mut config = serde_json::Map::new();
        config.insert("Env".into(), json!([IMAGE_PATH_ENV]));
        if let Some(entrypoint) = &spec.entrypoint {
            config.insert("Entrypoint".into(), json!(entrypoint));
        }
        if let Some(cmd) = &spec.cmd {
            config.insert("Cmd".into(), json!(cmd));
        }
        if let Some(user) = &spec.user {
            config.insert("User".into(), json!(user));
        }
        if let Some(signal) = &spec.stop_signal {
            config.insert("StopSignal".into(), json!(signal));
        }
        config.insert("WorkingDir".into(), json!("/"));
        if !spec.labels.is_empty() {
            let labels: serde_json::Map<String, Value> = spec
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            config.insert("Labels".into(), Value::Object(labels));
        }
        let config_doc = json!({
            "created": CREATED,
            "architecture": spec.architecture,
            "os": "linux",
            "config": config,
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
            "history": [{ "created": CREATED, "created_by": spec.created_by }],
        });
        let config = Blob::new(config_type, serde_json::to_vec(&config_doc)?);

        let manifest_doc = json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": config.descriptor(),
            "layers": layer_blobs.iter().map(Blob::descriptor).collect::<Vec<_>>(),
        });
        let manifest = Blob::new(manifest_type, serde_json::to_vec(&manifest_doc)?);
        Ok(Image {
            architecture: spec.architecture.clone(),
            manifest,
            config,
            layers: layer_blobs,
            diff_ids,
        })
    }

    /// Every blob the manifest references, then the manifest.
    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        self.layers
            .iter()
            .chain(std::iter::once(&self.config))
            .chain(std::iter::once(&self.manifest))
    }

    /// The index entry for this image, with its platform.
    pub fn platform_descriptor(&self) -> Value {
        let mut descriptor = self.manifest.descriptor();
        descriptor["platform"] = json!({ "architecture": self.architecture, "os": "linux" });
        descriptor
    }
}

/// An OCI image index over several single-platform images.
#[derive(Debug, Clone)]
pub struct Index {
    pub index: Blob,
    pub images: Vec<Image>,
}

impl Index {
    pub fn build(images: Vec<Image>) -> Result<Index> {
        let doc = json!({
            "schemaVersion": 2,
            "mediaType": mt::OCI_INDEX,
            "manifests": images.iter().map(Image::platform_descriptor).collect::<Vec<_>>(),
        });
        Ok(Index {
            index: Blob::new(mt::OCI_INDEX, serde_json::to_vec(&doc)?),
            images,
        })
    }
}
