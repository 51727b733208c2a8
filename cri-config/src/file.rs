//! Reading a containerd `config.toml`: the layout version, the top-level
//! keys we use, decoding with key paths and line numbers in errors, and
//! which ignored keys deserve a warning.

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::cri::CriConfig;
use super::error::ConfigError;
use super::server::{ContainerdTopLevel, RawServerSection};
use super::validate::Origins;

/// v1/v2 CRI plugin id (v3: the gRPC server half, streaming and TLS).
pub(super) const GRPC_CRI_PLUGIN: &str = "io.containerd.grpc.v1.cri";
/// v1 short id of the CRI plugin.
pub(super) const LEGACY_CRI_PLUGIN: &str = "cri";
/// v3 runtime half of the CRI plugin.
pub(super) const RUNTIME_PLUGIN: &str = "io.containerd.cri.v1.runtime";
/// v3 images half of the CRI plugin.
pub(super) const IMAGES_PLUGIN: &str = "io.containerd.cri.v1.images";
/// Our own table.
pub(super) const SERVER_TABLE: &str = "cri_server";

/// The text being read and what to call it in errors.
#[derive(Debug, Clone, Copy)]
pub(super) struct Source<'a> {
    pub text: &'a str,
    pub origin: &'a str,
}

impl Source<'_> {
    /// The 1-based line holding byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    /// An `Invalid` error for `key`.
    pub fn invalid(
        &self,
        key: String,
        line: Option<usize>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            origin: self.origin.to_owned(),
            key,
            line,
            message: message.into(),
        }
    }

    /// Decodes the whole text as `T`, recording the path of every key `T`
    /// does not know in `ignored`.
    pub fn decode<T: DeserializeOwned>(
        &self,
        ignored: &mut Vec<Vec<String>>,
    ) -> Result<T, ConfigError> {
        let mut record = |path: serde_ignored::Path<'_>| {
            let mut segments = Vec::new();
            ignored_segments(&path, &mut segments);
            ignored.push(segments);
        };
        let deserializer =
            serde_ignored::Deserializer::new(toml::Deserializer::new(self.text), &mut record);
        serde_path_to_error::deserialize(deserializer).map_err(|e| self.decode_error(e))
    }

    fn decode_error(&self, error: serde_path_to_error::Error<toml::de::Error>) -> ConfigError {
        let segments: Vec<String> = error
            .path()
            .iter()
            .filter_map(|segment| match segment {
                // `toml::Spanned` decodes through a private inner key.
                serde_path_to_error::Segment::Map { key }
                    if key.starts_with("$__serde_spanned") =>
                {
                    None
                }
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                serde_path_to_error::Segment::Seq { index } => Some(format!("[{index}]")),
                serde_path_to_error::Segment::Enum { variant } => Some(variant.clone()),
                serde_path_to_error::Segment::Unknown => None,
            })
            .collect();
        let inner = error.inner();
        let line = inner.span().map(|span| self.line_of(span.start));
        let message = inner.message().trim().replace('\n', "; ");
        let origin = self.origin.to_owned();
        if segments.is_empty() {
            ConfigError::Syntax {
                origin,
                line,
                message,
            }
        } else {
            ConfigError::Decode {
                origin,
                key: dotted(&segments),
                line,
                message,
            }
        }
    }
}

fn ignored_segments(path: &serde_ignored::Path<'_>, out: &mut Vec<String>) {
    use serde_ignored::Path;
    match path {
        Path::Root => {}
        Path::Seq { parent, index } => {
            ignored_segments(parent, out);
            out.push(format!("[{index}]"));
        }
        Path::Map { parent, key } => {
            ignored_segments(parent, out);
            out.push(key.clone());
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => {
            ignored_segments(parent, out);
        }
    }
}

/// Segments joined TOML-style: `plugins."io.containerd.grpc.v1.cri".cni`.
pub(super) fn dotted<S: AsRef<str>>(segments: &[S]) -> String {
    let mut out = String::new();
    for segment in segments {
        let segment = segment.as_ref();
        if segment.starts_with('[') {
            out.push_str(segment);
            continue;
        }
        if !out.is_empty() {
            out.push('.');
        }
        let bare = !segment.is_empty()
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if bare {
            out.push_str(segment);
        } else {
            out.push('"');
            out.push_str(&segment.replace('\\', "\\\\").replace('"', "\\\""));
            out.push('"');
        }
    }
    out
}

/// The dotted path of a key in a plugin section.
pub(super) fn plugin_key(plugin: &str, rest: &[&str]) -> String {
    let mut segments = vec!["plugins", plugin];
    segments.extend_from_slice(rest);
    dotted(&segments)
}

/// The layout of the file, from its top-level `version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    /// `version = 1` or none: `plugins.cri` or the full plugin id.
    V1,
    /// `version = 2`: containerd 1.x, one CRI plugin section.
    V2,
    /// `version = 3`: containerd 2.x, the CRI plugin split in three.
    V3,
}

