//! The container process: args from the CRI command/args and the image
//! entrypoint/cmd, cwd, tty, environment (default PATH, `TERM`,
//! `HOSTNAME`, image env, then config env), no_new_privs and the OOM
//! score adjustment.

use cri_api::v1::{ContainerConfig, LinuxContainerResources};
use oci_spec::runtime::Spec;

use crate::{access, Error, Result};

/// The `PATH` containerd sets before the image env (`oci.WithDefaultPathEnv`).
pub(crate) const DEFAULT_PATH_ENV: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The parts of an image config the process needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ImageProcess {
    pub user: String,
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: String,
}

impl ImageProcess {
    /// Extract from an OCI image configuration (absent config: all empty).
    pub(crate) fn from_image(image: &oci_spec::image::ImageConfiguration) -> Self {
        let Some(c) = image.config() else {
            return Self::default();
        };
        Self {
            user: c.user().clone().unwrap_or_default(),
            env: c.env().clone().unwrap_or_default(),
            entrypoint: c.entrypoint().clone().unwrap_or_default(),
            cmd: c.cmd().clone().unwrap_or_default(),
            working_dir: c.working_dir().clone().unwrap_or_default(),
        }
    }
}

/// containerd's `WithProcessArgs`: the CRI command replaces the image
/// entrypoint; without a command, the CRI args replace the image cmd and
/// an entrypoint of `[""]` counts as none.
pub(crate) fn process_args(
    command: &[String],
    args: &[String],
    image: &ImageProcess,
) -> Option<Vec<String>> {
    let mut command = command.to_vec();
    let mut args = args.to_vec();
    if command.is_empty() {
        if args.is_empty() {
            args = image.cmd.clone();
        }
        if !(image.entrypoint.len() == 1 && image.entrypoint[0].is_empty()) {
            command = image.entrypoint.clone();
        }
    }
    if command.is_empty() && args.is_empty() {
        return None;
    }
    command.extend(args);
    Some(command)
}

/// containerd's `replaceOrAppendEnvValues`: each override replaces the
/// default with the same key (keys of appended values are not tracked, so
/// a later duplicate is appended again), and a value without `=` unsets
/// the default of that key.
pub(crate) fn replace_or_append_env(defaults: &[String], overrides: &[String]) -> Vec<String> {
    let mut results: Vec<Option<String>> = defaults.iter().cloned().map(Some).collect();
    let mut index = std::collections::HashMap::new();
    for (i, e) in defaults.iter().enumerate() {
        let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
        index.insert(key.to_owned(), i);
    }
    for value in overrides {
        match value.split_once('=') {
            None => {
                if let Some(&i) = index.get(value.as_str()) {
                    results[i] = None;
                }
            }
            Some((key, _)) => match index.get(key) {
                Some(&i) => results[i] = Some(value.clone()),
                None => results.push(Some(value.clone())),
            },
        }
    }
    results.into_iter().flatten().collect()
}

/// `oci.WithEnv`: merge `values` into the process env.
pub(crate) fn with_env(spec: &mut Spec, values: &[String]) {
    if values.is_empty() {
        return;
    }
    let p = access::process(spec);
    let current = p.env().clone().unwrap_or_default();
    p.set_env(Some(replace_or_append_env(&current, values)));
}

/// Everything process-related for an app container, in containerd's
/// order: args, default PATH, new privileges allowed, cwd, tty,
/// `HOSTNAME`, then image and config env.
pub(crate) fn apply_container_process(
    spec: &mut Spec,
    config: &ContainerConfig,
    container_name: &str,
    image: &ImageProcess,
    hostname: &str,
) -> Result<()> {
    let args =
        process_args(&config.command, &config.args, image).ok_or_else(|| Error::NoCommand {
            container: container_name.to_owned(),
        })?;
    let p = access::process(spec);
    p.set_args(Some(args));
    with_env(spec, &[DEFAULT_PATH_ENV.to_owned()]);
    let p = access::process(spec);
    p.set_no_new_privileges(Some(false));
    if !config.working_dir.is_empty() {
        p.set_cwd(config.working_dir.clone().into());
    } else if !image.working_dir.is_empty() {
        p.set_cwd(image.working_dir.clone().into());
    }
    if config.tty {
        p.set_terminal(Some(true));
        p.env_mut()
            .get_or_insert_with(Vec::new)
            .push("TERM=xterm".to_owned());
    }
    with_env(spec, &[format!("HOSTNAME={hostname}")]);
    let mut env = image.env.clone();
    env.extend(
        config
            .envs
            .iter()
            .map(|kv| format!("{}={}", kv.key, kv.value)),
    );
    with_env(spec, &env);
    Ok(())
}

