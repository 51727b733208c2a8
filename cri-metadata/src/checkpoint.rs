//! The container status checkpoint files, `<root_dir>/containers/<id>/status`
//! (mode 0600): atomic replace, read, and delete via
//! `<root_dir>/containers/<id>.del-status`, as containerd's
//! `StoreStatus`/`LoadStatus`/`Delete` do. Blocking calls: they fsync.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use cri_api::ids::ContainerId;
use cri_store::container::ContainerStatus;
use tracing::warn;

use super::status::{decode_status, encode_status};
use super::{MetadataError, Result};

const STATUS_FILE: &str = "status";
const MODE: u32 = 0o600;
/// `os.CreateTemp(dir, ".tmp-status")`: the prefix, then random digits.
const TEMP_PREFIX: &str = ".tmp-status";
const TEMP_ATTEMPTS: u32 = 10_000;

/// The status checkpoints under one CRI root dir
/// (`/var/lib/containerd/io.containerd.grpc.v1.cri` by default).
#[derive(Debug, Clone)]
pub struct StatusCheckpoints {
    root_dir: PathBuf,
}

impl StatusCheckpoints {
    pub fn new(root_dir: impl Into<PathBuf>) -> Self {
        Self {
            root_dir: root_dir.into(),
        }
    }

    /// `<root_dir>/containers/<id>/status`.
    pub fn path(&self, id: &ContainerId) -> PathBuf {
        self.container_dir(id).join(STATUS_FILE)
    }

    /// Replaces the checkpoint atomically: a reader sees the old or the new
    /// file, never a partial one. The container dir must exist.
    pub fn write(&self, id: &ContainerId, status: &ContainerStatus) -> Result<()> {
        let data = encode_status(id.as_ref(), status)?;
        let path = self.path(id);
        atomic_write(&path, &data, |from, to| fs::rename(from, to))
            .map_err(|source| MetadataError::WriteStatus { path, source })
    }

    /// The checkpointed status. A missing file is `StatusNotFound`; an
    /// unparsable one or another version is `Decode`/`UnsupportedVersion`.
    pub fn read(&self, id: &ContainerId) -> Result<ContainerStatus> {
        let path = self.path(id);
        match fs::read(&path) {
            Ok(data) => decode_status(id.as_ref(), &data),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(MetadataError::StatusNotFound { path })
            }
            Err(source) => Err(MetadataError::ReadStatus { path, source }),
        }
    }

    /// Removes the checkpoint: renamed to `<id>.del-status` beside the
    /// container dir first, so the removal is atomic. Idempotent.
    pub fn delete(&self, id: &ContainerId) -> Result<()> {
        let path = self.path(id);
        let doomed = self
            .root_dir
            .join("containers")
            .join(format!("{id}.del-{STATUS_FILE}"));
        match fs::rename(&path, &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(MetadataError::DeleteStatus { path, source }),
        }
        remove_all(&doomed).map_err(|source| MetadataError::DeleteStatus {
            path: doomed,
            source,
        })
    }

    fn container_dir(&self, id: &ContainerId) -> PathBuf {
        self.root_dir.join("containers").join(id.as_ref())
    }
}

/// `os.RemoveAll`: a missing path is fine.
fn remove_all(path: &Path) -> io::Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// continuity's `AtomicWriteFile`, plus what it lacks: the temp file is
/// removed on failure and the directory is fsynced after the rename.
/// `rename` is a parameter so tests can make it fail.
fn atomic_write(
    path: &Path,
    data: &[u8],
    rename: impl FnOnce(&Path, &Path) -> io::Result<()>,
) -> io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let (file, temp) = create_temp(dir)?;
    let result = write_then_rename(file, &temp, path, data, rename);
    if result.is_err() {
        match fs::remove_file(&temp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => warn!(path = %temp.display(), error = %e, "remove temp status file"),
        }
    }
    result?;
    File::open(dir)?.sync_all()
}

fn write_then_rename(
    mut file: File,
    temp: &Path,
    path: &Path,
    data: &[u8],
    rename: impl FnOnce(&Path, &Path) -> io::Result<()>,
) -> io::Result<()> {
    // Explicitly, as Go does: the umask may have narrowed the create mode.
    fs::set_permissions(temp, fs::Permissions::from_mode(MODE))?;
    file.write_all(data)?;
    file.sync_all()?;
    drop(file);
    rename(temp, path)
}

