//! `Version` and `Status`: who we are, and whether the runtime and the
//! pod network are ready.

use std::collections::HashMap;
use std::time::Duration;

use cri_api::v1::{
    RuntimeCondition, RuntimeHandler, RuntimeHandlerFeatures, RuntimeStatus, StatusResponse,
    VersionResponse,
};
use cri_sandbox::cni::load_network_configs;

use crate::service::ServerState;

/// The runtime name reported by `Version`.
pub const RUNTIME_NAME: &str = "cri-server";
/// How long `Status` waits for containerd before calling it unreachable.
const CONTAINERD_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

const RUNTIME_READY: &str = "RuntimeReady";
const NETWORK_READY: &str = "NetworkReady";

/// The `Version` answer.
pub fn version() -> VersionResponse {
    VersionResponse {
        version: cri_api::KUBELET_API_VERSION.to_owned(),
        runtime_name: RUNTIME_NAME.to_owned(),
        runtime_version: env!("CARGO_PKG_VERSION").to_owned(),
        runtime_api_version: cri_api::CRI_API_VERSION.to_owned(),
    }
}

/// The `Status` answer: RuntimeReady from a live containerd, NetworkReady
/// from a loadable CNI config; with `verbose`, the effective config.
pub async fn status(state: &ServerState, verbose: bool) -> StatusResponse {
    let runtime = runtime_condition(state).await;
    let (network, cni_load_status) = network_condition(state);
    let mut info = HashMap::new();
    if verbose {
        info.insert("config".to_owned(), state.config.to_status_json().to_string());
        info.insert("lastCNILoadStatus".to_owned(), cni_load_status);
    }
    StatusResponse {
        status: Some(RuntimeStatus {
            conditions: vec![runtime, network],
        }),
        info,
        runtime_handlers: runtime_handlers(state),
        features: None,
    }
}

async fn runtime_condition(state: &ServerState) -> RuntimeCondition {
    let probe = tokio::time::timeout(CONTAINERD_PROBE_TIMEOUT, state.containerd.version.version()).await;
    let failure = match probe {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!(
            "containerd at {} did not answer within {:?}",
            state.containerd_address(),
            CONTAINERD_PROBE_TIMEOUT
        )),
    };
    match failure {
        None => condition(RUNTIME_READY, true, "", ""),
        Some(message) => condition(RUNTIME_READY, false, "ContainerdUnavailable", &message),
    }
}

/// The condition, and the text containerd reports as `lastCNILoadStatus`.
fn network_condition(state: &ServerState) -> (RuntimeCondition, String) {
    let cni = &state.config.cri.cni;
    match load_network_configs(&cni.conf_dir, cni.max_conf_num) {
        Ok(_) => (condition(NETWORK_READY, true, "", ""), "OK".to_owned()),
        Err(e) => {
            let message = format!("Network plugin returns error: cni plugin not initialized: {e}");
            (
                condition(NETWORK_READY, false, "NetworkPluginNotReady", &message),
                e.to_string(),
            )
        }
    }
}

fn runtime_handlers(state: &ServerState) -> Vec<RuntimeHandler> {
    let features = Some(RuntimeHandlerFeatures {
        recursive_read_only_mounts: false,
        user_namespaces: false,
    });
    let default = std::iter::once(RuntimeHandler {
        name: String::new(),
        features,
    });
    default
        .chain(state.config.cri.runtimes.keys().map(|name| RuntimeHandler {
            name: name.clone(),
            features,
        }))
        .collect()
}

fn condition(kind: &str, status: bool, reason: &str, message: &str) -> RuntimeCondition {
    RuntimeCondition {
        r#type: kind.to_owned(),
        status,
        reason: reason.to_owned(),
        message: message.to_owned(),
    }
}
