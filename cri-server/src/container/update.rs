//! UpdateContainerResources (containerd's
//! `container_update_resources_linux.go`): the new Linux resources go into
//! the stored spec, so a restart keeps them, then onto the running task;
//! the status checkpoint records them. Any container but one being removed
//! can be updated; only a running one has a task to update.

use std::time::Duration;

use cri_api::containerd::Any;
use cri_api::v1::{ContainerState, UpdateContainerResourcesRequest};
use oci_spec::runtime::Spec;

use super::error::{ContainerError, Result};
use super::ContainerService;
use super::{get, resources, spec, state_name, update_status_sync};

/// The type URL containerd sends task resource updates under.
pub const LINUX_RESOURCES_TYPE_URL: &str =
    "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";
/// How long a restore of the old spec may take after a failed update.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(30);

/// UpdateContainerResources.
pub async fn update_container_resources(
    state: &ContainerService,
    request: UpdateContainerResourcesRequest,
) -> Result<()> {
    let container = get(state, &request.container_id)?;
    let id = container.metadata.id.clone();
    tracing::Span::current().record("container_id", id.as_ref());
    let Some(linux) = request.linux.as_ref() else {
        // Nothing for Linux to change (Windows resources are not served).
        return Ok(());
    };
    let handle = state.store.handle(id.as_ref());
    let _guard = match &handle {
        Some(h) => Some(h.update_lock.lock().await),
        None => None,
    };
    let status = state
        .store
        .get(id.as_ref())
        .map_err(ContainerError::ContainerStore)?
        .status;
    let current = status.state();
    // As containerd: any state but a removal in progress; the spec of a
    // container that does not run is all there is to update.
    if status.removing {
        return Err(ContainerError::ContainerState {
            id: id.to_string(),
            state: state_name(current),
            reason: "it is being removed".into(),
        });
    }

    let mut record = state.containerd.containers.get(id.as_ref()).await?;
    let old_spec = spec::spec_from_any(id.as_ref(), record.spec.as_ref())?;
    let mut new_spec = old_spec.clone();
    let cri = &state.config.cri;
    let opts = cri_spec::ResourceOptions {
        tolerate_missing_hugetlb_controller: cri.tolerate_missing_hugetlb_controller,
        disable_hugetlb_controller: cri.disable_hugetlb_controller,
    };
    cri_spec::update_resources(&mut new_spec, linux, opts, state.host.os.as_ref()).map_err(
        |source| ContainerError::ContainerSpec {
            id: id.to_string(),
            source,
        },
    )?;
    record.spec = Some(spec::spec_any(id.as_ref(), &new_spec)?);
    state
        .containerd
        .containers
        .update(record.clone(), vec!["spec".to_owned()])
        .await?;

    let applied = if current == ContainerState::ContainerRunning {
        update_task(state, id.as_ref(), &new_spec).await
    } else {
        Ok(())
    };
    if let Err(e) = applied {
        restore_spec(state, record, &old_spec).await;
        return Err(e);
    }
    update_status_sync(state, &id, |s| {
        s.resources = Some(resources::spec_to_cri(&new_spec));
        Ok(())
    })
    .await?;
    Ok(())
}

/// `task.Update(WithResources)`; a task that is gone (the container
/// exited meanwhile) is not an error.
async fn update_task(state: &ContainerService, id: &str, spec: &Spec) -> Result<()> {
    let value = serde_json::to_vec(&resources::linux_resources(spec)).map_err(|source| {
        ContainerError::SpecJson {
            id: id.to_owned(),
            op: "encode the resources in",
            source,
        }
    })?;
    let any = Any {
        type_url: LINUX_RESOURCES_TYPE_URL.to_owned(),
        value,
    };
    match state.containerd.tasks.update(id, any).await {
        Err(e) if !e.is_not_found() => Err(e.into()),
        _ => Ok(()),
    }
}

