//! Running one CNI plugin binary as libcni's `invoke` does: finding it in
//! the bin dirs, the `CNI_*` environment, the stdin config with injected
//! `name`/`cniVersion`/`prevResult`/`runtimeConfig`, a timeout, and the
//! error report on failure.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;

use super::error::{CniError, PluginError};

/// The CNI command run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    Add,
    Del,
}

impl Command {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
        }
    }

    /// The word libcni puts in its errors: `failed (add)`.
    pub(crate) fn verb(self) -> &'static str {
        match self {
            Command::Add => "add",
            Command::Del => "delete",
        }
    }
}

/// libcni `RuntimeConf`: what every plugin of one attachment gets.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RuntimeConf {
    pub container_id: String,
    pub netns: String,
    pub if_name: String,
    pub args: Vec<(String, String)>,
    pub capability_args: Map<String, Value>,
}

/// The `CNI_*` variables (libcni `Args.AsEnv`), set over the inherited
/// environment.
pub(crate) fn plugin_env(
    command: Command,
    rt: &RuntimeConf,
    bin_dirs: &[PathBuf],
) -> Vec<(&'static str, String)> {
    let args: Vec<String> = rt.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let path: Vec<String> = bin_dirs.iter().map(|d| d.display().to_string()).collect();
    vec![
        ("CNI_COMMAND", command.as_str().to_owned()),
        ("CNI_CONTAINERID", rt.container_id.clone()),
        ("CNI_NETNS", rt.netns.clone()),
        ("CNI_ARGS", args.join(";")),
        ("CNI_IFNAME", rt.if_name.clone()),
        ("CNI_PATH", path.join(":")),
    ]
}

/// The plugin's stdin (libcni `buildOneConfig`): the plugin's own config
/// with the list's `name` and `cniVersion`, `prevResult` when given, and a
/// `runtimeConfig` holding only the capability args the plugin declares
/// (`"capabilities": {"portMappings": true}`), if any.
pub(crate) fn plugin_config(
    network: &str,
    cni_version: &str,
    plugin: &Value,
    prev_result: Option<&Value>,
    capability_args: &Map<String, Value>,
) -> Value {
    let mut conf = plugin.as_object().cloned().unwrap_or_default();
    conf.insert("name".into(), Value::String(network.to_owned()));
    conf.insert("cniVersion".into(), Value::String(cni_version.to_owned()));
    if let Some(prev) = prev_result {
        conf.insert("prevResult".into(), prev.clone());
    }
    let declared = plugin
        .get("capabilities")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let runtime_config: Map<String, Value> = declared
        .iter()
        .filter(|(_, enabled)| enabled.as_bool() == Some(true))
        .filter_map(|(cap, _)| capability_args.get(cap).map(|v| (cap.clone(), v.clone())))
        .collect();
    if !runtime_config.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(runtime_config));
    }
    Value::Object(conf)
}

/// `type="bridge" name="pods"`, as libcni's `pluginDescription`.
pub(crate) fn plugin_description(plugin: &Value) -> String {
    let text = |k: &str| plugin.get(k).and_then(Value::as_str).unwrap_or_default();
    let mut out = format!("type={:?}", text("type"));
    if !text("name").is_empty() {
        out.push_str(&format!(" name={:?}", text("name")));
    }
    out
}

/// The first regular file named `plugin` in `dirs` (libcni `FindInPath`).
pub(crate) fn find_plugin(plugin: &str, dirs: &[PathBuf]) -> Result<PathBuf, CniError> {
    let not_found = || CniError::PluginNotFound {
        plugin: plugin.to_owned(),
        dirs: dirs.to_vec(),
    };
    if plugin.is_empty() || plugin.contains('/') {
        return Err(not_found());
    }
    dirs.iter()
        .map(|d| d.join(plugin))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
        .ok_or_else(not_found)
}

/// Why one plugin run failed, before the caller names the plugin.
#[derive(Debug)]
pub(crate) enum ExecFailure {
    Spawn(std::io::Error),
    Timeout,
    Failed(PluginError),
}

