//! What a critest run needs around the daemon under test: critest found on the host, its images in the harness registry with `hosts.toml` mirrors for their upstream registries, the daemon (cri-server on the harness's containerd, or containerd's own CRI plugin as the reference), the `-test-images-file`, critest's summary, and the SysV shm segments its HostIpc specs leave behind.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use crate::components::{Component, CHILD_PATH, CNI_BIN_DIR};
use crate::containerd::{toml_string, ContainerdProcess};
use crate::images::critest::{self, push_critest_images, UPSTREAM_REGISTRIES};
use crate::network::TestNetwork;
use crate::server::{CriServer, ServerOptions};
use crate::{teardown, Harness};

/// The size of the segments critest's HostIpc specs create (`ipcmk -M 1048576`).
const CRITEST_SHM_BYTES: u64 = 1_048_576;

/// Which CRI implementation critest runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `cri-server` on the harness's containerd (CRI plugin disabled).
    CriServer,
    /// A second containerd from the same package with its own CRI plugin
    /// enabled: what cri-server is compared with.
    Reference,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::CriServer => "cri-server",
            Target::Reference => "containerd-cri",
        }
    }
}

/// Where cri-server keeps its CRI root and state dirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerDirs {
    /// Under its own private directory.
    Own,
    /// Where containerd's CRI plugin keeps them
    /// (`<containerd root|state>/io.containerd.grpc.v1.cri`), so the
    /// plugin, enabled later on the same containerd, finds what cri-server
    /// wrote.
    ContainerdLayout,
}

/// The daemon critest talks to.
#[derive(Debug)]
pub enum Daemon {
    CriServer(Box<CriServer>),
    Reference(Box<ReferenceDaemon>),
}

/// containerd with its CRI plugin, and the CNI network its pods use. Field
/// order is drop order: containerd (and its pods) first, then the bridge.
#[derive(Debug)]
pub struct ReferenceDaemon {
    pub containerd: ContainerdProcess,
    pub network: TestNetwork,
}

impl ReferenceDaemon {
    /// Leases a CNI network, writes its conflist under `dir/net.d` and
    /// starts containerd with its CRI plugin configured by
    /// [`reference_cri_toml`] (registry mirrors from the `hosts.toml` dirs
    /// under `certs`). `dir` is torn down by its owner.
    pub async fn start(dir: &Path, certs: &Path) -> Result<ReferenceDaemon> {
        let network = TestNetwork::lease()?;
        std::fs::write(dir.join(teardown::BRIDGES_FILE), &network.bridge)?;
        let net_d = dir.join("net.d");
        std::fs::create_dir_all(&net_d)?;
        std::fs::write(
            net_d.join("10-cri-tests.conflist"),
            network.conflist(&dir.join("cni-ipam")),
        )?;
        let containerd =
            ContainerdProcess::start_with_cri(&reference_cri_toml(&net_d, certs)).await?;
        Ok(ReferenceDaemon {
            containerd,
            network,
        })
    }

    /// The CRI plugin's root dir (`<containerd root>/io.containerd.grpc.v1.cri`).
    pub fn cri_root(&self) -> PathBuf {
        self.containerd.root().join(CRI_PLUGIN_DIR)
    }

    /// The CRI plugin's state dir (`<containerd state>/io.containerd.grpc.v1.cri`).
    pub fn cri_state(&self) -> PathBuf {
        self.containerd.state().join(CRI_PLUGIN_DIR)
    }
}

/// The CRI plugin's directory name under containerd's root and state.
pub const CRI_PLUGIN_DIR: &str = "io.containerd.grpc.v1.cri";

impl Daemon {
    /// The CRI socket (runtime and image service).
    pub fn socket(&self) -> &Path {
        match self {
            Daemon::CriServer(server) => server.socket(),
            Daemon::Reference(reference) => reference.containerd.socket(),
        }
    }

    /// What the daemon logged so far.
    pub fn log(&self) -> String {
        match self {
            Daemon::CriServer(server) => server.log(),
            Daemon::Reference(reference) => reference.containerd.log(),
        }
    }
}

/// Everything a critest run talks to; torn down on drop, the daemon first.
#[derive(Debug)]
pub struct Conformance {
    pub daemon: Daemon,
    pub harness: Harness,
    /// The upstream names of the images pushed to the harness registry.
    pub images: Vec<String>,
    /// `hosts.toml` dirs, CNI config and the test-images file.
    dir: PathBuf,
}

