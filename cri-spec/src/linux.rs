//! The Linux app-container pipeline behind [`ContainerSpecBuilder`]:
//! containerd's `buildLinuxSpec` options, then `containerSpecOpts` (user,
//! AppArmor, seccomp), in containerd's order.
//!
//! [`ContainerSpecBuilder`]: crate::ContainerSpecBuilder

use cri_api::v1::{
    ContainerConfig, LinuxContainerSecurityContext, Mount as CriMount, NamespaceMode,
};
use oci_spec::runtime::Spec;

use crate::{
    access,
    annotations::{self, DefaultKind},
    apparmor, base, capabilities,
    classes::{self, ClassSources},
    container::{ContainerInputs, LabeledSpec, SpecHost},
    devices,
    host::SelinuxLabels,
    mounts::{self, MountContext},
    namespaces::{self, ContainerNamespaces},
    process::{self, ImageProcess},
    resources::{self, ResourceOptions},
    seccomp, selinux,
    user::{self, UserRequest},
    Error, Result,
};

/// One Linux build: the builder's inputs, borrowed.
pub(crate) struct LinuxBuild<'a> {
    pub config: &'a ContainerConfig,
    pub inputs: &'a ContainerInputs<'a>,
    pub host: SpecHost<'a>,
    pub architecture: &'a str,
    pub extra_mounts: &'a [CriMount],
    pub target_pid: Option<u32>,
    pub sandbox_process_label: &'a str,
}

