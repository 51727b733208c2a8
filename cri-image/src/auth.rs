//! Registry credentials: the CRI `AuthConfig` of a pull (or `registry.configs.<host>.auth`) turned into what a host is sent, as containerd's `ParseAuth` does, plus registry tokens. Secrets never reach `Debug` or logs.

use std::fmt;

use base64::Engine;
use cri_api::v1::AuthConfig;

use cri_config::{RegistryAuth as ConfiguredAuth, RegistryConfig, Secret};

/// What a pull presents to one registry host.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Anonymous,
    /// Username and password (HTTP basic, or sent to the token server).
    Basic {
        username: String,
        password: Secret,
    },
    /// An OAuth2 refresh token traded for an access token.
    IdentityToken(Secret),
    /// A bearer token sent to the registry as is.
    RegistryToken(Secret),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username:?}, <redacted>)"),
            Credentials::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
            Credentials::RegistryToken(_) => f.write_str("RegistryToken(<redacted>)"),
        }
    }
}

/// Credentials that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(pub String);

/// The credentials to present to `host` (the endpoint actually
/// contacted, a mirror or the origin): the request's auth, or when the
/// request has none, the configured auth for that host.
pub fn credentials_for(
    request: Option<&AuthConfig>,
    registry: &RegistryConfig,
    host: &str,
) -> Result<Credentials, AuthError> {
    match request {
        Some(auth) => parse_auth(auth, host),
        None => match registry.configs.get(host).and_then(|c| c.auth.as_ref()) {
            Some(configured) => parse_auth(&from_config(configured), host),
            None => Ok(Credentials::Anonymous),
        },
    }
}

fn from_config(auth: &ConfiguredAuth) -> AuthConfig {
    AuthConfig {
        username: auth.username.clone(),
        password: auth.password.expose().to_owned(),
        auth: auth.auth.expose().to_owned(),
        identity_token: auth.identity_token.expose().to_owned(),
        ..AuthConfig::default()
    }
}

/// containerd's `ParseAuth`, plus `registry_token`. Auth whose
/// `server_address` names another host is not sent.
pub fn parse_auth(auth: &AuthConfig, host: &str) -> Result<Credentials, AuthError> {
    if !auth.server_address.is_empty() && server_host(&auth.server_address) != host {
        return Ok(Credentials::Anonymous);
    }
    if !auth.username.is_empty() {
        return Ok(Credentials::Basic {
            username: auth.username.clone(),
            password: Secret::new(auth.password.clone()),
        });
    }
    if !auth.identity_token.is_empty() {
        return Ok(Credentials::IdentityToken(Secret::new(
            auth.identity_token.clone(),
        )));
    }
    if !auth.auth.is_empty() {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.auth.trim())
            .map_err(|e| AuthError(format!("auth is not base64: {e}")))?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| AuthError("decoded auth is not UTF-8".to_owned()))?;
        let (user, password) = decoded.split_once(':').ok_or_else(|| {
            AuthError("invalid decoded auth: no ':' between user and password".to_owned())
        })?;
        return Ok(Credentials::Basic {
            username: user.to_owned(),
            password: Secret::new(password.trim_matches('\0')),
        });
    }
    if !auth.registry_token.is_empty() {
        return Ok(Credentials::RegistryToken(Secret::new(
            auth.registry_token.clone(),
        )));
    }
    Ok(Credentials::Anonymous)
}

/// The host of a `server_address`: the URL's host, or the value itself
/// when it has no scheme (`registry.example.com:5000`).
fn server_host(address: &str) -> &str {
    let rest = address.split_once("://").map_or(address, |(_, rest)| rest);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(auth: AuthConfig, host: &str, expected: Result<Credentials, ()>) {
        assert_eq!(parse_auth(&auth, host).map_err(|_| ()), expected);
    }

    fn basic(u: &str, p: &str) -> Credentials {
        Credentials::Basic {
            username: u.to_owned(),
            password: Secret::new(p),
        }
    }

    #[test]
    fn username_password_and_auth() {
        let a = AuthConfig {
            username: "u".into(),
            password: "p".into(),
            ..Default::default()
        };
        check(a, "r.io", Ok(basic("u", "p")));
        let a = AuthConfig {
            auth: base64::engine::general_purpose::STANDARD.encode("me:se:cret\0"),
            ..Default::default()
        };
        check(a, "r.io", Ok(basic("me", "se:cret")));
        let a = AuthConfig {
            auth: "!!".into(),
            ..Default::default()
        };
        check(a, "r.io", Err(()));
        let a = AuthConfig {
            auth: base64::engine::general_purpose::STANDARD.encode("nocolon"),
            ..Default::default()
        };
        check(a, "r.io", Err(()));
    }

    #[test]
    fn tokens() {
        let a = AuthConfig {
            identity_token: "it".into(),
            ..Default::default()
        };
        check(a, "r.io", Ok(Credentials::IdentityToken(Secret::new("it"))));
        let a = AuthConfig {
            registry_token: "rt".into(),
            ..Default::default()
        };
        check(a, "r.io", Ok(Credentials::RegistryToken(Secret::new("rt"))));
        check(AuthConfig::default(), "r.io", Ok(Credentials::Anonymous));
    }

    #[test]
    fn server_address_must_match_the_host() {
        let a = |addr: &str| AuthConfig {
            username: "u".into(),
            password: "p".into(),
            server_address: addr.into(),
            ..Default::default()
        };
        check(a("https://r.io"), "r.io", Ok(basic("u", "p")));
        check(a("r.io:5000"), "r.io:5000", Ok(basic("u", "p")));
        check(
            a("https://other.io/v2/"),
            "r.io",
            Ok(Credentials::Anonymous),
        );
    }

    #[test]
    fn configured_auth_is_used_without_request_auth() {
        let mut registry = RegistryConfig::default();
        registry.configs.entry("r.io".into()).or_default().auth = Some(ConfiguredAuth {
            username: "cu".into(),
            password: Secret::new("cp"),
            ..ConfiguredAuth::default()
        });
        assert_eq!(
            credentials_for(None, &registry, "r.io"),
            Ok(basic("cu", "cp"))
        );
        assert_eq!(
            credentials_for(None, &registry, "x.io"),
            Ok(Credentials::Anonymous)
        );
        let request = AuthConfig {
            username: "ru".into(),
            ..Default::default()
        };
        assert_eq!(
            credentials_for(Some(&request), &registry, "r.io"),
            Ok(basic("ru", ""))
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let text = format!(
            "{:?} {:?}",
            basic("u", "hunter2"),
            Credentials::RegistryToken(Secret::new("tok"))
        );
        assert!(!text.contains("hunter2") && !text.contains("tok"), "{text}");
    }
}
