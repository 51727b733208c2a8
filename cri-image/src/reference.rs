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
        // The grammar (components, separators, tag and digest syntax). The
        // usual, plain forms are checked by hand: the full grammar is a
        // regex whose first use compiles it (about 70 ms), which would
        // hold up the first image calls and recovery's image load.
        if !is_plain_reference(input) {
            OciReference::try_from(input).map_err(|e| ReferenceError::new(e.to_string()))?;
        }

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

/// Whether `input` is a reference of a plain form that the distribution
/// grammar accepts: `[domain/]path[:tag][@sha256:<64 hex>]` with a
/// lowercase domain of dot-separated labels (and a port), lowercase path
/// components joined by `.`, `_`, `__` or dashes, an ASCII tag, at most
/// 255 characters before the tag. It accepts no string the grammar
/// refuses; what it refuses goes to the grammar.
fn is_plain_reference(input: &str) -> bool {
    let (name_and_tag, digest) = match input.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (input, None),
    };
    if let Some(digest) = digest {
        let Some(hex) = digest.strip_prefix("sha256:") else {
            return false;
        };
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return false;
        }
    }
    let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_and_tag[last_slash..].find(':') {
        Some(i) => (
            &name_and_tag[..last_slash + i],
            Some(&name_and_tag[last_slash + i + 1..]),
        ),
        None => (name_and_tag, None),
    };
    if let Some(tag) = tag {
        let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let bytes = tag.as_bytes();
        if bytes.is_empty()
            || bytes.len() > 128
            || !word(bytes[0])
            || !bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-')
        {
            return false;
        }
    }
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    let mut components = name.split('/').peekable();
    let first = components.next().unwrap_or_default();
    let has_more = components.peek().is_some();
    let first_ok = is_path_component(first) || (has_more && is_plain_domain(first));
    first_ok && components.all(is_path_component)
}

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or one or more `-`.
fn is_path_component(s: &str) -> bool {
    let bytes = s.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let (mut i, n) = (0, bytes.len());
    loop {
        let start = i;
        while i < n && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == n {
            return true;
        }
        match bytes[i] {
            b'.' => i += 1,
            b'_' if bytes.get(i + 1) == Some(&b'_') => i += 2,
            b'_' => i += 1,
            b'-' => {
                while i < n && bytes[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

/// Lowercase labels (`[a-z0-9]`, inner dashes) joined by dots, with an
/// optional `:port`.
fn is_plain_domain(s: &str) -> bool {
    let (host, port) = match s.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    let label = |l: &str| {
        let bytes = l.as_bytes();
        let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        match (bytes.first(), bytes.last()) {
            (Some(first), Some(last)) => {
                alnum(first) && alnum(last) && bytes.iter().all(|b| alnum(b) || *b == b'-')
            }
            _ => false,
        }
    };
    host.split('.').all(label)
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

#[cfg(test)]
mod plain_tests {
    use super::*;

    /// The hand check never accepts what the distribution grammar refuses.
    fn assert_subset(input: &str) {
        if is_plain_reference(input) {
            assert!(
                OciReference::try_from(input).is_ok(),
                "{input:?} passed the hand check but not the grammar"
            );
        }
    }

    #[test]
    fn the_usual_forms_skip_the_grammar() {
        let digest = format!("sha256:{}", "0123456789abcdef".repeat(4));
        for input in [
            "busybox",
            "docker.io/library/busybox:latest",
            "registry.k8s.io/pause:3.9",
            "registry.k8s.io/e2e-test-images/busybox:1.29-4",
            "127.0.0.1:46697/e2e/busybox:1.29-4",
            "localhost:5000/a__b/c-d/e.f_g:v1.0_rc-1",
            &format!("docker.io/library/busybox@{digest}"),
            &format!("localhost:5000/foo:tag@{digest}"),
        ] {
            assert!(is_plain_reference(input), "{input}");
            assert_subset(input);
        }
    }

    #[test]
    fn other_forms_go_to_the_grammar() {
        for input in [
            "Busybox",
            "Registry.IO/busybox",
            "a//b",
            "/a",
            "a/",
            "a:",
            ":a",
            "a:b:c",
            "a._b",
            "a___b",
            "-a",
            "a-",
            "a:.tag",
            "host:port/a",
            "host:/a",
            "-host.io/a",
            "host-.io/a",
            "a@sha256:abc",
            "a@sha512:00",
            "a@SHA256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "a@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
            "a b",
            "a:t\u{e9}g",
        ] {
            assert!(!is_plain_reference(input), "{input}");
        }
        assert!(!is_plain_reference(&"a".repeat(256)));
        assert!(!is_plain_reference(&format!("a:{}", "t".repeat(129))));
    }

    /// Every short string over the characters that matter, and many
    /// random longer ones: what the hand check accepts, the grammar does.
    #[test]
    fn the_hand_check_accepts_a_subset_of_the_grammar() {
        const ALPHABET: &[u8] = b"aZ0.-_:/@";
        let mut plain = 0;
        let mut check = |s: &str| {
            assert_subset(s);
            plain += usize::from(is_plain_reference(s));
        };
        // All strings up to length 5 over the alphabet (about 66,000).
        fn all(input: &mut Vec<u8>, len: usize, check: &mut dyn FnMut(&str)) {
            if let Ok(s) = std::str::from_utf8(input) {
                check(s);
            }
            if len == 0 {
                return;
            }
            for &c in ALPHABET {
                input.push(c);
                all(input, len - 1, check);
                input.pop();
            }
        }
        all(&mut Vec::new(), 5, &mut check);
        // Random strings of length 6 to 40 (xorshift, fixed seed), over the
        // whole alphabet and over the characters plain forms use.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for alphabet in [ALPHABET, b"ab0.-_:/".as_slice()] {
            for _ in 0..100_000 {
                let len = 6 + (next() % 35) as usize;
                let s: String = (0..len)
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize] as char)
                    .collect();
                check(&s);
            }
        }
        // Random sequences of the pieces references are made of.
        let digest = format!("@sha256:{}", "0123456789abcdef".repeat(4));
        let pieces = [
            "a", "b0", "9", "x", ".", "-", "--", "_", "__", "/", ":", ":5000", "io", "Z", &digest,
        ];
        for _ in 0..200_000 {
            let len = 1 + (next() % 12) as usize;
            let s: String = (0..len)
                .map(|_| pieces[(next() % pieces.len() as u64) as usize])
                .collect();
            check(&s);
        }
        assert!(plain > 10_000, "only {plain} plain strings were tried");
    }
}
