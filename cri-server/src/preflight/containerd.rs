//! Checks against containerd's Version and Introspection services: it
//! answers, it is 1.6 or later, the snapshotter of every runtime handler is
//! loaded, and containerd's own CRI plugin is not serving our namespace.

use std::collections::BTreeMap;

use cri_api::containerd::{ContainerdError, Introspection, PluginInfo, Version};

use super::Check;
use cri_config::{Config, DEFAULT_CONTAINERD_NAMESPACE};

/// The oldest containerd cri-server works with.
const MIN_VERSION: (u64, u64) = (1, 6);
/// containerd's snapshotter plugin type.
const SNAPSHOTTER_TYPE: &str = "io.containerd.snapshotter.v1";
/// containerd's CRI plugins as `(type, id)`: 1.x's one plugin, and 2.x's
/// gRPC service plus its runtime and images halves.
pub const CRI_PLUGINS: &[(&str, &str)] = &[
    ("io.containerd.grpc.v1", "cri"),
    ("io.containerd.cri.v1", "runtime"),
    ("io.containerd.cri.v1", "images"),
];

/// What asking containerd gave.
#[derive(Debug)]
pub enum ContainerdProbe {
    /// containerd did not answer `Version`.
    Unreachable(ContainerdError),
    /// It answered; the checks that followed.
    Checked(Vec<Check>),
}

/// Runs the containerd checks.
pub async fn check_containerd(
    version: &dyn Version,
    introspection: &dyn Introspection,
    config: &Config,
) -> ContainerdProbe {
    let address = config.server.containerd_address.display().to_string();
    let info = match version.version().await {
        Ok(info) => info,
        Err(e) => return ContainerdProbe::Unreachable(e),
    };
    let mut checks = vec![version_check(&info.version, &address)];
    match introspection.plugins(Vec::new()).await {
        Ok(plugins) => {
            checks.extend(snapshotter_checks(&plugins, config));
            checks.push(cri_plugin_check(&plugins, config));
        }
        Err(e) => checks.push(Check::failed(
            "containerd plugins",
            format!("cannot list containerd's plugins: {e}"),
            "check containerd's log; the Introspection service must answer",
        )),
    }
    ContainerdProbe::Checked(checks)
}

/// The failed check for an unreachable containerd (`cri-server check`).
pub(super) fn unreachable_check(error: &ContainerdError, config: &Config) -> Check {
    Check::failed(
        "containerd",
        format!(
            "no answer at {}: {error}",
            config.server.containerd_address.display()
        ),
        "start containerd (systemctl start containerd), or point --containerd-address / [cri_server] containerd_address at its socket",
    )
}

