//! The read RPCs answer from memory. The containerd mocks and the sandbox
//! controller below expect nothing, so any call to either panics: every
//! Status and List RPC here must succeed without one.

#![allow(clippy::unwrap_used)]

use cri_api::containerd::MockServices;
use cri_api::v1::image_service_server::ImageService;
use cri_api::v1::runtime_service_server::RuntimeService;
use cri_api::v1::*;
use cri_sandbox::controller::MockSandboxController;
use tonic::Request;

use super::{CriImageService, CriRuntimeService};
use crate::container::testutil::{
    add_container, add_sandbox, busybox, running_status, Mocks, TestEnv, BUSYBOX, SANDBOX,
};

async fn env_without_expectations() -> TestEnv {
    let mut services = MockServices::default();
    // The one image load of start-up (recovery's); nothing after it.
    services
        .images
        .expect_list()
        .times(1)
        .returning(|_| Ok(Vec::new()));
    let mocks = Mocks {
        services,
        controller: MockSandboxController::new(),
        ..Mocks::default()
    };
    let env = TestEnv::with(mocks, "");
    env.server.images.load().await.unwrap();
    env.server.images.store().upsert(busybox());
    add_sandbox(&env, SANDBOX, true);
    add_container(&env, "c1", SANDBOX, running_status());
    env
}

#[tokio::test]
async fn status_and_list_rpcs_make_no_containerd_calls() {
    let env = env_without_expectations().await;
    let runtime = CriRuntimeService::new(env.server.clone());
    let images = CriImageService::new(env.server.clone());

    let status = runtime
        .container_status(Request::new(ContainerStatusRequest {
            container_id: "c1".into(),
            verbose: false,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status.unwrap().id, "c1");
    let listed = runtime
        .list_containers(Request::new(ListContainersRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.containers.len(), 1);
    let pod = runtime
        .pod_sandbox_status(Request::new(PodSandboxStatusRequest {
            pod_sandbox_id: SANDBOX.into(),
            verbose: false,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pod.status.unwrap().id, SANDBOX);
    let pods = runtime
        .list_pod_sandbox(Request::new(ListPodSandboxRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pods.items.len(), 1);

    let image = images
        .image_status(Request::new(ImageStatusRequest {
            image: Some(ImageSpec {
                image: BUSYBOX.into(),
                ..ImageSpec::default()
            }),
            verbose: false,
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(image.image.is_some());
    let listed = images
        .list_images(Request::new(ListImagesRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.images.len(), 1);
}
