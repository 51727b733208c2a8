//! The CRI container log: framing a stream into `<time> <stream> <P|F> <bytes>\n`
//! records (containerd's `pkg/cri/io/logger.go`) and the log file both
//! streams of a container append to (`openLogFile` in `helpers_linux.go`).
//!
//! Framing, as `redirectLogs` does it:
//! - A line ends at `\n`; the `\n`, and one `\r` right before it, are not
//!   part of the content. A `\r` anywhere else is kept.
//! - With a limit of `n` bytes, content longer than `n` goes out as `P`
//!   records of exactly `n` bytes; the last piece (1..=n bytes, or an empty
//!   line) is `F`. A line of exactly `n` bytes is a single `F`.
//! - At EOF, bytes after the last `\n` are written as `P` (Go cannot tell
//!   whether the line was complete), split at the limit like any line.
//! - `max_container_log_line_size <= 0` means no limit.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::num::NonZeroUsize;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{Error, Result};
use crate::timestamp::{push_rfc3339_nano, Clock};

/// containerd's default `max_container_log_line_size`.
pub const DEFAULT_MAX_CONTAINER_LOG_LINE_SIZE: i64 = 16 * 1024;

/// Mode of a newly created container log file.
pub const LOG_FILE_MODE: u32 = 0o640;
/// Mode of the log file's parent dirs when they have to be created.
pub const LOG_DIR_MODE: u32 = 0o755;

/// Which output stream a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamType {
    /// The container's stdout (also the only stream of a tty).
    Stdout,
    /// The container's stderr.
    Stderr,
}

impl StreamType {
    /// The name used in log records (`runtime.Stdout` / `runtime.Stderr`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// The maximum content length of one log record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineLimit(Option<NonZeroUsize>);

impl LineLimit {
    /// No splitting: a line is written whole, however long.
    pub const UNLIMITED: Self = Self(None);

    /// From containerd's `max_container_log_line_size`: non-positive means
    /// no limit (0 included; containerd does not substitute the default).
    pub fn from_config(max_container_log_line_size: i64) -> Self {
        let n = usize::try_from(max_container_log_line_size).ok();
        Self(n.and_then(NonZeroUsize::new))
    }

    /// The limit in bytes, or `None` for no limit.
    pub fn get(self) -> Option<usize> {
        self.0.map(NonZeroUsize::get)
    }
}

impl Default for LineLimit {
    fn default() -> Self {
        Self::from_config(DEFAULT_MAX_CONTAINER_LOG_LINE_SIZE)
    }
}

#[derive(Clone, Copy)]
enum Tag {
    Partial,
    Full,
}

/// Turns one stream's raw bytes into CRI log records. Pure: it only appends
/// to the buffer it is given.
#[derive(Debug)]
pub struct LineEncoder {
    stream: StreamType,
    limit: Option<usize>,
    /// Bytes of the current, unterminated line not yet written.
    pending: Vec<u8>,
}

impl LineEncoder {
    /// An encoder for `stream` that splits at `limit`.
    pub fn new(stream: StreamType, limit: LineLimit) -> Self {
        Self {
            stream,
            limit: limit.get(),
            pending: Vec::new(),
        }
    }

    /// Appends the records completed by `data` to `out`; keeps the rest.
    pub fn encode(&mut self, data: &[u8], clock: &dyn Clock, out: &mut Vec<u8>) {
        let mut rest = data;
        while let Some(eol) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = (&rest[..eol], &rest[eol + 1..]);
            if self.pending.is_empty() {
                self.push_line(line, clock, out);
            } else {
                let mut full = std::mem::take(&mut self.pending);
                full.extend_from_slice(line);
                self.push_line(&full, clock, out);
                full.clear();
                self.pending = full;
            }
            rest = tail;
        }
        self.pending.extend_from_slice(rest);
        self.flush_overlong(clock, out);
    }