/// `major.minor` of a containerd version string: `1.6.20~ds1`, `v1.7.2`,
/// `2.0.0-rc.1`, `1.7.0+unknown`.
pub fn parse_version(version: &str) -> Option<(u64, u64)> {
    let mut parts = version.trim().trim_start_matches('v').split('.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor.parse().ok()?))
}

fn version_check(version: &str, address: &str) -> Check {
    const NAME: &str = "containerd version";
    match parse_version(version) {
        Some(v) if v >= MIN_VERSION => Check::ok(NAME, format!("{version} at {address}")),
        Some(_) => Check::failed(
            NAME,
            format!("containerd {version} at {address} is older than 1.6"),
            "upgrade containerd to 1.6 or later",
        ),
        None => Check::warn(
            NAME,
            format!("cannot read containerd's version {version:?} at {address}"),
            "make sure containerd is 1.6 or later",
        ),
    }
}

/// One check per snapshotter the runtime handlers use.
fn snapshotter_checks(plugins: &[PluginInfo], config: &Config) -> Vec<Check> {
    let mut by_snapshotter: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for handler in config.cri.runtimes.keys() {
        by_snapshotter
            .entry(config.cri.snapshotter_for(handler))
            .or_default()
            .push(handler);
    }
    by_snapshotter
        .into_iter()
        .map(|(snapshotter, handlers)| {
            let name = format!("snapshotter {snapshotter}");
            let used_by = format!("runtime handler(s) {}", handlers.join(", "));
            let plugin = plugins
                .iter()
                .find(|p| p.kind == SNAPSHOTTER_TYPE && p.id == snapshotter);
            match plugin {
                Some(PluginInfo { init_error: None, .. }) => {
                    Check::ok(name, format!("loaded in containerd, used by {used_by}"))
                }
                Some(PluginInfo { init_error: Some(error), .. }) => Check::failed(
                    name,
                    format!("containerd's snapshotter failed to load: {error}"),
                    format!("fix the snapshotter's prerequisites (see containerd's log), or choose another snapshotter for {used_by}"),
                ),
                None => Check::failed(
                    name,
                    format!("containerd has no snapshotter {snapshotter:?} ({used_by})"),
                    "remove it from containerd's disabled_plugins, or set containerd.snapshotter (or the runtime's snapshotter) to one containerd loads, e.g. \"overlayfs\"",
                ),
            }
        })
        .collect()
}

fn cri_plugin_check(plugins: &[PluginInfo], config: &Config) -> Check {
    const NAME: &str = "containerd's CRI plugin";
    let serving: Vec<String> = plugins
        .iter()
        .filter(|p| p.init_error.is_none())
        .filter(|p| CRI_PLUGINS.contains(&(p.kind.as_str(), p.id.as_str())))
        .map(|p| format!("{}.{}", p.kind, p.id))
        .collect();
    let namespace = &config.server.containerd_namespace;
    if serving.is_empty() {
        return Check::ok(NAME, "not serving (disabled or not loaded)");
    }
    if namespace != DEFAULT_CONTAINERD_NAMESPACE {
        return Check::ok(
            NAME,
            format!(
                "{} serves namespace {DEFAULT_CONTAINERD_NAMESPACE}, cri-server uses {namespace}",
                serving.join(", ")
            ),
        );
    }
    let problem = format!(
        "{} is serving in namespace {namespace}: it and cri-server would both manage, stop and garbage-collect the same containers",
        serving.join(", ")
    );
    if config.server.allow_containerd_cri {
        return Check::warn(NAME, problem, "allowed by --allow-containerd-cri / allow_containerd_cri; disable containerd's CRI plugin unless this is intended");
    }
    Check::failed(
        NAME,
        problem,
        "add it to disabled_plugins in containerd's config (disabled_plugins = [\"io.containerd.grpc.v1.cri\"]; containerd 2.x: also \"io.containerd.cri.v1.runtime\" and \"io.containerd.cri.v1.images\") and restart containerd (running containers keep running); or start cri-server with --allow-containerd-cri",
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use cri_api::containerd::{MockIntrospection, MockVersion, VersionInfo};

    use super::super::Outcome;
    use super::*;

    fn plugin(kind: &str, id: &str, init_error: Option<&str>) -> PluginInfo {
        PluginInfo {
            kind: kind.into(),
            id: id.into(),
            init_error: init_error.map(str::to_owned),
            ..PluginInfo::default()
        }
    }

    fn containerd_16(extra: Vec<PluginInfo>) -> Vec<PluginInfo> {
        let mut plugins = vec![
            plugin(SNAPSHOTTER_TYPE, "overlayfs", None),
            plugin(SNAPSHOTTER_TYPE, "native", None),
            plugin(
                SNAPSHOTTER_TYPE,
                "btrfs",
                Some("path must be a btrfs filesystem"),
            ),
            plugin("io.containerd.grpc.v1", "containers", None),
        ];
        plugins.extend(extra);
        plugins
    }

    async fn run(version: &str, plugins: Vec<PluginInfo>, config: &Config) -> Vec<Check> {
        let mut v = MockVersion::new();
        let version = version.to_owned();
        v.expect_version().returning(move || {
            Ok(VersionInfo {
                version: version.clone(),
                revision: String::new(),
            })
        });
        let mut i = MockIntrospection::new();
        i.expect_plugins().returning(move |_| Ok(plugins.clone()));
        match check_containerd(&v, &i, config).await {
            ContainerdProbe::Checked(checks) => checks,
            ContainerdProbe::Unreachable(e) => panic!("{e}"),
        }
    }

    fn outcome<'a>(checks: &'a [Check], name: &str) -> &'a Outcome {
        &checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no check {name}: {checks:?}"))
            .outcome
    }

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("1.6.20~ds1"), Some((1, 6)));
        assert_eq!(parse_version("v1.7.2"), Some((1, 7)));
        assert_eq!(parse_version("2.0.0-rc.1"), Some((2, 0)));
        assert_eq!(parse_version("1.10.0"), Some((1, 10)));
        assert_eq!(parse_version("devel"), None);
    }

    #[tokio::test]
    async fn debian_containerd_with_the_cri_plugin_disabled_passes() {
        let checks = run("1.6.20~ds1", containerd_16(vec![]), &Config::default()).await;
        assert!(
            checks.iter().all(|c| matches!(c.outcome, Outcome::Ok(_))),
            "{checks:#?}"
        );
    }

    #[tokio::test]
    async fn containerd_15_fails() {
        let checks = run("1.5.9", containerd_16(vec![]), &Config::default()).await;
        assert!(
            matches!(outcome(&checks, "containerd version"), Outcome::Failed { fix, .. } if fix.contains("1.6"))
        );
    }

    #[tokio::test]
    async fn a_missing_or_broken_snapshotter_fails_naming_its_handlers() {
        let mut config = Config::default();
        let mut kata = config.cri.runtimes["runc"].clone();
        kata.snapshotter = Some("btrfs".into());
        config.cri.runtimes.insert("kata".into(), kata);
        let mut gvisor = config.cri.runtimes["runc"].clone();
        gvisor.snapshotter = Some("stargz".into());
        config.cri.runtimes.insert("gvisor".into(), gvisor);
        let checks = run("1.7.0", containerd_16(vec![]), &config).await;
        assert!(
            matches!(outcome(&checks, "snapshotter overlayfs"), Outcome::Ok(d) if d.contains("runc"))
        );
        assert!(
            matches!(outcome(&checks, "snapshotter btrfs"), Outcome::Failed { problem, .. } if problem.contains("btrfs filesystem"))
        );
        assert!(
            matches!(outcome(&checks, "snapshotter stargz"), Outcome::Failed { problem, fix } if problem.contains("gvisor") && fix.contains("disabled_plugins"))
        );
    }

    #[tokio::test]
    async fn containerds_cri_plugin_serving_fails_with_the_disabled_plugins_fix() {
        for (kind, id) in CRI_PLUGINS {
            let plugins = containerd_16(vec![plugin(kind, id, None)]);
            let checks = run("2.0.0", plugins, &Config::default()).await;
            let Outcome::Failed { problem, fix } = outcome(&checks, "containerd's CRI plugin")
            else {
                panic!("{checks:#?}");
            };
            assert!(problem.contains(&format!("{kind}.{id}")), "{problem}");
            assert!(
                fix.contains("disabled_plugins") && fix.contains("--allow-containerd-cri"),
                "{fix}"
            );
        }
    }

    #[tokio::test]
    async fn the_cri_plugin_is_fine_when_it_failed_to_load_elsewhere_or_allowed() {
        let failed = containerd_16(vec![plugin("io.containerd.grpc.v1", "cri", Some("no cni"))]);
        let checks = run("1.6.20", failed, &Config::default()).await;
        assert!(matches!(
            outcome(&checks, "containerd's CRI plugin"),
            Outcome::Ok(_)
        ));

        let serving = containerd_16(vec![plugin("io.containerd.grpc.v1", "cri", None)]);
        let mut other_ns = Config::default();
        other_ns.server.containerd_namespace = "cri-server".into();
        let checks = run("1.6.20", serving.clone(), &other_ns).await;
        assert!(matches!(
            outcome(&checks, "containerd's CRI plugin"),
            Outcome::Ok(_)
        ));

        let mut allowed = Config::default();
        allowed.server.allow_containerd_cri = true;
        let checks = run("1.6.20", serving, &allowed).await;
        assert!(matches!(
            outcome(&checks, "containerd's CRI plugin"),
            Outcome::Warn { .. }
        ));
    }

    #[tokio::test]
    async fn an_unanswered_version_call_is_unreachable() {
        let mut v = MockVersion::new();
        v.expect_version().returning(|| {
            Err(ContainerdError::Unavailable {
                address: "/x.sock".into(),
                message: "connection refused".into(),
            })
        });
        let i = MockIntrospection::new();
        let probe = check_containerd(&v, &i, &Config::default()).await;
        let ContainerdProbe::Unreachable(e) = probe else {
            panic!("{probe:?}");
        };
        let check = unreachable_check(&e, &Config::default());
        assert!(check.is_failed());
        assert!(
            check.to_string().contains("systemctl start containerd"),
            "{check}"
        );
    }
}
