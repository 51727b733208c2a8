//! The Windows container spec (containerd's `buildWindowsSpec` over
//! `populateDefaultWindowsSpec`): args, cwd, tty, env, no root, network
//! namespace, hostname, Windows mounts and devices, resources, user, the
//! HostProcess annotation and the CRI annotations.

use std::path::PathBuf;

use cri_api::v1::{ContainerConfig, Mount as CriMount, WindowsContainerResources};
use oci_spec::runtime::{
    Mount, Spec, Windows, WindowsCPUResources, WindowsDevice, WindowsMemoryResources,
    WindowsNetwork, WindowsResources,
};

use crate::{
    access,
    annotations::{self, DefaultKind},
    base::OCI_VERSION,
    container::ContainerInputs,
    host::HostOs,
    mounts::{merge_mounts, prepare_source},
    process::{self, ImageProcess},
    Error, Result,
};

/// What the Windows builder needs.
pub(crate) struct WindowsRequest<'a> {
    pub config: &'a ContainerConfig,
    pub inputs: &'a ContainerInputs<'a>,
    pub container_name: &'a str,
    pub image: &'a ImageProcess,
    pub netns_path: &'a str,
    pub extra_mounts: &'a [CriMount],
    pub host: &'a dyn HostOs,
}

/// Go's `filepath.Clean` on Windows, for the paths hcsshim gets: `/`
/// becomes `\`, duplicate separators and `.`/`..` elements go.
pub(crate) fn clean_windows(path: &str) -> String {
    let path = path.replace('/', "\\");
    let (volume, rest) = match path.as_bytes() {
        [d, b':', ..] if d.is_ascii_alphabetic() => path.split_at(2),
        _ => ("", path.as_str()),
    };
    let rooted = rest.starts_with('\\');
    let mut parts: Vec<&str> = Vec::new();
    for part in rest.split('\\') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|l| *l != "..") => {
                parts.pop();
            }
            ".." if rooted => {}
            p => parts.push(p),
        }
    }
    let body = parts.join("\\");
    match (rooted, body.is_empty()) {
        (true, _) => format!("{volume}\\{body}"),
        (false, true) => format!("{volume}."),
        (false, false) => format!("{volume}{body}"),
    }
}

