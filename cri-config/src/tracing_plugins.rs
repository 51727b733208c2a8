//! containerd's tracing settings, read from the same file under the same
//! plugin ids: `[plugins."io.containerd.tracing.processor.v1.otlp"]`
//! (`endpoint`, `protocol`, `insecure`) and
//! `[plugins."io.containerd.internal.v1.tracing"]` (`sampling_ratio`,
//! `service_name`). Tracing is off unless an endpoint is set.

use serde::Deserialize;
use toml::Spanned;

use super::error::ConfigError;
use super::file::{plugin_key, Source};

/// containerd's OTLP processor plugin.
pub(super) const OTLP_PLUGIN: &str = "io.containerd.tracing.processor.v1.otlp";
/// containerd's tracing plugin (sampler and resource).
pub(super) const TRACING_PLUGIN: &str = "io.containerd.internal.v1.tracing";
/// The service name spans carry unless configured.
pub const DEFAULT_TRACING_SERVICE_NAME: &str = "cri-server";

/// How spans travel to the collector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// `grpc`: OTLP over gRPC (containerd's default).
    #[default]
    Grpc,
    /// `http/protobuf`: OTLP over HTTP, protobuf bodies.
    HttpProtobuf,
}

impl OtlpProtocol {
    /// The name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
        }
    }
}

/// The effective tracing settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingConfig {
    /// The collector, `host:port` or a URL; `None` (empty or absent)
    /// exports nothing.
    pub endpoint: Option<String>,
    pub protocol: OtlpProtocol,
    /// Plain text to the collector instead of TLS.
    pub insecure: bool,
    /// The share of new traces that are recorded, 0 to 1 (a trace with a
    /// sampled parent is always recorded).
    pub sampling_ratio: f64,
    /// The `service.name` resource attribute.
    pub service_name: String,
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            protocol: OtlpProtocol::Grpc,
            insecure: false,
            sampling_ratio: 1.0,
            service_name: DEFAULT_TRACING_SERVICE_NAME.to_owned(),
        }
    }
}

impl TracingConfig {
    /// Whether spans are exported at all.
    pub fn enabled(&self) -> bool {
        self.endpoint.is_some()
    }
}

/// Just the two tracing sections of the file; everything else is read
/// (and checked for unknown keys) by the main decode.
#[derive(Debug, Deserialize)]
struct RawTracingFile {
    plugins: Option<RawTracingPlugins>,
}

#[derive(Debug, Deserialize)]
struct RawTracingPlugins {
    #[serde(rename = "io.containerd.tracing.processor.v1.otlp")]
    otlp: Option<RawOtlp>,
    #[serde(rename = "io.containerd.internal.v1.tracing")]
    tracing: Option<RawTracing>,
}

#[derive(Debug, Deserialize)]
struct RawOtlp {
    endpoint: Option<String>,
    protocol: Option<Spanned<String>>,
    insecure: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct RawTracing {
    sampling_ratio: Option<Spanned<f64>>,
    service_name: Option<String>,
}

/// Reads the tracing sections of `source` over the defaults.
pub(super) fn read(source: &Source<'_>) -> Result<TracingConfig, ConfigError> {
    let raw: RawTracingFile = source.decode(&mut Vec::new())?;
    let mut config = TracingConfig::default();
    let Some(plugins) = raw.plugins else {
        return Ok(config);
    };
    if let Some(otlp) = plugins.otlp {
        config.endpoint = otlp.endpoint.filter(|e| !e.trim().is_empty());
        if let Some(protocol) = otlp.protocol {
            let line = Some(source.line_of(protocol.span().start));
            config.protocol = match protocol.get_ref().as_str() {
                "" | "grpc" => OtlpProtocol::Grpc,
                "http/protobuf" => OtlpProtocol::HttpProtobuf,
                other => {
                    return Err(source.invalid(
                        plugin_key(OTLP_PLUGIN, &["protocol"]),
                        line,
                        format!(
                            "unsupported protocol {other:?}, want \"grpc\" or \"http/protobuf\""
                        ),
                    ))
                }
            };
        }
        if let Some(insecure) = otlp.insecure {
            config.insecure = insecure;
        }
    }
    if let Some(tracing) = plugins.tracing {
        if let Some(ratio) = tracing.sampling_ratio {
            let line = Some(source.line_of(ratio.span().start));
            let value = *ratio.get_ref();
            if !(0.0..=1.0).contains(&value) {
                return Err(source.invalid(
                    plugin_key(TRACING_PLUGIN, &["sampling_ratio"]),
                    line,
                    format!("{value} is not between 0 and 1"),
                ));
            }
            config.sampling_ratio = value;
        }
        if let Some(name) = tracing.service_name.filter(|n| !n.is_empty()) {
            config.service_name = name;
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn check(text: &str, expected: Result<TracingConfig, &str>) {
        let source = Source {
            text,
            origin: "config.toml",
        };
        match (read(&source), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want),
            (Err(e), Err(want)) => assert_eq!(e.to_string(), want),
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn off_unless_an_endpoint_is_set() {
        check("version = 2\n", Ok(TracingConfig::default()));
        check(
            "version = 2\n[plugins.\"io.containerd.tracing.processor.v1.otlp\"]\nendpoint = \"\"\n",
            Ok(TracingConfig::default()),
        );
        assert!(!TracingConfig::default().enabled());
    }

    #[test]
    fn reads_containerds_keys() {
        let text = r#"version = 2
[plugins."io.containerd.tracing.processor.v1.otlp"]
  endpoint = "collector:4318"
  protocol = "http/protobuf"
  insecure = true
[plugins."io.containerd.internal.v1.tracing"]
  sampling_ratio = 0.5
  service_name = "node-cri"
"#;
        let want = TracingConfig {
            endpoint: Some("collector:4318".to_owned()),
            protocol: OtlpProtocol::HttpProtobuf,
            insecure: true,
            sampling_ratio: 0.5,
            service_name: "node-cri".to_owned(),
        };
        check(text, Ok(want.clone()));
        assert!(want.enabled());
    }

    #[test]
    fn bad_values_name_key_and_line() {
        check(
            "[plugins.\"io.containerd.tracing.processor.v1.otlp\"]\nendpoint = \"x:1\"\nprotocol = \"http/json\"\n",
            Err("config config.toml: line 3: plugins.\"io.containerd.tracing.processor.v1.otlp\".protocol: unsupported protocol \"http/json\", want \"grpc\" or \"http/protobuf\""),
        );
        check(
            "[plugins.\"io.containerd.internal.v1.tracing\"]\nsampling_ratio = 2.0\n",
            Err("config config.toml: line 2: plugins.\"io.containerd.internal.v1.tracing\".sampling_ratio: 2 is not between 0 and 1"),
        );
        let source = Source {
            text: "[plugins.\"io.containerd.internal.v1.tracing\"]\nsampling_ratio = \"all\"\n",
            origin: "config.toml",
        };
        let err = read(&source).unwrap_err();
        assert_eq!(
            err.key(),
            Some("plugins.\"io.containerd.internal.v1.tracing\".sampling_ratio")
        );
        assert_eq!(err.line(), Some(2));
    }
}
