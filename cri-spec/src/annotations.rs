//! The OCI annotations containerd's CRI plugin sets for shims (keys from
//! `pkg/cri/annotations`), and the passthrough of pod and container
//! annotations whose keys match the runtime handler's globs (Go's
//! `path.Match` syntax).

use std::collections::HashMap;

use cri_api::v1::PodSandboxConfig;
use oci_spec::runtime::Spec;

use crate::access;

/// `sandbox` or `container`.
pub const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
/// Value of [`CONTAINER_TYPE`] for the pause container.
pub const CONTAINER_TYPE_SANDBOX: &str = "sandbox";
/// Value of [`CONTAINER_TYPE`] for app containers.
pub const CONTAINER_TYPE_CONTAINER: &str = "container";
/// The sandbox id.
pub const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
/// Pod CPU period hint (pause container, when the pod has resources).
pub const SANDBOX_CPU_PERIOD: &str = "io.kubernetes.cri.sandbox-cpu-period";
/// Pod CPU quota hint.
pub const SANDBOX_CPU_QUOTA: &str = "io.kubernetes.cri.sandbox-cpu-quota";
/// Pod CPU shares hint.
pub const SANDBOX_CPU_SHARES: &str = "io.kubernetes.cri.sandbox-cpu-shares";
/// Pod memory limit hint.
pub const SANDBOX_MEMORY: &str = "io.kubernetes.cri.sandbox-memory";
/// The pod log directory (pause container only).
pub const SANDBOX_LOG_DIRECTORY: &str = "io.kubernetes.cri.sandbox-log-directory";
/// The pod namespace.
pub const SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
/// The pod uid.
pub const SANDBOX_UID: &str = "io.kubernetes.cri.sandbox-uid";
/// The pod name.
pub const SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
/// The container name (app containers only).
pub const CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";
/// The containerd image name (app containers only).
pub const IMAGE_NAME: &str = "io.kubernetes.cri.image-name";
/// The pause image name (containerd 2.x, pause container only).
pub const SANDBOX_IMAGE_NAME: &str = "io.kubernetes.cri.podsandbox.image-name";
/// The runtime handler (set only with `annotate_runtime_handler`).
pub const RUNTIME_HANDLER: &str = "io.containerd.cri.runtime-handler";
/// Windows HostProcess pods, for hcsshim.
pub const WINDOWS_HOST_PROCESS: &str = "microsoft.com/hostprocess-container";

/// Go's `path.Match`: `*` (any run of non-`/`), `?` (one non-`/`),
/// `[...]` classes with ranges and `^` negation, `\` escapes. A malformed
/// pattern matches nothing.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    matches_at(&p, &n) == Some(true)
}

fn matches_at(p: &[char], n: &[char]) -> Option<bool> {
    match p.first() {
        None => Some(n.is_empty()),
        Some('*') => {
            let rest = &p[1..];
            for i in 0..=n.len() {
                if i > 0 && n[i - 1] == '/' {
                    break;
                }
                if matches_at(rest, &n[i..])? {
                    return Some(true);
                }
            }
            Some(false)
        }
        Some('?') => match n.first() {
            Some(c) if *c != '/' => matches_at(&p[1..], &n[1..]),
            _ => Some(false),
        },
        Some('[') => {
            let (matched, used) = class(&p[1..], n.first().copied())?;
            if matched {
                matches_at(&p[1 + used..], &n[1..])
            } else {
                Some(false)
            }
        }
        Some('\\') => {
            let c = *p.get(1)?;
            if n.first() == Some(&c) {
                matches_at(&p[2..], &n[1..])
            } else {
                Some(false)
            }
        }
        Some(c) => {
            if n.first() == Some(c) {
                matches_at(&p[1..], &n[1..])
            } else {
                Some(false)
            }
        }
    }
}

/// Match one character against a class body (after `[`); returns whether
/// it matched and how many pattern characters the class used, or `None`
/// for a malformed class.
fn class(p: &[char], c: Option<char>) -> Option<(bool, usize)> {
    let mut i = 0;
    let negated = p.first() == Some(&'^');
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        match p.get(i)? {
            ']' if !first => {
                i += 1;
                break;
            }
            _ => {
                let (lo, next) = class_char(p, i)?;
                i = next;
                let hi = if p.get(i) == Some(&'-') {
                    let (hi, next) = class_char(p, i + 1)?;
                    i = next;
                    hi
                } else {
                    lo
                };
                if let Some(c) = c {
                    if lo <= c && c <= hi {
                        matched = true;
                    }
                }
            }
        }
        first = false;
    }
    let Some(c) = c else { return Some((false, i)) };
    Some((c != '/' && matched != negated, i))
}

