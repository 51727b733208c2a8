//! RunPodSandbox: validate and name the pod, reserve the name, pick the
//! runtime handler and its controller, ensure the pause image, pin a netns
//! (unless host network), then run CNI ADD while the controller makes and
//! starts the sandbox, write the network into the sandbox's record, store
//! it READY and watch its exit. Every step after
//! the name reservation registers its undo; a failure unwinds them newest
//! first. The body runs in a spawned task so a cancelled RPC still
//! finishes or unwinds.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use cri_api::error_chain;
use cri_api::ids::SandboxId;
use cri_api::rollback::Rollback;
use cri_api::v1::{
    ContainerEventType, NamespaceMode, PodSandboxConfig, PodSandboxMetadata, RunPodSandboxRequest,
};
use cri_sandbox::cni::{CniNetwork, CniResult, SandboxNetwork};
use cri_sandbox::controller::{
    CreateSandbox, MetadataExtension, SandboxController, SandboxImage, SandboxInstance,
};
use cri_store::sandbox::{Sandbox, SandboxMetadata, SandboxState, SandboxStatus};
use cri_store::StoreError;
use tracing::Instrument;

use super::error::SandboxError;
use super::exit_monitor::spawn_exit_monitor;
use super::runtime_options::{runtime_info, runtime_path};
use super::spec_options::spec_options;
use super::SandboxService;
use cri_config::RuntimeConfig;
use cri_metadata::{sandbox_metadata_to_any, SANDBOX_METADATA_EXTENSION};

type Result<T, E = SandboxError> = std::result::Result<T, E>;

/// The containerd label that tells sandboxes and app containers apart.
pub const CONTAINER_KIND_LABEL: &str = "io.cri-containerd.kind";
/// [`CONTAINER_KIND_LABEL`] on pause containers.
pub const CONTAINER_KIND_SANDBOX: &str = "sandbox";
/// containerd's `labels.Validate` limit on key + value.
const MAX_LABEL_SIZE: usize = 4096;

/// RunPodSandbox; returns the new sandbox id. Records `pod_sandbox_id` in
/// the current span.
pub async fn run_pod_sandbox(
    state: Arc<SandboxService>,
    request: RunPodSandboxRequest,
) -> Result<String> {
    let id = SandboxId(state.manager.ids().generate());
    let span = tracing::Span::current();
    span.record("pod_sandbox_id", tracing::field::display(&id));
    let task_id = id.clone();
    tokio::spawn(async move { run(&state, task_id, request).await }.instrument(span))
        .await
        .map_err(|_| SandboxError::Aborted {
            what: format!("RunPodSandbox of sandbox {id}"),
        })?
}

/// `<name>_<namespace>_<uid>_<attempt>` (containerd `makeSandboxName`).
pub fn sandbox_name(m: &PodSandboxMetadata) -> String {
    format!("{}_{}_{}_{}", m.name, m.namespace, m.uid, m.attempt)
}

/// The pod's metadata, which must be there; as containerd, its fields may
/// be empty (the name is then `_<namespace>_...`).
fn validate(config: &PodSandboxConfig) -> Result<&PodSandboxMetadata> {
    config
        .metadata
        .as_ref()
        .ok_or(SandboxError::MissingMetadata)
}

/// Whether the pod uses the node's network namespace.
pub fn host_network(config: &PodSandboxConfig) -> bool {
    config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.as_ref())
        .is_some_and(|n| n.network == NamespaceMode::Node as i32)
}

