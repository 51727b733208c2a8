//! Cgroup resources: CPU shares, quota and period, cpuset cpus and mems,
//! memory limit and swap, hugepage limits (a missing hugetlb controller
//! tolerated as configured) and cgroup v2 unified keys (containerd's
//! `WithResources`), plus the cgroups path of the container.

use cri_api::v1::LinuxContainerResources;
use oci_spec::runtime::{LinuxHugepageLimit, Spec};

use crate::{access, cgroups::cgroups_path, host::HostOs, Error, Result, RuntimeOptions};

/// The options of `WithResources`: the CRI config's hugetlb keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceOptions {
    /// `tolerate_missing_hugetlb_controller`.
    pub tolerate_missing_hugetlb_controller: bool,
    /// `disable_hugetlb_controller`.
    pub disable_hugetlb_controller: bool,
}

impl From<&RuntimeOptions> for ResourceOptions {
    fn from(opts: &RuntimeOptions) -> Self {
        Self {
            tolerate_missing_hugetlb_controller: opts.tolerate_missing_hugetlb_controller,
            disable_hugetlb_controller: opts.disable_hugetlb_controller,
        }
    }
}

/// containerd's `WithResources` on an existing spec, as
/// UpdateContainerResources applies it (`updateOCIResource`): every field
/// the CRI sets (non-zero) replaces the spec's, hugepage limits are added
/// under the same hugetlb keys as at create, unified keys are merged.
pub fn update_resources(
    spec: &mut Spec,
    res: &LinuxContainerResources,
    opts: ResourceOptions,
    host: &dyn HostOs,
) -> Result<()> {
    apply_resources(spec, Some(res), &opts, host)
}

/// containerd's `WithResources`. Nothing happens without resources; with
/// them, the CPU and memory sections exist even if nothing is set.
pub(crate) fn apply_resources(
    spec: &mut Spec,
    res: Option<&LinuxContainerResources>,
    opts: &ResourceOptions,
    host: &dyn HostOs,
) -> Result<()> {
    let Some(res) = res else { return Ok(()) };
    let swap_available = host.swap_controller_available();
    let r = access::resources(spec);
    let mut cpu = r.cpu().clone().unwrap_or_default();
    let mut memory = r.memory().unwrap_or_default();
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
        // Swap equal to the limit keeps the container from swapping.
        if swap == 0 && swap_available {
            memory.set_swap(Some(limit));
        }
    }
    if swap != 0 && swap_available {
        memory.set_swap(Some(swap));
    }
    r.set_cpu(Some(cpu));
    r.set_memory(Some(memory));

    if !opts.disable_hugetlb_controller && !res.hugepage_limits.is_empty() {
        if host.hugetlb_controller_present() {
            let mut limits = Vec::with_capacity(res.hugepage_limits.len());
            for h in &res.hugepage_limits {
                let limit = i64::try_from(h.limit).map_err(|_| Error::HugepageLimitOutOfRange {
                    page_size: h.page_size.clone(),
                    limit: h.limit,
                })?;
                let mut l = LinuxHugepageLimit::default();
                l.set_page_size(h.page_size.clone());
                l.set_limit(limit);
                limits.push(l);
            }
            access::resources(spec)
                .hugepage_limits_mut()
                .get_or_insert_with(Vec::new)
                .extend(limits);
        } else if !opts.tolerate_missing_hugetlb_controller {
            return Err(Error::HugetlbControllerMissing);
        } else {
            tracing::warn!("hugetlb cgroup controller is absent, skipping huge pages limits");
        }
    }
    if !res.unified.is_empty() {
        let unified = access::resources(spec)
            .unified_mut()
            .get_or_insert_with(Default::default);
        unified.extend(res.unified.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    Ok(())
}

/// The container's cgroups path from the sandbox's cgroup parent (the
/// namespaced default stays without one); cleared when cgroups are
/// disabled (`WithDisabledCgroups`).
pub(crate) fn apply_cgroups_path(spec: &mut Spec, parent: &str, id: &str, disable_cgroup: bool) {
    let linux = access::linux(spec);
    if disable_cgroup {
        linux.set_cgroups_path(None);
    } else if !parent.is_empty() {
        linux.set_cgroups_path(Some(cgroups_path(parent, id).into()));
    }
}
