//! Reading one cgroup's cpu, memory, swap and pids counters from the cgroup
//! filesystem, v1 (per-controller hierarchies, also in hybrid mode) or v2
//! (unified), as containerd's cgroups library reports them in task metrics.
//! The version is detected once; the root is injectable for tests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::cgroup_path::CgroupPath;
use super::error::{Result, StatsError};

/// Limits above this are "unlimited" (the kernel rounds `max` down to a page
/// multiple of about 2^63), as the kubelet and containerd decide.
const UNLIMITED_ABOVE: u64 = 1 << 62;

/// Which cgroup layout the host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupMode {
    /// Per-controller v1 hierarchies (also hybrid hosts with a v2 mount
    /// holding no controllers).
    Legacy,
    /// The v2 unified hierarchy.
    Unified,
}

/// Cumulative cpu time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuStats {
    pub usage_ns: u64,
    pub user_ns: u64,
    pub system_ns: u64,
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_ns: u64,
}

/// Memory usage; `rss` is v1 `total_rss` or v2 `anon`, `cache` v1
/// `total_cache` or v2 `file`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStats {
    pub usage: u64,
    pub max_usage: u64,
    /// `None` when unlimited.
    pub limit: Option<u64>,
    pub rss: u64,
    pub cache: u64,
    pub mapped_file: u64,
    pub active_file: u64,
    pub inactive_file: u64,
    pub kernel: u64,
    pub pgfault: u64,
    pub pgmajfault: u64,
    pub failcnt: u64,
    pub oom_kills: u64,
}

impl MemoryStats {
    /// usage - inactive_file, never below zero (the kubelet's working set).
    pub fn working_set(&self) -> u64 {
        self.usage.saturating_sub(self.inactive_file)
    }

    /// limit - working set, 0 when unlimited (containerd's rule).
    pub fn available(&self) -> u64 {
        self.limit
            .map_or(0, |limit| limit.saturating_sub(self.working_set()))
    }
}

/// Swap usage (v1: memsw - memory; v2: `memory.swap.current`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SwapStats {
    pub usage: u64,
    /// `None` when unlimited.
    pub limit: Option<u64>,
}

impl SwapStats {
    /// limit - usage, 0 when unlimited.
    pub fn available(&self) -> u64 {
        self.limit.map_or(0, |l| l.saturating_sub(self.usage))
    }
}

/// Process count of the cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PidsStats {
    pub current: u64,
    pub limit: Option<u64>,
}

/// What one read of a cgroup gives; a part is `None` when its controller
/// is not there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupStats {
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
    pub swap: Option<SwapStats>,
    pub pids: Option<PidsStats>,
}

/// Reads cgroups; faked in collector tests.
pub trait CgroupReader: Send + Sync + std::fmt::Debug {
    /// One read of every counter of `path`.
    fn read(&self, path: &CgroupPath) -> Result<CgroupStats>;
}

/// The cgroup filesystem under a root (`/sys/fs/cgroup` on a host).
#[derive(Debug, Clone)]
pub struct CgroupFs {
    root: PathBuf,
    mode: CgroupMode,
    /// v1 controller directories: cpu, cpuacct, memory, pids.
    v1: [Option<PathBuf>; 4],
    clock_ticks: u64,
}

impl CgroupFs {
    /// The host's `/sys/fs/cgroup`.
    pub fn host() -> Self {
        Self::detect(Path::new("/sys/fs/cgroup"))
    }

    /// Unified when the root has `cgroup.controllers`, else v1.
    pub fn detect(root: &Path) -> Self {
        let mode = if root.join("cgroup.controllers").is_file() {
            CgroupMode::Unified
        } else {
            CgroupMode::Legacy
        };
        Self::new(root, mode)
    }