/// containerd's `buildLabels` for the pause container: image labels (minus
/// reserved keys and oversized pairs), then the pod's, then the kind.
pub fn sandbox_labels(
    config_labels: &HashMap<String, String>,
    image_labels: Option<&HashMap<String, String>>,
) -> HashMap<String, String> {
    let reserved = |k: &str| k.starts_with("containerd.io/") || k.starts_with("io.cri-containerd");
    let mut labels: HashMap<String, String> = image_labels
        .into_iter()
        .flatten()
        .filter(|(k, v)| !reserved(k) && k.len() + v.len() <= MAX_LABEL_SIZE)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.extend(config_labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels.insert(
        CONTAINER_KIND_LABEL.to_owned(),
        CONTAINER_KIND_SANDBOX.to_owned(),
    );
    labels
}

/// What the RPC decided before any side effect.
struct Plan {
    id: SandboxId,
    name: String,
    config: PodSandboxConfig,
    handler: String,
    runtime: RuntimeConfig,
    controller: Arc<dyn SandboxController>,
    image: cri_store::image::Image,
}

async fn run(
    state: &Arc<SandboxService>,
    id: SandboxId,
    request: RunPodSandboxRequest,
) -> Result<String> {
    let config = request.config.ok_or(SandboxError::MissingMetadata)?;
    let name = sandbox_name(validate(&config)?);
    let reservation = state
        .names
        .reserve(&name, id.as_ref())
        .map_err(|e| match e {
            StoreError::NameReserved { name, owner } => SandboxError::NameReserved { name, owner },
            other => SandboxError::Store {
                id: id.to_string(),
                message: other.to_string(),
            },
        })?;
    let handler = request.runtime_handler;
    let runtime = state.config.cri.runtime(&handler).cloned().ok_or_else(|| {
        SandboxError::UnknownRuntimeHandler {
            handler: if handler.is_empty() {
                state.config.cri.default_runtime_name.clone()
            } else {
                handler.clone()
            },
        }
    })?;
    let controller = Arc::clone(state.manager.controller_for(&handler, &runtime)?);
    let sandbox_image = &state.config.cri.sandbox_image;
    let image = state
        .images
        .ensure_image(sandbox_image, None)
        .await
        .map_err(|source| SandboxError::SandboxImage {
            image: sandbox_image.clone(),
            source,
        })?;
    let plan = Plan {
        id: id.clone(),
        name,
        config,
        handler,
        runtime,
        controller,
        image,
    };

    let mut undo = Rollback::new();
    let mut metadata = SandboxMetadata {
        id: id.clone(),
        name: plan.name.clone(),
        config: plan.config.clone(),
        netns_path: String::new(),
        ip: String::new(),
        additional_ips: Vec::new(),
        runtime_handler: plan.handler.clone(),
        cni_result: None,
        process_label: String::new(),
    };
    let steps = async {
        let instance = setup(state, &plan, &mut metadata, &mut undo).await?;
        let created_at = instance
            .created_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        let status = SandboxStatus {
            state: SandboxState::Ready,
            pid: instance.pid,
            created_at,
            network_down: false,
        };
        state
            .store
            .add(Sandbox::new(metadata.clone(), status))
            .map_err(|e| SandboxError::Store {
                id: id.to_string(),
                message: e.to_string(),
            })
    }
    .await;
    match steps {
        Ok(()) => {
            undo.commit();
            reservation.keep();
            // As containerd: CREATED once the sandbox is stored, STARTED
            // once its exit is watched.
            state
                .send_pod_event(&id, ContainerEventType::ContainerCreatedEvent)
                .await;
            spawn_exit_monitor(Arc::clone(state), id.clone());
            state
                .send_pod_event(&id, ContainerEventType::ContainerStartedEvent)
                .await;
            tracing::info!(name = %plan.name, "sandbox ready");
            Ok(id.to_string())
        }
        Err(cause) => {
            let failures = undo.unwind().await;
            if failures.is_empty() {
                return Err(cause);
            }
            // Keep what could not be undone findable, so RemovePodSandbox
            // can retry; the name stays reserved until then.
            let unknown = Sandbox::new(metadata, SandboxStatus::default());
            if let Err(e) = state.store.add(unknown) {
                tracing::error!(error = %e, "keep failed sandbox in the store");
            }
            reservation.keep();
            Err(SandboxError::WithUndo {
                source: Box::new(cause),
                undo: failures,
            })
        }
    }
}

/// Encodes `metadata` as the pause container's extension, with the
/// process label the controller gives.
fn extension_of(metadata: &SandboxMetadata) -> MetadataExtension {
    let encoded = metadata.clone();
    Arc::new(move |process_label: &str| {
        let mut m = encoded.clone();
        m.process_label = process_label.to_owned();
        sandbox_metadata_to_any(&m)
            .map(|any| (SANDBOX_METADATA_EXTENSION.to_owned(), any))
            .map_err(|e| e.to_string())
    })
}

/// What CNI ADD gave the pod: the result, its IP and additional IPs.
struct PodNetwork {
    result: CniResult,
    ip: String,
    additional_ips: Vec<String>,
}

/// Netns, then CNI ADD concurrently with the controller's create (pause
/// files, snapshot, container and task); once the network is known and
/// the record exists, writes the network into the record (while the task
/// may still be in the making); once all is done, fills in the network
/// part of `metadata` and has the controller start the sandbox. Both
/// branches always run to the end
/// (neither is dropped half way), so the undo of whichever succeeded is
/// registered even when the other failed: a failed ADD still removes the
/// pause, a failed pause still tears the network down. The record has the
/// network before the pause runs, so a crash in between leaves no running
/// pod without its IP.
async fn setup(
    state: &Arc<SandboxService>,
    plan: &Plan,
    metadata: &mut SandboxMetadata,
    undo: &mut Rollback,
) -> Result<SandboxInstance> {
    let id = &plan.id;
    let network = if host_network(&plan.config) {
        None
    } else {
        let netns = state
            .manager
            .netns()
            .create()
            .await
            .map_err(|source| SandboxError::Netns {
                id: id.to_string(),
                source,
            })?;
        let path = netns.path().to_path_buf();
        metadata.netns_path = path.display().to_string();
        undo.push("remove network namespace", {
            let (netns, path) = (Arc::clone(state.manager.netns()), path.clone());
            async move { netns.remove(&path).await }
        });
        let network =
            SandboxNetwork::from_pod_config(id.clone(), &path, &plan.config).map_err(|source| {
                SandboxError::NetworkSetup {
                    id: id.to_string(),
                    source,
                }
            })?;
        let cni = Arc::clone(state.manager.cni_for(&plan.handler));
        // Registered before setup: a failed ADD may leave allocations behind.
        undo.push("tear down pod network", {
            let (cni, network) = (Arc::clone(&cni), network.clone());
            async move {
                cni.teardown(&network)
                    .instrument(tracing::info_span!("cni.teardown"))
                    .await
            }
        });
        Some((cni, network, path))
    };

    // The record is created with the netns path but without the network,
    // which is not known yet (containerd 1.7's first two writes). Once
    // both the network and the record are there, the network is written
    // into the record while the pause task is still being created; the
    // task starts only after that, so a crash before leaves a created,
    // never started task: recovery deletes it and loads the pod NOTREADY,
    // with no IP.
    let request = create_request(state, plan, metadata, network.as_ref().map(|n| n.2.clone()));
    let controller_err = |source| SandboxError::Controller {
        id: id.to_string(),
        source,
    };
    let (record_made, recorded) = tokio::sync::oneshot::channel();
    let pause = plan.controller.create(request, record_made);
    let (added, updated, created) = match &network {
        Some((cni, network, _)) => {
            let base = metadata.clone();
            let network_into_record = async {
                let added = add_network(state, id, cni, network).await?;
                let with_network = with_network(base, added);
                // No record (the create failed first): nothing to update.
                let updated = match recorded.await {
                    Ok(()) => Some(
                        plan.controller
                            .update_metadata(id, extension_of(&with_network))
                            .await,
                    ),
                    Err(_) => None,
                };
                Ok::<_, SandboxError>((with_network, updated))
            };
            // The pause goes first: its first step is handed to a
            // blocking thread at once, while starting a CNI plugin forks
            // on this one.
            let (created, network) = tokio::join!(pause, network_into_record);
            match network {
                Ok((added, updated)) => (Some(Ok(added)), updated, created),
                Err(e) => (Some(Err(e)), None, created),
            }
        }
        None => (None, None, pause.await),
    };
    if created.is_ok() {
        undo.push("stop and remove sandbox", {
            let (controller, id) = (Arc::clone(&plan.controller), id.clone());
            async move {
                controller.stop(&id, std::time::Duration::ZERO).await?;
                controller.shutdown(&id).await
            }
        });
    }
    // A network failure is reported first, as containerd sets the
    // network up before it creates the pause task.
    let added = match (added, &created) {
        (Some(Err(e)), Err(pause)) => {
            tracing::warn!(error = %error_chain(pause), "sandbox create failed too");
            return Err(e);
        }
        (added, _) => added.transpose()?,
    };
    // An update that raced with a failed create's undo is of no interest.
    created.map_err(controller_err)?;
    if let Some(updated) = updated {
        updated.map_err(controller_err)?;
    }
    if let Some(with_network) = added {
        *metadata = with_network;
    }
    let instance = plan.controller.start(id).await.map_err(controller_err)?;
    metadata.process_label = instance
        .labels
        .get("selinux_label")
        .cloned()
        .unwrap_or_default();
    Ok(instance)
}

/// `metadata` with the pod network of `added`.
fn with_network(mut metadata: SandboxMetadata, added: PodNetwork) -> SandboxMetadata {
    metadata.cni_result = serde_json::to_value(&added.result).ok();
    metadata.ip = added.ip;
    metadata.additional_ips = added.additional_ips;
    metadata
}

/// CNI ADD, timed, and the pod IPs from its result.
async fn add_network(
    state: &SandboxService,
    id: &SandboxId,
    cni: &Arc<dyn CniNetwork>,
    network: &SandboxNetwork,
) -> Result<PodNetwork> {
    let cni_started = std::time::Instant::now();
    if state.config.cri.cni.use_internal_loopback {
        // containerd 2: lo is set up here, not by the loopback plugin.
        state
            .manager
            .netns()
            .set_loopback_up(&network.netns_path)
            .await
            .map_err(|source| SandboxError::Netns {
                id: id.to_string(),
                source,
            })?;
    }
    let result = cni
        .setup(network)
        .instrument(tracing::info_span!("cni.setup"))
        .await
        .map_err(|source| SandboxError::NetworkSetup {
            id: id.to_string(),
            source,
        })?;
    state.metrics.observe_cni_setup(cni_started.elapsed());
    let ip_pref = state.config.cri.cni.ip_pref.as_str();
    let (ip, additional_ips) = result
        .pod_ips(ip_pref)
        .ok_or_else(|| SandboxError::NoPodIp { id: id.to_string() })?;
    tracing::debug!(ip = %ip, "pod network ready");
    Ok(PodNetwork {
        result,
        ip,
        additional_ips,
    })
}

/// What the controller makes: the pause container, its record carrying
/// `metadata` as it is now.
fn create_request(
    state: &SandboxService,
    plan: &Plan,
    metadata: &SandboxMetadata,
    netns_path: Option<PathBuf>,
) -> CreateSandbox {
    let image_config = &plan.image.config;
    let image_labels = image_config
        .config()
        .as_ref()
        .and_then(|c| c.labels().clone());
    CreateSandbox {
        id: plan.id.clone(),
        config: plan.config.clone(),
        netns_path,
        image: SandboxImage {
            name: plan
                .image
                .references
                .first()
                .cloned()
                .unwrap_or_else(|| plan.image.id.clone()),
            chain_id: plan.image.chain_id.clone(),
            config: image_config.clone(),
        },
        runtime: runtime_info(&plan.runtime),
        runtime_path: runtime_path(&plan.runtime),
        snapshotter: state.config.cri.snapshotter_for(&plan.handler).to_owned(),
        spec_options: spec_options(
            &state.config.cri,
            &plan.runtime,
            state.manager.daemon_oom_score_adj(),
        ),
        labels: sandbox_labels(&plan.config.labels, image_labels.as_ref()),
        metadata: extension_of(metadata),
    }
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
