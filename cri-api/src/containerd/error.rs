//! The error every containerd seam call returns.

/// What went wrong talking to containerd. Variants follow the gRPC codes
/// containerd answers with, so callers can branch on them without parsing
/// messages.
#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    /// containerd is not reachable at `address` (down, restarting, or the
    /// socket is missing).
    #[error("containerd at {address} is unavailable: {message}")]
    Unavailable { address: String, message: String },
    /// The named object does not exist.
    #[error("{op}: {what} not found")]
    NotFound { op: &'static str, what: String },
    /// The named object exists already.
    #[error("{op}: {what} already exists")]
    AlreadyExists { op: &'static str, what: String },
    /// containerd refused the call in the object's current state.
    #[error("{op}: {message}")]
    FailedPrecondition { op: &'static str, message: String },
    /// The call ran past its deadline.
    #[error("{op}: deadline exceeded: {message}")]
    DeadlineExceeded { op: &'static str, message: String },
    /// containerd rejected the call as malformed.
    #[error("{op}: invalid argument: {message}")]
    InvalidArgument { op: &'static str, message: String },
    /// Any other gRPC failure, with its code.
    #[error("{op}: {code}: {message}")]
    Rpc {
        op: &'static str,
        code: tonic::Code,
        message: String,
    },
    /// A reply that could not be decoded.
    #[error("{op}: bad reply from containerd: {message}")]
    Decode { op: &'static str, message: String },
}

impl ContainerdError {
    /// Whether this error means the object was missing.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// Whether this error means containerd could not be reached.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// Classifies a tonic status from the call `op` about `what`.
    pub fn from_status(op: &'static str, what: &str, address: &str, s: &tonic::Status) -> Self {
        use tonic::Code;
        let message = s.message().to_owned();
        match s.code() {
            Code::NotFound => Self::NotFound {
                op,
                what: what.to_owned(),
            },
            Code::AlreadyExists => Self::AlreadyExists {
                op,
                what: what.to_owned(),
            },
            Code::FailedPrecondition => Self::FailedPrecondition { op, message },
            Code::DeadlineExceeded => Self::DeadlineExceeded { op, message },
            Code::InvalidArgument => Self::InvalidArgument { op, message },
            Code::Unavailable => Self::Unavailable {
                address: address.to_owned(),
                message,
            },
            Code::Unknown if is_transport_failure(&message) => Self::Unavailable {
                address: address.to_owned(),
                message,
            },
            code => Self::Rpc { op, code, message },
        }
    }
}

/// Transport failures tonic reports as `Unknown`. Observed against
/// containerd 1.6: a call in flight when containerd dies ends with
/// "transport error"; a server stream (events, content reads) breaks with
/// "h2 protocol error: error reading a body from connection". Failures to
/// connect arrive as `Unavailable` already.
fn is_transport_failure(message: &str) -> bool {
    const MARKS: [&str; 6] = [
        "transport error",
        "h2 protocol error",
        "error reading a body from connection",
        "connection refused",
        "connection reset",
        "broken pipe",
    ];
    let m = message.to_ascii_lowercase();
    MARKS.iter().any(|mark| m.contains(mark))
}

/// Result of a containerd seam call.
pub type Result<T, E = ContainerdError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn check(code: tonic::Code, msg: &str, want: fn(&ContainerdError) -> bool) {
        let e = ContainerdError::from_status(
            "op",
            "thing",
            "/run/c.sock",
            &tonic::Status::new(code, msg),
        );
        assert!(want(&e), "{code:?} {msg} classified as {e:?}");
    }

    #[test]
    fn classifies_codes() {
        check(tonic::Code::NotFound, "x", ContainerdError::is_not_found);
        check(
            tonic::Code::Unavailable,
            "x",
            ContainerdError::is_unavailable,
        );
        check(
            tonic::Code::Unknown,
            "transport error",
            ContainerdError::is_unavailable,
        );
        check(
            tonic::Code::Unknown,
            "h2 protocol error: error reading a body from connection",
            ContainerdError::is_unavailable,
        );
        check(tonic::Code::Unknown, "something else", |e| {
            matches!(
                e,
                ContainerdError::Rpc {
                    code: tonic::Code::Unknown,
                    ..
                }
            )
        });
        check(tonic::Code::AlreadyExists, "x", |e| {
            matches!(e, ContainerdError::AlreadyExists { .. })
        });
        check(tonic::Code::Internal, "x", |e| {
            matches!(
                e,
                ContainerdError::Rpc {
                    code: tonic::Code::Internal,
                    ..
                }
            )
        });
    }

    #[test]
    fn unavailable_names_the_address() {
        let e = ContainerdError::from_status(
            "version",
            "",
            "/run/c.sock",
            &tonic::Status::unavailable("refused"),
        );
        assert!(e.to_string().contains("/run/c.sock"), "{e}");
    }
}