    /// At EOF: writes what is left of an unterminated line as `P` records.
    pub fn finish(&mut self, clock: &dyn Clock, out: &mut Vec<u8>) {
        let pending = std::mem::take(&mut self.pending);
        let mut content = pending.as_slice();
        while !content.is_empty() {
            let n = self.limit.map_or(content.len(), |l| l.min(content.len()));
            self.push_record(Tag::Partial, &content[..n], clock, out);
            content = &content[n..];
        }
    }

    /// A complete line (without its `\n`): drop one trailing `\r`, then
    /// `P` pieces of exactly `limit` bytes and a final `F`.
    fn push_line(&self, line: &[u8], clock: &dyn Clock, out: &mut Vec<u8>) {
        let mut content = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(limit) = self.limit {
            while content.len() > limit {
                self.push_record(Tag::Partial, &content[..limit], clock, out);
                content = &content[limit..];
            }
        }
        self.push_record(Tag::Full, content, clock, out);
    }

    /// Writes `P` records while the unterminated line is longer than the
    /// limit. A trailing `\r` does not count: it may be half of a `\r\n`.
    fn flush_overlong(&mut self, clock: &dyn Clock, out: &mut Vec<u8>) {
        let Some(limit) = self.limit else { return };
        let mut start = 0;
        loop {
            let rest = &self.pending[start..];
            let effective = rest.len() - usize::from(rest.ends_with(b"\r"));
            if effective <= limit {
                break;
            }
            self.push_record(Tag::Partial, &rest[..limit], clock, out);
            start += limit;
        }
        self.pending.drain(..start);
    }

    fn push_record(&self, tag: Tag, content: &[u8], clock: &dyn Clock, out: &mut Vec<u8>) {
        push_rfc3339_nano(clock.now(), out);
        out.push(b' ');
        out.extend_from_slice(self.stream.as_str().as_bytes());
        out.extend_from_slice(match tag {
            Tag::Partial => b" P ",
            Tag::Full => b" F ",
        });
        out.extend_from_slice(content);
        out.push(b'\n');
    }
}

/// The log file of one container, shared by its stdout and stderr writers.
#[derive(Debug)]
struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

impl LogFile {
    fn write_all(&self, buf: &[u8]) -> Result<()> {
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        file.write_all(buf).map_err(|source| Error::WriteLog {
            path: self.path.clone(),
            source,
        })
    }
}

/// Opens `path` as containerd's `openLogFile` does: parent dirs 0755,
/// `O_APPEND|O_CREAT|O_WRONLY`, mode 0640.
fn open_log_file(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(LOG_DIR_MODE)
            .create(dir)
            .map_err(|source| Error::CreateLogDir {
                path: dir.to_owned(),
                source,
            })?;
    }
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(LOG_FILE_MODE)
        .open(path)
        .map_err(|source| Error::OpenLog {
            path: path.to_owned(),
            source,
        })
}

/// A container's CRI log: the open file, the line limit and the clock.
/// Clones share the file, so [`CriLog::reopen`] moves every writer at once.
#[derive(Clone, Debug)]
pub struct CriLog {
    file: Arc<LogFile>,
    limit: LineLimit,
    clock: Arc<dyn Clock>,
}

impl CriLog {
    /// Opens (creating if needed) the log at `path`.
    pub fn open(path: impl Into<PathBuf>, limit: LineLimit, clock: Arc<dyn Clock>) -> Result<Self> {
        let path = path.into();
        let file = open_log_file(&path)?;
        Ok(Self {
            file: Arc::new(LogFile {
                path,
                file: Mutex::new(file),
            }),
            limit,
            clock,
        })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// Opens the path again and swaps the new file in (ReopenContainerLog,
    /// after the kubelet renamed the old file away). Each write goes whole to
    /// either the old or the new file, so no record is lost or duplicated.
    /// On error the old file stays in use.
    pub fn reopen(&self) -> Result<()> {
        let new = open_log_file(&self.file.path)?;
        *self
            .file
            .file
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = new;
        Ok(())
    }

    /// A writer that frames `stream` into this log.
    pub fn writer(&self, stream: StreamType) -> CriLogWriter {
        CriLogWriter {
            log: self.clone(),
            encoder: LineEncoder::new(stream, self.limit),
            scratch: Vec::new(),
        }
    }
}

/// One stream's writer into a [`CriLog`]. All records produced by one call
/// go out in a single locked write, so they never interleave mid-line with
/// the other stream's records.
#[derive(Debug)]
pub struct CriLogWriter {
    log: CriLog,
    encoder: LineEncoder,
    scratch: Vec<u8>,
}

impl CriLogWriter {
    /// Frames `data` and appends the completed records to the file.
    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        self.encoder.encode(data, self.log.clock.as_ref(), &mut out);
        self.flush(out).await
    }

