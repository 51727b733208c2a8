//! [`NoSeLinux`]: the `cri_spec::SeLinux` of a host without SELinux:
//! no labels are allocated and nothing is relabelled.

use std::io;
use std::path::Path;

use cri_spec::{SeLinux, SelinuxLabels};

/// SELinux disabled: empty labels, no-op release and relabel (go-selinux's
/// behaviour when `selinux.GetEnabled()` is false).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSeLinux;

impl SeLinux for NoSeLinux {
    fn init_labels(&self, _options: &[String]) -> io::Result<SelinuxLabels> {
        Ok(SelinuxLabels::default())
    }

    fn release_label(&self, _process_label: &str) {}

    fn relabel(&self, _path: &Path, _mount_label: &str) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn everything_is_a_no_op() {
        let se = NoSeLinux;
        assert_eq!(
            se.init_labels(&["type:spc_t".into()]).unwrap(),
            SelinuxLabels::default()
        );
        se.release_label("x");
        se.relabel(Path::new("/nonexistent"), "l").unwrap();
    }
}
