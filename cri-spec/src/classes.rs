//! Block I/O and RDT classes chosen by annotations (goresctrl's rules: the
//! container annotation, else the pod annotation for that container, else
//! the pod-wide annotation), checked against the configured classes.

use std::collections::HashMap;

use oci_spec::runtime::{LinuxIntelRdt, Spec};

use crate::{access, options::RuntimeOptions, Error, Result};

/// CRI container annotation choosing the block I/O class.
pub(crate) const BLOCKIO_CONTAINER: &str = "io.kubernetes.cri.blockio-class";
/// Pod annotation choosing the block I/O class of all its containers.
pub(crate) const BLOCKIO_POD: &str = "blockio.resources.beta.kubernetes.io/pod";
/// Pod annotation prefix choosing one container's block I/O class.
pub(crate) const BLOCKIO_POD_CONTAINER_PREFIX: &str =
    "blockio.resources.beta.kubernetes.io/container.";
/// CRI container annotation choosing the RDT class.
pub(crate) const RDT_CONTAINER: &str = "io.kubernetes.cri.rdt-class";
/// Pod annotation choosing the RDT class of all its containers.
pub(crate) const RDT_POD: &str = "rdt.resources.beta.kubernetes.io/pod";
/// Pod annotation prefix choosing one container's RDT class.
pub(crate) const RDT_POD_CONTAINER_PREFIX: &str = "rdt.resources.beta.kubernetes.io/container.";

/// goresctrl's `ContainerClassFromAnnotations`.
fn class_from_annotations(
    container_key: &str,
    pod_key: &str,
    pod_container_prefix: &str,
    container_name: &str,
    container: &HashMap<String, String>,
    pod: &HashMap<String, String>,
) -> Option<String> {
    container
        .get(container_key)
        .or_else(|| pod.get(&format!("{pod_container_prefix}{container_name}")))
        .or_else(|| pod.get(pod_key))
        .cloned()
}

/// Annotations of the container and its pod.
pub(crate) struct ClassSources<'a> {
    pub container_name: &'a str,
    pub container: &'a HashMap<String, String>,
    pub pod: &'a HashMap<String, String>,
}

/// The block I/O class, if any, as `linux.resources.blockIO`.
pub(crate) fn apply_blockio(
    spec: &mut Spec,
    src: &ClassSources<'_>,
    opts: &RuntimeOptions,
) -> Result<()> {
    let Some(class) = class_from_annotations(
        BLOCKIO_CONTAINER,
        BLOCKIO_POD,
        BLOCKIO_POD_CONTAINER_PREFIX,
        src.container_name,
        src.container,
        src.pod,
    ) else {
        return Ok(());
    };
    let Some(classes) = &opts.blockio_classes else {
        if opts.ignore_blockio_not_enabled_errors {
            return Ok(());
        }
        return Err(Error::BlockIoDisabled {
            container: src.container_name.to_owned(),
            class,
        });
    };
    let blockio = classes
        .get(&class)
        .ok_or_else(|| Error::UnknownBlockIoClass {
            class: class.clone(),
        })?;
    access::resources(spec).set_block_io(Some(blockio.clone()));
    Ok(())
}

/// The RDT class, if any, as `linux.intelRdt.closID`.
pub(crate) fn apply_rdt(
    spec: &mut Spec,
    src: &ClassSources<'_>,
    opts: &RuntimeOptions,
) -> Result<()> {
    let Some(class) = class_from_annotations(
        RDT_CONTAINER,
        RDT_POD,
        RDT_POD_CONTAINER_PREFIX,
        src.container_name,
        src.container,
        src.pod,
    ) else {
        return Ok(());
    };
    let Some(classes) = &opts.rdt_classes else {
        if opts.ignore_rdt_not_enabled_errors {
            return Ok(());
        }
        return Err(Error::RdtDisabled {
            container: src.container_name.to_owned(),
            class,
        });
    };
    if !classes.contains(&class) {
        return Err(Error::UnknownRdtClass { class });
    }
    let mut rdt = LinuxIntelRdt::default();
    rdt.set_clos_id(Some(class));
    access::linux(spec).set_intel_rdt(Some(rdt));
    Ok(())
}
