//! Which registry hosts a pull tries, in order, as containerd resolves them: `hosts.toml` directories under `registry.config_path` (mirrors in file order, then the server), or else the older `registry.mirrors` / `registry.configs` sections; plain HTTP for localhost registries.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use cri_config::RegistryConfig;

/// The host the `docker.io` domain is served from.
const DOCKER_HUB_HOST: &str = "registry-1.docker.io";
const DEFAULT_PATH: &str = "/v2";

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// What a host may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    pub pull: bool,
    pub resolve: bool,
    pub push: bool,
}

impl Capabilities {
    const ALL: Capabilities = Capabilities {
        pull: true,
        resolve: true,
        push: true,
    };
    const PULL_RESOLVE: Capabilities = Capabilities {
        pull: true,
        resolve: true,
        push: false,
    };
}

/// One endpoint a pull may talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryHost {
    pub scheme: Scheme,
    /// `host[:port]`.
    pub host: String,
    /// The API root, `/v2` unless configured otherwise.
    pub path: String,
    pub capabilities: Capabilities,
    pub skip_verify: Option<bool>,
    /// CA bundles (PEM) trusted in addition to the system roots.
    pub ca_certs: Vec<PathBuf>,
    /// Client certificate and key files (key `None`: in the cert file).
    pub client_pairs: Vec<(PathBuf, Option<PathBuf>)>,
    /// Extra headers sent to this host.
    pub header: BTreeMap<String, Vec<String>>,
    /// Where the entry came from (a `hosts.toml`, a `certs.d` directory,
    /// the CRI plugin's `registry` section), for messages.
    pub origin: String,
}

/// Where the older registry settings live in the config file.
const LEGACY_ORIGIN: &str = r#"[plugins."io.containerd.grpc.v1.cri".registry]"#;

impl RegistryHost {
    fn unset() -> Self {
        Self {
            scheme: Scheme::Https,
            host: String::new(),
            path: DEFAULT_PATH.to_owned(),
            capabilities: Capabilities::ALL,
            skip_verify: None,
            ca_certs: Vec::new(),
            client_pairs: Vec::new(),
            header: BTreeMap::new(),
            origin: String::new(),
        }
    }

    /// The setting of this entry that the registry client cannot honour:
    /// client certificates, extra headers, or an API root that is not
    /// `.../v2` (`override_path`). Such a host is refused, never used
    /// without the setting.
    pub fn unsupported_setting(&self) -> Option<&'static str> {
        if !self.client_pairs.is_empty() {
            Some("client (client certificates)")
        } else if !self.header.is_empty() {
            Some("header")
        } else if !self.path.ends_with("/v2") {
            Some("override_path (an API root not ending in /v2)")
        } else {
            None
        }
    }

    /// `scheme://host/path`, for messages.
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme.as_str(), self.host, self.path)
    }
}

/// A registry configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct HostsError {
    pub path: String,
    pub message: String,
}

/// The hosts to try for images of `domain` (`docker.io`,
/// `registry.k8s.io`, `127.0.0.1:5000`), in order.
pub fn resolve(registry: &RegistryConfig, domain: &str) -> Result<Vec<RegistryHost>, HostsError> {
    let roots = registry.config_paths();
    if roots.is_empty() {
        legacy_hosts(registry, domain)
    } else {
        hosts_from_dirs(&roots, domain)
    }
}

/// `registry.config_path` mode (containerd's `ConfigureHosts`).
fn hosts_from_dirs(roots: &[PathBuf], domain: &str) -> Result<Vec<RegistryHost>, HostsError> {
    let mut hosts = match find_host_dir(roots, domain)? {
        Some(dir) => load_host_dir(&dir)?,
        None => vec![RegistryHost::unset()],
    };
    if let Some(last) = hosts.last_mut().filter(|h| h.host.is_empty()) {
        if domain == "docker.io" {
            last.scheme = Scheme::Https;
            last.host = DOCKER_HUB_HOST.to_owned();
        } else if is_localhost(domain) {
            last.host = domain.to_owned();
            last.scheme = Scheme::Http;
            last.skip_verify = Some(true);
        } else {
            last.host = domain.to_owned();
            last.scheme = Scheme::Https;
        }
        last.path = DEFAULT_PATH.to_owned();
        last.capabilities = Capabilities::ALL;
    }
    Ok(hosts)
}

