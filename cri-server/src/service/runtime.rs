//! `RuntimeService`: tonic glue for the CRI runtime RPCs.

use std::sync::Arc;

use cri_api::v1::runtime_service_server::RuntimeService;
use cri_api::v1::*;
use tonic::{Request, Response, Status};

use super::{not_implemented, ServerState};
use crate::error::ServerError;
use crate::{container, runtime_status, sandbox};

/// The CRI `RuntimeService` served on the socket.
#[derive(Debug, Clone)]
pub struct CriRuntimeService {
    state: Arc<ServerState>,
}

impl CriRuntimeService {
    pub fn new(state: Arc<ServerState>) -> Self {
        Self { state }
    }
}

type GetContainerEventsStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<ContainerEventResponse, Status>> + Send>>;

#[tonic::async_trait]
impl RuntimeService for CriRuntimeService {
    #[tracing::instrument(skip_all, fields(rpc = "Version"))]
    async fn version(
        &self,
        _request: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(runtime_status::version()))
    }

    #[tracing::instrument(skip_all, fields(rpc = "Status"))]
    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let verbose = request.into_inner().verbose;
        Ok(Response::new(
            runtime_status::status(
                &self.state.config,
                self.state.containerd.version.as_ref(),
                verbose,
            )
            .await,
        ))
    }

    type GetContainerEventsStream = GetContainerEventsStream;

    #[tracing::instrument(skip_all, fields(rpc = "RunPodSandbox", pod_sandbox_id = tracing::field::Empty))]
    async fn run_pod_sandbox(
        &self,
        request: Request<RunPodSandboxRequest>,
    ) -> Result<Response<RunPodSandboxResponse>, Status> {
        let id = sandbox::run_pod_sandbox(Arc::clone(&self.state), request.into_inner())
            .await
            .map_err(ServerError::from)?;
        Ok(Response::new(RunPodSandboxResponse { pod_sandbox_id: id }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "StopPodSandbox", pod_sandbox_id = tracing::field::Empty))]
    async fn stop_pod_sandbox(
        &self,
        request: Request<StopPodSandboxRequest>,
    ) -> Result<Response<StopPodSandboxResponse>, Status> {
        let id = request.into_inner().pod_sandbox_id;
        sandbox::stop_pod_sandbox(&self.state, &id)
            .await
            .map_err(ServerError::from)?;
        Ok(Response::new(StopPodSandboxResponse {}))
    }

    #[tracing::instrument(skip_all, fields(rpc = "RemovePodSandbox", pod_sandbox_id = tracing::field::Empty))]
    async fn remove_pod_sandbox(
        &self,
        request: Request<RemovePodSandboxRequest>,
    ) -> Result<Response<RemovePodSandboxResponse>, Status> {
        let id = request.into_inner().pod_sandbox_id;
        sandbox::remove_pod_sandbox(&self.state, &id)
            .await
            .map_err(ServerError::from)?;
        Ok(Response::new(RemovePodSandboxResponse {}))
    }

    #[tracing::instrument(skip_all, fields(rpc = "PodSandboxStatus", pod_sandbox_id = tracing::field::Empty))]
    async fn pod_sandbox_status(
        &self,
        request: Request<PodSandboxStatusRequest>,
    ) -> Result<Response<PodSandboxStatusResponse>, Status> {
        let request = request.into_inner();
        let status =
            sandbox::pod_sandbox_status(&self.state, &request.pod_sandbox_id, request.verbose)
                .await
                .map_err(ServerError::from)?;
        Ok(Response::new(status))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListPodSandbox"))]
    async fn list_pod_sandbox(
        &self,
        request: Request<ListPodSandboxRequest>,
    ) -> Result<Response<ListPodSandboxResponse>, Status> {
        let items = sandbox::list_pod_sandbox(&self.state, request.into_inner().filter);
        Ok(Response::new(ListPodSandboxResponse { items }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "UpdateRuntimeConfig"))]
    async fn update_runtime_config(
        &self,
        request: Request<UpdateRuntimeConfigRequest>,
    ) -> Result<Response<UpdateRuntimeConfigResponse>, Status> {
        sandbox::update_runtime_config(&self.state, request.into_inner())
            .await
            .map_err(ServerError::from)?;
        Ok(Response::new(UpdateRuntimeConfigResponse {}))
    }

    #[tracing::instrument(skip_all, fields(rpc = "CreateContainer", pod_sandbox_id = %request.get_ref().pod_sandbox_id, container_id = tracing::field::Empty))]
    async fn create_container(
        &self,
        request: Request<CreateContainerRequest>,
    ) -> Result<Response<CreateContainerResponse>, Status> {
        let container_id =
            container::create_container(Arc::clone(&self.state), request.into_inner()).await?;
        Ok(Response::new(CreateContainerResponse { container_id }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "StartContainer", container_id = tracing::field::Empty))]
    async fn start_container(
        &self,
        request: Request<StartContainerRequest>,
    ) -> Result<Response<StartContainerResponse>, Status> {
        let id = request.into_inner().container_id;
        container::start_container(Arc::clone(&self.state), id).await?;
        Ok(Response::new(StartContainerResponse {}))
    }

    #[tracing::instrument(skip_all, fields(rpc = "StopContainer", container_id = tracing::field::Empty))]
    async fn stop_container(
        &self,
        request: Request<StopContainerRequest>,
    ) -> Result<Response<StopContainerResponse>, Status> {
        let request = request.into_inner();
        let timeout = std::time::Duration::from_secs(request.timeout.max(0).unsigned_abs());
        container::stop_container(&self.state, &request.container_id, timeout).await?;
        Ok(Response::new(StopContainerResponse {}))
    }

    #[tracing::instrument(skip_all, fields(rpc = "RemoveContainer", container_id = tracing::field::Empty))]
    async fn remove_container(
        &self,
        request: Request<RemoveContainerRequest>,
    ) -> Result<Response<RemoveContainerResponse>, Status> {
        let id = request.into_inner().container_id;
        container::remove_container(&self.state, &id).await?;
        Ok(Response::new(RemoveContainerResponse {}))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListContainers"))]
    async fn list_containers(
        &self,
        request: Request<ListContainersRequest>,
    ) -> Result<Response<ListContainersResponse>, Status> {
        let containers = container::list_containers(&self.state, request.get_ref());
        Ok(Response::new(ListContainersResponse { containers }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ContainerStatus", container_id = %request.get_ref().container_id))]
    async fn container_status(
        &self,
        request: Request<ContainerStatusRequest>,
    ) -> Result<Response<ContainerStatusResponse>, Status> {
        let response = container::container_status(&self.state, request.into_inner()).await?;
        Ok(Response::new(response))
    }

    #[tracing::instrument(skip_all, fields(rpc = "UpdateContainerResources", container_id = tracing::field::Empty))]
    async fn update_container_resources(
        &self,
        request: Request<UpdateContainerResourcesRequest>,
    ) -> Result<Response<UpdateContainerResourcesResponse>, Status> {
        container::update_container_resources(&self.state, request.into_inner()).await?;
        Ok(Response::new(UpdateContainerResourcesResponse {}))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ReopenContainerLog", container_id = tracing::field::Empty))]
    async fn reopen_container_log(
        &self,
        request: Request<ReopenContainerLogRequest>,
    ) -> Result<Response<ReopenContainerLogResponse>, Status> {
        let id = request.into_inner().container_id;
        container::reopen_container_log(&self.state, &id)?;
        Ok(Response::new(ReopenContainerLogResponse {}))
    }

    #[tracing::instrument(skip_all, fields(rpc = "GetContainerEvents"))]
    async fn get_container_events(
        &self,
        _request: Request<GetEventsRequest>,
    ) -> Result<Response<Self::GetContainerEventsStream>, Status> {
        use futures::StreamExt;
        let events = self.state.container_events.subscribe().map(Ok);
        Ok(Response::new(Box::pin(events)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "RuntimeConfig"))]
    async fn runtime_config(
        &self,
        _request: Request<RuntimeConfigRequest>,
    ) -> Result<Response<RuntimeConfigResponse>, Status> {
        Ok(Response::new(runtime_status::runtime_config(
            &self.state.config.cri,
        )))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListMetricDescriptors"))]
    async fn list_metric_descriptors(
        &self,
        _request: Request<ListMetricDescriptorsRequest>,
    ) -> Result<Response<ListMetricDescriptorsResponse>, Status> {
        Ok(Response::new(ListMetricDescriptorsResponse {
            descriptors: crate::stats::metric_descriptors(),
        }))
    }

    not_implemented! {
        exec_sync(ExecSyncRequest) -> ExecSyncResponse = "ExecSync";
        exec(ExecRequest) -> ExecResponse = "Exec";
        attach(AttachRequest) -> AttachResponse = "Attach";
        port_forward(PortForwardRequest) -> PortForwardResponse = "PortForward";
        container_stats(ContainerStatsRequest) -> ContainerStatsResponse = "ContainerStats";
        list_container_stats(ListContainerStatsRequest) -> ListContainerStatsResponse = "ListContainerStats";
        pod_sandbox_stats(PodSandboxStatsRequest) -> PodSandboxStatsResponse = "PodSandboxStats";
        list_pod_sandbox_stats(ListPodSandboxStatsRequest) -> ListPodSandboxStatsResponse = "ListPodSandboxStats";
        checkpoint_container(CheckpointContainerRequest) -> CheckpointContainerResponse = "CheckpointContainer";
        list_pod_sandbox_metrics(ListPodSandboxMetricsRequest) -> ListPodSandboxMetricsResponse = "ListPodSandboxMetrics";
    }
}
