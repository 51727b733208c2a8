//! `Version`, `Status` and `RuntimeConfig`: who we are, whether the
//! runtime and the pod network are ready, and which cgroup driver we use.

use std::collections::HashMap;
use std::time::Duration;

use cri_api::v1::{
    CgroupDriver, LinuxRuntimeConfiguration, RuntimeCondition, RuntimeConfigResponse,
    RuntimeFeatures, RuntimeHandler, RuntimeHandlerFeatures, RuntimeStatus, StatusResponse,
    VersionResponse,
};
use cri_sandbox::cni::load_network_configs;

use cri_api::containerd::Version;

use cri_config::{Config, CriConfig};

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

/// The `RuntimeConfig` answer: the systemd cgroup driver when the default
/// runtime's options say `SystemdCgroup = true`, else cgroupfs (containerd's
/// `getCgroupDriver`).
pub fn runtime_config(cri: &CriConfig) -> RuntimeConfigResponse {
    let systemd = cri.default_runtime().is_some_and(|r| r.systemd_cgroup());
    let driver = if systemd {
        CgroupDriver::Systemd
    } else {
        CgroupDriver::Cgroupfs
    };
    RuntimeConfigResponse {
        linux: Some(LinuxRuntimeConfiguration {
            cgroup_driver: driver as i32,
        }),
    }
}

/// The `Status` answer: RuntimeReady from a live containerd, NetworkReady
/// from a loadable CNI config; with `verbose`, the effective config.
pub async fn status(config: &Config, containerd: &dyn Version, verbose: bool) -> StatusResponse {
    let runtime = runtime_condition(config, containerd).await;
    let (network, cni_load_status) = network_condition(config);
    let mut info = HashMap::new();
    if verbose {
        info.insert("config".to_owned(), config.to_status_json().to_string());
        info.insert("lastCNILoadStatus".to_owned(), cni_load_status);
    }
    StatusResponse {
        status: Some(RuntimeStatus {
            conditions: vec![runtime, network],
        }),
        info,
        runtime_handlers: runtime_handlers(config),
        // As containerd 2.x: `supplemental_groups_policy: Strict` is
        // honoured and ContainerStatus reports the process's user, which
        // the kubelet (1.33+) asks of a node before it admits Strict pods.
        features: Some(RuntimeFeatures {
            supplemental_groups_policy: true,
        }),
    }
}

async fn runtime_condition(config: &Config, containerd: &dyn Version) -> RuntimeCondition {
    let probe = tokio::time::timeout(CONTAINERD_PROBE_TIMEOUT, containerd.version()).await;
    let failure = match probe {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!(
            "containerd at {} did not answer within {:?}",
            config.server.containerd_address.display(),
            CONTAINERD_PROBE_TIMEOUT
        )),
    };
    match failure {
        None => condition(RUNTIME_READY, true, "", ""),
        Some(message) => condition(RUNTIME_READY, false, "ContainerdUnavailable", &message),
    }
}