fn class_char(p: &[char], i: usize) -> Option<(char, usize)> {
    match p.get(i)? {
        '-' | ']' => None,
        '\\' => Some((*p.get(i + 1)?, i + 2)),
        c => Some((*c, i + 1)),
    }
}

/// containerd's `getPassthroughAnnotations`.
pub(crate) fn passthrough(
    annotations: &HashMap<String, String>,
    globs: &[String],
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = annotations
        .iter()
        .filter(|(k, _)| globs.iter().any(|g| glob_match(g, k)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.sort();
    out
}

/// Set annotations on the spec.
pub(crate) fn annotate(spec: &mut Spec, pairs: impl IntoIterator<Item = (String, String)>) {
    access::annotations(spec).extend(pairs);
}

/// containerd's `DefaultCRIAnnotations`: the sandbox id, namespace, uid
/// and name, then for the pause container its log directory (and pause
/// image name when known), for app containers their name and image name,
/// and the container type.
pub(crate) fn default_cri_annotations(
    sandbox_id: &str,
    config: &PodSandboxConfig,
    kind: DefaultKind<'_>,
) -> Vec<(String, String)> {
    let meta = config.metadata.clone().unwrap_or_default();
    let mut out = vec![
        (SANDBOX_ID.to_owned(), sandbox_id.to_owned()),
        (SANDBOX_NAMESPACE.to_owned(), meta.namespace),
        (SANDBOX_UID.to_owned(), meta.uid),
        (SANDBOX_NAME.to_owned(), meta.name),
    ];
    let container_type = match kind {
        DefaultKind::Sandbox { image_name } => {
            out.push((
                SANDBOX_LOG_DIRECTORY.to_owned(),
                config.log_directory.clone(),
            ));
            if let Some(image) = image_name {
                out.push((SANDBOX_IMAGE_NAME.to_owned(), image.to_owned()));
            }
            CONTAINER_TYPE_SANDBOX
        }
        DefaultKind::Container {
            container_name,
            image_name,
        } => {
            out.push((CONTAINER_NAME.to_owned(), container_name.to_owned()));
            out.push((IMAGE_NAME.to_owned(), image_name.to_owned()));
            CONTAINER_TYPE_CONTAINER
        }
    };
    out.push((CONTAINER_TYPE.to_owned(), container_type.to_owned()));
    out
}

/// Which container [`default_cri_annotations`] is for.
pub(crate) enum DefaultKind<'a> {
    /// The pause container, with the pause image name in 2.x style.
    Sandbox { image_name: Option<&'a str> },
    /// An app container.
    Container {
        container_name: &'a str,
        image_name: &'a str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pattern: &str, name: &str, expected: bool) {
        assert_eq!(
            glob_match(pattern, name),
            expected,
            "{pattern:?} vs {name:?}"
        );
    }

    #[test]
    fn go_path_match() {
        check("*", "io.katacontainers.x", true);
        check(
            "io.katacontainers.*",
            "io.katacontainers.config.hypervisor",
            true,
        );
        check("io.katacontainers.*", "io.kata", false);
        check("*", "a/b", false);
        check("a/*", "a/b", true);
        check("a?c", "abc", true);
        check("a?c", "a/c", false);
        check("[a-c]x", "bx", true);
        check("[^a-c]x", "bx", false);
        check("[^a-c]x", "dx", true);
        check("\\*", "*", true);
        check("\\*", "x", false);
        check("[", "[", false);
        check("a[", "a", false);
        check("exact", "exact", true);
        check("exact", "exactly", false);
        check("", "", true);
        check("[]a]", "]", false);
    }

    #[test]
    fn passthrough_filters_and_sorts() {
        let anns: HashMap<String, String> = [("b.x/one", "1"), ("a.x/two", "2"), ("other", "3")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let got = passthrough(&anns, &["*.x/*".to_owned()]);
        assert_eq!(
            got,
            vec![
                ("a.x/two".into(), "2".into()),
                ("b.x/one".into(), "1".into())
            ]
        );
        assert!(passthrough(&anns, &[]).is_empty());
    }
}
