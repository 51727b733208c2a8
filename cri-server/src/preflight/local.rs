//! Checks on the host's directories: cri-server's root and state dirs are
//! writable, and the CNI conf and plugin dirs are usable.

use std::io::ErrorKind;
use std::path::Path;

use super::Check;
use cri_config::Config;

/// The root and state dirs exist (created if missing) and take a file.
pub fn check_writable_dirs(config: &Config) -> Vec<Check> {
    [
        (
            "root dir",
            &config.server.root_dir,
            "--root / [cri_server] root_dir",
        ),
        (
            "state dir",
            &config.server.state_dir,
            "--state / [cri_server] state_dir",
        ),
    ]
    .into_iter()
    .map(|(name, dir, key)| match writable(dir) {
        Ok(()) => Check::ok(name, format!("{} is writable", dir.display())),
        Err(e) => Check::failed(
            name,
            format!("{} is not writable: {e}", dir.display()),
            format!("run as root, make it a writable directory, or point {key} elsewhere"),
        ),
    })
    .collect()
}

/// Creates `dir` if needed, then creates and removes a file in it.
fn writable(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(format!(".cri-server-preflight-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

/// The CNI dirs. A missing dir is a warning, not a failure: a network
/// add-on's daemonset usually installs the plugins and writes the config
/// after the runtime is up (its pods use the host network). A path that
/// exists but is no readable directory is a failure.
pub fn check_cni_dirs(config: &Config) -> Vec<Check> {
    let cni = &config.cri.cni;
    let mut checks = vec![dir_check(
        "cni conf dir",
        &cni.conf_dir,
        "plugins.\"io.containerd.grpc.v1.cri\".cni.conf_dir",
        "pods get no network until a CNI config is written there (by a network add-on or by hand)",
    )];
    for dir in cni.plugin_dirs() {
        checks.push(dir_check(
            "cni bin dir",
            dir,
            "plugins.\"io.containerd.grpc.v1.cri\".cni.bin_dir",
            "install the CNI plugins there (Debian: apt install containernetworking-plugins, then bin_dir = \"/usr/lib/cni\")",
        ));
    }
    for (name, runtime) in &config.cri.runtimes {
        if let Some(dir) = &runtime.cni_conf_dir {
            checks.push(dir_check(
                &format!("cni conf dir of runtime {name}"),
                dir,
                &format!(
                    "plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.{name}.cni_conf_dir"
                ),
                "pods of this handler get no network until a CNI config is written there",
            ));
        }
    }
    checks
}

fn dir_check(name: &str, dir: &Path, key: &str, when_missing: &str) -> Check {
    match std::fs::read_dir(dir) {
        Ok(_) => Check::ok(name, format!("{} is a readable directory", dir.display())),
        Err(e) if e.kind() == ErrorKind::NotFound => Check::warn(
            name,
            format!("{} does not exist", dir.display()),
            when_missing.to_owned(),
        ),
        Err(e) => Check::failed(
            name,
            format!("{} is not a readable directory: {e}", dir.display()),
            format!("make it a directory cri-server can read, or set {key}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::Outcome;
    use super::*;

    fn config_in(dir: &Path) -> Config {
        let mut config = Config::default();
        config.server.root_dir = dir.join("root");
        config.server.state_dir = dir.join("state");
        config.cri.cni.conf_dir = dir.join("net.d");
        config.cri.cni.bin_dir = dir.join("bin");
        config
    }

    #[test]
    fn writable_dirs_are_created_and_ok() {
        let dir = tempfile::tempdir().unwrap();
        let checks = check_writable_dirs(&config_in(dir.path()));
        assert!(
            checks.iter().all(|c| matches!(c.outcome, Outcome::Ok(_))),
            "{checks:?}"
        );
        assert!(dir.path().join("root").is_dir() && dir.path().join("state").is_dir());
        assert_eq!(
            std::fs::read_dir(dir.path().join("root")).unwrap().count(),
            0
        );
    }

    #[test]
    fn a_root_dir_that_is_a_file_fails_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path());
        std::fs::write(&config.server.root_dir, "x").unwrap();
        let checks = check_writable_dirs(&config);
        let Outcome::Failed { problem, fix } = &checks[0].outcome else {
            panic!("{checks:?}");
        };
        assert!(
            problem.contains("root") && problem.contains("not writable"),
            "{problem}"
        );
        assert!(fix.contains("root_dir"), "{fix}");
        assert!(matches!(checks[1].outcome, Outcome::Ok(_)));
    }

    #[test]
    fn missing_cni_dirs_warn_and_a_file_fails() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path());
        let checks = check_cni_dirs(&config);
        assert!(
            checks
                .iter()
                .all(|c| matches!(c.outcome, Outcome::Warn { .. })),
            "{checks:?}"
        );
        std::fs::create_dir(&config.cri.cni.conf_dir).unwrap();
        std::fs::write(&config.cri.cni.bin_dir, "x").unwrap();
        let checks = check_cni_dirs(&config);
        assert!(matches!(checks[0].outcome, Outcome::Ok(_)), "{checks:?}");
        let Outcome::Failed { problem, fix } = &checks[1].outcome else {
            panic!("{checks:?}");
        };
        assert!(problem.contains("not a readable directory"), "{problem}");
        assert!(fix.contains("cni.bin_dir"), "{fix}");
    }
}
