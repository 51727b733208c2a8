//! The tonic layer's one mapping from the services' errors to gRPC
//! statuses: each concern's error enum gets its code here, and is logged
//! once, with its chain of causes.

use cri_api::containerd::ContainerdError;
use tonic::{Code, Status};

use crate::container::ContainerError;
use crate::sandbox::SandboxError;
use crate::service::StatsRequestError;
use crate::streaming_runtime::StreamRequestError;
use cri_image::ImageError;

/// The status of a failed RPC, logged once.
fn status(code: Code, err: &dyn std::error::Error) -> Status {
    let message = cri_api::error_chain(err);
    match code {
        Code::Internal | Code::Unknown | Code::Unavailable => {
            tracing::error!(code = ?code, error = %message, "rpc failed")
        }
        _ => tracing::info!(code = ?code, error = %message, "rpc failed"),
    }
    Status::new(code, message)
}

/// The answer to an RPC this version does not serve.
pub(crate) fn not_implemented(rpc: &'static str) -> Status {
    Status::unimplemented(format!(
        "{rpc} is not implemented by this version of cri-server"
    ))
}

impl From<ContainerError> for Status {
    fn from(err: ContainerError) -> Self {
        status(container_code(&err), &err)
    }
}

impl From<SandboxError> for Status {
    fn from(err: SandboxError) -> Self {
        status(sandbox_code(&err), &err)
    }
}

/// An image RPC's error (`ImageError` is another crate's, so this is a
/// function, not a `From`).
pub(crate) fn image_status(err: ImageError) -> Status {
    status(image_code(&err), &err)
}

impl From<StatsRequestError> for Status {
    fn from(err: StatsRequestError) -> Self {
        let code = match &err {
            StatsRequestError::Lookup(e) => store_code(e),
            StatsRequestError::Stats(e) if e.is_not_found() => Code::NotFound,
            StatsRequestError::Stats(_) => Code::Internal,
        };
        status(code, &err)
    }
}

impl From<StreamRequestError> for Status {
    fn from(err: StreamRequestError) -> Self {
        let code = match &err {
            StreamRequestError::Refused(e) => match e.kind() {
                cri_streaming::StreamingErrorKind::InvalidArgument => Code::InvalidArgument,
                cri_streaming::StreamingErrorKind::ResourceExhausted => Code::ResourceExhausted,
                cri_streaming::StreamingErrorKind::Internal => Code::Internal,
            },
            StreamRequestError::NotStarted => Code::Internal,
            StreamRequestError::Container(e) => container_code(e),
            StreamRequestError::Sandbox(e) => sandbox_code(e),
            StreamRequestError::SandboxNotReady { .. } => Code::FailedPrecondition,
        };
        status(code, &err)
    }
}

fn container_code(err: &ContainerError) -> Code {
    match err {
        ContainerError::InvalidArgument(_) => Code::InvalidArgument,
        ContainerError::Containerd(e) => containerd_code(e),
        ContainerError::Image(e) => image_code(e),
        ContainerError::ContainerStore(e) => store_code(e),
        ContainerError::ContainerState { .. } | ContainerError::ContainerSandboxNotReady { .. } => {
            Code::FailedPrecondition
        }
        ContainerError::UnknownRuntimeHandler { .. } => Code::NotFound,
        ContainerError::ContainerSpec { source, .. } => spec_code(source),
        ContainerError::ContainerIo { source, .. } => match source {
            cri_io::Error::InvalidLogPath { .. } => Code::InvalidArgument,
            _ => Code::Internal,
        },
        ContainerError::Metadata(_)
        | ContainerError::HostPath { .. }
        | ContainerError::TaskFailed { .. }
        | ContainerError::SpecJson { .. }
        | ContainerError::ImageUserDb { .. }
        | ContainerError::ExecIoDrain { .. } => Code::Internal,
        ContainerError::CreateContainer { source, .. } => container_code(source),
        ContainerError::StopTimeout { .. } | ContainerError::ExecTimeout { .. } => {
            Code::DeadlineExceeded
        }
        ContainerError::Sandbox(e) => sandbox_code(e),
    }
}

