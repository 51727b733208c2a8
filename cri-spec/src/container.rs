//! [`ContainerSpecBuilder`]: the OCI spec of an app container from its CRI
//! config, its sandbox's config, the image config and the runtime-side
//! facts in [`ContainerInputs`], applying containerd's spec options in
//! containerd's order (`buildLinuxSpec`, then `containerSpecOpts`).

use cri_api::{
    ids::{ContainerId, SandboxId},
    v1::{ContainerConfig, LinuxContainerSecurityContext, Mount as CriMount, NamespaceMode, PodSandboxConfig},
};
use oci_spec::{image::ImageConfiguration, runtime::Spec};

use crate::{
    access,
    annotations::{self, DefaultKind},
    apparmor, base, capabilities,
    classes::{self, ClassSources},
    devices,
    host::{HostOs, SeLinux, SelinuxLabels, UserLookup},
    mounts::{self, MountContext},
    namespaces::{self, ContainerNamespaces},
    options::{Platform, RuntimeOptions, SandboxFiles},
    process::{self, ImageProcess},
    resources::{self, ResourceOptions},
    seccomp, selinux,
    user::{self, UserRequest},
    Error, Result,
};

/// The runtime-side facts a container spec needs that its CRI config
/// does not carry.
#[derive(Clone, Copy)]
pub struct ContainerInputs<'a> {
    /// The new container's id.
    pub id: &'a ContainerId,
    /// Its sandbox's id.
    pub sandbox_id: &'a SandboxId,
    /// The pid of the sandbox's pause process (namespaces are joined
    /// through `/proc/<pid>/ns`).
    pub sandbox_pid: u32,
    /// The sandbox's CRI config.
    pub sandbox_config: &'a PodSandboxConfig,
    /// The image config of the container's image.
    pub image_config: &'a ImageConfiguration,
    /// The containerd image name (for the image-name annotation).
    pub image_name: &'a str,
    /// The runtime handler of the sandbox.
    pub runtime_handler: &'a str,
    /// Configuration keys that affect specs.
    pub options: &'a RuntimeOptions,
    /// Host paths of the sandbox's hostname, hosts, resolv.conf and shm.
    pub sandbox_files: &'a SandboxFiles,
}

/// The OS seams the builders call.
#[derive(Clone, Copy)]
pub struct SpecHost<'a> {
    /// Filesystem, device, mount and kernel facts.
    pub os: &'a dyn HostOs,
    /// The image rootfs user database.
    pub users: &'a dyn UserLookup,
    /// SELinux labels.
    pub selinux: &'a dyn SeLinux,
}

/// A spec and the SELinux labels allocated for it. For privileged
/// containers `process_label` is kept here (to be recorded and released
/// later, as containerd does) while the spec carries none.
#[derive(Debug, Clone, PartialEq)]
pub struct LabeledSpec {
    /// The OCI spec.
    pub spec: Spec,
    /// The allocated process label (empty without SELinux).
    pub process_label: String,
    /// The allocated mount label (empty without SELinux).
    pub mount_label: String,
}

/// Builds the OCI spec of an app container.
pub struct ContainerSpecBuilder<'a> {
    config: &'a ContainerConfig,
    inputs: ContainerInputs<'a>,
    host: SpecHost<'a>,
    platform: Platform,
    extra_mounts: Vec<CriMount>,
    target_pid: Option<u32>,
    sandbox_process_label: String,
    netns_path: String,
}

impl<'a> ContainerSpecBuilder<'a> {
    /// A builder for `config` in the given sandbox, for the host's platform.
    pub fn new(config: &'a ContainerConfig, inputs: ContainerInputs<'a>, host: SpecHost<'a>) -> Self {
        Self {
            config,
            inputs,
            host,
            platform: Platform::host(),
            extra_mounts: Vec::new(),
            target_pid: None,
            sandbox_process_label: String::new(),
            netns_path: String::new(),
        }
    }