/// The first existing of `<root>/<host_port_>`, `<root>/<host>`,
/// `<root>/_default` over the roots, in order.
fn find_host_dir(roots: &[PathBuf], domain: &str) -> Result<Option<PathBuf>, HostsError> {
    for root in roots {
        let mut candidates = Vec::new();
        let dir_name = host_directory(domain);
        if dir_name != domain {
            candidates.push(root.join(dir_name));
        }
        candidates.push(root.join(domain));
        candidates.push(root.join("_default"));
        for candidate in candidates {
            match std::fs::metadata(&candidate) {
                Ok(_) => return Ok(Some(candidate)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(HostsError {
                        path: candidate.display().to_string(),
                        message: e.to_string(),
                    })
                }
            }
        }
    }
    Ok(None)
}

/// `host:port` becomes `host_port_` in directory names.
fn host_directory(host: &str) -> String {
    match host.rfind(':') {
        Some(i) if i > 0 => format!("{}_{}_", &host[..i], &host[i + 1..]),
        _ => host.to_owned(),
    }
}

fn load_host_dir(dir: &Path) -> Result<Vec<RegistryHost>, HostsError> {
    let file = dir.join("hosts.toml");
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(HostsError {
                path: file.display().to_string(),
                message: e.to_string(),
            })
        }
    };
    if text.is_empty() {
        return load_cert_files(dir);
    }
    match parse_hosts_file(dir, &text) {
        Ok(mut hosts) => {
            for host in &mut hosts {
                host.origin = file.display().to_string();
            }
            Ok(hosts)
        }
        Err(message) => {
            // containerd logs the error and falls back to the certificates.
            tracing::error!(path = %file.display(), error = %message, "failed to decode hosts.toml");
            load_cert_files(dir)
        }
    }
}

/// Docker's `certs.d` layout: `*.crt` are CAs, `*.cert` (+ `*.key`) are
/// client pairs; one host entry to be completed with the origin.
fn load_cert_files(dir: &Path) -> Result<Vec<RegistryHost>, HostsError> {
    let mut host = RegistryHost::unset();
    host.origin = dir.display().to_string();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![host]),
        Err(e) => {
            return Err(HostsError {
                path: dir.display().to_string(),
                message: e.to_string(),
            })
        }
    };
    let mut names: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| !t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .collect();
    names.sort();
    for path in names {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if name.ends_with(".crt") {
            host.ca_certs.push(path.clone());
        }
        if let Some(stem) = name.strip_suffix(".cert") {
            let key = dir.join(format!("{stem}.key"));
            let key = key.exists().then_some(key);
            host.client_pairs.push((path.clone(), key));
        }
    }
    Ok(vec![host])
}

/// A `ca` / `client` value: one path or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<PathOrPair>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PathOrPair {
    Path(String),
    Pair(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum HeaderValue {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
struct HostFileConfig {
    capabilities: Option<Vec<String>>,
    ca: Option<OneOrMany>,
    client: Option<OneOrMany>,
    skip_verify: Option<bool>,
    header: Option<BTreeMap<String, HeaderValue>>,
    #[serde(default)]
    override_path: bool,
}

#[derive(Debug, Default, Deserialize)]
struct HostsFile {
    #[serde(default)]
    server: String,
    #[serde(flatten)]
    root: HostFileConfig,
    #[serde(default)]
    host: OrderedHosts,
}

/// `[host."..."]` tables in the order the file lists them.
#[derive(Debug, Default)]
struct OrderedHosts(Vec<(String, HostFileConfig)>);

impl<'de> Deserialize<'de> for OrderedHosts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor;
        impl<'de> Visitor<'de> for OrderedVisitor {
            type Value = OrderedHosts;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of hosts")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedHosts, A::Error> {
                let mut hosts = Vec::new();
                while let Some((name, config)) = map.next_entry::<String, HostFileConfig>()? {
                    hosts.push((name, config));
                }
                Ok(OrderedHosts(hosts))
            }
        }
        deserializer.deserialize_map(OrderedVisitor)
    }
}

/// Parses a `hosts.toml`: the `[host."..."]` entries in order, then the
/// `server` entry (an empty host when `server` is unset).
fn parse_hosts_file(base_dir: &Path, text: &str) -> Result<Vec<RegistryHost>, String> {
    let file: HostsFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut hosts = Vec::new();
    for (name, config) in file.host.0 {
        hosts.push(parse_host_config(&name, base_dir, config)?);
    }
    hosts.push(parse_host_config(&file.server, base_dir, file.root)?);
    Ok(hosts)
}

