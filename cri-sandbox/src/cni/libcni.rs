//! [`LibCni`]: the [`CniNetwork`] that runs plugin binaries with libcni's
//! semantics (`AddNetworkList`/`DelNetworkList`, result cache) over the
//! networks go-cni would load: loopback on `lo`, then the first
//! `max_conf_num` configs of `conf_dir` on `eth0`, `eth1`, ...

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::cache::{CacheEntry, ResultCache};
use super::config::{load_network_configs, loopback_network, NetworkConfigList};
use super::error::{error_chain, CniError};
use super::exec::RuntimeConf;
use super::list::{
    validate_container_id, validate_interface_name, validate_network_name, ListRunner,
};
use super::network::SandboxNetwork;
use super::result::{parse_plugin_result, CniResult, PluginResult};
use super::CniNetwork;

/// libcni's default cache dir.
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/cni";
/// How long one plugin may run before it is killed.
pub const DEFAULT_PLUGIN_TIMEOUT: Duration = Duration::from_secs(120);

/// One network attachment: a config list and its interface.
#[derive(Clone, Debug, PartialEq)]
pub struct Attachment {
    pub network: NetworkConfigList,
    pub if_name: String,
}

/// Builds a [`LibCni`].
#[derive(Clone, Debug)]
pub struct LibCniBuilder {
    bin_dirs: Vec<PathBuf>,
    conf_dir: PathBuf,
    max_conf_num: usize,
    cache_dir: PathBuf,
    plugin_timeout: Duration,
    interface_prefix: String,
    loopback: bool,
    serially: bool,
}

impl LibCniBuilder {
    /// Plugins from `bin_dirs` (searched in order), configs from `conf_dir`.
    pub fn new(bin_dirs: Vec<PathBuf>, conf_dir: impl Into<PathBuf>) -> Self {
        Self {
            bin_dirs,
            conf_dir: conf_dir.into(),
            max_conf_num: 1,
            cache_dir: PathBuf::from(DEFAULT_CACHE_DIR),
            plugin_timeout: DEFAULT_PLUGIN_TIMEOUT,
            interface_prefix: "eth".into(),
            loopback: true,
            serially: false,
        }
    }

    /// How many configs to load (containerd's `max_conf_num`, default 1;
    /// 0 = all).
    pub fn with_max_conf_num(mut self, n: usize) -> Self {
        self.max_conf_num = n;
        self
    }

    /// The result cache dir (default `/var/lib/cni`).
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = dir.into();
        self
    }

    pub fn with_plugin_timeout(mut self, timeout: Duration) -> Self {
        self.plugin_timeout = timeout;
        self
    }

    /// Whether the loopback plugin's network is attached on `lo` (default
    /// true; false with containerd 2's `use_internal_loopback`, where the
    /// caller sets `lo` up itself).
    pub fn with_loopback(mut self, loopback: bool) -> Self {
        self.loopback = loopback;
        self
    }

    /// Attach the networks one after the other (containerd's
    /// `setup_serially`) instead of side by side, as go-cni's `Setup`.
    pub fn with_setup_serially(mut self, serially: bool) -> Self {
        self.serially = serially;
        self
    }

    /// Fails when no plugin directory is given.
    pub fn build(self) -> Result<LibCni, CniError> {
        if self.bin_dirs.is_empty() {
            return Err(CniError::NoPluginDirs);
        }
        Ok(LibCni {
            runner: ListRunner {
                bin_dirs: self.bin_dirs.clone(),
                timeout: self.plugin_timeout,
                cache: ResultCache::new(&self.cache_dir),
            },
            opts: self,
        })
    }
}

/// The plugin-executing CNI implementation. The config is re-read from
/// `conf_dir` at every setup and status, which stands in for containerd's
/// conf dir watcher; teardown uses the cached config of each attachment.
#[derive(Debug)]
pub struct LibCni {
    opts: LibCniBuilder,
    runner: ListRunner,
}

impl LibCni {
    /// The attachments setup would use now: loopback on `lo` (unless
    /// left out), then the configs of `conf_dir` on `eth0`, `eth1`...
    pub fn attachments(&self) -> Result<Vec<Attachment>, CniError> {
        let networks = load_network_configs(&self.opts.conf_dir, self.opts.max_conf_num)
            .map_err(CniError::NotInitialized)?;
        let mut out = Vec::with_capacity(networks.len() + 1);
        if self.opts.loopback {
            out.push(Attachment {
                network: loopback_network(),
                if_name: "lo".into(),
            });
        }
        out.extend(
            networks
                .into_iter()
                .enumerate()
                .map(|(i, network)| Attachment {
                    network,
                    if_name: format!("{}{i}", self.opts.interface_prefix),
                }),
        );
        Ok(out)
    }

