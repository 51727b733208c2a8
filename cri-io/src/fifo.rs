//! Stdio FIFO sets of containers and execs: creating them in containerd's
//! layout, opening them without blocking, reopening them from a task record
//! after a restart, and removing them.
//!
//! Layout (`pkg/cri/io/helpers.go` `newFifos`, `cio.NewFIFOSetInDir`):
//! `<state>/containers/<cid>/io/<random digits>/<id>-stdin|-stdout|-stderr`,
//! where `<id>` is the container id or the exec id. Dirs and FIFOs are 0700.
//! stdin is made only when asked for; stdout and stderr always, as
//! containerd's `newFifos` does, though with a tty the stderr FIFO stays
//! unused and unopened (the terminal merges both streams into stdout).
//!
//! Opening: containerd's `fifo.OpenFifo(O_RDONLY|O_NONBLOCK)` returns at once
//! and blocks the first read until the shim connects. A tokio
//! [`pipe::Receiver`] does the same: it opens `O_RDONLY|O_NONBLOCK`, and
//! Linux reports neither data nor hang-up on a FIFO that has never had a
//! writer, so reads wait for the shim instead of seeing EOF. Stdin is opened
//! `O_RDWR`, which never fails with `ENXIO` when no reader is there yet.

use std::fs::DirBuilder;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::Mode;
use tokio::net::unix::pipe;

use crate::error::{Error, Result};

/// Mode of the FIFOs and of the dirs holding them.
pub const FIFO_MODE: u32 = 0o700;

/// How many random dir names to try before giving up, as Go's `MkdirTemp`.
const TEMP_DIR_ATTEMPTS: usize = 10_000;

/// Which stdio streams a container or exec has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StdioOptions {
    /// `config.stdin`: make a stdin FIFO.
    pub stdin: bool,
    /// `config.tty`: one output stream (stdout); the stderr FIFO exists but
    /// is not read.
    pub tty: bool,
}

/// The FIFO paths of a set, as recorded in the containerd task
/// (`Process.stdin/stdout/stderr/terminal`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FifoPaths {
    /// Stdin FIFO, if the process has stdin.
    pub stdin: Option<PathBuf>,
    /// Stdout FIFO.
    pub stdout: Option<PathBuf>,
    /// Stderr FIFO; `None` with a tty.
    pub stderr: Option<PathBuf>,
    /// The process has a terminal: stdout carries both streams.
    pub terminal: bool,
}

impl FifoPaths {
    /// From the strings of a containerd task record, where `""` means none.
    pub fn from_task_record(stdin: &str, stdout: &str, stderr: &str, terminal: bool) -> Self {
        let path = |s: &str| (!s.is_empty()).then(|| PathBuf::from(s));
        Self {
            stdin: path(stdin),
            stdout: path(stdout),
            stderr: path(stderr),
            terminal,
        }
    }

    /// Stdin as containerd's task request wants it (`""` for none).
    pub fn stdin_str(&self) -> String {
        task_str(self.stdin.as_deref())
    }

    /// Stdout as containerd's task request wants it (`""` for none).
    pub fn stdout_str(&self) -> String {
        task_str(self.stdout.as_deref())
    }

    /// Stderr as containerd's task request wants it (`""` for none).
    pub fn stderr_str(&self) -> String {
        task_str(self.stderr.as_deref())
    }
}

