//! Network configuration files in the CNI `conf_dir`: which ones count and
//! in what order, as libcni's `ConfFiles` and go-cni's `loadFromConfDir`.

use std::path::{Path, PathBuf};

/// Why no usable network configuration could be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CniConfigError {
    #[error("no network config found in {}", dir.display())]
    NoConfig { dir: PathBuf },
    #[error("read cni config dir {}", dir.display())]
    ReadDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("read cni config {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse cni config {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// One network: a `.conflist`, or a single `.conf`/`.json` plugin wrapped
/// into a list as libcni does.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkConfigList {
    pub name: String,
    pub cni_version: String,
    pub plugins: Vec<serde_json::Value>,
    pub source: PathBuf,
    /// The list's bytes as libcni keeps them (`NetworkConfigList.Bytes`):
    /// the file itself for a `.conflist`, or the generated
    /// `{"cniVersion","name","plugins":[<conf>]}` for a single conf. They
    /// go, base64-encoded, into the result cache.
    pub bytes: Vec<u8>,
}

/// The loopback network containerd always attaches first, on `lo`
/// (go-cni `WithLoNetwork`).
pub fn loopback_network() -> NetworkConfigList {
    const LOOPBACK: &str = r#"{
"cniVersion": "0.3.1",
"name": "cni-loopback",
"plugins": [{
  "type": "loopback"
}]
}"#;
    NetworkConfigList {
        name: "cni-loopback".into(),
        cni_version: "0.3.1".into(),
        plugins: vec![serde_json::json!({"type": "loopback"})],
        source: PathBuf::new(),
        bytes: LOOPBACK.as_bytes().to_vec(),
    }
}

/// Parses a network config list from bytes, e.g. the `config` kept in a
/// result cache entry (always a list there).
pub fn parse_network_config_list(
    source: &Path,
    bytes: &[u8],
) -> Result<NetworkConfigList, CniConfigError> {
    parse_as(source, bytes, true)
}

/// Loads at most `max_conf_num` networks (0 = all) from `dir`, files
/// sorted by name, with extensions `.conf`, `.conflist` and `.json`.
/// Like go-cni, one malformed file fails the load.
pub fn load_network_configs(
    dir: &Path,
    max_conf_num: usize,
) -> Result<Vec<NetworkConfigList>, CniConfigError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CniConfigError::NoConfig {
                dir: dir.to_path_buf(),
            })
        }
        Err(source) => {
            return Err(CniConfigError::ReadDir {
                dir: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("conf" | "conflist" | "json")
            )
        })
        .collect();
    files.sort();

    let mut networks = Vec::new();
    for path in files {
        if max_conf_num > 0 && networks.len() >= max_conf_num {
            break;
        }
        let bytes = std::fs::read(&path).map_err(|source| CniConfigError::Read {
            path: path.clone(),
            source,
        })?;
        networks.push(parse(&path, &bytes)?);
    }
    if networks.is_empty() {
        return Err(CniConfigError::NoConfig {
            dir: dir.to_path_buf(),
        });
    }
    Ok(networks)
}

fn parse(path: &Path, bytes: &[u8]) -> Result<NetworkConfigList, CniConfigError> {
    let is_list = path.extension().and_then(|e| e.to_str()) == Some("conflist");
    parse_as(path, bytes, is_list)
}

