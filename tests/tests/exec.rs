//! ExecSync, Exec, Attach and PortForward against a real containerd, runc
//! and CNI: output and exit codes, timeouts that kill the process, errors
//! for bad input, and the streaming server driven by our own SPDY and
//! WebSocket client (exec with and without a tty, stdin, attach with
//! several clients, port forwarding 10 MiB both ways into a pod's netns),
//! and the streaming server over TLS with an idle timeout.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cri_api::v1::runtime_service_client::RuntimeServiceClient;
use cri_api::v1::*;
use cri_streaming::client::{
    connect_spdy, connect_ws, exec_spdy, exec_ws, port_forward_pair, ExecInput, Upgrade,
};
use cri_streaming::spdy::{Headers, Session};
use cri_tests::{CriServer, Harness, ServerOptions, StartOutcome};
use tonic::transport::Channel;
use tonic::Code;

type Runtime = RuntimeServiceClient<Channel>;

const T: Duration = Duration::from_secs(30);

struct Env {
    _harness: Harness,
    server: CriServer,
    rt: Runtime,
    image: String,
    _logs: tempfile::TempDir,
    logs: PathBuf,
}

impl Env {
    async fn new() -> Result<Env> {
        Env::with_plugin_toml("").await
    }

    /// An environment whose server gets `extra` CRI plugin keys.
    async fn with_plugin_toml(extra: &str) -> Result<Env> {
        let harness = Harness::start().await?;
        let server = harness
            .server(ServerOptions {
                cri_plugin_toml: format!("netns_mounts_under_state_dir = true\n{extra}"),
                ..ServerOptions::default()
            })
            .await?;
        let image = harness.images.busybox.clone();
        server
            .image_client()
            .await?
            .pull_image(PullImageRequest {
                image: Some(ImageSpec {
                    image: image.clone(),
                    ..ImageSpec::default()
                }),
                auth: None,
                sandbox_config: None,
            })
            .await?;
        let rt = server.runtime_client().await?;
        let logs = tempfile::tempdir()?;
        let path = logs.path().to_owned();
        Ok(Env {
            _harness: harness,
            server,
            rt,
            image,
            _logs: logs,
            logs: path,
        })
    }

