//! `cri-conformance`: runs critest's validation suite against cri-server
//! (or, with `--reference`, against containerd's own CRI plugin) on a
//! private containerd, with critest's images built locally and served by a
//! local registry behind `hosts.toml` mirrors. Streams critest's output to
//! a log file, prints `conformance: N passed, N failed` and exits non-zero
//! unless every selected spec passed.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cri_tests::components::CHILD_PATH;
use cri_tests::conformance::{self, Conformance, Summary, Target};

const USAGE: &str = "usage:
  cri-conformance [--reference] [--critest PATH] [--out-dir DIR]
                  [--focus REGEX] [--skip REGEX]
      runs critest's validation suite against cri-server, or with
      --reference against containerd's own CRI plugin; critest is PATH,
      else $CRITEST, else ../shared/tools/critest, else on $PATH; its log
      and the daemon's go to DIR (default <target>/conformance)";

/// Skipped always: it pulls `test-image-digest@sha256:9700f9a2...`, an
/// image pinned by an upstream digest, which a locally built image cannot
/// have, so it cannot pass offline against any runtime.
const SKIP_UPSTREAM_DIGEST: &str = "public image with digest";
/// A full validation run takes 80-100 s on 2 cores; a hung one is killed.
const CRITEST_TIMEOUT: Duration = Duration::from_secs(600);

struct Args {
    target: Target,
    critest: Option<PathBuf>,
    out_dir: PathBuf,
    focus: Option<String>,
    skip: Vec<String>,
}

fn parse(args: Vec<String>) -> Result<Args> {
    let mut parsed = Args {
        target: Target::CriServer,
        critest: None,
        out_dir: cri_tests::images::pause::target_dir().join("conformance"),
        focus: None,
        skip: vec![SKIP_UPSTREAM_DIGEST.to_owned()],
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--reference" => parsed.target = Target::Reference,
            "--critest" => parsed.critest = Some(PathBuf::from(value()?)),
            "--out-dir" => parsed.out_dir = PathBuf::from(value()?),
            "--focus" => parsed.focus = Some(value()?),
            "--skip" => parsed.skip.push(value()?),
            "-h" | "--help" => bail!("{USAGE}"),
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    Ok(parsed)
}

fn main() -> ExitCode {
    let result = parse(std::env::args().skip(1).collect()).and_then(|args| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("start tokio")?
            .block_on(run(args))
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("cri-conformance: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether every selected spec passed.
async fn run(args: Args) -> Result<bool> {
    let critest = match args.critest.clone() {
        Some(path) => path,
        None => conformance::find_critest().context(
            "critest not found: set $CRITEST, put it in ../shared/tools/critest or on $PATH (cri-tools v1.29 or newer)",
        )?,
    };
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("create {}", args.out_dir.display()))?;
    let name = args.target.name();
    let log_path = args.out_dir.join(format!("critest-{name}.log"));
    let daemon_log = args.out_dir.join(format!("daemon-{name}.log"));

    let started = Instant::now();
    let setup = Conformance::start(args.target).await?;
    println!(
        "{name} on {} ({} critest images pushed, set up in {:.1?}); critest log: {}",
        setup.daemon.socket().display(),
        setup.images.len(),
        started.elapsed(),
        log_path.display()
    );
    let images_file = setup.write_test_images_file()?;
    let shm_before = conformance::shm_segments();
    let outcome = run_critest(
        &critest,
        &args,
        setup.daemon.socket(),
        &images_file,
        &log_path,
    )
    .await;
    let removed = conformance::remove_critest_shm(&shm_before);
    if !removed.is_empty() {
        println!("removed {} SysV shm segments critest left", removed.len());
    }
    std::fs::write(&daemon_log, setup.daemon.log())
        .with_context(|| format!("write {}", daemon_log.display()))?;
    drop(setup);
    let status = outcome?;

    let output = std::fs::read_to_string(&log_path)
        .with_context(|| format!("read {}", log_path.display()))?;
    let failed = conformance::failed_specs(&output);
    for spec in &failed {
        println!("FAILED: {spec}");
    }
    let summary = conformance::parse_summary(&output);
    let Summary {
        passed,
        failed: failed_count,
        ran,
        ..
    } = summary.unwrap_or_default();
    println!("conformance: {passed} passed, {failed_count} failed");
    println!(
        "critest ran {ran} specs against {name} in {:.0?} ({status}); logs: {} {}",
        started.elapsed(),
        log_path.display(),
        daemon_log.display()
    );
    if summary.is_none() {
        eprintln!(
            "cri-conformance: critest printed no summary; last lines of {}:\n{}",
            log_path.display(),
            tail(&output, 30)
        );
    }
    Ok(summary.is_some() && status.success() && failed_count == 0 && passed > 0)
}

/// Runs critest with its output (stdout and stderr) going to `log`.
async fn run_critest(
    critest: &Path,
    args: &Args,
    socket: &Path,
    images_file: &Path,
    log: &Path,
) -> Result<std::process::ExitStatus> {
    let endpoint = format!("unix://{}", socket.display());
    let out = File::create(log).with_context(|| format!("create {}", log.display()))?;
    let mut command = tokio::process::Command::new(critest);
    command
        .arg("--runtime-endpoint")
        .arg(&endpoint)
        .arg("--image-endpoint")
        .arg(&endpoint)
        .arg("-test-images-file")
        .arg(images_file)
        .arg("-ginkgo.no-color")
        .arg("-ginkgo.skip")
        .arg(args.skip.join("|"));
    if let Some(focus) = &args.focus {
        command.arg("-ginkgo.focus").arg(focus);
    }
    let mut child = command
        .current_dir(&args.out_dir)
        .env("PATH", CHILD_PATH)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("run {}", critest.display()))?;
    match tokio::time::timeout(CRITEST_TIMEOUT, child.wait()).await {
        Ok(status) => Ok(status?),
        Err(_) => {
            let _ = child.kill().await;
            bail!(
                "critest did not finish within {CRITEST_TIMEOUT:?}; see {}",
                log.display()
            )
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
