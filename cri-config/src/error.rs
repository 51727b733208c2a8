//! The configuration error enum: every variant names the file and, where
//! there is one, the dotted key and its line.

use std::path::PathBuf;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("read config {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config {origin}: {}{message}", line_prefix(*line))]
    Syntax {
        origin: String,
        line: Option<usize>,
        message: String,
    },
    /// A key holds a value of the wrong type or one that does not parse
    /// (a bad duration, an unknown enum value).
    #[error("config {origin}: {}{key}: {message}", line_prefix(*line))]
    Decode {
        origin: String,
        key: String,
        line: Option<usize>,
        message: String,
    },
    /// The values parse but do not make a usable configuration
    /// (e.g. `default_runtime_name` names no runtime).
    #[error("config {origin}: {}{key}: {message}", line_prefix(*line))]
    Invalid {
        origin: String,
        key: String,
        line: Option<usize>,
        message: String,
    },
    /// The top-level `version` is not 1, 2 or 3.
    #[error("config {origin}: unsupported config version {version}, want 1, 2 or 3")]
    UnsupportedVersion { origin: String, version: i64 },
}

impl ConfigError {
    /// The dotted key the error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Decode { key, .. } | Self::Invalid { key, .. } => Some(key),
            Self::Read { .. } | Self::Syntax { .. } | Self::UnsupportedVersion { .. } => None,
        }
    }

    /// The 1-based line in the file the error points at, if known.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Syntax { line, .. } | Self::Decode { line, .. } | Self::Invalid { line, .. } => {
                *line
            }
            Self::Read { .. } | Self::UnsupportedVersion { .. } => None,
        }
    }
}

fn line_prefix(line: Option<usize>) -> String {
    line.map(|n| format!("line {n}: ")).unwrap_or_default()
}