    /// Runs a pod, on the host network or (for port forwarding) the CNI
    /// bridge network.
    async fn pod(&mut self, name: &str, host_network: bool) -> Result<(String, PodSandboxConfig)> {
        let network = if host_network {
            NamespaceMode::Node
        } else {
            NamespaceMode::Pod
        };
        let config = PodSandboxConfig {
            linux: Some(LinuxPodSandboxConfig {
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: network as i32,
                        ..NamespaceOption::default()
                    }),
                    ..LinuxSandboxSecurityContext::default()
                }),
                ..LinuxPodSandboxConfig::default()
            }),
            ..cri_tests::cri::pod_config(name, "exec-test", &self.logs)
        };
        let id = self
            .rt
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            })
            .await
            .with_context(|| format!("run pod {name}\n{}", self.log_tail()))?
            .into_inner()
            .pod_sandbox_id;
        Ok((id, config))
    }

    /// Creates and starts a busybox container running `args`.
    async fn run(
        &mut self,
        pod: &(String, PodSandboxConfig),
        name: &str,
        args: &[&str],
        tweak: impl FnOnce(&mut ContainerConfig),
    ) -> Result<String> {
        let mut config = cri_tests::cri::container_config(name, &self.image, args);
        tweak(&mut config);
        let id = self
            .rt
            .create_container(CreateContainerRequest {
                pod_sandbox_id: pod.0.clone(),
                config: Some(config),
                sandbox_config: Some(pod.1.clone()),
            })
            .await
            .with_context(|| format!("create {name}\n{}", self.log_tail()))?
            .into_inner()
            .container_id;
        self.rt
            .start_container(StartContainerRequest {
                container_id: id.clone(),
            })
            .await
            .with_context(|| format!("start {name}\n{}", self.log_tail()))?;
        Ok(id)
    }

    async fn exec_sync(
        &mut self,
        id: &str,
        cmd: &[&str],
        timeout: i64,
    ) -> Result<ExecSyncResponse, tonic::Status> {
        Ok(self
            .rt
            .exec_sync(ExecSyncRequest {
                container_id: id.into(),
                cmd: cmd.iter().map(|c| (*c).to_owned()).collect(),
                timeout,
            })
            .await?
            .into_inner())
    }

    async fn exec_url(&mut self, id: &str, cmd: &[&str], stdin: bool, tty: bool) -> Result<String> {
        Ok(self
            .rt
            .exec(ExecRequest {
                container_id: id.into(),
                cmd: cmd.iter().map(|c| (*c).to_owned()).collect(),
                tty,
                stdin,
                stdout: true,
                stderr: !tty,
            })
            .await
            .with_context(|| format!("exec\n{}", self.log_tail()))?
            .into_inner()
            .url)
    }

    /// Pids in the container's cgroup, as containerd sees them.
    async fn pids(&self, id: &str) -> Result<usize> {
        let out = self
            ._harness
            .containerd
            .ctr_ok(&["-n", "k8s.io", "tasks", "ps", id])
            .await?;
        Ok(out.lines().skip(1).filter(|l| !l.trim().is_empty()).count())
    }

    /// FIFO dirs under `<state>/containers/<id>/io`.
    fn fifo_dirs(&self, id: &str) -> usize {
        let dir = self
            .server
            .state_dir()
            .join("containers")
            .join(id)
            .join("io");
        std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
    }

    fn log_tail(&self) -> String {
        cri_tests::cri::server_log_tail(&self.server, 40)
    }
}

async fn spdy(
    url: &str,
    protocols: &[&str],
) -> Result<(
    Session,
    tokio::sync::mpsc::Receiver<cri_streaming::spdy::IncomingStream>,
    String,
)> {
    match connect_spdy(url, protocols, &[]).await? {
        Upgrade::Spdy(session, incoming, protocol) => Ok((session, incoming, protocol)),
        Upgrade::Refused(r) => bail!("upgrade refused: {} {}", r.status, r.body),
    }
}

fn code(status: &tonic::Status) -> Code {
    status.code()
}