    /// A given layout under `root`.
    pub fn new(root: &Path, mode: CgroupMode) -> Self {
        let find = |names: &[&str]| names.iter().map(|n| root.join(n)).find(|p| p.is_dir());
        let v1 = [
            find(&["cpu", "cpu,cpuacct", "cpuacct,cpu"]),
            find(&["cpuacct", "cpu,cpuacct", "cpuacct,cpu"]),
            find(&["memory"]),
            find(&["pids"]),
        ];
        let clock_ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .and_then(|t| u64::try_from(t).ok())
            .filter(|t| *t > 0)
            .unwrap_or(100);
        Self {
            root: root.to_owned(),
            mode,
            v1,
            clock_ticks,
        }
    }

    pub fn mode(&self) -> CgroupMode {
        self.mode
    }

    fn read_v2(&self, path: &CgroupPath) -> Result<CgroupStats> {
        let dir = self.root.join(path.as_path());
        if !dir.is_dir() {
            return Err(StatsError::CgroupNotFound { path: dir });
        }
        let cpu = read_flat(&dir.join("cpu.stat"))?.map(|s| CpuStats {
            usage_ns: get(&s, "usage_usec").saturating_mul(1000),
            user_ns: get(&s, "user_usec").saturating_mul(1000),
            system_ns: get(&s, "system_usec").saturating_mul(1000),
            periods: get(&s, "nr_periods"),
            throttled_periods: get(&s, "nr_throttled"),
            throttled_ns: get(&s, "throttled_usec").saturating_mul(1000),
        });
        let memory = match read_u64(&dir.join("memory.current"))? {
            None => None,
            Some(usage) => {
                let stat = read_flat(&dir.join("memory.stat"))?.unwrap_or_default();
                let events = read_flat(&dir.join("memory.events"))?.unwrap_or_default();
                Some(MemoryStats {
                    usage,
                    max_usage: read_u64(&dir.join("memory.peak"))?.unwrap_or_default(),
                    limit: read_limit(&dir.join("memory.max"))?.flatten(),
                    rss: get(&stat, "anon"),
                    cache: get(&stat, "file"),
                    mapped_file: get(&stat, "file_mapped"),
                    active_file: get(&stat, "active_file"),
                    inactive_file: get(&stat, "inactive_file"),
                    kernel: get(&stat, "kernel_stack"),
                    pgfault: get(&stat, "pgfault"),
                    pgmajfault: get(&stat, "pgmajfault"),
                    failcnt: 0,
                    oom_kills: get(&events, "oom_kill"),
                })
            }
        };
        let swap = match read_u64(&dir.join("memory.swap.current"))? {
            None => None,
            Some(usage) => Some(SwapStats {
                usage,
                limit: read_limit(&dir.join("memory.swap.max"))?.flatten(),
            }),
        };
        Ok(CgroupStats {
            cpu,
            memory,
            swap,
            pids: read_pids(&dir)?,
        })
    }

    fn read_v1(&self, path: &CgroupPath) -> Result<CgroupStats> {
        let [cpu_root, cpuacct_root, memory_root, pids_root] = &self.v1;
        let at = |root: &Option<PathBuf>| root.as_ref().map(|r| r.join(path.as_path()));
        let (cpu_dir, cpuacct_dir, memory_dir, pids_dir) = (
            at(cpu_root),
            at(cpuacct_root),
            at(memory_root),
            at(pids_root),
        );
        let present = [&cpuacct_dir, &memory_dir]
            .into_iter()
            .flatten()
            .any(|d| d.is_dir());
        if !present {
            let path = memory_dir
                .or(cpuacct_dir)
                .unwrap_or_else(|| self.root.clone());
            return Err(StatsError::CgroupNotFound { path });
        }
        let cpu = match &cpuacct_dir {
            Some(dir) => match read_u64(&dir.join("cpuacct.usage"))? {
                None => None,
                Some(usage_ns) => {
                    let stat = read_flat(&dir.join("cpuacct.stat"))?.unwrap_or_default();
                    let ticks =
                        |key| get(&stat, key).saturating_mul(1_000_000_000) / self.clock_ticks;
                    let throttling = match &cpu_dir {
                        Some(d) => read_flat(&d.join("cpu.stat"))?.unwrap_or_default(),
                        None => HashMap::new(),
                    };
                    Some(CpuStats {
                        usage_ns,
                        user_ns: ticks("user"),
                        system_ns: ticks("system"),
                        periods: get(&throttling, "nr_periods"),
                        throttled_periods: get(&throttling, "nr_throttled"),
                        throttled_ns: get(&throttling, "throttled_time"),
                    })
                }
            },
            None => None,
        };
        let (memory, swap) = match &memory_dir {
            Some(dir) => read_v1_memory(dir)?,
            None => (None, None),
        };
        let pids = match &pids_dir {
            Some(dir) if dir.is_dir() => read_pids(dir)?,
            _ => None,
        };
        Ok(CgroupStats {
            cpu,
            memory,
            swap,
            pids,
        })
    }
}

