//! The stats request filters (`ContainerStatsFilter`, `PodSandboxStatsFilter`)
//! applied to targets, as containerd's `buildTaskMetricsRequest`: an id (or a
//! unique prefix the caller's id index resolves), a sandbox id, and a label
//! selector every key of which must match.

use std::collections::HashMap;

use cri_api::v1::{ContainerStatsFilter, PodSandboxStatsFilter};

use super::{ContainerTarget, PodTarget};

/// Whether every `selector` entry is in `labels` with the same value.
pub fn labels_match(selector: &HashMap<String, String>, labels: &HashMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The targets `filter` selects. `container` and `sandbox` map an id or
/// unique prefix to a full id, each in its own store (containerd's
/// `normalizeContainerStatsFilter`); an unresolvable one is compared as
/// given, so it matches nothing.
pub fn select_containers(
    targets: Vec<ContainerTarget>,
    filter: Option<&ContainerStatsFilter>,
    container: impl Fn(&str) -> Option<String>,
    sandbox: impl Fn(&str) -> Option<String>,
) -> Vec<ContainerTarget> {
    let Some(filter) = filter else { return targets };
    let full = |id: &str, resolve: &dyn Fn(&str) -> Option<String>| match id {
        "" => String::new(),
        id => resolve(id).unwrap_or_else(|| id.to_owned()),
    };
    let id = full(&filter.id, &container);
    let sandbox_id = full(&filter.pod_sandbox_id, &sandbox);
    targets
        .into_iter()
        .filter(|t| id.is_empty() || t.id == id)
        .filter(|t| sandbox_id.is_empty() || t.sandbox_id == sandbox_id)
        .filter(|t| labels_match(&filter.label_selector, &t.attributes.labels))
        .collect()
}

/// The pods `filter` selects (id or unique prefix, label selector).
pub fn select_pods(
    pods: Vec<PodTarget>,
    filter: Option<&PodSandboxStatsFilter>,
    resolve: impl Fn(&str) -> Option<String>,
) -> Vec<PodTarget> {
    let Some(filter) = filter else { return pods };
    let id = match filter.id.as_str() {
        "" => String::new(),
        id => resolve(id).unwrap_or_else(|| id.to_owned()),
    };
    pods.into_iter()
        .filter(|p| id.is_empty() || p.id == id)
        .filter(|p| labels_match(&filter.label_selector, &p.attributes.labels))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cri_api::v1::ContainerAttributes;

    fn target(id: &str, sandbox: &str, labels: &[(&str, &str)]) -> ContainerTarget {
        ContainerTarget {
            id: id.into(),
            sandbox_id: sandbox.into(),
            attributes: ContainerAttributes {
                id: id.into(),
                labels: labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn check(filter: Option<ContainerStatsFilter>, expected: &[&str]) {
        let targets = vec![
            target("abc1", "sb1", &[("app", "web")]),
            target("abd2", "sb1", &[("app", "db")]),
            target("xyz3", "sb2", &[("app", "web"), ("tier", "1")]),
        ];
        let container = |p: &str| match p {
            "abc" => Some("abc1".to_owned()),
            // A prefix of a container id too: the sandbox filter must not
            // take it as one.
            "s" => Some("s9-container".to_owned()),
            _ => None,
        };
        let sandbox = |p: &str| match p {
            "s2" => Some("sb2".to_owned()),
            "s" => Some("sb1".to_owned()),
            _ => None,
        };
        let got = select_containers(targets, filter.as_ref(), container, sandbox);
        let ids: Vec<_> = got.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, expected);
    }

    fn filter(id: &str, sandbox: &str, labels: &[(&str, &str)]) -> Option<ContainerStatsFilter> {
        Some(ContainerStatsFilter {
            id: id.into(),
            pod_sandbox_id: sandbox.into(),
            label_selector: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        })
    }

    #[test]
    fn container_filters() {
        check(None, &["abc1", "abd2", "xyz3"]);
        check(filter("", "", &[]), &["abc1", "abd2", "xyz3"]);
        check(filter("abc", "", &[]), &["abc1"]);
        check(filter("abc1", "", &[]), &["abc1"]);
        check(filter("ab", "", &[]), &[]);
        check(filter("", "sb1", &[]), &["abc1", "abd2"]);
        check(filter("", "s2", &[]), &["xyz3"]);
        check(filter("", "s", &[]), &["abc1", "abd2"]);
        check(filter("", "abc", &[]), &[]);
        check(filter("", "", &[("app", "web")]), &["abc1", "xyz3"]);
        check(filter("", "", &[("app", "web"), ("tier", "1")]), &["xyz3"]);
        check(filter("", "sb1", &[("app", "web")]), &["abc1"]);
        check(filter("", "", &[("missing", "x")]), &[]);
    }

    #[test]
    fn pod_filters() {
        let pod = |id: &str, app: &str| {
            let mut p = PodTarget {
                id: id.into(),
                ..Default::default()
            };
            p.attributes.labels.insert("app".into(), app.into());
            p
        };
        let pods = || vec![pod("p1", "web"), pod("p2", "db")];
        let f = |id: &str, app: &str| PodSandboxStatsFilter {
            id: id.into(),
            label_selector: [("app".to_owned(), app.to_owned())]
                .into_iter()
                .filter(|_| !app.is_empty())
                .collect(),
        };
        let ids = |v: Vec<PodTarget>| v.into_iter().map(|p| p.id).collect::<Vec<_>>();
        let resolve = |p: &str| (p == "p").then(|| "p2".to_owned());
        assert_eq!(ids(select_pods(pods(), None, resolve)), ["p1", "p2"]);
        assert_eq!(ids(select_pods(pods(), Some(&f("p", "")), resolve)), ["p2"]);
        assert_eq!(
            ids(select_pods(pods(), Some(&f("", "web")), resolve)),
            ["p1"]
        );
        assert_eq!(
            ids(select_pods(pods(), Some(&f("p1", "db")), resolve)),
            Vec::<String>::new()
        );
    }
}
