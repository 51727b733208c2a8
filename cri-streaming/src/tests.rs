//! End-to-end tests of the streaming server over real TCP on 127.0.0.1,
//! with our own SPDY and WebSocket client against a fake runtime.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cri_api::v1::{AttachRequest, ExecRequest, PortForwardRequest};
use futures::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;

use super::client::{self, ExecInput, ExecOutput, Upgrade};
use super::runtime::{ExitCode, PortStream, ResizeReceiver, StreamIo, StreamRuntime, TerminalSize};
use super::websocket::{encode, Codec};
use super::{Clock, StreamRuntimeError, StreamingConfig, StreamingError, StreamingServer};

#[derive(Default)]
struct Fake {
    resizes: Mutex<Vec<(u16, u16)>>,
    finished: Mutex<usize>,
}

#[async_trait]
impl StreamRuntime for Fake {
    async fn exec(
        &self,
        _id: &str,
        cmd: &[String],
        mut io: StreamIo,
        tty: bool,
        resize: Option<ResizeReceiver>,
    ) -> Result<ExitCode, StreamRuntimeError> {
        let code = match cmd.first().map(String::as_str) {
            Some("echo") => {
                if let (Some(mut i), Some(mut o)) = (io.stdin.take(), io.stdout.take()) {
                    tokio::io::copy(&mut i, &mut o).await.ok();
                }
                0
            }
            Some("stderr") => {
                let target = if tty {
                    io.stdout.as_mut()
                } else {
                    io.stderr.as_mut()
                };
                if let Some(w) = target {
                    w.write_all(b"to stderr").await.ok();
                }
                if let Some(o) = io.stdout.as_mut() {
                    o.write_all(b"to stdout").await.ok();
                }
                0
            }
            Some("exit") => cmd.get(1).and_then(|c| c.parse().ok()).unwrap_or(1),
            Some("resize") => {
                let mut rx = resize.expect("resize channel with a tty");
                while let Some(TerminalSize { width, height }) = rx.recv().await {
                    self.resizes.lock().unwrap().push((width, height));
                    if self.resizes.lock().unwrap().len() == 2 {
                        break;
                    }
                }
                if let Some(o) = io.stdout.as_mut() {
                    o.write_all(b"resized").await.ok();
                }
                0
            }
            _ => return Err(StreamRuntimeError::NotRunning("c1".into())),
        };
        *self.finished.lock().unwrap() += 1;
        Ok(ExitCode(code))
    }

    async fn attach(
        &self,
        _id: &str,
        mut io: StreamIo,
        _tty: bool,
        _resize: Option<ResizeReceiver>,
    ) -> Result<(), StreamRuntimeError> {
        if let (Some(mut i), Some(mut o)) = (io.stdin.take(), io.stdout.take()) {
            tokio::io::copy(&mut i, &mut o).await.ok();
        }
        Ok(())
    }

    async fn port_forward(
        &self,
        sandbox: &str,
        port: u16,
        stream: PortStream,
    ) -> Result<(), StreamRuntimeError> {
        if port != 80 {
            let source: Box<dyn std::error::Error + Send + Sync> = "connection refused".into();
            return Err(StreamRuntimeError::Failed {
                operation: "dial",
                id: sandbox.to_owned(),
                source,
            });
        }
        let (mut r, mut w) = tokio::io::split(stream);
        tokio::io::copy(&mut r, &mut w).await.ok();
        w.shutdown().await.ok();
        Ok(())
    }
}

struct FakeClock(Mutex<Instant>);
impl Clock for FakeClock {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap()
    }
}

struct Env {
    server: StreamingServer,
    fake: Arc<Fake>,
    clock: Arc<FakeClock>,
}

async fn env_with(config: StreamingConfig) -> Env {
    let fake = Arc::new(Fake::default());
    let clock = Arc::new(FakeClock(Mutex::new(Instant::now())));
    let server = StreamingServer::bind_with_clock(config, fake.clone(), clock.clone())
        .await
        .unwrap();
    Env {
        server,
        fake,
        clock,
    }
}