fn is_named_pipe(path: &str) -> bool {
    path.starts_with(r"\\.\pipe\") || path.starts_with("//./pipe/")
}

/// containerd's `cleanMount`: named pipes as given, other paths cleaned.
/// It keys the CRI/extra/default mount merge and (as Go's `filepath.Clean`
/// keeps the `\\.\pipe` volume) the by-depth mount order.
fn clean_mount(path: &str) -> String {
    if is_named_pipe(path) {
        path.to_owned()
    } else {
        clean_windows(path)
    }
}

fn windows_mounts(spec: &mut Spec, req: &WindowsRequest<'_>) -> Result<()> {
    let mounts = merge_mounts(&req.config.mounts, req.extra_mounts, clean_mount);
    let given: Vec<String> = mounts
        .iter()
        .map(|m| clean_mount(&m.container_path))
        .collect();
    if let Some(defaults) = spec.mounts_mut() {
        defaults.retain(|m| !given.contains(&clean_mount(&m.destination().to_string_lossy())));
    }
    for m in &mounts {
        let (mut src, mut dst) = (m.host_path.clone(), m.container_path.clone());
        if !is_named_pipe(&src) {
            src = clean_windows(&prepare_source(req.host, &PathBuf::from(&src))?.to_string_lossy());
            let is_drive = dst.len() == 2 && dst.as_bytes()[1] == b':';
            if !is_drive {
                dst = clean_windows(&dst);
                if dst.starts_with('\\') {
                    dst = format!("C:{dst}");
                }
            } else if dst.starts_with(['c', 'C']) {
                return Err(Error::WindowsMountOnCDrive {
                    container_path: dst,
                });
            }
        }
        let mut out = Mount::default();
        out.set_destination(dst.into());
        out.set_source(Some(src.into()));
        out.set_options(Some(vec![if m.readonly { "ro" } else { "rw" }.to_owned()]));
        spec.mounts_mut().get_or_insert_with(Vec::new).push(out);
    }
    Ok(())
}

fn windows_devices(config: &ContainerConfig) -> Result<Vec<WindowsDevice>> {
    let mut out = Vec::new();
    for d in &config.devices {
        if !d.container_path.is_empty() {
            return Err(Error::WindowsDeviceContainerPath {
                container_path: d.container_path.clone(),
            });
        }
        if !d.permissions.is_empty() {
            return Err(Error::WindowsDevicePermissions {
                permissions: d.permissions.clone(),
            });
        }
        let host_path = match d.host_path.strip_prefix("class/") {
            Some(rest) => format!("class://{rest}"),
            None => d.host_path.clone(),
        };
        let Some((id_type, id)) = host_path
            .split_once("://")
            .filter(|(t, i)| !t.is_empty() && !i.is_empty())
        else {
            return Err(Error::InvalidWindowsDevice {
                host_path: d.host_path.clone(),
            });
        };
        let mut dev = WindowsDevice::default();
        dev.set_id_type(id_type.to_owned());
        dev.set_id(id.to_owned());
        out.push(dev);
    }
    Ok(out)
}

/// containerd's `WithWindowsResources`: the cpu and memory sections are
/// always present (`{}` when nothing is limited).
fn windows_resources(res: &WindowsContainerResources) -> WindowsResources {
    let mut out = WindowsResources::default();
    let mut memory = WindowsMemoryResources::default();
    memory.set_limit(Some(res.memory_limit_in_bytes as u64).filter(|v| *v != 0));
    out.set_memory(Some(memory));
    let mut cpu = WindowsCPUResources::default();
    // Go converts first (`uint16(...)`) and then skips zeros.
    cpu.set_count(Some(res.cpu_count as u64).filter(|v| *v != 0));
    cpu.set_shares(Some(res.cpu_shares as u16).filter(|v| *v != 0));
    cpu.set_maximum(Some(res.cpu_maximum as u16).filter(|v| *v != 0));
    out.set_cpu(Some(cpu));
    out
}

/// The Windows spec of an app container.
pub(crate) fn build(req: &WindowsRequest<'_>) -> Result<Spec> {
    let (config, inputs) = (req.config, req.inputs);
    let sandbox = inputs.sandbox_config;
    let container_hpc = config
        .windows
        .as_ref()
        .and_then(|w| w.security_context.as_ref())
        .is_some_and(|s| s.host_process);
    let sandbox_hpc = sandbox
        .windows
        .as_ref()
        .and_then(|w| w.security_context.as_ref())
        .is_some_and(|s| s.host_process);
    if container_hpc != sandbox_hpc {
        return Err(Error::HostProcessMismatch {
            sandbox: inputs.sandbox_id.to_string(),
        });
    }
    let mut spec = access::empty_spec();
    spec.set_version(OCI_VERSION.to_owned());
    spec.set_process(Some(access::empty_process()));
    access::process(&mut spec).set_cwd(r"C:\".into());
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

    let mut windows = Windows::default();
    // `WithWindowsNetworkNamespace` always sets a network section, empty
    // (`{}`) for host-network (HostProcess) pods.
    let mut net = WindowsNetwork::default();
    net.set_network_namespace(Some(req.netns_path.to_owned()).filter(|p| !p.is_empty()));
    windows.set_network(Some(net));
    spec.set_hostname(Some(sandbox.hostname.clone()));
    windows_mounts(&mut spec, req)?;
    let devices = windows_devices(config)?;
    if !devices.is_empty() {
        windows.set_devices(Some(devices));
    }
    let mut username = req.image.user.clone();
    if let Some(w) = &config.windows {
        if let Some(res) = &w.resources {
            windows.set_resources(Some(windows_resources(res)));
        }
        if let Some(sc) = &w.security_context {
            if !sc.run_as_username.is_empty() {
                username = sc.run_as_username.clone();
            }
            if !sc.credential_spec.is_empty() {
                return Err(Error::WindowsCredentialSpecUnsupported);
            }
        }
    }
    spec.set_windows(Some(windows));
    access::process(&mut spec)
        .user_mut()
        .set_username(Some(username).filter(|u| !u.is_empty()));

    let opts = inputs.options;
    annotations::annotate(
        &mut spec,
        annotations::passthrough(&sandbox.annotations, &opts.pod_annotations),
    );
    annotations::annotate(
        &mut spec,
        annotations::passthrough(&config.annotations, &opts.container_annotations),
    );
    annotations::annotate(
        &mut spec,
        [(
            annotations::WINDOWS_HOST_PROCESS.to_owned(),
            sandbox_hpc.to_string(),
        )],
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_clean() {
        for (input, want) in [
            ("/data", r"\data"),
            (r"C:\data\..\x", r"C:\x"),
            ("D:", "D:."),
            (r"C:\\a\\\b\", r"C:\a\b"),
            ("rel/./p", r"rel\p"),
        ] {
            assert_eq!(clean_windows(input), want, "{input}");
        }
    }

    #[test]
    fn resources_sections_always_present() {
        let res = windows_resources(&WindowsContainerResources {
            memory_limit_in_bytes: 1 << 20,
            cpu_shares: 1 << 16,
            ..Default::default()
        });
        assert_eq!(
            serde_json::to_value(res).ok(),
            Some(serde_json::json!({"cpu": {}, "memory": {"limit": 1048576}}))
        );
    }

    #[test]
    fn named_pipes_are_not_cleaned() {
        assert_eq!(clean_mount(r"\\.\pipe\x"), r"\\.\pipe\x");
        assert_eq!(clean_mount("/var/lib"), r"\var\lib");
    }

    #[test]
    fn devices() {
        let dev = |host: &str, cp: &str, perm: &str| cri_api::v1::Device {
            host_path: host.into(),
            container_path: cp.into(),
            permissions: perm.into(),
        };
        let config = |d| ContainerConfig {
            devices: vec![d],
            ..Default::default()
        };
        let got = windows_devices(&config(dev(
            "class/5B45201D-F2F2-4F3B-85BB-30FF1F953599",
            "",
            "",
        )))
        .ok();
        assert_eq!(
            got.map(|d| (d[0].id_type().clone(), d[0].id().clone())),
            Some((
                "class".into(),
                "5B45201D-F2F2-4F3B-85BB-30FF1F953599".into()
            ))
        );
        let got = windows_devices(&config(dev("vpci-location-path://PCIROOT(0)", "", ""))).ok();
        assert_eq!(
            got.map(|d| d[0].id_type().clone()),
            Some("vpci-location-path".into())
        );
        assert!(matches!(
            windows_devices(&config(dev("nothing", "", ""))),
            Err(Error::InvalidWindowsDevice { .. })
        ));
        assert!(matches!(
            windows_devices(&config(dev("class/x", "/dev/x", ""))),
            Err(Error::WindowsDeviceContainerPath { .. })
        ));
        assert!(matches!(
            windows_devices(&config(dev("class/x", "", "rw"))),
            Err(Error::WindowsDevicePermissions { .. })
        ));
    }
}
