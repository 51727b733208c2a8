//! The workspace's crate edges point one way, as ARCHITECTURE.md draws
//! them: read from `cargo metadata`, every dependency between workspace
//! crates must be an allowed edge, and the crates that own a foreign API
//! are the only ones that depend on it (`k8s-cri` in cri-api,
//! `containerd-client` in cri-containerd). Inside cri-server, the
//! container and sandbox modules meet one way, through the sandbox
//! module's seam traits.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use anyhow::{ensure, Context, Result};
use cri_tests::workspace_root;

/// Each workspace crate and the workspace crates it may depend on (normal
/// and build dependencies; dev-dependencies are the tests' business).
const ALLOWED: &[(&str, &[&str])] = &[
    ("cri-api", &[]),
    ("h2-authority", &[]),
    ("cri-spec", &["cri-api"]),
    ("cri-store", &["cri-api"]),
    ("cri-io", &["cri-api"]),
    ("cri-streaming", &["cri-api"]),
    ("cri-containerd", &["cri-api"]),
    ("cri-metadata", &["cri-api", "cri-store"]),
    ("cri-sandbox", &["cri-api", "cri-spec"]),
    ("cri-config", &[]),
    ("cri-stats", &["cri-api"]),
    ("cri-image", &["cri-api", "cri-store", "cri-config"]),
    (
        "cri-server",
        &[
            "cri-api",
            "cri-spec",
            "cri-store",
            "cri-io",
            "cri-sandbox",
            "cri-streaming",
            "cri-containerd",
            "cri-metadata",
            "cri-config",
            "cri-image",
            "cri-stats",
            "h2-authority",
        ],
    ),
    (
        "cri-tests",
        &[
            "cri-api",
            "cri-server",
            "cri-streaming",
            "cri-containerd",
            "cri-metadata",
            "cri-sandbox",
            "cri-spec",
            "cri-stats",
        ],
    ),
];

/// Foreign crates only one workspace crate may use.
const OWNED: &[(&str, &str)] = &[
    ("k8s-cri", "cri-api"),
    ("containerd-client", "cri-containerd"),
];

#[test]
fn workspace_crates_depend_one_way() -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(workspace_root())
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .output()
        .context("run cargo metadata")?;
    ensure!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let packages = metadata["packages"]
        .as_array()
        .context("packages in cargo metadata")?;
    let members: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut problems = Vec::new();
    for package in packages {
        let name = package["name"].as_str().unwrap_or_default();
        let Some(may_use) = allowed.get(name) else {
            problems.push(format!("{name} is not in the edge table"));
            continue;
        };
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            if dep["kind"].as_str() == Some("dev") {
                continue;
            }
            if members.contains(dep_name) && !may_use.contains(&dep_name) {
                problems.push(format!("{name} -> {dep_name} is not an allowed edge"));
            }
            if let Some((_, owner)) = OWNED.iter().find(|(foreign, _)| *foreign == dep_name) {
                if *owner != name {
                    problems.push(format!("{name} uses {dep_name}, which only {owner} may"));
                }
            }
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

/// The `crate::<module>` paths a module's non-test files name.
fn module_refs(module: &str) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let dir = workspace_root().join("cri-server/src").join(module);
    let mut refs = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        // Test fixtures may build the whole server; the code may not.
        if !name.ends_with(".rs") || name.ends_with("tests.rs") || name == "testutil.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        // Only what comes before the file's unit tests.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let named: BTreeSet<String> = code
            .match_indices("crate::")
            .filter_map(|(at, _)| {
                let rest = &code[at + "crate::".len()..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                (end > 0).then(|| rest[..end].to_owned())
            })
            .collect();
        refs.insert(name, named);
    }
    Ok(refs)
}

#[test]
fn container_and_sandbox_modules_meet_one_way() -> Result<()> {
    let mut problems = Vec::new();
    // The sandbox module sees containers only through its own
    // `PodContainers` trait, and never the tonic layer's state.
    for (file, named) in module_refs("sandbox")? {
        for forbidden in ["container", "service", "recovery", "daemon"] {
            if named.contains(forbidden) {
                problems.push(format!("sandbox/{file} names crate::{forbidden}"));
            }
        }
    }
    // The container module sees sandboxes only through `SandboxLookup`
    // (and their pure helpers), never the tonic layer's state.
    for (file, named) in module_refs("container")? {
        for forbidden in ["service", "recovery", "daemon"] {
            if named.contains(forbidden) {
                problems.push(format!("container/{file} names crate::{forbidden}"));
            }
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}
