//! [`ContainerSpecBuilder`]: the OCI spec of an app container from its CRI
//! config, its sandbox's config, the image config and the runtime-side
//! facts in [`ContainerInputs`], applying containerd's spec options in
//! containerd's order (`buildLinuxSpec`, then `containerSpecOpts`).

use cri_api::{
    ids::{ContainerId, SandboxId},
    v1::{ContainerConfig, Mount as CriMount, PodSandboxConfig},
};
use oci_spec::{image::ImageConfiguration, runtime::Spec};

use crate::{
    host::{HostOs, SeLinux, UserLookup},
    options::{Platform, RuntimeOptions, SandboxFiles},
    process::ImageProcess,
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
    pub fn new(
        config: &'a ContainerConfig,
        inputs: ContainerInputs<'a>,
        host: SpecHost<'a>,
    ) -> Self {
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
            "linux" => crate::linux::LinuxBuild {
                config: self.config,
                inputs: &self.inputs,
                host: self.host,
                architecture: &self.platform.architecture,
                extra_mounts: &self.extra_mounts,
                target_pid: self.target_pid,
                sandbox_process_label: &self.sandbox_process_label,
            }
            .build(&name, &image),
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
            other => Err(Error::UnsupportedPlatform {
                os: other.to_owned(),
            }),
        }
    }
}

fn unlabeled(spec: Spec) -> LabeledSpec {
    LabeledSpec {
        spec,
        process_label: String::new(),
        mount_label: String::new(),
    }
}

fn container_name(config: &ContainerConfig) -> Result<String> {
    config
        .metadata
        .as_ref()
        .map(|m| m.name.clone())
        .ok_or(Error::MissingContainerMetadata)
}

#[cfg(test)]
#[path = "container_tests.rs"]
pub(crate) mod tests;

#[cfg(test)]
#[path = "golden_tests.rs"]
mod golden_tests;
