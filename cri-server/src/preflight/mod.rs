//! Preflight: what must hold before cri-server serves a node, checked at
//! start and by `cri-server check`. Local checks (the directory locks, the
//! root and state dirs, the CNI dirs) and containerd checks (reachable,
//! version, snapshotters, containerd's own CRI plugin not serving) each
//! give an ok, a warning or a failure with the fix.

mod containerd;
mod local;
mod lock;

use std::fmt;

use cri_api::containerd::Containerd;

use cri_config::Config;

pub use containerd::{check_containerd, parse_version, ContainerdProbe, CRI_PLUGINS};
pub use local::{check_cni_dirs, check_writable_dirs};
pub use lock::{DirLocks, LockError, LOCK_FILE};

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Holds; the detail says what was found.
    Ok(String),
    /// Holds well enough to run, but the operator should look.
    Warn { problem: String, fix: String },
    /// Does not hold: cri-server must not serve.
    Failed { problem: String, fix: String },
}

/// One named check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub outcome: Outcome,
}

impl Check {
    pub fn ok(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            outcome: Outcome::Ok(detail.into()),
        }
    }

    pub fn warn(
        name: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            outcome: Outcome::Warn {
                problem: problem.into(),
                fix: fix.into(),
            },
        }
    }

    pub fn failed(
        name: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            outcome: Outcome::Failed {
                problem: problem.into(),
                fix: fix.into(),
            },
        }
    }

    pub fn is_failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed { .. })
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Outcome::Ok(detail) => write!(f, "ok      {}: {detail}", self.name),
            Outcome::Warn { problem, fix } => {
                write!(f, "warning {}: {problem}\n        fix: {fix}", self.name)
            }
            Outcome::Failed { problem, fix } => {
                write!(f, "FAILED  {}: {problem}\n        fix: {fix}", self.name)
            }
        }
    }
}

/// Every check run, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn extend(&mut self, checks: impl IntoIterator<Item = Check>) {
        self.checks.extend(checks);
    }

    /// Whether any check failed.
    pub fn failed(&self) -> bool {
        self.checks.iter().any(Check::is_failed)
    }

    /// Only the failed checks, for an error message.
    pub fn failures(&self) -> Report {
        Report {
            checks: self
                .checks
                .iter()
                .filter(|c| c.is_failed())
                .cloned()
                .collect(),
        }
    }

    /// Logs each check at info, warn or error.
    pub fn log(&self) {
        for check in &self.checks {
            match &check.outcome {
                Outcome::Ok(detail) => tracing::info!(check = %check.name, %detail, "preflight ok"),
                Outcome::Warn { problem, fix } => {
                    tracing::warn!(check = %check.name, %problem, %fix, "preflight warning")
                }
                Outcome::Failed { problem, fix } => {
                    tracing::error!(check = %check.name, %problem, %fix, "preflight failed")
                }
            }
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for check in &self.checks {
            writeln!(f, "{check}")?;
        }
        Ok(())
    }
}

/// The local checks the daemon runs before anything else, with the locks
/// it keeps: a held lock is a failure, and no further check runs.
pub fn local_checks(config: &Config) -> (Option<DirLocks>, Report) {
    let mut report = Report::default();
    let dirs = [
        config.server.root_dir.as_path(),
        config.server.state_dir.as_path(),
    ];
    let locks = match DirLocks::acquire(&dirs) {
        Ok(locks) => {
            report.extend([Check::ok(
                "single daemon",
                format!("locked {LOCK_FILE} in the root and state dirs"),
            )]);
            Some(locks)
        }
        Err(e) => {
            report.extend([lock_failure(&e)]);
            // Another daemon: nothing else to say. A dir that cannot hold
            // a lock file: the dir checks below say why.
            if matches!(e, LockError::Held { .. }) {
                return (None, report);
            }
            None
        }
    };
    report.extend(check_writable_dirs(config));
    report.extend(check_cni_dirs(config));
    (locks, report)
}

fn lock_failure(error: &LockError) -> Check {
    match error {
        LockError::Held { .. } => Check::failed(
            "single daemon",
            error.to_string(),
            "stop the other cri-server (systemctl stop cri-server), or give this one its own --root and --state",
        ),
        LockError::Io { source, .. } => Check::failed(
            "single daemon",
            format!("{error}: {source}"),
            "make the root and state dirs writable",
        ),
    }
}

/// `cri-server check`: every check, the locks taken and released again;
/// an unreachable containerd is a failure.
pub async fn check_all(config: &Config, containerd: &Containerd) -> Report {
    let (locks, mut report) = local_checks(config);
    drop(locks);
    match check_containerd(&*containerd.version, &*containerd.introspection, config).await {
        ContainerdProbe::Checked(checks) => report.extend(checks),
        ContainerdProbe::Unreachable(e) => {
            report.extend([containerd::unreachable_check(&e, config)])
        }
    }
    report
}

/// For a containerd that did not answer at start: waits until it does
/// (backing off up to 5 s), then runs its checks. `Err` holds the
/// failures.
pub async fn wait_for_containerd(containerd: &Containerd, config: &Config) -> Result<(), Report> {
    let mut delay = std::time::Duration::from_millis(250);
    loop {
        match check_containerd(&*containerd.version, &*containerd.introspection, config).await {
            ContainerdProbe::Checked(checks) => {
                let report = Report { checks };
                report.log();
                return if report.failed() {
                    Err(report.failures())
                } else {
                    Ok(())
                };
            }
            ContainerdProbe::Unreachable(_) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_prints_each_check_with_its_fix() {
        let report = Report {
            checks: vec![
                Check::ok("containerd", "1.6.20 at /run/containerd/containerd.sock"),
                Check::warn(
                    "cni conf dir",
                    "/etc/cni/net.d is missing",
                    "write a network config",
                ),
                Check::failed("root dir", "/r is not writable", "fix its permissions"),
            ],
        };
        assert!(report.failed());
        assert_eq!(report.failures().checks.len(), 1);
        let text = report.to_string();
        assert!(text.contains("ok      containerd: 1.6.20"), "{text}");
        assert!(text.contains("warning cni conf dir"), "{text}");
        assert!(
            text.contains("FAILED  root dir: /r is not writable\n        fix: fix its permissions"),
            "{text}"
        );
        assert!(!Report::default().failed());
    }

    #[test]
    fn local_checks_hold_the_locks_and_a_second_run_fails_on_them() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut config = Config::default();
        config.server.root_dir = dir.path().join("root");
        config.server.state_dir = dir.path().join("state");
        config.cri.cni.conf_dir = dir.path().to_path_buf();
        config.cri.cni.bin_dir = dir.path().to_path_buf();
        let (locks, report) = local_checks(&config);
        assert!(locks.is_some() && !report.failed(), "{report}");
        let (second, report) = local_checks(&config);
        assert!(second.is_none());
        assert_eq!(report.checks.len(), 1, "{report}");
        let text = report.to_string();
        assert!(
            text.contains("FAILED  single daemon: another cri-server"),
            "{text}"
        );
        assert!(text.contains("--root and --state"), "{text}");
    }
}