/// `os.CreateTemp(dir, ".tmp-status")`: a new file `.tmp-status<digits>`.
fn create_temp(dir: &Path) -> io::Result<(File, PathBuf)> {
    let mut last = io::Error::new(io::ErrorKind::AlreadyExists, "no unused temp file name");
    for _ in 0..TEMP_ATTEMPTS {
        let temp = dir.join(format!("{TEMP_PREFIX}{}", rand::random::<u32>()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(MODE)
            .open(&temp)
        {
            Ok(file) => return Ok((file, temp)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::MetadataExt;

    use tempfile::TempDir;

    use super::*;

    const ID: &str = "3f2a5b7c9d1e4f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";

    fn id() -> ContainerId {
        ContainerId::from(ID)
    }

    /// A root dir with `containers/<id>/` made, as CreateContainer does.
    fn setup() -> (TempDir, StatusCheckpoints) {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("containers").join(ID)).unwrap();
        let checkpoints = StatusCheckpoints::new(root.path());
        (root, checkpoints)
    }

    fn status(created_at: i64) -> ContainerStatus {
        ContainerStatus {
            created_at,
            ..ContainerStatus::default()
        }
    }

    /// The names in `dir`, sorted.
    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Writes `status` and checks the file content.
    fn check(checkpoints: &StatusCheckpoints, status: &ContainerStatus, expected_json: &str) {
        checkpoints.write(&id(), status).unwrap();
        let written = fs::read_to_string(checkpoints.path(&id())).unwrap();
        assert_eq!(written, expected_json);
    }

    #[test]
    fn path_layout() {
        let checkpoints = StatusCheckpoints::new("/var/lib/containerd/io.containerd.grpc.v1.cri");
        assert_eq!(
            checkpoints.path(&id()),
            PathBuf::from(format!(
                "/var/lib/containerd/io.containerd.grpc.v1.cri/containers/{ID}/status"
            ))
        );
    }

    #[test]
    fn write_creates_0600_file() {
        let (_root, checkpoints) = setup();
        check(
            &checkpoints,
            &status(7),
            r#"{"Version":"v1","Pid":0,"CreatedAt":7,"StartedAt":0,"FinishedAt":0,"ExitCode":0,"Reason":"","Message":"","Resources":null}"#,
        );
        let meta = fs::metadata(checkpoints.path(&id())).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        // Only the status file: no temp file left behind.
        assert_eq!(
            entries(checkpoints.path(&id()).parent().unwrap()),
            ["status"]
        );
    }

    #[test]
    fn write_replaces_and_read_returns_latest() {
        let (_root, checkpoints) = setup();
        checkpoints.write(&id(), &status(1)).unwrap();
        let running = ContainerStatus {
            pid: 99,
            started_at: 2,
            ..status(1)
        };
        checkpoints.write(&id(), &running).unwrap();
        assert_eq!(checkpoints.read(&id()).unwrap(), running);
    }

    #[test]
    fn failed_rename_keeps_old_file_and_removes_temp() {
        let (_root, checkpoints) = setup();
        checkpoints.write(&id(), &status(1)).unwrap();
        let path = checkpoints.path(&id());
        let err = atomic_write(&path, b"{\"Version\":\"v1\"}", |_, _| {
            Err(io::Error::other("injected"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "injected");
        assert_eq!(checkpoints.read(&id()).unwrap(), status(1));
        assert_eq!(entries(path.parent().unwrap()), ["status"]);
    }

    #[test]
    fn rename_target_dir_vanished() {
        // The container dir is removed between the temp file and the
        // rename: the write fails, and nothing is left behind.
        let (root, checkpoints) = setup();
        let path = checkpoints.path(&id());
        let dir = path.parent().unwrap().to_path_buf();
        let err = atomic_write(&path, b"{}", |from, to| {
            fs::remove_file(from)?;
            fs::remove_dir(&dir)?;
            fs::rename(from, to)
        })
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(entries(&root.path().join("containers")).is_empty());
    }

    #[test]
    fn write_into_missing_dir_fails() {
        let root = tempfile::tempdir().unwrap();
        let checkpoints = StatusCheckpoints::new(root.path());
        let err = checkpoints.write(&id(), &status(1)).unwrap_err();
        match err {
            MetadataError::WriteStatus { path, source } => {
                assert_eq!(path, checkpoints.path(&id()));
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn read_missing_file() {
        let (_root, checkpoints) = setup();
        let err = checkpoints.read(&id()).unwrap_err();
        assert!(
            matches!(&err, MetadataError::StatusNotFound { path } if *path == checkpoints.path(&id())),
            "{err:?}"
        );
    }

    #[test]
    fn read_corrupt_file() {
        let (_root, checkpoints) = setup();
        fs::write(checkpoints.path(&id()), b"{\"Version\":\"v1\",\"Pid\":").unwrap();
        let err = checkpoints.read(&id()).unwrap_err();
        assert!(
            matches!(&err, MetadataError::Decode { id, .. } if id == ID),
            "{err:?}"
        );
        fs::write(checkpoints.path(&id()), b"{\"Version\":\"v2\"}").unwrap();
        let err = checkpoints.read(&id()).unwrap_err();
        assert!(
            matches!(err, MetadataError::UnsupportedVersion { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn read_status_written_by_containerd() {
        let (_root, checkpoints) = setup();
        fs::write(
            checkpoints.path(&id()),
            br#"{"Version":"v1","Pid":0,"CreatedAt":1,"StartedAt":2,"FinishedAt":3,"ExitCode":255,"Reason":"Unknown","Message":"","Resources":{"linux":{"cpu_shares":2}}}"#,
        )
        .unwrap();
        let read = checkpoints.read(&id()).unwrap();
        assert_eq!(
            (read.finished_at, read.exit_code, read.reason.as_str()),
            (3, 255, "Unknown")
        );
        assert_eq!(read.resources.unwrap().linux.unwrap().cpu_shares, 2);
    }

    #[test]
    fn delete_is_idempotent() {
        let (root, checkpoints) = setup();
        checkpoints.write(&id(), &status(1)).unwrap();
        checkpoints.delete(&id()).unwrap();
        assert!(matches!(
            checkpoints.read(&id()),
            Err(MetadataError::StatusNotFound { .. })
        ));
        checkpoints.delete(&id()).unwrap();
        // Nothing left but the (now empty) container dir.
        assert_eq!(entries(&root.path().join("containers")), [ID]);
        // Also without the container dir at all.
        fs::remove_dir(root.path().join("containers").join(ID)).unwrap();
        checkpoints.delete(&id()).unwrap();
    }

    #[test]
    fn delete_removes_stale_del_file() {
        // A crash between the rename and the removal leaves `<id>.del-status`.
        let (root, checkpoints) = setup();
        let stale = root
            .path()
            .join("containers")
            .join(format!("{ID}.del-status"));
        fs::write(&stale, b"old").unwrap();
        checkpoints.delete(&id()).unwrap();
        assert!(!stale.exists());
    }
}
