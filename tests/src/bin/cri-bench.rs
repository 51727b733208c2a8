//! `cri-bench`: CRI latency, scale and memory, on one endpoint or two
//! side by side. `--harness` (what `make bench` runs) starts cri-server
//! on a private containerd and containerd's own CRI plugin on a second
//! one, runs every workload on both alternately, and prints per
//! operation p50/p90/p99, the ratio of medians and the geometric mean
//! over critest's benchmark operations, then cri-server's containerd
//! round trips per CRI call. `--compare A B` runs the RPC workloads on
//! two running endpoints; `--runtime-endpoint` on one. A measurement
//! tool, not a test.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use cri_tests::bench::large_image::IMAGE_OPS_IMAGE;
use cri_tests::bench::report::Report;
use cri_tests::bench::side_by_side::{self, LargeImage, SideBySide};
use cri_tests::bench::workloads::{self, Options};
use cri_tests::bench::{BenchImages, DaemonPids, Endpoint};
use cri_tests::images::critest;

const USAGE: &str = "usage:
  cri-bench --harness [options]
      starts cri-server (CRI_SERVER_BIN, else built) on a private containerd
      and containerd's own CRI plugin on a second containerd, runs every
      workload on both, alternating, and prints the table
  cri-bench --compare unix:///a.sock unix:///b.sock [--pids PID_A,PID_B] [options]
      the RPC workloads on two running endpoints (both must reach --image
      and --image-ops); with --pids, the RSS of those processes
  cri-bench --runtime-endpoint unix:///a.sock [--pids PID] [options]
      the RPC workloads on one endpoint
options (defaults in parentheses):
  --rounds R (3)            rounds of each workload, endpoints alternating
  --lifecycles N (10)       pod+container lifecycles per round and endpoint
  --image-cycles N (10)     image pull/status/list/remove cycles per round
  --scales A,B,.. (100,500,1000)
                            container counts of the status/list storms
  --storm-calls N (100)     calls of each RPC per storm and round
  --stats-pods N (110)      running pods of the stats and restart workloads
  --stats-per-pod N (3)     running containers per pod there
  --stats-calls N (20)      calls of each stats RPC per round
  --parallel N (10)         pods started at once
  --restart-rounds N (3)    kill -9 restarts per side (--harness)
  --pull-rounds N (3)       cold pulls of the large image per side (--harness)
  --large L,MIB (4,40)      the large image: L layers of MIB MiB (--harness)
  --image REF               the containers' image (critest's busybox)
  --image-ops REF           the image of the image operations
  --out FILE                also write the tables to FILE (Markdown)";

enum Mode {
    Harness,
    Compare(Vec<PathBuf>),
}

struct Args {
    mode: Mode,
    pids: Vec<u32>,
    opts: Options,
    restart_rounds: usize,
    pull_rounds: usize,
    large: LargeImage,
    images: BenchImages,
    out: Option<PathBuf>,
}

fn socket(value: &str) -> PathBuf {
    PathBuf::from(value.strip_prefix("unix://").unwrap_or(value))
}

fn list<T: std::str::FromStr>(value: &str) -> Result<Vec<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    value.split(',').map(|v| Ok(v.trim().parse()?)).collect()
}

