//! Deterministic layer tarballs (sorted entries, fixed mtime, uid/gid 0, gzip without timestamp) and the two root filesystems the test images use: busybox-static with its applets, and `/pause`.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};

use crate::components::Component;

/// The mtime of every entry, so digests do not depend on when tests ran.
const MTIME: u64 = 1_700_000_000;

/// One entry of a layer.
#[derive(Debug, Clone)]
pub enum Entry {
    Dir {
        mode: u32,
        uid: u64,
    },
    File {
        mode: u32,
        data: Vec<u8>,
    },
    Symlink {
        target: String,
    },
    /// A hard link to `target`, another path of the same layer.
    HardLink {
        target: String,
    },
}

/// A built layer: the uncompressed tar and its gzip.
#[derive(Debug, Clone)]
pub struct Layer {
    pub tar: Vec<u8>,
    pub gzip: Vec<u8>,
}

/// Builds a layer from `(path, entry)` pairs; paths are relative
/// (`bin/sh`) and are written in sorted order.
pub fn build(entries: Vec<(String, Entry)>) -> Result<Layer> {
    let tar = build_tar(entries)?;
    Ok(Layer {
        gzip: gzip(&tar)?,
        tar,
    })
}

/// The uncompressed, deterministic tar of `entries` (sorted by path; hard
/// links last, so their targets are always extracted first).
pub fn build_tar(mut entries: Vec<(String, Entry)>) -> Result<Vec<u8>> {
    entries.sort_by(|a, b| {
        let link = |e: &Entry| matches!(e, Entry::HardLink { .. });
        (link(&a.1), &a.0).cmp(&(link(&b.1), &b.0))
    });
    let mut builder = tar::Builder::new(Vec::new());
    for (path, entry) in &entries {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(MTIME);
        match entry {
            Entry::Dir { mode, uid } => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(*mode);
                header.set_uid(*uid);
                header.set_gid(*uid);
                header.set_size(0);
                builder.append_data(&mut header, format!("{path}/"), std::io::empty())?;
            }
            Entry::File { mode, data } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(data.len() as u64);
                builder.append_data(&mut header, path, data.as_slice())?;
            }
            Entry::Symlink { target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, path, target)?;
            }
            Entry::HardLink { target } => {
                header.set_entry_type(tar::EntryType::Link);
                header.set_mode(0o755);
                header.set_size(0);
                builder.append_link(&mut header, path, target)?;
            }
        }
    }
    Ok(builder.into_inner()?)
}

/// gzip with no file name and mtime 0, so equal input gives equal output.
pub fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut encoder: GzEncoder<Vec<u8>> = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::default());
    encoder.write_all(data)?;
    Ok(encoder.finish()?)
}

pub(crate) fn dir(mode: u32) -> Entry {
    Entry::Dir { mode, uid: 0 }
}

pub(crate) fn file(mode: u32, text: &str) -> Entry {
    Entry::File {
        mode,
        data: text.as_bytes().to_vec(),
    }
}

/// `/etc/passwd` of the busybox image: root, `www` (33) and nobody.
pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
www:x:33:33:www-data:/var/www:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";

/// `/etc/group` of the busybox image.
pub const GROUP: &str = "root:x:0:\nwww:x:33:\nusers:x:100:\nnogroup:x:65534:\n";

/// The busybox root filesystem: `/bin/busybox` from the host's
/// busybox-static, every applet it lists as a symlink in `/bin`, users,
/// groups, and the usual empty directories.
pub fn busybox_layer() -> Result<Layer> {
    let busybox = Component::Busybox.path()?;
    let binary = std::fs::read(&busybox).with_context(|| format!("read {}", busybox.display()))?;
    let mut entries: Vec<(String, Entry)> = vec![
        ("bin".into(), dir(0o755)),
        (
            "bin/busybox".into(),
            Entry::File {
                mode: 0o755,
                data: binary,
            },
        ),
        ("dev".into(), dir(0o755)),
        ("etc".into(), dir(0o755)),
        ("etc/passwd".into(), file(0o644, PASSWD)),
        ("etc/group".into(), file(0o644, GROUP)),
        (
            "etc/hosts".into(),
            file(
                0o644,
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
            ),
        ),
        ("home".into(), dir(0o755)),
        ("proc".into(), dir(0o555)),
        ("root".into(), dir(0o700)),
        ("sbin".into(), dir(0o755)),
        ("sys".into(), dir(0o555)),
        ("tmp".into(), dir(0o1777)),
        ("usr".into(), dir(0o755)),
        ("usr/bin".into(), dir(0o755)),
        ("usr/sbin".into(), dir(0o755)),
        ("var".into(), dir(0o755)),
        (
            "var/www".into(),
            Entry::Dir {
                mode: 0o755,
                uid: 33,
            },
        ),
    ];
    for applet in applets(&busybox)? {
        entries.push((
            format!("bin/{applet}"),
            Entry::Symlink {
                target: "busybox".into(),
            },
        ));
    }
    build(entries)
}

/// The applets `busybox --list` names, minus `busybox` itself.
pub(crate) fn applets(busybox: &Path) -> Result<Vec<String>> {
    let out = Command::new(busybox)
        .arg("--list")
        .output()
        .with_context(|| format!("run {} --list", busybox.display()))?;
    if !out.status.success() {
        bail!("{} --list failed with {}", busybox.display(), out.status);
    }
    let list = String::from_utf8_lossy(&out.stdout);
    let applets: Vec<String> = list
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox" && !a.contains('/'))
        .map(str::to_string)
        .collect();
    for needed in ["sh", "sleep", "cat", "echo"] {
        if !applets.iter().any(|a| a == needed) {
            bail!("{} has no `{needed}` applet", busybox.display());
        }
    }
    Ok(applets)
}

/// The pause image's only layer: `/pause`.
pub fn pause_layer(pause_binary: Vec<u8>) -> Result<Layer> {
    build(vec![(
        "pause".into(),
        Entry::File {
            mode: 0o755,
            data: pause_binary,
        },
    )])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_deterministic_and_sorted() -> Result<()> {
        let entries = || {
            vec![
                ("b".to_string(), file(0o644, "x")),
                ("a".to_string(), dir(0o755)),
                (
                    "a/l".to_string(),
                    Entry::Symlink {
                        target: "../b".into(),
                    },
                ),
            ]
        };
        let one = build(entries())?;
        let two = build(entries())?;
        assert_eq!(one.gzip, two.gzip);
        let mut archive = tar::Archive::new(one.tar.as_slice());
        let names: Vec<String> = archive
            .entries()?
            .map(|e| Ok(e?.path()?.to_string_lossy().into_owned()))
            .collect::<Result<_>>()?;
        assert_eq!(names, ["a/", "a/l", "b"]);
        Ok(())
    }

    #[test]
    fn hard_links_come_after_their_targets() -> Result<()> {
        let layer = build(vec![
            ("bin/zz".to_string(), file(0o755, "x")),
            (
                "bin/[".to_string(),
                Entry::HardLink {
                    target: "bin/zz".into(),
                },
            ),
        ])?;
        let mut archive = tar::Archive::new(layer.tar.as_slice());
        let kinds: Vec<(String, tar::EntryType)> = archive
            .entries()?
            .map(|e| {
                let e = e?;
                Ok((
                    e.path()?.to_string_lossy().into_owned(),
                    e.header().entry_type(),
                ))
            })
            .collect::<Result<_>>()?;
        assert_eq!(
            kinds,
            [
                ("bin/zz".to_string(), tar::EntryType::Regular),
                ("bin/[".to_string(), tar::EntryType::Link),
            ]
        );
        Ok(())
    }
}