fn task_str(path: Option<&Path>) -> String {
    path.map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A set of stdio FIFOs on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FifoSet {
    paths: FifoPaths,
    /// The random dir we created, removed whole by [`FifoSet::remove`];
    /// `None` for a set reopened from a task record.
    created_dir: Option<PathBuf>,
}

/// The opened ends of a [`FifoSet`]: we write stdin and read the outputs.
#[derive(Debug, Default)]
pub struct StdioPipes {
    /// Write end of the stdin FIFO.
    pub stdin: Option<pipe::Sender>,
    /// Read end of the stdout FIFO.
    pub stdout: Option<pipe::Receiver>,
    /// Read end of the stderr FIFO (never opened with a tty).
    pub stderr: Option<pipe::Receiver>,
}

impl FifoSet {
    /// Creates `<container_state_dir>/io/<random digits>/` and the FIFOs of
    /// `id` in it. `container_state_dir` is `<state>/containers/<cid>`, for
    /// the container's own FIFOs and for its execs' alike.
    pub fn create(container_state_dir: &Path, id: &str, opts: StdioOptions) -> Result<Self> {
        let io_dir = container_state_dir.join("io");
        DirBuilder::new()
            .recursive(true)
            .mode(FIFO_MODE)
            .create(&io_dir)
            .map_err(|source| Error::CreateFifoDir {
                path: io_dir.clone(),
                source,
            })?;
        let dir = make_temp_dir(&io_dir)?;
        let fifo = |suffix: &str| dir.join(format!("{id}-{suffix}"));
        let paths = FifoPaths {
            stdin: opts.stdin.then(|| fifo("stdin")),
            stdout: Some(fifo("stdout")),
            stderr: Some(fifo("stderr")),
            terminal: opts.tty,
        };
        let set = Self {
            paths,
            created_dir: Some(dir),
        };
        for path in set.all_paths() {
            if let Err(e) = mkfifo(path) {
                if let Err(undo) = set.remove() {
                    tracing::warn!(error = %undo, "remove fifo dir after failed create");
                }
                return Err(e);
            }
        }
        Ok(set)
    }

    /// A set that already exists (paths from the containerd task record
    /// after a restart). A missing FIFO is made again, as containerd's
    /// `OpenFifo(O_CREAT)` does; a path that is not a FIFO is an error.
    pub fn reopen(paths: FifoPaths) -> Result<Self> {
        let set = Self {
            paths,
            created_dir: None,
        };
        for path in set.opened_paths() {
            match std::fs::metadata(path) {
                Ok(meta) if meta.file_type().is_fifo() => {}
                Ok(_) => {
                    return Err(Error::NotAFifo {
                        path: path.to_owned(),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => mkfifo(path)?,
                Err(source) => {
                    return Err(Error::OpenFifo {
                        path: path.to_owned(),
                        source,
                    })
                }
            }
        }
        Ok(set)
    }

    /// The paths, for the containerd task request and for status.
    pub fn paths(&self) -> &FifoPaths {
        &self.paths
    }

    /// The stdin FIFO, if any.
    pub fn stdin(&self) -> Option<&Path> {
        self.paths.stdin.as_deref()
    }

    /// The stdout FIFO, if any.
    pub fn stdout(&self) -> Option<&Path> {
        self.paths.stdout.as_deref()
    }

    /// The stderr FIFO, if any (one is made for every new set; a record from
    /// an older task may have none).
    pub fn stderr(&self) -> Option<&Path> {
        self.paths.stderr.as_deref()
    }

    /// Whether the process has a terminal.
    pub fn terminal(&self) -> bool {
        self.paths.terminal
    }

    /// The dir holding the FIFOs.
    pub fn dir(&self) -> Option<&Path> {
        self.created_dir
            .as_deref()
            .or_else(|| self.all_paths().next().and_then(Path::parent))
    }

    /// Opens our ends: stdin for writing (`O_RDWR`), stdout and stderr for
    /// reading (`O_RDONLY|O_NONBLOCK`). Never blocks. With a terminal,
    /// stderr is not opened even if a path is recorded. Must be called
    /// inside a tokio runtime.
    pub fn open(&self) -> Result<StdioPipes> {
        let open_err = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::OpenFifo { path, source }
        };
        let mut pipes = StdioPipes::default();
        if let Some(path) = self.stdin() {
            pipes.stdin = Some(
                pipe::OpenOptions::new()
                    .read_write(true)
                    .open_sender(path)
                    .map_err(open_err(path))?,
            );
        }
        if let Some(path) = self.stdout() {
            pipes.stdout = Some(
                pipe::OpenOptions::new()
                    .open_receiver(path)
                    .map_err(open_err(path))?,
            );
        }
        if let Some(path) = self.stderr().filter(|_| !self.terminal()) {
            pipes.stderr = Some(
                pipe::OpenOptions::new()
                    .open_receiver(path)
                    .map_err(open_err(path))?,
            );
        }
        Ok(pipes)
    }

    /// Removes the FIFOs. A set we created goes with its whole dir. For a
    /// reopened set, as containerd's `loadFifos` closer: each path that is
    /// a FIFO is removed, then its dir if that left it empty. Removing an
    /// already removed set succeeds.
    pub fn remove(&self) -> Result<()> {
        if let Some(dir) = &self.created_dir {
            return match std::fs::remove_dir_all(dir) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::RemoveFifos {
                    path: dir.clone(),
                    source: e,
                }),
                _ => Ok(()),
            };
        }
        let mut first_err = None;
        let mut dirs: Vec<&Path> = Vec::new();
        for path in self.all_paths() {
            match std::fs::symlink_metadata(path) {
                Ok(meta) if meta.file_type().is_fifo() => {}
                _ => continue,
            }
            if let Err(source) = std::fs::remove_file(path) {
                if source.kind() != io::ErrorKind::NotFound && first_err.is_none() {
                    first_err = Some(Error::RemoveFifos {
                        path: path.to_owned(),
                        source,
                    });
                }
            }
            if let Some(dir) = path.parent().filter(|d| !dirs.contains(d)) {
                dirs.push(dir);
            }
        }
        for dir in dirs {
            // Only when empty: the dir is not ours to empty.
            let _ = std::fs::remove_dir(dir);
        }
        first_err.map_or(Ok(()), Err)
    }

    fn all_paths(&self) -> impl Iterator<Item = &Path> {
        [self.stdin(), self.stdout(), self.stderr()]
            .into_iter()
            .flatten()
    }

    /// The paths [`FifoSet::open`] opens.
    fn opened_paths(&self) -> impl Iterator<Item = &Path> {
        let stderr = self.stderr().filter(|_| !self.terminal());
        [self.stdin(), self.stdout(), stderr].into_iter().flatten()
    }
}

/// `os.MkdirTemp(parent, "")`: a new 0700 dir named by a random `u32` in
/// decimal.
fn make_temp_dir(parent: &Path) -> Result<PathBuf> {
    let mut last_err = None;
    for _ in 0..TEMP_DIR_ATTEMPTS {
        let dir = parent.join(rand::random::<u32>().to_string());
        match DirBuilder::new().mode(FIFO_MODE).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_err = Some(e),
            Err(source) => return Err(Error::CreateFifoDir { path: dir, source }),
        }
    }
    let source = last_err.unwrap_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists));
    Err(Error::CreateFifoDir {
        path: parent.to_owned(),
        source,
    })
}

