//! Differential mode: the same CRI requests sent to cri-server (on the harness's containerd) and to containerd's own CRI plugin (a second containerd from the same package, [`ReferenceDaemon`]), with the same images, mirrors and CRI config keys; what each side wrote into its containerd and its dirs is read back, normalized ([`normalize`]) and diffed ([`diff`]). The corpus is [`corpus`].

pub mod corpus;
mod decoded;
pub mod diff;
pub mod goldens;
mod handover;
pub mod normalize;
mod observe;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cri_api::v1::image_service_client::ImageServiceClient;
use cri_api::v1::runtime_service_client::RuntimeServiceClient;
use cri_api::v1::{ImageSpec, ListPodSandboxRequest, PullImageRequest};
use serde_json::Value;
use tonic::transport::Channel;

use crate::conformance::{
    Conformance, Daemon, ReferenceDaemon, ServerDirs, Target, CRI_PLUGIN_DIR,
};
use crate::containerd::ContainerdProcess;
use crate::network::TestNetwork;
use crate::server::connect;
use crate::CriServer;
pub use corpus::Case;
pub use diff::{Difference, Documented};
pub use handover::Kept;
use normalize::SideFacts;
pub use observe::{observe, AfterObserving, Observation};

/// How long containerd's CRI plugin gets to answer after containerd did.
const REFERENCE_READY: Duration = Duration::from_secs(30);

/// Which implementation a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// containerd's own CRI plugin.
    Reference,
    CriServer,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Reference => "containerd",
            Side::CriServer => "cri-server",
        }
    }
}

/// Both daemons, started once. Field order is drop order: the reference
/// containerd and its pods first, then cri-server, the harness and the
/// shared dir.
#[derive(Debug)]
pub struct Differential {
    reference: ReferenceDaemon,
    setup: Conformance,
}

/// One side's endpoints and dirs, as a case sees them.
#[derive(Debug, Clone)]
pub struct SideEnv {
    pub side: Side,
    pub socket: PathBuf,
    pub cri_root: PathBuf,
    pub cri_state: PathBuf,
    pub containerd_root: PathBuf,
    pub containerd_state: PathBuf,
    pub containerd_socket: PathBuf,
    pub log_root: PathBuf,
    pub subnet_prefix: String,
    pub bridge: String,
    pub network_name: String,
}

impl SideEnv {
    fn new(
        side: Side,
        socket: &Path,
        cri: (PathBuf, PathBuf),
        containerd: &ContainerdProcess,
        network: &TestNetwork,
        log_root: PathBuf,
    ) -> SideEnv {
        SideEnv {
            side,
            socket: socket.to_path_buf(),
            cri_root: cri.0,
            cri_state: cri.1,
            containerd_root: containerd.root().to_path_buf(),
            containerd_state: containerd.state().to_path_buf(),
            containerd_socket: containerd.socket().to_path_buf(),
            log_root,
            subnet_prefix: network.subnet.trim_end_matches("0/24").to_string(),
            bridge: network.bridge.clone(),
            network_name: network.name.clone(),
        }
    }

    /// The placeholders for what this side generated or was given.
    fn facts(&self) -> SideFacts {
        let mut facts = SideFacts {
            subnet_prefix: self.subnet_prefix.clone(),
            bridge: self.bridge.clone(),
            network_name: self.network_name.clone(),
            ..SideFacts::default()
        };
        let path = |p: &Path| p.to_string_lossy().into_owned();
        facts.literal(path(&self.cri_root), "<cri-root>");
        facts.literal(path(&self.cri_state), "<cri-state>");
        facts.literal(path(&self.containerd_root), "<containerd-root>");
        facts.literal(path(&self.containerd_state), "<containerd-state>");
        facts.literal(path(&self.log_root), "<log-root>");
        facts
    }

    pub async fn runtime(&self) -> Result<RuntimeServiceClient<Channel>> {
        Ok(RuntimeServiceClient::new(connect(&self.socket).await?))
    }

    pub async fn images(&self) -> Result<ImageServiceClient<Channel>> {
        Ok(ImageServiceClient::new(connect(&self.socket).await?))
    }
}

impl Differential {
    /// Starts the harness with critest's images, cri-server configured as
    /// [`crate::conformance::reference_cri_toml`] configures containerd's
    /// plugin, and the reference; waits until the plugin answers.
    /// cri-server keeps its dirs where containerd's plugin keeps them, so
    /// the plugin can take over what it made ([`Differential::handover`]).
    pub async fn start() -> Result<Differential> {
        let setup = Conformance::start_in(Target::CriServer, ServerDirs::ContainerdLayout).await?;
        let reference = ReferenceDaemon::start(setup.dir(), &setup.certs_dir()).await?;
        let diff = Differential { reference, setup };
        for side in [diff.side(Side::Reference)?, diff.side(Side::CriServer)?] {
            std::fs::create_dir_all(&side.log_root)?;
        }
        corpus::write_fixtures()?;
        diff.wait_reference().await?;
        Ok(diff)
    }

    fn server(&self) -> Result<&CriServer> {
        match &self.setup.daemon {
            Daemon::CriServer(server) => Ok(server),
            Daemon::Reference(_) => bail!("the setup runs the reference, not cri-server"),
        }
    }

