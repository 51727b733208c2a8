//! Talking to registries with `oci-client`: one client per configured host (scheme, TLS, credentials), resolving a reference to its manifest or index, and opening blobs, trying the hosts in order as containerd's resolver and fetcher do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use cri_api::containerd::Descriptor;
use cri_api::v1::AuthConfig;
use futures::stream::BoxStream;
use futures::StreamExt;
use oci_client::client::{
    BlobResponse, Certificate, CertificateEncoding, ClientConfig, ClientProtocol,
};
use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::auth::{credentials_for, Credentials};
use super::error::{ImageError, Result};
use super::hosts::{RegistryHost, Scheme};
use super::manifest::{detect_media_type, media, sha256_digest};
use super::progress::{Counted, Progress};
use super::reference::ImageRef;
use cri_config::RegistryConfig;

/// containerd's dial timeout for registries.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The `client_id` containerd sends when trading an identity token.
const OAUTH_CLIENT_ID: &str = "containerd-client";

/// How many registry clients [`ClientCache`] keeps before it starts over.
const MAX_CACHED_CLIENTS: usize = 64;

/// Registry clients kept from one pull to the next, one per host setting
/// and credentials: their connection pools, TLS setup and bearer tokens
/// are reused, where a new client would load the root certificates,
/// dial, and probe `/v2/` again. Credentials are part of the key, so a
/// pull never uses a token obtained with another pull's credentials.
#[derive(Default)]
pub struct ClientCache {
    clients: Mutex<HashMap<String, Client>>,
}

impl std::fmt::Debug for ClientCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("ClientCache")
            .field("clients", &len)
            .finish()
    }
}

impl ClientCache {
    /// The client under `key`, built by `build` when there is none.
    fn get_or_build(&self, key: String, build: impl FnOnce() -> Result<Client>) -> Result<Client> {
        if let Some(client) = self
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok(client.clone());
        }
        let client = build()?;
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if clients.len() >= MAX_CACHED_CLIENTS {
            clients.clear();
        }
        Ok(clients.entry(key).or_insert(client).clone())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// One usable registry endpoint.
struct HostClient {
    host: RegistryHost,
    client: Client,
    auth: RegistryAuth,
    /// What oci-client is told the registry is: `host[:port][/prefix]`.
    registry: String,
    /// Whether requests carry `?ns=<origin>` (any host but the origin).
    mirror: bool,
}

/// The registry side of one pull.
pub struct Remote {
    reference: ImageRef,
    hosts: Vec<HostClient>,
    progress: Arc<Progress>,
}

/// How a host failed a request: a 404 tries the next host quietly.
enum HostFailure {
    NotFound,
    Failed(ImageError),
}

impl Remote {
    /// Prepares a client per host, taken from `cache` when a pull with
    /// the same host settings and credentials (`auth_key` tells them
    /// apart) made one before. A host with a setting this client
    /// cannot honour (client certificates, extra headers, an API root not
    /// ending in `/v2`) fails the pull, naming the file, host and key.
    pub async fn connect(
        reference: &ImageRef,
        hosts: Vec<RegistryHost>,
        (auth, auth_key): (Option<&AuthConfig>, &str),
        registry: &RegistryConfig,
        cache: &ClientCache,
        progress: Arc<Progress>,
    ) -> Result<Self> {
        let config_error = |message: String| ImageError::Config {
            reference: reference.to_string(),
            message,
        };
        let mut clients = Vec::new();
        for host in hosts {
            // Never talk to a host without a setting it was given (a client
            // certificate, a header, its own API root): refuse the pull.
            if let Some(setting) = host.unsupported_setting() {
                return Err(config_error(format!(
                    "{}: host {}: `{setting}` is not supported by cri-server's registry client",
                    host.origin,
                    host.url()
                )));
            }
            let prefix = host.path.strip_suffix("/v2").unwrap_or_default();
            let registry_name = format!("{}{prefix}", host.host);
            let mirror = registry_name != reference.domain();
            let mut certificates = Vec::new();
            for path in &host.ca_certs {
                let data = tokio::fs::read(path)
                    .await
                    .map_err(|e| config_error(format!("read CA {}: {e}", path.display())))?;
                certificates.push(Certificate {
                    encoding: CertificateEncoding::Pem,
                    data,
                });
            }
            let config = ClientConfig {
                protocol: match host.scheme {
                    Scheme::Http => ClientProtocol::Http,
                    Scheme::Https => ClientProtocol::Https,
                },
                accept_invalid_certificates: host.skip_verify.unwrap_or(false),
                extra_root_certificates: certificates.clone(),
                platform_resolver: None,
                connect_timeout: Some(CONNECT_TIMEOUT),
                ..ClientConfig::default()
            };
            let key = format!(
                "{}\n{:?}\n{:?}\n{:?}\n{auth_key}",
                host.url(),
                host.scheme,
                host.skip_verify,
                host.ca_certs
            );
            let client = cache.get_or_build(key, || {
                Client::try_from(config)
                    .map_err(|e| config_error(format!("registry client for {}: {e}", host.host)))
            })?;
            let credentials = credentials_for(auth, registry, &host.host)
                .map_err(|e| config_error(e.to_string()))?;
            let auth = match credentials {
                Credentials::Anonymous => RegistryAuth::Anonymous,
                Credentials::Basic { username, password } => {
                    RegistryAuth::Basic(username, password.expose().to_owned())
                }
                Credentials::RegistryToken(token) => {
                    RegistryAuth::Bearer(token.expose().to_owned())
                }
                Credentials::IdentityToken(token) => {
                    let access = exchange_identity_token(
                        &host,
                        &registry_name,
                        reference,
                        token.expose(),
                        &certificates,
                        &progress,
                    )
                    .await?;
                    RegistryAuth::Bearer(access)
                }
            };
            client.store_auth_if_needed(&registry_name, &auth).await;
            clients.push(HostClient {
                host,
                client,
                auth,
                registry: registry_name,
                mirror,
            });
        }
        if clients.is_empty() {
            return Err(config_error(format!(
                "no usable registry host for {}",
                reference.domain()
            )));
        }
        Ok(Self {
            reference: reference.clone(),
            hosts: clients,
            progress,
        })
    }

