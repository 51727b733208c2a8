//! Compiling `tests/assets/pause.c` (and the other C programs of the test images) into static binaries, cached under the cargo target dir by a hash of the source and flags.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::components::{Component, CHILD_PATH};

/// The pause program's source, embedded so the cache key is exact.
pub const SOURCE: &str = include_str!("../../assets/pause.c");
const FLAGS: &[&str] = &["-static", "-Os", "-s", "-Wall"];

/// The cargo target dir: `$CARGO_TARGET_DIR`, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => crate::workspace_root().join("target"),
    }
}

/// Returns the compiled pause binary, compiling it on first use.
pub fn binary() -> Result<Vec<u8>> {
    compile_static("pause", SOURCE)
}

/// Returns `source` compiled with `gcc -static` as `name`, compiling it on
/// first use.
pub fn compile_static(name: &str, source: &str) -> Result<Vec<u8>> {
    let mut hasher = Sha256::new();
    hasher.update(source.as_bytes());
    hasher.update(FLAGS.join(" ").as_bytes());
    let key = hex::encode(hasher.finalize());
    let cache = target_dir().join("cri-test-images");
    let cached = cache.join(format!("{name}-{}", &key[..16]));
    if let Ok(data) = std::fs::read(&cached) {
        return Ok(data);
    }
    std::fs::create_dir_all(&cache).with_context(|| format!("create {}", cache.display()))?;

    // Compile into a private temp dir, then rename into place atomically so
    // concurrent test processes never see a half-written binary.
    let work = tempfile::tempdir_in(&cache)?;
    let source_file = work.path().join(format!("{name}.c"));
    let output = work.path().join(name);
    std::fs::write(&source_file, source)?;
    let out = Command::new(Component::Gcc.path()?)
        .args(FLAGS)
        .arg("-o")
        .arg(&output)
        .arg(&source_file)
        .env("PATH", CHILD_PATH)
        .output()
        .context("run gcc")?;
    if !out.status.success() {
        bail!(
            "gcc {} {name}.c failed with {} (a static build needs libc.a: run `make deps` or `apt-get install -y gcc libc6-dev`):\n{}",
            FLAGS.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::rename(&output, &cached)
        .with_context(|| format!("move the {name} binary to {}", cached.display()))?;
    std::fs::read(&cached).with_context(|| format!("read {}", cached.display()))
}
