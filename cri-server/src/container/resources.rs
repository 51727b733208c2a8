//! Container resources between the OCI spec and the CRI: the resources a
//! status reports (containerd's `copyResourcesToStatus`) and the update of
//! a spec's Linux resources (`WithResources`, as UpdateContainerResources
//! applies it).

use cri_api::v1::{ContainerResources, HugepageLimit, LinuxContainerResources};
use oci_spec::runtime::{LinuxCpu, LinuxHugepageLimit, LinuxMemory, LinuxResources, Spec};

/// The CRI resources of `spec`: its Linux resources and OOM score.
pub fn spec_to_cri(spec: &Spec) -> ContainerResources {
    let mut out = ContainerResources::default();
    let Some(linux) = spec.linux() else {
        return out;
    };
    let mut res = LinuxContainerResources::default();
    if let Some(adj) = spec.process().as_ref().and_then(|p| p.oom_score_adj()) {
        res.oom_score_adj = i64::from(adj);
    }
    if let Some(r) = linux.resources() {
        if let Some(cpu) = r.cpu() {
            res.cpu_period = cpu.period().map_or(0, |v| v as i64);
            res.cpu_quota = cpu.quota().unwrap_or(0);
            res.cpu_shares = cpu.shares().map_or(0, |v| v as i64);
            res.cpuset_cpus = cpu.cpus().clone().unwrap_or_default();
            res.cpuset_mems = cpu.mems().clone().unwrap_or_default();
        }
        if let Some(memory) = r.memory() {
            res.memory_limit_in_bytes = memory.limit().unwrap_or(0);
            res.memory_swap_limit_in_bytes = memory.swap().unwrap_or(0);
        }
        if let Some(limits) = r.hugepage_limits() {
            res.hugepage_limits = limits
                .iter()
                .map(|l| HugepageLimit {
                    page_size: l.page_size().clone(),
                    limit: l.limit() as u64,
                })
                .collect();
        }
        if let Some(unified) = r.unified() {
            res.unified = unified.clone().into_iter().collect();
        }
    }
    out.linux = Some(res);
    out
}

/// containerd's `WithResources` on an existing spec: every field the CRI
/// sets (non-zero) replaces the spec's. `swap_available` tells whether the
/// memory controller accounts swap (then a limit without swap sets swap to
/// the limit, so the container cannot swap).
pub fn apply_linux_resources(spec: &mut Spec, res: &LinuxContainerResources, swap_available: bool) {
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut resources: LinuxResources = linux.resources().clone().unwrap_or_default();
    let mut cpu: LinuxCpu = resources.cpu().clone().unwrap_or_default();
    let mut memory: LinuxMemory = resources.memory().unwrap_or_default();
    if res.cpu_period != 0 {
        cpu.set_period(Some(res.cpu_period as u64));
    }
    if res.cpu_quota != 0 {
        cpu.set_quota(Some(res.cpu_quota));
    }
    if res.cpu_shares != 0 {
        cpu.set_shares(Some(res.cpu_shares as u64));
    }
    if !res.cpuset_cpus.is_empty() {
        cpu.set_cpus(Some(res.cpuset_cpus.clone()));
    }
    if !res.cpuset_mems.is_empty() {
        cpu.set_mems(Some(res.cpuset_mems.clone()));
    }
    let (limit, swap) = (res.memory_limit_in_bytes, res.memory_swap_limit_in_bytes);
    if limit != 0 {
        memory.set_limit(Some(limit));
        if swap == 0 && swap_available {
            memory.set_swap(Some(limit));
        }
    }
    if swap != 0 && swap_available {
        memory.set_swap(Some(swap));
    }
    resources.set_cpu(Some(cpu));
    resources.set_memory(Some(memory));
    if !res.hugepage_limits.is_empty() {
        let limits = res
            .hugepage_limits
            .iter()
            .map(|h| {
                let mut l = LinuxHugepageLimit::default();
                l.set_page_size(h.page_size.clone());
                l.set_limit(i64::try_from(h.limit).unwrap_or(i64::MAX));
                l
            })
            .collect();
        resources.set_hugepage_limits(Some(limits));
    }
    if !res.unified.is_empty() {
        let mut unified = resources.unified().clone().unwrap_or_default();
        unified.extend(res.unified.iter().map(|(k, v)| (k.clone(), v.clone())));
        resources.set_unified(Some(unified));
    }
    linux.set_resources(Some(resources));
    spec.set_linux(Some(linux));
}

/// The OCI Linux resources of `spec`, as `Tasks.Update` takes them.
pub fn linux_resources(spec: &Spec) -> LinuxResources {
    spec.linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cri(limit: i64, shares: i64) -> LinuxContainerResources {
        LinuxContainerResources {
            memory_limit_in_bytes: limit,
            cpu_shares: shares,
            cpuset_cpus: "0".into(),
            ..LinuxContainerResources::default()
        }
    }

    #[test]
    fn apply_then_report_round_trips() {
        let mut spec = Spec::default();
        apply_linux_resources(&mut spec, &cri(20 << 20, 512), true);
        let back = spec_to_cri(&spec).linux.unwrap();
        assert_eq!(back.memory_limit_in_bytes, 20 << 20);
        assert_eq!(back.memory_swap_limit_in_bytes, 20 << 20);
        assert_eq!(back.cpu_shares, 512);
        assert_eq!(back.cpuset_cpus, "0");
    }

    #[test]
    fn zero_fields_keep_the_old_values() {
        let mut spec = Spec::default();
        apply_linux_resources(&mut spec, &cri(20 << 20, 512), false);
        apply_linux_resources(&mut spec, &cri(0, 1024), false);
        let back = spec_to_cri(&spec).linux.unwrap();
        assert_eq!(back.memory_limit_in_bytes, 20 << 20);
        assert_eq!(back.memory_swap_limit_in_bytes, 0);
        assert_eq!(back.cpu_shares, 1024);
    }

    #[test]
    fn oom_score_is_reported() {
        let mut spec = Spec::default();
        if let Some(p) = spec.process_mut() {
            p.set_oom_score_adj(Some(500));
        }
        assert_eq!(spec_to_cri(&spec).linux.unwrap().oom_score_adj, 500);
        let mut no_linux = Spec::default();
        no_linux.set_linux(None);
        assert_eq!(spec_to_cri(&no_linux).linux, None);
    }
}
