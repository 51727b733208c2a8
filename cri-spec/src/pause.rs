//! [`PauseSpecBuilder`]: the OCI spec of a sandbox's pause container
//! (containerd's `sandboxContainerSpec` and `sandboxContainerSpecOpts`):
//! read-only rootfs, `/dev/shm` and `/etc/resolv.conf` bound from the
//! sandbox's files, the pod's hostname, namespaces, sysctls, CPU shares 2,
//! OOM score -998, cgroups path, user, seccomp and the sandbox annotations.

use std::path::{Path, PathBuf};

use cri_api::{ids::SandboxId, v1::PodSandboxConfig};
use oci_spec::{image::ImageConfiguration, runtime::Spec};

use crate::{
    access,
    annotations::{self, DefaultKind},
    base::{self, bind_mount},
    container::{LabeledSpec, SpecHost},
    mounts::{DEV_SHM, RESOLV_CONF},
    namespaces,
    options::{Platform, RuntimeOptions},
    process::{self, ImageProcess},
    resources, seccomp, selinux,
    sysctl::{self, SysctlOptions},
    user, Error, Result,
};

/// containerd's `defaultSandboxOOMAdj`.
pub const DEFAULT_SANDBOX_OOM_ADJ: i32 = -998;
/// containerd's `DefaultSandboxCPUshares`.
pub const DEFAULT_SANDBOX_CPU_SHARES: u64 = 2;

/// The runtime-side facts of a pause container spec.
#[derive(Clone, Copy)]
pub struct PauseInputs<'a> {
    /// The sandbox id (also the pause container's id).
    pub sandbox_id: &'a SandboxId,
    /// The sandbox's CRI config.
    pub config: &'a PodSandboxConfig,
    /// The pause image's config.
    pub image_config: &'a ImageConfiguration,
    /// Configuration keys that affect specs.
    pub options: &'a RuntimeOptions,
    /// The sandbox's shm directory (`<state>/sandboxes/<id>/shm`); the
    /// host's `/dev/shm` is used instead for host IPC.
    pub shm: &'a Path,
    /// The sandbox's `resolv.conf` (`<root>/sandboxes/<id>/resolv.conf`).
    pub resolv_conf: &'a Path,
}

/// Builds the OCI spec of a pause container.
pub struct PauseSpecBuilder<'a> {
    inputs: PauseInputs<'a>,
    host: SpecHost<'a>,
    platform: Platform,
    netns_path: Option<PathBuf>,
    userns_path: Option<PathBuf>,
    image_name: Option<String>,
}

impl<'a> PauseSpecBuilder<'a> {
    /// A builder for the host's platform.
    pub fn new(inputs: PauseInputs<'a>, host: SpecHost<'a>) -> Self {
        Self {
            inputs,
            host,
            platform: Platform::host(),
            netns_path: None,
            userns_path: None,
            image_name: None,
        }
    }

    /// The platform (its architecture picks the seccomp architectures).
    pub fn with_platform(mut self, platform: Platform) -> Self {
        self.platform = platform;
        self
    }

