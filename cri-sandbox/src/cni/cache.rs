//! libcni's result cache: `<cache_dir>/results/<net>-<id>-<ifname>`, JSON
//! `cniCacheV1` with the list config (base64), CNI args, capability args and
//! the ADD result, so DEL can replay what ADD got.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::CniError;

/// The `kind` of a libcni cache entry.
pub const CACHE_KIND_V1: &str = "cniCacheV1";

/// One cache file, field for field libcni's `cachedInfo`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    pub kind: String,
    #[serde(rename = "containerId")]
    pub container_id: String,
    /// The network config list bytes (Go `[]byte`: standard base64).
    #[serde(with = "go_bytes")]
    pub config: Vec<u8>,
    #[serde(rename = "ifName")]
    pub if_name: String,
    #[serde(rename = "networkName")]
    pub network_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns: String,
    #[serde(rename = "cniArgs", default, skip_serializing_if = "Vec::is_empty")]
    pub cni_args: Vec<[String; 2]>,
    #[serde(
        rename = "capabilityArgs",
        default,
        skip_serializing_if = "Map::is_empty"
    )]
    pub capability_args: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

/// The cache directory (libcni's `CacheDir`, `/var/lib/cni` by default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultCache {
    dir: PathBuf,
}

impl ResultCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn results_dir(&self) -> PathBuf {
        self.dir.join("results")
    }

    /// `<dir>/results/<network>-<container_id>-<if_name>`.
    pub fn path(&self, network: &str, container_id: &str, if_name: &str) -> PathBuf {
        self.results_dir()
            .join(format!("{network}-{container_id}-{if_name}"))
    }

    /// Writes an entry (dir 0700, file 0600), replacing any old one.
    pub fn write(&self, entry: &CacheEntry) -> Result<PathBuf, CniError> {
        let path = self.path(&entry.network_name, &entry.container_id, &entry.if_name);
        let werr = |source| CniError::CacheWrite {
            path: path.clone(),
            source,
        };
        let dir = self.results_dir();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(werr)?;
        let bytes = serde_json::to_vec(entry).map_err(|e| werr(std::io::Error::other(e)))?;
        let tmp = dir.join(format!(
            ".tmp-{}-{}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
            std::process::id()
        ));
        let written = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(werr(e));
        }
        Ok(path)
    }

    /// Reads an entry; `None` if missing, unreadable or not `cniCacheV1`
    /// (libcni ignores such files too).
    pub fn read(&self, network: &str, container_id: &str, if_name: &str) -> Option<CacheEntry> {
        let path = self.path(network, container_id, if_name);
        let bytes = std::fs::read(&path).ok()?;
        match serde_json::from_slice::<CacheEntry>(&bytes) {
            Ok(entry) if entry.kind == CACHE_KIND_V1 => Some(entry),
            Ok(entry) => {
                tracing::warn!(path = %path.display(), kind = %entry.kind, "ignoring cni cache entry of unknown kind");
                None
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable cni cache entry");
                None
            }
        }
    }

    /// Removes an entry; a missing one is fine.
    pub fn remove(&self, network: &str, container_id: &str, if_name: &str) -> Result<(), CniError> {
        let path = self.path(network, container_id, if_name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(CniError::CacheRemove { path, source }),
        }
    }

    /// Every valid entry for `container_id`, sorted by file name, as
    /// libcni's `GetCachedAttachments`.
    pub fn entries_for(&self, container_id: &str) -> Result<Vec<CacheEntry>, CniError> {
        let dir = self.results_dir();
        let read = match std::fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(CniError::CacheRead { path: dir, source }),
        };
        let part = format!("-{container_id}-");
        let mut names: Vec<String> = read
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| {
                n.find(&part)
                    .is_some_and(|pos| pos > 0 && pos + part.len() < n.len())
            })
            .collect();
        names.sort();
        let mut entries = Vec::new();
        for name in names {
            let Ok(bytes) = std::fs::read(dir.join(&name)) else {
                continue;
            };
            let Ok(entry) = serde_json::from_slice::<CacheEntry>(&bytes) else {
                continue;
            };
            if entry.kind == CACHE_KIND_V1
                && entry.container_id == container_id
                && !entry.if_name.is_empty()
                && !entry.network_name.is_empty()
            {
                entries.push(entry);
            }
        }
        Ok(entries)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

