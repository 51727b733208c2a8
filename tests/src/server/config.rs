//! The config file a test's cri-server gets: a containerd-style `config.toml` with the `[cri_server]` table, the CRI plugin section (sandbox image, CNI dirs, registry mirror) and a test's extra TOML.

use std::path::Path;

use crate::containerd::{toml_string, K8S_NAMESPACE};

use super::ServerOptions;

/// The server's config file: `[cri_server]` with the socket, containerd
/// and dirs; the CRI plugin section with the sandbox image, CNI dirs and the
/// registry mirror; plus the extra TOML from `opts`.
pub(super) fn render_config(
    listen: &Path,
    dir: &Path,
    containerd_socket: &Path,
    opts: &ServerOptions,
) -> String {
    let net_d = opts
        .cni_conf_dir
        .clone()
        .unwrap_or_else(|| dir.join("net.d"));
    let q = |p: &Path| toml_string(&p.to_string_lossy());
    let mut toml = format!(
        r#"version = 2

[cri_server]
listen = {listen}
containerd_address = {containerd}
containerd_namespace = {namespace}
root_dir = {root}
state_dir = {state}
log_level = "debug"
log_format = "text"
{cri_server_extra}
[plugins."io.containerd.grpc.v1.cri"]
restrict_oom_score_adj = true
"#,
        listen = q(listen),
        containerd = q(containerd_socket),
        namespace = toml_string(K8S_NAMESPACE),
        root = q(&dir.join("root")),
        state = q(&dir.join("state")),
        cri_server_extra = with_newline(&opts.cri_server_toml),
    );
    if let Some(image) = &opts.sandbox_image {
        toml.push_str(&format!("sandbox_image = {}\n", toml_string(image)));
    }
    toml.push_str(&with_newline(&opts.cri_plugin_toml));
    toml.push_str(&format!(
        "\n[plugins.\"io.containerd.grpc.v1.cri\".cni]\nbin_dir = {}\nconf_dir = {}\n",
        toml_string(crate::components::CNI_BIN_DIR),
        q(&net_d)
    ));
    if let Some(registry) = &opts.registry {
        toml.push_str(&format!(
            "\n[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.{}]\nendpoint = [{}]\n",
            toml_string(registry),
            toml_string(&format!("http://{registry}"))
        ));
    }
    toml.push_str(&with_newline(&opts.extra_toml));
    toml
}

fn with_newline(s: &str) -> String {
    if s.is_empty() || s.ends_with('\n') {
        s.to_string()
    } else {
        format!("{s}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use anyhow::{anyhow, Result};

    #[test]
    fn config_is_valid_toml_with_every_option() -> Result<()> {
        let opts = ServerOptions {
            registry: Some("127.0.0.1:5000".into()),
            sandbox_image: Some("127.0.0.1:5000/pause:3.8".into()),
            cri_server_toml: "stream_idle_timeout = \"4h\"".into(),
            cri_plugin_toml: "enable_selinux = false".into(),
            extra_toml:
                "[plugins.\"io.containerd.grpc.v1.cri\".containerd]\nsnapshotter = \"overlayfs\""
                    .into(),
            ..ServerOptions::default()
        };
        let text = render_config(
            Path::new("/d/cri.sock"),
            Path::new("/d"),
            Path::new("/c/containerd.sock"),
            &opts,
        );
        let doc: toml::Table = toml::from_str(&text).map_err(|e| anyhow!("{e}\n{text}"))?;
        let server = &doc["cri_server"];
        assert_eq!(server["listen"].as_str(), Some("/d/cri.sock"));
        assert_eq!(
            server["containerd_address"].as_str(),
            Some("/c/containerd.sock")
        );
        assert_eq!(server["root_dir"].as_str(), Some("/d/root"));
        assert_eq!(server["stream_idle_timeout"].as_str(), Some("4h"));
        let cri = &doc["plugins"]["io.containerd.grpc.v1.cri"];
        assert_eq!(
            cri["sandbox_image"].as_str(),
            Some("127.0.0.1:5000/pause:3.8")
        );
        assert_eq!(cri["restrict_oom_score_adj"].as_bool(), Some(true));
        assert_eq!(cri["enable_selinux"].as_bool(), Some(false));
        assert_eq!(cri["cni"]["conf_dir"].as_str(), Some("/d/net.d"));
        assert_eq!(cri["containerd"]["snapshotter"].as_str(), Some("overlayfs"));
        let mirror = &cri["registry"]["mirrors"]["127.0.0.1:5000"]["endpoint"];
        assert_eq!(mirror[0].as_str(), Some("http://127.0.0.1:5000"));
        Ok(())
    }

    #[test]
    fn config_sections_get_their_extra_lines() {
        assert_eq!(with_newline(""), "");
        assert_eq!(with_newline("a = 1"), "a = 1\n");
        assert_eq!(with_newline("a = 1\n"), "a = 1\n");
    }
}
