//! OCI runtime spec builders: pure functions from a CRI `ContainerConfig`,
//! `PodSandboxConfig`, image config and runtime-handler config to an
//! `oci_spec::runtime::Spec`, producing what containerd's CRI plugin
//! (v1.7 `sbserver`) produces. OS facts reach it through traits
//! ([`HostOs`], [`UserLookup`], [`SeLinux`]), never through system calls.
//!
//! Entry points: [`ContainerSpecBuilder`] for app containers and
//! [`PauseSpecBuilder`] for the sandbox (pause) container.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod access;
pub mod annotations;
mod apparmor;
mod base;
mod capabilities;
mod cgroups;
mod classes;
mod container;
mod darwin;
mod devices;
mod encode;
mod error;
mod host;
mod linux;
mod mounts;
mod namespaces;
mod options;
mod pause;
mod process;
mod resources;
mod seccomp;
mod seccomp_default;
mod selinux;
mod sysctl;
mod user;
mod windows;

#[cfg(test)]
mod testutil;

pub use apparmor::APPARMOR_DEFAULT_PROFILE;
pub use base::{K8S_NAMESPACE, OCI_VERSION};
pub use capabilities::KNOWN_CAPABILITIES;
pub use cgroups::cgroups_path;
pub use container::{ContainerInputs, ContainerSpecBuilder, LabeledSpec, SpecHost};
pub use encode::spec_to_json;
pub use error::{Error, IdKind, Result};
pub use host::{DeviceInfo, DeviceKind, HostOs, MountInfo, SeLinux, SelinuxLabels, UserLookup};
#[cfg(any(test, feature = "mocks"))]
pub use host::{MockHostOs, MockSeLinux, MockUserLookup};
pub use options::{Platform, RuntimeOptions, SandboxFiles};
pub use pause::{
    PauseInputs, PauseSpecBuilder, DEFAULT_SANDBOX_CPU_SHARES, DEFAULT_SANDBOX_OOM_ADJ,
};
pub use resources::{update_resources, ResourceOptions};
pub use seccomp::default_seccomp_profile;
