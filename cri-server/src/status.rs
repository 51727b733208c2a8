//! The one place that turns a [`ServerError`] into a gRPC status, and
//! logs it once.

use cri_api::containerd::ContainerdError;
use tonic::{Code, Status};

use crate::error::ServerError;
use crate::image::ImageError;

impl From<ServerError> for Status {
    fn from(err: ServerError) -> Self {
        let code = code_of(&err);
        let message = error_chain(&err);
        match code {
            Code::Internal | Code::Unknown | Code::Unavailable => {
                tracing::error!(code = ?code, error = %message, "rpc failed")
            }
            _ => tracing::info!(code = ?code, error = %message, "rpc failed"),
        }
        Status::new(code, message)
    }
}

fn code_of(err: &ServerError) -> Code {
    match err {
        ServerError::InvalidArgument(_) => Code::InvalidArgument,
        ServerError::NotImplemented { .. } => Code::Unimplemented,
        ServerError::Containerd(e) => containerd_code(e),
        ServerError::Image(e) => image_code(e),
        ServerError::ContainerStore(e) => store_code(e),
        ServerError::ContainerState { .. } | ServerError::ContainerSandboxNotReady { .. } => {
            Code::FailedPrecondition
        }
        ServerError::UnknownRuntimeHandler { .. } => Code::NotFound,
        ServerError::ContainerSpec { source, .. } => spec_code(source),
        ServerError::ContainerIo { source, .. } => match source {
            cri_io::Error::InvalidLogPath { .. } => Code::InvalidArgument,
            _ => Code::Internal,
        },
        ServerError::Metadata(_)
        | ServerError::HostPath { .. }
        | ServerError::TaskFailed { .. }
        | ServerError::SpecJson { .. }
        | ServerError::ImageUserDb { .. } => Code::Internal,
        ServerError::CreateContainer { source, .. } => code_of(source),
        ServerError::StopTimeout { .. } => Code::DeadlineExceeded,
        ServerError::Sandbox(e) => sandbox_code(e),
        ServerError::Stats(e) if e.is_not_found() => Code::NotFound,
        ServerError::Stats(_) => Code::Internal,
        ServerError::Streaming(e) => match e.kind() {
            cri_streaming::StreamingErrorKind::InvalidArgument => Code::InvalidArgument,
            cri_streaming::StreamingErrorKind::ResourceExhausted => Code::ResourceExhausted,
            cri_streaming::StreamingErrorKind::Internal => Code::Internal,
        },
        ServerError::ExecTimeout { .. } => Code::DeadlineExceeded,
        ServerError::SandboxNotReady { .. } => Code::FailedPrecondition,
        ServerError::StreamingNotStarted
        | ServerError::ExecIoDrain { .. }
        | ServerError::PortForward { .. } => Code::Internal,
    }
}

/// Sandbox errors. A reused name is AlreadyExists (containerd answers
/// Unknown; the kubelet does not branch on it); an unknown runtime handler
/// NotFound, as for containers.
fn sandbox_code(err: &crate::sandbox::SandboxError) -> Code {
    use crate::sandbox::SandboxError as E;
    use cri_sandbox::controller::ControllerError as C;
    match err {
        E::MissingMetadata | E::IncompleteMetadata { .. } | E::Ambiguous { .. } => {
            Code::InvalidArgument
        }
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
        E::StopContainer { source, .. } | E::RemoveContainer { source, .. } => code_of(source),
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
        | E::Aborted { .. } => Code::Internal,
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

/// The error and its sources, joined by ": ".
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(err: ServerError, code: Code, fragment: &str) {
        let status = Status::from(err);
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains(fragment), "{status:?}");
    }

    #[test]
    fn unavailable_containerd_names_address() {
        check(
            ServerError::Containerd(ContainerdError::Unavailable {
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
            ServerError::Containerd(ContainerdError::NotFound {
                op: "get container",
                what: "abc".into(),
            }),
            Code::NotFound,
            "abc",
        );
        check(
            ServerError::InvalidArgument("bad".into()),
            Code::InvalidArgument,
            "bad",
        );
        check(
            ServerError::NotImplemented { rpc: "Attach" },
            Code::Unimplemented,
            "Attach",
        );
    }

    #[test]
    fn image_errors() {
        let reference = "docker.io/library/busybox:latest".to_owned();
        check(
            ImageError::InvalidReference {
                reference: "Bad".into(),
                reason: "must be lowercase".into(),
            }
            .into(),
            Code::InvalidArgument,
            "Bad",
        );
        check(
            ImageError::RemoteNotFound {
                reference: reference.clone(),
                hosts: "r.io".into(),
            }
            .into(),
            Code::NotFound,
            "busybox",
        );
        check(
            ImageError::Unauthorized {
                reference: reference.clone(),
                registry: "r.io:5000".into(),
                message: "401".into(),
            }
            .into(),
            Code::Unauthenticated,
            "r.io:5000",
        );
        check(
            ImageError::Network {
                reference: reference.clone(),
                host: "10.0.0.9:5000".into(),
                message: "refused".into(),
            }
            .into(),
            Code::Unavailable,
            "10.0.0.9:5000",
        );
        let timeout = ImageError::ProgressTimeout {
            reference,
            timeout: std::time::Duration::from_secs(2),
        };
        check(
            ImageError::Shared(std::sync::Arc::new(timeout)).into(),
            Code::DeadlineExceeded,
            "no progress",
        );
    }
}
