//! `ImageService`: tonic glue for the CRI image RPCs; the work is in `cri_image`.

use std::sync::Arc;

use crate::status::image_status;
use cri_api::v1::image_service_server::ImageService;
use cri_api::v1::*;
use tonic::{Request, Response, Status};

use super::ServerState;

/// The CRI `ImageService` served on the socket.
#[derive(Debug, Clone)]
pub struct CriImageService {
    state: Arc<ServerState>,
}

impl CriImageService {
    pub fn new(state: Arc<ServerState>) -> Self {
        Self { state }
    }
}

/// The image named by an optional `ImageSpec`.
fn image_name(spec: Option<&ImageSpec>) -> &str {
    spec.map(|s| s.image.as_str()).unwrap_or_default()
}

#[tonic::async_trait]
impl ImageService for CriImageService {
    #[tracing::instrument(skip_all, fields(rpc = "ListImages"))]
    async fn list_images(
        &self,
        request: Request<ListImagesRequest>,
    ) -> Result<Response<ListImagesResponse>, Status> {
        let request = request.into_inner();
        let images = self
            .state
            .images
            .list(request.filter.as_ref())
            .await
            .map_err(image_status)?;
        Ok(Response::new(ListImagesResponse { images }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ImageStatus", image = %image_name(request.get_ref().image.as_ref())))]
    async fn image_status(
        &self,
        request: Request<ImageStatusRequest>,
    ) -> Result<Response<ImageStatusResponse>, Status> {
        let request = request.into_inner();
        let response = self
            .state
            .images
            .status(image_name(request.image.as_ref()), request.verbose)
            .await
            .map_err(image_status)?;
        Ok(Response::new(response))
    }

    #[tracing::instrument(skip_all, fields(rpc = "PullImage", image = %image_name(request.get_ref().image.as_ref())))]
    async fn pull_image(
        &self,
        request: Request<PullImageRequest>,
    ) -> Result<Response<PullImageResponse>, Status> {
        let request = request.into_inner();
        let image = self
            .state
            .images
            .pull(image_name(request.image.as_ref()), request.auth.as_ref())
            .await
            .map_err(image_status)?;
        Ok(Response::new(PullImageResponse {
            image_ref: image.id,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "RemoveImage", image = %image_name(request.get_ref().image.as_ref())))]
    async fn remove_image(
        &self,
        request: Request<RemoveImageRequest>,
    ) -> Result<Response<RemoveImageResponse>, Status> {
        let request = request.into_inner();
        self.state
            .images
            .remove(image_name(request.image.as_ref()))
            .await
            .map_err(image_status)?;
        Ok(Response::new(RemoveImageResponse {}))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ImageFsInfo"))]
    async fn image_fs_info(
        &self,
        _request: Request<ImageFsInfoRequest>,
    ) -> Result<Response<ImageFsInfoResponse>, Status> {
        let response = self.state.images.fs_info().await.map_err(image_status)?;
        Ok(Response::new(response))
    }
}
