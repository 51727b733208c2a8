//! The real-component test harness: a private containerd, a local OCI
//! registry, test images built from `busybox-static` and a pause program,
//! and a `cri-server` pointed at them. Every integration suite in
//! `tests/tests/` uses it; nothing in here is a mock.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! let harness = cri_tests::Harness::start().await?;
//! let server = harness.server(cri_tests::ServerOptions::default()).await?;
//! let mut runtime = server.runtime_client().await?;
//! # Ok(()) }
//! ```
//!
//! Everything a harness starts lives in its own directory under
//! `$TMPDIR/cri-tests/`, uses its own sockets, ports, bridge and subnet, and
//! is torn down on drop (also when the test panics), so tests can run in
//! parallel in one process.

pub mod bench;
pub mod clients;
pub mod components;
pub mod conformance;
pub mod containerd;
pub mod cri;
pub mod differential;
pub mod http;
pub mod images;
pub mod network;
pub mod otlp;
pub mod proxy;
pub mod registry;
pub mod server;
pub mod teardown;

use std::path::PathBuf;

use anyhow::Result;

pub use containerd::{ContainerdProcess, K8S_NAMESPACE};
pub use images::{push_test_images, write_oci_archive, ImageDigests, ImageKind, TestImages};
pub use network::TestNetwork;
pub use registry::Registry;
pub use server::{CniSetup, CriServer, ServerOptions, StartOutcome};

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}

/// A private containerd and registry with the test images pushed to it.
/// Drop order is field order: containerd (with its shims, containers and
/// mounts) goes first, then the registry.
#[derive(Debug)]
pub struct Harness {
    pub containerd: ContainerdProcess,
    pub registry: Registry,
    pub images: TestImages,
}

impl Harness {
    /// Starts containerd and the registry in parallel and pushes the test
    /// images (built once per process).
    pub async fn start() -> Result<Harness> {
        components::require_all()?;
        let (containerd, registry) = tokio::join!(ContainerdProcess::start(), async {
            let registry = Registry::start().await?;
            let images = push_test_images(&registry).await?;
            Ok::<_, anyhow::Error>((registry, images))
        });
        let (registry, images) = registry?;
        Ok(Harness {
            containerd: containerd?,
            registry,
            images,
        })
    }

    /// Starts a `cri-server` against this harness: the registry is a plain
    /// HTTP mirror and, unless `opts` says otherwise, the sandbox image is
    /// the harness's pause image.
    pub async fn server(&self, mut opts: ServerOptions) -> Result<CriServer> {
        self.fill_defaults(&mut opts);
        CriServer::start(&self.containerd, opts).await
    }

    /// Like [`server`](Self::server), but an early exit is an outcome.
    pub async fn try_server(&self, mut opts: ServerOptions) -> Result<StartOutcome> {
        self.fill_defaults(&mut opts);
        CriServer::try_start(&self.containerd, opts).await
    }

    fn fill_defaults(&self, opts: &mut ServerOptions) {
        opts.registry.get_or_insert_with(|| self.registry.host());
        opts.sandbox_image
            .get_or_insert_with(|| self.images.pause.clone());
    }
}
