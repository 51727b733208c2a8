//! ListContainers (containerd's `container_list.go`): every stored
//! container, filtered by id (or unique id prefix), state, sandbox (or
//! unique sandbox id prefix) and label selector.

use bytes::Bytes;
use cri_api::v1::{
    Container as CriContainer, ContainerFilter, ListContainersRequest, ListContainersResponse,
};
use cri_store::container::{ContainerMetadata, ContainerStatus};
use prost::Message;

use super::ContainerService;

/// ListContainers, encoded: the `ListContainersResponse` message as it
/// goes on the wire. An unfiltered request (no filter, or one with every
/// field empty, as the kubelet's relist sends) is answered from the
/// service's [`ListCache`](crate::list_cache::ListCache) while the store
/// is unchanged.
pub fn list_containers_encoded(state: &ContainerService, request: &ListContainersRequest) -> Bytes {
    let encode = || {
        let containers = list_containers(state, request);
        Bytes::from(ListContainersResponse { containers }.encode_to_vec())
    };
    if request.filter.as_ref().is_none_or(is_empty) {
        state
            .list_cache
            .get_or_build(state.store.generation(), encode)
    } else {
        encode()
    }
}

fn is_empty(filter: &ContainerFilter) -> bool {
    filter.id.is_empty()
        && filter.pod_sandbox_id.is_empty()
        && filter.state.is_none()
        && filter.label_selector.is_empty()
}

/// ListContainers: the filter is resolved once, then each container is
/// matched on its stored record and only a match is converted.
pub fn list_containers(
    state: &ContainerService,
    request: &ListContainersRequest,
) -> Vec<CriContainer> {
    let Some(filter) = &request.filter else {
        return state
            .store
            .filter_map(|meta, status| Some(to_cri(meta, status)));
    };
    let filter = Filter::resolve(state, filter);
    state
        .store
        .filter_map(|meta, status| filter.matches(meta, status).then(|| to_cri(meta, status)))
}

/// containerd's `toCRIContainer`.
fn to_cri(meta: &ContainerMetadata, status: &ContainerStatus) -> CriContainer {
    CriContainer {
        id: meta.id.to_string(),
        pod_sandbox_id: meta.sandbox_id.to_string(),
        metadata: meta.config.metadata.clone(),
        image: meta.config.image.clone(),
        image_ref: meta.image_ref.clone(),
        state: status.state() as i32,
        created_at: status.created_at,
        labels: meta.config.labels.clone(),
        annotations: meta.config.annotations.clone(),
        image_id: meta.image_ref.clone(),
    }
}

/// containerd's `filterCRIContainers`, with short ids expanded once: an
/// id or sandbox id prefix that matches exactly one container or sandbox
/// stands for it, else it is compared as given.
struct Filter<'a> {
    id: String,
    sandbox_id: String,
    state: Option<i32>,
    labels: &'a std::collections::HashMap<String, String>,
}

impl<'a> Filter<'a> {
    fn resolve(state: &ContainerService, filter: &'a ContainerFilter) -> Self {
        let sandbox_id = match filter.pod_sandbox_id.as_str() {
            "" => String::new(),
            prefix => state
                .sandboxes
                .get(prefix)
                .map(|s| s.metadata.id.to_string())
                .unwrap_or_else(|_| prefix.to_owned()),
        };
        let id = match filter.id.as_str() {
            "" => String::new(),
            prefix => state
                .store
                .get(prefix)
                .map(|c| c.metadata.id.to_string())
                .unwrap_or_else(|_| prefix.to_owned()),
        };
        Self {
            id,
            sandbox_id,
            state: filter.state.as_ref().map(|s| s.state),
            labels: &filter.label_selector,
        }
    }

    fn matches(&self, meta: &ContainerMetadata, status: &ContainerStatus) -> bool {
        (self.id.is_empty() || meta.id.as_ref() == self.id)
            && (self.sandbox_id.is_empty() || meta.sandbox_id.as_ref() == self.sandbox_id)
            && self.state.is_none_or(|s| s == status.state() as i32)
            && self
                .labels
                .iter()
                .all(|(k, v)| meta.config.labels.get(k) == Some(v))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use cri_api::v1::{ContainerState, ContainerStateValue};
    use cri_store::container::ContainerStatus;

    use super::*;
    use crate::container::testutil::{add_container, add_sandbox, TestEnv};

    fn running() -> ContainerStatus {
        ContainerStatus {
            created_at: 1,
            started_at: 2,
            ..ContainerStatus::default()
        }
    }

    fn created() -> ContainerStatus {
        ContainerStatus {
            created_at: 1,
            ..ContainerStatus::default()
        }
    }

    fn check(env: &TestEnv, filter: Option<ContainerFilter>, expected: &[&str]) {
        let got = list_containers(&env.state, &ListContainersRequest { filter });
        let ids: Vec<&str> = got.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, expected);
    }

