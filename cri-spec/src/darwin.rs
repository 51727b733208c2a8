//! The Darwin container spec (containerd's `buildDarwinSpec` over
//! `populateDefaultDarwinSpec`): args, cwd, tty, env, bind mounts and the
//! CRI annotations.

use std::path::{Path, PathBuf};

use cri_api::v1::{ContainerConfig, Mount as CriMount};
use oci_spec::runtime::Spec;

use crate::{
    access,
    annotations::{self, DefaultKind},
    base::{bind_mount, OCI_VERSION},
    container::ContainerInputs,
    host::HostOs,
    mounts::{clean_path, merge_mounts, prepare_source},
    process::{self, ImageProcess},
    Error, Result,
};

/// What the Darwin builder needs.
pub(crate) struct DarwinRequest<'a> {
    pub config: &'a ContainerConfig,
    pub inputs: &'a ContainerInputs<'a>,
    pub container_name: &'a str,
    pub image: &'a ImageProcess,
    pub extra_mounts: &'a [CriMount],
    pub host: &'a dyn HostOs,
}

/// The Darwin spec of an app container.
pub(crate) fn build(req: &DarwinRequest<'_>) -> Result<Spec> {
    let (config, inputs) = (req.config, req.inputs);
    let mut spec = access::empty_spec();
    spec.set_version(OCI_VERSION.to_owned());
    access::root(&mut spec);
    access::process(&mut spec).set_cwd("/".into());
    let args =
        process::process_args(&config.command, &config.args, req.image).ok_or_else(|| {
            Error::NoCommand {
                container: req.container_name.to_owned(),
            }
        })?;
    let p = access::process(&mut spec);
    p.set_args(Some(args));
    if !config.working_dir.is_empty() {
        p.set_cwd(config.working_dir.clone().into());
    } else if !req.image.working_dir.is_empty() {
        p.set_cwd(req.image.working_dir.clone().into());
    }
    if config.tty {
        p.set_terminal(Some(true));
    }
    let mut env = req.image.env.clone();
    env.extend(
        config
            .envs
            .iter()
            .map(|kv| format!("{}={}", kv.key, kv.value)),
    );
    process::with_env(&mut spec, &env);

    for m in merge_mounts(&config.mounts, req.extra_mounts, clean_path) {
        let src = prepare_source(req.host, &PathBuf::from(&m.host_path))?;
        let options = vec![if m.readonly { "ro" } else { "rw" }.to_owned()];
        spec.mounts_mut()
            .get_or_insert_with(Vec::new)
            .push(bind_mount(Path::new(&m.container_path), &src, options));
    }

    let (sandbox, opts) = (inputs.sandbox_config, inputs.options);
    annotations::annotate(
        &mut spec,
        annotations::passthrough(&sandbox.annotations, &opts.pod_annotations),
    );
    annotations::annotate(
        &mut spec,
        annotations::passthrough(&config.annotations, &opts.container_annotations),
    );
    let kind = DefaultKind::Container {
        container_name: req.container_name,
        image_name: inputs.image_name,
    };
    annotations::annotate(
        &mut spec,
        annotations::default_cri_annotations(&inputs.sandbox_id.0, sandbox, kind),
    );
    access::normalize(&mut spec);
    Ok(spec)
}