fn parse_as(path: &Path, bytes: &[u8], is_list: bool) -> Result<NetworkConfigList, CniConfigError> {
    let invalid = |message: String| CniConfigError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    let obj = value
        .as_object()
        .ok_or_else(|| invalid("not a JSON object".into()))?;
    let text = |key: &str| {
        obj.get(key)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let (name, plugins, list_bytes) = if is_list {
        let name = text("name");
        if name.is_empty() {
            return Err(invalid("no name".into()));
        }
        let plugins = obj
            .get("plugins")
            .and_then(|p| p.as_array())
            .cloned()
            .ok_or_else(|| invalid("no 'plugins' key".into()))?;
        if plugins.is_empty() {
            return Err(invalid("no plugins in list".into()));
        }
        for plugin in &plugins {
            if plugin
                .get("type")
                .and_then(|t| t.as_str())
                .unwrap_or_default()
                .is_empty()
            {
                return Err(invalid("a plugin has no type".into()));
            }
        }
        (name, plugins, bytes.to_vec())
    } else {
        if text("type").is_empty() {
            return Err(invalid("missing 'type'".into()));
        }
        // libcni `ConfListFromConf`: a generated list around the conf.
        let list = serde_json::json!({
            "cniVersion": text("cniVersion"),
            "name": text("name"),
            "plugins": [value.clone()],
        });
        let list_bytes = serde_json::to_vec(&list).map_err(|e| invalid(e.to_string()))?;
        (text("name"), vec![value.clone()], list_bytes)
    };
    Ok(NetworkConfigList {
        name,
        cni_version: text("cniVersion"),
        plugins,
        source: path.to_path_buf(),
        bytes: list_bytes,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in files {
            std::fs::write(dir.path().join(name), body).unwrap();
        }
        dir
    }

    const BRIDGE_LIST: &str =
        r#"{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge"},{"type":"portmap"}]}"#;

    #[test]
    fn missing_dir_is_no_config() {
        let err = load_network_configs(Path::new("/nonexistent/cni"), 1).unwrap_err();
        assert!(matches!(err, CniConfigError::NoConfig { .. }), "{err}");
    }

    #[test]
    fn empty_dir_is_no_config() {
        let dir = dir_with(&[("README", "x")]);
        let err = load_network_configs(dir.path(), 1).unwrap_err();
        assert!(matches!(err, CniConfigError::NoConfig { .. }), "{err}");
    }

    #[test]
    fn loads_first_by_name() {
        let dir = dir_with(&[
            ("20-b.conflist", BRIDGE_LIST),
            (
                "10-a.conf",
                r#"{"cniVersion":"0.4.0","name":"a","type":"bridge"}"#,
            ),
        ]);
        let nets = load_network_configs(dir.path(), 1).unwrap();
        assert_eq!(nets.len(), 1);
        assert_eq!(nets[0].name, "a");
        assert_eq!(nets[0].plugins.len(), 1);
        let all = load_network_configs(dir.path(), 0).unwrap();
        assert_eq!(
            all.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
            ["a", "pods"]
        );
    }

    #[test]
    fn list_bytes_are_kept_as_libcni_does() {
        let dir = dir_with(&[
            ("20-b.conflist", BRIDGE_LIST),
            (
                "10-a.conf",
                r#"{"type":"bridge", "cniVersion":"0.4.0","name":"a"}"#,
            ),
        ]);
        let all = load_network_configs(dir.path(), 0).unwrap();
        assert_eq!(
            String::from_utf8(all[0].bytes.clone()).unwrap(),
            r#"{"cniVersion":"0.4.0","name":"a","plugins":[{"cniVersion":"0.4.0","name":"a","type":"bridge"}]}"#
        );
        assert_eq!(all[1].bytes, BRIDGE_LIST.as_bytes());
        let reparsed = parse_network_config_list(Path::new("cache"), &all[0].bytes).unwrap();
        assert_eq!(reparsed.name, "a");
        assert_eq!(reparsed.plugins, all[0].plugins);
    }

    #[test]
    fn loopback_network_is_go_cni_s() {
        let lo = loopback_network();
        let parsed = parse_network_config_list(Path::new("lo"), &lo.bytes).unwrap();
        assert_eq!(parsed.name, "cni-loopback");
        assert_eq!(parsed.cni_version, "0.3.1");
        assert_eq!(parsed.plugins, lo.plugins);
    }

    #[test]
    fn malformed_file_fails() {
        let dir = dir_with(&[("10-a.conflist", r#"{"name":"x","plugins":[]}"#)]);
        let err = load_network_configs(dir.path(), 1).unwrap_err();
        assert!(matches!(err, CniConfigError::Invalid { .. }), "{err}");
        let dir = dir_with(&[("10-a.conf", "not json")]);
        assert!(load_network_configs(dir.path(), 1).is_err());
    }
}