    /// libcni `AddNetworkList` for every attachment: one after the other
    /// with `setup_serially`, else all at once, as go-cni's `Setup`.
    /// Results come in attachment order. When one fails, the others have
    /// ended too; those that succeeded are deleted again, newest first,
    /// and the error of the first failed attachment is returned.
    async fn add_all<'a>(
        &self,
        attachments: &'a [Attachment],
        net: &SandboxNetwork,
    ) -> Result<Vec<(&'a Attachment, RuntimeConf, Value)>, CniError> {
        let add = |att: &'a Attachment| async move {
            let rt = self.runtime_conf(net, &att.if_name);
            let added = self.runner.add_list(&att.network, &rt).await;
            (att, rt, added)
        };
        let outcomes = if self.opts.serially {
            let mut outcomes = Vec::with_capacity(attachments.len());
            for att in attachments {
                let outcome = add(att).await;
                let failed = outcome.2.is_err();
                outcomes.push(outcome);
                if failed {
                    break;
                }
            }
            outcomes
        } else {
            futures::future::join_all(attachments.iter().map(add)).await
        };
        let mut done = Vec::with_capacity(outcomes.len());
        let mut failure = None;
        for (att, rt, added) in outcomes {
            match added {
                Ok(result) => done.push((att, rt, result)),
                Err(err) if failure.is_none() => failure = Some((att, err)),
                Err((error, cleanup)) => {
                    tracing::warn!(sandbox_id = %net.sandbox_id, network = %att.network.name, error = %error_chain(&error), "cni setup of another network failed too");
                    for e in &cleanup {
                        tracing::warn!(sandbox_id = %net.sandbox_id, error = %error_chain(e), "cni cleanup after failed setup");
                    }
                }
            }
        }
        let Some((att, (error, mut cleanup))) = failure else {
            return Ok(done);
        };
        for (prev_att, prev_rt, _) in done.iter().rev() {
            let cached = self.runner.cache.read(
                &prev_att.network.name,
                &prev_rt.container_id,
                &prev_att.if_name,
            );
            if let Err(e) = self
                .runner
                .del_list(Some(&prev_att.network), cached, prev_rt)
                .await
            {
                cleanup.push(e);
            }
        }
        for e in &cleanup {
            tracing::warn!(sandbox_id = %net.sandbox_id, error = %error_chain(e), "cni cleanup after failed setup");
        }
        Err(CniError::Setup {
            sandbox_id: net.sandbox_id.to_string(),
            network: att.network.name.clone(),
            source: Box::new(error),
            cleanup,
        })
    }

    pub fn cache(&self) -> &ResultCache {
        &self.runner.cache
    }

    fn runtime_conf(&self, net: &SandboxNetwork, if_name: &str) -> RuntimeConf {
        RuntimeConf {
            container_id: net.sandbox_id.to_string(),
            netns: net.netns_path.display().to_string(),
            if_name: if_name.to_owned(),
            args: net.cni_args(),
            capability_args: net.capability_args(),
        }
    }
}

#[async_trait]
impl CniNetwork for LibCni {
    async fn setup(&self, net: &SandboxNetwork) -> Result<CniResult, CniError> {
        let attachments = self.attachments()?;
        let sandbox_id = net.sandbox_id.to_string();
        validate_container_id(&sandbox_id)?;
        for att in &attachments {
            validate_network_name(&att.network.name)?;
            validate_interface_name(&att.if_name)?;
        }
        let done = self.add_all(&attachments, net).await?;
        let mut parsed: Vec<PluginResult> = Vec::new();
        // Every network's result counts, loopback's too: go-cni keeps its
        // `lo` interface (127.0.0.1, ::1) in the pod's CNI result.
        for (att, _, result) in &done {
            parsed.push(parse_plugin_result(result).map_err(|reason| {
                CniError::InvalidNetworkResult {
                    network: att.network.name.clone(),
                    reason,
                }
            })?);
        }
        CniResult::from_results(&parsed).map_err(|reason| CniError::InvalidNetworkResult {
            network: done
                .last()
                .map(|(a, _, _)| a.network.name.clone())
                .unwrap_or_default(),
            reason,
        })
    }

