//! The outcome written on the error stream: the v4+ `metav1.Status` JSON
//! (with the exit code of a non-zero exit) or, for v1-v3, the bare message
//! of a failure.

use serde::Serialize;

use super::error::StreamRuntimeError;

/// How an exec or attach ended, as reported to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Exit code 0 / attach ended.
    Success,
    /// The command exited non-zero.
    NonZeroExit {
        /// The command, for the message.
        cmd: Vec<String>,
        /// Its exit code.
        code: i32,
    },
    /// The runtime failed; the message already says what failed.
    Internal(String),
}

impl Outcome {
    /// The outcome of an exec.
    pub fn of_exec(cmd: &[String], result: Result<i32, &StreamRuntimeError>) -> Self {
        match result {
            Ok(0) => Outcome::Success,
            Ok(code) => Outcome::NonZeroExit {
                cmd: cmd.to_vec(),
                code,
            },
            Err(e) => Outcome::Internal(format!(
                "error executing command in container: {}",
                e.chain()
            )),
        }
    }

    /// The outcome of an attach.
    pub fn of_attach(result: Result<(), &StreamRuntimeError>) -> Self {
        match result {
            Ok(()) => Outcome::Success,
            Err(e) => Outcome::Internal(format!("error attaching to container: {}", e.chain())),
        }
    }

    fn message(&self) -> Option<String> {
        match self {
            Outcome::Success => None,
            // containerd's streaming runtime wraps the exit as
            // "error executing command [cmd], exit code N".
            Outcome::NonZeroExit { cmd, code } => Some(format!(
                "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                cmd.join(" ")
            )),
            Outcome::Internal(msg) => Some(format!("Internal error occurred: {msg}")),
        }
    }

    /// The v4 error-stream payload: `metav1.Status` as JSON.
    pub fn v4_json(&self) -> Vec<u8> {
        let status = match self {
            Outcome::Success => Status {
                status: "Success",
                ..Status::default()
            },
            Outcome::NonZeroExit { code, .. } => Status {
                status: "Failure",
                message: self.message(),
                reason: Some("NonZeroExitCode"),
                details: Some(Details {
                    causes: vec![Cause {
                        reason: Some("ExitCode"),
                        message: code.to_string(),
                    }],
                }),
                code: None,
                ..Status::default()
            },
            Outcome::Internal(msg) => Status {
                status: "Failure",
                message: self.message(),
                reason: Some("InternalError"),
                details: Some(Details {
                    causes: vec![Cause {
                        reason: None,
                        message: msg.clone(),
                    }],
                }),
                code: Some(500),
                ..Status::default()
            },
        };
        serde_json::to_vec(&status).unwrap_or_default()
    }

    /// The v1-v3 error-stream payload: nothing on success, else the message.
    pub fn v1_text(&self) -> Vec<u8> {
        self.message().map(String::into_bytes).unwrap_or_default()
    }
}

#[derive(Serialize, Default)]
struct Metadata {}

#[derive(Serialize, Default)]
struct Status {
    metadata: Metadata,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Details>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
}

#[derive(Serialize)]
struct Details {
    causes: Vec<Cause>,
}

#[derive(Serialize)]
struct Cause {
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    message: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn check(outcome: Outcome, v4: &str, v1: &str) {
        assert_eq!(String::from_utf8(outcome.v4_json()).unwrap(), v4);
        assert_eq!(String::from_utf8(outcome.v1_text()).unwrap(), v1);
    }

    #[test]
    fn success() {
        check(
            Outcome::Success,
            r#"{"metadata":{},"status":"Success"}"#,
            "",
        );
    }

    #[test]
    fn non_zero_exit_carries_the_code() {
        let cmd = vec!["sh".to_owned(), "-c".to_owned(), "exit 3".to_owned()];
        let msg = "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3";
        check(
            Outcome::of_exec(&cmd, Ok(3)),
            &format!(
                r#"{{"metadata":{{}},"status":"Failure","message":"{msg}","reason":"NonZeroExitCode","details":{{"causes":[{{"reason":"ExitCode","message":"3"}}]}}}}"#
            ),
            msg,
        );
    }

    #[test]
    fn runtime_failure_is_an_internal_error() {
        let err = StreamRuntimeError::NotRunning("c1".into());
        let outcome = Outcome::of_exec(&[], Err(&err));
        check(
            outcome,
            r#"{"metadata":{},"status":"Failure","message":"Internal error occurred: error executing command in container: container c1 is not running","reason":"InternalError","details":{"causes":[{"message":"error executing command in container: container c1 is not running"}]},"code":500}"#,
            "Internal error occurred: error executing command in container: container c1 is not running",
        );
        assert_eq!(Outcome::of_attach(Ok(())), Outcome::Success);
    }
}
