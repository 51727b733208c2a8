//! The test images (busybox from the host's busybox-static, a pause image from `assets/pause.c`, a Docker schema2 variant and a two-platform index; critest's images in `critest`), built without downloads, pushed to a [`Registry`] or written as an OCI image-layout archive for `ctr images import`.

pub mod critest;
pub mod layer;
pub mod oci;
pub mod pause;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::{anyhow, Context, Result};
use serde_json::json;

use crate::registry::{Registry, RegistryClient};
use oci::{Blob, Image, ImageSpec, Index, ManifestFormat};

/// The media types the harness writes.
pub mod media_types {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    /// Every manifest and index type, for `Accept` headers.
    pub const ALL_MANIFESTS: [&str; 4] = [
        OCI_MANIFEST,
        OCI_INDEX,
        DOCKER_MANIFEST,
        DOCKER_MANIFEST_LIST,
    ];
}

/// Default names in the archive `make run` imports.
pub const DEFAULT_BUSYBOX_NAME: &str = "docker.io/library/busybox:latest";
pub const DEFAULT_PAUSE_NAME: &str = "registry.k8s.io/pause:3.8";

/// The host architecture as Go (and OCI platforms) name it.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The second architecture in the multi-platform index: never the host's.
pub fn foreign_arch() -> &'static str {
    if host_arch() == "arm64" {
        "s390x"
    } else {
        "arm64"
    }
}

/// Every test image, built once per test process.
#[derive(Debug)]
pub struct ImageSet {
    /// busybox for the host architecture, OCI media types.
    pub busybox: Image,
    /// The same layer with Docker schema2 media types; its config carries an
    /// extra label, so it is a different image (id) from `busybox`.
    pub busybox_docker: Image,
    /// An OCI index: `busybox` plus the same layer labelled [`foreign_arch`].
    pub busybox_multiarch: Index,
    /// The pause image, `Entrypoint ["/pause"]`, user 65535.
    pub pause: Image,
}

impl ImageSet {
    fn build() -> Result<ImageSet> {
        let busybox_layer = layer::busybox_layer()?;
        let pause_layer = layer::pause_layer(pause::binary()?)?;
        let busybox_spec = |arch: &str| ImageSpec {
            architecture: arch.to_string(),
            cmd: Some(vec!["sh".into()]),
            created_by: "cri-tests: busybox-static from the host".into(),
            ..ImageSpec::default()
        };
        let busybox = Image::build(
            &busybox_spec(host_arch()),
            &[&busybox_layer],
            ManifestFormat::Oci,
        )?;
        let foreign = Image::build(
            &busybox_spec(foreign_arch()),
            &[&busybox_layer],
            ManifestFormat::Oci,
        )?;
        let mut docker_spec = busybox_spec(host_arch());
        docker_spec
            .labels
            .push(("io.cri-tests.variant".into(), "docker-schema2".into()));
        let busybox_docker = Image::build(
            &docker_spec,
            &[&busybox_layer],
            ManifestFormat::DockerSchema2,
        )?;
        let pause = Image::build(
            &ImageSpec {
                architecture: host_arch().to_string(),
                entrypoint: Some(vec!["/pause".into()]),
                user: Some("65535:65535".into()),
                created_by: "cri-tests: gcc -static assets/pause.c".into(),
                ..ImageSpec::default()
            },
            &[&pause_layer],
            ManifestFormat::Oci,
        )?;
        Ok(ImageSet {
            busybox_multiarch: Index::build(vec![busybox.clone(), foreign])?,
            busybox,
            busybox_docker,
            pause,
        })
    }

    /// The set for this process, built on first use (blocking: compiles and
    /// compresses).
    pub fn get() -> Result<Arc<ImageSet>> {
        static SET: OnceLock<Result<Arc<ImageSet>, String>> = OnceLock::new();
        SET.get_or_init(|| {
            ImageSet::build()
                .map(Arc::new)
                .map_err(|e| format!("{e:#}"))
        })
        .clone()
        .map_err(|e| anyhow!("building the test images: {e}"))
    }

    /// Like [`get`](Self::get), off the async runtime's worker threads.
    pub async fn get_async() -> Result<Arc<ImageSet>> {
        tokio::task::spawn_blocking(ImageSet::get).await?
    }
}

/// Digests of one single-platform image, for comparing with what the CRI
/// reports (`Image.id` is the config digest; `image_ref` / `repo_digests`
/// use the manifest digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDigests {
    pub manifest: String,
    pub manifest_media_type: String,
    pub manifest_size: u64,
    pub config: String,
    pub layers: Vec<String>,
    pub diff_ids: Vec<String>,
    pub architecture: String,
}

