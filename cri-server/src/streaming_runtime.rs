//! The streaming server's view of the containers: [`CriStreamRuntime`]
//! implements `StreamRuntime` (exec, attach, port forward) over the
//! server state, and [`start_streaming`] binds the server from the
//! `stream_server_*` config keys. The CRI `Exec`/`Attach`/`PortForward`
//! handlers check the target and hand out URLs through [`streaming_server`].

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use cri_store::sandbox::SandboxState;

use crate::container::{attach_container, exec_in_container, AttachOptions, ExecEnd, ExecOptions};
use crate::error::{Result, ServerError};
use crate::service::ServerState;
use cri_streaming::{
    ExitCode, PortStream, ResizeReceiver, StreamIo, StreamRuntime, StreamRuntimeError,
    StreamingConfig, StreamingError, StreamingServer, TlsSource,
};

/// Runs exec, attach and port forwarding against the live server state.
/// Holds the state weakly: the state owns the streaming server.
#[derive(Debug, Clone)]
pub struct CriStreamRuntime {
    state: Weak<ServerState>,
}

impl CriStreamRuntime {
    /// A runtime for `state`.
    pub fn new(state: &Arc<ServerState>) -> Self {
        Self {
            state: Arc::downgrade(state),
        }
    }

    fn state(
        &self,
        operation: &'static str,
        id: &str,
    ) -> Result<Arc<ServerState>, StreamRuntimeError> {
        self.state
            .upgrade()
            .ok_or_else(|| StreamRuntimeError::Failed {
                operation,
                id: id.to_owned(),
                source: "the server is shutting down".into(),
            })
    }
}

/// A server error as the streaming protocols report it.
fn runtime_error(operation: &'static str, id: &str, e: ServerError) -> StreamRuntimeError {
    match e {
        ServerError::ContainerStore(cri_store::StoreError::NotFound { .. }) => {
            StreamRuntimeError::NotFound {
                kind: "container",
                id: id.to_owned(),
            }
        }
        ServerError::ContainerState { .. } => StreamRuntimeError::NotRunning(id.to_owned()),
        other => StreamRuntimeError::Failed {
            operation,
            id: id.to_owned(),
            source: Box::new(other),
        },
    }
}

#[async_trait]
impl StreamRuntime for CriStreamRuntime {
    async fn exec(
        &self,
        container_id: &str,
        cmd: &[String],
        io: StreamIo,
        tty: bool,
        resize: Option<ResizeReceiver>,
    ) -> Result<ExitCode, StreamRuntimeError> {
        let state = self.state("exec", container_id)?;
        let opts = ExecOptions {
            cmd: cmd.to_vec(),
            tty,
            stdin: io.stdin,
            stdout: io.stdout,
            stderr: io.stderr,
            resize,
            timeout: None,
        };
        match exec_in_container(state, container_id, opts).await {
            Ok(ExecEnd::Exited(code)) => Ok(ExitCode(i32::try_from(code).unwrap_or(i32::MAX))),
            Ok(ExecEnd::TimedOut) => Err(StreamRuntimeError::Failed {
                operation: "exec",
                id: container_id.to_owned(),
                source: "timed out".into(),
            }),
            Err(e) => Err(runtime_error("exec", container_id, e)),
        }
    }

    async fn attach(
        &self,
        container_id: &str,
        io: StreamIo,
        tty: bool,
        resize: Option<ResizeReceiver>,
    ) -> Result<(), StreamRuntimeError> {
        let state = self.state("attach", container_id)?;
        let opts = AttachOptions {
            stdin: io.stdin,
            stdout: io.stdout,
            stderr: io.stderr,
            tty,
            resize,
        };
        attach_container(&state, container_id, opts)
            .await
            .map_err(|e| runtime_error("attach", container_id, e))
    }

    async fn port_forward(
        &self,
        pod_sandbox_id: &str,
        port: u16,
        stream: PortStream,
    ) -> Result<(), StreamRuntimeError> {
        let state = self.state("port forward", pod_sandbox_id)?;
        crate::sandbox::port_forward(&state, pod_sandbox_id, port, stream)
            .await
            .map_err(|e| StreamRuntimeError::Failed {
                operation: "port forward",
                id: pod_sandbox_id.to_owned(),
                source: Box::new(e),
            })
    }
}

/// Binds the streaming server on `stream_server_address:stream_server_port`
/// (over TLS with `enable_tls_streaming`) and records it in `state`.
pub async fn start_streaming(state: &Arc<ServerState>) -> Result<(), StreamingError> {
    let cri = &state.config.cri;
    let idle = cri.stream_idle_timeout;
    let config = StreamingConfig {
        address: cri.stream_server_address.clone(),
        port: cri.stream_server_port,
        idle_timeout: (!idle.is_zero()).then_some(idle),
        tls: TlsSource::from_config(
            cri.enable_tls_streaming,
            cri.x509_key_pair_streaming.tls_cert_file.as_deref(),
            cri.x509_key_pair_streaming.tls_key_file.as_deref(),
        )?,
        ..StreamingConfig::default()
    };
    let server = StreamingServer::bind(config, Arc::new(CriStreamRuntime::new(state))).await?;
    if state.streaming.set(server).is_err() {
        tracing::warn!("streaming server already started");
    }
    Ok(())
}

/// The running streaming server.
pub fn streaming_server(state: &ServerState) -> Result<&StreamingServer> {
    state
        .streaming
        .get()
        .ok_or(ServerError::StreamingNotStarted)
}

/// The sandbox `id` must be ready to forward ports into (containerd:
/// "sandbox container is not running").
pub fn ready_sandbox(state: &ServerState, id: &str) -> Result<()> {
    let sandbox = crate::sandbox::lookup(state, id).map_err(ServerError::from)?;
    if sandbox.status.state != SandboxState::Ready {
        return Err(ServerError::SandboxNotReady {
            id: sandbox.metadata.id.to_string(),
        });
    }
    Ok(())
}