impl Conformance {
    /// Starts the harness (containerd, registry), pushes critest's images,
    /// writes the registry mirrors and starts the daemon for `target`.
    pub async fn start(target: Target) -> Result<Conformance> {
        Self::start_in(target, ServerDirs::Own).await
    }

    /// Like [`start`](Self::start), with cri-server's root and state dirs
    /// chosen by `dirs`.
    pub async fn start_in(target: Target, dirs: ServerDirs) -> Result<Conformance> {
        Component::BusyboxShell.path()?;
        let harness = Harness::start().await?;
        let images = push_critest_images(&harness.registry.client())
            .await
            .context("push the critest images")?;
        let dir = teardown::new_component_dir("conf")?;
        let certs = dir.join("certs.d");
        write_hosts_dirs(&certs, &harness.registry.host())?;
        let daemon = match target {
            Target::CriServer => {
                let mut options = cri_server_options(&certs);
                if dirs == ServerDirs::ContainerdLayout {
                    let containerd = &harness.containerd;
                    options.extra_args = vec![
                        "--root".into(),
                        containerd
                            .root()
                            .join(CRI_PLUGIN_DIR)
                            .to_string_lossy()
                            .into_owned(),
                        "--state".into(),
                        containerd
                            .state()
                            .join(CRI_PLUGIN_DIR)
                            .to_string_lossy()
                            .into_owned(),
                    ];
                }
                Daemon::CriServer(Box::new(
                    CriServer::start(&harness.containerd, options).await?,
                ))
            }
            Target::Reference => {
                Daemon::Reference(Box::new(ReferenceDaemon::start(&dir, &certs).await?))
            }
        };
        Ok(Conformance {
            daemon,
            harness,
            images,
            dir,
        })
    }

    /// The `hosts.toml` dirs (one per upstream registry, all mirrored to
    /// the harness registry).
    pub fn certs_dir(&self) -> PathBuf {
        self.dir.join("certs.d")
    }

    /// A directory torn down with this setup, for a second daemon's files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes critest's `-test-images-file` and returns its path.
    pub fn write_test_images_file(&self) -> Result<PathBuf> {
        let path = self.dir.join("test-images.yaml");
        std::fs::write(&path, test_images_yaml())
            .with_context(|| format!("write {}", path.display()))?;
        Ok(path)
    }
}

impl Drop for Conformance {
    fn drop(&mut self) {
        // The daemon and harness go with their fields, after this.
        if let Err(e) = teardown::teardown_dir(&self.dir) {
            eprintln!("conformance teardown: {e:#}");
        }
    }
}

/// cri-server as [`reference_cri_toml`] configures containerd's plugin:
/// critest's sandbox image and the registry mirrors under `certs`.
pub fn cri_server_options(certs: &Path) -> ServerOptions {
    ServerOptions {
        sandbox_image: Some(critest::PAUSE.into()),
        extra_toml: registry_toml(certs),
        ..ServerOptions::default()
    }
}

/// The `[plugins."io.containerd.grpc.v1.cri".registry]` table pointing at
/// the `hosts.toml` dirs.
fn registry_toml(certs: &Path) -> String {
    format!(
        "[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = {}\n",
        toml_string(&certs.to_string_lossy())
    )
}

/// containerd's own CRI plugin as cri-server is configured: same sandbox
/// image, mirrors and CNI plugins. Root here lacks CAP_SYS_RESOURCE, so
/// OOM score adjustments are clamped rather than refused.
pub fn reference_cri_toml(net_d: &Path, certs: &Path) -> String {
    let q = |p: &Path| toml_string(&p.to_string_lossy());
    format!(
        r#"[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = {pause}
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = {bin_dir}
  conf_dir = {conf_dir}

{registry}"#,
        pause = toml_string(critest::PAUSE),
        bin_dir = toml_string(CNI_BIN_DIR),
        conf_dir = q(net_d),
        registry = registry_toml(certs),
    )
}

