//! Installs the tracing subscriber: text or JSON lines on stderr.

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::LogFormat;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("log level {level:?}: {message}")]
    BadFilter { level: String, message: String },
    #[error("install tracing subscriber: {0}")]
    Install(String),
}

/// Installs the global subscriber with `level` as an `EnvFilter`
/// directive (`RUST_LOG`, when set, wins).
pub fn init(level: &str, format: LogFormat) -> Result<(), TelemetryError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => EnvFilter::try_new(env),
        _ => EnvFilter::try_new(level),
    }
    .map_err(|e| TelemetryError::BadFilter {
        level: level.to_owned(),
        message: e.to_string(),
    })?;
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| TelemetryError::Install(e.to_string()))
}