    async fn teardown(&self, net: &SandboxNetwork) -> Result<(), CniError> {
        let sandbox_id = net.sandbox_id.to_string();
        let netns_empty = net.netns_path.as_os_str().is_empty();
        let mut cached = self.runner.cache.entries_for(&sandbox_id)?;
        let current = match self.attachments() {
            Ok(a) => a,
            Err(e) => {
                if cached.is_empty() {
                    tracing::warn!(sandbox_id = %sandbox_id, error = %error_chain(&e), "no cni config and no cached attachment; nothing to tear down");
                }
                Vec::new()
            }
        };
        // Current attachments in go-cni order, each with its cache entry,
        // then attachments only the cache knows (config changed since).
        let mut work: Vec<(String, Option<NetworkConfigList>, Option<CacheEntry>)> = Vec::new();
        for att in current {
            let pos = cached
                .iter()
                .position(|e| e.network_name == att.network.name && e.if_name == att.if_name);
            let entry = pos.map(|p| cached.remove(p));
            work.push((att.if_name, Some(att.network), entry));
        }
        for entry in cached {
            work.push((entry.if_name.clone(), None, Some(entry)));
        }
        for (if_name, current, entry) in work {
            let network = current
                .as_ref()
                .map(|l| l.name.clone())
                .or_else(|| entry.as_ref().map(|e| e.network_name.clone()))
                .unwrap_or_default();
            let rt = self.runtime_conf(net, &if_name);
            if let Err(e) = self.runner.del_list(current.as_ref(), entry, &rt).await {
                if e.is_gone(netns_empty) {
                    tracing::debug!(sandbox_id = %sandbox_id, network = %network, error = %error_chain(&e), "cni delete: already gone");
                    continue;
                }
                return Err(CniError::Teardown {
                    sandbox_id,
                    network,
                    source: Box::new(e),
                });
            }
        }
        Ok(())
    }

    async fn status(&self) -> Result<(), CniError> {
        self.attachments().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cri_api::ids::SandboxId;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    /// A fake plugin: logs `<type> <command> <ifname> <CNI_ARGS>` and its
    /// stdin to `calls`, prints a result with one IP on ADD, and fails ADD
    /// if its config has `"fail": true`.
    const FAKE_PLUGIN: &str = r#"#!/bin/sh
stdin=$(cat)
log="$(dirname "$0")/../calls"
echo "$(basename "$0") $CNI_COMMAND $CNI_IFNAME $CNI_ARGS" >> "$log"
echo "$stdin" >> "$log"
case "$CNI_COMMAND $stdin" in
ADD*'"fail":true'*) echo '{"code":11,"msg":"forced failure","details":"by test"}'; exit 1;;
esac
# With a `lo-waits` file, loopback's ADD ends only once an ADD on eth0 has
# begun (within 2 s), which it cannot if the attachments run one by one.
dir="$(dirname "$0")/.."
if [ "$CNI_COMMAND $CNI_IFNAME" = "ADD eth0" ]; then touch "$dir/eth0-began"; fi
if [ -e "$dir/lo-waits" ] && [ "$(basename "$0") $CNI_COMMAND $CNI_IFNAME" = "loopback ADD lo" ]; then
  i=0
  while [ ! -e "$dir/eth0-began" ]; do
    i=$((i+1)); [ $i -gt 40 ] && { echo '{"code":11,"msg":"eth0 never began"}'; exit 1; }
    sleep 0.05
  done
fi
if [ "$CNI_COMMAND" = ADD ]; then
  echo '{"cniVersion":"1.0.0","interfaces":[{"name":"'"$CNI_IFNAME"'","sandbox":"'"$CNI_NETNS"'"}],"ips":[{"address":"10.9.0.2/24","gateway":"10.9.0.1","interface":0}]}'
fi
"#;

    struct Env {
        dir: tempfile::TempDir,
        cni: LibCni,
    }

    impl Env {
        /// Attachments one by one, so the order of plugin runs is fixed.
        fn new(conflist: Value) -> Env {
            Self::with(conflist, |b| b.with_setup_serially(true))
        }

