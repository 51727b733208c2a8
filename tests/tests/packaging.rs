//! What a node gets installed: `make install` / `make uninstall` into a
//! scratch DESTDIR, the Debian package of `cargo deb` unpacked with
//! `dpkg -x`, and the systemd unit checked by `systemd-analyze verify`
//! (where systemd exists) and by a parser of our own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{bail, ensure, Context, Result};

fn run(program: &str, args: &[&str], cwd: &Path) -> Result<Output> {
    Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {program}"))
}

fn run_ok(program: &str, args: &[&str], cwd: &Path) -> Result<String> {
    let out = run(program, args, cwd)?;
    ensure!(
        out.status.success(),
        "`{program} {}` failed with {}:\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `[Section] Key=Value` lines of a unit file; a key may repeat.
fn parse_unit(text: &str) -> Result<BTreeMap<(String, String), Vec<String>>> {
    let mut section = String::new();
    let mut keys: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            bail!("line {}: not Key=Value: {line}", n + 1);
        };
        ensure!(!section.is_empty(), "line {}: key outside a section", n + 1);
        keys.entry((section.clone(), key.trim().to_owned()))
            .or_default()
            .push(value.trim().to_owned());
    }
    Ok(keys)
}

/// The unit as the issue describes it, with `binary` as ExecStart; then
/// `systemd-analyze verify` on it (with the binary that exists here).
fn check_unit(unit: &Path, binary: &str, runnable: &Path) -> Result<()> {
    let text = std::fs::read_to_string(unit)?;
    let keys = parse_unit(&text)?;
    let get = |section: &str, key: &str| {
        keys.get(&(section.to_owned(), key.to_owned()))
            .cloned()
            .unwrap_or_default()
    };
    for (section, key, want) in [
        ("Unit", "After", "containerd.service"),
        ("Unit", "Requires", "containerd.service"),
        ("Service", "Type", "notify"),
        ("Service", "ExecStart", binary),
        ("Service", "KillMode", "process"),
        ("Service", "Restart", "always"),
        ("Install", "WantedBy", "multi-user.target"),
    ] {
        let values = get(section, key);
        ensure!(
            values
                .iter()
                .any(|v| v.split_whitespace().any(|w| w == want)),
            "{}: [{section}] {key}={values:?}, want {want}",
            unit.display()
        );
    }
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze not found: the unit was checked by the parser only");
        return Ok(());
    }
    // verify wants ExecStart to exist: point it at the unpacked binary.
    let dir = tempfile::tempdir()?;
    let copy = dir.path().join("cri-server.service");
    std::fs::write(
        &copy,
        text.replace(
            &format!("ExecStart={binary}"),
            &format!("ExecStart={}", runnable.display()),
        ),
    )?;
    let out = run(
        "systemd-analyze",
        &["verify", "--man=no", &copy.to_string_lossy()],
        dir.path(),
    )?;
    // verify exits 0 on keys it ignores; what it prints is the verdict.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify {}: {}\n{said}",
        unit.display(),
        out.status
    );
    Ok(())
}

fn config_default(binary: &Path) -> Result<String> {
    run_ok(
        &binary.to_string_lossy(),
        &["config", "default"],
        Path::new("/"),
    )
}

#[test]
fn make_install_and_uninstall_into_a_destdir() -> Result<()> {
    let root = cri_tests::workspace_root();
    let dest = tempfile::tempdir()?;
    let destdir = format!("DESTDIR={}", dest.path().display());
    let args = [
        "-s",
        "install",
        "PREFIX=/usr",
        "CARGO_PROFILE=dev",
        destdir.as_str(),
    ];
    run_ok("make", &args, &root)?;

    let installed = |p: &str| dest.path().join(p.trim_start_matches('/'));
    for (path, mode) in [
        ("/usr/bin/cri-server", 0o755),
        ("/usr/bin/cri-ctl", 0o755),
        ("/usr/lib/systemd/system/cri-server.service", 0o644),
        ("/usr/share/cri-server/config.toml", 0o644),
    ] {
        use std::os::unix::fs::PermissionsExt;
        let meta =
            std::fs::metadata(installed(path)).with_context(|| format!("{path} not installed"))?;
        ensure!(
            meta.permissions().mode() & 0o777 == mode,
            "{path}: mode {:o}",
            meta.permissions().mode()
        );
    }
    let binary = installed("/usr/bin/cri-server");
    ensure!(
        std::fs::read_to_string(installed("/usr/share/cri-server/config.toml"))?
            == config_default(&binary)?,
        "the installed config is not `cri-server config default`"
    );
    check_unit(
        &installed("/usr/lib/systemd/system/cri-server.service"),
        "/usr/bin/cri-server",
        &binary,
    )?;

    // Another PREFIX lands in the unit's ExecStart too.
    let local = tempfile::tempdir()?;
    let localdir = format!("DESTDIR={}", local.path().display());
    run_ok(
        "make",
        &[
            "-s",
            "install",
            "PREFIX=/usr/local",
            "CARGO_PROFILE=dev",
            &localdir,
        ],
        &root,
    )?;
    let unit = std::fs::read_to_string(
        local
            .path()
            .join("usr/local/lib/systemd/system/cri-server.service"),
    )?;
    ensure!(
        unit.contains("\nExecStart=/usr/local/bin/cri-server\n"),
        "{unit}"
    );

    let args = ["-s", "uninstall", "PREFIX=/usr", destdir.as_str()];
    run_ok("make", &args, &root)?;
    let left: Vec<PathBuf> = walk(dest.path())?
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    ensure!(left.is_empty(), "left after uninstall: {left:?}");
    Ok(())
}

