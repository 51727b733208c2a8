//! Sub-tables the v2 and v3 layouts share (`cni`, `x509_key_pair_streaming`,
//! `image_decryption`) and how the file's runtimes combine with the
//! defaults.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::cri::{CniConfig, ImageDecryptionConfig, IpPreference, X509KeyPairStreaming};
use super::runtime::RuntimeConfig;
use super::values::non_empty_path;

/// `cni` as written.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RawCni {
    bin_dir: Option<PathBuf>,
    bin_dirs: Option<Vec<PathBuf>>,
    conf_dir: Option<PathBuf>,
    max_conf_num: Option<usize>,
    conf_template: Option<String>,
    ip_pref: Option<IpPreference>,
    setup_serially: Option<bool>,
    use_internal_loopback: Option<bool>,
}

impl RawCni {
    pub(super) fn apply(self, cni: &mut CniConfig) {
        let raw = self;
        overlay!(raw => cni; bin_dir, conf_dir, max_conf_num, ip_pref, setup_serially, use_internal_loopback);
        if let Some(template) = raw.conf_template {
            cni.conf_template = non_empty_path(template);
        }
        if let Some(dirs) = raw.bin_dirs.filter(|d| !d.is_empty()) {
            if let Some(first) = dirs.first() {
                cni.bin_dir = first.clone();
            }
            cni.bin_dirs = dirs;
        }
    }
}

/// `x509_key_pair_streaming` as written.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RawX509 {
    tls_cert_file: Option<String>,
    tls_key_file: Option<String>,
}

impl RawX509 {
    pub(super) fn apply(self, pair: &mut X509KeyPairStreaming) {
        if let Some(file) = self.tls_cert_file {
            pair.tls_cert_file = non_empty_path(file);
        }
        if let Some(file) = self.tls_key_file {
            pair.tls_key_file = non_empty_path(file);
        }
    }
}

/// `image_decryption` as written.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RawImageDecryption {
    key_model: Option<String>,
}

impl RawImageDecryption {
    pub(super) fn apply(self, decryption: &mut ImageDecryptionConfig) {
        let raw = self;
        overlay!(raw => decryption; key_model);
    }
}

/// How a `runtimes` table in the file combines with the runtimes already
/// configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RuntimeTable {
    /// containerd 1.x decodes the table into a fresh map: only the file's
    /// runtimes remain.
    Replaces,
    /// containerd 2.x decodes into the default map: the defaults stay.
    AddsTo,
}

/// Puts the file's runtimes in place. A file runtime named like an existing
/// one and of the same (or no) `runtime_type` keeps that runtime's type and
/// the option keys it does not set, so `[runtimes.runc.options]
/// SystemdCgroup = true` alone still describes runc.
pub(super) fn apply_runtimes(
    runtimes: &mut BTreeMap<String, RuntimeConfig>,
    from_file: BTreeMap<String, RuntimeConfig>,
    table: RuntimeTable,
) {
    let previous = match table {
        RuntimeTable::Replaces => std::mem::take(runtimes),
        RuntimeTable::AddsTo => runtimes.clone(),
    };
    for (name, mut runtime) in from_file {
        if let Some(base) = previous.get(&name) {
            if runtime.runtime_type.is_empty() || runtime.runtime_type == base.runtime_type {
                runtime.runtime_type.clone_from(&base.runtime_type);
                let mut options = base.options.clone();
                options.extend(std::mem::take(&mut runtime.options));
                runtime.options = options;
            }
        }
        runtimes.insert(name, runtime);
    }
}