#[tokio::test]
async fn exec_sync_output_exit_codes_timeouts_and_errors() -> Result<()> {
    let mut env = Env::new().await?;
    let pod = env.pod("execsync", true).await?;
    let id = env.run(&pod, "sleeper", &["sleep", "1000"], |_| {}).await?;

    let r = env.exec_sync(&id, &["echo", "hello"], 0).await?;
    ensure!(
        r.exit_code == 0 && r.stdout == b"hello\n" && r.stderr.is_empty(),
        "{r:?}"
    );

    let r = env
        .exec_sync(&id, &["sh", "-c", "echo out; echo err >&2; exit 3"], 10)
        .await?;
    ensure!(r.exit_code == 3, "{r:?}");
    ensure!(r.stdout == b"out\n" && r.stderr == b"err\n", "{r:?}");

    // A timeout kills the process and answers DeadlineExceeded.
    let started = Instant::now();
    let e = env
        .exec_sync(&id, &["sh", "-c", "echo before; sleep 30"], 1)
        .await
        .err()
        .context("a sleep past its timeout succeeded")?;
    ensure!(code(&e) == Code::DeadlineExceeded, "{e:?}");
    ensure!(
        e.message().contains("before"),
        "captured output missing: {e:?}"
    );
    ensure!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    ensure!(
        env.pids(&id).await? == 1,
        "the timed-out exec is still running"
    );

    // 20 at once.
    let mut handles = Vec::new();
    for i in 0..20 {
        let mut rt = env.rt.clone();
        let id = id.clone();
        handles.push(tokio::spawn(async move {
            rt.exec_sync(ExecSyncRequest {
                container_id: id,
                cmd: vec![
                    "sh".into(),
                    "-c".into(),
                    format!("echo {i}; exit {}", i % 5),
                ],
                timeout: 30,
            })
            .await
            .map(|r| r.into_inner())
        }));
    }
    for (i, h) in handles.into_iter().enumerate() {
        let r = h.await??;
        ensure!(r.stdout == format!("{i}\n").as_bytes(), "exec {i}: {r:?}");
        ensure!(r.exit_code == (i % 5) as i32, "exec {i}: {r:?}");
    }
    ensure!(env.pids(&id).await? == 1, "exec processes left behind");
    ensure!(env.fifo_dirs(&id) == 1, "exec fifo dirs left behind");

    // Bad input.
    let e = env
        .exec_sync("nosuchcontainer", &["true"], 0)
        .await
        .err()
        .context("unknown")?;
    ensure!(code(&e) == Code::NotFound, "{e:?}");
    let e = env
        .exec_sync(&id, &[], 0)
        .await
        .err()
        .context("empty cmd")?;
    ensure!(code(&e) == Code::InvalidArgument, "{e:?}");
    let e = env.exec_sync(&id, &["/no/such/binary"], 0).await;
    ensure!(
        e.as_ref().map(|r| r.exit_code != 0).unwrap_or(true),
        "a missing binary succeeded: {e:?}"
    );
    ensure!(env.pids(&id).await? == 1, "failed exec left a process");

    // A stopped container: FailedPrecondition everywhere.
    env.rt
        .stop_container(StopContainerRequest {
            container_id: id.clone(),
            timeout: 0,
        })
        .await?;
    let e = env
        .exec_sync(&id, &["true"], 0)
        .await
        .err()
        .context("exec in stopped")?;
    ensure!(code(&e) == Code::FailedPrecondition, "{e:?}");
    let e = env
        .exec_url(&id, &["true"], false, false)
        .await
        .err()
        .context("exec url")?;
    let s = e.downcast_ref::<tonic::Status>().context("not a status")?;
    ensure!(s.code() == Code::FailedPrecondition, "{s:?}");
    let e = env
        .rt
        .attach(AttachRequest {
            container_id: id.clone(),
            stdout: true,
            ..AttachRequest::default()
        })
        .await
        .err()
        .context("attach to stopped")?;
    ensure!(code(&e) == Code::FailedPrecondition, "{e:?}");
    ensure!(env.fifo_dirs(&id) <= 1, "exec fifo dirs left behind");
    Ok(())
}

