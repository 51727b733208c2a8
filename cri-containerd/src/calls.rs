//! A lock-free count of the calls made to containerd, per gRPC method,
//! for the whole process: every call through [`crate::ContainerdClient`]'s
//! channel is counted in `traced.rs`, whoever makes it. A daemon exports
//! the counts (e.g. as a Prometheus counter per method); benchmarks read
//! them to see how many round trips one CRI call costs.

use std::sync::atomic::{AtomicU64, Ordering};

/// Every containerd v1 method the seam can call, as
/// `/<service>/<method>`; anything else is counted under [`OTHER`].
const METHODS: &[&str] = &[
    "/containerd.services.containers.v1.Containers/Get",
    "/containerd.services.containers.v1.Containers/List",
    "/containerd.services.containers.v1.Containers/ListStream",
    "/containerd.services.containers.v1.Containers/Create",
    "/containerd.services.containers.v1.Containers/Update",
    "/containerd.services.containers.v1.Containers/Delete",
    "/containerd.services.tasks.v1.Tasks/Create",
    "/containerd.services.tasks.v1.Tasks/Start",
    "/containerd.services.tasks.v1.Tasks/Delete",
    "/containerd.services.tasks.v1.Tasks/DeleteProcess",
    "/containerd.services.tasks.v1.Tasks/Get",
    "/containerd.services.tasks.v1.Tasks/List",
    "/containerd.services.tasks.v1.Tasks/Kill",
    "/containerd.services.tasks.v1.Tasks/Exec",
    "/containerd.services.tasks.v1.Tasks/ResizePty",
    "/containerd.services.tasks.v1.Tasks/CloseIO",
    "/containerd.services.tasks.v1.Tasks/Pause",
    "/containerd.services.tasks.v1.Tasks/Resume",
    "/containerd.services.tasks.v1.Tasks/ListPids",
    "/containerd.services.tasks.v1.Tasks/Checkpoint",
    "/containerd.services.tasks.v1.Tasks/Update",
    "/containerd.services.tasks.v1.Tasks/Metrics",
    "/containerd.services.tasks.v1.Tasks/Wait",
    "/containerd.services.content.v1.Content/Info",
    "/containerd.services.content.v1.Content/Update",
    "/containerd.services.content.v1.Content/List",
    "/containerd.services.content.v1.Content/Delete",
    "/containerd.services.content.v1.Content/Read",
    "/containerd.services.content.v1.Content/Status",
    "/containerd.services.content.v1.Content/ListStatuses",
    "/containerd.services.content.v1.Content/Write",
    "/containerd.services.content.v1.Content/Abort",
    "/containerd.services.images.v1.Images/Get",
    "/containerd.services.images.v1.Images/List",
    "/containerd.services.images.v1.Images/Create",
    "/containerd.services.images.v1.Images/Update",
    "/containerd.services.images.v1.Images/Delete",
    "/containerd.services.snapshots.v1.Snapshots/Prepare",
    "/containerd.services.snapshots.v1.Snapshots/View",
    "/containerd.services.snapshots.v1.Snapshots/Mounts",
    "/containerd.services.snapshots.v1.Snapshots/Commit",
    "/containerd.services.snapshots.v1.Snapshots/Remove",
    "/containerd.services.snapshots.v1.Snapshots/Stat",
    "/containerd.services.snapshots.v1.Snapshots/Update",
    "/containerd.services.snapshots.v1.Snapshots/List",
    "/containerd.services.snapshots.v1.Snapshots/Usage",
    "/containerd.services.snapshots.v1.Snapshots/Cleanup",
    "/containerd.services.diff.v1.Diff/Apply",
    "/containerd.services.diff.v1.Diff/Diff",
    "/containerd.services.leases.v1.Leases/Create",
    "/containerd.services.leases.v1.Leases/Delete",
    "/containerd.services.leases.v1.Leases/List",
    "/containerd.services.leases.v1.Leases/AddResource",
    "/containerd.services.leases.v1.Leases/DeleteResource",
    "/containerd.services.leases.v1.Leases/ListResources",
    "/containerd.services.events.v1.Events/Publish",
    "/containerd.services.events.v1.Events/Forward",
    "/containerd.services.events.v1.Events/Subscribe",
    "/containerd.services.namespaces.v1.Namespaces/Get",
    "/containerd.services.namespaces.v1.Namespaces/List",
    "/containerd.services.namespaces.v1.Namespaces/Create",
    "/containerd.services.namespaces.v1.Namespaces/Update",
    "/containerd.services.namespaces.v1.Namespaces/Delete",
    "/containerd.services.version.v1.Version/Version",
    "/containerd.services.introspection.v1.Introspection/Plugins",
    "/containerd.services.introspection.v1.Introspection/Server",
    "/grpc.health.v1.Health/Check",
];

/// The name calls outside `METHODS` are counted under.
pub const OTHER: &str = "other";

static COUNTS: [AtomicU64; METHODS.len() + 1] = [const { AtomicU64::new(0) }; METHODS.len() + 1];

/// Counts one call of `path` (`/<service>/<method>`).
pub(crate) fn record(path: &str) {
    let index = METHODS
        .iter()
        .position(|m| *m == path)
        .unwrap_or(METHODS.len());
    COUNTS[index].fetch_add(1, Ordering::Relaxed);
}

/// The calls made so far by this process, per method: `(service, method,
/// count)` for every method called at least once, in a fixed order;
/// calls outside the known methods as `("other", "", n)`. Monotonic, so a
/// Prometheus exporter can serve each as a counter.
pub fn containerd_call_counts() -> Vec<(&'static str, &'static str, u64)> {
    METHODS
        .iter()
        .map(|path| {
            let (service, method) = split_path(path);
            (service, method)
        })
        .chain(std::iter::once((OTHER, "")))
        .zip(COUNTS.iter())
        .filter_map(|((service, method), count)| {
            let n = count.load(Ordering::Relaxed);
            (n > 0).then_some((service, method, n))
        })
        .collect()
}

/// `/containerd.services.tasks.v1.Tasks/Create` → (service, method).
pub(crate) fn split_path(path: &str) -> (&str, &str) {
    path.trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_of(service: &str, method: &str) -> u64 {
        containerd_call_counts()
            .into_iter()
            .find(|(s, m, _)| *s == service && *m == method)
            .map_or(0, |(_, _, n)| n)
    }

    #[test]
    fn counts_known_methods_and_the_rest() {
        let service = "containerd.services.snapshots.v1.Snapshots";
        let before = count_of(service, "Cleanup");
        let other = count_of(OTHER, "");
        record("/containerd.services.snapshots.v1.Snapshots/Cleanup");
        record("/containerd.services.snapshots.v1.Snapshots/Cleanup");
        record("/containerd.services.sandbox.v1.Store/Create");
        assert_eq!(count_of(service, "Cleanup"), before + 2);
        assert_eq!(count_of(OTHER, ""), other + 1);
    }

    #[test]
    fn method_names_are_unique_and_well_formed() {
        let mut seen = std::collections::BTreeSet::new();
        for path in METHODS {
            assert!(seen.insert(path), "{path} listed twice");
            let (service, method) = split_path(path);
            assert!(!service.is_empty() && !method.is_empty(), "{path}");
        }
    }
}
