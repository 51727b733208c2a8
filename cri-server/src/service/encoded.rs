//! ListContainers and ListPodSandbox answered with bytes encoded
//! beforehand ([`crate::list_cache`]): a route in front of the generated
//! `RuntimeService` server takes these two methods through tonic's own
//! unary handling (framing, limits, status) and passes every other call
//! on unchanged.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes};
use cri_api::v1::{ListContainersRequest, ListPodSandboxRequest};
use prost::encoding::{DecodeContext, WireType};
use prost::DecodeError;
use tonic::body::Body;
use tonic::server::{NamedService, UnaryService};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

use super::ServerState;
use crate::{container, sandbox};

/// The paths of the methods this route answers.
const LIST_CONTAINERS: &str = "/runtime.v1.RuntimeService/ListContainers";
const LIST_POD_SANDBOX: &str = "/runtime.v1.RuntimeService/ListPodSandbox";

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A message already encoded: its bytes go on the wire as they are. A
/// protobuf message is the concatenation of its fields, so any encoded
/// message is a valid body. Only ever encoded: decoding one skips every
/// field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Encoded(pub Bytes);

impl prost::Message for Encoded {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.0);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// `inner` (the generated `RuntimeService` server) with ListContainers
/// and ListPodSandbox answered from [`container::list_containers_encoded`]
/// and [`sandbox::list_pod_sandbox_encoded`].
#[derive(Debug, Clone)]
pub struct EncodedLists<S> {
    inner: S,
    state: Arc<ServerState>,
}

impl<S> EncodedLists<S> {
    pub fn new(inner: S, state: Arc<ServerState>) -> Self {
        Self { inner, state }
    }
}

impl<S: NamedService> NamedService for EncodedLists<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower::Service<http::Request<Body>> for EncodedLists<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let state = Arc::clone(&self.state);
        match request.uri().path() {
            LIST_CONTAINERS => unary(
                request,
                Method(state, |s, r| Box::pin(list_containers(s, r))),
            ),
            LIST_POD_SANDBOX => unary(
                request,
                Method(state, |s, r| Box::pin(list_pod_sandbox(s, r))),
            ),
            _ => Box::pin(self.inner.call(request)),
        }
    }
}

/// `method` through tonic's unary handling, its request decoded with
/// prost and its [`Encoded`] answer written as it is.
fn unary<Req>(
    request: http::Request<Body>,
    method: Method<Req>,
) -> BoxFuture<Result<http::Response<Body>, Infallible>>
where
    Req: prost::Message + Default + Send + 'static,
{
    Box::pin(async move {
        let mut grpc = tonic::server::Grpc::new(ProstCodec::<Encoded, Req>::default());
        Ok(grpc.unary(method, request).await)
    })
}

type Answer<Req> =
    fn(Arc<ServerState>, Request<Req>) -> BoxFuture<Result<Response<Encoded>, Status>>;

/// A method of this route: the state and its handler.
struct Method<Req>(Arc<ServerState>, Answer<Req>);

impl<Req: Send + 'static> UnaryService<Req> for Method<Req> {
    type Response = Encoded;
    type Future = BoxFuture<Result<Response<Encoded>, Status>>;

    fn call(&mut self, request: Request<Req>) -> Self::Future {
        (self.1)(Arc::clone(&self.0), request)
    }
}

#[tracing::instrument(skip_all, fields(rpc = "ListContainers"))]
async fn list_containers(
    state: Arc<ServerState>,
    request: Request<ListContainersRequest>,
) -> Result<Response<Encoded>, Status> {
    let bytes = container::list_containers_encoded(&state.containers, request.get_ref());
    Ok(Response::new(Encoded(bytes)))
}

#[tracing::instrument(skip_all, fields(rpc = "ListPodSandbox"))]
async fn list_pod_sandbox(
    state: Arc<ServerState>,
    request: Request<ListPodSandboxRequest>,
) -> Result<Response<Encoded>, Status> {
    let filter = request.into_inner().filter;
    let bytes = sandbox::list_pod_sandbox_encoded(&state.sandboxes, filter);
    Ok(Response::new(Encoded(bytes)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use cri_api::v1::runtime_service_client::RuntimeServiceClient;
    use cri_api::v1::runtime_service_server::RuntimeServiceServer;
    use cri_api::v1::{
        ContainerFilter, ListContainersRequest, ListPodSandboxRequest, PodSandboxFilter,
        VersionRequest,
    };
    use tonic::transport::Server;

    use super::EncodedLists;
    use crate::container::testutil::{add_container, add_sandbox, running_status, TestEnv};
    use crate::service::CriRuntimeService;
    use crate::test_channel;

    /// A generated client over a real HTTP/2 connection: ListContainers
    /// and ListPodSandbox come back as the CRI messages, filtered or not,
    /// and every other method still reaches the generated server.
    #[tokio::test]
    async fn lists_go_through_the_route_and_the_rest_passes() {
        let env = TestEnv::new();
        add_sandbox(&env, "sandbox-a", true);
        add_sandbox(&env, "sandbox-b", false);
        add_container(&env, "c1", "sandbox-a", running_status());
        add_container(&env, "c2", "sandbox-a", running_status());
        let state = env.server.clone();
        let (client_io, server_io) = test_channel::pipe();
        let server = tokio::spawn(
            Server::builder()
                .add_service(EncodedLists::new(
                    RuntimeServiceServer::new(CriRuntimeService::new(state.clone())),
                    state,
                ))
                .serve_with_incoming(tokio_stream::once(Ok::<_, std::io::Error>(server_io))),
        );
        let mut client = RuntimeServiceClient::new(test_channel::connect(client_io).await);

        let all = client
            .list_containers(ListContainersRequest::default())
            .await
            .unwrap()
            .into_inner();
        let ids: Vec<&str> = all.containers.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["c1", "c2"]);
        assert_eq!(all.containers[0].pod_sandbox_id, "sandbox-a");
        let one = client
            .list_containers(ListContainersRequest {
                filter: Some(ContainerFilter {
                    id: "c2".into(),
                    ..ContainerFilter::default()
                }),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(one.containers.len(), 1);
        assert_eq!(one.containers[0].id, "c2");

        let pods = client
            .list_pod_sandbox(ListPodSandboxRequest::default())
            .await
            .unwrap()
            .into_inner();
        let ids: Vec<&str> = pods.items.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["sandbox-a", "sandbox-b"]);
        let pod = client
            .list_pod_sandbox(ListPodSandboxRequest {
                filter: Some(PodSandboxFilter {
                    id: "sandbox-b".into(),
                    ..PodSandboxFilter::default()
                }),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(pod.items.len(), 1);
        assert_eq!(pod.items[0].id, "sandbox-b");

        let version = client
            .version(VersionRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(version.runtime_api_version, "v1");
        server.abort();
    }
}