#[tokio::test]
async fn streaming_exec_and_attach() -> Result<()> {
    let mut env = Env::new().await?;
    let pod = env.pod("stream", true).await?;
    let id = env.run(&pod, "sleeper", &["sleep", "1000"], |_| {}).await?;

    // SPDY exec with stdin, no tty: cat echoes and exits 0.
    let url = env.exec_url(&id, &["cat"], true, false).await?;
    ensure!(url.starts_with("http://127.0.0.1:"), "{url}");
    let (session, _incoming, protocol) = spdy(&url, &["v4.channel.k8s.io"]).await?;
    let input = ExecInput {
        stdin: Some(b"hello stdin\n".to_vec()),
        stdout: true,
        stderr: true,
        ..ExecInput::default()
    };
    let out = tokio::time::timeout(T, exec_spdy(session, protocol, input))
        .await
        .context("timeout #1")??;
    ensure!(out.stdout == b"hello stdin\n", "{out:?}");
    ensure!(out.error_text().contains("Success"), "{out:?}");

    // A non-zero exit reaches the client.
    let url = env
        .exec_url(&id, &["sh", "-c", "echo e >&2; exit 7"], false, false)
        .await?;
    let (session, _incoming, protocol) = spdy(&url, &["v4.channel.k8s.io"]).await?;
    let input = ExecInput {
        stdout: true,
        stderr: true,
        ..ExecInput::default()
    };
    let out = tokio::time::timeout(T, exec_spdy(session, protocol, input.clone()))
        .await
        .context("timeout #2")??;
    ensure!(out.stderr == b"e\n", "{out:?}");
    let text = out.error_text();
    ensure!(
        text.contains("NonZeroExitCode") && text.contains("\"7\""),
        "{text}"
    );

    // The token was single-use; a made-up one is refused too.
    for bad in [
        url.clone(),
        url.rsplit_once('/')
            .map(|(b, _)| format!("{b}/nonsense"))
            .unwrap_or_default(),
    ] {
        match connect_spdy(&bad, &["v4.channel.k8s.io"], &[]).await? {
            Upgrade::Refused(r) => ensure!(r.status == 404, "{r:?}"),
            Upgrade::Spdy(..) => bail!("token {bad} accepted"),
        }
    }

    // tty with a resize: one output stream with \r\n line ends.
    let url = env
        .exec_url(
            &id,
            &["sh", "-c", "sleep 1; stty size; echo tty-out"],
            true,
            true,
        )
        .await?;
    let (session, _incoming, protocol) = spdy(&url, &["v4.channel.k8s.io"]).await?;
    let input = ExecInput {
        stdin: Some(Vec::new()),
        keep_stdin_open: true,
        stdout: true,
        tty: true,
        resize: vec![cri_streaming::TerminalSize {
            width: 100,
            height: 40,
        }],
        ..ExecInput::default()
    };
    let out = tokio::time::timeout(T, exec_spdy(session, protocol, input))
        .await
        .context("timeout #3")??;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(text.contains("tty-out\r\n"), "{out:?}");
    ensure!(text.contains("40 100"), "resize not applied: {text:?}");

    // WebSocket (v5): stdin, exit code.
    let url = env
        .exec_url(
            &id,
            &["sh", "-c", "read l; echo ws:$l; exit 4"],
            true,
            false,
        )
        .await?;
    let (ws, protocol) = connect_ws(&url, &["v5.channel.k8s.io"]).await?;
    let input = ExecInput {
        stdin: Some(b"line\n".to_vec()),
        stdout: true,
        stderr: true,
        ..ExecInput::default()
    };
    let out = tokio::time::timeout(T, exec_ws(ws, protocol, input))
        .await
        .context("timeout #4")??;
    ensure!(out.stdout == b"ws:line\n", "{out:?}");
    ensure!(out.error_text().contains("\"4\""), "{out:?}");
    ensure!(env.pids(&id).await? == 1, "exec processes left behind");

    // Attach: two clients read the container's output at once.
    let ticker = env
        .run(
            &pod,
            "ticker",
            &["sh", "-c", "while true; do echo tick; sleep 0.2; done"],
            |_| {},
        )
        .await?;
    let mut readers = Vec::new();
    for _ in 0..2 {
        let url = env
            .rt
            .attach(AttachRequest {
                container_id: ticker.clone(),
                stdout: true,
                ..AttachRequest::default()
            })
            .await?
            .into_inner()
            .url;
        let (session, _incoming, _) = spdy(&url, &["v4.channel.k8s.io"]).await?;
        let _error = session
            .open_stream(Headers::new().with("streamType", "error"))
            .await?;
        let stdout = session
            .open_stream(Headers::new().with("streamType", "stdout"))
            .await?;
        readers.push((session, _error, stdout));
    }
    for (session, _error, stdout) in readers {
        let (mut r, _) = stdout.split();
        let got = tokio::time::timeout(T, async {
            let mut got = Vec::new();
            while !String::from_utf8_lossy(&got).contains("tick\ntick\n") {
                match r.read().await {
                    Some(b) => got.extend_from_slice(&b),
                    None => break,
                }
            }
            got
        })
        .await?;
        ensure!(
            String::from_utf8_lossy(&got).contains("tick\ntick\n"),
            "{got:?}"
        );
        session.abort();
    }

    // Attach with stdin (stdin_once): the container reads what we send.
    let reader = env
        .run(
            &pod,
            "reader",
            &["sh", "-c", "read l; echo got:$l; sleep 2"],
            |c| {
                c.stdin = true;
                c.stdin_once = true;
            },
        )
        .await?;
    let url = env
        .rt
        .attach(AttachRequest {
            container_id: reader.clone(),
            stdin: true,
            stdout: true,
            stderr: true,
            ..AttachRequest::default()
        })
        .await?
        .into_inner()
        .url;
    let (session, _incoming, protocol) = spdy(&url, &["v4.channel.k8s.io"]).await?;
    let input = ExecInput {
        stdin: Some(b"ping\n".to_vec()),
        stdout: true,
        stderr: true,
        ..ExecInput::default()
    };
    let out = tokio::time::timeout(T, exec_spdy(session, protocol, input))
        .await
        .with_context(|| format!("timeout #5\n{}", env.log_tail()))??;
    ensure!(out.stdout == b"got:ping\n", "{out:?}\n{}", env.log_tail());
    Ok(())
}

