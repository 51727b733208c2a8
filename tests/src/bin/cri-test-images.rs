//! `cri-test-images`: writes the harness's test images as an OCI archive for `ctr images import` (`make run`), or pushes them to a running registry.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use cri_tests::images::{self, ImageKind, DEFAULT_BUSYBOX_NAME, DEFAULT_PAUSE_NAME};

const USAGE: &str = "usage:
  cri-test-images archive <out.tar> [--busybox-name NAME] [--pause-name NAME]
      write busybox and pause as an OCI image-layout tar; import it with
      `ctr -n k8s.io images import --all-platforms <out.tar>`
      (defaults: docker.io/library/busybox:latest, registry.k8s.io/pause:3.8)
  cri-test-images push <host:port>
      push every test image to a plain-HTTP registry";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cri-test-images: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("archive") => archive(&args[1..]),
        Some("push") => push(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => bail!("{USAGE}"),
    }
}

fn archive(args: &[String]) -> Result<()> {
    let mut out: Option<PathBuf> = None;
    let mut busybox = DEFAULT_BUSYBOX_NAME.to_string();
    let mut pause = DEFAULT_PAUSE_NAME.to_string();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--busybox-name" => {
                busybox = rest.next().context("--busybox-name needs a value")?.clone()
            }
            "--pause-name" => pause = rest.next().context("--pause-name needs a value")?.clone(),
            flag if flag.starts_with("--") => bail!("unknown flag {flag}\n{USAGE}"),
            path if out.is_none() => out = Some(PathBuf::from(path)),
            extra => bail!("unexpected argument {extra}\n{USAGE}"),
        }
    }
    let out = out.with_context(|| format!("missing <out.tar>\n{USAGE}"))?;
    images::write_oci_archive(
        &out,
        &[(ImageKind::Busybox, &busybox), (ImageKind::Pause, &pause)],
    )?;
    println!("wrote {} ({busybox}, {pause})", out.display());
    Ok(())
}

fn push(args: &[String]) -> Result<()> {
    let [host] = args else {
        bail!("{USAGE}");
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let pushed = runtime.block_on(images::push_to_host(host))?;
    for reference in pushed
        .busybox_tags
        .iter()
        .chain(&pushed.pause_tags)
        .chain([&pushed.multiarch, &pushed.docker_schema2])
    {
        println!("{reference}");
    }
    Ok(())
}
