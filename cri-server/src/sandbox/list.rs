//! ListPodSandbox: every stored sandbox, filtered by id (full or unique
//! prefix), state and label selector, as containerd's
//! `filterCRISandboxes`.

use bytes::Bytes;
use cri_api::v1::{ListPodSandboxResponse, PodSandbox, PodSandboxFilter};
use cri_store::sandbox::Sandbox;
use prost::Message;

use super::SandboxService;

/// ListPodSandbox, encoded: the `ListPodSandboxResponse` message as it
/// goes on the wire. An unfiltered request (no filter, or one with every
/// field empty) is answered from the service's
/// [`ListCache`](crate::list_cache::ListCache) while the store is
/// unchanged.
pub fn list_pod_sandbox_encoded(state: &SandboxService, filter: Option<PodSandboxFilter>) -> Bytes {
    let unfiltered = filter.as_ref().is_none_or(is_empty);
    let encode = || {
        let items = list_pod_sandbox(state, filter);
        Bytes::from(ListPodSandboxResponse { items }.encode_to_vec())
    };
    if unfiltered {
        state
            .list_cache
            .get_or_build(state.store.generation(), encode)
    } else {
        encode()
    }
}

fn is_empty(filter: &PodSandboxFilter) -> bool {
    filter.id.is_empty() && filter.state.is_none() && filter.label_selector.is_empty()
}

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
    #![allow(clippy::unwrap_used)]
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

    /// The encoded list decodes to the list; an unchanged store answers
    /// with the kept buffer; a status change and a removal show at once.
    #[test]
    fn encoded_answer_follows_the_store() {
        use cri_api::ids::SandboxId;
        use cri_store::sandbox::SandboxState;

        use crate::container::testutil::{add_sandbox, TestEnv};

        let env = TestEnv::new();
        add_sandbox(&env, "pod-a", true);
        add_sandbox(&env, "pod-b", true);
        let pods = &env.server.sandboxes;
        let decoded = |bytes: &Bytes| ListPodSandboxResponse::decode(bytes.clone()).unwrap().items;

        let first = list_pod_sandbox_encoded(pods, None);
        assert_eq!(decoded(&first), list_pod_sandbox(pods, None));
        let again = list_pod_sandbox_encoded(pods, Some(PodSandboxFilter::default()));
        assert_eq!(first.as_ptr(), again.as_ptr());
        let ready_only = Some(PodSandboxFilter {
            state: Some(PodSandboxStateValue {
                state: PodSandboxState::SandboxReady as i32,
            }),
            ..Default::default()
        });
        assert_eq!(
            decoded(&list_pod_sandbox_encoded(pods, ready_only.clone())),
            list_pod_sandbox(pods, ready_only)
        );

        let id = SandboxId::from("pod-a");
        pods.store
            .update_status(&id, |s| {
                s.state = SandboxState::NotReady;
                Ok::<(), cri_store::StoreError>(())
            })
            .unwrap();
        let after = decoded(&list_pod_sandbox_encoded(pods, None));
        assert_eq!(after[0].id, "pod-a");
        assert_eq!(after[0].state, PodSandboxState::SandboxNotready as i32);
        pods.store.remove(&id).unwrap();
        let ids: Vec<String> = decoded(&list_pod_sandbox_encoded(pods, None))
            .into_iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(ids, ["pod-b"]);
    }
}