#[tokio::test]
async fn port_forward_into_the_pod_network() -> Result<()> {
    let mut env = Env::new().await?;
    let pod = env.pod("forward", false).await?;
    env.run(
        &pod,
        "echo",
        &["nc", "-ll", "-p", "8080", "-e", "cat"],
        |_| {},
    )
    .await?;

    // Bad input.
    for (sandbox, port, want) in [
        (pod.0.clone(), 0, Code::InvalidArgument),
        (pod.0.clone(), 70000, Code::InvalidArgument),
        ("nosuchpod".to_owned(), 80, Code::NotFound),
    ] {
        let e = env
            .rt
            .port_forward(PortForwardRequest {
                pod_sandbox_id: sandbox,
                port: vec![port],
            })
            .await
            .err()
            .context("bad port forward accepted")?;
        ensure!(e.code() == want, "port {port}: {e:?}");
    }

    let url = env
        .rt
        .port_forward(PortForwardRequest {
            pod_sandbox_id: pod.0.clone(),
            port: vec![8080],
        })
        .await?
        .into_inner()
        .url;
    let (session, _incoming, protocol) = spdy(&url, &["portforward.k8s.io"]).await?;
    ensure!(protocol == "portforward.k8s.io", "{protocol}");
    // Wait for nc to listen: retry until a connection echoes.
    let deadline = Instant::now() + T;
    let mut request = 0;
    loop {
        request += 1;
        let (error, data) = port_forward_pair(&session, 8080, request).await?;
        let (mut r, w) = data.split();
        w.write_all(b"ping").await?;
        w.finish().await?;
        let got = tokio::time::timeout(T, r.read_to_end())
            .await
            .context("timeout #6")?;
        if got == b"ping" {
            break;
        }
        let err = tokio::time::timeout(T, error.split().0.read_to_end())
            .await
            .context("timeout #7")?;
        if Instant::now() > deadline {
            bail!("no echo: {got:?} {}", String::from_utf8_lossy(&err));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Three connections at once, 10 MiB each way on each.
    let payload: Vec<u8> = (0..10u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let payload = std::sync::Arc::new(payload);
    let started = Instant::now();
    let mut conns = Vec::new();
    for n in 0..3 {
        let (_error, data) = port_forward_pair(&session, 8080, 1000 + n).await?;
        let payload = payload.clone();
        conns.push(tokio::spawn(async move {
            let (mut r, w) = data.split();
            let send = async {
                for chunk in payload.chunks(64 * 1024) {
                    w.write_all(chunk).await?;
                }
                w.finish().await?;
                anyhow::Ok(())
            };
            let (sent, got) = tokio::join!(send, r.read_to_end());
            sent?;
            drop(_error);
            anyhow::Ok(got)
        }));
    }
    for c in conns {
        let got = tokio::time::timeout(Duration::from_secs(90), c)
            .await
            .context("timeout #8")???;
        ensure!(got.len() == payload.len(), "got {} bytes", got.len());
        ensure!(got == *payload, "payload corrupted");
    }
    eprintln!("3 x 10 MiB echoed in {:?}", started.elapsed());

    // Nothing listens on 9: the error stream says so.
    let (error, data) = port_forward_pair(&session, 9, 5000).await?;
    let (mut r, w) = data.split();
    let _ = w.finish().await;
    let _ = tokio::time::timeout(T, r.read_to_end())
        .await
        .context("timeout #9")?;
    let err = tokio::time::timeout(T, error.split().0.read_to_end())
        .await
        .context("timeout #10")?;
    let text = String::from_utf8_lossy(&err);
    ensure!(text.contains("localhost:9"), "{text}");
    session.abort();
    Ok(())
}

/// Port-forwards 1 MiB both ways over one WebSocket connection into
/// `port`, reading while it writes; returns the echoed bytes.
async fn ws_forward(url: &str, port: u16, payload: &[u8]) -> Result<Vec<u8>> {
    use cri_streaming::client::decode;
    use cri_streaming::websocket::{encode, Codec};
    use futures::{SinkExt, StreamExt};

    let (ws, protocol) = connect_ws(url, &["v4.channel.k8s.io"]).await?;
    ensure!(protocol == "v4.channel.k8s.io", "{protocol}");
    let (mut sink, mut stream) = ws.split();
    let send = async {
        for chunk in payload.chunks(32 * 1024) {
            sink.send(encode(Codec::Binary, 0, chunk)).await?;
        }
        anyhow::Ok(sink)
    };
    let receive = async {
        let (mut data, mut error) = (Vec::new(), Vec::new());
        let mut firsts = [true; 2];
        while data.len() < payload.len() {
            let Some(msg) = stream.next().await else {
                break;
            };
            let Some((ch, bytes)) = decode(Codec::Binary, msg?) else {
                continue;
            };
            let ch = usize::from(ch);
            ensure!(ch < 2, "unexpected channel {ch}");
            if std::mem::take(&mut firsts[ch]) {
                ensure!(
                    bytes == port.to_le_bytes(),
                    "channel {ch} opened with {bytes:?}"
                );
                continue;
            }
            if ch == 0 {
                data.extend_from_slice(&bytes);
            } else {
                error.extend_from_slice(&bytes);
                break;
            }
        }
        ensure!(
            error.is_empty(),
            "error channel: {}",
            String::from_utf8_lossy(&error)
        );
        anyhow::Ok(data)
    };
    let (sink, data) = tokio::join!(send, receive);
    let _ = sink?.close().await;
    data
}

#[tokio::test]
async fn tls_streaming_websocket_port_forward_and_idle_timeout() -> Result<()> {
    let mut env =
        Env::with_plugin_toml("enable_tls_streaming = true\nstream_idle_timeout = \"2s\"\n")
            .await?;

    // A certificate file that is not PEM fails start-up, naming the file.
    let bad = tempfile::tempdir()?;
    let (cert, key) = (bad.path().join("cert.pem"), bad.path().join("key.pem"));
    std::fs::write(&cert, "not a certificate")?;
    std::fs::write(&key, "not a key")?;
    let outcome = env
        ._harness
        .try_server(ServerOptions {
            cri_plugin_toml: "enable_tls_streaming = true\n".into(),
            extra_toml: format!(
                "[plugins.\"io.containerd.grpc.v1.cri\".x509_key_pair_streaming]\n\
                 tls_cert_file = {:?}\ntls_key_file = {:?}\n",
                cert.display().to_string(),
                key.display().to_string()
            ),
            ..ServerOptions::default()
        })
        .await?;
    match outcome {
        StartOutcome::Exited { log, .. } => ensure!(
            log.contains("start the streaming server") && log.contains(&cert.display().to_string()),
            "{log}"
        ),
        StartOutcome::Running(_) => bail!("a server with a bad certificate file started"),
    }

    let pod = env.pod("tls", false).await?;
    let sleeper = env.run(&pod, "sleeper", &["sleep", "1000"], |_| {}).await?;
    env.run(
        &pod,
        "echo",
        &["nc", "-ll", "-p", "8080", "-e", "cat"],
        |_| {},
    )
    .await?;

    // Exec over TLS (SPDY): stdin round-trips, the exit code arrives.
    let url = env
        .exec_url(&sleeper, &["sh", "-c", "cat; exit 5"], true, false)
        .await?;
    ensure!(url.starts_with("https://127.0.0.1:"), "{url}");
    let (session, _incoming, protocol) = spdy(&url, &["v4.channel.k8s.io"]).await?;
    let input = ExecInput {
        stdin: Some(b"secret stdin\n".to_vec()),
        stdout: true,
        stderr: true,
        ..ExecInput::default()
    };
    let out = tokio::time::timeout(T, exec_spdy(session, protocol, input))
        .await
        .context("timeout: tls exec")??;
    ensure!(out.stdout == b"secret stdin\n", "{out:?}");
    let text = out.error_text();
    ensure!(
        text.contains("NonZeroExitCode") && text.contains("\"5\""),
        "{text}"
    );

    // WebSocket port forward (over TLS): wait for nc, then 1 MiB both ways.
    let forward_url = |rt: &mut Runtime| {
        let mut rt = rt.clone();
        let id = pod.0.clone();
        async move {
            anyhow::Ok(
                rt.port_forward(PortForwardRequest {
                    pod_sandbox_id: id,
                    port: vec![8080],
                })
                .await?
                .into_inner()
                .url,
            )
        }
    };
    let deadline = Instant::now() + T;
    loop {
        let url = forward_url(&mut env.rt).await?;
        ensure!(url.starts_with("https://"), "{url}");
        match tokio::time::timeout(Duration::from_secs(5), ws_forward(&url, 8080, b"ping")).await {
            Ok(Ok(got)) if got == b"ping" => break,
            other if Instant::now() > deadline => bail!("no echo: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let payload: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let url = forward_url(&mut env.rt).await?;
    let got = tokio::time::timeout(T, ws_forward(&url, 8080, &payload))
        .await
        .context("timeout: websocket port forward")??;
    ensure!(got.len() == payload.len(), "got {} bytes", got.len());
    ensure!(got == payload, "payload corrupted");

    // An exec that sends nothing is closed after the 2s idle timeout, and
    // its process is gone afterwards: closing the connection closes its
    // stdin, so `cat` ends (containerd, like us, does not kill an exec
    // whose stream went away; a process ignoring stdin would keep running).
    let url = env.exec_url(&sleeper, &["cat"], true, false).await?;
    let (session, _incoming, protocol) = spdy(&url, &["v4.channel.k8s.io"]).await?;
    let input = ExecInput {
        stdin: Some(Vec::new()),
        keep_stdin_open: true,
        stdout: true,
        stderr: true,
        ..ExecInput::default()
    };
    let started = Instant::now();
    tokio::time::timeout(T, exec_spdy(session, protocol, input))
        .await
        .context("the idle exec stream was not closed")??;
    let idle = started.elapsed();
    ensure!(
        idle >= Duration::from_millis(1500) && idle < Duration::from_secs(10),
        "closed after {idle:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.pids(&sleeper).await? != 1 {
        ensure!(
            Instant::now() < deadline,
            "the idle exec's process is still running\n{}",
            env.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
