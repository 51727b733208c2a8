//! End to end with a real process: busybox writes to the FIFOs as a shim
//! would hand them to a container, and the CRI log and ExecSync output come
//! out as containerd would produce them.

#![allow(clippy::expect_used)]

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use cri_api::ids::ContainerId;
use cri_io::{ContainerIo, CriLog, ExecIo, FifoSet, LineLimit, StdioOptions, SystemClock};
use tokio::time::timeout;

const BUSYBOX: &str = "/bin/busybox";
const T: Duration = Duration::from_secs(20);
const CID: &str = "4f0c9a3ad2cbb5ef6e0e1ce3c0d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192";

fn busybox() -> &'static str {
    assert!(
        Path::new(BUSYBOX).exists(),
        "{BUSYBOX} is missing: install busybox-static (apt-get install busybox-static)"
    );
    BUSYBOX
}

/// Opens a FIFO for writing, as the shim does for the container process.
fn fifo_for_process(path: Option<&Path>) -> Stdio {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path.expect("fifo path"))
        .expect("open fifo");
    Stdio::from(file)
}

/// `2026-11-29T06:00:00.123Z`-shaped: date, `T`, time, optional trimmed
/// fraction, `Z`.
fn assert_rfc3339_nano(ts: &str) {
    let b = ts.as_bytes();
    assert!(ts.len() >= 20 && ts.ends_with('Z'), "{ts}");
    assert_eq!(
        (b[4], b[7], b[10], b[13], b[16]),
        (b'-', b'-', b'T', b':', b':'),
        "{ts}"
    );
    let frac = &ts[19..ts.len() - 1];
    if !frac.is_empty() {
        let digits = &frac[1..];
        assert!(
            frac.starts_with('.') && (1..=9).contains(&digits.len()),
            "{ts}"
        );
        assert!(
            digits.bytes().all(|d| d.is_ascii_digit()) && !digits.ends_with('0'),
            "{ts}"
        );
    }
}

#[tokio::test]
async fn container_output_lands_in_the_cri_log() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = tmp.path().join("state/containers").join(CID);
    let fifos = FifoSet::create(&state, CID, StdioOptions::default()).expect("fifos");
    let io = ContainerIo::new(ContainerId::from(CID), fifos).expect("container io");
    let log_path = tmp.path().join("pods/default_pod_uid/ctr/0.log");
    let log = CriLog::open(&log_path, LineLimit::default(), Arc::new(SystemClock)).expect("log");
    io.pipe(Some(log)).expect("pipe");

    let mut cmd = tokio::process::Command::new(busybox());
    cmd.args(["sh", "-c", "echo out; echo err >&2"])
        .stdin(Stdio::null())
        .stdout(fifo_for_process(io.fifos().stdout()))
        .stderr(fifo_for_process(io.fifos().stderr()));
    let status = timeout(T, cmd.status())
        .await
        .expect("busybox timed out")
        .expect("run busybox");
    assert!(status.success());
    drop(cmd);
    timeout(T, io.drained()).await.expect("output not drained");

    let text = std::fs::read_to_string(&log_path).expect("read log");
    let mut records: Vec<(String, String, String)> = text
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.splitn(4, ' ').collect();
            assert_eq!(f.len(), 4, "{line}");
            assert_rfc3339_nano(f[0]);
            (f[1].to_owned(), f[2].to_owned(), f[3].to_owned())
        })
        .collect();
    records.sort();
    let want = |s: &str, c: &str| (s.to_owned(), "F".to_owned(), c.to_owned());
    assert_eq!(records, [want("stderr", "err"), want("stdout", "out")]);

    let dir = io.fifos().dir().expect("fifo dir").to_owned();
    io.close().expect("close");
    assert!(!dir.exists());
}

#[tokio::test]
async fn exec_sync_output_is_capped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = tmp.path().join("state/containers").join(CID);
    let fifos = FifoSet::create(&state, "exec-1", StdioOptions::default()).expect("fifos");
    let mut io = ExecIo::new("exec-1", fifos).expect("exec io");
    let collector = io.collect(1000).expect("collect");

    let mut cmd = tokio::process::Command::new(busybox());
    cmd.args(["sh", "-c", "yes | head -c 300000; echo short >&2"])
        .stdin(Stdio::null())
        .stdout(fifo_for_process(io.fifos().stdout()))
        .stderr(fifo_for_process(io.fifos().stderr()));
    let status = timeout(T, cmd.status())
        .await
        .expect("busybox timed out")
        .expect("run busybox");
    assert!(status.success());
    drop(cmd);

    let out = timeout(T, collector.wait())
        .await
        .expect("output not drained");
    assert_eq!(out.stdout.data, b"y\n".repeat(500));
    assert!(out.stdout.truncated);
    assert_eq!(out.stderr.data, b"short\n");
    assert!(!out.stderr.truncated);
    io.close().expect("close");
}