mod go_bytes {
    use super::*;

    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.unwrap_or_default())
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn entry(network: &str, id: &str, if_name: &str) -> CacheEntry {
        CacheEntry {
            kind: CACHE_KIND_V1.into(),
            container_id: id.into(),
            config: br#"{"name":"pods"}"#.to_vec(),
            if_name: if_name.into(),
            network_name: network.into(),
            netns: "/var/run/netns/cni-1".into(),
            cni_args: vec![["IgnoreUnknown".into(), "1".into()]],
            capability_args: json!({"portMappings": [{"HostPort": 80}]})
                .as_object()
                .cloned()
                .unwrap(),
            result: Some(json!({"cniVersion": "1.0.0", "dns": {}})),
        }
    }

    fn check(entry: &CacheEntry, expected_json: Value) {
        let text = serde_json::to_value(entry).unwrap();
        assert_eq!(text, expected_json);
        let back: CacheEntry = serde_json::from_value(expected_json).unwrap();
        assert_eq!(&back, entry);
    }

    #[test]
    fn layout_is_libcni_s() {
        check(
            &entry("pods", "sb1", "eth0"),
            json!({
                "kind": "cniCacheV1",
                "containerId": "sb1",
                "config": "eyJuYW1lIjoicG9kcyJ9",
                "ifName": "eth0",
                "networkName": "pods",
                "netns": "/var/run/netns/cni-1",
                "cniArgs": [["IgnoreUnknown", "1"]],
                "capabilityArgs": {"portMappings": [{"HostPort": 80}]},
                "result": {"cniVersion": "1.0.0", "dns": {}},
            }),
        );
        let mut bare = entry("pods", "sb1", "eth0");
        bare.netns.clear();
        bare.cni_args.clear();
        bare.capability_args.clear();
        bare.result = None;
        check(
            &bare,
            json!({"kind": "cniCacheV1", "containerId": "sb1", "config": "eyJuYW1lIjoicG9kcyJ9", "ifName": "eth0", "networkName": "pods"}),
        );
    }

    #[test]
    fn write_read_remove_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResultCache::new(dir.path());
        let e = entry("pods", "sb1", "eth0");
        let path = cache.write(&e).unwrap();
        assert_eq!(path, dir.path().join("results/pods-sb1-eth0"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(dir.path().join("results"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        assert_eq!(cache.read("pods", "sb1", "eth0"), Some(e.clone()));
        cache.write(&entry("cni-loopback", "sb1", "lo")).unwrap();
        cache.write(&entry("pods", "sb10", "eth0")).unwrap();
        let names: Vec<String> = cache
            .entries_for("sb1")
            .unwrap()
            .into_iter()
            .map(|e| e.network_name)
            .collect();
        assert_eq!(names, ["cni-loopback", "pods"]);
        cache.remove("pods", "sb1", "eth0").unwrap();
        cache.remove("pods", "sb1", "eth0").unwrap();
        assert_eq!(cache.read("pods", "sb1", "eth0"), None);
    }

    #[test]
    fn foreign_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResultCache::new(dir.path());
        std::fs::create_dir_all(dir.path().join("results")).unwrap();
        std::fs::write(
            dir.path().join("results/pods-sb1-eth0"),
            b"{\"kind\":\"other\"}",
        )
        .unwrap();
        assert_eq!(cache.read("pods", "sb1", "eth0"), None);
        assert!(cache.entries_for("sb1").unwrap().is_empty());
        assert!(ResultCache::new("/nonexistent")
            .entries_for("x")
            .unwrap()
            .is_empty());
    }
}