/// A pod's container that failed to stop or be removed: the container
/// side's code.
fn pod_container_code(err: &crate::sandbox::PodContainerError) -> Code {
    err.source
        .downcast_ref::<ContainerError>()
        .map_or(Code::Internal, container_code)
}

/// Sandbox errors. A reused name is AlreadyExists (containerd answers
/// Unknown; the kubelet does not branch on it); an unknown runtime handler
/// NotFound, as for containers.
fn sandbox_code(err: &crate::sandbox::SandboxError) -> Code {
    use crate::sandbox::SandboxError as E;
    use cri_sandbox::controller::ControllerError as C;
    match err {
        E::MissingMetadata | E::Ambiguous { .. } => Code::InvalidArgument,
        E::NameReserved { .. } => Code::AlreadyExists,
        E::UnknownRuntimeHandler { .. } | E::NotFound { .. } => Code::NotFound,
        E::UnsupportedSandboxMode { .. } => Code::Unimplemented,
        E::SandboxImage { source, .. } => image_code(source),
        E::NetnsNotClosed { .. } => Code::FailedPrecondition,
        E::NetworkSetup { .. } | E::NetworkTeardown { .. } | E::NoPodIp { .. } => Code::Unknown,
        E::Controller { source, .. } => match source.root() {
            C::Spec { source, .. } => spec_code(source),
            other => other.containerd().map_or(Code::Internal, containerd_code),
        },
        E::StopContainer { source, .. } | E::RemoveContainer { source, .. } => {
            pod_container_code(source)
        }
        E::ConfTemplate(cri_sandbox::cni::TemplateError::InvalidCidr { .. }) => {
            Code::InvalidArgument
        }
        E::WithUndo { source, .. } => sandbox_code(source),
        E::RuntimeOptions { .. }
        | E::Netns { .. }
        | E::Files { .. }
        | E::Metadata { .. }
        | E::Store { .. }
        | E::VerboseInfo { .. }
        | E::ConfTemplate(_)
        | E::Aborted { .. }
        | E::PortForward { .. } => Code::Internal,
    }
}

fn store_code(err: &cri_store::StoreError) -> Code {
    use cri_store::StoreError;
    match err {
        StoreError::NotFound { .. } => Code::NotFound,
        StoreError::Ambiguous { .. } | StoreError::EmptyId { .. } => Code::InvalidArgument,
        StoreError::NameReserved { .. } | StoreError::AlreadyExists { .. } => Code::AlreadyExists,
    }
}

/// Spec errors: what the host failed at is Internal, what it does not
/// support FailedPrecondition, a bad request InvalidArgument.
fn spec_code(err: &cri_spec::Error) -> Code {
    use cri_spec::Error as E;
    match err {
        E::Assemble { .. }
        | E::Hostname { .. }
        | E::StatHostPath { .. }
        | E::CreateHostPath { .. }
        | E::ResolveSymlinks { .. }
        | E::LookupMount { .. }
        | E::CurrentCapabilities { .. }
        | E::Relabel { .. }
        | E::LookupDevice { .. }
        | E::HostDevices { .. }
        | E::ReadPasswd { .. }
        | E::ReadGroup { .. }
        | E::ReadSeccompProfile { .. }
        | E::LookupAppArmorProfile { .. }
        | E::InitSelinuxLabels { .. } => Code::Internal,
        E::NotSharedMount { .. }
        | E::NotSharedOrSlaveMount { .. }
        | E::HugetlbControllerMissing
        | E::SeccompUnsupported
        | E::AppArmorUnsupported
        | E::AppArmorProfileNotFound { .. }
        | E::UnsupportedPlatform { .. }
        | E::PrivilegedNotAllowed { .. }
        | E::BlockIoDisabled { .. }
        | E::RdtDisabled { .. } => Code::FailedPrecondition,
        _ => Code::InvalidArgument,
    }
}

