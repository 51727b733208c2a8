//! Registry settings (containerd's `Registry`, `registry.*` in the CRI
//! plugin section) and the `Secret` type that keeps credentials out of
//! `Debug` output and status JSON.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::values::deserialize_opt_path;

/// A credential. `Debug` prints `<redacted>`; there is no `Display` and no
/// `Serialize`, so it only leaves through [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value itself, for the code that sends it to a registry.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("<redacted>")
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Refuses non-strings without echoing the value into the error.
        struct SecretVisitor;
        impl Visitor<'_> for SecretVisitor {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret::new(v))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Secret, E> {
                Err(E::custom("invalid type: boolean, expected a string"))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Secret, E> {
                Err(E::custom("invalid type: integer, expected a string"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Secret, E> {
                Err(E::custom("invalid type: integer, expected a string"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Secret, E> {
                Err(E::custom("invalid type: float, expected a string"))
            }
        }
        deserializer.deserialize_string(SecretVisitor)
    }
}

/// `registry.*`: where and how images are pulled.
#[derive(Clone, Default, PartialEq)]
pub struct RegistryConfig {
    /// `config_path`: colon-separated `hosts.toml` directories. When set,
    /// `mirrors` and `configs.*.tls` must be empty (containerd's rule).
    pub config_path: String,
    /// `mirrors.<host>.endpoint` (deprecated in containerd, still honoured).
    pub mirrors: BTreeMap<String, RegistryMirror>,
    /// `configs.<host>.{auth,tls}`; the deprecated `auths.<url>` table is
    /// folded in here keyed by host, as containerd does.
    pub configs: BTreeMap<String, RegistryHostConfig>,
    /// `headers`: extra HTTP headers sent to every registry.
    pub headers: BTreeMap<String, Vec<String>>,
}

impl RegistryConfig {
    /// The directories named by `config_path`, in order.
    pub fn config_paths(&self) -> Vec<PathBuf> {
        self.config_path
            .split(':')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect()
    }

    /// `headers` with the values of credential-bearing headers redacted.
    pub fn redacted_headers(&self) -> BTreeMap<&str, Vec<&str>> {
        self.headers
            .iter()
            .map(|(name, values)| {
                let values = if is_sensitive_header(name) {
                    values.iter().map(|_| REDACTED).collect()
                } else {
                    values.iter().map(String::as_str).collect()
                };
                (name.as_str(), values)
            })
            .collect()
    }
}

impl fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryConfig")
            .field("config_path", &self.config_path)
            .field("mirrors", &self.mirrors)
            .field("configs", &self.configs)
            .field("headers", &self.redacted_headers())
            .finish()
    }
}

/// What stands in for a secret in `Debug` and status output.
pub const REDACTED: &str = "<redacted>";

/// Headers whose values are credentials.
pub fn is_sensitive_header(name: &str) -> bool {
    ["authorization", "proxy-authorization", "cookie"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

/// `mirrors.<host>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RegistryMirror {
    /// `endpoint`: URLs tried in order.
    pub endpoint: Vec<String>,
}

/// `configs.<host>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RegistryHostConfig {
    pub auth: Option<RegistryAuth>,
    /// Deprecated in containerd in favour of `config_path`.
    pub tls: Option<RegistryTls>,
}

/// `configs.<host>.auth` (and the deprecated `auths.<url>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RegistryAuth {
    pub username: String,
    pub password: Secret,
    /// base64 of `username:password`.
    pub auth: Secret,
    #[serde(rename = "identitytoken")]
    pub identity_token: Secret,
}

/// `configs.<host>.tls`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RegistryTls {
    pub insecure_skip_verify: bool,
    #[serde(deserialize_with = "deserialize_opt_path")]
    pub ca_file: Option<PathBuf>,
    #[serde(deserialize_with = "deserialize_opt_path")]
    pub cert_file: Option<PathBuf>,
    #[serde(deserialize_with = "deserialize_opt_path")]
    pub key_file: Option<PathBuf>,
}

/// `registry` as written in a plugin section; unset keys keep what was
/// there before.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RawRegistry {
    config_path: Option<String>,
    mirrors: Option<BTreeMap<String, RegistryMirror>>,
    configs: Option<BTreeMap<String, RegistryHostConfig>>,
    auths: Option<BTreeMap<String, RegistryAuth>>,
    headers: Option<BTreeMap<String, Vec<String>>>,
}

impl RawRegistry {
    pub(super) fn apply(self, registry: &mut RegistryConfig) {
        if let Some(v) = self.config_path {
            registry.config_path = v;
        }
        if let Some(v) = self.mirrors {
            registry.mirrors = v;
        }
        if let Some(v) = self.configs {
            registry.configs = v;
        }
        if let Some(v) = self.headers {
            registry.headers = v;
        }
        // containerd maps the deprecated `auths.<url>` onto `configs.<host>`.
        for (endpoint, auth) in self.auths.unwrap_or_default() {
            let host = auth_host(&endpoint);
            registry.configs.entry(host).or_default().auth = Some(auth);
        }
    }
}

/// The host of an `auths` key: the URL's host when it has a scheme, the
/// key itself otherwise.
fn auth_host(endpoint: &str) -> String {
    match endpoint.split_once("://") {
        Some((_, rest)) => rest
            .split(['/', '?', '#'])
            .next()
            .unwrap_or(rest)
            .to_owned(),
        None => endpoint.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(endpoint: &str, expected: &str) {
        assert_eq!(auth_host(endpoint), expected);
    }

    #[test]
    fn auths_key_becomes_host() {
        check("https://registry.example.com/v2/", "registry.example.com");
        check("http://10.0.0.1:5000", "10.0.0.1:5000");
        check("registry.example.com", "registry.example.com");
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "<redacted>");
        assert_eq!(format!("{:?}", Secret::default()), "\"\"");
    }

    #[test]
    fn sensitive_headers_are_redacted() {
        let registry = RegistryConfig {
            headers: BTreeMap::from([
                ("Authorization".to_owned(), vec!["Bearer abc".to_owned()]),
                (
                    "X-Meta-Source-Client".to_owned(),
                    vec!["azure/aks".to_owned()],
                ),
            ]),
            ..RegistryConfig::default()
        };
        let text = format!("{registry:?}");
        assert!(!text.contains("Bearer abc"), "{text}");
        assert!(text.contains("azure/aks"), "{text}");
    }

    #[test]
    fn config_path_splits_on_colons() {
        let registry = RegistryConfig {
            config_path: "/etc/containerd/certs.d:/etc/docker/certs.d".to_owned(),
            ..RegistryConfig::default()
        };
        assert_eq!(
            registry.config_paths(),
            vec![
                PathBuf::from("/etc/containerd/certs.d"),
                PathBuf::from("/etc/docker/certs.d")
            ]
        );
    }
}
