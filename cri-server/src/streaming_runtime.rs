//! The streaming server's view of the containers: [`CriStreamRuntime`]
//! implements `StreamRuntime` (exec, attach, port forward) over the
//! container and sandbox services, and [`start_streaming`] binds the server from the
//! `stream_server_*` config keys. The CRI `Exec`/`Attach`/`PortForward`
//! handlers check the target and hand out URLs through [`streaming_server`].

use std::sync::Arc;

use async_trait::async_trait;
use cri_store::sandbox::SandboxState;

use crate::container::{
    attach_container, exec_in_container, AttachOptions, ContainerError, ContainerService, ExecEnd,
    ExecOptions,
};
use crate::sandbox::{SandboxError, SandboxService};
use crate::service::ServerState;
use cri_streaming::{
    ExitCode, PortStream, ResizeReceiver, StreamIo, StreamRuntime, StreamRuntimeError,
    StreamingConfig, StreamingError, StreamingServer, TlsSource,
};

/// Why an Exec, Attach or PortForward RPC got no URL.
#[derive(Debug, thiserror::Error)]
pub enum StreamRequestError {
    /// The streaming server refused the request.
    #[error(transparent)]
    Refused(#[from] StreamingError),
    /// The streaming server is not running.
    #[error("the streaming server is not running")]
    NotStarted,
    /// The target container is not there or not running.
    #[error(transparent)]
    Container(Box<ContainerError>),
    /// The target pod sandbox is not there.
    #[error(transparent)]
    Sandbox(Box<SandboxError>),
    /// The pod sandbox is not ready (PortForward).
    #[error("sandbox {id} is not ready")]
    SandboxNotReady { id: String },
}

impl From<ContainerError> for StreamRequestError {
    fn from(e: ContainerError) -> Self {
        Self::Container(Box::new(e))
    }
}

impl From<SandboxError> for StreamRequestError {
    fn from(e: SandboxError) -> Self {
        Self::Sandbox(Box::new(e))
    }
}

/// Runs exec, attach and port forwarding against the container and sandbox
/// services. The services do not hold the streaming server, so holding
/// them here makes no cycle.
#[derive(Debug, Clone)]
pub struct CriStreamRuntime {
    containers: Arc<ContainerService>,
    sandboxes: Arc<SandboxService>,
}

impl CriStreamRuntime {
    /// A runtime over the services of `state`.
    pub fn new(state: &ServerState) -> Self {
        Self {
            containers: Arc::clone(&state.containers),
            sandboxes: Arc::clone(&state.sandboxes),
        }
    }
}

/// A server error as the streaming protocols report it.
fn runtime_error(operation: &'static str, id: &str, e: ContainerError) -> StreamRuntimeError {
    match e {
        ContainerError::ContainerStore(cri_store::StoreError::NotFound { .. }) => {
            StreamRuntimeError::NotFound {
                kind: "container",
                id: id.to_owned(),
            }
        }
        ContainerError::ContainerState { .. } => StreamRuntimeError::NotRunning(id.to_owned()),
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
        let opts = ExecOptions {
            cmd: cmd.to_vec(),
            tty,
            stdin: io.stdin,
            stdout: io.stdout,
            stderr: io.stderr,
            resize,
            timeout: None,
        };
        match exec_in_container(Arc::clone(&self.containers), container_id, opts).await {
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
        let opts = AttachOptions {
            stdin: io.stdin,
            stdout: io.stdout,
            stderr: io.stderr,
            tty,
            resize,
        };
        attach_container(&self.containers, container_id, opts)
            .await
            .map_err(|e| runtime_error("attach", container_id, e))
    }

    async fn port_forward(
        &self,
        pod_sandbox_id: &str,
        port: u16,
        stream: PortStream,
    ) -> Result<(), StreamRuntimeError> {
        crate::sandbox::port_forward(&self.sandboxes, pod_sandbox_id, port, stream)
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
pub fn streaming_server(state: &ServerState) -> Result<&StreamingServer, StreamRequestError> {
    state.streaming.get().ok_or(StreamRequestError::NotStarted)
}

/// The sandbox `id` must be ready to forward ports into (containerd:
/// "sandbox container is not running").
pub fn ready_sandbox(state: &ServerState, id: &str) -> Result<(), StreamRequestError> {
    let sandbox = crate::sandbox::lookup(&state.sandboxes, id)?;
    if sandbox.status.state != SandboxState::Ready {
        return Err(StreamRequestError::SandboxNotReady {
            id: sandbox.metadata.id.to_string(),
        });
    }
    Ok(())
}
