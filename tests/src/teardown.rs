//! Removing everything a component left on the host: its processes and their descendants (found via `/proc`), runc containers, mounts and shim sockets under its private directory, then the directory; plus reaping directories of test processes that died without cleaning up.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::mount::{umount2, MntFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use sha2::{Digest, Sha256};

/// Where containerd 1.6 puts shim sockets, whatever its own state dir is.
const SHIM_SOCKET_DIR: &str = "/run/containerd/s";
/// The runc root the runc shim uses unless a runtime option says otherwise.
const DEFAULT_RUNC_ROOT: &str = "/run/containerd/runc";
/// File in a component directory naming bridges to delete at teardown.
pub const BRIDGES_FILE: &str = "bridges-to-delete";

/// The directory all harness components put their private directories in.
pub fn base_dir() -> PathBuf {
    std::env::temp_dir().join("cri-tests")
}

/// Creates a fresh private directory `<base>/<kind>-<pid>-<random>`; the pid
/// lets [`reap_stale`] find directories of test processes that died.
pub fn new_component_dir(kind: &str) -> Result<PathBuf> {
    let base = base_dir();
    std::fs::create_dir_all(&base).with_context(|| format!("create {}", base.display()))?;
    reap_stale(&base);
    let dir = tempfile::Builder::new()
        .prefix(&format!("{kind}-{}-", std::process::id()))
        .rand_bytes(6)
        .tempdir_in(&base)
        .with_context(|| format!("create a directory in {}", base.display()))?
        .keep();
    Ok(dir)
}

/// One process as seen in `/proc`.
#[derive(Debug, Clone)]
pub struct ProcessInfo {
    pub pid: i32,
    pub ppid: i32,
    pub cmdline: Vec<String>,
}

/// Every live (non-zombie) process on the host.
pub fn processes() -> Vec<ProcessInfo> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(process_info)
        .collect()
}

fn process_info(pid: i32) -> Option<ProcessInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces or parens.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let mut fields = after_name.split(' ');
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    let ppid = fields.next()?.parse().ok()?;
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = raw
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    Some(ProcessInfo { pid, ppid, cmdline })
}

/// Whether `pid` names a live, non-zombie process.
pub fn is_alive(pid: i32) -> bool {
    process_info(pid).is_some()
}

/// Live processes whose command line mentions `dir` (or a path below it),
/// other than this process.
pub fn processes_referencing(dir: &Path) -> Vec<ProcessInfo> {
    let needle = dir.to_string_lossy().into_owned();
    let me = std::process::id() as i32;
    processes()
        .into_iter()
        .filter(|p| p.pid != me && p.cmdline.iter().any(|arg| mentions(arg, &needle)))
        .collect()
}

fn mentions(arg: &str, dir: &str) -> bool {
    arg.match_indices(dir).any(|(i, _)| {
        let rest = &arg[i + dir.len()..];
        rest.is_empty() || rest.starts_with('/')
    })
}

/// The pids of every descendant of `roots` (not the roots themselves).
pub fn descendants(roots: &[i32]) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for p in processes() {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let mut found = BTreeSet::new();
    let mut queue: Vec<i32> = roots.to_vec();
    while let Some(pid) = queue.pop() {
        for child in children.get(&pid).into_iter().flatten() {
            if found.insert(*child) {
                queue.push(*child);
            }
        }
    }
    roots.iter().for_each(|r| {
        found.remove(r);
    });
    found.into_iter().collect()
}

