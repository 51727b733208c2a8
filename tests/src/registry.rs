//! A local `docker-registry` (distribution 2.8) on a free 127.0.0.1 port with filesystem storage in a private directory, plus the distribution-API calls to push blobs and manifests to it.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::components::{Component, CHILD_PATH};
use crate::http::{self, Response};
use crate::teardown;

const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts at finding a port nobody grabs between our probe and the bind.
const PORT_ATTEMPTS: usize = 5;

/// A running `docker-registry serve`, plain HTTP, no auth; killed and its
/// storage removed on drop.
#[derive(Debug)]
pub struct Registry {
    dir: PathBuf,
    host: String,
    log: PathBuf,
    child: Option<Child>,
}

impl Registry {
    /// Starts a registry and waits until `GET /v2/` answers 200.
    pub async fn start() -> Result<Self> {
        let binary = Component::Registry.path()?;
        let dir = teardown::new_component_dir("reg")?;
        let mut registry = Registry {
            log: dir.join("registry.log"),
            dir,
            host: String::new(),
            child: None,
        };
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            match registry.try_start(&binary).await {
                Ok(()) => return Ok(registry),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("registry did not start")))
    }

    async fn try_start(&mut self, binary: &Path) -> Result<()> {
        let port = free_port()?;
        self.host = format!("127.0.0.1:{port}");
        let config = self.dir.join("config.yml");
        std::fs::write(&config, self.config_yaml())?;
        let log = File::create(&self.log)?;
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config)
            .env("PATH", CHILD_PATH)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawn docker-registry")?;
        self.child = Some(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    bail!("docker-registry exited with {status}; log:\n{}", self.log());
                }
            }
            if let Ok(response) = self.get("/v2/").await {
                if response.status == 200 {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                self.kill();
                bail!(
                    "docker-registry did not answer GET /v2/ on {} within {READY_TIMEOUT:?}; log:\n{}",
                    self.host,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn config_yaml(&self) -> String {
        format!(
            r#"version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: {host}
  secret: cri-tests-not-secret
"#,
            root = self.dir.join("data").display(),
            host = self.host
        )
    }

    /// `127.0.0.1:PORT`, the registry part of image references.
    pub fn host(&self) -> String {
        self.host.clone()
    }

    /// The registry's private directory (config, storage, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What the registry logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_else(|e| format!("<cannot read {}: {e}>", self.log.display()))
    }

    /// A client for the distribution API of this registry.
    pub fn client(&self) -> RegistryClient {
        RegistryClient::new(&self.host)
    }

    /// `GET <path>` against the registry.
    pub async fn get(&self, path: &str) -> Result<Response> {
        self.client().get(path).await
    }

    /// See [`RegistryClient::get_manifest`].
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Result<Response> {
        self.client().get_manifest(repo, reference).await
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
        if let Err(e) = teardown::teardown_dir(&self.dir) {
            eprintln!("registry teardown: {e:#}");
        }
    }
}

/// The distribution-API calls the harness makes, against any plain-HTTP
/// registry at `host:port`.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    host: String,
}

impl RegistryClient {
    pub fn new(host: &str) -> Self {
        RegistryClient {
            host: host.to_string(),
        }
    }

    /// `host:port`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `GET <path>`.
    pub async fn get(&self, path: &str) -> Result<Response> {
        http::request(&self.host, "GET", path, &[], &[]).await
    }

    /// `GET /v2/<repo>/manifests/<reference>` accepting every manifest and
    /// index media type the harness pushes.
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Result<Response> {
        let accept = crate::images::media_types::ALL_MANIFESTS.join(", ");
        http::request(
            &self.host,
            "GET",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Accept", &accept)],
            &[],
        )
        .await
    }

    /// Uploads a blob into `repo` (monolithic POST + PUT), verifying the
    /// digest server side.
    pub async fn push_blob(&self, repo: &str, digest: &str, data: &[u8]) -> Result<()> {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let head = http::request(&self.host, "HEAD", &path, &[], &[]).await?;
        if head.status == 200 {
            return Ok(());
        }
        let started = http::request(
            &self.host,
            "POST",
            &format!("/v2/{repo}/blobs/uploads/"),
            &[],
            &[],
        )
        .await?;
        expect_status(&started, 202, "start blob upload")?;
        let location = started
            .header("location")
            .context("blob upload response has no Location")?;
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{separator}digest={digest}");
        let done = http::request(
            &self.host,
            "PUT",
            &put,
            &[("Content-Type", "application/octet-stream")],
            data,
        )
        .await?;
        expect_status(&done, 201, &format!("upload blob {digest} to {repo}"))
    }

    /// PUTs a manifest or index under `reference` (a tag or its digest).
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Result<()> {
        let done = http::request(
            &self.host,
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Content-Type", media_type)],
            body,
        )
        .await?;
        expect_status(&done, 201, &format!("push manifest {repo}:{reference}"))
    }
}

fn expect_status(response: &Response, want: u16, what: &str) -> Result<()> {
    if response.status != want {
        bail!(
            "{what}: HTTP {} (want {want}): {}",
            response.status,
            response.text()
        );
    }
    Ok(())
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