/// The condition, and the text containerd reports as `lastCNILoadStatus`.
fn network_condition(config: &Config) -> (RuntimeCondition, String) {
    let cni = &config.cri.cni;
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

fn runtime_handlers(config: &Config) -> Vec<RuntimeHandler> {
    let features = Some(RuntimeHandlerFeatures {
        recursive_read_only_mounts: false,
        user_namespaces: false,
    });
    let default = std::iter::once(RuntimeHandler {
        name: String::new(),
        features,
    });
    default
        .chain(config.cri.runtimes.keys().map(|name| RuntimeHandler {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use cri_api::containerd::{ContainerdError, MockVersion, VersionInfo};

    use super::*;
    use cri_config::Overrides;

    fn config(cni_dir: &std::path::Path) -> Config {
        let text = format!(
            "version = 2\n[cri_server]\ncontainerd_address = \"/run/test/containerd.sock\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\".cni]\nconf_dir = \"{}\"\n",
            cni_dir.display()
        );
        Config::from_toml_str(&text, "test.toml", Overrides::default())
            .unwrap()
            .0
    }

    fn containerd_up() -> MockVersion {
        let mut v = MockVersion::new();
        v.expect_version().returning(|| {
            Ok(VersionInfo {
                version: "1.6.20".into(),
                revision: "x".into(),
            })
        });
        v
    }

    fn containerd_down() -> MockVersion {
        let mut v = MockVersion::new();
        v.expect_version().returning(|| {
            Err(ContainerdError::Unavailable {
                address: "/run/test/containerd.sock".into(),
                message: "connection refused".into(),
            })
        });
        v
    }

    fn find<'a>(resp: &'a StatusResponse, kind: &str) -> &'a RuntimeCondition {
        resp.status
            .as_ref()
            .unwrap()
            .conditions
            .iter()
            .find(|c| c.r#type == kind)
            .unwrap()
    }

    const CONFLIST: &str = r#"{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge"}]}"#;

    #[tokio::test]
    async fn ready_with_containerd_and_a_cni_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("10-pods.conflist"), CONFLIST).unwrap();
        let resp = status(&config(dir.path()), &containerd_up(), false).await;
        assert!(find(&resp, RUNTIME_READY).status);
        assert!(find(&resp, NETWORK_READY).status);
        assert!(resp.info.is_empty());
        let names: Vec<_> = resp
            .runtime_handlers
            .iter()
            .map(|h| h.name.as_str())
            .collect();
        assert_eq!(names, ["", "runc"]);
        assert_eq!(
            resp.features,
            Some(RuntimeFeatures {
                supplemental_groups_policy: true
            })
        );
    }

    #[tokio::test]
    async fn runtime_not_ready_names_the_address() {
        let dir = tempfile::tempdir().unwrap();
        let resp = status(&config(dir.path()), &containerd_down(), false).await;
        let runtime = find(&resp, RUNTIME_READY);
        assert!(!runtime.status);
        assert_eq!(runtime.reason, "ContainerdUnavailable");
        assert!(
            runtime.message.contains("/run/test/containerd.sock"),
            "{runtime:?}"
        );
    }

    struct Hanging;

    #[async_trait::async_trait]
    impl Version for Hanging {
        async fn version(&self) -> cri_api::containerd::Result<VersionInfo> {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_containerd_is_not_ready() {
        let dir = tempfile::tempdir().unwrap();
        let resp = status(&config(dir.path()), &Hanging, false).await;
        let runtime = find(&resp, RUNTIME_READY);
        assert!(!runtime.status);
        assert!(runtime.message.contains("did not answer"), "{runtime:?}");
    }

    #[tokio::test]
    async fn network_not_ready_without_config() {
        let dir = tempfile::tempdir().unwrap();
        let resp = status(&config(dir.path()), &containerd_up(), true).await;
        let network = find(&resp, NETWORK_READY);
        assert!(!network.status);
        assert_eq!(network.reason, "NetworkPluginNotReady");
        assert!(
            network.message.contains("cni plugin not initialized"),
            "{network:?}"
        );
        assert_ne!(resp.info["lastCNILoadStatus"], "OK");
    }

    #[tokio::test]
    async fn verbose_carries_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("10-pods.conflist"), CONFLIST).unwrap();
        let resp = status(&config(dir.path()), &containerd_up(), true).await;
        let json: serde_json::Value = serde_json::from_str(&resp.info["config"]).unwrap();
        assert_eq!(json["cni"]["confDir"], dir.path().display().to_string());
        assert_eq!(resp.info["lastCNILoadStatus"], "OK");
    }

    fn cgroup_driver(toml: &str) -> CgroupDriver {
        let config = Config::from_toml_str(toml, "test.toml", Overrides::default())
            .unwrap()
            .0;
        let linux = runtime_config(&config.cri).linux.unwrap();
        CgroupDriver::try_from(linux.cgroup_driver).unwrap()
    }

    #[test]
    fn runtime_config_reports_the_cgroup_driver_of_the_default_runtime() {
        assert_eq!(cgroup_driver(""), CgroupDriver::Cgroupfs);
        let runc = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n";
        assert_eq!(
            cgroup_driver(&format!("{runc}SystemdCgroup = true\n")),
            CgroupDriver::Systemd
        );
        assert_eq!(
            cgroup_driver(&format!("{runc}SystemdCgroup = false\n")),
            CgroupDriver::Cgroupfs
        );
        // Only the default runtime counts.
        let other =
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n\
                     runtime_type = \"io.containerd.runc.v2\"\n\
                     [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.kata]\n\
                     runtime_type = \"io.containerd.kata.v2\"\n\
                     [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.kata.options]\n\
                     SystemdCgroup = true\n";
        assert_eq!(cgroup_driver(other), CgroupDriver::Cgroupfs);
        let default_kata = format!(
            "{}[plugins.\"io.containerd.grpc.v1.cri\".containerd]\ndefault_runtime_name = \"kata\"\n",
            other
        );
        assert_eq!(cgroup_driver(&default_kata), CgroupDriver::Systemd);
    }

    #[test]
    fn version_names_us() {
        let v = version();
        assert_eq!(v.runtime_name, "cri-server");
        assert_eq!(v.runtime_api_version, "v1");
        assert_eq!(v.version, "0.1.0");
    }
}