async fn restore_spec(
    state: &ContainerService,
    mut record: cri_api::containerd::ContainerRecord,
    old: &Spec,
) {
    let id = record.id.clone();
    match spec::spec_any(&id, old) {
        Ok(any) => record.spec = Some(any),
        Err(e) => {
            tracing::error!(container_id = %id, error = %e, "encode old spec to restore");
            return;
        }
    }
    let restore = state
        .containerd
        .containers
        .update(record, vec!["spec".to_owned()]);
    match tokio::time::timeout(RESTORE_TIMEOUT, restore).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::error!(container_id = %id, error = %e, "restore spec after failed update")
        }
        Err(_) => tracing::error!(container_id = %id, "restore spec after failed update timed out"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::{Arc, Mutex};

    use cri_api::containerd::{ContainerRecord, ContainerdError};
    use cri_api::v1::{HugepageLimit, LinuxContainerResources};
    use mockall::Sequence;
    use oci_spec::runtime::{LinuxMemoryBuilder, LinuxResourcesBuilder};
    use tonic::Code;

    use super::*;
    use crate::container::testutil::{
        add_live_container, checkpointed, created_status, running_status, Mocks, TestEnv,
    };

    fn request(bytes: i64) -> UpdateContainerResourcesRequest {
        UpdateContainerResourcesRequest {
            container_id: "c1".into(),
            linux: Some(LinuxContainerResources {
                memory_limit_in_bytes: bytes,
                cpu_shares: 256,
                ..LinuxContainerResources::default()
            }),
            ..UpdateContainerResourcesRequest::default()
        }
    }

    fn record() -> ContainerRecord {
        let mut spec = Spec::default();
        let limit = LinuxMemoryBuilder::default()
            .limit(64_i64 << 20)
            .build()
            .unwrap();
        let res = LinuxResourcesBuilder::default()
            .memory(limit)
            .build()
            .unwrap();
        let mut linux = spec.linux().clone().unwrap_or_default();
        linux.set_resources(Some(res));
        spec.set_linux(Some(linux));
        ContainerRecord {
            id: "c1".into(),
            spec: Some(spec::spec_any("c1", &spec).unwrap()),
            ..ContainerRecord::default()
        }
    }

    fn memory_limit(record: &ContainerRecord) -> Option<i64> {
        let spec = spec::spec_from_any("c1", record.spec.as_ref()).unwrap();
        resources::linux_resources(&spec)
            .memory()
            .and_then(|m| m.limit())
    }

    /// Spec updates seen by containerd, in order.
    type Updates = Arc<Mutex<Vec<Option<i64>>>>;

    fn mocks(task_update: Option<Result<(), ()>>) -> (Mocks, Updates) {
        let updates = Updates::default();
        let mut mocks = Mocks::default();
        mocks
            .services
            .containers
            .expect_get()
            .returning(|_| Ok(record()));
        let seen = Arc::clone(&updates);
        mocks
            .services
            .containers
            .expect_update()
            .withf(|_, paths| *paths == ["spec"])
            .returning(move |record, _| {
                seen.lock().unwrap().push(memory_limit(&record));
                Ok(record)
            });
        if let Some(result) = task_update {
            let mut seq = Sequence::new();
            mocks
                .services
                .tasks
                .expect_update()
                .withf(|id, any| {
                    let r: oci_spec::runtime::LinuxResources =
                        serde_json::from_slice(&any.value).unwrap();
                    id == "c1"
                        && any.type_url == LINUX_RESOURCES_TYPE_URL
                        && r.memory().and_then(|m| m.limit()) == Some(48 << 20)
                })
                .times(1)
                .in_sequence(&mut seq)
                .returning(move |_, _| {
                    result.map_err(|()| ContainerdError::Rpc {
                        op: "update task",
                        code: Code::Internal,
                        message: "injected".into(),
                    })
                });
        }
        (mocks, updates)
    }

    #[tokio::test]
    async fn a_running_container_gets_spec_then_task_then_status() {
        let (mocks, updates) = mocks(Some(Ok(())));
        let env = TestEnv::with(mocks, "");
        add_live_container(&env, "c1", "s1", running_status());
        update_container_resources(&env.state, request(48 << 20))
            .await
            .unwrap();
        assert_eq!(*updates.lock().unwrap(), [Some(48 << 20)]);
        let linux = checkpointed(&env, "c1").resources.unwrap().linux.unwrap();
        assert_eq!(
            (linux.memory_limit_in_bytes, linux.cpu_shares),
            (48 << 20, 256)
        );
    }

    #[tokio::test]
    async fn a_created_container_gets_the_spec_only() {
        let (mocks, updates) = mocks(None);
        let env = TestEnv::with(mocks, "");
        add_live_container(&env, "c1", "s1", created_status());
        update_container_resources(&env.state, request(48 << 20))
            .await
            .unwrap();
        assert_eq!(*updates.lock().unwrap(), [Some(48 << 20)]);
    }

    #[tokio::test]
    async fn a_failed_task_update_restores_the_spec() {
        let (mocks, updates) = mocks(Some(Err(())));
        let env = TestEnv::with(mocks, "");
        add_live_container(&env, "c1", "s1", running_status());
        assert!(update_container_resources(&env.state, request(48 << 20))
            .await
            .is_err());
        assert_eq!(*updates.lock().unwrap(), [Some(48 << 20), Some(64 << 20)]);
        assert_eq!(checkpointed(&env, "c1").resources, None);
    }

    #[tokio::test]
    async fn hugepage_limits_are_left_out_while_the_hugetlb_controller_is_disabled() {
        // containerd's default `disable_hugetlb_controller = true`: an update
        // applies the limits as a create would, that is not at all.
        let (mocks, updates) = mocks(None);
        let env = TestEnv::with(mocks, "");
        assert!(env.state.config.cri.disable_hugetlb_controller);
        add_live_container(&env, "c1", "s1", created_status());
        let mut req = request(48 << 20);
        if let Some(linux) = req.linux.as_mut() {
            linux.hugepage_limits = vec![HugepageLimit {
                page_size: "2MB".into(),
                limit: 4 << 20,
            }];
        }
        update_container_resources(&env.state, req).await.unwrap();
        assert_eq!(*updates.lock().unwrap(), [Some(48 << 20)]);
        let linux = checkpointed(&env, "c1").resources.unwrap().linux.unwrap();
        assert_eq!(linux.memory_limit_in_bytes, 48 << 20);
        assert_eq!(linux.hugepage_limits, []);
    }

    #[tokio::test]
    async fn an_exited_container_gets_the_spec_only() {
        let (mocks, updates) = mocks(None);
        let env = TestEnv::with(mocks, "");
        let mut exited = running_status();
        exited.finished_at = 9;
        add_live_container(&env, "c1", "s1", exited);
        update_container_resources(&env.state, request(48 << 20))
            .await
            .unwrap();
        assert_eq!(*updates.lock().unwrap(), [Some(48 << 20)]);
        let linux = checkpointed(&env, "c1").resources.unwrap().linux.unwrap();
        assert_eq!(linux.memory_limit_in_bytes, 48 << 20);
    }

    #[tokio::test]
    async fn a_container_being_removed_is_refused() {
        let env = TestEnv::new();
        let mut removing = running_status();
        removing.finished_at = 9;
        removing.removing = true;
        add_live_container(&env, "c1", "s1", removing);
        let err = update_container_resources(&env.state, request(1 << 20))
            .await
            .unwrap_err();
        assert_eq!(tonic::Status::from(err).code(), Code::FailedPrecondition);
    }
}