/// SIGKILLs `roots` and all their descendants, children first so that the
/// tree is still intact while it is walked, and waits until they are gone.
pub fn kill_tree(roots: &[i32], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let below = descendants(roots);
        if below.is_empty() || Instant::now() > deadline {
            break;
        }
        for pid in &below {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for pid in roots {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    while roots.iter().any(|pid| is_alive(*pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Mount points at or below `dir`, in `/proc/self/mountinfo` order (so the
/// last one is the most recently mounted).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|escaped| PathBuf::from(unescape_mountinfo(escaped)))
        .filter(|mount_point| mount_point.starts_with(dir))
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &str) -> std::ffi::OsString {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            let s = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(s, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    OsStr::from_bytes(&out).to_os_string()
}

/// Lazily unmounts every mount at or below `dir`, newest and deepest first,
/// until none is left.
pub fn unmount_all_under(dir: &Path) {
    for _ in 0..10 {
        let mut mounts = mounts_under(dir);
        if mounts.is_empty() {
            return;
        }
        // Reverse mount order handles stacked mounts; a stable sort by depth
        // then puts children before their parents.
        mounts.reverse();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
        for mount in mounts {
            let _ = umount2(&mount, MntFlags::MNT_DETACH);
        }
    }
}

/// Runs `runc delete --force` for every runc container whose state mentions
/// `dir` (its bundle lives there), in the default runc root and in
/// `extra_roots`. This kills the container's processes and removes its
/// cgroups and runc state, which a killed shim would otherwise leave behind.
pub fn delete_runc_containers(dir: &Path, extra_roots: &[PathBuf]) {
    let Ok(runc) = crate::components::Component::Runc.path() else {
        return;
    };
    let needle = dir.to_string_lossy().into_owned();
    let mut roots: Vec<PathBuf> = vec![PathBuf::from(DEFAULT_RUNC_ROOT)];
    roots.extend(extra_roots.iter().cloned());
    // The runc shim appends the containerd namespace to its root.
    let namespaced: Vec<PathBuf> = roots.iter().flat_map(|r| subdirs(r)).collect();
    for root in namespaced {
        for container in subdirs(&root) {
            let Ok(state) = std::fs::read_to_string(container.join("state.json")) else {
                continue;
            };
            if !mentions(&state, &needle) {
                continue;
            }
            let Some(id) = container.file_name() else {
                continue;
            };
            let _ = Command::new(&runc)
                .arg("--root")
                .arg(&root)
                .args(["delete", "--force"])
                .arg(id)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// The socket containerd 1.6 gives a shim started with these arguments:
/// `/run/containerd/s/<sha256(address/namespace/id)>`.
pub fn shim_socket(cmdline: &[String]) -> Option<PathBuf> {
    let flag = |name: &str| {
        cmdline
            .iter()
            .position(|a| a == name)
            .and_then(|i| cmdline.get(i + 1))
    };
    let address = flag("-address")?;
    let namespace = flag("-namespace")?;
    let id = flag("-id")?;
    let joined = Path::new(address).join(namespace).join(id);
    let digest = Sha256::digest(joined.as_os_str().as_bytes());
    Some(Path::new(SHIM_SOCKET_DIR).join(hex::encode(digest)))
}

/// Deletes the bridges named (one per line) in `dir`/[`BRIDGES_FILE`].
fn delete_bridges_listed(dir: &Path) {
    let Ok(names) = std::fs::read_to_string(dir.join(BRIDGES_FILE)) else {
        return;
    };
    for name in names.lines().map(str::trim).filter(|n| !n.is_empty()) {
        delete_bridge(name);
    }
}

/// Deletes a bridge and the host ends of the veth pairs attached to it
/// (which takes their pod ends with them); a missing bridge is no error.
pub(crate) fn delete_bridge(name: &str) {
    let bridge = Path::new("/sys/class/net").join(name);
    if !bridge.exists() {
        return;
    }
    for port in std::fs::read_dir(bridge.join("brif"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
    {
        ip_link_delete(&port.file_name().to_string_lossy());
    }
    ip_link_delete(name);
}

fn ip_link_delete(name: &str) {
    let Ok(ip) = crate::components::Component::Ip.path() else {
        return;
    };
    let _ = Command::new(ip)
        .args(["link", "delete", name])
        .env("PATH", crate::components::CHILD_PATH)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Removes everything that belongs to the component directory `dir`: every
/// process that mentions it on its command line and their descendants
/// (containerd, its shims and the containers under them, a registry, a
/// cri-server), runc containers whose bundle is in it, shim sockets, network
/// links it lists, every mount below it (rootfs overlays, netns bind
/// mounts, shm), and finally the directory itself.
pub fn teardown_dir(dir: &Path) -> Result<()> {
    let owners = processes_referencing(dir);
    let sockets: Vec<PathBuf> = owners
        .iter()
        .filter_map(|p| shim_socket(&p.cmdline))
        .collect();
    let pids: Vec<i32> = owners.iter().map(|p| p.pid).collect();
    kill_tree(&pids, Duration::from_secs(10));
    delete_runc_containers(dir, &[dir.join("runc")]);
    for socket in sockets {
        let _ = std::fs::remove_file(socket);
    }
    delete_bridges_listed(dir);
    unmount_all_under(dir);
    remove_dir_all_retrying(dir)
}

fn remove_dir_all_retrying(dir: &Path) -> Result<()> {
    let mut last = None;
    for _ in 0..5 {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => last = Some(e),
        }
        unmount_all_under(dir);
        std::thread::sleep(Duration::from_millis(50));
    }
    match last {
        Some(e) => Err(e).with_context(|| format!("remove {}", dir.display())),
        None => Ok(()),
    }
}

/// Tears down component directories in `base` whose owning test process
/// (the pid in `<kind>-<pid>-<random>`) is gone, e.g. after a test run was
/// killed. Failures are ignored: this is best effort.
pub fn reap_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name();
        let Some(owner) = name
            .to_str()
            .and_then(|n| n.split('-').nth(1))
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        if !is_alive(owner) {
            let _ = teardown_dir(&entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_matches_whole_path_components() {
        assert!(mentions(
            "/tmp/a/ctrd-1-x/containerd.sock",
            "/tmp/a/ctrd-1-x"
        ));
        assert!(mentions("--config=/tmp/a/ctrd-1-x", "/tmp/a/ctrd-1-x"));
        assert!(!mentions(
            "/tmp/a/ctrd-1-xy/containerd.sock",
            "/tmp/a/ctrd-1-x"
        ));
    }

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo(r"/a\040b\134c"), "/a b\\c");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }

    #[test]
    fn shim_socket_hashes_address_namespace_and_id() {
        let args: Vec<String> = [
            "shim",
            "-namespace",
            "k8s.io",
            "-id",
            "c1",
            "-address",
            "/x.sock",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let expected = hex::encode(Sha256::digest(b"/x.sock/k8s.io/c1"));
        assert_eq!(
            shim_socket(&args),
            Some(Path::new(SHIM_SOCKET_DIR).join(expected))
        );
    }
}
