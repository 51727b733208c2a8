//! The container log path: the sandbox's `log_directory` joined with the
//! container's `log_path`, rejecting a `log_path` that would leave the dir.

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// `log_directory` + `log_path` as containerd joins them, or `None` when
/// either is empty (containerd only sets `LogPath` when both are non-empty).
///
/// containerd's `filepath.Join` would also accept `/abs` (joined below the
/// dir) and `../x` (cleaned, possibly leaving the dir). The kubelet never
/// sends either, so both are rejected here as [`Error::InvalidLogPath`],
/// which the server maps to InvalidArgument. `.` components are dropped.
pub fn log_path(log_directory: &str, relative_log_path: &str) -> Result<Option<PathBuf>> {
    if log_directory.is_empty() || relative_log_path.is_empty() {
        return Ok(None);
    }
    let invalid = |reason| Error::InvalidLogPath {
        log_directory: PathBuf::from(log_directory),
        log_path: PathBuf::from(relative_log_path),
        reason,
    };
    let mut joined = PathBuf::from(log_directory);
    let mut has_name = false;
    for component in Path::new(relative_log_path).components() {
        match component {
            Component::Normal(name) => {
                joined.push(name);
                has_name = true;
            }
            Component::CurDir => {}
            Component::ParentDir => return Err(invalid("contains a `..` component")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(invalid(
                    "is absolute, want a path relative to the log directory",
                ))
            }
        }
    }
    if !has_name {
        return Err(invalid("names no file"));
    }
    Ok(Some(joined))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn check(dir: &str, rel: &str, expected: Result<Option<&str>, &str>) {
        let got = log_path(dir, rel);
        match (got, expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want.map(PathBuf::from), "{dir:?} + {rel:?}"),
            (
                Err(Error::InvalidLogPath {
                    log_directory,
                    log_path,
                    reason,
                }),
                Err(want),
            ) => {
                assert_eq!(log_directory, PathBuf::from(dir));
                assert_eq!(log_path, PathBuf::from(rel));
                assert!(
                    reason.contains(want),
                    "{reason:?} does not mention {want:?}"
                );
            }
            (got, want) => panic!("{dir:?} + {rel:?}: got {got:?}, want {want:?}"),
        }
    }

    const DIR: &str = "/var/log/pods/ns_name_uid";

    #[test]
    fn joins_the_kubelet_layout() {
        check(
            DIR,
            "ctr/0.log",
            Ok(Some("/var/log/pods/ns_name_uid/ctr/0.log")),
        );
        check(
            DIR,
            "./ctr/./1.log",
            Ok(Some("/var/log/pods/ns_name_uid/ctr/1.log")),
        );
        check(
            "/var/log/pods/x/",
            "c.log",
            Ok(Some("/var/log/pods/x/c.log")),
        );
    }

    #[test]
    fn either_empty_means_no_log() {
        check("", "", Ok(None));
        check(DIR, "", Ok(None));
        check("", "ctr/0.log", Ok(None));
        // Not validated when it is not used.
        check("", "../../etc/passwd", Ok(None));
    }

    #[test]
    fn rejects_parent_components() {
        check(DIR, "../other/0.log", Err(".."));
        check(DIR, "ctr/../../0.log", Err(".."));
        check(DIR, "ctr/../0.log", Err(".."));
        check(DIR, "..", Err(".."));
    }

    #[test]
    fn rejects_absolute_paths() {
        check(DIR, "/etc/passwd", Err("absolute"));
        check(DIR, "//ctr/0.log", Err("absolute"));
    }

    #[test]
    fn rejects_paths_naming_no_file() {
        check(DIR, ".", Err("no file"));
        check(DIR, "./", Err("no file"));
    }
}
