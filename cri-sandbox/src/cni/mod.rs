//! CNI: the [`CniNetwork`] seam the sandbox controller calls, and its
//! libcni/go-cni-compatible implementation [`LibCni`] (config loading,
//! plugin execution, result cache, go-cni result JSON), plus containerd's
//! `conf_template` rendering.

mod cache;
mod config;
mod error;
mod exec;
mod go_template;
mod libcni;
mod list;
mod network;
mod quantity;
mod result;
mod template;

use async_trait::async_trait;

pub use cache::{CacheEntry, ResultCache, CACHE_KIND_V1};
pub use config::{
    load_network_configs, loopback_network, parse_network_config_list, CniConfigError,
    NetworkConfigList,
};
pub use error::{CniError, PluginError};
pub use libcni::{Attachment, LibCni, LibCniBuilder, DEFAULT_CACHE_DIR, DEFAULT_PLUGIN_TIMEOUT};
pub use network::{
    bandwidth_from_annotations, Bandwidth, IpRange, SandboxNetwork, EGRESS_BANDWIDTH_ANNOTATION,
    INGRESS_BANDWIDTH_ANNOTATION, POD_ANNOTATIONS_CAPABILITY,
};
pub use result::{CniResult, Dns, InterfaceConfig, IpConfig, Route, DEFAULT_INTERFACE};
pub use template::{
    render_conf_template, write_conf_from_template, ConfTemplateData, TemplateError,
    CNI_CONF_FROM_TEMPLATE,
};

/// Pod networking through CNI, as containerd's go-cni `CNI` interface is
/// used by the CRI plugin.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait CniNetwork: Send + Sync {
    /// ADD every network to the sandbox's netns; on failure, what was
    /// added is deleted again before the error is returned.
    async fn setup(&self, network: &SandboxNetwork) -> Result<CniResult, CniError>;
    /// DEL every network; succeeds when there is nothing left to delete.
    async fn teardown(&self, network: &SandboxNetwork) -> Result<(), CniError>;
    /// Ok when a network config is loadable (NetworkReady).
    async fn status(&self) -> Result<(), CniError>;
}