    /// The platform of the sandbox (its controller's answer).
    pub fn with_platform(mut self, platform: Platform) -> Self {
        self.platform = platform;
        self
    }

    /// Mounts added after the CRI ones (image volumes); a CRI mount with
    /// the same destination wins.
    pub fn with_extra_mounts(mut self, mounts: Vec<CriMount>) -> Self {
        self.extra_mounts = mounts;
        self
    }

    /// The pid of the target container, for pid namespace mode TARGET.
    pub fn with_target_pid(mut self, pid: u32) -> Self {
        self.target_pid = Some(pid);
        self
    }

    /// The sandbox's SELinux process label, whose options apply when the
    /// container gives no SELinux options.
    pub fn with_sandbox_process_label(mut self, label: impl Into<String>) -> Self {
        self.sandbox_process_label = label.into();
        self
    }

    /// The sandbox's network namespace path (Windows).
    pub fn with_netns_path(mut self, path: impl Into<String>) -> Self {
        self.netns_path = path.into();
        self
    }

    /// The spec.
    pub fn build(self) -> Result<Spec> {
        self.build_labeled().map(|l| l.spec)
    }

    /// The spec with the SELinux labels allocated for it.
    pub fn build_labeled(self) -> Result<LabeledSpec> {
        let name = container_name(self.config)?;
        let image = ImageProcess::from_image(self.inputs.image_config);
        match self.platform.os.as_str() {
            "linux" => self.build_linux(&name, &image),
            "windows" => crate::windows::build(&crate::windows::WindowsRequest {
                config: self.config,
                inputs: &self.inputs,
                container_name: &name,
                image: &image,
                netns_path: &self.netns_path,
                extra_mounts: &self.extra_mounts,
                host: self.host.os,
            })
            .map(unlabeled),
            "darwin" => crate::darwin::build(&crate::darwin::DarwinRequest {
                config: self.config,
                inputs: &self.inputs,
                container_name: &name,
                image: &image,
                extra_mounts: &self.extra_mounts,
                host: self.host.os,
            })
            .map(unlabeled),
            other => Err(Error::UnsupportedPlatform { os: other.to_owned() }),
        }
    }

