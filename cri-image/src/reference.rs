//! Image references normalized the way containerd's `ParseDockerRef` does (`busybox` -> `docker.io/library/busybox:latest`, a tag beside a digest is dropped), plus the repo tag / repo digest an image record gets.

use std::fmt;

use oci_spec::distribution::Reference as OciReference;

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";

/// A normalized, fully qualified image reference: `domain/path` with
/// either a tag or a digest (never both; containerd drops the tag).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ReferenceError {
    pub reason: String,
}

impl ReferenceError {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

impl ImageRef {
    /// Parses and normalizes `input` as containerd's `ParseDockerRef`.
    /// Compiles the reference grammar (a regex, about 75 ms the first
    /// time in a process) so that a later parse does not wait for it; the
    /// daemon calls this on a thread of its own at start.
    pub fn warm_up() {
        let _ = Self::parse("registry.k8s.io/pause:3.9");
    }

    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::new(
                "repository name must have at least one component",
            ));
        }
        if is_hex_identifier(input) {
            return Err(ReferenceError::new(format!(
                "invalid repository name ({input}), cannot specify 64-byte hexadecimal strings"
            )));
        }
        // The grammar (components, separators, tag and digest syntax).
        OciReference::try_from(input).map_err(|e| ReferenceError::new(e.to_string()))?;

        let (name_and_tag, digest) = match input.split_once('@') {
            Some((n, d)) => (n, Some(d.to_owned())),
            None => (input, None),
        };
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(i) => (
                &name_and_tag[..last_slash + i],
                Some(name_and_tag[last_slash + i + 1..].to_owned()),
            ),
            None => (name_and_tag, None),
        };
        let (domain, path) = split_docker_domain(name);
        if path.to_ascii_lowercase() != path {
            return Err(ReferenceError::new("repository name must be lowercase"));
        }
        let tag = match (&digest, tag) {
            (Some(_), _) => None,
            (None, Some(tag)) => Some(tag),
            (None, None) => Some(DEFAULT_TAG.to_owned()),
        };
        Ok(Self {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// The registry host as written (`docker.io`, `127.0.0.1:5000`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `domain/path`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The repo tag image record (`docker.io/library/busybox:latest`), if
    /// the reference is tagged.
    pub fn repo_tag(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{t}", self.name()))
    }

    /// The repo digest image record: the reference itself when it names a
    /// digest, else `name@<digest of what the tag resolved to>`.
    pub fn repo_digest(&self, target_digest: &str) -> String {
        match &self.digest {
            Some(d) => format!("{}@{d}", self.name()),
            None => format!("{}@{target_digest}", self.name()),
        }
    }

    /// The same repository at `digest`.
    pub fn with_digest(&self, digest: &str) -> Self {
        Self {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: Some(digest.to_owned()),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// distribution's `splitDockerDomain`: the first component is a registry
/// when it has a `.` or `:`, is `localhost`, or has upper-case letters.
fn split_docker_domain(name: &str) -> (String, String) {
    let (mut domain, mut path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_ascii_lowercase() != first =>
        {
            (first.to_owned(), rest.to_owned())
        }
        _ => (DEFAULT_DOMAIN.to_owned(), name.to_owned()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_owned();
    }
    if domain == DEFAULT_DOMAIN && !path.contains('/') {
        path = format!("{OFFICIAL_REPO_PREFIX}{path}");
    }
    (domain, path)
}

fn is_hex_identifier(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `s` is a digest (`sha256:<64 hex>`, or sha384/sha512), which
/// containerd's `localResolve` takes as an image id without normalizing.
pub fn is_digest(s: &str) -> bool {
    let Some((algorithm, hex)) = s.split_once(':') else {
        return false;
    };
    let want = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == want
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn check(input: &str, expected: &str) {
        match ImageRef::parse(input) {
            Ok(r) => assert_eq!(r.to_string(), expected, "{input}"),
            Err(e) => panic!("{input}: {e}"),
        }
    }

    fn check_err(input: &str) {
        assert!(ImageRef::parse(input).is_err(), "{input} parsed");
    }

    const D: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn docker_hub_names_are_completed() {
        check("busybox", "docker.io/library/busybox:latest");
        check("busybox:1.35", "docker.io/library/busybox:1.35");
        check("library/busybox", "docker.io/library/busybox:latest");
        check(
            "index.docker.io/library/busybox",
            "docker.io/library/busybox:latest",
        );
        check("docker.io/busybox", "docker.io/library/busybox:latest");
        check("user/app:v1", "docker.io/user/app:v1");
    }

    #[test]
    fn registries_and_ports() {
        check("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9");
        check(
            "127.0.0.1:5000/library/busybox",
            "127.0.0.1:5000/library/busybox:latest",
        );
        check("localhost/foo", "localhost/foo:latest");
        check("localhost:5000/a/b/c:t", "localhost:5000/a/b/c:t");
    }

    #[test]
    fn digests_and_tag_plus_digest() {
        check(
            &format!("busybox@{D}"),
            &format!("docker.io/library/busybox@{D}"),
        );
        // containerd drops the tag when a digest is given.
        check(
            &format!("busybox:1.35@{D}"),
            &format!("docker.io/library/busybox@{D}"),
        );
        check(
            &format!("127.0.0.1:5000/x:tag@{D}"),
            &format!("127.0.0.1:5000/x@{D}"),
        );
    }

    #[test]
    fn malformed_references() {
        check_err("");
        check_err("Busybox");
        check_err("busybox:");
        check_err("busybox@sha256:abc");
        check_err("bad name");
        check_err("a//b");
        check_err(&"a".repeat(64));
        check_err(&"0123456789abcdef".repeat(4));
    }

    #[test]
    fn repo_tag_and_digest() {
        let r = ImageRef::parse("busybox:1.35").unwrap();
        assert_eq!(
            r.repo_tag().as_deref(),
            Some("docker.io/library/busybox:1.35")
        );
        assert_eq!(r.repo_digest(D), format!("docker.io/library/busybox@{D}"));
        let r = ImageRef::parse(&format!("busybox:1.35@{D}")).unwrap();
        assert_eq!(r.repo_tag(), None);
        assert_eq!(
            r.repo_digest("sha256:other"),
            format!("docker.io/library/busybox@{D}")
        );
        assert_eq!(r.domain(), "docker.io");
        assert_eq!(r.path(), "library/busybox");
    }

    #[test]
    fn digests_are_recognized() {
        assert!(is_digest(D));
        assert!(!is_digest("sha256:abc"));
        assert!(!is_digest("busybox"));
        assert!(!is_digest(&D.replace('a', "A")));
    }
}
