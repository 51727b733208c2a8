//! AppArmor: the runtime default profile, unconfined, or a loaded
//! Localhost profile; nothing for privileged containers under the
//! default. With AppArmor off (host support or `disable_apparmor`) the
//! default is skipped and an explicit Localhost profile is refused.

use cri_api::v1::{security_profile::ProfileType, SecurityProfile};
use oci_spec::runtime::Spec;

use crate::{access, host::HostOs, seccomp::profile_from_string, Error, Result};

/// The profile name containerd uses for the runtime default; the daemon
/// must have loaded it (containerd generates and loads it on first use).
pub const APPARMOR_DEFAULT_PROFILE: &str = "cri-containerd.apparmor.d";

/// The AppArmor profile asked for: the typed field, else the deprecated
/// string; `None` when neither is given (the default applies).
pub(crate) fn requested_profile(
    typed: Option<&SecurityProfile>,
    deprecated: &str,
) -> Result<Option<SecurityProfile>> {
    match typed {
        Some(sp) => Ok(Some(sp.clone())),
        None if deprecated.is_empty() => Ok(None),
        None => profile_from_string(deprecated).map(Some),
    }
}

/// containerd's `generateApparmorSpecOpts` applied.
pub(crate) fn apply_apparmor(
    spec: &mut Spec,
    profile: Option<&SecurityProfile>,
    privileged: bool,
    enabled: bool,
    host: &dyn HostOs,
) -> Result<()> {
    let runtime_default = SecurityProfile {
        profile_type: ProfileType::RuntimeDefault as i32,
        localhost_ref: String::new(),
    };
    let sp = profile.unwrap_or(&runtime_default);
    if sp.profile_type != ProfileType::Localhost as i32 && !sp.localhost_ref.is_empty() {
        return Err(Error::AppArmorLocalhostRef);
    }
    let name = match ProfileType::try_from(sp.profile_type) {
        Ok(ProfileType::Unconfined) => return Ok(()),
        Ok(ProfileType::RuntimeDefault) if privileged || !enabled => return Ok(()),
        Ok(ProfileType::RuntimeDefault) => APPARMOR_DEFAULT_PROFILE.to_owned(),
        Ok(ProfileType::Localhost) if !enabled => return Err(Error::AppArmorUnsupported),
        Ok(ProfileType::Localhost) => {
            let name = sp
                .localhost_ref
                .strip_prefix("localhost/")
                .unwrap_or(&sp.localhost_ref)
                .to_owned();
            if name.is_empty() {
                return Err(Error::EmptyAppArmorProfile);
            }
            let loaded = host.apparmor_profile_loaded(&name).map_err(|source| {
                Error::LookupAppArmorProfile {
                    profile: name.clone(),
                    source,
                }
            })?;
            if !loaded {
                return Err(Error::AppArmorProfileNotFound { profile: name });
            }
            name
        }
        Err(_) => {
            return Err(Error::UnknownAppArmorProfileType {
                profile_type: sp.profile_type,
            })
        }
    };
    access::process(spec).set_apparmor_profile(Some(name));
    Ok(())
}