fn parse_host_config(
    server: &str,
    base_dir: &Path,
    config: HostFileConfig,
) -> Result<RegistryHost, String> {
    let mut result = RegistryHost::unset();
    if !server.is_empty() {
        let with_scheme = if server.starts_with("http") {
            server.to_owned()
        } else {
            format!("https://{server}")
        };
        let (scheme, rest) = with_scheme
            .split_once("://")
            .ok_or_else(|| format!("unable to parse server {server}"))?;
        result.scheme = match scheme {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => return Err(format!("unsupported scheme {other:?} in server {server}")),
        };
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], clean_path(&rest[i..])),
            None => (rest, String::new()),
        };
        if host.is_empty() {
            return Err(format!("unable to parse server {server}: no host"));
        }
        result.host = host.to_owned();
        result.path = if path.is_empty() || path == "/" {
            if config.override_path {
                String::new()
            } else {
                DEFAULT_PATH.to_owned()
            }
        } else if !path.ends_with("/v2") && !config.override_path {
            format!("{path}/v2")
        } else {
            path
        };
    }
    result.skip_verify = config.skip_verify;
    if let Some(capabilities) = config.capabilities.filter(|c| !c.is_empty()) {
        let mut caps = Capabilities {
            pull: false,
            resolve: false,
            push: false,
        };
        for c in capabilities {
            match c.to_ascii_lowercase().as_str() {
                "pull" => caps.pull = true,
                "resolve" => caps.resolve = true,
                "push" => caps.push = true,
                _ => return Err(format!("unknown capability {c}")),
            }
        }
        result.capabilities = caps;
    }
    let abs = |p: &str| {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base_dir.join(p)
        }
    };
    match config.ca {
        None => {}
        Some(OneOrMany::One(p)) => result.ca_certs.push(abs(&p)),
        Some(OneOrMany::Many(list)) => {
            for item in list {
                match item {
                    PathOrPair::Path(p) => result.ca_certs.push(abs(&p)),
                    PathOrPair::Pair(_) => return Err("invalid type for \"ca\"".to_owned()),
                }
            }
        }
    }
    match config.client {
        None => {}
        Some(OneOrMany::One(p)) => result.client_pairs.push((abs(&p), None)),
        Some(OneOrMany::Many(list)) => {
            for item in list {
                match item {
                    PathOrPair::Path(p) => result.client_pairs.push((abs(&p), None)),
                    PathOrPair::Pair(pair) => match pair.as_slice() {
                        [cert, key] => result.client_pairs.push((abs(cert), Some(abs(key)))),
                        _ => return Err(format!("invalid pair {pair:?} for \"client\"")),
                    },
                }
            }
        }
    }
    for (name, value) in config.header.unwrap_or_default() {
        let values = match value {
            HeaderValue::One(v) => vec![v],
            HeaderValue::Many(v) => v,
        };
        result.header.insert(name, values);
    }
    Ok(result)
}

/// `path.Clean` for the absolute URL paths hosts.toml uses.
fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The older `registry.mirrors` / `registry.configs` mode (containerd's
/// `registryEndpoints`): the mirrors of `domain` (or of `*`), then the
/// origin unless a mirror is the origin itself.
fn legacy_hosts(registry: &RegistryConfig, domain: &str) -> Result<Vec<RegistryHost>, HostsError> {
    let mut endpoints: Vec<String> = registry
        .mirrors
        .get(domain)
        .or_else(|| registry.mirrors.get("*"))
        .map(|m| m.endpoint.clone())
        .unwrap_or_default();
    let default_host = if domain == "docker.io" {
        DOCKER_HUB_HOST
    } else {
        domain
    };
    for endpoint in &mut endpoints {
        if !endpoint.contains("://") {
            let host = endpoint.split('/').next().unwrap_or_default();
            *endpoint = format!("{}://{endpoint}", default_scheme(host).as_str());
        }
    }
    let mut hosts = Vec::new();
    let mut has_origin = false;
    for endpoint in &endpoints {
        let invalid = |message: &str| HostsError {
            path: format!("registry.mirrors.\"{domain}\".endpoint {endpoint:?}"),
            message: message.to_owned(),
        };
        let (scheme, rest) = endpoint
            .split_once("://")
            .ok_or_else(|| invalid("no scheme"))?;
        let scheme = match scheme {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(invalid("scheme must be http or https")),
        };
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].to_owned()),
            None => (rest, String::new()),
        };
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        if host == domain {
            has_origin = true;
        }
        hosts.push(legacy_host(registry, scheme, host, path));
    }
    if !has_origin {
        hosts.push(legacy_host(
            registry,
            default_scheme(default_host),
            default_host,
            String::new(),
        ));
    }
    Ok(hosts)
}