impl CgroupReader for CgroupFs {
    fn read(&self, path: &CgroupPath) -> Result<CgroupStats> {
        match self.mode {
            CgroupMode::Unified => self.read_v2(path),
            CgroupMode::Legacy => self.read_v1(path),
        }
    }
}

fn read_v1_memory(dir: &Path) -> Result<(Option<MemoryStats>, Option<SwapStats>)> {
    let Some(usage) = read_u64(&dir.join("memory.usage_in_bytes"))? else {
        return Ok((None, None));
    };
    let stat = read_flat(&dir.join("memory.stat"))?.unwrap_or_default();
    // Hierarchical totals when the kernel gives them, as containerd reports.
    let total = |key: &str| {
        stat.get(&format!("total_{key}"))
            .or_else(|| stat.get(key))
            .copied()
            .unwrap_or_default()
    };
    let oom = read_flat(&dir.join("memory.oom_control"))?.unwrap_or_default();
    let limit = read_limit(&dir.join("memory.limit_in_bytes"))?.flatten();
    let memory = MemoryStats {
        usage,
        max_usage: read_u64(&dir.join("memory.max_usage_in_bytes"))?.unwrap_or_default(),
        limit,
        rss: total("rss"),
        cache: total("cache"),
        mapped_file: total("mapped_file"),
        active_file: total("active_file"),
        inactive_file: total("inactive_file"),
        kernel: read_u64(&dir.join("memory.kmem.usage_in_bytes"))?.unwrap_or_default(),
        pgfault: total("pgfault"),
        pgmajfault: total("pgmajfault"),
        failcnt: read_u64(&dir.join("memory.failcnt"))?.unwrap_or_default(),
        oom_kills: get(&oom, "oom_kill"),
    };
    // memsw counts memory + swap; without swap accounting there is no file.
    let swap = match read_u64(&dir.join("memory.memsw.usage_in_bytes"))? {
        None => None,
        Some(memsw) => {
            let memsw_limit = read_limit(&dir.join("memory.memsw.limit_in_bytes"))?.flatten();
            Some(SwapStats {
                usage: memsw.saturating_sub(usage),
                limit: memsw_limit.map(|l| l.saturating_sub(limit.unwrap_or(0))),
            })
        }
    };
    Ok((Some(memory), swap))
}

fn read_pids(dir: &Path) -> Result<Option<PidsStats>> {
    let Some(current) = read_u64(&dir.join("pids.current"))? else {
        return Ok(None);
    };
    Ok(Some(PidsStats {
        current,
        limit: read_limit(&dir.join("pids.max"))?.flatten(),
    }))
}

/// The file's text; `None` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StatsError::ReadCgroup {
            path: path.to_owned(),
            source,
        }),
    }
}

fn parse_u64(path: &Path, value: &str) -> Result<u64> {
    value.trim().parse().map_err(|_| StatsError::ParseCgroup {
        path: path.to_owned(),
        value: value.trim().to_owned(),
    })
}

fn read_u64(path: &Path) -> Result<Option<u64>> {
    read_optional(path)?
        .map(|t| parse_u64(path, &t))
        .transpose()
}