impl LinuxBuild<'_> {
    pub(crate) fn build(&self, name: &str, image: &ImageProcess) -> Result<LabeledSpec> {
        let sc = self
            .config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.clone())
            .unwrap_or_default();
        self.validate(&sc)?;
        let mut options = selinux::label_options(sc.selinux_options.as_ref())?;
        if options.is_empty() {
            options = selinux::dup_sec_opt(self.sandbox_process_label)?;
        }
        let labels = selinux::init_labels(
            self.host.selinux,
            self.inputs.options.enable_selinux,
            &options,
        )?;
        match self.linux_spec(name, image, &sc, &labels) {
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

    /// Checks containerd makes while collecting its options, before any of
    /// them touches the host.
    fn validate(&self, sc: &LinuxContainerSecurityContext) -> Result<()> {
        let sandbox_sc = self
            .inputs
            .sandbox_config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref());
        if sc.privileged && !sandbox_sc.is_some_and(|s| s.privileged) {
            return Err(Error::PrivilegedNotAllowed {
                sandbox: self.inputs.sandbox_id.to_string(),
            });
        }
        user::user_string(
            &sc.run_as_username,
            sc.run_as_user.as_ref(),
            sc.run_as_group.as_ref(),
        )?;
        if cri_api::v1::SupplementalGroupsPolicy::try_from(sc.supplemental_groups_policy).is_err() {
            return Err(Error::UnsupportedSupplementalGroupsPolicy {
                policy: sc.supplemental_groups_policy,
            });
        }
        namespaces::check_container_namespaces(&self.namespaces(sc))?;
        Ok(())
    }

    fn namespaces<'s>(&'s self, sc: &'s LinuxContainerSecurityContext) -> ContainerNamespaces<'s> {
        let sandbox_sc = self
            .inputs
            .sandbox_config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref());
        ContainerNamespaces {
            options: sc.namespace_options.as_ref(),
            sandbox_userns: sandbox_sc
                .and_then(|s| s.namespace_options.as_ref())
                .and_then(|o| o.userns_options.as_ref()),
            sandbox_id: &self.inputs.sandbox_id.0,
            sandbox_pid: self.inputs.sandbox_pid,
            target_pid: self.target_pid,
            privileged: sc.privileged,
            cgroup_v2: self.host.os.cgroup_v2(),
        }
    }

    fn linux_spec(
        &self,
        name: &str,
        image: &ImageProcess,
        sc: &LinuxContainerSecurityContext,
        labels: &SelinuxLabels,
    ) -> Result<Spec> {
        let (inputs, host, config) = (&self.inputs, self.host, self.config);
        let opts = inputs.options;
        let sandbox = inputs.sandbox_config;
        let ns_options = sc.namespace_options.as_ref();
        let mut spec = base::starting_spec(&inputs.id.0, opts.base_runtime_spec.as_ref())?;
        // Class lookups fail before anything touches the host.
        let sources = ClassSources {
            container_name: name,
            container: &config.annotations,
            pod: &sandbox.annotations,
        };
        classes::apply_blockio(&mut spec, &sources, opts)?;
        classes::apply_rdt(&mut spec, &sources, opts)?;

        let hostname = if sandbox.hostname.is_empty() {
            host.os
                .hostname()
                .map_err(|source| Error::Hostname { source })?
        } else {
            sandbox.hostname.clone()
        };
        process::apply_container_process(&mut spec, config, name, image, &hostname)?;

        let host_ipc = ns_options.is_some_and(|o| o.ipc == NamespaceMode::Node as i32);
        let mut extra = mounts::sandbox_file_mounts(
            inputs.sandbox_files,
            &config.mounts,
            sc.readonly_rootfs,
            host_ipc,
            host.os,
        );
        extra.extend(self.extra_mounts.iter().cloned());
        let ctx = MountContext {
            host: host.os,
            selinux: host.selinux,
            mount_label: &labels.mount,
            selinux_enabled: opts.enable_selinux,
        };
        mounts::apply_mounts(&mut spec, &config.mounts, &extra, &ctx)?;
        mounts::apply_path_masks(
            &mut spec,
            &sc.masked_paths,
            &sc.readonly_paths,
            opts.disable_proc_mount,
        );

        let owner = opts.device_ownership_from_security_context.then(|| {
            let id = |v: Option<&cri_api::v1::Int64Value>| v.map_or(0, |v| v.value as u32);
            (id(sc.run_as_user.as_ref()), id(sc.run_as_group.as_ref()))
        });
        devices::apply_cri_devices(&mut spec, &config.devices, owner, host.os)?;
        let wants_all = sc.capabilities.as_ref().is_some_and(|c| {
            c.add_capabilities
                .iter()
                .any(|a| a.eq_ignore_ascii_case("ALL"))
        });
        let all_caps = if sc.privileged || wants_all {
            let names = host
                .os
                .current_capabilities()
                .map_err(|source| Error::CurrentCapabilities { source })?;
            capabilities::parse_current(&names)
        } else {
            Default::default()
        };
        capabilities::apply_add_drop(&mut spec, sc.capabilities.as_ref(), &all_caps)?;
        if sc.privileged {
            capabilities::apply_privileged(&mut spec, &all_caps);
            mounts::apply_privileged_mounts(&mut spec);
            let p = access::process(&mut spec);
            p.set_apparmor_profile(Some(String::new()));
            access::linux(&mut spec).set_seccomp(None);
            if !opts.privileged_without_host_devices {
                devices::apply_host_devices(&mut spec, host.os)?;
                devices::apply_all_devices_allowed(&mut spec);
            } else if opts.privileged_without_host_devices_all_devices_allowed {
                devices::apply_all_devices_allowed(&mut spec);
            }
        }
        capabilities::apply_ambient(&mut spec, sc.capabilities.as_ref())?;
        access::process(&mut spec).set_selinux_label(Some(labels.process.clone()));
        access::linux(&mut spec).set_mount_label(Some(labels.mount.clone()));
        process::apply_no_new_privs(&mut spec, sc.no_new_privs);
        if sc.readonly_rootfs {
            access::root(&mut spec).set_readonly(Some(true));
        }

        let resources = config.linux.as_ref().and_then(|l| l.resources.as_ref());
        if !opts.disable_cgroup {
            let ropts = ResourceOptions::from(opts);
            resources::apply_resources(&mut spec, resources, &ropts, host.os)?;
        }
        let parent = sandbox
            .linux
            .as_ref()
            .map_or("", |l| l.cgroup_parent.as_str());
        resources::apply_cgroups_path(&mut spec, parent, &inputs.id.0, opts.disable_cgroup);
        annotations::annotate(
            &mut spec,
            annotations::passthrough(&sandbox.annotations, &opts.pod_annotations),
        );
        annotations::annotate(
            &mut spec,
            annotations::passthrough(&config.annotations, &opts.container_annotations),
        );
        process::apply_oom_score_adj(
            &mut spec,
            resources,
            opts.restrict_oom_score_adj,
            opts.daemon_oom_score_adj,
        );
        namespaces::apply_container_namespaces(&mut spec, &self.namespaces(sc))?;
        let kind = DefaultKind::Container {
            container_name: name,
            image_name: inputs.image_name,
        };
        annotations::annotate(
            &mut spec,
            annotations::default_cri_annotations(&inputs.sandbox_id.0, sandbox, kind),
        );
        if opts.annotate_runtime_handler {
            let pair = (
                annotations::RUNTIME_HANDLER.to_owned(),
                inputs.runtime_handler.to_owned(),
            );
            annotations::annotate(&mut spec, [pair]);
        }

        // containerSpecOpts: user, AppArmor, seccomp.
        let request = UserRequest {
            run_as_username: &sc.run_as_username,
            run_as_user: sc.run_as_user.as_ref(),
            run_as_group: sc.run_as_group.as_ref(),
            supplemental_groups: &sc.supplemental_groups,
            policy: sc.supplemental_groups_policy,
            image_user: &image.user,
        };
        user::apply_container_user(&mut spec, &request, host.users)?;
        #[allow(deprecated)]
        let apparmor_profile =
            apparmor::requested_profile(sc.apparmor.as_ref(), &sc.apparmor_profile)?;
        let apparmor_enabled = !opts.disable_apparmor && host.os.apparmor_supported();
        apparmor::apply_apparmor(
            &mut spec,
            apparmor_profile.as_ref(),
            sc.privileged,
            apparmor_enabled,
            host.os,
        )?;
        #[allow(deprecated)]
        let seccomp_profile = seccomp::requested_profile(
            sc.seccomp.as_ref(),
            &sc.seccomp_profile_path,
            &opts.unset_seccomp_profile,
        )?;
        seccomp::apply_seccomp(
            &mut spec,
            seccomp_profile.as_ref(),
            sc.privileged,
            self.architecture,
            host.os,
        )?;

        if sc.privileged {
            // Recorded in the metadata, but not applied.
            access::process(&mut spec).set_selinux_label(None);
        }
        access::normalize(&mut spec);
        Ok(spec)
    }
}
