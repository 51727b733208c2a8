//! ListPodSandbox: every stored sandbox, filtered by id (full or unique
//! prefix), state and label selector, as containerd's
//! `filterCRISandboxes`.

use cri_api::v1::{PodSandbox, PodSandboxFilter};
use cri_store::sandbox::Sandbox;

use super::SandboxService;

/// ListPodSandbox.
pub fn list_pod_sandbox(
    state: &SandboxService,
    filter: Option<PodSandboxFilter>,
) -> Vec<PodSandbox> {
    let sandboxes = state.store.list().iter().map(to_cri).collect();
    match filter {
        Some(mut filter) => {
            // A unique prefix stands for its full id (normalizePodSandboxFilter).
            if let Ok(s) = state.store.get(&filter.id) {
                filter.id = s.metadata.id.to_string();
            }
            filter_sandboxes(sandboxes, &filter)
        }
        None => sandboxes,
    }
}

/// containerd's `toCRISandbox`.
pub fn to_cri(sandbox: &Sandbox) -> PodSandbox {
    let meta = &sandbox.metadata;
    PodSandbox {
        id: meta.id.to_string(),
        metadata: meta.config.metadata.clone(),
        state: sandbox.status.state.to_cri() as i32,
        created_at: sandbox.status.created_at,
        labels: meta.config.labels.clone(),
        annotations: meta.config.annotations.clone(),
        runtime_handler: meta.runtime_handler.clone(),
    }
}

/// Keeps the sandboxes matching every set part of `filter`.
pub fn filter_sandboxes(sandboxes: Vec<PodSandbox>, filter: &PodSandboxFilter) -> Vec<PodSandbox> {
    sandboxes
        .into_iter()
        .filter(|s| filter.id.is_empty() || filter.id == s.id)
        .filter(|s| filter.state.as_ref().is_none_or(|w| w.state == s.state))
        .filter(|s| {
            filter
                .label_selector
                .iter()
                .all(|(k, v)| s.labels.get(k) == Some(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use cri_api::v1::{PodSandboxState, PodSandboxStateValue};

    use super::*;

    fn sandbox(id: &str, ready: bool, labels: &[(&str, &str)]) -> PodSandbox {
        let state = if ready {
            PodSandboxState::SandboxReady
        } else {
            PodSandboxState::SandboxNotready
        };
        PodSandbox {
            id: id.into(),
            state: state as i32,
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            ..PodSandbox::default()
        }
    }

    fn check(filter: PodSandboxFilter, expected: &[&str]) {
        let all = vec![
            sandbox("a1", true, &[("app", "web"), ("tier", "front")]),
            sandbox("a2", false, &[("app", "web")]),
            sandbox("b1", true, &[("app", "db")]),
        ];
        let got: Vec<String> = filter_sandboxes(all, &filter)
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(got, expected, "{filter:?}");
    }

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn filters() {
        check(PodSandboxFilter::default(), &["a1", "a2", "b1"]);
        check(
            PodSandboxFilter {
                id: "a2".into(),
                ..Default::default()
            },
            &["a2"],
        );
        check(
            PodSandboxFilter {
                state: Some(PodSandboxStateValue {
                    state: PodSandboxState::SandboxReady as i32,
                }),
                ..Default::default()
            },
            &["a1", "b1"],
        );
        check(
            PodSandboxFilter {
                label_selector: labels(&[("app", "web")]),
                ..Default::default()
            },
            &["a1", "a2"],
        );
        check(
            PodSandboxFilter {
                label_selector: labels(&[("app", "web"), ("tier", "front")]),
                state: Some(PodSandboxStateValue {
                    state: PodSandboxState::SandboxReady as i32,
                }),
                ..Default::default()
            },
            &["a1"],
        );
        check(
            PodSandboxFilter {
                id: "zz".into(),
                ..Default::default()
            },
            &[],
        );
    }
}