/// Runs a plugin: stdin = `config`, env = inherited + `env`; returns its
/// stdout on exit 0. A failure report comes from stdout JSON, else stderr
/// (libcni `pluginErr`). Retries "text file busy" like libcni's `RawExec`.
pub(crate) async fn run_plugin(
    path: &Path,
    config: &[u8],
    env: &[(&'static str, String)],
    timeout: Duration,
) -> Result<Vec<u8>, ExecFailure> {
    let mut attempt = 0;
    let child = loop {
        let mut cmd = tokio::process::Command::new(path);
        cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        match cmd.spawn() {
            Ok(child) => break child,
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < 5 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(ExecFailure::Spawn(e)),
        }
    };
    let run = async move {
        let mut child = child;
        let stdin = child.stdin.take();
        let input = config.to_vec();
        let feed = async move {
            if let Some(mut stdin) = stdin {
                // A plugin that exits without reading is not an error here.
                let _ = stdin.write_all(&input).await;
                let _ = stdin.shutdown().await;
            }
        };
        let (_, output) = tokio::join!(feed, child.wait_with_output());
        output
    };
    let output = match tokio::time::timeout(timeout, run).await {
        Err(_) => return Err(ExecFailure::Timeout),
        Ok(Err(e)) => return Err(ExecFailure::Spawn(e)),
        Ok(Ok(output)) => output,
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        if !stderr.trim().is_empty() {
            tracing::debug!(plugin = %path.display(), stderr = %stderr.trim(), "cni plugin stderr");
        }
        return Ok(output.stdout);
    }
    Err(ExecFailure::Failed(plugin_error(
        &output.status.to_string(),
        &output.stdout,
        &stderr,
    )))
}

/// libcni `pluginErr`: the plugin's JSON error, or its stderr.
pub(crate) fn plugin_error(status: &str, stdout: &[u8], stderr: &str) -> PluginError {
    if stdout.iter().all(u8::is_ascii_whitespace) {
        let msg = if stderr.trim().is_empty() {
            format!("netplugin failed with no error message: {status}")
        } else {
            format!("netplugin failed: {:?}", stderr)
        };
        return PluginError {
            msg,
            ..Default::default()
        };
    }
    match serde_json::from_slice::<PluginError>(stdout) {
        Ok(mut e) => {
            if e.msg.is_empty() && !stderr.trim().is_empty() {
                e.msg = stderr.trim().to_owned();
            }
            e
        }
        Err(err) => PluginError {
            msg: format!(
                "netplugin failed but error parsing its diagnostic message {:?}: {err}",
                String::from_utf8_lossy(stdout)
            ),
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn check(plugin: Value, prev: Option<Value>, caps: Value, expected: Value) {
        let caps = caps.as_object().cloned().unwrap();
        assert_eq!(
            plugin_config("pods", "1.0.0", &plugin, prev.as_ref(), &caps),
            expected
        );
    }

    fn caps() -> Value {
        json!({
            "portMappings": [{"HostPort": 80, "ContainerPort": 8080, "Protocol": "tcp", "HostIP": ""}],
            "bandwidth": {"IngressRate": 1000},
            "io.kubernetes.cri.pod-annotations": null,
        })
    }

    #[test]
    fn name_and_version_are_injected() {
        check(
            json!({"type": "bridge", "name": "other", "cniVersion": "0.3.1"}),
            None,
            caps(),
            json!({"type": "bridge", "name": "pods", "cniVersion": "1.0.0"}),
        );
    }

    #[test]
    fn only_declared_capabilities_reach_runtime_config() {
        check(
            json!({"type": "portmap", "capabilities": {"portMappings": true, "bandwidth": false, "dns": true}}),
            None,
            caps(),
            json!({
                "type": "portmap", "name": "pods", "cniVersion": "1.0.0",
                "capabilities": {"portMappings": true, "bandwidth": false, "dns": true},
                "runtimeConfig": {"portMappings": [{"HostPort": 80, "ContainerPort": 8080, "Protocol": "tcp", "HostIP": ""}]},
            }),
        );
        check(
            json!({"type": "bridge", "capabilities": {"io.kubernetes.cri.pod-annotations": true}}),
            None,
            caps(),
            json!({
                "type": "bridge", "name": "pods", "cniVersion": "1.0.0",
                "capabilities": {"io.kubernetes.cri.pod-annotations": true},
                "runtimeConfig": {"io.kubernetes.cri.pod-annotations": null},
            }),
        );
        check(
            json!({"type": "bridge", "capabilities": {"ipRanges": true}, "runtimeConfig": {"stale": 1}}),
            None,
            caps(),
            json!({
                "type": "bridge", "name": "pods", "cniVersion": "1.0.0",
                "capabilities": {"ipRanges": true}, "runtimeConfig": {"stale": 1},
            }),
        );
    }

    #[test]
    fn prev_result_is_chained() {
        let prev = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}]});
        check(
            json!({"type": "portmap"}),
            Some(prev.clone()),
            json!({}),
            json!({"type": "portmap", "name": "pods", "cniVersion": "1.0.0", "prevResult": prev}),
        );
    }

    #[test]
    fn env_has_cni_variables() {
        let rt = RuntimeConf {
            container_id: "sb1".into(),
            netns: "/var/run/netns/cni-1".into(),
            if_name: "eth0".into(),
            args: vec![
                ("IgnoreUnknown".into(), "1".into()),
                ("K8S_POD_NAME".into(), "web".into()),
            ],
            capability_args: Map::new(),
        };
        let env = plugin_env(
            Command::Del,
            &rt,
            &["/opt/cni/bin".into(), "/usr/lib/cni".into()],
        );
        let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            env,
            [
                "CNI_COMMAND=DEL",
                "CNI_CONTAINERID=sb1",
                "CNI_NETNS=/var/run/netns/cni-1",
                "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAME=web",
                "CNI_IFNAME=eth0",
                "CNI_PATH=/opt/cni/bin:/usr/lib/cni",
            ]
        );
    }

    #[test]
    fn plugin_errors_from_json_or_stderr() {
        let e = plugin_error(
            "exit status: 1",
            br#"{"code":7,"msg":"bad","details":"why"}"#,
            "",
        );
        assert_eq!((e.code, e.to_string()), (7, "bad; why".to_string()));
        let e = plugin_error("exit status: 1", b"", "boom\n");
        assert_eq!(e.to_string(), "netplugin failed: \"boom\\n\"");
        let e = plugin_error("exit status: 2", b"", "");
        assert_eq!(
            e.to_string(),
            "netplugin failed with no error message: exit status: 2"
        );
        let e = plugin_error("exit status: 1", b"oops", "");
        assert!(
            e.msg.starts_with("netplugin failed but error parsing"),
            "{e}"
        );
    }

    #[test]
    fn plugins_are_found_in_order() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(b.path().join("bridge"), b"").unwrap();
        std::fs::create_dir(a.path().join("bridge")).unwrap();
        let dirs = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        assert_eq!(
            find_plugin("bridge", &dirs).unwrap(),
            b.path().join("bridge")
        );
        assert!(matches!(
            find_plugin("nope", &dirs),
            Err(CniError::PluginNotFound { .. })
        ));
        assert!(find_plugin("../bridge", &dirs).is_err());
    }

    #[tokio::test]
    async fn run_plugin_feeds_stdin_and_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("echo");
        std::fs::write(&script, "#!/bin/sh\necho \"$CNI_COMMAND\"; cat\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = run_plugin(
            &script,
            b"{}",
            &[("CNI_COMMAND", "ADD".into())],
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(out, b"ADD\n{}");

        let slow = dir.path().join("slow");
        std::fs::write(&slow, "#!/bin/sh\nexec sleep 5\n").unwrap();
        std::fs::set_permissions(&slow, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = run_plugin(&slow, b"{}", &[], Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(err, ExecFailure::Timeout), "{err:?}");
    }
}