fn containerd_code(err: &ContainerdError) -> Code {
    match err {
        ContainerdError::Unavailable { .. } => Code::Unavailable,
        ContainerdError::NotFound { .. } => Code::NotFound,
        ContainerdError::AlreadyExists { .. } => Code::AlreadyExists,
        ContainerdError::FailedPrecondition { .. } => Code::FailedPrecondition,
        ContainerdError::DeadlineExceeded { .. } => Code::DeadlineExceeded,
        ContainerdError::InvalidArgument { .. } => Code::InvalidArgument,
        ContainerdError::Rpc { .. } | ContainerdError::Decode { .. } => Code::Internal,
    }
}

fn image_code(err: &ImageError) -> Code {
    match err {
        ImageError::InvalidReference { .. } | ImageError::Ambiguous { .. } => Code::InvalidArgument,
        ImageError::NotFound { .. }
        | ImageError::RemoteNotFound { .. }
        | ImageError::NoMatchingPlatform { .. } => Code::NotFound,
        ImageError::Unauthorized { .. } => Code::Unauthenticated,
        ImageError::Network { .. } => Code::Unavailable,
        ImageError::Registry { .. } => Code::Unknown,
        ImageError::ProgressTimeout { .. } => Code::DeadlineExceeded,
        ImageError::BadContent { .. } => Code::DataLoss,
        ImageError::UnsupportedMediaType { .. } | ImageError::Config { .. } => {
            Code::FailedPrecondition
        }
        ImageError::Containerd { source, .. } => containerd_code(source),
        ImageError::Shared(inner) => image_code(inner),
        ImageError::Task { .. } => Code::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(err: impl Into<Status>, code: Code, fragment: &str) {
        let status: Status = err.into();
        check_status(status, code, fragment);
    }

    fn check_image(err: ImageError, code: Code, fragment: &str) {
        check_status(image_status(err), code, fragment);
    }

    fn check_status(status: Status, code: Code, fragment: &str) {
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains(fragment), "{status:?}");
    }

    #[test]
    fn unavailable_containerd_names_address() {
        check(
            ContainerError::Containerd(ContainerdError::Unavailable {
                address: "/run/c.sock".into(),
                message: "connection refused".into(),
            }),
            Code::Unavailable,
            "/run/c.sock",
        );
    }

    #[test]
    fn not_found_and_invalid() {
        check(
            ContainerError::Containerd(ContainerdError::NotFound {
                op: "get container",
                what: "abc".into(),
            }),
            Code::NotFound,
            "abc",
        );
        check(
            ContainerError::InvalidArgument("bad".into()),
            Code::InvalidArgument,
            "bad",
        );
        let status = not_implemented("CheckpointContainer");
        assert_eq!(status.code(), Code::Unimplemented);
        assert!(status.message().contains("CheckpointContainer"));
    }

    #[test]
    fn image_errors() {
        let reference = "docker.io/library/busybox:latest".to_owned();
        check_image(
            ImageError::InvalidReference {
                reference: "Bad".into(),
                reason: "must be lowercase".into(),
            },
            Code::InvalidArgument,
            "Bad",
        );
        check_image(
            ImageError::RemoteNotFound {
                reference: reference.clone(),
                hosts: "r.io".into(),
            },
            Code::NotFound,
            "busybox",
        );
        check_image(
            ImageError::Unauthorized {
                reference: reference.clone(),
                registry: "r.io:5000".into(),
                message: "401".into(),
            },
            Code::Unauthenticated,
            "r.io:5000",
        );
        check_image(
            ImageError::Network {
                reference: reference.clone(),
                host: "10.0.0.9:5000".into(),
                message: "refused".into(),
            },
            Code::Unavailable,
            "10.0.0.9:5000",
        );
        let timeout = ImageError::ProgressTimeout {
            reference,
            timeout: std::time::Duration::from_secs(2),
        };
        check_image(
            ImageError::Shared(std::sync::Arc::new(timeout)),
            Code::DeadlineExceeded,
            "no progress",
        );
    }
}
