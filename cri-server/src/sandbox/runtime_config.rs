//! UpdateRuntimeConfig: the kubelet's pod CIDR. With a `conf_template`
//! configured and no usable CNI config yet, the template is rendered into
//! `<conf_dir>/10-containerd-net.conflist` (containerd's
//! `update_runtime_config.go`); otherwise nothing happens.

use cri_api::v1::UpdateRuntimeConfigRequest;
use cri_sandbox::cni::{write_conf_from_template, ConfTemplateData};

use super::error::SandboxError;
use super::SandboxService;

/// UpdateRuntimeConfig.
pub async fn update_runtime_config(
    state: &SandboxService,
    request: UpdateRuntimeConfigRequest,
) -> Result<(), SandboxError> {
    let pod_cidrs = request
        .runtime_config
        .and_then(|c| c.network_config)
        .map(|n| n.pod_cidr)
        .unwrap_or_default();
    if pod_cidrs.is_empty() {
        return Ok(());
    }
    let data = ConfTemplateData::from_pod_cidrs(&pod_cidrs).map_err(SandboxError::ConfTemplate)?;
    let cni = &state.config.cri.cni;
    let Some(template) = &cni.conf_template else {
        tracing::info!("no cni config template is specified, wait for other system components to drop the config");
        return Ok(());
    };
    if state.manager.cni().status().await.is_ok() {
        tracing::info!(template = %template.display(), "network plugin is ready, skip generating cni config from template");
        return Ok(());
    }
    let (template, conf_dir) = (template.clone(), cni.conf_dir.clone());
    let written =
        tokio::task::spawn_blocking(move || write_conf_from_template(&template, &conf_dir, &data))
            .await
            .map_err(|_| SandboxError::Aborted {
                what: "writing the cni config from the template".to_owned(),
            })?
            .map_err(SandboxError::ConfTemplate)?;
    tracing::info!(path = %written.display(), pod_cidrs = %pod_cidrs, "generated cni config from template");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use cri_api::v1::{NetworkConfig, RuntimeConfig};
    use cri_sandbox::cni::{CniError, MockCniNetwork};

    use super::*;
    use crate::sandbox::testutil::{mocks, state_with, Fail, Log};

    fn request(pod_cidr: &str) -> UpdateRuntimeConfigRequest {
        UpdateRuntimeConfigRequest {
            runtime_config: Some(RuntimeConfig {
                network_config: Some(NetworkConfig {
                    pod_cidr: pod_cidr.into(),
                }),
            }),
        }
    }

    /// A state whose CNI is (not) ready, with a template if `template`.
    async fn env(
        network_ready: bool,
        template: bool,
    ) -> (tempfile::TempDir, Arc<crate::service::ServerState>) {
        let dir = tempfile::tempdir().unwrap();
        let tpl = dir.path().join("template.json");
        std::fs::write(&tpl, r#"{"subnet":"{{.PodCIDR}}","routes":"{{.Routes}}"}"#).unwrap();
        let extra = format!(
            "[plugins.\"io.containerd.grpc.v1.cri\".cni]\nconf_dir = \"{}\"\n{}",
            dir.path().join("net.d").display(),
            if template {
                format!("conf_template = \"{}\"\n", tpl.display())
            } else {
                String::new()
            }
        );
        let log: Log = Arc::default();
        let m = mocks(&log, Fail::Nothing);
        let mut cni = MockCniNetwork::new();
        cni.expect_status().returning(move || {
            if network_ready {
                Ok(())
            } else {
                Err(CniError::NoPluginDirs)
            }
        });
        let state = state_with(
            dir.path(),
            Arc::new(m.controller),
            m.netns,
            Arc::new(cni),
            &extra,
        )
        .await;
        (dir, state)
    }

    fn written(dir: &tempfile::TempDir) -> Option<String> {
        std::fs::read_to_string(dir.path().join("net.d/10-containerd-net.conflist")).ok()
    }

    #[tokio::test]
    async fn pod_cidr_renders_the_template_while_the_network_is_not_ready() {
        let (dir, state) = env(false, true).await;
        update_runtime_config(&state.sandboxes, request("10.244.1.0/24, fd00::/64"))
            .await
            .unwrap();
        assert_eq!(
            written(&dir).as_deref(),
            Some(r#"{"subnet":"10.244.1.0/24","routes":"[0.0.0.0/0 ::/0]"}"#)
        );
    }

    #[tokio::test]
    async fn nothing_is_written_without_cidr_template_or_need() {
        let (dir, state) = env(false, true).await;
        update_runtime_config(&state.sandboxes, request(""))
            .await
            .unwrap();
        update_runtime_config(&state.sandboxes, UpdateRuntimeConfigRequest::default())
            .await
            .unwrap();
        assert_eq!(written(&dir), None);
        let (dir, state) = env(false, false).await;
        update_runtime_config(&state.sandboxes, request("10.1.0.0/24"))
            .await
            .unwrap();
        assert_eq!(written(&dir), None);
        let (dir, state) = env(true, true).await;
        update_runtime_config(&state.sandboxes, request("10.1.0.0/24"))
            .await
            .unwrap();
        assert_eq!(written(&dir), None);
    }

    #[tokio::test]
    async fn a_bad_cidr_is_invalid() {
        let (_dir, state) = env(false, true).await;
        let err = update_runtime_config(&state.sandboxes, request("10.1.0.0/99"))
            .await
            .unwrap_err();
        let status = tonic::Status::from(err);
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    }
}
