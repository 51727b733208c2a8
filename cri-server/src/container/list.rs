//! ListContainers (containerd's `container_list.go`): every stored
//! container, filtered by id (or unique id prefix), state, sandbox (or
//! unique sandbox id prefix) and label selector.

use cri_api::v1::{Container as CriContainer, ContainerFilter, ListContainersRequest};
use cri_store::container::Container;

use super::ContainerService;

/// ListContainers.
pub fn list_containers(
    state: &ContainerService,
    request: &ListContainersRequest,
) -> Vec<CriContainer> {
    let containers = state.store.list().iter().map(to_cri).collect();
    match &request.filter {
        Some(filter) => filter_containers(state, containers, filter),
        None => containers,
    }
}

/// containerd's `toCRIContainer`.
fn to_cri(container: &Container) -> CriContainer {
    let meta = &container.metadata;
    CriContainer {
        id: meta.id.to_string(),
        pod_sandbox_id: meta.sandbox_id.to_string(),
        metadata: meta.config.metadata.clone(),
        image: meta.config.image.clone(),
        image_ref: meta.image_ref.clone(),
        state: container.status.state() as i32,
        created_at: container.status.created_at,
        labels: meta.config.labels.clone(),
        annotations: meta.config.annotations.clone(),
        image_id: meta.image_ref.clone(),
    }
}

/// containerd's `filterCRIContainers`: short ids are expanded when they
/// match exactly one container or sandbox, else compared as given.
fn filter_containers(
    state: &ContainerService,
    containers: Vec<CriContainer>,
    filter: &ContainerFilter,
) -> Vec<CriContainer> {
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
    containers
        .into_iter()
        .filter(|c| id.is_empty() || c.id == id)
        .filter(|c| sandbox_id.is_empty() || c.pod_sandbox_id == sandbox_id)
        .filter(|c| filter.state.as_ref().is_none_or(|s| s.state == c.state))
        .filter(|c| {
            filter
                .label_selector
                .iter()
                .all(|(k, v)| c.labels.get(k) == Some(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
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
}
