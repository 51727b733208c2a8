//! The images only the benchmark uses, built locally: a large image of
//! incompressible layers (random bytes from a seeded generator, so
//! nothing is downloaded and the digests are stable) for the cold pull,
//! and a small busybox image with its own digest for the image
//! operations, so removing it never touches the containers' image.

use anyhow::{Context, Result};
use flate2::{Compression, GzBuilder};
use std::io::Write;

use crate::images::critest::local_path;
use crate::images::layer::{self, Entry, Layer};
use crate::images::oci::{Image, ImageSpec, ManifestFormat};
use crate::images::{host_arch, push_image, push_manifest};
use crate::registry::RegistryClient;

/// The large image's name; its registry mirrors to the harness registry.
pub const LARGE_IMAGE: &str = "registry.k8s.io/e2e-test-images/cri-bench-large:1";
/// The image of the image operations.
pub const IMAGE_OPS_IMAGE: &str = "registry.k8s.io/e2e-test-images/cri-bench-small:1";

/// A layer of one file of `mib` MiB of pseudo-random bytes (seeded by
/// `seed`), gzipped at the fastest level (random data does not shrink).
fn random_layer(seed: u64, mib: usize) -> Result<Layer> {
    let mut data = vec![0u8; mib << 20];
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in data.chunks_mut(8) {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let word = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    let tar = layer::build_tar(vec![
        (
            "data".into(),
            Entry::Dir {
                mode: 0o755,
                uid: 0,
            },
        ),
        (
            format!("data/layer-{seed}.bin"),
            Entry::File { mode: 0o644, data },
        ),
    ])?;
    let mut encoder = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::fast());
    encoder.write_all(&tar)?;
    Ok(Layer {
        gzip: encoder.finish()?,
        tar,
    })
}

/// Builds the large image (`layers` layers of `mib` MiB each) and the
/// small one, and pushes both to `registry` under their upstream paths.
/// Returns the large image's layer digests (to see them leave
/// containerd's content store).
pub async fn push_bench_images(
    registry: &RegistryClient,
    layers: usize,
    mib: usize,
) -> Result<Vec<String>> {
    let (large, small) = tokio::task::spawn_blocking(move || -> Result<(Image, Image)> {
        let built: Vec<Layer> = (0..layers as u64)
            .map(|i| random_layer(i + 1, mib))
            .collect::<Result<_>>()?;
        let spec = ImageSpec {
            architecture: host_arch().to_string(),
            cmd: Some(vec!["sh".into()]),
            created_by: "cri-bench: random layers".into(),
            ..ImageSpec::default()
        };
        let large = Image::build(
            &spec,
            &built.iter().collect::<Vec<_>>(),
            ManifestFormat::Oci,
        )?;
        let small_spec = ImageSpec {
            labels: vec![("io.cri-bench.image".into(), "small".into())],
            created_by: "cri-bench: busybox".into(),
            ..spec
        };
        let small = Image::build(
            &small_spec,
            &[&layer::busybox_layer()?],
            ManifestFormat::Oci,
        )?;
        Ok((large, small))
    })
    .await??;
    for (name, image) in [(LARGE_IMAGE, &large), (IMAGE_OPS_IMAGE, &small)] {
        let (repository, tag) = local_path(name)?;
        push_image(registry, repository, image).await?;
        push_manifest(registry, repository, tag, &image.manifest)
            .await
            .with_context(|| format!("push {name}"))?;
    }
    Ok(large.layers.iter().map(|l| l.digest.clone()).collect())
}