impl From<&Image> for ImageDigests {
    fn from(image: &Image) -> Self {
        ImageDigests {
            manifest: image.manifest.digest.clone(),
            manifest_media_type: image.manifest.media_type.clone(),
            manifest_size: image.manifest.size(),
            config: image.config.digest.clone(),
            layers: image.layers.iter().map(|l| l.digest.clone()).collect(),
            diff_ids: image.diff_ids.clone(),
            architecture: image.architecture.clone(),
        }
    }
}

/// The references the harness pushed to a registry, and their digests.
#[derive(Debug, Clone)]
pub struct TestImages {
    /// `host:port` of the registry.
    pub registry: String,
    /// `<host>/library/busybox:latest` (OCI media types).
    pub busybox: String,
    /// Every reference to the very same busybox manifest: `library/busybox`
    /// `:latest` and `:1.35`, and `e2e/busybox:latest`.
    pub busybox_tags: Vec<String>,
    pub busybox_digests: ImageDigests,
    /// `<host>/pause:3.8`.
    pub pause: String,
    /// `<host>/pause:3.8` and `<host>/pause:latest`.
    pub pause_tags: Vec<String>,
    pub pause_digests: ImageDigests,
    /// `<host>/library/busybox:multiarch`: an OCI index whose host-arch entry
    /// is the busybox manifest above and whose other entry is [`foreign_arch`].
    pub multiarch: String,
    pub multiarch_index_digest: String,
    /// One entry per platform, host first.
    pub multiarch_platforms: Vec<ImageDigests>,
    /// `<host>/busybox:docker`: Docker schema2 media types (a different
    /// config, hence image id, from `busybox`).
    pub docker_schema2: String,
    pub docker_schema2_digests: ImageDigests,
}

impl TestImages {
    /// `<repository>@<manifest digest>` of `reference` as the CRI reports it
    /// in `repo_digests` (the tag replaced by the digest).
    pub fn repo_digest(reference: &str, digests: &ImageDigests) -> String {
        format!("{}@{}", repository(reference), digests.manifest)
    }
}

/// `host/repo` of `host/repo:tag` (a `:` in the host's port is kept).
pub fn repository(reference: &str) -> &str {
    let name_start = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[name_start..].find(':') {
        Some(i) => &reference[..name_start + i],
        None => reference,
    }
}

/// The tag of `host/repo:tag`, `latest` when there is none.
pub fn tag(reference: &str) -> &str {
    let name_start = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[name_start..].find(':') {
        Some(i) => &reference[name_start + i + 1..],
        None => "latest",
    }
}

/// Builds (once per process) and pushes every test image to `registry`.
pub async fn push_test_images(registry: &Registry) -> Result<TestImages> {
    push_to(&registry.client()).await
}

/// Like [`push_test_images`], to any plain-HTTP registry at `host:port`.
pub async fn push_to_host(host: &str) -> Result<TestImages> {
    push_to(&RegistryClient::new(host)).await
}

async fn push_to(registry: &RegistryClient) -> Result<TestImages> {
    let set = ImageSet::get_async().await?;
    let host = registry.host().to_string();
    let at = |path: &str| format!("{host}/{path}");

    for repo in ["library/busybox", "e2e/busybox"] {
        push_image(registry, repo, &set.busybox).await?;
    }
    for tag in ["latest", "1.35"] {
        push_manifest(registry, "library/busybox", tag, &set.busybox.manifest).await?;
    }
    push_manifest(registry, "e2e/busybox", "latest", &set.busybox.manifest).await?;

    push_image(registry, "busybox", &set.busybox_docker).await?;
    push_manifest(registry, "busybox", "docker", &set.busybox_docker.manifest).await?;

    for image in &set.busybox_multiarch.images {
        push_image(registry, "library/busybox", image).await?;
        push_manifest(
            registry,
            "library/busybox",
            &image.manifest.digest,
            &image.manifest,
        )
        .await?;
    }
    push_manifest(
        registry,
        "library/busybox",
        "multiarch",
        &set.busybox_multiarch.index,
    )
    .await?;

    push_image(registry, "pause", &set.pause).await?;
    for tag in ["3.8", "latest"] {
        push_manifest(registry, "pause", tag, &set.pause.manifest).await?;
    }

    Ok(TestImages {
        registry: host.clone(),
        busybox: at("library/busybox:latest"),
        busybox_tags: vec![
            at("library/busybox:latest"),
            at("library/busybox:1.35"),
            at("e2e/busybox:latest"),
        ],
        busybox_digests: (&set.busybox).into(),
        pause: at("pause:3.8"),
        pause_tags: vec![at("pause:3.8"), at("pause:latest")],
        pause_digests: (&set.pause).into(),
        multiarch: at("library/busybox:multiarch"),
        multiarch_index_digest: set.busybox_multiarch.index.digest.clone(),
        multiarch_platforms: set
            .busybox_multiarch
            .images
            .iter()
            .map(Into::into)
            .collect(),
        docker_schema2: at("busybox:docker"),
        docker_schema2_digests: (&set.busybox_docker).into(),
    })
}