    fn build_linux(&self, name: &str, image: &ImageProcess) -> Result<LabeledSpec> {
        let sc = self.config.linux.as_ref().and_then(|l| l.security_context.clone()).unwrap_or_default();
        self.validate(&sc)?;
        let mut options = selinux::label_options(sc.selinux_options.as_ref())?;
        if options.is_empty() {
            options = selinux::dup_sec_opt(&self.sandbox_process_label)?;
        }
        let labels = selinux::init_labels(self.host.selinux, self.inputs.options.enable_selinux, &options)?;
        match self.linux_spec(name, image, &sc, &labels) {
            Ok(spec) => Ok(LabeledSpec { spec, process_label: labels.process, mount_label: labels.mount }),
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
        let sandbox_sc = self.inputs.sandbox_config.linux.as_ref().and_then(|l| l.security_context.as_ref());
        if sc.privileged && !sandbox_sc.is_some_and(|s| s.privileged) {
            return Err(Error::PrivilegedNotAllowed { sandbox: self.inputs.sandbox_id.to_string() });
        }
        user::user_string(&sc.run_as_username, sc.run_as_user.as_ref(), sc.run_as_group.as_ref())?;
        if cri_api::v1::SupplementalGroupsPolicy::try_from(sc.supplemental_groups_policy).is_err() {
            return Err(Error::UnsupportedSupplementalGroupsPolicy { policy: sc.supplemental_groups_policy });
        }
        namespaces::check_container_namespaces(&self.namespaces(sc))?;
        Ok(())
    }

    fn namespaces<'s>(&'s self, sc: &'s LinuxContainerSecurityContext) -> ContainerNamespaces<'s> {
        let sandbox_sc = self.inputs.sandbox_config.linux.as_ref().and_then(|l| l.security_context.as_ref());
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
        let sources = ClassSources { container_name: name, container: &config.annotations, pod: &sandbox.annotations };
        classes::apply_blockio(&mut spec, &sources, opts)?;
        classes::apply_rdt(&mut spec, &sources, opts)?;

        let hostname = if sandbox.hostname.is_empty() {
            host.os.hostname().map_err(|source| Error::Hostname { source })?
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
        mounts::apply_path_masks(&mut spec, &sc.masked_paths, &sc.readonly_paths, opts.disable_proc_mount);

        let owner = opts.device_ownership_from_security_context.then(|| {
            let id = |v: Option<&cri_api::v1::Int64Value>| v.map_or(0, |v| v.value as u32);
            (id(sc.run_as_user.as_ref()), id(sc.run_as_group.as_ref()))
        });
        devices::apply_cri_devices(&mut spec, &config.devices, owner, host.os)?;
        let wants_all = sc.capabilities.as_ref().is_some_and(|c| {
            c.add_capabilities.iter().any(|a| a.eq_ignore_ascii_case("ALL"))
        });
        let all_caps = if sc.privileged || wants_all {
            let names = host.os.current_capabilities().map_err(|source| Error::CurrentCapabilities { source })?;
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
            let ropts = ResourceOptions {
                tolerate_missing_hugetlb_controller: opts.tolerate_missing_hugetlb_controller,
                disable_hugetlb_controller: opts.disable_hugetlb_controller,
            };
            resources::apply_resources(&mut spec, resources, &ropts, host.os)?;
        }
        let parent = sandbox.linux.as_ref().map_or("", |l| l.cgroup_parent.as_str());
        resources::apply_cgroups_path(&mut spec, parent, &inputs.id.0, opts.disable_cgroup);
        annotations::annotate(&mut spec, annotations::passthrough(&sandbox.annotations, &opts.pod_annotations));
        annotations::annotate(&mut spec, annotations::passthrough(&config.annotations, &opts.container_annotations));
        process::apply_oom_score_adj(&mut spec, resources, opts.restrict_oom_score_adj, opts.daemon_oom_score_adj);
        namespaces::apply_container_namespaces(&mut spec, &self.namespaces(sc))?;
        let kind = DefaultKind::Container { container_name: name, image_name: inputs.image_name };
        annotations::annotate(&mut spec, annotations::default_cri_annotations(&inputs.sandbox_id.0, sandbox, kind));
        if opts.annotate_runtime_handler {
            let pair = (annotations::RUNTIME_HANDLER.to_owned(), inputs.runtime_handler.to_owned());
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
        let apparmor_profile = apparmor::requested_profile(sc.apparmor.as_ref(), &sc.apparmor_profile)?;
        let apparmor_enabled = !opts.disable_apparmor && host.os.apparmor_supported();
        apparmor::apply_apparmor(&mut spec, apparmor_profile.as_ref(), sc.privileged, apparmor_enabled, host.os)?;
        #[allow(deprecated)]
        let seccomp_profile =
            seccomp::requested_profile(sc.seccomp.as_ref(), &sc.seccomp_profile_path, &opts.unset_seccomp_profile)?;
        seccomp::apply_seccomp(&mut spec, seccomp_profile.as_ref(), sc.privileged, &self.platform.architecture, host.os)?;

        if sc.privileged {
            // Recorded in the metadata, but not applied.
            access::process(&mut spec).set_selinux_label(None);
        }
        access::normalize(&mut spec);
        Ok(spec)
    }
}

fn unlabeled(spec: Spec) -> LabeledSpec {
    LabeledSpec { spec, process_label: String::new(), mount_label: String::new() }
}

fn container_name(config: &ContainerConfig) -> Result<String> {
    config.metadata.as_ref().map(|m| m.name.clone()).ok_or(Error::MissingContainerMetadata)
}

#[cfg(test)]
#[path = "container_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "golden_tests.rs"]
mod golden_tests;