async fn env() -> Env {
    env_with(StreamingConfig {
        close_timeout: Duration::from_secs(2),
        ..StreamingConfig::default()
    })
    .await
}

fn exec_req(cmd: &[&str], stdin: bool, tty: bool) -> ExecRequest {
    ExecRequest {
        container_id: "c1".into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty,
        stdin,
        stdout: true,
        stderr: !tty,
    }
}

async fn spdy(
    url: &str,
    protocols: &[&str],
) -> (
    super::spdy::Session,
    tokio::sync::mpsc::Receiver<super::spdy::IncomingStream>,
    String,
) {
    match client::connect_spdy(url, protocols, &[]).await.unwrap() {
        Upgrade::Spdy(s, i, p) => (s, i, p),
        Upgrade::Refused(r) => panic!("refused: {r:?}"),
    }
}

async fn spdy_exec(
    env: &Env,
    req: ExecRequest,
    protocols: &[&str],
    input: ExecInput,
) -> ExecOutput {
    let url = env.server.get_exec(&req).unwrap().url;
    let (session, _incoming, protocol) = spdy(&url, protocols).await;
    tokio::time::timeout(
        Duration::from_secs(20),
        client::exec_spdy(session, protocol, input),
    )
    .await
    .unwrap()
    .unwrap()
}

const V4: &[&str] = &[
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];
const SUCCESS: &str = r#"{"metadata":{},"status":"Success"}"#;

fn io(stdin: Option<&[u8]>, stderr: bool) -> ExecInput {
    ExecInput {
        stdin: stdin.map(<[u8]>::to_vec),
        stdout: true,
        stderr,
        ..ExecInput::default()
    }
}

#[tokio::test]
async fn url_points_at_the_server() {
    let env = env().await;
    let url = env
        .server
        .get_exec(&exec_req(&["echo"], true, false))
        .unwrap()
        .url;
    let prefix = format!("http://127.0.0.1:{}/exec/", env.server.local_addr().port());
    assert!(url.starts_with(&prefix), "{url}");
    assert_eq!(url.len(), prefix.len() + 11);
}

#[tokio::test]
async fn spdy_v4_exec_echoes_stdin_and_reports_success() {
    let env = env().await;
    let out = spdy_exec(
        &env,
        exec_req(&["echo"], true, false),
        V4,
        io(Some(b"hello world"), true),
    )
    .await;
    assert_eq!(out.protocol, "v4.channel.k8s.io");
    assert_eq!(out.stdout, b"hello world");
    assert_eq!(out.error_text(), SUCCESS);
}

#[tokio::test]
async fn spdy_v4_exec_reports_the_exit_code() {
    let env = env().await;
    let out = spdy_exec(
        &env,
        exec_req(&["exit", "3"], false, false),
        V4,
        io(None, true),
    )
    .await;
    let status: serde_json::Value = serde_json::from_slice(&out.error).unwrap();
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["reason"], "ExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "3");
    let ok = spdy_exec(
        &env,
        exec_req(&["exit", "0"], false, false),
        V4,
        io(None, true),
    )
    .await;
    assert_eq!(ok.error_text(), SUCCESS);
}

#[tokio::test]
async fn spdy_exec_separates_stdout_and_stderr_and_tty_merges_them() {
    let env = env().await;
    let out = spdy_exec(
        &env,
        exec_req(&["stderr"], false, false),
        V4,
        io(None, true),
    )
    .await;
    assert_eq!(
        (out.stdout.as_slice(), out.stderr.as_slice()),
        (&b"to stdout"[..], &b"to stderr"[..])
    );
    let tty_io = ExecInput {
        tty: true,
        ..io(None, false)
    };
    let tty = spdy_exec(&env, exec_req(&["stderr"], false, true), V4, tty_io).await;
    assert_eq!(tty.stdout, b"to stderrto stdout");
}

