//! Small helpers the integration suites share: basic pod and container
//! configs, the server's log tail, CRI log parsing, directory listings and
//! commands run inside a network namespace.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use anyhow::{bail, ensure, Context, Result};
use cri_api::v1::{
    ContainerConfig, ContainerMetadata, ImageSpec, PodSandboxConfig, PodSandboxMetadata,
};

use crate::components::CHILD_PATH;
use crate::CriServer;

/// A pod config with metadata `name`, uid `uid-<name>` and `namespace`,
/// logging to `<log_root>/<name>`; everything else default.
pub fn pod_config(name: &str, namespace: &str, log_root: &Path) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: namespace.into(),
            attempt: 0,
        }),
        log_directory: log_root.join(name).display().to_string(),
        ..PodSandboxConfig::default()
    }
}

/// A container config running `image` with `args` (the image's entrypoint
/// kept), named `name` (attempt 0), logging to `<name>/0.log` in the pod's
/// log directory; everything else default.
pub fn container_config(name: &str, image: &str, args: &[&str]) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: image.into(),
            ..ImageSpec::default()
        }),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        log_path: format!("{name}/0.log"),
        ..ContainerConfig::default()
    }
}

/// The last `n` lines of `server`'s own log, without the h2, tower and
/// hyper chatter: the context to attach to a failed request.
pub fn server_log_tail(server: &CriServer, n: usize) -> String {
    let log = server.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| !l.contains("h2::") && !l.contains("tower::") && !l.contains("hyper"))
        .collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One record of a CRI container log: `<time> <stream> <P|F> <content>`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// The RFC 3339 timestamp.
    pub time: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// `P` for a partial line, `F` for the end of a line.
    pub tag: String,
    /// The bytes of the line (without the newline).
    pub content: String,
}

/// Parses the CRI log at `path`; fails on a line with fewer than three
/// fields.
pub fn read_log_records(path: &Path) -> Result<Vec<LogRecord>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    text.lines()
        .map(|line| {
            let mut parts = line.splitn(4, ' ');
            let (Some(time), Some(stream), Some(tag)) = (parts.next(), parts.next(), parts.next())
            else {
                bail!("malformed log line {line:?}");
            };
            Ok(LogRecord {
                time: time.into(),
                stream: stream.into(),
                tag: tag.into(),
                content: parts.next().unwrap_or("").into(),
            })
        })
        .collect()
}

/// The contents of the CRI log at `path` (both streams, in order, one
/// record per line, the time, stream and tag fields cut off).
pub fn read_log_content(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.splitn(4, ' ').nth(3))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// The full lines of `stream`, each `P` record joined to the `F` record
/// that ends it.
pub fn full_lines(records: &[LogRecord], stream: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut partial = String::new();
    for r in records.iter().filter(|r| r.stream == stream) {
        partial.push_str(&r.content);
        if r.tag == "F" {
            lines.push(std::mem::take(&mut partial));
        }
    }
    lines
}

/// The names of the entries of `dir`; empty when it can't be read.
pub fn dir_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `program` with `args` (stdin closed, `PATH` set to
/// [`CHILD_PATH`]) and collects its output.
pub fn command(program: &str, args: &[&str]) -> Result<Output> {
    Command::new(program)
        .args(args)
        .env("PATH", CHILD_PATH)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {program} {args:?}"))
}

/// Runs `args` in the network namespace pinned at `netns`, from the host
/// (`nsenter --net=<netns>`).
pub fn in_netns(netns: impl AsRef<OsStr>, args: &[&str]) -> Result<Output> {
    let net = format!("--net={}", Path::new(netns.as_ref()).display());
    let mut all = vec![net.as_str()];
    all.extend_from_slice(args);
    command("nsenter", &all)
}

/// The stdout of `out`, or an error naming `what` with stdout and stderr
/// when the command failed.
pub fn stdout_ok(out: Output, what: &str) -> Result<String> {
    ensure!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