fn legacy_host(
    registry: &RegistryConfig,
    scheme: Scheme,
    host: &str,
    path: String,
) -> RegistryHost {
    let mut result = RegistryHost::unset();
    result.scheme = scheme;
    result.host = host.to_owned();
    result.path = if path.is_empty() {
        DEFAULT_PATH.to_owned()
    } else {
        path
    };
    result.capabilities = Capabilities::PULL_RESOLVE;
    match registry.configs.get(host).and_then(|c| c.tls.as_ref()) {
        Some(tls) => {
            result.skip_verify = Some(tls.insecure_skip_verify);
            result.ca_certs.extend(tls.ca_file.clone());
            if let Some(cert) = &tls.cert_file {
                result
                    .client_pairs
                    .push((cert.clone(), tls.key_file.clone()));
            }
        }
        None if is_localhost(host) && scheme == Scheme::Http => result.skip_verify = Some(true),
        None => {}
    }
    result.header = registry.headers.clone();
    result.origin = LEGACY_ORIGIN.to_owned();
    result
}

/// Refuses, at start-up, registry settings the registry client cannot
/// honour, naming the file, the host and the key: every host directory
/// under `config_path`, or the older `registry` section's `headers` and
/// TLS client certificates.
pub fn check_supported(registry: &RegistryConfig) -> Result<(), HostsError> {
    let refuse = |host: &RegistryHost, setting: &str| {
        HostsError {
        path: host.origin.clone(),
        message: format!(
            "host {}: `{setting}` is not supported by cri-server's registry client; remove it, or keep this node on containerd's CRI plugin",
            host.url()
        ),
    }
    };
    let roots = registry.config_paths();
    if roots.is_empty() {
        // The older section: `headers` go to every host; a TLS client
        // certificate to the host it is configured for.
        let mut names: Vec<&String> = registry.configs.keys().collect();
        names.sort();
        if !registry.headers.is_empty() {
            let host = legacy_host(registry, Scheme::Https, "*", String::new());
            return Err(refuse(&host, "headers"));
        }
        for name in names {
            let host = legacy_host(registry, Scheme::Https, name, String::new());
            if let Some(setting) = host.unsupported_setting() {
                return Err(refuse(&host, setting));
            }
        }
        return Ok(());
    }
    for root in roots {
        let entries = match std::fs::read_dir(&root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(HostsError {
                    path: root.display().to_string(),
                    message: e.to_string(),
                })
            }
        };
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .map(|e| e.path())
            .collect();
        dirs.sort();
        for dir in dirs {
            for host in load_host_dir(&dir)? {
                if let Some(setting) = host.unsupported_setting() {
                    return Err(refuse(&host, setting));
                }
            }
        }
    }
    Ok(())
}

fn default_scheme(host: &str) -> Scheme {
    if is_localhost(host) {
        Scheme::Http
    } else {
        Scheme::Https
    }
}