#[tokio::test]
async fn spdy_tty_exec_receives_resize_events() {
    let env = env().await;
    let input = ExecInput {
        stdout: true,
        tty: true,
        resize: vec![
            TerminalSize {
                width: 80,
                height: 24,
            },
            TerminalSize {
                width: 120,
                height: 40,
            },
        ],
        ..ExecInput::default()
    };
    let out = spdy_exec(&env, exec_req(&["resize"], false, true), V4, input).await;
    assert_eq!(out.stdout, b"resized");
    assert_eq!(out.error_text(), SUCCESS);
    assert_eq!(*env.fake.resizes.lock().unwrap(), vec![(80, 24), (120, 40)]);
}

#[tokio::test]
async fn older_protocols_write_only_failures_as_text() {
    let env = env().await;
    let ok = spdy_exec(
        &env,
        exec_req(&["exit", "0"], false, false),
        &["channel.k8s.io"],
        io(None, true),
    )
    .await;
    assert_eq!(
        (ok.protocol.as_str(), ok.error.as_slice()),
        ("channel.k8s.io", &b""[..])
    );
    let bad = spdy_exec(
        &env,
        exec_req(&["exit", "2"], false, false),
        &["v2.channel.k8s.io"],
        io(None, true),
    )
    .await;
    assert!(
        bad.error_text()
            .starts_with("command terminated with non-zero exit code"),
        "{}",
        bad.error_text()
    );
    let broken = spdy_exec(
        &env,
        exec_req(&["broken"], false, false),
        V4,
        io(None, true),
    )
    .await;
    assert!(
        broken.error_text().contains("InternalError"),
        "{}",
        broken.error_text()
    );
}

#[tokio::test]
async fn twenty_concurrent_execs() {
    let env = Arc::new(env().await);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let env = env.clone();
        tasks.push(tokio::spawn(async move {
            let msg = format!("exec number {i}");
            let out = spdy_exec(
                &env,
                exec_req(&["echo"], true, false),
                V4,
                io(Some(msg.as_bytes()), true),
            )
            .await;
            assert_eq!(out.stdout, msg.as_bytes());
            assert_eq!(out.error_text(), SUCCESS);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*env.fake.finished.lock().unwrap(), 20);
}

#[tokio::test]
async fn spdy_attach_echoes() {
    let env = env().await;
    let req = AttachRequest {
        container_id: "c1".into(),
        stdin: true,
        stdout: true,
        ..AttachRequest::default()
    };
    let url = env.server.get_attach(&req).unwrap().url;
    assert!(url.contains("/attach/"));
    let (session, _i, protocol) = spdy(&url, V4).await;
    let out = client::exec_spdy(session, protocol, io(Some(b"attached"), false))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"attached");
    assert_eq!(out.error_text(), SUCCESS);
}

async fn refusal(url: &str, protocols: &[&str], extra: &[(&str, &str)]) -> client::Refusal {
    match client::connect_spdy(url, protocols, extra).await.unwrap() {
        Upgrade::Refused(r) => r,
        Upgrade::Spdy(..) => panic!("upgraded"),
    }
}

#[tokio::test]
async fn bad_reused_and_expired_tokens_are_404() {
    let env = env().await;
    let base = env.server.base_url().to_owned();
    assert_eq!(
        refusal(&format!("{base}/exec/nonsense"), V4, &[])
            .await
            .status,
        404
    );
    assert_eq!(
        refusal(&format!("{base}/nothing/x"), V4, &[]).await.status,
        404
    );

    let url = env
        .server
        .get_exec(&exec_req(&["exit", "0"], false, false))
        .unwrap()
        .url;
    let attach_url = url.replace("/exec/", "/attach/");
    assert_eq!(
        refusal(&attach_url, V4, &[]).await.status,
        404,
        "a token only fits its own route"
    );
    assert_eq!(
        refusal(&url, V4, &[]).await.status,
        404,
        "the wrong route used it up"
    );

    let url = env
        .server
        .get_exec(&exec_req(&["exit", "0"], false, false))
        .unwrap()
        .url;
    spdy_exec_url(&url).await;
    assert_eq!(refusal(&url, V4, &[]).await.status, 404, "reused token");

    let url = env
        .server
        .get_exec(&exec_req(&["exit", "0"], false, false))
        .unwrap()
        .url;
    *env.clock.0.lock().unwrap() += Duration::from_secs(61);
    let r = refusal(&url, V4, &[]).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (404, "404 page not found\n"),
        "expired token"
    );
}