#[test]
fn the_debian_package_holds_the_binary_unit_config_and_docs() -> Result<()> {
    let root = cri_tests::workspace_root();
    if run("cargo", &["deb", "--version"], &root).map_or(true, |o| !o.status.success()) {
        bail!("cargo-deb is not installed: run scripts/install-deps.sh (cargo install --locked cargo-deb)");
    }
    // The debug build the suites use; `make deb` builds a release one.
    run_ok("cargo", &["build", "-p", "cri-server", "--bins"], &root)?;
    let out = tempfile::tempdir()?;
    run_ok(
        "cargo",
        &[
            "deb",
            "-p",
            "cri-server",
            "--profile",
            "dev",
            "--no-build",
            "--no-strip",
            "-o",
            &out.path().to_string_lossy(),
        ],
        &root,
    )?;
    let debs: Vec<PathBuf> = walk(out.path())?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    ensure!(debs.len() == 1, "packages: {debs:?}");
    let deb = debs[0].to_string_lossy().into_owned();
    ensure!(deb.contains("cri-server_0.1.0"), "{deb}");

    let field =
        |name: &str| run_ok("dpkg-deb", &["-f", &deb, name], &root).map(|s| s.trim().to_owned());
    ensure!(field("Package")? == "cri-server");
    let depends = field("Depends")?;
    ensure!(
        depends.contains("containerd (>= 1.6)") && depends.contains("runc"),
        "{depends}"
    );

    let scratch = tempfile::tempdir()?;
    run_ok(
        "dpkg",
        &["-x", &deb, &scratch.path().to_string_lossy()],
        &root,
    )?;
    let unpacked = |p: &str| scratch.path().join(p.trim_start_matches('/'));
    for path in [
        "/usr/bin/cri-server",
        "/usr/bin/cri-ctl",
        "/lib/systemd/system/cri-server.service",
        "/usr/share/cri-server/config.toml",
        "/usr/share/doc/cri-server/switching.md",
        "/usr/share/doc/cri-server/copyright",
    ] {
        ensure!(unpacked(path).is_file(), "{path} not in {deb}");
    }
    let binary = unpacked("/usr/bin/cri-server");
    let version = run_ok(&binary.to_string_lossy(), &["--version"], &root)?;
    ensure!(version.trim() == "cri-server 0.1.0", "{version}");
    ensure!(
        std::fs::read_to_string(unpacked("/usr/share/cri-server/config.toml"))?
            == config_default(&binary)?,
        "the packaged config is not `cri-server config default`"
    );
    check_unit(
        &unpacked("/lib/systemd/system/cri-server.service"),
        "/usr/bin/cri-server",
        &binary,
    )
}

#[test]
fn the_unit_parser_sees_what_systemd_would() -> Result<()> {
    let keys = parse_unit("[Unit]\nAfter=a.service b.service\n# c\n[Service]\nType=notify\n")?;
    ensure!(keys[&("Unit".into(), "After".into())] == vec!["a.service b.service".to_owned()]);
    ensure!(keys[&("Service".into(), "Type".into())] == vec!["notify".to_owned()]);
    ensure!(parse_unit("Type=notify\n").is_err());
    ensure!(parse_unit("[Service]\nnonsense\n").is_err());
    Ok(())
}

fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(walk(&path)?);
        }
        out.push(path);
    }
    Ok(out)
}
