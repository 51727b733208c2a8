//! The workspace's crate edges point one way, as ARCHITECTURE.md draws
//! them: read from `cargo metadata`, every dependency between workspace
//! crates must be an allowed edge, and the crates that own a foreign API
//! are the only ones that depend on it (`k8s-cri` in cri-api,
//! `containerd-client` in cri-containerd).

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
            "h2-authority",
        ],
    ),
    (
        "cri-tests",
        &["cri-api", "cri-server", "cri-streaming", "cri-containerd"],
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