/// `localhost` or a loopback address, with or without a port.
pub fn is_localhost(host: &str) -> bool {
    let bare = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        match host.rsplit_once(':') {
            Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        }
    };
    bare == "localhost"
        || bare
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cri_config::{RegistryHostConfig, RegistryMirror, RegistryTls};

    fn with_dirs(root: &Path) -> RegistryConfig {
        RegistryConfig {
            config_path: root.display().to_string(),
            ..RegistryConfig::default()
        }
    }

    fn urls(hosts: &[RegistryHost]) -> Vec<String> {
        hosts.iter().map(RegistryHost::url).collect()
    }

    fn write_hosts(root: &Path, dir: &str, text: &str) {
        let d = root.join(dir);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("hosts.toml"), text).unwrap();
    }

    #[test]
    fn no_host_dir_means_the_origin() {
        let root = tempfile::tempdir().unwrap();
        let reg = with_dirs(root.path());
        assert_eq!(
            urls(&resolve(&reg, "docker.io").unwrap()),
            ["https://registry-1.docker.io/v2"]
        );
        assert_eq!(
            urls(&resolve(&reg, "quay.io").unwrap()),
            ["https://quay.io/v2"]
        );
        let local = resolve(&reg, "127.0.0.1:5000").unwrap();
        assert_eq!(urls(&local), ["http://127.0.0.1:5000/v2"]);
        assert_eq!(local[0].skip_verify, Some(true));
    }

    #[test]
    fn mirrors_in_file_order_then_server() {
        let root = tempfile::tempdir().unwrap();
        write_hosts(
            root.path(),
            "registry.k8s.io",
            r#"
server = "https://registry.k8s.io"

[host."http://zzz.local:5000"]
  capabilities = ["pull", "resolve"]

[host."https://aaa.example/prefix"]
  capabilities = ["pull"]
  skip_verify = true
  ca = "certs/ca.pem"
  client = [["c.pem", "/abs/k.pem"]]
  [host."https://aaa.example/prefix".header]
    x-custom = "1"
"#,
        );
        let hosts = resolve(&with_dirs(root.path()), "registry.k8s.io").unwrap();
        assert_eq!(
            urls(&hosts),
            [
                "http://zzz.local:5000/v2",
                "https://aaa.example/prefix/v2",
                "https://registry.k8s.io/v2"
            ]
        );
        assert!(hosts[0].capabilities.resolve && !hosts[0].capabilities.push);
        assert!(hosts[1].capabilities.pull && !hosts[1].capabilities.resolve);
        assert_eq!(hosts[1].skip_verify, Some(true));
        let base = root.path().join("registry.k8s.io");
        assert_eq!(hosts[1].ca_certs, [base.join("certs/ca.pem")]);
        assert_eq!(
            hosts[1].client_pairs,
            [(base.join("c.pem"), Some(PathBuf::from("/abs/k.pem")))]
        );
        assert_eq!(hosts[1].header.get("x-custom").unwrap(), &["1".to_owned()]);
        assert_eq!(hosts[2].capabilities, Capabilities::ALL);
    }

    #[test]
    fn server_unset_falls_back_to_origin_and_port_dirs() {
        let root = tempfile::tempdir().unwrap();
        write_hosts(
            root.path(),
            "myreg.io_5000_",
            "[host.\"http://127.0.0.1:9\"]\n",
        );
        let hosts = resolve(&with_dirs(root.path()), "myreg.io:5000").unwrap();
        assert_eq!(
            urls(&hosts),
            ["http://127.0.0.1:9/v2", "https://myreg.io:5000/v2"]
        );
    }

    #[test]
    fn default_dir_applies_to_every_host() {
        let root = tempfile::tempdir().unwrap();
        write_hosts(
            root.path(),
            "_default",
            "[host.\"https://mirror.example\"]\n",
        );
        let hosts = resolve(&with_dirs(root.path()), "ghcr.io").unwrap();
        assert_eq!(
            urls(&hosts),
            ["https://mirror.example/v2", "https://ghcr.io/v2"]
        );
    }

    #[test]
    fn override_path_and_http_server() {
        let root = tempfile::tempdir().unwrap();
        write_hosts(
            root.path(),
            "x.io",
            "server = \"http://x.io:8080\"\n[host.\"https://m.example/api\"]\noverride_path = true\n",
        );
        let hosts = resolve(&with_dirs(root.path()), "x.io").unwrap();
        assert_eq!(
            urls(&hosts),
            ["https://m.example/api", "http://x.io:8080/v2"]
        );
    }

    #[test]
    fn unsupported_settings_are_refused_naming_file_host_and_key() {
        let cases = [
            (
                "[host.\"https://m.example\"]\n  client = \"/etc/c.pem\"\n",
                "`client",
            ),
            (
                "[host.\"https://m.example\"]\n  [host.\"https://m.example\".header]\n  x-token = \"t\"\n",
                "`header`",
            ),
            (
                "[host.\"https://m.example/api\"]\n  override_path = true\n",
                "`override_path",
            ),
        ];
        for (text, key) in cases {
            let root = tempfile::tempdir().unwrap();
            write_hosts(root.path(), "x.io", text);
            let err = check_supported(&with_dirs(root.path())).unwrap_err();
            let message = err.to_string();
            let file = root.path().join("x.io/hosts.toml");
            assert!(
                message.starts_with(&file.display().to_string()),
                "{message}"
            );
            assert!(message.contains("host https://m.example"), "{message}");
            assert!(message.contains(key), "{key}: {message}");
        }
        // A certs.d client pair is refused too; a CA alone is fine.
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("y.io")).unwrap();
        std::fs::write(root.path().join("y.io/ca.crt"), "pem").unwrap();
        check_supported(&with_dirs(root.path())).unwrap();
        std::fs::write(root.path().join("y.io/me.cert"), "pem").unwrap();
        let err = check_supported(&with_dirs(root.path())).unwrap_err();
        assert!(err.to_string().contains("`client"), "{err}");
    }

    #[test]
    fn legacy_headers_and_client_certificates_are_refused() {
        let headers = RegistryConfig {
            headers: BTreeMap::from([("X-Meta".to_owned(), vec!["1".to_owned()])]),
            ..RegistryConfig::default()
        };
        let err = check_supported(&headers).unwrap_err();
        assert!(err.to_string().contains("`headers`"), "{err}");
        let client = RegistryConfig {
            configs: BTreeMap::from([(
                "r.example".to_owned(),
                RegistryHostConfig {
                    auth: None,
                    tls: Some(RegistryTls {
                        cert_file: Some("/etc/c.pem".into()),
                        ..RegistryTls::default()
                    }),
                },
            )]),
            ..RegistryConfig::default()
        };
        let err = check_supported(&client).unwrap_err();
        assert!(err.to_string().contains("host https://r.example"), "{err}");
        check_supported(&RegistryConfig::default()).unwrap();
    }

    #[test]
    fn bad_hosts_toml_falls_back_to_cert_files() {
        let root = tempfile::tempdir().unwrap();
        write_hosts(root.path(), "x.io", "capabilities = [\"fly\"]\n");
        std::fs::write(root.path().join("x.io/ca.crt"), "pem").unwrap();
        let hosts = resolve(&with_dirs(root.path()), "x.io").unwrap();
        assert_eq!(urls(&hosts), ["https://x.io/v2"]);
        assert_eq!(hosts[0].ca_certs, [root.path().join("x.io/ca.crt")]);
    }

    #[test]
    fn legacy_mirrors_then_origin() {
        let reg = RegistryConfig {
            mirrors: BTreeMap::from([(
                "docker.io".to_owned(),
                RegistryMirror {
                    endpoint: vec![
                        "mirror.example:5000".to_owned(),
                        "http://localhost:5001".to_owned(),
                    ],
                },
            )]),
            configs: BTreeMap::from([(
                "mirror.example:5000".to_owned(),
                RegistryHostConfig {
                    auth: None,
                    tls: Some(RegistryTls {
                        insecure_skip_verify: true,
                        ..RegistryTls::default()
                    }),
                },
            )]),
            ..RegistryConfig::default()
        };
        let hosts = resolve(&reg, "docker.io").unwrap();
        assert_eq!(
            urls(&hosts),
            [
                "https://mirror.example:5000/v2",
                "http://localhost:5001/v2",
                "https://registry-1.docker.io/v2"
            ]
        );
        assert_eq!(hosts[0].skip_verify, Some(true));
        assert_eq!(hosts[0].capabilities, Capabilities::PULL_RESOLVE);
        assert_eq!(
            urls(&resolve(&reg, "localhost:5000").unwrap()),
            ["http://localhost:5000/v2"]
        );
    }

    #[test]
    fn wildcard_mirror_and_origin_listed_once() {
        let reg = RegistryConfig {
            mirrors: BTreeMap::from([(
                "*".to_owned(),
                RegistryMirror {
                    endpoint: vec!["https://q.io".to_owned()],
                },
            )]),
            ..RegistryConfig::default()
        };
        assert_eq!(urls(&resolve(&reg, "q.io").unwrap()), ["https://q.io/v2"]);
        assert_eq!(
            urls(&resolve(&reg, "r.io").unwrap()),
            ["https://q.io/v2", "https://r.io/v2"]
        );
    }

    #[test]
    fn localhost_detection() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1",
            "127.0.0.1:5000",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_localhost(h), "{h}");
        }
        for h in ["example.com", "10.0.0.1:5000", "localhost.example"] {
            assert!(!is_localhost(h), "{h}");
        }
    }
}
