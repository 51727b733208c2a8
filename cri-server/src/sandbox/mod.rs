//! Pod sandboxes, server side: the sandbox RPCs (RunPodSandbox,
//! StopPodSandbox, RemovePodSandbox, PodSandboxStatus, ListPodSandbox,
//! UpdateRuntimeConfig) over the sandbox store, the name index and the
//! [`SandboxManager`] (controllers, netns, CNI, sandbox files), plus the
//! exit monitor that turns a sandbox NOTREADY when its pause task exits.
//!
//! For app containers: a sandbox is `state.store.get(id)` (metadata:
//! config, netns path, runtime handler; status: READY/NOTREADY, pause
//! pid); its files are at [`sandbox_files`] / `state.manager.paths(id)`.

mod error;
pub(crate) mod exit_monitor;
mod list;
mod manager;
mod port_forward;
mod remove;
mod run;
mod runtime_config;
mod runtime_options;
mod service;
pub mod spec_options;
mod status;
mod stop;

use std::path::PathBuf;

use cri_store::sandbox::{Sandbox, SandboxMetadata};
use cri_store::StoreError;

pub use error::SandboxError;
pub use list::{list_pod_sandbox, list_pod_sandbox_encoded};
pub use manager::{SandboxManager, SandboxParts};
pub use port_forward::port_forward;
pub use remove::remove_pod_sandbox;
pub use run::{
    host_network, run_pod_sandbox, sandbox_labels, sandbox_name, CONTAINER_KIND_LABEL,
    CONTAINER_KIND_SANDBOX,
};
pub use runtime_config::update_runtime_config;
pub use runtime_options::{
    runtime_info, runtime_options, runtime_options_json, runtime_path, RuncOptions,
    RUNC_OPTIONS_TYPE_URL, RUNTIME_OPTIONS_TYPE_URL,
};
pub use service::{PodContainerError, PodContainers, PodEvents, SandboxLookup, SandboxService};
pub use spec_options::spec_options;
pub use status::pod_sandbox_status;
pub use stop::stop_pod_sandbox;

/// The sandbox with this full id or unique prefix.
pub fn lookup(state: &SandboxService, id_or_prefix: &str) -> Result<Sandbox, SandboxError> {
    state.store.get(id_or_prefix).map_err(|e| match e {
        StoreError::Ambiguous { prefix, .. } => SandboxError::Ambiguous { prefix },
        _ => SandboxError::NotFound {
            id: id_or_prefix.to_owned(),
        },
    })
}

/// The host paths an app container of `sandbox` bind-mounts as
/// `/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf` and `/dev/shm` (the
/// host's `/dev/shm` for host IPC), in the shape the container spec
/// builder takes.
pub fn sandbox_files(state: &SandboxService, sandbox: &SandboxMetadata) -> cri_spec::SandboxFiles {
    let paths = state.manager.paths(&sandbox.id);
    let host_ipc = sandbox
        .config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.as_ref())
        .is_some_and(|n| n.ipc == cri_api::v1::NamespaceMode::Node as i32);
    cri_spec::SandboxFiles {
        hostname: paths.hostname,
        hosts: paths.hosts,
        resolv_conf: paths.resolv_conf,
        shm: if host_ipc {
            PathBuf::from("/dev/shm")
        } else {
            paths.shm
        },
    }
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod lifecycle_tests;