async fn spdy_exec_url(url: &str) {
    let (session, _i, protocol) = spdy(url, V4).await;
    client::exec_spdy(session, protocol, io(None, true))
        .await
        .unwrap();
}

#[tokio::test]
async fn bad_upgrades_get_http_errors() {
    let env = env().await;
    let url = || {
        env.server
            .get_exec(&exec_req(&["exit", "0"], false, false))
            .unwrap()
            .url
    };
    let r = refusal(&url(), &[], &[]).await;
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("X-Stream-Protocol-Version is required"),
        "{}",
        r.body
    );
    let r = refusal(&url(), &["v9.channel.k8s.io"], &[]).await;
    assert_eq!(r.status, 403);
    assert!(r
        .headers
        .iter()
        .any(|(k, v)| k == "x-accepted-stream-protocol-versions" && v == "v4.channel.k8s.io"));
    let r = refusal(&url(), V4, &[("Connection", "keep-alive")]).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn idle_timeout_closes_the_connection_and_ends_the_exec() {
    let env = env_with(StreamingConfig {
        idle_timeout: Some(Duration::from_millis(300)),
        ..StreamingConfig::default()
    })
    .await;
    let url = env
        .server
        .get_exec(&exec_req(&["echo"], true, false))
        .unwrap()
        .url;
    let (session, _i, protocol) = spdy(&url, V4).await;
    let input = ExecInput {
        keep_stdin_open: true,
        ..io(Some(b"x"), true)
    };
    let started = Instant::now();
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        client::exec_spdy(session, protocol, input),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(out.stdout, b"x");
    // The runtime saw stdin end and returned: nothing is left running.
    for _ in 0..50 {
        if env.server.active_tasks() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(*env.fake.finished.lock().unwrap(), 1);
    assert_eq!(env.server.active_tasks(), 0);
}

#[tokio::test]
async fn websocket_exec_in_every_protocol() {
    let env = env().await;
    for (protocol, close_stdin) in [
        ("v5.channel.k8s.io", true),
        ("v4.channel.k8s.io", false),
        ("v4.base64.channel.k8s.io", false),
        ("channel.k8s.io", false),
        ("base64.channel.k8s.io", false),
    ] {
        // Without the v5 close signal stdin never ends: use the exit command.
        let (cmd, stdin): (&[&str], Option<&[u8]>) = if close_stdin {
            (&["echo"], Some(b"ws hello"))
        } else {
            (&["stderr"], None)
        };
        let url = env
            .server
            .get_exec(&exec_req(cmd, stdin.is_some(), false))
            .unwrap()
            .url;
        let (ws, negotiated) = client::connect_ws(&url, &[protocol]).await.unwrap();
        assert_eq!(negotiated, protocol);
        let out = tokio::time::timeout(
            Duration::from_secs(10),
            client::exec_ws(ws, negotiated, io(stdin, true)),
        )
        .await
        .unwrap()
        .unwrap();
        if close_stdin {
            assert_eq!(out.stdout, b"ws hello");
        } else {
            assert_eq!(
                (out.stdout.as_slice(), out.stderr.as_slice()),
                (&b"to stdout"[..], &b"to stderr"[..]),
                "{protocol}"
            );
        }
        let expected = if protocol.starts_with("v4") || protocol.starts_with("v5") {
            SUCCESS
        } else {
            ""
        };
        assert_eq!(out.error_text(), expected, "{protocol}");
    }
    let url = env
        .server
        .get_exec(&exec_req(&["exit", "3"], false, false))
        .unwrap()
        .url;
    let (ws, p) = client::connect_ws(&url, &["v5.channel.k8s.io"])
        .await
        .unwrap();
    let out = client::exec_ws(ws, p, io(None, true)).await.unwrap();
    assert!(
        out.error_text()
            .contains(r#""causes":[{"reason":"ExitCode","message":"3"}]"#),
        "{}",
        out.error_text()
    );
}

#[tokio::test]
async fn port_forward_over_spdy_carries_10_mib_both_ways() {
    let env = env().await;
    let req = PortForwardRequest {
        pod_sandbox_id: "s1".into(),
        port: vec![80],
    };
    let url = env.server.get_port_forward(&req).unwrap().url;
    let (session, _i, protocol) = spdy(&url, &["portforward.k8s.io"]).await;
    assert_eq!(protocol, "portforward.k8s.io");
    let (error, data) = client::port_forward_pair(&session, 80, 0).await.unwrap();
    let payload: Vec<u8> = (0..10 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let (mut reader, writer) = data.split();
    let sent = payload.clone();
    let send = tokio::spawn(async move {
        writer.write_all(&sent).await.unwrap();
        writer.finish().await.unwrap();
    });
    let got = tokio::time::timeout(Duration::from_secs(60), reader.read_to_end())
        .await
        .unwrap();
    send.await.unwrap();
    assert_eq!(got.len(), payload.len());
    assert!(got == payload, "echoed bytes differ");
    let (mut err_r, _) = error.split();
    assert_eq!(err_r.read_to_end().await, b"");

    // A refused port reports on its error stream, the connection stays up.
    let (error, _data) = client::port_forward_pair(&session, 81, 1).await.unwrap();
    let (mut err_r, _) = error.split();
    let msg: serde_json::Value = serde_json::from_slice(&err_r.read_to_end().await).unwrap();
    assert_eq!(
        msg["message"],
        "error forwarding port 81 to pod s1, uid : dial for s1: connection refused"
    );
    // A stream with a bad port is rejected with FIN.
    let bad = session
        .open_stream(
            super::spdy::Headers::new()
                .with("streamType", "data")
                .with("port", "0")
                .with("requestID", "2"),
        )
        .await
        .unwrap();
    let (mut bad_r, _) = bad.split();
    assert_eq!(bad_r.read_to_end().await, b"");
    session.abort();
}

#[tokio::test]
async fn port_forward_over_websocket() {
    let env = env().await;
    let req = PortForwardRequest {
        pod_sandbox_id: "s1".into(),
        port: vec![80, 81],
    };
    let url = env.server.get_port_forward(&req).unwrap().url;
    let (mut ws, protocol) = client::connect_ws(&url, &["v4.channel.k8s.io"])
        .await
        .unwrap();
    assert_eq!(protocol, "v4.channel.k8s.io");
    let payload: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    for chunk in payload.chunks(32 * 1024) {
        ws.send(encode(Codec::Binary, 0, chunk)).await.unwrap();
    }
    let mut per_channel: Vec<Vec<u8>> = vec![Vec::new(); 4];
    let mut firsts = [true; 4];
    while per_channel[0].len() < payload.len() {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let Some((ch, data)) = client::decode(Codec::Binary, msg) else {
            continue;
        };
        let ch = usize::from(ch);
        if std::mem::take(&mut firsts[ch]) {
            let port = if ch < 2 { 80u16 } else { 81 };
            assert_eq!(data, port.to_le_bytes(), "channel {ch} opens with its port");
            continue;
        }
        per_channel[ch].extend_from_slice(&data);
    }
    assert!(per_channel[0] == payload);
    ws.close(None).await.ok();
}

#[tokio::test]
async fn requests_are_validated() {
    let env = env().await;
    let s = &env.server;
    let e = |r: Result<_, StreamingError>| r.err().map(|e| e.to_string());
    assert_eq!(
        e(s.get_exec(&ExecRequest {
            cmd: vec!["sh".into()],
            stdout: true,
            ..Default::default()
        })),
        Some("missing required container_id".into())
    );
    assert_eq!(
        e(s.get_exec(&exec_req(&[], true, false))),
        Some("missing required cmd".into())
    );
    let mut tty_err = exec_req(&["sh"], true, true);
    tty_err.stderr = true;
    assert_eq!(
        e(s.get_exec(&tty_err)),
        Some("tty and stderr cannot both be true".into())
    );
    let none = ExecRequest {
        container_id: "c".into(),
        cmd: vec!["sh".into()],
        ..Default::default()
    };
    assert_eq!(
        e(s.get_exec(&none)),
        Some("one of stdin, stdout, or stderr must be set".into())
    );
    for bad in [0, -1, 65536] {
        let r = s.get_port_forward(&PortForwardRequest {
            pod_sandbox_id: "s".into(),
            port: vec![80, bad],
        });
        assert!(matches!(r, Err(StreamingError::InvalidPort(p)) if p == i64::from(bad)));
    }
    assert!(matches!(
        s.get_port_forward(&PortForwardRequest::default()),
        Err(StreamingError::MissingSandboxId)
    ));
    assert!(s
        .get_port_forward(&PortForwardRequest {
            pod_sandbox_id: "s".into(),
            port: vec![1, 65535]
        })
        .is_ok());
}

#[tokio::test]
async fn shutdown_ends_open_connections() {
    let env = env().await;
    let url = env
        .server
        .get_exec(&exec_req(&["echo"], true, false))
        .unwrap()
        .url;
    let (session, _i, _p) = spdy(&url, V4).await;
    let stdin = session
        .open_stream(super::spdy::Headers::new().with("streamType", "stdin"))
        .await
        .unwrap();
    env.server.shutdown().await;
    tokio::time::timeout(Duration::from_secs(5), session.closed())
        .await
        .unwrap();
    assert_eq!(env.server.active_tasks(), 0);
    drop(stdin);
    assert!(
        tokio::net::TcpStream::connect(env.server.local_addr())
            .await
            .is_err(),
        "listener closed"
    );
}

#[tokio::test]
async fn tls_serves_https_over_spdy_and_websocket() {
    let env = env_with(StreamingConfig {
        tls: Some(super::TlsSource::SelfSigned),
        close_timeout: Duration::from_secs(2),
        ..StreamingConfig::default()
    })
    .await;
    let cert = env.server.tls_certificate().unwrap().clone();
    let url = env
        .server
        .get_exec(&exec_req(&["echo"], true, false))
        .unwrap()
        .url;
    let prefix = format!("https://127.0.0.1:{}/exec/", env.server.local_addr().port());
    assert!(url.starts_with(&prefix), "{url}");

    // SPDY, verifying the self-signed certificate names 127.0.0.1.
    let trust = client::Trust::Roots(vec![cert]);
    let Upgrade::Spdy(session, _incoming, protocol) =
        client::connect_spdy_with(&url, V4, &[], &trust)
            .await
            .unwrap()
    else {
        panic!("not upgraded");
    };
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        client::exec_spdy(session, protocol, io(Some(b"over tls"), true)),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(out.stdout, b"over tls");
    assert_eq!(out.error_text(), SUCCESS);

    // WebSocket (v5) over TLS.
    let url = env
        .server
        .get_exec(&exec_req(&["exit", "3"], false, false))
        .unwrap()
        .url;
    let (ws, protocol) = client::connect_ws_with(&url, &["v5.channel.k8s.io"], &trust)
        .await
        .unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        client::exec_ws(ws, protocol, io(None, true)),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(out.error_text().contains("\"3\""), "{out:?}");

    // Plain HTTP against the TLS port gets no upgrade.
    let url = env
        .server
        .get_exec(&exec_req(&["echo"], true, false))
        .unwrap()
        .url;
    let plain = url.replacen("https://", "http://", 1);
    let refused = tokio::time::timeout(
        Duration::from_secs(20),
        client::connect_spdy(&plain, V4, &[]),
    )
    .await
    .unwrap();
    assert!(
        !matches!(refused, Ok(Upgrade::Spdy(..))),
        "plain http was upgraded"
    );

    // A certificate the client does not trust fails the handshake.
    let other = super::StreamingTls::load(&super::TlsSource::SelfSigned, "127.0.0.1")
        .unwrap()
        .certificate;
    let r = client::connect_spdy_with(&url, V4, &[], &client::Trust::Roots(vec![other])).await;
    assert!(r.is_err(), "untrusted certificate accepted");
}