        fn with(conflist: Value, options: impl FnOnce(LibCniBuilder) -> LibCniBuilder) -> Env {
            let dir = tempfile::tempdir().unwrap();
            let bin = dir.path().join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            for name in ["loopback", "fake", "fake2"] {
                let path = bin.join(name);
                std::fs::write(&path, FAKE_PLUGIN).unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            let conf = dir.path().join("net.d");
            std::fs::create_dir_all(&conf).unwrap();
            std::fs::write(conf.join("10-test.conflist"), conflist.to_string()).unwrap();
            let builder = LibCniBuilder::new(vec![dir.path().join("nobin"), bin], conf)
                .with_cache_dir(dir.path().join("cache"))
                .with_plugin_timeout(Duration::from_secs(10));
            let cni = options(builder).build().unwrap();
            Env { dir, cni }
        }

        fn calls(&self) -> Vec<String> {
            std::fs::read_to_string(self.dir.path().join("calls"))
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect()
        }

        /// The `<type> <command> <ifname>` lines.
        fn commands(&self) -> Vec<String> {
            self.calls()
                .into_iter()
                .filter(|l| !l.starts_with('{'))
                .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
                .collect()
        }

        /// The stdin configs, in order.
        fn stdins(&self) -> Vec<Value> {
            self.calls()
                .into_iter()
                .filter(|l| l.starts_with('{'))
                .map(|l| serde_json::from_str(&l).unwrap())
                .collect()
        }

        fn cache_files(&self) -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(self.dir.path().join("cache/results"))
                .map(|r| {
                    r.filter_map(|e| e.ok())
                        .map(|e| e.file_name().into_string().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            names
        }
    }

    fn two_plugins(fail_second: bool) -> Value {
        json!({"cniVersion": "1.0.0", "name": "pods", "plugins": [
            {"type": "fake", "capabilities": {"portMappings": true}},
            {"type": "fake2", "fail": fail_second, "capabilities": {"cgroupPath": true}},
        ]})
    }

    fn sandbox() -> SandboxNetwork {
        SandboxNetwork {
            pod_name: "web".into(),
            pod_namespace: "default".into(),
            pod_uid: "uid-1".into(),
            cgroup_parent: "/kubepods/pod1".into(),
            ..SandboxNetwork::new(SandboxId::from("sb1"), "/var/run/netns/cni-test")
        }
    }

    fn check(commands: &[String], expected: &[&str]) {
        assert_eq!(commands, expected);
    }

    #[tokio::test]
    async fn setup_chains_results_caches_and_reports_go_cni_result() {
        let env = Env::new(two_plugins(false));
        let result = env.cni.setup(&sandbox()).await.unwrap();
        check(
            &env.commands(),
            &["loopback ADD lo", "fake ADD eth0", "fake2 ADD eth0"],
        );
        let stdins = env.stdins();
        assert_eq!(
            stdins[0],
            json!({"type": "loopback", "name": "cni-loopback", "cniVersion": "0.3.1"})
        );
        assert_eq!(stdins[1]["runtimeConfig"], Value::Null);
        assert_eq!(stdins[1].get("prevResult"), None);
        assert_eq!(stdins[2]["prevResult"]["ips"][0]["address"], "10.9.0.2/24");
        assert_eq!(
            stdins[2]["runtimeConfig"],
            json!({"cgroupPath": "/kubepods/pod1"})
        );
        let args_line = env
            .calls()
            .into_iter()
            .find(|l| l.starts_with("fake ADD"))
            .unwrap();
        assert!(args_line.ends_with(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=sb1;K8S_POD_UID=uid-1"
        ));
        assert_eq!(env.cache_files(), ["cni-loopback-sb1-lo", "pods-sb1-eth0"]);
        let entry = env.cni.cache().read("pods", "sb1", "eth0").unwrap();
        assert_eq!(
            entry.config,
            std::fs::read(env.dir.path().join("net.d/10-test.conflist")).unwrap()
        );
        assert_eq!(entry.capability_args["cgroupPath"], "/kubepods/pod1");
        // The fake plugin answers the same for every attachment; the
        // loopback network's answer (on `lo`) is kept, as go-cni keeps it.
        assert_eq!(
            serde_json::to_string(&result).unwrap(),
            r#"{"Interfaces":{"eth0":{"IPConfigs":[{"IP":"10.9.0.2","Gateway":"10.9.0.1"}],"Mac":"","Sandbox":"/var/run/netns/cni-test"},"lo":{"IPConfigs":[{"IP":"10.9.0.2","Gateway":"10.9.0.1"}],"Mac":"","Sandbox":"/var/run/netns/cni-test"}},"DNS":[{},{}],"Routes":null}"#
        );
        assert_eq!(result.pod_ips("ipv4"), Some(("10.9.0.2".into(), vec![])));
    }

    #[tokio::test]
    async fn a_network_chaining_the_loopback_plugin_keeps_its_result() {
        let env = Env::new(json!({"cniVersion": "1.0.0", "name": "pods", "plugins": [
            {"type": "fake"},
            {"type": "loopback"},
        ]}));
        let result = env.cni.setup(&sandbox()).await.unwrap();
        check(
            &env.commands(),
            &["loopback ADD lo", "fake ADD eth0", "loopback ADD eth0"],
        );
        assert_eq!(result.pod_ips("ipv4"), Some(("10.9.0.2".into(), vec![])));
    }

    #[tokio::test]
    async fn teardown_runs_del_in_reverse_with_cached_result_and_is_idempotent() {
        let env = Env::new(two_plugins(false));
        env.cni.setup(&sandbox()).await.unwrap();
        // The config changes after setup: DEL must still use the cached one.
        std::fs::write(
            env.dir.path().join("net.d/10-test.conflist"),
            json!({"cniVersion": "1.0.0", "name": "pods", "plugins": [{"type": "fake"}]})
                .to_string(),
        )
        .unwrap();
        std::fs::remove_file(env.dir.path().join("calls")).unwrap();
        env.cni.teardown(&sandbox()).await.unwrap();
        check(
            &env.commands(),
            &["loopback DEL lo", "fake2 DEL eth0", "fake DEL eth0"],
        );
        let stdins = env.stdins();
        assert_eq!(stdins[1]["prevResult"]["ips"][0]["address"], "10.9.0.2/24");
        assert_eq!(
            stdins[1]["runtimeConfig"],
            json!({"cgroupPath": "/kubepods/pod1"})
        );
        assert_eq!(
            stdins[0].get("prevResult"),
            None,
            "0.3.1 gets no prevResult"
        );
        assert!(env.cache_files().is_empty());

        std::fs::remove_file(env.dir.path().join("calls")).unwrap();
        env.cni.teardown(&sandbox()).await.unwrap();
        check(&env.commands(), &["loopback DEL lo", "fake DEL eth0"]);
    }

    #[tokio::test]
    async fn failed_add_deletes_what_ran_and_names_the_plugin() {
        let env = Env::new(two_plugins(true));
        let err = env.cni.setup(&sandbox()).await.unwrap_err();
        let text = error_chain(&err);
        assert!(
            matches!(&err, CniError::Setup { network, cleanup, .. } if network == "pods" && cleanup.is_empty()),
            "{text}"
        );
        assert!(
            text.contains(r#"plugin type="fake2" failed (add): forced failure; by test"#),
            "{text}"
        );
        check(
            &env.commands(),
            &[
                "loopback ADD lo",
                "fake ADD eth0",
                "fake2 ADD eth0",
                "fake2 DEL eth0",
                "fake DEL eth0",
                "loopback DEL lo",
            ],
        );
        assert!(env.cache_files().is_empty());
    }

    #[tokio::test]
    async fn missing_plugin_fails_setup_and_cleans_up() {
        let env = Env::new(json!({"cniVersion": "0.4.0", "name": "pods", "plugins": [
            {"type": "fake"}, {"type": "nonexistent"}
        ]}));
        let err = env.cni.setup(&sandbox()).await.unwrap_err();
        assert!(
            error_chain(&err).contains("failed to find plugin \"nonexistent\""),
            "{err}"
        );
        check(
            &env.commands(),
            &[
                "loopback ADD lo",
                "fake ADD eth0",
                "fake DEL eth0",
                "loopback DEL lo",
            ],
        );
        assert!(env.cache_files().is_empty());
    }

    #[tokio::test]
    async fn status_and_setup_need_a_config() {
        let env = Env::new(two_plugins(false));
        env.cni.status().await.unwrap();
        std::fs::remove_file(env.dir.path().join("net.d/10-test.conflist")).unwrap();
        assert!(matches!(
            env.cni.status().await,
            Err(CniError::NotInitialized(_))
        ));
        assert!(matches!(
            env.cni.setup(&sandbox()).await,
            Err(CniError::NotInitialized(_))
        ));
        // Nothing cached and no config: teardown has nothing to do.
        env.cni.teardown(&sandbox()).await.unwrap();
    }

    #[tokio::test]
    async fn teardown_without_config_uses_the_cache() {
        let env = Env::new(two_plugins(false));
        env.cni.setup(&sandbox()).await.unwrap();
        std::fs::remove_file(env.dir.path().join("net.d/10-test.conflist")).unwrap();
        std::fs::remove_file(env.dir.path().join("calls")).unwrap();
        env.cni.teardown(&sandbox()).await.unwrap();
        check(
            &env.commands(),
            &["loopback DEL lo", "fake2 DEL eth0", "fake DEL eth0"],
        );
        assert!(env.cache_files().is_empty());
    }

    /// The commands on interface `if_name`, in order.
    fn on(commands: &[String], if_name: &str) -> Vec<String> {
        commands
            .iter()
            .filter(|c| c.ends_with(&format!(" {if_name}")))
            .cloned()
            .collect()
    }

    #[tokio::test]
    async fn attachments_run_side_by_side_by_default() {
        let env = Env::with(two_plugins(false), |b| b);
        std::fs::write(env.dir.path().join("lo-waits"), b"").unwrap();
        let result = env.cni.setup(&sandbox()).await.unwrap();
        let commands = env.commands();
        assert_eq!(on(&commands, "lo"), ["loopback ADD lo"]);
        assert_eq!(on(&commands, "eth0"), ["fake ADD eth0", "fake2 ADD eth0"]);
        assert_eq!(env.cache_files(), ["cni-loopback-sb1-lo", "pods-sb1-eth0"]);
        assert!(result.interfaces.contains_key("lo"));
        assert_eq!(result.pod_ips("ipv4"), Some(("10.9.0.2".into(), vec![])));
    }

    #[tokio::test]
    async fn one_by_one_the_waiting_loopback_gives_up() {
        // The same plugins with `setup_serially`: loopback runs alone first,
        // so its wait for eth0 fails; eth0 is never attached.
        let env = Env::new(two_plugins(false));
        std::fs::write(env.dir.path().join("lo-waits"), b"").unwrap();
        let err = env.cni.setup(&sandbox()).await.unwrap_err();
        assert!(error_chain(&err).contains("eth0 never began"), "{err}");
        assert_eq!(env.commands(), ["loopback ADD lo", "loopback DEL lo"]);
    }

    #[tokio::test]
    async fn a_failed_attachment_side_by_side_removes_the_others_after_all_ended() {
        let env = Env::with(two_plugins(true), |b| b);
        let err = env.cni.setup(&sandbox()).await.unwrap_err();
        assert!(
            matches!(&err, CniError::Setup { network, cleanup, .. } if network == "pods" && cleanup.is_empty()),
            "{}",
            error_chain(&err)
        );
        let commands = env.commands();
        assert_eq!(
            on(&commands, "eth0"),
            [
                "fake ADD eth0",
                "fake2 ADD eth0",
                "fake2 DEL eth0",
                "fake DEL eth0"
            ]
        );
        assert_eq!(on(&commands, "lo"), ["loopback ADD lo", "loopback DEL lo"]);
        assert_eq!(commands.last().map(String::as_str), Some("loopback DEL lo"));
        assert!(env.cache_files().is_empty());
    }

    #[tokio::test]
    async fn without_the_loopback_network_only_the_configs_attach() {
        let env = Env::with(two_plugins(false), |b| b.with_loopback(false));
        let names: Vec<String> = env
            .cni
            .attachments()
            .unwrap()
            .into_iter()
            .map(|a| a.if_name)
            .collect();
        assert_eq!(names, ["eth0"]);
        let result = env.cni.setup(&sandbox()).await.unwrap();
        assert_eq!(env.commands(), ["fake ADD eth0", "fake2 ADD eth0"]);
        assert_eq!(env.cache_files(), ["pods-sb1-eth0"]);
        assert!(!result.interfaces.contains_key("lo"));
        std::fs::remove_file(env.dir.path().join("calls")).unwrap();
        env.cni.teardown(&sandbox()).await.unwrap();
        assert_eq!(env.commands(), ["fake2 DEL eth0", "fake DEL eth0"]);
    }
}