    fn env() -> TestEnv {
        let env = TestEnv::new();
        add_sandbox(&env, "sandbox-a", true);
        add_sandbox(&env, "sandbox-b", true);
        add_container(&env, "aaa1", "sandbox-a", running());
        add_container(&env, "aab2", "sandbox-a", created());
        add_container(&env, "bbb3", "sandbox-b", running());
        env
    }

    #[test]
    fn no_filter_lists_all_sorted() {
        check(&env(), None, &["aaa1", "aab2", "bbb3"]);
    }

    #[test]
    fn by_id_and_unique_prefix() {
        let env = env();
        let by_id = |id: &str| ContainerFilter {
            id: id.into(),
            ..ContainerFilter::default()
        };
        check(&env, Some(by_id("aab2")), &["aab2"]);
        check(&env, Some(by_id("bb")), &["bbb3"]);
        // An ambiguous prefix matches nothing (it is compared as given).
        check(&env, Some(by_id("aa")), &[]);
    }

    #[test]
    fn by_state_sandbox_and_labels() {
        let env = env();
        check(
            &env,
            Some(ContainerFilter {
                state: Some(ContainerStateValue {
                    state: ContainerState::ContainerRunning as i32,
                }),
                ..ContainerFilter::default()
            }),
            &["aaa1", "bbb3"],
        );
        check(
            &env,
            Some(ContainerFilter {
                pod_sandbox_id: "sandbox-b".into(),
                ..ContainerFilter::default()
            }),
            &["bbb3"],
        );
        check(
            &env,
            Some(ContainerFilter {
                pod_sandbox_id: "sandbox-a".into(),
                label_selector: [("app".to_owned(), "web".to_owned())].into(),
                ..ContainerFilter::default()
            }),
            &["aaa1", "aab2"],
        );
        check(
            &env,
            Some(ContainerFilter {
                label_selector: [("app".to_owned(), "db".to_owned())].into(),
                ..ContainerFilter::default()
            }),
            &[],
        );
    }

    fn decoded(bytes: &Bytes) -> Vec<CriContainer> {
        ListContainersResponse::decode(bytes.clone())
            .unwrap()
            .containers
    }

    fn encoded(env: &TestEnv, filter: Option<ContainerFilter>) -> Bytes {
        list_containers_encoded(&env.state, &ListContainersRequest { filter })
    }

    #[test]
    fn encoded_answer_is_the_list() {
        let env = env();
        let running = Some(ContainerFilter {
            state: Some(ContainerStateValue {
                state: ContainerState::ContainerRunning as i32,
            }),
            ..ContainerFilter::default()
        });
        for filter in [None, Some(ContainerFilter::default()), running] {
            let request = ListContainersRequest {
                filter: filter.clone(),
            };
            assert_eq!(
                decoded(&encoded(&env, filter)),
                list_containers(&env.state, &request)
            );
        }
    }

    #[test]
    fn unchanged_store_answers_with_the_kept_bytes_and_a_change_rebuilds_them() {
        let env = env();
        let first = encoded(&env, None);
        // The kubelet's relist (an empty filter) gets the same buffer.
        let again = encoded(&env, Some(ContainerFilter::default()));
        assert_eq!(first.as_ptr(), again.as_ptr());
        // A filtered request is answered on its own and leaves it kept.
        let filtered = encoded(
            &env,
            Some(ContainerFilter {
                pod_sandbox_id: "sandbox-b".into(),
                ..ContainerFilter::default()
            }),
        );
        assert_eq!(decoded(&filtered).len(), 1);
        assert_eq!(encoded(&env, None).as_ptr(), first.as_ptr());

        // A status change: the container exits, and the answer says so.
        let id = cri_api::ids::ContainerId::from("aaa1");
        env.state
            .store
            .update_status(&id, |s| {
                s.finished_at = 3;
                Ok::<(), cri_store::error::StoreError>(())
            })
            .unwrap();
        let after = decoded(&encoded(&env, None));
        let state = after.iter().find(|c| c.id == "aaa1").unwrap().state;
        assert_eq!(state, ContainerState::ContainerExited as i32);

        // A removal and an addition.
        env.state.store.remove(&id).unwrap();
        let ids = |b: &Bytes| decoded(b).into_iter().map(|c| c.id).collect::<Vec<_>>();
        assert_eq!(ids(&encoded(&env, None)), ["aab2", "bbb3"]);
        add_container(&env, "ccc4", "sandbox-b", created());
        assert_eq!(ids(&encoded(&env, None)), ["aab2", "bbb3", "ccc4"]);
    }
}
