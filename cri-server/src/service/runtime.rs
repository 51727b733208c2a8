//! `RuntimeService`: tonic glue for the CRI runtime RPCs.

use std::sync::Arc;

use cri_api::ids::SandboxId;
use cri_api::v1::runtime_service_server::RuntimeService;
use cri_api::v1::*;
use tonic::{Request, Response, Status};

use super::stats as stats_requests;
use super::{not_implemented, ServerState};
use crate::streaming_runtime::StreamRequestError;
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
        let request = request.into_inner();
        let handler = request.runtime_handler.clone();
        let id = sandbox::run_pod_sandbox(Arc::clone(&self.state.sandboxes), request).await?;
        // The pod's app containers are created with its pause container's
        // runtime: known now, never read back from containerd.
        if let Some(runtime) = self.state.config.cri.runtime(&handler) {
            self.state
                .containers
                .sandbox_runtimes
                .remember(SandboxId::from(id.as_str()), sandbox::runtime_info(runtime));
        }
        Ok(Response::new(RunPodSandboxResponse { pod_sandbox_id: id }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "StopPodSandbox", pod_sandbox_id = tracing::field::Empty))]
    async fn stop_pod_sandbox(
        &self,
        request: Request<StopPodSandboxRequest>,
    ) -> Result<Response<StopPodSandboxResponse>, Status> {
        let id = request.into_inner().pod_sandbox_id;
        sandbox::stop_pod_sandbox(&self.state.sandboxes, &*self.state.containers, &id).await?;
        Ok(Response::new(StopPodSandboxResponse {}))
    }

    #[tracing::instrument(skip_all, fields(rpc = "RemovePodSandbox", pod_sandbox_id = tracing::field::Empty))]
    async fn remove_pod_sandbox(
        &self,
        request: Request<RemovePodSandboxRequest>,
    ) -> Result<Response<RemovePodSandboxResponse>, Status> {
        let id = request.into_inner().pod_sandbox_id;
        sandbox::remove_pod_sandbox(&self.state.sandboxes, &*self.state.containers, &id).await?;
        Ok(Response::new(RemovePodSandboxResponse {}))
    }

    #[tracing::instrument(skip_all, fields(rpc = "PodSandboxStatus", pod_sandbox_id = tracing::field::Empty))]
    async fn pod_sandbox_status(
        &self,
        request: Request<PodSandboxStatusRequest>,
    ) -> Result<Response<PodSandboxStatusResponse>, Status> {
        let request = request.into_inner();
        let status = sandbox::pod_sandbox_status(
            &self.state.sandboxes,
            &request.pod_sandbox_id,
            request.verbose,
        )
        .await?;
        Ok(Response::new(status))
    }

    // On the socket this method is answered by `EncodedLists` (the kept
    // encoded answer); this path serves in-process callers and tests, over
    // the same list function.
    #[tracing::instrument(skip_all, fields(rpc = "ListPodSandbox"))]
    async fn list_pod_sandbox(
        &self,
        request: Request<ListPodSandboxRequest>,
    ) -> Result<Response<ListPodSandboxResponse>, Status> {
        let items = sandbox::list_pod_sandbox(&self.state.sandboxes, request.into_inner().filter);
        Ok(Response::new(ListPodSandboxResponse { items }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "UpdateRuntimeConfig"))]
    async fn update_runtime_config(
        &self,
        request: Request<UpdateRuntimeConfigRequest>,
    ) -> Result<Response<UpdateRuntimeConfigResponse>, Status> {
        sandbox::update_runtime_config(&self.state.sandboxes, request.into_inner()).await?;
        Ok(Response::new(UpdateRuntimeConfigResponse {}))
    }

    #[tracing::instrument(skip_all, fields(rpc = "CreateContainer", pod_sandbox_id = %request.get_ref().pod_sandbox_id, container_id = tracing::field::Empty))]
    async fn create_container(
        &self,
        request: Request<CreateContainerRequest>,
    ) -> Result<Response<CreateContainerResponse>, Status> {
        let container_id =
            container::create_container(Arc::clone(&self.state.containers), request.into_inner())
                .await?;
        Ok(Response::new(CreateContainerResponse { container_id }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "StartContainer", container_id = tracing::field::Empty))]
    async fn start_container(
        &self,
        request: Request<StartContainerRequest>,
    ) -> Result<Response<StartContainerResponse>, Status> {
        let id = request.into_inner().container_id;
        container::start_container(Arc::clone(&self.state.containers), id).await?;
        Ok(Response::new(StartContainerResponse {}))
    }

    #[tracing::instrument(skip_all, fields(rpc = "StopContainer", container_id = tracing::field::Empty))]
    async fn stop_container(
        &self,
        request: Request<StopContainerRequest>,
    ) -> Result<Response<StopContainerResponse>, Status> {
        let request = request.into_inner();
        let timeout = std::time::Duration::from_secs(request.timeout.max(0).unsigned_abs());
        container::stop_container(&self.state.containers, &request.container_id, timeout).await?;
        Ok(Response::new(StopContainerResponse {}))
    }

    #[tracing::instrument(skip_all, fields(rpc = "RemoveContainer", container_id = tracing::field::Empty))]
    async fn remove_container(
        &self,
        request: Request<RemoveContainerRequest>,
    ) -> Result<Response<RemoveContainerResponse>, Status> {
        let id = request.into_inner().container_id;
        container::remove_container(&self.state.containers, &id).await?;
        Ok(Response::new(RemoveContainerResponse {}))
    }

    // On the socket this method is answered by `EncodedLists` (the kept
    // encoded answer); this path serves in-process callers and tests, over
    // the same list function.
    #[tracing::instrument(skip_all, fields(rpc = "ListContainers"))]
    async fn list_containers(
        &self,
        request: Request<ListContainersRequest>,
    ) -> Result<Response<ListContainersResponse>, Status> {
        let containers = container::list_containers(&self.state.containers, request.get_ref());
        Ok(Response::new(ListContainersResponse { containers }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ContainerStatus", container_id = %request.get_ref().container_id))]
    async fn container_status(
        &self,
        request: Request<ContainerStatusRequest>,
    ) -> Result<Response<ContainerStatusResponse>, Status> {
        let response =
            container::container_status(&self.state.containers, request.into_inner()).await?;
        Ok(Response::new(response))
    }

    #[tracing::instrument(skip_all, fields(rpc = "UpdateContainerResources", container_id = tracing::field::Empty))]
    async fn update_container_resources(
        &self,
        request: Request<UpdateContainerResourcesRequest>,
    ) -> Result<Response<UpdateContainerResourcesResponse>, Status> {
        container::update_container_resources(&self.state.containers, request.into_inner()).await?;
        Ok(Response::new(UpdateContainerResourcesResponse {}))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ReopenContainerLog", container_id = tracing::field::Empty))]
    async fn reopen_container_log(
        &self,
        request: Request<ReopenContainerLogRequest>,
    ) -> Result<Response<ReopenContainerLogResponse>, Status> {
        let id = request.into_inner().container_id;
        container::reopen_container_log(&self.state.containers, &id)?;
        Ok(Response::new(ReopenContainerLogResponse {}))
    }

    #[tracing::instrument(skip_all, fields(rpc = "GetContainerEvents"))]
    async fn get_container_events(
        &self,
        _request: Request<GetEventsRequest>,
    ) -> Result<Response<Self::GetContainerEventsStream>, Status> {
        use futures::StreamExt;
        let events = self.state.containers.events.subscribe().map(Ok);
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
            descriptors: cri_stats::metric_descriptors(),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ContainerStats", container_id = %request.get_ref().container_id))]
    async fn container_stats(
        &self,
        request: Request<ContainerStatsRequest>,
    ) -> Result<Response<ContainerStatsResponse>, Status> {
        let id = request.into_inner().container_id;
        let stats = stats_requests::container_stats(&self.state, &id).await?;
        Ok(Response::new(ContainerStatsResponse { stats: Some(stats) }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListContainerStats"))]
    async fn list_container_stats(
        &self,
        request: Request<ListContainerStatsRequest>,
    ) -> Result<Response<ListContainerStatsResponse>, Status> {
        let filter = request.into_inner().filter;
        let stats = stats_requests::list_container_stats(&self.state, filter.as_ref()).await?;
        Ok(Response::new(ListContainerStatsResponse { stats }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "PodSandboxStats", pod_sandbox_id = %request.get_ref().pod_sandbox_id))]
    async fn pod_sandbox_stats(
        &self,
        request: Request<PodSandboxStatsRequest>,
    ) -> Result<Response<PodSandboxStatsResponse>, Status> {
        let id = request.into_inner().pod_sandbox_id;
        let stats = stats_requests::pod_sandbox_stats(&self.state, &id).await?;
        Ok(Response::new(PodSandboxStatsResponse {
            stats: Some(stats),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListPodSandboxStats"))]
    async fn list_pod_sandbox_stats(
        &self,
        request: Request<ListPodSandboxStatsRequest>,
    ) -> Result<Response<ListPodSandboxStatsResponse>, Status> {
        let filter = request.into_inner().filter;
        let stats = stats_requests::list_pod_sandbox_stats(&self.state, filter.as_ref()).await?;
        Ok(Response::new(ListPodSandboxStatsResponse { stats }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListPodSandboxMetrics"))]
    async fn list_pod_sandbox_metrics(
        &self,
        _request: Request<ListPodSandboxMetricsRequest>,
    ) -> Result<Response<ListPodSandboxMetricsResponse>, Status> {
        let pod_metrics = stats_requests::list_pod_sandbox_metrics(&self.state).await?;
        Ok(Response::new(ListPodSandboxMetricsResponse { pod_metrics }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ExecSync", container_id = %request.get_ref().container_id))]
    async fn exec_sync(
        &self,
        request: Request<ExecSyncRequest>,
    ) -> Result<Response<ExecSyncResponse>, Status> {
        let response =
            container::exec_sync(Arc::clone(&self.state.containers), request.into_inner()).await?;
        Ok(Response::new(response))
    }

    #[tracing::instrument(skip_all, fields(rpc = "Exec", container_id = %request.get_ref().container_id))]
    async fn exec(&self, request: Request<ExecRequest>) -> Result<Response<ExecResponse>, Status> {
        let request = request.into_inner();
        container::running_container(&self.state.containers, &request.container_id)?;
        let server = crate::streaming_runtime::streaming_server(&self.state)?;
        let response = server
            .get_exec(&request)
            .map_err(StreamRequestError::from)?;
        Ok(Response::new(response))
    }

    #[tracing::instrument(skip_all, fields(rpc = "Attach", container_id = %request.get_ref().container_id))]
    async fn attach(
        &self,
        request: Request<AttachRequest>,
    ) -> Result<Response<AttachResponse>, Status> {
        let request = request.into_inner();
        container::running_container(&self.state.containers, &request.container_id)?;
        let server = crate::streaming_runtime::streaming_server(&self.state)?;
        let response = server
            .get_attach(&request)
            .map_err(StreamRequestError::from)?;
        Ok(Response::new(response))
    }

    #[tracing::instrument(skip_all, fields(rpc = "PortForward", pod_sandbox_id = %request.get_ref().pod_sandbox_id))]
    async fn port_forward(
        &self,
        request: Request<PortForwardRequest>,
    ) -> Result<Response<PortForwardResponse>, Status> {
        let request = request.into_inner();
        crate::streaming_runtime::ready_sandbox(&self.state, &request.pod_sandbox_id)?;
        let server = crate::streaming_runtime::streaming_server(&self.state)?;
        let response = server
            .get_port_forward(&request)
            .map_err(StreamRequestError::from)?;
        Ok(Response::new(response))
    }

    not_implemented! {
        checkpoint_container(CheckpointContainerRequest) -> CheckpointContainerResponse = "CheckpointContainer";
    }
}