/// Pushes the layers and config of `image` into `repo`.
pub(crate) async fn push_image(registry: &RegistryClient, repo: &str, image: &Image) -> Result<()> {
    for blob in image.layers.iter().chain(std::iter::once(&image.config)) {
        registry
            .push_blob(repo, &blob.digest, &blob.data)
            .await
            .with_context(|| format!("push {} to {repo}", blob.digest))?;
    }
    Ok(())
}

pub(crate) async fn push_manifest(
    registry: &RegistryClient,
    repo: &str,
    reference: &str,
    manifest: &Blob,
) -> Result<()> {
    registry
        .push_manifest(repo, reference, &manifest.media_type, &manifest.data)
        .await
}

/// An image to put into an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Busybox,
    BusyboxDocker,
    BusyboxMultiarch,
    Pause,
}

/// Writes an OCI image-layout tar (`oci-layout`, `index.json`,
/// `blobs/sha256/*`) holding `images` under the given full names, for
/// `ctr -n k8s.io images import --all-platforms <tar>`. Each `index.json`
/// entry is annotated with `io.containerd.image.name` (the full name) and
/// `org.opencontainers.image.ref.name` (its tag).
pub fn write_oci_archive(out: &Path, images: &[(ImageKind, &str)]) -> Result<()> {
    let set = ImageSet::get()?;
    let mut blobs: Vec<&Blob> = Vec::new();
    let mut manifests = Vec::new();
    for (kind, name) in images {
        let (descriptor_blob, all): (&Blob, Vec<&Blob>) = match kind {
            ImageKind::Busybox => (&set.busybox.manifest, set.busybox.blobs().collect()),
            ImageKind::BusyboxDocker => (
                &set.busybox_docker.manifest,
                set.busybox_docker.blobs().collect(),
            ),
            ImageKind::Pause => (&set.pause.manifest, set.pause.blobs().collect()),
            ImageKind::BusyboxMultiarch => {
                let index = &set.busybox_multiarch;
                let mut all: Vec<&Blob> = index.images.iter().flat_map(Image::blobs).collect();
                all.push(&index.index);
                (&index.index, all)
            }
        };
        let mut descriptor = descriptor_blob.descriptor();
        descriptor["annotations"] = json!({
            "io.containerd.image.name": name,
            "org.opencontainers.image.ref.name": tag(name),
        });
        manifests.push(descriptor);
        blobs.extend(all);
    }
    blobs.sort_by(|a, b| a.digest.cmp(&b.digest));
    blobs.dedup_by(|a, b| a.digest == b.digest);

    let index = json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_INDEX,
        "manifests": manifests,
    });
    let mut entries = vec![
        (
            "blobs".to_string(),
            layer::Entry::Dir {
                mode: 0o755,
                uid: 0,
            },
        ),
        (
            "blobs/sha256".to_string(),
            layer::Entry::Dir {
                mode: 0o755,
                uid: 0,
            },
        ),
        (
            "oci-layout".to_string(),
            layer::Entry::File {
                mode: 0o644,
                data: br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            },
        ),
        (
            "index.json".to_string(),
            layer::Entry::File {
                mode: 0o644,
                data: serde_json::to_vec(&index)?,
            },
        ),
    ];
    for blob in blobs {
        let hex = blob.digest.trim_start_matches("sha256:");
        entries.push((
            format!("blobs/sha256/{hex}"),
            layer::Entry::File {
                mode: 0o644,
                data: blob.data.clone(),
            },
        ));
    }
    let archive = layer::build_tar(entries)?;
    std::fs::write(out, archive).with_context(|| format!("write {}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_repository_and_tag() {
        assert_eq!(
            repository("127.0.0.1:5000/library/busybox:1.35"),
            "127.0.0.1:5000/library/busybox"
        );
        assert_eq!(tag("127.0.0.1:5000/library/busybox:1.35"), "1.35");
        assert_eq!(repository("127.0.0.1:5000/pause"), "127.0.0.1:5000/pause");
        assert_eq!(tag("127.0.0.1:5000/pause"), "latest");
        assert_eq!(tag("registry.k8s.io/pause:3.8"), "3.8");
    }
}
