//! [`SandboxManager`]: what the sandbox RPCs share besides the stores:
//! the sandbox controllers (picked per runtime handler), the netns
//! manager, the CNI networks (per handler when it has its own
//! `cni_conf_dir`), the sandbox files, the id generator and the daemon's
//! own OOM score.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use cri_api::containerd::Containerd;
use cri_api::ids::IdGenerator;
use cri_sandbox::cni::{CniError, CniNetwork, LibCniBuilder};
use cri_sandbox::controller::podsandbox::PodSandboxController;
use cri_sandbox::controller::SandboxController;
use cri_sandbox::files::{SandboxFiles, SandboxPaths};
use cri_sandbox::host::{
    daemon_oom_score_adj, LinuxHostOs, LinuxMounts, LinuxNetns, LinuxRootfsUserDb, NoSeLinux,
};
use cri_sandbox::netns::{NetnsManager, DEFAULT_NETNS_DIR};

use super::error::SandboxError;
use cri_api::ids::RandomIds;
use cri_config::{Config, RuntimeConfig};

/// The pieces a [`SandboxManager`] is made of (real ones from
/// [`SandboxManager::new`], mocks in tests).
pub struct SandboxParts {
    pub podsandbox: Arc<dyn SandboxController>,
    pub files: SandboxFiles,
    pub netns: Arc<dyn NetnsManager>,
    /// The CNI of pods whose handler has no `cni_conf_dir` of its own.
    pub cni: Arc<dyn CniNetwork>,
    /// The CNI of handlers with their own `cni_conf_dir`, by handler name.
    pub handler_cni: HashMap<String, Arc<dyn CniNetwork>>,
    pub ids: Arc<dyn IdGenerator>,
    pub daemon_oom_score_adj: i32,
}

/// Controllers, networking and files of pod sandboxes.
pub struct SandboxManager {
    parts: SandboxParts,
}

impl std::fmt::Debug for SandboxManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxManager")
            .field("files", &self.parts.files)
            .field("oom_score_adj", &self.parts.daemon_oom_score_adj)
            .finish_non_exhaustive()
    }
}

impl SandboxManager {
    pub fn from_parts(parts: SandboxParts) -> Self {
        Self { parts }
    }

    /// The real thing: pause-container sandboxes in `containerd`, netns
    /// pins under `/var/run/netns` (or `<state>/netns` with
    /// `netns_mounts_under_state_dir`), libcni over the configured dirs.
    /// Touches neither containerd nor the network.
    pub fn new(config: &Config, containerd: Containerd) -> Result<Self, CniError> {
        let (cri, server) = (&config.cri, &config.server);
        let files = SandboxFiles::new(&server.root_dir, &server.state_dir, Arc::new(LinuxMounts));
        let podsandbox = PodSandboxController::new(
            containerd,
            files.clone(),
            Arc::new(LinuxHostOs::new()),
            Arc::new(NoSeLinux),
            Arc::new(LinuxRootfsUserDb::new(server.state_dir.join("tmpmounts"))),
        );
        let netns_dir = if cri.netns_mounts_under_state_dir {
            server.state_dir.join("netns")
        } else {
            PathBuf::from(DEFAULT_NETNS_DIR)
        };
        let bin_dirs: Vec<PathBuf> = cri
            .cni
            .plugin_dirs()
            .into_iter()
            .map(PathBuf::from)
            .collect();
        let libcni = |conf_dir: &std::path::Path, max: usize| {
            LibCniBuilder::new(bin_dirs.clone(), conf_dir)
                .with_max_conf_num(max)
                .with_loopback(!cri.cni.use_internal_loopback)
                .with_setup_serially(cri.cni.setup_serially)
                .build()
                .map(|c| Arc::new(c) as Arc<dyn CniNetwork>)
        };
        let cni = libcni(&cri.cni.conf_dir, cri.cni.max_conf_num)?;
        let mut handler_cni = HashMap::new();
        for (name, runtime) in &cri.runtimes {
            if let Some(dir) = &runtime.cni_conf_dir {
                handler_cni.insert(name.clone(), libcni(dir, runtime.cni_max_conf_num)?);
            }
        }
        let daemon_oom_score_adj = daemon_oom_score_adj().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "read own oom_score_adj; assuming 0");
            0
        });
        Ok(Self::from_parts(SandboxParts {
            podsandbox: Arc::new(podsandbox),
            files,
            netns: Arc::new(LinuxNetns::new(netns_dir)),
            cni,
            handler_cni,
            ids: Arc::new(RandomIds),
            daemon_oom_score_adj,
        }))
    }

    /// The controller for pods of `runtime` (named `handler`): the
    /// pause-container one for `sandbox_mode = "podsandbox"`.
    pub fn controller_for(
        &self,
        handler: &str,
        runtime: &RuntimeConfig,
    ) -> Result<&Arc<dyn SandboxController>, SandboxError> {
        if runtime.is_podsandbox() {
            Ok(&self.parts.podsandbox)
        } else {
            Err(SandboxError::UnsupportedSandboxMode {
                handler: handler.to_owned(),
                mode: runtime.sandbox_mode.clone(),
            })
        }
    }

    /// The controller of an existing sandbox: by its handler's mode if the
    /// handler is still configured, else the pause-container one.
    pub fn controller_of(
        &self,
        config: &Config,
        handler: &str,
    ) -> Result<&Arc<dyn SandboxController>, SandboxError> {
        match config.cri.runtime(handler) {
            Some(runtime) => self.controller_for(handler, runtime),
            None => Ok(&self.parts.podsandbox),
        }
    }

    /// The CNI network for pods of `handler`.
    pub fn cni_for(&self, handler: &str) -> &Arc<dyn CniNetwork> {
        self.parts
            .handler_cni
            .get(handler)
            .unwrap_or(&self.parts.cni)
    }

    /// The default CNI network (NetworkReady, conf_template).
    pub fn cni(&self) -> &Arc<dyn CniNetwork> {
        &self.parts.cni
    }

    pub fn netns(&self) -> &Arc<dyn NetnsManager> {
        &self.parts.netns
    }

    /// The sandbox files' layout under the root and state dirs.
    pub fn files(&self) -> &SandboxFiles {
        &self.parts.files
    }

    /// Where the hostname, hosts, resolv.conf and shm of a sandbox live.
    pub fn paths(&self, id: &cri_api::ids::SandboxId) -> SandboxPaths {
        self.parts.files.paths(id)
    }

    pub fn ids(&self) -> &Arc<dyn IdGenerator> {
        &self.parts.ids
    }

    /// This daemon's own `oom_score_adj`, read at start-up.
    pub fn daemon_oom_score_adj(&self) -> i32 {
        self.parts.daemon_oom_score_adj
    }
}