/// `oci.WithNoNewPrivileges` when the security context asks for it.
pub(crate) fn apply_no_new_privs(spec: &mut Spec, no_new_privs: bool) {
    if no_new_privs {
        access::process(spec).set_no_new_privileges(Some(true));
    }
}

/// The score actually used: never below the daemon's own with
/// `restrict_oom_score_adj` (containerd's `restrictOOMScoreAdj`).
pub(crate) fn restrict_oom_score_adj(preferred: i64, restrict: bool, daemon: i32) -> i64 {
    if restrict && preferred < i64::from(daemon) {
        i64::from(daemon)
    } else {
        preferred
    }
}

/// containerd's `WithOOMScoreAdj`: set only when resources are given.
pub(crate) fn apply_oom_score_adj(
    spec: &mut Spec,
    resources: Option<&LinuxContainerResources>,
    restrict: bool,
    daemon: i32,
) {
    let Some(resources) = resources else { return };
    let adj = restrict_oom_score_adj(resources.oom_score_adj, restrict, daemon);
    let adj = adj.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
    access::process(spec).set_oom_score_adj(Some(adj));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn check_args(
        command: &[&str],
        args: &[&str],
        entrypoint: &[&str],
        cmd: &[&str],
        expected: Option<&[&str]>,
    ) {
        let image = ImageProcess {
            entrypoint: strings(entrypoint),
            cmd: strings(cmd),
            ..Default::default()
        };
        let got = process_args(&strings(command), &strings(args), &image);
        assert_eq!(
            got,
            expected.map(strings),
            "command={command:?} args={args:?} entrypoint={entrypoint:?} cmd={cmd:?}"
        );
    }

    #[test]
    fn args_follow_cri_rules() {
        check_args(&[], &[], &["/ep"], &["c1"], Some(&["/ep", "c1"]));
        check_args(&["/cmd"], &[], &["/ep"], &["c1"], Some(&["/cmd"]));
        check_args(&["/cmd"], &["a"], &["/ep"], &["c1"], Some(&["/cmd", "a"]));
        check_args(&[], &["a"], &["/ep"], &["c1"], Some(&["/ep", "a"]));
        check_args(&[], &["a"], &[""], &["c1"], Some(&["a"]));
        check_args(&[], &[], &[""], &["c1"], Some(&["c1"]));
        check_args(&[], &[], &[], &["c1"], Some(&["c1"]));
        check_args(&[], &[], &[], &[], None);
        check_args(&[], &[], &[""], &[], None);
    }

    fn check_env(defaults: &[&str], overrides: &[&str], expected: &[&str]) {
        assert_eq!(
            replace_or_append_env(&strings(defaults), &strings(overrides)),
            strings(expected)
        );
    }

    #[test]
    fn env_replaces_appends_and_unsets() {
        check_env(&["PATH=/a"], &["PATH=/b"], &["PATH=/b"]);
        check_env(&["PATH=/a"], &["A=1"], &["PATH=/a", "A=1"]);
        check_env(&["PATH=/a", "X=1"], &["X"], &["PATH=/a"]);
        check_env(&["PATH=/a"], &["Y"], &["PATH=/a"]);
        // Appended keys are not tracked: containerd keeps both values.
        check_env(&[], &["A=1", "A=2"], &["A=1", "A=2"]);
        check_env(&["A=0"], &["A=1", "A=2"], &["A=2"]);
        check_env(&["EMPTY"], &["EMPTY=x"], &["EMPTY=x"]);
    }

    #[test]
    fn oom_restriction() {
        assert_eq!(restrict_oom_score_adj(-998, true, -500), -500);
        assert_eq!(restrict_oom_score_adj(100, true, -500), 100);
        assert_eq!(restrict_oom_score_adj(-998, false, -500), -998);
    }
}
