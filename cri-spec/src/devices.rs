//! Devices: the CRI devices (symlinks resolved, directories expanded, the
//! cgroup rule with the CRI permissions), their ownership from the
//! security context when configured, and the host's devices for
//! privileged containers.

use std::path::{Path, PathBuf};

use cri_api::v1::Device;
use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType, Spec};

use crate::{
    access,
    host::{DeviceInfo, DeviceKind, HostOs},
    Error, Result,
};

fn device_type(kind: DeviceKind) -> LinuxDeviceType {
    match kind {
        DeviceKind::Block => LinuxDeviceType::B,
        DeviceKind::Char => LinuxDeviceType::C,
        DeviceKind::Fifo => LinuxDeviceType::P,
    }
}

/// A spec device from a host device, placed at `path` in the container.
pub(crate) fn linux_device(info: &DeviceInfo, path: PathBuf) -> LinuxDevice {
    let mut d = LinuxDevice::default();
    d.set_path(path);
    d.set_typ(device_type(info.kind));
    d.set_major(info.major);
    d.set_minor(info.minor);
    d.set_file_mode(Some(info.file_mode));
    d.set_uid(Some(info.uid));
    d.set_gid(Some(info.gid));
    d
}

/// Where a device found under `host_path` goes: the container path itself
/// for the node asked for, the same relative place for nodes found in a
/// directory, the host path when no container path is given.
fn container_path(found: &Path, host_path: &Path, container_path: &str) -> PathBuf {
    if container_path.is_empty() {
        return found.to_path_buf();
    }
    match found.strip_prefix(host_path) {
        Ok(rel) if rel.as_os_str().is_empty() => PathBuf::from(container_path),
        Ok(rel) => Path::new(container_path).join(rel),
        Err(_) => PathBuf::from(container_path),
    }
}

/// containerd's `WithDevices` (cri opts): each CRI device resolved and
/// looked up on the host, added with an allow rule carrying its
/// permissions; with `device_ownership_from_security_context`, non-zero
/// `run_as_user` / `run_as_group` own the added nodes.
pub(crate) fn apply_cri_devices(
    spec: &mut Spec,
    devices: &[Device],
    owner: Option<(u32, u32)>,
    host: &dyn HostOs,
) -> Result<()> {
    access::resources(spec);
    for device in devices {
        let host_path = PathBuf::from(&device.host_path);
        let resolved =
            host.resolve_symlinks(&host_path)
                .map_err(|source| Error::ResolveSymlinks {
                    path: host_path.clone(),
                    source,
                })?;
        let found = host
            .lookup_device(&resolved)
            .map_err(|source| Error::LookupDevice {
                path: resolved.clone(),
                source,
            })?;
        for info in &found {
            let mut dev = linux_device(
                info,
                container_path(&info.path, &resolved, &device.container_path),
            );
            if let Some((uid, gid)) = owner {
                if uid != 0 {
                    dev.set_uid(Some(uid));
                }
                if gid != 0 {
                    dev.set_gid(Some(gid));
                }
            }
            let mut rule = LinuxDeviceCgroup::default();
            rule.set_allow(true);
            rule.set_typ(Some(device_type(info.kind)));
            rule.set_major(Some(info.major));
            rule.set_minor(Some(info.minor));
            rule.set_access(Some(device.permissions.clone()));
            access::linux(spec)
                .devices_mut()
                .get_or_insert_with(Vec::new)
                .push(dev);
            access::resources(spec)
                .devices_mut()
                .get_or_insert_with(Vec::new)
                .push(rule);
        }
    }
    Ok(())
}

/// `oci.WithHostDevices`: every host device, at its host path.
pub(crate) fn apply_host_devices(spec: &mut Spec, host: &dyn HostOs) -> Result<()> {
    let found = host
        .host_devices()
        .map_err(|source| Error::HostDevices { source })?;
    let devices = access::linux(spec)
        .devices_mut()
        .get_or_insert_with(Vec::new);
    devices.extend(found.iter().map(|d| linux_device(d, d.path.clone())));
    Ok(())
}

/// `oci.WithAllDevicesAllowed`: one rule allowing `rwm` on every device.
pub(crate) fn apply_all_devices_allowed(spec: &mut Spec) {
    let mut rule = LinuxDeviceCgroup::default();
    rule.set_allow(true);
    rule.set_access(Some("rwm".to_owned()));
    access::resources(spec).set_devices(Some(vec![rule]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths() {
        let host = Path::new("/dev/snd");
        assert_eq!(
            container_path(Path::new("/dev/snd"), host, "/dev/sound"),
            PathBuf::from("/dev/sound")
        );
        assert_eq!(
            container_path(Path::new("/dev/snd/pcm0"), host, "/dev/sound"),
            PathBuf::from("/dev/sound/pcm0")
        );
        assert_eq!(
            container_path(Path::new("/dev/snd/pcm0"), host, ""),
            PathBuf::from("/dev/snd/pcm0")
        );
    }
}