fn mkfifo(path: &Path) -> Result<()> {
    nix::unistd::mkfifo(path, Mode::from_bits_truncate(FIFO_MODE)).map_err(|source| {
        Error::CreateFifo {
            path: path.to_owned(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const ID: &str = "0123abcd";

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn is_fifo(path: &Path) -> bool {
        std::fs::symlink_metadata(path)
            .map(|m| m.file_type().is_fifo())
            .unwrap_or(false)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn check(opts: StdioOptions, expected: &[&str]) {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("containers").join(ID);
        let set = FifoSet::create(&state, ID, opts).unwrap();

        let dir = set.dir().unwrap().to_owned();
        assert_eq!(dir.parent(), Some(state.join("io").as_path()));
        let name = dir.file_name().unwrap().to_string_lossy();
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()),
            "{name}"
        );
        assert_eq!(mode(&dir) & !FIFO_MODE, 0);
        assert_eq!(mode(&state.join("io")) & !FIFO_MODE, 0);

        let want: Vec<String> = expected.iter().map(|s| format!("{ID}-{s}")).collect();
        assert_eq!(names(&dir), want);
        for name in &want {
            assert!(is_fifo(&dir.join(name)), "{name}");
            assert_eq!(mode(&dir.join(name)) & !FIFO_MODE, 0);
        }
        assert_eq!(set.stdin().is_some(), opts.stdin);
        assert!(set.stderr().is_some());
        assert_eq!(set.terminal(), opts.tty);

        set.remove().unwrap();
        assert!(!dir.exists());
        assert!(state.join("io").exists());
        set.remove().unwrap();
    }

    #[test]
    fn create_without_stdin() {
        check(
            StdioOptions {
                stdin: false,
                tty: false,
            },
            &["stderr", "stdout"],
        );
    }

    #[test]
    fn create_with_stdin() {
        check(
            StdioOptions {
                stdin: true,
                tty: false,
            },
            &["stderr", "stdin", "stdout"],
        );
    }

    #[test]
    fn create_tty_still_makes_stderr_as_containerd_does() {
        check(
            StdioOptions {
                stdin: false,
                tty: true,
            },
            &["stderr", "stdout"],
        );
        check(
            StdioOptions {
                stdin: true,
                tty: true,
            },
            &["stderr", "stdin", "stdout"],
        );
    }

    #[test]
    fn each_set_gets_its_own_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let a = FifoSet::create(tmp.path(), ID, StdioOptions::default()).unwrap();
        let b = FifoSet::create(tmp.path(), "exec1", StdioOptions::default()).unwrap();
        assert_ne!(a.dir(), b.dir());
        assert_eq!(names(&tmp.path().join("io")).len(), 2);
    }

    #[test]
    fn create_fails_with_a_typed_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let err = FifoSet::create(&file, ID, StdioOptions::default()).unwrap_err();
        assert!(matches!(err, Error::CreateFifoDir { path, .. } if path == file.join("io")));
    }

    #[tokio::test]
    async fn open_does_not_block_without_peers() {
        let tmp = tempfile::tempdir().unwrap();
        let set = FifoSet::create(
            tmp.path(),
            ID,
            StdioOptions {
                stdin: true,
                tty: false,
            },
        )
        .unwrap();
        let pipes = tokio::time::timeout(Duration::from_secs(5), async { set.open() })
            .await
            .unwrap()
            .unwrap();
        assert!(pipes.stdin.is_some() && pipes.stdout.is_some() && pipes.stderr.is_some());
    }

    #[tokio::test]
    async fn reads_wait_for_a_late_writer_then_see_eof() {
        let tmp = tempfile::tempdir().unwrap();
        let set = FifoSet::create(tmp.path(), ID, StdioOptions::default()).unwrap();
        let mut stdout = set.open().unwrap().stdout.unwrap();
        let mut buf = [0u8; 16];
        // No writer yet: no data and no EOF.
        assert!(
            tokio::time::timeout(Duration::from_millis(200), stdout.read(&mut buf))
                .await
                .is_err()
        );

        let mut writer = pipe::OpenOptions::new()
            .open_sender(set.stdout().unwrap())
            .unwrap();
        writer.write_all(b"hi").await.unwrap();
        drop(writer);
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stdout.read_to_end(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, b"hi");
    }

    #[tokio::test]
    async fn reopen_an_existing_set_from_task_record_strings() {
        let tmp = tempfile::tempdir().unwrap();
        let created = FifoSet::create(
            tmp.path(),
            ID,
            StdioOptions {
                stdin: true,
                tty: false,
            },
        )
        .unwrap();
        let p = created.paths();
        let record =
            FifoPaths::from_task_record(&p.stdin_str(), &p.stdout_str(), &p.stderr_str(), false);
        assert_eq!(&record, p);

        // The shim keeps its write end across our restart.
        let mut shim_out = pipe::OpenOptions::new()
            .read_write(true)
            .open_sender(created.stdout().unwrap())
            .unwrap();
        let reopened = FifoSet::reopen(record).unwrap();
        let pipes = reopened.open().unwrap();
        let mut stdout = pipes.stdout.unwrap();
        shim_out.write_all(b"after restart").await.unwrap();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), stdout.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], b"after restart");

        // Stdin reaches the shim's read end.
        let mut shim_in = pipe::OpenOptions::new()
            .open_receiver(reopened.stdin().unwrap())
            .unwrap();
        pipes.stdin.unwrap().write_all(b"in").await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), shim_in.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], b"in");

        let dir = reopened.dir().unwrap().to_owned();
        assert_eq!(Some(dir.as_path()), created.dir());
        reopened.remove().unwrap();
        assert!(!dir.exists());
    }

    #[test]
    fn reopen_recreates_a_missing_fifo_and_rejects_non_fifos() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("x-stdout");
        let set = FifoSet::reopen(FifoPaths {
            stdout: Some(out.clone()),
            ..FifoPaths::default()
        })
        .unwrap();
        assert!(is_fifo(&out));
        assert_eq!(set.dir(), Some(tmp.path()));

        let plain = tmp.path().join("x-stderr");
        std::fs::write(&plain, b"").unwrap();
        let err = FifoSet::reopen(FifoPaths {
            stderr: Some(plain.clone()),
            ..FifoPaths::default()
        })
        .unwrap_err();
        assert!(matches!(err, Error::NotAFifo { path } if path == plain));
    }

    #[test]
    fn reopened_set_removal_spares_other_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("123");
        std::fs::create_dir(&dir).unwrap();
        let (out, other) = (dir.join("x-stdout"), dir.join("keep"));
        std::fs::write(&other, b"").unwrap();
        let set = FifoSet::reopen(FifoPaths {
            stdout: Some(out.clone()),
            ..FifoPaths::default()
        })
        .unwrap();
        set.remove().unwrap();
        assert!(!out.exists());
        assert!(other.exists());
    }

    #[tokio::test]
    async fn terminal_set_does_not_open_a_recorded_stderr() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = FifoPaths::from_task_record(
            "",
            &tmp.path().join("t-stdout").to_string_lossy(),
            &tmp.path().join("t-stderr").to_string_lossy(),
            true,
        );
        let set = FifoSet::reopen(paths).unwrap();
        let pipes = set.open().unwrap();
        assert!(pipes.stdout.is_some());
        assert!(pipes.stderr.is_none() && pipes.stdin.is_none());
    }
}