    /// The pod's network namespace (ignored on the host network).
    pub fn with_netns_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.netns_path = Some(path.into());
        self
    }

    /// A pinned user namespace to join (containerd 2.x style); without it
    /// a POD user namespace is created from the id maps.
    pub fn with_userns_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.userns_path = Some(path.into());
        self
    }

    /// Add the `io.kubernetes.cri.podsandbox.image-name` annotation
    /// (containerd 2.x).
    pub fn with_sandbox_image_name(mut self, name: impl Into<String>) -> Self {
        self.image_name = Some(name.into());
        self
    }

    /// The spec.
    pub fn build(self) -> Result<Spec> {
        self.build_labeled().map(|l| l.spec)
    }

    /// The spec and the SELinux labels allocated for it (the process label
    /// is what the sandbox metadata records, also for privileged pods).
    pub fn build_labeled(self) -> Result<LabeledSpec> {
        if self.platform.os != "linux" {
            return Err(Error::UnsupportedPlatform {
                os: self.platform.os.clone(),
            });
        }
        let sc = self
            .inputs
            .config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.clone())
            .unwrap_or_default();
        user::user_string("", sc.run_as_user.as_ref(), sc.run_as_group.as_ref())?;
        let options = selinux::label_options(sc.selinux_options.as_ref())?;
        let labels = selinux::init_labels(
            self.host.selinux,
            self.inputs.options.enable_selinux,
            &options,
        )?;
        match self.spec(&sc, &labels) {
            Ok(spec) => Ok(LabeledSpec {
                spec,
                process_label: labels.process,
                mount_label: labels.mount,
            }),
            Err(e) => {
                if !labels.process.is_empty() {
                    self.host.selinux.release_label(&labels.process);
                }
                Err(e)
            }
        }
    }

    fn spec(
        &self,
        sc: &cri_api::v1::LinuxSandboxSecurityContext,
        labels: &crate::host::SelinuxLabels,
    ) -> Result<Spec> {
        let (inputs, host) = (&self.inputs, self.host);
        let (config, opts, id) = (inputs.config, inputs.options, inputs.sandbox_id.0.as_str());
        let image = ImageProcess::from_image(inputs.image_config);
        let ns_options = sc.namespace_options.as_ref();

        let mut spec = base::default_unix_spec(id)?;
        base::without_mounts(&mut spec, &["/run"]);
        base::without_default_security_settings(&mut spec);
        access::root(&mut spec).set_path(base::ROOTFS_PATH.into());
        process::with_env(&mut spec, &image.env);
        access::root(&mut spec).set_readonly(Some(true));
        spec.set_hostname(Some(config.hostname.clone()));
        if !image.working_dir.is_empty() {
            access::process(&mut spec).set_cwd(image.working_dir.clone().into());
        }
        if image.entrypoint.is_empty() && image.cmd.is_empty() {
            return Err(Error::PauseWithoutCommand {
                sandbox: id.to_owned(),
            });
        }
        let args: Vec<String> = image
            .entrypoint
            .iter()
            .chain(image.cmd.iter())
            .cloned()
            .collect();
        access::process(&mut spec).set_args(Some(args));

        let parent = config
            .linux
            .as_ref()
            .map_or("", |l| l.cgroup_parent.as_str());
        resources::apply_cgroups_path(&mut spec, parent, id, opts.disable_cgroup);
        let userns_enabled = namespaces::apply_pause_namespaces(
            &mut spec,
            ns_options,
            self.netns_path.clone(),
            self.userns_path.clone(),
        )?;

        let node = cri_api::v1::NamespaceMode::Node as i32;
        let host_ipc = ns_options.is_some_and(|o| o.ipc == node);
        let shm = if host_ipc {
            Path::new(DEV_SHM)
        } else {
            inputs.shm
        };
        base::without_mounts(&mut spec, &[DEV_SHM]);
        let ro: Vec<String> = ["rbind", "ro", "nosuid", "nodev", "noexec"]
            .iter()
            .map(|o| (*o).to_owned())
            .collect();
        let mounts = spec.mounts_mut().get_or_insert_with(Vec::new);
        mounts.push(bind_mount(Path::new(DEV_SHM), shm, ro.clone()));
        mounts.push(bind_mount(Path::new(RESOLV_CONF), inputs.resolv_conf, ro));

        access::process(&mut spec).set_selinux_label(Some(labels.process.clone()));
        access::linux(&mut spec).set_mount_label(Some(labels.mount.clone()));

        let pod_sysctls = config
            .linux
            .as_ref()
            .map(|l| l.sysctls.clone())
            .unwrap_or_default();
        let sysctl_opts = SysctlOptions {
            host_network: ns_options.is_some_and(|o| o.network == node),
            enable_unprivileged_ports: opts.enable_unprivileged_ports,
            enable_unprivileged_icmp: opts.enable_unprivileged_icmp,
            in_user_namespace: userns_enabled || host.os.running_in_user_ns(),
        };
        sysctl::apply_sysctls(&mut spec, sysctl::pause_sysctls(&pod_sysctls, &sysctl_opts));

        if !opts.disable_cgroup {
            let r = access::resources(&mut spec);
            let mut cpu = r.cpu().clone().unwrap_or_default();
            cpu.set_shares(Some(DEFAULT_SANDBOX_CPU_SHARES));
            r.set_cpu(Some(cpu));
        }
        if let Some(res) = config.linux.as_ref().and_then(|l| l.resources.as_ref()) {
            annotations::annotate(
                &mut spec,
                [
                    (annotations::SANDBOX_CPU_PERIOD, res.cpu_period),
                    (annotations::SANDBOX_CPU_QUOTA, res.cpu_quota),
                    (annotations::SANDBOX_CPU_SHARES, res.cpu_shares),
                    (annotations::SANDBOX_MEMORY, res.memory_limit_in_bytes),
                ]
                .map(|(k, v)| (k.to_owned(), v.to_string())),
            );
        }
        let adj = process::restrict_oom_score_adj(
            i64::from(DEFAULT_SANDBOX_OOM_ADJ),
            opts.restrict_oom_score_adj,
            opts.daemon_oom_score_adj,
        );
        access::process(&mut spec).set_oom_score_adj(Some(adj as i32));

        annotations::annotate(
            &mut spec,
            annotations::passthrough(&config.annotations, &opts.pod_annotations),
        );
        let kind = DefaultKind::Sandbox {
            image_name: self.image_name.as_deref(),
        };
        annotations::annotate(
            &mut spec,
            annotations::default_cri_annotations(id, config, kind),
        );

        #[allow(deprecated)]
        let profile = seccomp::requested_profile(
            sc.seccomp.as_ref(),
            &sc.seccomp_profile_path,
            &opts.unset_seccomp_profile,
        )?;
        seccomp::apply_seccomp(
            &mut spec,
            profile.as_ref(),
            sc.privileged,
            &self.platform.architecture,
            host.os,
        )?;
        user::apply_pause_user(
            &mut spec,
            sc.run_as_user.as_ref(),
            sc.run_as_group.as_ref(),
            &sc.supplemental_groups,
            &image.user,
            host.users,
        )?;
        if sc.privileged {
            access::process(&mut spec).set_selinux_label(None);
        }
        access::normalize(&mut spec);
        Ok(spec)
    }
}

#[cfg(test)]
#[path = "pause_tests.rs"]
pub(crate) mod tests;