fn parse(args: Vec<String>) -> Result<Args> {
    let mut parsed = Args {
        mode: Mode::Compare(Vec::new()),
        pids: Vec::new(),
        opts: Options::default(),
        restart_rounds: 3,
        pull_rounds: 3,
        large: LargeImage {
            layers: 4,
            mib_per_layer: 40,
        },
        images: BenchImages {
            container: critest::BUSYBOX.into(),
            image_ops: IMAGE_OPS_IMAGE.into(),
            large: None,
        },
        out: None,
    };
    let mut harness = false;
    let mut sockets = Vec::new();
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        let o = &mut parsed.opts;
        match flag.as_str() {
            "--harness" => harness = true,
            "--compare" => {
                sockets.push(socket(&value()?));
                sockets.push(socket(&value()?));
            }
            "--runtime-endpoint" | "-r" => sockets.push(socket(&value()?)),
            "--pids" | "--pid" => parsed.pids = list(&value()?)?,
            "--rounds" => o.rounds = value()?.parse()?,
            "--lifecycles" => o.lifecycles = value()?.parse()?,
            "--image-cycles" => o.image_cycles = value()?.parse()?,
            "--scales" => o.storm_scales = list(&value()?)?,
            "--storm-calls" => o.storm_calls = value()?.parse()?,
            "--stats-pods" => o.stats_pods = value()?.parse()?,
            "--stats-per-pod" => o.stats_containers_per_pod = value()?.parse()?,
            "--stats-calls" => o.stats_calls = value()?.parse()?,
            "--parallel" => o.parallel_pods = value()?.parse()?,
            "--restart-rounds" => parsed.restart_rounds = value()?.parse()?,
            "--pull-rounds" => parsed.pull_rounds = value()?.parse()?,
            "--large" => {
                let sizes: Vec<usize> = list(&value()?)?;
                let [layers, mib] = sizes[..] else {
                    bail!("--large wants LAYERS,MIB\n{USAGE}");
                };
                parsed.large = LargeImage {
                    layers,
                    mib_per_layer: mib,
                };
            }
            "--image" => parsed.images.container = value()?,
            "--image-ops" => parsed.images.image_ops = value()?,
            "--out" => parsed.out = Some(PathBuf::from(value()?)),
            "--help" | "-h" => bail!("{USAGE}"),
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    parsed.mode = match (harness, sockets.len()) {
        (true, 0) => Mode::Harness,
        (false, 1 | 2) => Mode::Compare(sockets),
        _ => bail!("give one of --harness, --compare A B or --runtime-endpoint\n{USAGE}"),
    };
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
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cri-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let started = std::time::Instant::now();
    let (report, calls) = match &args.mode {
        Mode::Harness => harness(&args).await?,
        Mode::Compare(sockets) => (compare(&args, sockets).await?, None),
    };
    let mut text = format!(
        "cri-bench: {} rounds, {} on {} cores, {:.0} s\n\n{}",
        args.opts.rounds,
        report.sides().join(" vs "),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        started.elapsed().as_secs_f64(),
        report.render()
    );
    if let Some(calls) = calls {
        text.push_str("\ncontainerd round trips per CRI call (cri-server):\n\n");
        text.push_str(&calls.render());
    }
    println!("{text}");
    if let Some(out) = &args.out {
        std::fs::write(out, &text).with_context(|| format!("write {}", out.display()))?;
    }
    Ok(())
}

async fn compare(args: &Args, sockets: &[PathBuf]) -> Result<Report> {
    let mut endpoints = Vec::new();
    for (i, socket) in sockets.iter().enumerate() {
        let name = format!("{}", (b'A' + i as u8) as char);
        let mut ep = Endpoint::connect(&name, socket).await?;
        ep.pids = args.pids.get(i).map(|&pid| DaemonPids {
            cri: pid,
            all: vec![pid],
        });
        endpoints.push(ep);
    }
    let mut report = Report::new(endpoints.iter().map(|e| e.name.clone()).collect());
    workloads::run_all(&mut endpoints, &mut report, &args.images, &args.opts).await?;
    workloads::cleanup(&mut endpoints).await;
    Ok(report)
}

async fn harness(args: &Args) -> Result<(Report, Option<cri_tests::bench::calls::CallTable>)> {
    workloads::progress("starting cri-server and containerd's CRI plugin side by side");
    let mut both = SideBySide::start(args.large).await?;
    let mut report = Report::new(vec!["cri-server".into(), "containerd".into()]);
    let calls = side_by_side::run(
        &mut both,
        &mut report,
        &args.opts,
        args.large,
        args.pull_rounds,
        args.restart_rounds,
    )
    .await;
    match calls {
        Ok(calls) => Ok((report, Some(calls))),
        Err(e) => {
            eprintln!("{}\n\nwhat was measured:\n{}", both.logs(), report.render());
            Err(e)
        }
    }
}