impl Layout {
    /// Whether an ignored key at `segments` sits in a section we read, so
    /// it is a typo or unsupported rather than another plugin's business.
    pub fn owns(self, segments: &[String]) -> bool {
        match segments {
            [table, _, ..] if table == SERVER_TABLE => true,
            [plugins, plugin, _, ..] if plugins == "plugins" => {
                let owned: &[&str] = match self {
                    Self::V1 => &[GRPC_CRI_PLUGIN, LEGACY_CRI_PLUGIN],
                    Self::V2 => &[GRPC_CRI_PLUGIN],
                    Self::V3 => &[GRPC_CRI_PLUGIN, RUNTIME_PLUGIN, IMAGES_PLUGIN],
                };
                owned.contains(&plugin.as_str())
            }
            _ => false,
        }
    }
}

/// Just the version, read first to pick the layout.
#[derive(Debug, Deserialize)]
struct VersionProbe {
    version: Option<i64>,
}

pub(super) fn probe_layout(source: &Source<'_>) -> Result<Layout, ConfigError> {
    let probe: VersionProbe = source.decode(&mut Vec::new())?;
    match probe.version {
        None | Some(0) | Some(1) => Ok(Layout::V1),
        Some(2) => Ok(Layout::V2),
        Some(3) => Ok(Layout::V3),
        Some(version) => Err(ConfigError::UnsupportedVersion {
            origin: source.origin.to_owned(),
            version,
        }),
    }
}

/// The keys of a containerd config we read, with the plugin sections of
/// layout `P`.
#[derive(Debug, Deserialize)]
#[serde(bound = "P: Deserialize<'de>")]
pub(super) struct RawFile<P> {
    /// Read by `probe_layout`; listed here so it is not reported unknown.
    #[serde(rename = "version")]
    _version: Option<i64>,
    root: Option<PathBuf>,
    state: Option<PathBuf>,
    grpc: Option<RawGrpc>,
    cri_server: Option<RawServerSection>,
    pub plugins: Option<P>,
}

/// `[grpc]`: only the address is ours to read.
#[derive(Debug, Deserialize)]
struct RawGrpc {
    address: Option<PathBuf>,
}

impl<P> RawFile<P> {
    /// Splits off what the server settings need.
    pub fn server_parts(&mut self) -> (RawServerSection, ContainerdTopLevel) {
        let top = ContainerdTopLevel {
            root: self.root.take().filter(|p| !p.as_os_str().is_empty()),
            state: self.state.take().filter(|p| !p.as_os_str().is_empty()),
            grpc_address: self.grpc.take().and_then(|g| g.address),
        };
        (self.cri_server.take().unwrap_or_default(), top)
    }
}

/// The CRI plugin sections of one layout, as decoded from `[plugins]`.
pub(super) trait PluginSections: DeserializeOwned {
    /// Lays the sections over `cri`, recording where keys came from.
    fn apply(
        self,
        cri: &mut CriConfig,
        source: &Source<'_>,
        origins: &mut Origins,
    ) -> Result<(), ConfigError>;
}

/// Decodes `source` with the plugin sections `P`, returning it and the
/// dotted paths of unknown keys in sections `layout` owns.
pub(super) fn decode_file<P: PluginSections>(
    source: &Source<'_>,
    layout: Layout,
) -> Result<(RawFile<P>, Vec<String>), ConfigError> {
    let mut ignored = Vec::new();
    let decoded = source.decode(&mut ignored)?;
    let warnings = ignored
        .iter()
        .filter(|segments| layout.owns(segments))
        .map(|segments| dotted(segments))
        .collect();
    Ok((decoded, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(segments: &[&str], expected: &str) {
        assert_eq!(dotted(segments), expected);
    }

    #[test]
    fn keys_are_quoted_when_not_bare() {
        check(
            &["plugins", "io.containerd.grpc.v1.cri", "containerd", "foo"],
            "plugins.\"io.containerd.grpc.v1.cri\".containerd.foo",
        );
        check(&["cri_server", "listen"], "cri_server.listen");
        check(
            &["registry", "mirrors", "docker.io", "endpoint", "[0]"],
            "registry.mirrors.\"docker.io\".endpoint[0]",
        );
        check(&["a b", "q\"uote"], "\"a b\".\"q\\\"uote\"");
    }

    #[test]
    fn line_of_counts_newlines() {
        let source = Source {
            text: "a = 1\nb = 2\nc = 3\n",
            origin: "t",
        };
        assert_eq!(source.line_of(0), 1);
        assert_eq!(source.line_of(6), 2);
        assert_eq!(source.line_of(13), 3);
        assert_eq!(source.line_of(1000), 4);
    }

    fn owns(layout: Layout, path: &[&str]) -> bool {
        let segments: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
        layout.owns(&segments)
    }

    #[test]
    fn only_our_sections_are_owned() {
        assert!(owns(Layout::V2, &["plugins", GRPC_CRI_PLUGIN, "foo"]));
        assert!(owns(Layout::V2, &["cri_server", "foo"]));
        assert!(!owns(
            Layout::V2,
            &["plugins", "io.containerd.internal.v1.opt"]
        ));
        assert!(!owns(Layout::V2, &["plugins", LEGACY_CRI_PLUGIN, "foo"]));
        assert!(owns(Layout::V1, &["plugins", LEGACY_CRI_PLUGIN, "foo"]));
        assert!(!owns(Layout::V2, &["plugins", RUNTIME_PLUGIN, "foo"]));
        assert!(owns(Layout::V3, &["plugins", RUNTIME_PLUGIN, "foo"]));
        assert!(!owns(Layout::V3, &["metrics"]));
        assert!(!owns(Layout::V3, &["grpc", "uid"]));
    }
}