/// One `<certs>/<registry>/hosts.toml` per upstream registry critest pulls
/// from, each sending pulls to `local` (`host:port`) over plain HTTP.
pub fn write_hosts_dirs(certs: &Path, local: &str) -> Result<()> {
    for upstream in UPSTREAM_REGISTRIES {
        let dir = certs.join(upstream);
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        std::fs::write(dir.join("hosts.toml"), hosts_toml(upstream, local))
            .with_context(|| format!("write {}/hosts.toml", dir.display()))?;
    }
    Ok(())
}

fn hosts_toml(upstream: &str, local: &str) -> String {
    format!(
        "server = \"https://{upstream}\"\n\n[host.\"http://{local}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
    )
}

/// critest's `-test-images-file`.
pub fn test_images_yaml() -> String {
    format!(
        "defaultTestContainerImage: {}\nwebServerTestImage: {}\n",
        critest::BUSYBOX,
        critest::NGINX
    )
}

/// critest: `$CRITEST`, else `../shared/tools/critest` from the workspace
/// root, else `critest` on `$PATH`.
pub fn find_critest() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CRITEST").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let shared = crate::workspace_root().join("../shared/tools/critest");
    if shared.is_file() {
        return Some(shared);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("critest"))
        .find(|candidate| candidate.is_file())
}

/// The counts of ginkgo's summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub ran: u32,
    pub total: u32,
    pub passed: u32,
    pub failed: u32,
    pub pending: u32,
    pub skipped: u32,
}

/// Parses `Ran N of M Specs in ...` and `... N Passed | N Failed | N
/// Pending | N Skipped` from critest's output (the last of each).
pub fn parse_summary(output: &str) -> Option<Summary> {
    let mut summary = Summary::default();
    let (mut ran_seen, mut counts_seen) = (false, false);
    for line in output.lines().map(strip_ansi) {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Ran ") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            if let [ran, "of", total, "Specs" | "Spec", ..] = words.as_slice() {
                if let (Ok(ran), Ok(total)) = (ran.parse(), total.parse()) {
                    summary.ran = ran;
                    summary.total = total;
                    ran_seen = true;
                }
            }
        } else if line.contains(" Passed | ") && line.contains(" Failed") {
            let counts = line.rsplit("-- ").next().unwrap_or(line);
            for part in counts.split('|') {
                let mut words = part.split_whitespace();
                let (Some(n), Some(what)) = (words.next(), words.next()) else {
                    continue;
                };
                let Ok(n) = n.parse() else { continue };
                match what {
                    "Passed" => summary.passed = n,
                    "Failed" => summary.failed = n,
                    "Pending" => summary.pending = n,
                    "Skipped" => summary.skipped = n,
                    _ => {}
                }
            }
            counts_seen = true;
        }
    }
    (ran_seen && counts_seen).then_some(summary)
}