    /// At EOF: writes the unterminated rest as `P` records.
    pub async fn finish(&mut self) -> Result<()> {
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        self.encoder.finish(self.log.clock.as_ref(), &mut out);
        self.flush(out).await
    }

    async fn flush(&mut self, out: Vec<u8>) -> Result<()> {
        if out.is_empty() {
            self.scratch = out;
            return Ok(());
        }
        let file = Arc::clone(&self.log.file);
        let path = file.path.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let res = file.write_all(&out);
            (out, res)
        })
        .await;
        match joined {
            Ok((out, res)) => {
                self.scratch = out;
                res
            }
            Err(e) => Err(Error::WriteLog {
                path,
                source: std::io::Error::other(e),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    /// 2026-11-29T06:00:00Z plus one nanosecond per call after the first.
    #[derive(Debug, Default)]
    struct StepClock(AtomicU64);

    impl Clock for StepClock {
        fn now(&self) -> SystemTime {
            UNIX_EPOCH
                + Duration::new(1_795_932_000, 0)
                + Duration::from_nanos(self.0.fetch_add(1, Ordering::SeqCst))
        }
    }

    /// Always 2026-11-29T06:00:00.1Z.
    #[derive(Debug)]
    struct FixedClock;

    impl Clock for FixedClock {
        fn now(&self) -> SystemTime {
            UNIX_EPOCH + Duration::new(1_795_932_000, 100_000_000)
        }
    }

    const TS: &str = "2026-11-29T06:00:00.1Z";

    /// Feeds `chunks` to a stdout encoder, then EOF, and compares the records
    /// with `expected` (`(tag, content)` pairs).
    fn check(limit: LineLimit, chunks: &[&[u8]], expected: &[(&str, &[u8])]) {
        let mut enc = LineEncoder::new(StreamType::Stdout, limit);
        let mut out = Vec::new();
        for chunk in chunks {
            enc.encode(chunk, &FixedClock, &mut out);
        }
        enc.finish(&FixedClock, &mut out);
        let mut want = Vec::new();
        for (tag, content) in expected {
            want.extend_from_slice(format!("{TS} stdout {tag} ").as_bytes());
            want.extend_from_slice(content);
            want.push(b'\n');
        }
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&want)
        );
    }

    fn limit(n: i64) -> LineLimit {
        LineLimit::from_config(n)
    }

    #[test]
    fn exact_record_format() {
        let mut enc = LineEncoder::new(StreamType::Stderr, LineLimit::default());
        let mut out = Vec::new();
        enc.encode(b"hello world\n", &StepClock::default(), &mut out);
        assert_eq!(out, b"2026-11-29T06:00:00Z stderr F hello world\n");

        let clock = StepClock(AtomicU64::new(123_456_789));
        let mut out = Vec::new();
        enc.encode(b"x\n", &clock, &mut out);
        assert_eq!(out, b"2026-11-29T06:00:00.123456789Z stderr F x\n");
    }

    #[test]
    fn simple_lines() {
        check(limit(16384), &[b"a\nbb\n"], &[("F", b"a"), ("F", b"bb")]);
    }

    #[test]
    fn empty_line_is_an_empty_full_record() {
        check(limit(16384), &[b"\n\n"], &[("F", b""), ("F", b"")]);
    }

    #[test]
    fn line_split_across_reads() {
        check(
            limit(16384),
            &[b"hel", b"lo\nwor", b"ld\n"],
            &[("F", b"hello"), ("F", b"world")],
        );
    }

    #[test]
    fn long_line_is_split_into_partials_and_a_full() {
        check(
            limit(4),
            &[b"abcdefghij\n"],
            &[("P", b"abcd"), ("P", b"efgh"), ("F", b"ij")],
        );
        check(
            limit(4),
            &[b"abcdefgh\n"],
            &[("P", b"abcd"), ("F", b"efgh")],
        );
    }

    #[test]
    fn long_line_arriving_in_pieces() {
        check(
            limit(4),
            &[b"ab", b"cdef", b"ghi", b"j\n"],
            &[("P", b"abcd"), ("P", b"efgh"), ("F", b"ij")],
        );
    }

    #[test]
    fn line_exactly_at_the_limit_is_one_full_record() {
        check(limit(4), &[b"abcd\n"], &[("F", b"abcd")]);
        check(limit(4), &[b"abcd", b"\n"], &[("F", b"abcd")]);
        let line = vec![b'x'; 16384];
        let mut input = line.clone();
        input.push(b'\n');
        check(LineLimit::default(), &[&input], &[("F", &line)]);
    }

    #[test]
    fn default_limit_splits_at_16k() {
        let mut input = vec![b'y'; 16385];
        input.push(b'\n');
        check(
            LineLimit::default(),
            &[&input],
            &[("P", &[b'y'; 16384]), ("F", b"y")],
        );
    }

    #[test]
    fn non_positive_limit_means_unlimited() {
        assert_eq!(LineLimit::from_config(0), LineLimit::UNLIMITED);
        assert_eq!(LineLimit::from_config(-1), LineLimit::UNLIMITED);
        assert_eq!(LineLimit::default().get(), Some(16384));
        let mut input = vec![b'z'; 100_000];
        input.push(b'\n');
        check(
            LineLimit::UNLIMITED,
            &[&input[..50_000], &input[50_000..]],
            &[("F", &[b'z'; 100_000])],
        );
    }

    #[test]
    fn crlf_drops_the_cr() {
        check(
            limit(16384),
            &[b"dos\r\nunix\n"],
            &[("F", b"dos"), ("F", b"unix")],
        );
    }

    #[test]
    fn cr_not_before_lf_is_kept() {
        check(
            limit(16384),
            &[b"a\rb\n\r\r\n"],
            &[("F", b"a\rb"), ("F", b"\r")],
        );
    }

    #[test]
    fn crlf_straddling_reads_and_the_limit() {
        check(limit(4), &[b"abcd\r", b"\n"], &[("F", b"abcd")]);
        check(limit(4), &[b"abc\r", b"\r\n"], &[("F", b"abc\r")]);
        check(
            limit(4),
            &[b"abcd\r", b"x\n"],
            &[("P", b"abcd"), ("F", b"\rx")],
        );
    }

    #[test]
    fn eof_without_newline_is_partial() {
        check(
            limit(16384),
            &[b"done\nno newline"],
            &[("F", b"done"), ("P", b"no newline")],
        );
        check(limit(4), &[b"abcdefg"], &[("P", b"abcd"), ("P", b"efg")]);
        check(limit(4), &[b"abcd\r"], &[("P", b"abcd"), ("P", b"\r")]);
        check(limit(16384), &[b"cr at eof\r"], &[("P", b"cr at eof\r")]);
    }

    #[test]
    fn eof_with_nothing_pending_writes_nothing() {
        check(limit(16384), &[b"x\n"], &[("F", b"x")]);
        check(limit(16384), &[], &[]);
    }

    fn read(path: &Path) -> String {
        String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
    }

    #[tokio::test]
    async fn open_creates_dirs_and_file_with_containerd_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("pods/ns_name_uid/ctr/0.log");
        let log = CriLog::open(&path, LineLimit::default(), Arc::new(FixedClock)).unwrap();
        assert_eq!(log.path(), path);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        // The test process umask may strip bits, never add them.
        assert_eq!(mode(&path) & !LOG_FILE_MODE, 0);
        assert_eq!(mode(path.parent().unwrap()) & !LOG_DIR_MODE, 0);

        let mut w = log.writer(StreamType::Stdout);
        w.write(b"one\n").await.unwrap();
        drop(w);
        // Append, never truncate.
        let log = CriLog::open(&path, LineLimit::default(), Arc::new(FixedClock)).unwrap();
        log.writer(StreamType::Stderr)
            .write(b"two\n")
            .await
            .unwrap();
        assert_eq!(
            read(&path),
            format!("{TS} stdout F one\n{TS} stderr F two\n")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn stdout_and_stderr_interleave_only_at_line_granularity() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("0.log");
        let log = CriLog::open(&path, limit(64), Arc::new(FixedClock)).unwrap();
        let spawn = |stream: StreamType, byte: u8| {
            let mut w = log.writer(stream);
            tokio::spawn(async move {
                for i in 0..300usize {
                    // Varying lengths, some over the limit, fed in odd chunks.
                    let mut line = vec![byte; 1 + (i * 7) % 150];
                    line.push(b'\n');
                    for chunk in line.chunks(13) {
                        w.write(chunk).await.unwrap();
                    }
                }
            })
        };
        let (a, b) = (
            spawn(StreamType::Stdout, b'o'),
            spawn(StreamType::Stderr, b'e'),
        );
        a.await.unwrap();
        b.await.unwrap();

        let text = read(&path);
        let (mut out_bytes, mut err_bytes) = (0, 0);
        for record in text.lines() {
            let mut fields = record.splitn(4, ' ');
            assert_eq!(fields.next(), Some(TS), "{record}");
            let stream = fields.next().unwrap();
            let tag = fields.next().unwrap();
            let content = fields.next().unwrap();
            assert!(tag == "P" || tag == "F", "{record}");
            assert!(content.len() <= 64, "{record}");
            let (byte, count) = match stream {
                "stdout" => ('o', &mut out_bytes),
                "stderr" => ('e', &mut err_bytes),
                other => panic!("stream {other}"),
            };
            assert!(content.chars().all(|c| c == byte), "mixed record {record}");
            *count += content.len();
        }
        let total: usize = (0..300usize).map(|i| 1 + (i * 7) % 150).sum();
        assert_eq!((out_bytes, err_bytes), (total, total));
    }

    #[tokio::test]
    async fn reopen_after_rename_moves_to_the_new_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("0.log");
        let log = CriLog::open(&path, LineLimit::default(), Arc::new(FixedClock)).unwrap();
        let mut w = log.writer(StreamType::Stdout);
        w.write(b"before\nhalf ").await.unwrap();

        let rotated = tmp.path().join("0.log.20261129-060000");
        std::fs::rename(&path, &rotated).unwrap();
        w.write(b"still old\n").await.unwrap();
        log.reopen().unwrap();
        w.write(b"after\n").await.unwrap();

        assert_eq!(
            read(&rotated),
            format!("{TS} stdout F before\n{TS} stdout F half still old\n")
        );
        assert_eq!(read(&path), format!("{TS} stdout F after\n"));
    }

    #[tokio::test]
    async fn reopen_failure_keeps_the_old_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ctr");
        let path = dir.join("0.log");
        let log = CriLog::open(&path, LineLimit::default(), Arc::new(FixedClock)).unwrap();
        let moved = tmp.path().join("moved");
        std::fs::rename(&dir, &moved).unwrap();
        // A plain file where the dir was: the reopen cannot create the path.
        std::fs::write(&dir, b"").unwrap();
        assert!(matches!(
            log.reopen(),
            Err(Error::CreateLogDir { .. } | Error::OpenLog { .. })
        ));
        log.writer(StreamType::Stdout)
            .write(b"kept\n")
            .await
            .unwrap();
        assert_eq!(read(&moved.join("0.log")), format!("{TS} stdout F kept\n"));
    }
}