/// A limit file: `Some(None)` for `max` or a value past [`UNLIMITED_ABOVE`].
fn read_limit(path: &Path) -> Result<Option<Option<u64>>> {
    let Some(text) = read_optional(path)? else {
        return Ok(None);
    };
    if text.trim() == "max" {
        return Ok(Some(None));
    }
    let value = parse_u64(path, &text)?;
    Ok(Some((value <= UNLIMITED_ABOVE).then_some(value)))
}

/// A `key value` per line file (`memory.stat`, `cpu.stat`); lines that do
/// not parse are skipped, as the kernel adds keys over time.
fn read_flat(path: &Path) -> Result<Option<HashMap<String, u64>>> {
    Ok(read_optional(path)?.map(|text| {
        text.lines()
            .filter_map(|line| {
                let (key, value) = line.split_once(' ')?;
                Some((key.to_owned(), value.trim().parse().ok()?))
            })
            .collect()
    }))
}

fn get(map: &HashMap<String, u64>, key: &str) -> u64 {
    map.get(key).copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Writes `files` (relative path, content) under a new root.
    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let path = root.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        root
    }

    fn check(fs: &CgroupFs, cgroup: &str, expected: CgroupStats) {
        let path = CgroupPath::from_oci(cgroup).unwrap();
        assert_eq!(fs.read(&path).unwrap(), expected);
    }

    const SYSTEMD_SCOPE: &str = "kubepods.slice/kubepods-pod1.slice/cri-containerd-abc.scope";

    #[test]
    fn v2_systemd_scope() {
        let dir = format!("{SYSTEMD_SCOPE}/");
        let f = |name: &str| format!("{dir}{name}");
        let root = tree(&[
            ("cgroup.controllers", "cpu memory pids\n"),
            (&f("cpu.stat"), "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 7\nnr_throttled 2\nthrottled_usec 30\n"),
            (&f("memory.current"), "10000\n"),
            (&f("memory.max"), "max\n"),
            (&f("memory.stat"), "anon 4000\nfile 5000\nkernel_stack 64\nfile_mapped 100\nactive_file 1000\ninactive_file 3000\npgfault 11\npgmajfault 2\n"),
            (&f("memory.events"), "low 0\nhigh 0\nmax 0\noom 1\noom_kill 1\n"),
            (&f("memory.swap.current"), "20\n"),
            (&f("memory.swap.max"), "1000\n"),
            (&f("pids.current"), "3\n"),
            (&f("pids.max"), "max\n"),
        ]);
        let fs = CgroupFs::detect(root.path());
        assert_eq!(fs.mode(), CgroupMode::Unified);
        let expected = CgroupStats {
            cpu: Some(CpuStats {
                usage_ns: 1_500_000,
                user_ns: 1_000_000,
                system_ns: 500_000,
                periods: 7,
                throttled_periods: 2,
                throttled_ns: 30_000,
            }),
            memory: Some(MemoryStats {
                usage: 10000,
                limit: None,
                rss: 4000,
                cache: 5000,
                mapped_file: 100,
                active_file: 1000,
                inactive_file: 3000,
                kernel: 64,
                pgfault: 11,
                pgmajfault: 2,
                oom_kills: 1,
                ..Default::default()
            }),
            swap: Some(SwapStats {
                usage: 20,
                limit: Some(1000),
            }),
            pids: Some(PidsStats {
                current: 3,
                limit: None,
            }),
        };
        check(&fs, "kubepods-pod1.slice:cri-containerd:abc", expected);
        let memory = expected.memory.unwrap();
        assert_eq!(memory.working_set(), 7000);
        assert_eq!(memory.available(), 0, "unlimited");
    }

    #[test]
    fn v2_missing_controllers_are_none() {
        let root = tree(&[
            ("cgroup.controllers", ""),
            ("pod/cpu.stat", "usage_usec 1\n"),
        ]);
        let fs = CgroupFs::detect(root.path());
        let expected = CgroupStats {
            cpu: Some(CpuStats {
                usage_ns: 1000,
                ..Default::default()
            }),
            ..Default::default()
        };
        check(&fs, "/pod", expected);
        let missing = fs
            .read(&CgroupPath::from_oci("/gone").unwrap())
            .unwrap_err();
        assert!(missing.is_not_found(), "{missing}");
    }

    #[test]
    fn v1_cgroupfs_path() {
        let c = "kubepods/burstable/pod1/abc";
        let root = tree(&[
            (&format!("cpuacct/{c}/cpuacct.usage"), "123456789\n"),
            (&format!("cpuacct/{c}/cpuacct.stat"), "user 10\nsystem 5\n"),
            (&format!("cpu/{c}/cpu.stat"), "nr_periods 4\nnr_throttled 1\nthrottled_time 999\n"),
            (&format!("memory/{c}/memory.usage_in_bytes"), "8192\n"),
            (&format!("memory/{c}/memory.max_usage_in_bytes"), "9000\n"),
            (&format!("memory/{c}/memory.limit_in_bytes"), "10000\n"),
            (&format!("memory/{c}/memory.failcnt"), "4\n"),
            (&format!("memory/{c}/memory.stat"), "rss 1\ncache 2\ninactive_file 3\ntotal_rss 4096\ntotal_cache 2048\ntotal_mapped_file 5\ntotal_active_file 6\ntotal_inactive_file 1024\ntotal_pgfault 77\ntotal_pgmajfault 7\n"),
            (&format!("memory/{c}/memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            (&format!("memory/{c}/memory.memsw.usage_in_bytes"), "8200\n"),
            (&format!("memory/{c}/memory.memsw.limit_in_bytes"), "9223372036854771712\n"),
            (&format!("pids/{c}/pids.current"), "2\n"),
            (&format!("pids/{c}/pids.max"), "100\n"),
        ]);
        let fs = CgroupFs::detect(root.path());
        assert_eq!(fs.mode(), CgroupMode::Legacy);
        let ticks = fs.clock_ticks;
        let expected = CgroupStats {
            cpu: Some(CpuStats {
                usage_ns: 123456789,
                user_ns: 10 * 1_000_000_000 / ticks,
                system_ns: 5 * 1_000_000_000 / ticks,
                periods: 4,
                throttled_periods: 1,
                throttled_ns: 999,
            }),
            memory: Some(MemoryStats {
                usage: 8192,
                max_usage: 9000,
                limit: Some(10000),
                rss: 4096,
                cache: 2048,
                mapped_file: 5,
                active_file: 6,
                inactive_file: 1024,
                kernel: 0,
                pgfault: 77,
                pgmajfault: 7,
                failcnt: 4,
                oom_kills: 2,
            }),
            swap: Some(SwapStats {
                usage: 8,
                limit: None,
            }),
            pids: Some(PidsStats {
                current: 2,
                limit: Some(100),
            }),
        };
        check(&fs, "/kubepods/burstable/pod1/abc", expected);
        let memory = expected.memory.unwrap();
        assert_eq!(memory.working_set(), 7168);
        assert_eq!(memory.available(), 10000 - 7168);
    }

    #[test]
    fn v1_comounted_cpu_cpuacct_and_systemd_path() {
        let root = tree(&[
            (&format!("cpu,cpuacct/{SYSTEMD_SCOPE}/cpuacct.usage"), "5\n"),
            (
                &format!("cpu,cpuacct/{SYSTEMD_SCOPE}/cpu.stat"),
                "nr_periods 1\n",
            ),
        ]);
        let fs = CgroupFs::detect(root.path());
        let got = fs
            .read(&CgroupPath::from_oci("kubepods-pod1.slice:cri-containerd:abc").unwrap())
            .unwrap();
        assert_eq!(got.cpu.unwrap().usage_ns, 5);
        assert_eq!(got.cpu.unwrap().periods, 1);
        assert_eq!(got.memory, None);
    }

    #[test]
    fn garbage_is_a_parse_error() {
        let root = tree(&[("memory/x/memory.usage_in_bytes", "lots\n")]);
        let fs = CgroupFs::detect(root.path());
        let err = fs.read(&CgroupPath::from_oci("/x").unwrap()).unwrap_err();
        assert!(matches!(err, StatsError::ParseCgroup { .. }), "{err}");
    }
}
