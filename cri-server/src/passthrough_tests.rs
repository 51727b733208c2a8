#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;

use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use tower::ServiceExt;

use super::*;

#[test]
fn cri_paths_stay_and_everything_else_goes() {
    for (path, cri) in [
        ("/runtime.v1.RuntimeService/Version", true),
        ("/runtime.v1.ImageService/ListImages", true),
        ("/runtime.v1alpha2.RuntimeService/Version", true),
        ("/containerd.services.version.v1.Version/Version", false),
        ("/grpc.health.v1.Health/Check", false),
        (
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            false,
        ),
        ("/runtime.v1", false),
        ("/unknown.Service/Method", false),
    ] {
        assert_eq!(is_cri_path(path), cri, "{path}");
    }
}

/// A stand-in for containerd on a unix socket: answers every call with
/// the request's `containerd-namespace` header echoed, the request body
/// echoed as the response body, and trailers; `/fail` gets a
/// trailers-only NotFound.
async fn fake_containerd(dir: &Path) -> PathBuf {
    let path = dir.join("containerd.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|req: Request<hyper::body::Incoming>| async move {
                    if req.uri().path() == "/fail" {
                        let status = tonic::Status::not_found("no such thing");
                        return Ok::<_, Infallible>(status.into_http::<Body>());
                    }
                    let namespace = req.headers().get("containerd-namespace").cloned();
                    let authority = req.uri().authority().map(|a| a.to_string());
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    let trailers = {
                        let mut t = http::HeaderMap::new();
                        t.insert("grpc-status", http::HeaderValue::from_static("0"));
                        t
                    };
                    let body = Full::new(body).with_trailers(async move { Some(Ok(trailers)) });
                    let mut response = Response::builder()
                        .header("content-type", "application/grpc")
                        .header("x-seen-authority", authority.unwrap_or_default());
                    if let Some(ns) = namespace {
                        response = response.header("x-seen-namespace", ns);
                    }
                    Ok(response.body(Body::new(body)).unwrap())
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    path
}

fn request(path: &str, body: &'static [u8]) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri(format!("http://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("containerd-namespace", "k8s.io")
        .body(Body::new(Full::new(Bytes::from_static(body))))
        .unwrap()
}

#[tokio::test]
async fn forwards_metadata_body_and_trailers() {
    let dir = tempfile::tempdir().unwrap();
    let socket = fake_containerd(dir.path()).await;
    let gauge = Gauge::default();
    let forwarder = Forwarder::new(&socket, gauge.clone());
    let response = forwarder
        .forward(request(
            "/containerd.services.version.v1.Version/Version",
            b"ping",
        ))
        .await;
    assert_eq!(response.headers()["x-seen-namespace"], "k8s.io");
    assert_eq!(response.headers()["x-seen-authority"], CONTAINERD_AUTHORITY);
    assert_eq!(gauge.get(), 1, "open while the answer streams");
    let collected = response.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["grpc-status"], "0");
    assert_eq!(collected.to_bytes(), "ping");
    assert_eq!(gauge.get(), 0, "closed once the answer is consumed");
}

#[tokio::test]
async fn trailers_only_errors_arrive_as_sent() {
    let dir = tempfile::tempdir().unwrap();
    let socket = fake_containerd(dir.path()).await;
    let forwarder = Forwarder::new(&socket, Gauge::default());
    let response = forwarder.forward(request("/fail", b"")).await;
    let status = tonic::Status::from_header_map(response.headers()).unwrap();
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(status.message(), "no such thing");
}

#[tokio::test]
async fn unreachable_containerd_is_unavailable_naming_its_address() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("absent.sock");
    let gauge = Gauge::default();
    let forwarder = Forwarder::new(&socket, gauge.clone());
    let response = forwarder.forward(request("/x.Y/Z", b"")).await;
    let status = tonic::Status::from_header_map(response.headers()).unwrap();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(
        status.message().contains(&socket.display().to_string()),
        "{}",
        status.message()
    );
    assert_eq!(gauge.get(), 0);
    // containerd comes up: the next call goes through without a restart.
    let socket_dir = dir.path().join("later");
    std::fs::create_dir(&socket_dir).unwrap();
    let live = fake_containerd(&socket_dir).await;
    std::fs::rename(&live, &socket).unwrap();
    let response = forwarder.forward(request("/x.Y/Z", b"again")).await;
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "again");
}

#[tokio::test]
async fn the_layer_routes_by_path_and_can_be_off() {
    let dir = tempfile::tempdir().unwrap();
    let socket = fake_containerd(dir.path()).await;
    let inner = tower::service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new("ours".to_owned()))
    });
    let forwarder = Arc::new(Forwarder::new(&socket, Gauge::default()));
    let on = PassthroughLayer::new(Some(forwarder)).layer(inner);
    let off = PassthroughLayer::new(None).layer(inner);

    let cri = on
        .clone()
        .oneshot(request("/runtime.v1.RuntimeService/Version", b""))
        .await
        .unwrap();
    assert!(matches!(cri.body(), Either::Left(b) if b == "ours"));
    let other = on
        .oneshot(request("/grpc.health.v1.Health/Check", b"hi"))
        .await
        .unwrap();
    assert_eq!(other.headers()["x-seen-namespace"], "k8s.io");
    let other = off
        .oneshot(request("/grpc.health.v1.Health/Check", b""))
        .await
        .unwrap();
    assert!(matches!(other.body(), Either::Left(b) if b == "ours"));
}
