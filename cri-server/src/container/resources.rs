//! Container resources between the OCI spec and the CRI: the resources a
//! status reports (containerd's `copyResourcesToStatus`) and the Linux
//! resources a task update takes. The update of a spec's resources is
//! `cri_spec::update_resources`, the same `WithResources` as at create.

use cri_api::v1::{ContainerResources, HugepageLimit, LinuxContainerResources};
use oci_spec::runtime::{LinuxResources, Spec};

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

    /// containerd's `WithResources` with its default hugetlb keys, on a
    /// host that accounts swap or not.
    fn apply(spec: &mut Spec, res: &LinuxContainerResources, swap: bool) {
        let mut host = cri_spec::MockHostOs::new();
        host.expect_swap_controller_available().return_const(swap);
        let opts = cri_spec::ResourceOptions {
            tolerate_missing_hugetlb_controller: true,
            disable_hugetlb_controller: true,
        };
        cri_spec::update_resources(spec, res, opts, &host).unwrap();
    }

    #[test]
    fn apply_then_report_round_trips() {
        let mut spec = Spec::default();
        apply(&mut spec, &cri(20 << 20, 512), true);
        let back = spec_to_cri(&spec).linux.unwrap();
        assert_eq!(back.memory_limit_in_bytes, 20 << 20);
        assert_eq!(back.memory_swap_limit_in_bytes, 20 << 20);
        assert_eq!(back.cpu_shares, 512);
        assert_eq!(back.cpuset_cpus, "0");
    }

    #[test]
    fn zero_fields_keep_the_old_values() {
        let mut spec = Spec::default();
        apply(&mut spec, &cri(20 << 20, 512), false);
        apply(&mut spec, &cri(0, 1024), false);
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