    /// One side's endpoints and dirs.
    pub fn side(&self, side: Side) -> Result<SideEnv> {
        let logs = self.setup.dir().join(format!("logs-{}", side.name()));
        Ok(match side {
            Side::Reference => SideEnv::new(
                side,
                self.reference.containerd.socket(),
                (self.reference.cri_root(), self.reference.cri_state()),
                &self.reference.containerd,
                &self.reference.network,
                logs,
            ),
            Side::CriServer => {
                let server = self.server()?;
                let network = server
                    .network()
                    .context("cri-server was started without a CNI network")?;
                let containerd = &self.setup.harness.containerd;
                SideEnv::new(
                    side,
                    server.socket(),
                    (
                        containerd.root().join(CRI_PLUGIN_DIR),
                        containerd.state().join(CRI_PLUGIN_DIR),
                    ),
                    containerd,
                    network,
                    logs,
                )
            }
        })
    }

    /// The reference containerd's own `oom_score_adj`, the floor its
    /// plugin's `restrict_oom_score_adj` keeps scores above.
    pub fn reference_oom_score_adj(&self) -> Result<i32> {
        let pid = self
            .reference
            .containerd
            .pid()
            .context("the reference containerd is not running")?;
        let text = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj"))?;
        Ok(text.trim().parse()?)
    }

    /// What each daemon logged, for a failure.
    pub fn logs(&self) -> String {
        let server = self.server().map(|s| s.log()).unwrap_or_default();
        format!(
            "--- containerd (reference) log tail:\n{}\n--- cri-server log tail:\n{}",
            tail(&self.reference.containerd.log(), 40),
            tail(&server, 40)
        )
    }

    async fn wait_reference(&self) -> Result<()> {
        let side = self.side(Side::Reference)?;
        let deadline = Instant::now() + REFERENCE_READY;
        loop {
            let answer = match side.runtime().await {
                Ok(mut client) => client
                    .list_pod_sandbox(ListPodSandboxRequest { filter: None })
                    .await
                    .map(|_| ())
                    .map_err(|s| anyhow::anyhow!("{s}")),
                Err(e) => Err(e),
            };
            match answer {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => bail!(
                    "containerd's CRI plugin did not answer within {REFERENCE_READY:?}: {e:#}\n{}",
                    self.reference.containerd.log()
                ),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Pulls `images` through each side's CRI ImageService (both in
    /// parallel).
    pub async fn pull(&self, images: &[String]) -> Result<()> {
        let pull_all = |side: SideEnv| async move {
            let mut client = side.images().await?;
            for image in images {
                client
                    .pull_image(PullImageRequest {
                        image: Some(ImageSpec {
                            image: image.clone(),
                            ..ImageSpec::default()
                        }),
                        ..PullImageRequest::default()
                    })
                    .await
                    .with_context(|| format!("{}: pull {image}", side.side.name()))?;
            }
            Ok::<_, anyhow::Error>(())
        };
        let (a, b) = tokio::join!(
            pull_all(self.side(Side::Reference)?),
            pull_all(self.side(Side::CriServer)?)
        );
        a.and(b)
    }

    /// Runs `case` through both sides and diffs what they wrote. The
    /// reference's pod is removed; cri-server's is kept for
    /// [`handover`](Self::handover) and returned.
    pub async fn run(&self, case: &Case) -> Result<CaseRun> {
        let (reference, ours) = (self.side(Side::Reference)?, self.side(Side::CriServer)?);
        let (a, b) = tokio::join!(
            observe::observe(&reference, case, AfterObserving::Remove),
            observe::observe(&ours, case, AfterObserving::Keep)
        );
        let (a, b) = (
            a.with_context(|| format!("{}: case {}", Side::Reference.name(), case.name))?,
            b.with_context(|| format!("{}: case {}", Side::CriServer.name(), case.name))?,
        );
        let kept = b.sandbox_id.clone().map(|sandbox_id| Kept {
            case: case.name,
            sandbox_id,
            containers: b.containers.clone(),
        });
        Ok(CaseRun {
            differences: compare(case.name, &a.observed(), &b.observed()),
            kept,
        })
    }
}

/// One case through both sides.
#[derive(Debug)]
pub struct CaseRun {
    pub differences: Vec<Difference>,
    /// cri-server's objects of the case, left for the handover.
    pub kept: Option<Kept>,
}

/// Everything one side wrote for a case, normalized.
#[derive(Debug, Default)]
pub struct Observed {
    pub docs: BTreeMap<String, Value>,
}

/// Diffs two observations; a `#bytes` document (raw JSON text) is only
/// reported when its parsed document matches, so one difference is not
/// shown twice.
fn compare(case: &str, reference: &Observed, ours: &Observed) -> Vec<Difference> {
    let all = diff::documents(case, &reference.docs, &ours.docs);
    let parsed_differs = |doc: &str| {
        all.iter()
            .any(|d| d.at == doc || d.at.starts_with(&format!("{doc}/")))
    };
    all.iter()
        .filter(|d| match d.at.split_once("#bytes") {
            Some((doc, _)) => !parsed_differs(doc),
            None => true,
        })
        .cloned()
        .collect()
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