/// The specs ginkgo's closing summary lists as failed (`[FAIL] ...`,
/// `[PANICKED!] ...`, `[TIMEDOUT] ...`), without the marker.
pub fn failed_specs(output: &str) -> Vec<String> {
    let mut in_summary = false;
    let mut specs = Vec::new();
    for line in output.lines().map(strip_ansi) {
        let line = line.trim();
        if line.starts_with("Summarizing ") {
            in_summary = true;
            continue;
        }
        if !in_summary {
            continue;
        }
        for marker in ["[FAIL] ", "[PANICKED!] ", "[TIMEDOUT] ", "[INTERRUPTED] "] {
            if let Some(spec) = line.strip_prefix(marker) {
                specs.push(spec.to_string());
            }
        }
    }
    specs
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One row of `/proc/sysvipc/shm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShmSegment {
    pub id: i32,
    pub bytes: u64,
    pub attached: u64,
}

/// The host's SysV shared memory segments.
pub fn shm_segments() -> Vec<ShmSegment> {
    std::fs::read_to_string("/proc/sysvipc/shm")
        .map(|text| parse_sysvipc_shm(&text))
        .unwrap_or_default()
}

fn parse_sysvipc_shm(text: &str) -> Vec<ShmSegment> {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let column = |name: &str| header.split_whitespace().position(|c| c == name);
    let (Some(id), Some(size), Some(nattch)) = (column("shmid"), column("size"), column("nattch"))
    else {
        return Vec::new();
    };
    lines
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            Some(ShmSegment {
                id: fields.get(id)?.parse().ok()?,
                bytes: fields.get(size)?.parse().ok()?,
                attached: fields.get(nattch)?.parse().ok()?,
            })
        })
        .collect()
}

/// Removes with `ipcrm -m ID` the 1 MiB segments critest's HostIpc specs
/// created on the host: unattached ones that were not in `before`.
/// Returns the removed ids.
pub fn remove_critest_shm(before: &[ShmSegment]) -> Vec<i32> {
    let known: BTreeSet<i32> = before.iter().map(|s| s.id).collect();
    shm_segments()
        .into_iter()
        .filter(|s| !known.contains(&s.id) && s.bytes == CRITEST_SHM_BYTES && s.attached == 0)
        .filter(|s| {
            Command::new("ipcrm")
                .arg("-m")
                .arg(s.id.to_string())
                .env("PATH", CHILD_PATH)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        })
        .map(|s| s.id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSING: &str = "Ran 77 of 86 Specs in 95.208 seconds\n\
        SUCCESS! -- 77 Passed | 0 Failed | 0 Pending | 9 Skipped\nPASS\n";

    #[test]
    fn summary_of_a_passing_run() {
        assert_eq!(
            parse_summary(PASSING),
            Some(Summary {
                ran: 77,
                total: 86,
                passed: 77,
                failed: 0,
                pending: 0,
                skipped: 9
            })
        );
    }

    #[test]
    fn summary_and_failures_of_a_failing_run() {
        let out = "\u{1b}[1mRan 3 of 86 Specs\u{1b}[0m in 5.1 seconds\n\
            \u{1b}[38;5;9mFAIL!\u{1b}[0m -- 1 Passed | 2 Failed | 0 Pending | 83 Skipped\n\
            \n\
            Summarizing 2 Failures:\n  \
            [FAIL] [sig-node] Security Context NamespaceOption [It] runtime should support HostPID\n  \
            /go/src/security_context_linux.go:120\n  \
            [PANICKED!] [sig-node] Streaming [It] runtime should support exec\n";
        let summary = parse_summary(out);
        assert_eq!(
            summary.map(|s| (s.ran, s.passed, s.failed)),
            Some((3, 1, 2))
        );
        assert_eq!(
            failed_specs(out),
            [
                "[sig-node] Security Context NamespaceOption [It] runtime should support HostPID",
                "[sig-node] Streaming [It] runtime should support exec"
            ]
        );
        assert!(failed_specs(PASSING).is_empty());
    }

    #[test]
    fn no_summary_without_both_lines() {
        assert_eq!(parse_summary("Ran 3 of 86 Specs in 1s\n"), None);
        assert_eq!(parse_summary("panic: boom\n"), None);
    }

    #[test]
    fn sysvipc_rows_are_read_by_column_name() {
        let text =
            "       key      shmid perms                  size  cpid  lpid nattch   uid   gid\n\
                    0 32768 644 1048576 10 0 0 0 0\n\
                    1234 32769 600 4096 11 12 2 0 0\n";
        assert_eq!(
            parse_sysvipc_shm(text),
            [
                ShmSegment {
                    id: 32768,
                    bytes: 1_048_576,
                    attached: 0
                },
                ShmSegment {
                    id: 32769,
                    bytes: 4096,
                    attached: 2
                }
            ]
        );
    }

    #[test]
    fn hosts_toml_sends_pulls_to_the_local_registry() -> anyhow::Result<()> {
        let doc: toml::Table = toml::from_str(&hosts_toml("gcr.io", "127.0.0.1:5000"))?;
        assert_eq!(doc["server"].as_str(), Some("https://gcr.io"));
        let host = &doc["host"]["http://127.0.0.1:5000"];
        assert_eq!(host["capabilities"][0].as_str(), Some("pull"));
        let cri: toml::Table = toml::from_str(&reference_cri_toml(
            Path::new("/c/net.d"),
            Path::new("/c/certs.d"),
        ))?;
        let plugin = &cri["plugins"]["io.containerd.grpc.v1.cri"];
        assert_eq!(plugin["sandbox_image"].as_str(), Some(critest::PAUSE));
        assert_eq!(
            plugin["registry"]["config_path"].as_str(),
            Some("/c/certs.d")
        );
        assert_eq!(plugin["cni"]["conf_dir"].as_str(), Some("/c/net.d"));
        Ok(())
    }
}
