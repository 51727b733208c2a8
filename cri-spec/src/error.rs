//! The one error type of cri-spec: every way building an OCI spec fails,
//! naming the failed step and the object (path, user, profile) involved.

use std::{fmt, io, path::PathBuf};

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which id map a user-namespace error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// `uids` of the `UserNamespace`.
    Uid,
    /// `gids` of the `UserNamespace`.
    Gid,
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Uid => "uid",
            Self::Gid => "gid",
        })
    }
}

/// Why a spec could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An `oci_spec` builder refused a value (not expected to happen).
    #[error("assemble the OCI spec")]
    Assemble {
        #[from]
        source: oci_spec::OciSpecError,
    },

    // --- inputs ---
    /// The container config carries no metadata (name).
    #[error("container config must include metadata")]
    MissingContainerMetadata,
    /// Neither the CRI config nor the image gives a command.
    #[error("no command specified for container {container}")]
    NoCommand { container: String },
    /// The pause image has neither entrypoint nor cmd.
    #[error("invalid empty entrypoint and cmd in the image config of sandbox {sandbox}")]
    PauseWithoutCommand { sandbox: String },
    /// A privileged container was asked for in a sandbox that is not.
    #[error("no privileged container allowed in sandbox {sandbox}")]
    PrivilegedNotAllowed { sandbox: String },
    /// The platform OS has no builder.
    #[error("unsupported spec platform {os:?}")]
    UnsupportedPlatform { os: String },
    /// Windows: the container's `host_process` differs from the sandbox's.
    #[error("pod spec and all containers inside must have the host_process field set the same way (sandbox {sandbox})")]
    HostProcessMismatch { sandbox: String },

    /// Windows: a device with a container path.
    #[error("unexpected container path {container_path:?} of a windows device, must be empty")]
    WindowsDeviceContainerPath { container_path: String },
    /// Windows: a device with permissions.
    #[error("unexpected permissions {permissions:?} of a windows device, must be empty")]
    WindowsDevicePermissions { permissions: String },
    /// Windows: a device host path that is not `IDType://ID` or `class/ID`.
    #[error("unrecognised windows device host path {host_path:?}, must match IDType://ID")]
    InvalidWindowsDevice { host_path: String },
    /// Windows: a mount destination that is the C drive.
    #[error("mount destination {container_path:?} can not be the C drive")]
    WindowsMountOnCDrive { container_path: String },
    /// Windows: a GMSA credential spec, which `oci_spec` cannot carry as
    /// the string hcsshim expects.
    #[error("windows credential specs are not supported")]
    WindowsCredentialSpecUnsupported,

    // --- user ---
    /// `run_as_group` without `run_as_user` / `run_as_username`.
    #[error("user group {group} is specified without user")]
    GroupWithoutUser { group: i64 },
    /// A user string that is not `user`, `uid`, `user:group` or `uid:gid`.
    #[error("invalid user value {user:?}")]
    InvalidUser { user: String },
    /// Reading the image's `/etc/passwd` failed.
    #[error("read /etc/passwd of the image")]
    ReadPasswd {
        #[source]
        source: io::Error,
    },
    /// Reading the image's `/etc/group` failed.
    #[error("read /etc/group of the image")]
    ReadGroup {
        #[source]
        source: io::Error,
    },
    /// A user name absent from the image's `/etc/passwd` (or no such file).
    #[error("no user {user:?} found in the image /etc/passwd")]
    UnknownUser { user: String },
    /// A group name absent from the image's `/etc/group` (or no such file).
    #[error("no group {group:?} found in the image /etc/group")]
    UnknownGroup { group: String },
    /// A `supplemental_groups_policy` this runtime does not implement.
    #[error("not implemented: supplemental groups policy {policy}")]
    UnsupportedSupplementalGroupsPolicy { policy: i32 },

    // --- host facts ---
    /// The node's hostname was needed and could not be read.
    #[error("get the host name")]
    Hostname {
        #[source]
        source: io::Error,
    },
    /// `stat` of a host path failed for a reason other than absence.
    #[error("stat host path {path}")]
    StatHostPath {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Creating a missing bind-mount source failed.
    #[error("create host path {path}")]
    CreateHostPath {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Resolving the symlinks of a host path failed.
    #[error("resolve symlinks of {path}")]
    ResolveSymlinks {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Finding the mount a host path lives on failed.
    #[error("look up the mount of {path}")]
    LookupMount {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Bidirectional propagation over a mount that is not shared.
    #[error("path {path} is mounted on {mount_point} but it is not a shared mount")]
    NotSharedMount { path: PathBuf, mount_point: PathBuf },
    /// Host-to-container propagation over a mount neither shared nor slave.
    #[error("path {path} is mounted on {mount_point} but it is not a shared or slave mount")]
    NotSharedOrSlaveMount { path: PathBuf, mount_point: PathBuf },
    /// Reading the daemon's own capability set failed.
    #[error("get the current capabilities")]
    CurrentCapabilities {
        #[source]
        source: io::Error,
    },

    // --- mounts and devices ---
    /// `recursive_read_only` without `readonly`.
    #[error("recursive read-only mount {container_path} must be read-only")]
    RecursiveReadOnlyNotReadOnly { container_path: String },
    /// `recursive_read_only` with a propagation other than private.
    #[error("recursive read-only mount {container_path} requires private propagation")]
    RecursiveReadOnlyNotPrivate { container_path: String },
    /// A CRI mount with id mappings (not supported, as in containerd 1.7).
    #[error("idmap mounts not yet supported, but they were requested for {host_path:?}")]
    IdmapMount { host_path: String },
    /// A CRI mount of an image (image volume source), which has no host path.
    #[error("image volume mounts are not supported ({container_path:?})")]
    ImageMount { container_path: String },
    /// SELinux relabelling of a mount source failed.
    #[error("relabel {path} with {label:?}")]
    Relabel {
        path: PathBuf,
        label: String,
        #[source]
        source: io::Error,
    },
    /// Looking up a requested device failed.
    #[error("look up device {path}")]
    LookupDevice {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Listing the host's devices (privileged container) failed.
    #[error("list host devices")]
    HostDevices {
        #[source]
        source: io::Error,
    },

    // --- capabilities, namespaces ---
    /// A capability name that is not a Linux capability.
    #[error("unknown capability {name:?}")]
    UnknownCapability { name: String },
    /// Pid mode TARGET without the target container's pid.
    #[error("pid namespace target {target_id:?} given without the target container's pid")]
    MissingTargetPid { target_id: String },
    /// More than one id-map line.
    #[error("user namespace: only one {kind} mapping line supported, got {count}")]
    TooManyIdMappings { kind: IdKind, count: usize },
    /// A zero-length id-map line.
    #[error("user namespace: invalid {kind} mapping length {length}")]
    InvalidIdMappingLength { kind: IdKind, length: u32 },
    /// User namespace mode NODE with mappings.
    #[error(
        "user namespace: can't use mode NODE with mappings ({uids} uid and {gids} gid mappings)"
    )]
    UsernsNodeWithMappings { uids: usize, gids: usize },
    /// User namespace mode POD without uid or gid mappings.
    #[error("user namespace: can't use mode POD without uid and gid mappings")]
    UsernsPodWithoutMappings,
    /// A user namespace mode other than POD or NODE.
    #[error("user namespace: unsupported mode {mode}")]
    UnsupportedUsernsMode { mode: i32 },
    /// The container's user namespace config differs from its sandbox's.
    #[error("user namespace config of container differs from sandbox {sandbox}")]
    UsernsMismatch { sandbox: String },

    // --- resources ---
    /// Hugepage limits asked for without a hugetlb controller.
    #[error("huge pages limits are specified but hugetlb cgroup controller is missing; set tolerate_missing_hugetlb_controller to true to ignore this error")]
    HugetlbControllerMissing,
    /// A hugepage limit beyond what the spec can carry.
    #[error("hugepage limit {limit} for page size {page_size} is out of range")]
    HugepageLimitOutOfRange { page_size: String, limit: u64 },
    /// A blockio class asked for while blockio is not configured.
    #[error(
        "blockio disabled, refusing to set blockio class of container {container:?} to {class:?}"
    )]
    BlockIoDisabled { container: String, class: String },
    /// A blockio class that the configuration does not define.
    #[error("block I/O class {class:?} does not exist")]
    UnknownBlockIoClass { class: String },
    /// An RDT class asked for while RDT is not configured.
    #[error("RDT disabled, refusing to set RDT class of container {container:?} to {class:?}")]
    RdtDisabled { container: String, class: String },
    /// An RDT class that the configuration does not define.
    #[error("RDT class {class:?} does not exist in configuration")]
    UnknownRdtClass { class: String },

    // --- security profiles ---
    /// A deprecated profile string that is none of the known forms.
    #[error("invalid profile {profile:?}")]
    InvalidSecurityProfile { profile: String },
    /// A seccomp profile asked for on a host without seccomp.
    #[error("seccomp is not supported")]
    SeccompUnsupported,
    /// `localhost_ref` set with a seccomp type other than Localhost.
    #[error("seccomp config invalid: localhost_ref must only be set if profile_type is Localhost")]
    SeccompLocalhostRef,
    /// A seccomp profile type the CRI does not define.
    #[error("seccomp unknown profile type {profile_type}")]
    UnknownSeccompProfileType { profile_type: i32 },
    /// A Localhost seccomp profile could not be read.
    #[error("cannot load seccomp profile {path}")]
    ReadSeccompProfile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A Localhost seccomp profile is not valid JSON of an OCI seccomp section.
    #[error("decoding seccomp profile {path} failed")]
    DecodeSeccompProfile {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A Localhost AppArmor profile asked for while AppArmor is off.
    #[error("apparmor is not supported")]
    AppArmorUnsupported,
    /// `localhost_ref` set with an AppArmor type other than Localhost.
    #[error(
        "apparmor config invalid: localhost_ref must only be set if profile_type is Localhost"
    )]
    AppArmorLocalhostRef,
    /// An AppArmor profile type the CRI does not define.
    #[error("apparmor unknown profile type {profile_type}")]
    UnknownAppArmorProfileType { profile_type: i32 },
    /// A Localhost AppArmor profile with an empty name.
    #[error("empty apparmor profile name is not supported")]
    EmptyAppArmorProfile,
    /// A Localhost AppArmor profile that is not loaded.
    #[error("apparmor profile not found {profile}")]
    AppArmorProfileNotFound { profile: String },
    /// Checking whether an AppArmor profile is loaded failed.
    #[error("look up apparmor profile {profile}")]
    LookupAppArmorProfile {
        profile: String,
        #[source]
        source: io::Error,
    },
    /// An SELinux level that is not `sN[-sN][:cN[.cN][,...]]`.
    #[error("the format of 'level' {level:?} is not correct")]
    InvalidSelinuxLevel { level: String },
    /// A sandbox process label that is not `user:role:type[:level]`.
    #[error("invalid selinux label {label:?}")]
    InvalidSelinuxLabel { label: String },
    /// Allocating the SELinux process and mount labels failed.
    #[error("failed to init selinux options {options:?}")]
    InitSelinuxLabels {
        options: Vec<String>,
        #[source]
        source: io::Error,
    },
}