    /// The reference as oci-client addresses it on `host`.
    fn oci_reference(&self, host: &HostClient, digest: Option<&str>) -> Reference {
        let registry = self.reference.domain().to_owned();
        let repository = self.reference.path().to_owned();
        let mut reference = match (digest.or(self.reference.digest()), self.reference.tag()) {
            (Some(d), _) => Reference::with_digest(registry, repository, d.to_owned()),
            (None, Some(t)) => Reference::with_tag(registry, repository, t.to_owned()),
            (None, None) => Reference::with_tag(registry, repository, "latest".to_owned()),
        };
        if host.mirror {
            reference.set_mirror_registry(host.registry.clone());
        }
        reference
    }

    fn hosts_tried(&self) -> String {
        self.hosts
            .iter()
            .map(|h| h.host.host.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Resolves the reference: the descriptor and body of its manifest or
    /// index. Tags go to hosts that may resolve, digests to any puller.
    pub async fn resolve(&self) -> Result<(Descriptor, Bytes)> {
        let by_digest = self.reference.digest().is_some();
        let mut first_error = None;
        for host in &self.hosts {
            let caps = host.host.capabilities;
            if !caps.pull || (!by_digest && !caps.resolve) {
                continue;
            }
            match self.get_manifest(host, None).await {
                Ok(found) => return Ok(found),
                Err(HostFailure::NotFound) => {
                    tracing::info!(host = %host.host.host, reference = %self.reference, "trying next host: not found");
                }
                Err(HostFailure::Failed(e)) => {
                    tracing::info!(host = %host.host.host, error = %e, "trying next host");
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| ImageError::RemoteNotFound {
            reference: self.reference.to_string(),
            hosts: self.hosts_tried(),
        }))
    }

    /// The body of the manifest `desc` (a child of an index).
    pub async fn fetch_manifest(&self, desc: &Descriptor) -> Result<Bytes> {
        let mut first_error = None;
        for host in self.hosts.iter().filter(|h| h.host.capabilities.pull) {
            match self.get_manifest(host, Some(&desc.digest)).await {
                Ok((_, body)) => return Ok(body),
                Err(HostFailure::NotFound) => {}
                Err(HostFailure::Failed(e)) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| ImageError::RemoteNotFound {
            reference: self.reference.with_digest(&desc.digest).to_string(),
            hosts: self.hosts_tried(),
        }))
    }

    async fn get_manifest(
        &self,
        host: &HostClient,
        digest: Option<&str>,
    ) -> Result<(Descriptor, Bytes), HostFailure> {
        let reference = self.oci_reference(host, digest);
        let guard = self.progress.request();
        let fetched = host
            .client
            .pull_manifest_raw(&reference, &host.auth, media::ACCEPTED_MANIFESTS)
            .await;
        drop(guard);
        let (body, _) = fetched.map_err(|e| self.classify(host, e))?;
        self.progress.received(body.len());
        let digest = sha256_digest(&body);
        let wanted = reference.digest().map(str::to_owned);
        if let Some(want) = wanted.filter(|w| *w != digest) {
            return Err(HostFailure::Failed(ImageError::BadContent {
                reference: self.reference.to_string(),
                digest: want,
                message: format!("manifest from {} has digest {digest}", host.host.host),
            }));
        }
        let media_type = detect_media_type(&body).ok_or_else(|| {
            HostFailure::Failed(ImageError::BadContent {
                reference: self.reference.to_string(),
                digest: digest.clone(),
                message: "manifest is not JSON with a known media type".to_owned(),
            })
        })?;
        let desc = Descriptor {
            media_type,
            digest,
            size: i64::try_from(body.len()).unwrap_or(i64::MAX),
            annotations: Default::default(),
        };
        Ok((desc, body))
    }

    /// Opens the blob `desc` on the first host that serves it, counting
    /// its body as progress.
    ///
    /// The body goes into containerd's content store, which hashes what
    /// it is given and refuses the commit unless the size and digest are
    /// the descriptor's; hashing it here too cost a fifth of the daemon's
    /// CPU in a large pull. `oci-client` hashes every full (200) answer,
    /// so a non-empty blob is asked for as the range `bytes=0-`, which a
    /// registry answers with the whole blob as partial content (206) that
    /// is passed on as it comes. A registry that ignores ranges answers
    /// 200, and that body is still hashed here; a partial answer of
    /// another length is dropped for a plain request.
    pub async fn open_blob(
        &self,
        desc: &Descriptor,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>> {
        let mut first_error = None;
        for host in self.hosts.iter().filter(|h| h.host.capabilities.pull) {
            let reference = self.oci_reference(host, None);
            let guard = self.progress.request();
            let plain = || {
                host.client
                    .pull_blob_stream(&reference, desc.digest.as_str())
            };
            let opened = match u64::try_from(desc.size).ok().filter(|&n| n > 0) {
                Some(whole) => match host
                    .client
                    .pull_blob_stream_partial(&reference, desc.digest.as_str(), 0, None)
                    .await
                {
                    Ok(BlobResponse::Full(sized)) => Ok(sized),
                    // The whole blob, as a range.
                    Ok(BlobResponse::Partial(sized)) if sized.content_length == Some(whole) => {
                        Ok(sized)
                    }
                    // A part of it only: the whole blob, hashed here.
                    Ok(BlobResponse::Partial(_)) => plain().await,
                    Err(e) => Err(e),
                },
                // No range of an empty blob.
                None => plain().await,
            };
            match opened {
                Ok(sized) => {
                    return Ok(
                        Counted::new(sized.stream, Arc::clone(&self.progress), guard).boxed(),
                    );
                }
                Err(e) => match self.classify(host, e) {
                    HostFailure::NotFound => {}
                    HostFailure::Failed(e) => {
                        first_error.get_or_insert(e);
                    }
                },
            }
        }
        Err(first_error.unwrap_or_else(|| ImageError::RemoteNotFound {
            reference: format!("{}@{}", self.reference.name(), desc.digest),
            hosts: self.hosts_tried(),
        }))
    }

    /// The host an error of a blob stream came from is not known; this
    /// names the hosts for a stream that broke mid-way.
    pub fn stream_error(&self, digest: &str, error: &std::io::Error) -> ImageError {
        let message = format!("reading blob {digest}: {}", cri_api::error_chain(error));
        let bad_digest = error
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<DigestError>().is_some());
        if bad_digest
            || message.contains("digest") && message.contains("mismatch")
            || message.contains("Verification")
        {
            ImageError::BadContent {
                reference: self.reference.to_string(),
                digest: digest.to_owned(),
                message,
            }
        } else {
            ImageError::Network {
                reference: self.reference.to_string(),
                host: self.hosts_tried(),
                message,
            }
        }
    }

    fn classify(&self, host: &HostClient, error: OciDistributionError) -> HostFailure {
        let reference = self.reference.to_string();
        let name = host.host.host.clone();
        let unauthorized = |message: String| {
            HostFailure::Failed(ImageError::Unauthorized {
                reference: reference.clone(),
                registry: name.clone(),
                message,
            })
        };
        match &error {
            OciDistributionError::UnauthorizedError { .. } => {
                unauthorized("401 Unauthorized: missing or wrong credentials".to_owned())
            }
            OciDistributionError::AuthenticationFailure(message) => unauthorized(message.clone()),
            OciDistributionError::RegistryError { envelope, .. } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
                if codes.iter().any(|c| {
                    matches!(
                        c,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::BlobUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::NotFound
                    )
                }) {
                    HostFailure::NotFound
                } else if codes
                    .iter()
                    .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
                {
                    unauthorized(envelope.to_string())
                } else {
                    HostFailure::Failed(ImageError::Registry {
                        reference,
                        host: name,
                        message: envelope.to_string(),
                    })
                }
            }
            OciDistributionError::ServerError { code: 404, .. } => HostFailure::NotFound,
            OciDistributionError::ServerError {
                code: 401 | 403,
                message,
                ..
            } => unauthorized(message.clone()),
            OciDistributionError::ServerError { code, message, .. } => {
                HostFailure::Failed(ImageError::Registry {
                    reference,
                    host: name,
                    message: format!("HTTP {code}: {message}"),
                })
            }
            OciDistributionError::RequestError(_) | OciDistributionError::IoError(_) => {
                HostFailure::Failed(ImageError::Network {
                    reference,
                    host: name,
                    message: cri_api::error_chain(&error),
                })
            }
            OciDistributionError::DigestError(_) => HostFailure::Failed(ImageError::BadContent {
                reference,
                digest: String::new(),
                message: format!("from {name}: {error}"),
            }),
            _ => HostFailure::Failed(ImageError::Registry {
                reference,
                host: name,
                message: cri_api::error_chain(&error),
            }),
        }
    }
}

/// Trades an identity (refresh) token for an access token the way
/// containerd's authorizer does: the registry's Bearer challenge names the
/// token server, which gets a `grant_type=refresh_token` POST.
async fn exchange_identity_token(
    host: &RegistryHost,
    registry: &str,
    reference: &ImageRef,
    token: &str,
    certificates: &[Certificate],
    progress: &Arc<Progress>,
) -> Result<String> {
    let failed = |message: String| ImageError::Unauthorized {
        reference: reference.to_string(),
        registry: host.host.clone(),
        message,
    };
    let network = |e: reqwest::Error| ImageError::Network {
        reference: reference.to_string(),
        host: host.host.clone(),
        message: cri_api::error_chain(&e),
    };
    let mut builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .danger_accept_invalid_certs(host.skip_verify.unwrap_or(false));
    let mut roots = Vec::new();
    for cert in certificates {
        roots.push(
            reqwest::Certificate::from_pem(&cert.data)
                .map_err(|e| failed(format!("CA certificate: {e}")))?,
        );
    }
    if !roots.is_empty() {
        builder = builder.tls_certs_merge(roots);
    }
    let http = builder.build().map_err(network)?;
    let _guard = progress.request();
    let ping = http
        .get(format!("{}://{registry}/v2/", host.scheme.as_str()))
        .send()
        .await
        .map_err(network)?;
    let challenge = ping
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_bearer_challenge)
        .ok_or_else(|| {
            failed(
                "an identity token needs a Bearer token server, and the registry names none"
                    .to_owned(),
            )
        })?;
    let scope = format!("repository:{}:pull", reference.path());
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", token),
        ("client_id", OAUTH_CLIENT_ID),
        ("scope", scope.as_str()),
    ];
    if let Some(service) = &challenge.service {
        form.push(("service", service.as_str()));
    }
    let body = form
        .iter()
        .map(|(k, v)| format!("{k}={}", form_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let response = http
        .post(&challenge.realm)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .send()
        .await
        .map_err(network)?;
    let status = response.status();
    let text = response.text().await.map_err(network)?;
    if !status.is_success() {
        return Err(failed(format!(
            "token server {} answered {status}",
            challenge.realm
        )));
    }
    #[derive(serde::Deserialize)]
    struct TokenResponse {
        access_token: Option<String>,
        token: Option<String>,
    }
    let parsed: TokenResponse =
        serde_json::from_str(&text).map_err(|e| failed(format!("token server reply: {e}")))?;
    parsed
        .access_token
        .or(parsed.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| failed("token server returned no access token".to_owned()))
}

/// A `Bearer realm=...,service=...` challenge.
#[derive(Debug, PartialEq, Eq)]
struct BearerChallenge {
    realm: String,
    service: Option<String>,
}

fn parse_bearer_challenge(header: &str) -> Option<BearerChallenge> {
    let rest = header.trim();
    let (scheme, params) = rest.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut service = None;
    let mut remaining = params.trim();
    while !remaining.is_empty() {
        let (key, after) = remaining.split_once('=')?;
        let key = key.trim().trim_start_matches(',').trim();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            match after.find(',') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            }
        };
        match key.to_ascii_lowercase().as_str() {
            "realm" => realm = Some(value.to_owned()),
            "service" => service = Some(value.to_owned()),
            _ => {}
        }
        remaining = next.trim_start().trim_start_matches(',').trim_start();
    }
    Some(BearerChallenge {
        realm: realm?,
        service,
    })
}

/// `application/x-www-form-urlencoded` escaping.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bearer_challenges() {
        assert_eq!(
            parse_bearer_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io""#
            ),
            Some(BearerChallenge {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into())
            })
        );
        assert_eq!(
            parse_bearer_challenge("bearer realm=https://t.example/token"),
            Some(BearerChallenge {
                realm: "https://t.example/token".into(),
                service: None
            })
        );
        assert_eq!(parse_bearer_challenge(r#"Basic realm="Registry""#), None);
        assert_eq!(parse_bearer_challenge(r#"Bearer service="x""#), None);
    }

    #[test]
    fn form_encoding() {
        assert_eq!(
            form_encode("repository:a/b:pull"),
            "repository%3Aa%2Fb%3Apull"
        );
        assert_eq!(form_encode("a b"), "a+b");
    }

    async fn connect(cache: &ClientCache, reference: &str, auth_key: &str) -> Remote {
        let reference = ImageRef::parse(reference).unwrap();
        let registry = RegistryConfig::default();
        let hosts = super::super::hosts::resolve(&registry, reference.domain()).unwrap();
        Remote::connect(
            &reference,
            hosts,
            (None, auth_key),
            &registry,
            cache,
            Arc::new(Progress::default()),
        )
        .await
        .map_err(|e| e.to_string())
        .unwrap()
    }

    #[tokio::test]
    async fn clients_are_reused_per_host_and_credentials() {
        let cache = ClientCache::default();
        connect(&cache, "127.0.0.1:5000/a:1", "").await;
        connect(&cache, "127.0.0.1:5000/b:2", "").await;
        assert_eq!(cache.len(), 1, "same host, same credentials: one client");
        connect(&cache, "127.0.0.1:5000/a:1", "other credentials").await;
        assert_eq!(cache.len(), 2, "other credentials get their own client");
        connect(&cache, "127.0.0.1:5001/a:1", "").await;
        assert_eq!(cache.len(), 3, "another host gets its own client");
    }
}
