//! The images critest (cri-tools v1.29 `validate`) pulls, built without downloads and pushed to a local registry under their upstream repository paths: busybox-static's applets as hard links, `sh` from Debian's dynamically linked busybox (an `ash` without standalone applets), and small static C programs from `assets/critest/` (pgrep, ipcs, a web server playing nginx and httpd, the setuid nonewprivs probe).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, OnceLock};

use anyhow::{anyhow, bail, Context, Result};

use super::layer::{self, Entry, Layer};
use super::oci::{Image, ImageSpec, ManifestFormat};
use super::{host_arch, pause, push_image, push_manifest};
use crate::components::{Component, CHILD_PATH};
use crate::registry::RegistryClient;

/// critest's default container image (`defaultTestContainerImage`).
pub const BUSYBOX: &str = "registry.k8s.io/e2e-test-images/busybox:1.29-2";
/// critest's web server image (`webServerTestImage`).
pub const NGINX: &str = "registry.k8s.io/e2e-test-images/nginx:1.14-2";
/// The sandbox image the conformance run configures.
pub const PAUSE: &str = "registry.k8s.io/pause:3.9";
/// The registries critest's image names point at; each must mirror to the
/// local registry, which holds the images under the same paths.
pub const UPSTREAM_REGISTRIES: [&str; 3] = ["registry.k8s.io", "gcr.io", "public.ecr.aws"];

const STAGING: &str = "gcr.io/k8s-staging-cri-tools";

/// The C programs, embedded so the compile cache key is exact.
const PGREP: &str = include_str!("../../assets/critest/pgrep.c");
const IPCS: &str = include_str!("../../assets/critest/ipcs.c");
const WEBSERVER: &str = include_str!("../../assets/critest/webserver.c");
const NNP: &str = include_str!("../../assets/critest/nnp.c");

/// Where the dynamically linked busybox lives in the image; `/bin/sh` and
/// `/bin/ash` are hard links to it.
const SHELL_PATH: &str = "usr/lib/busybox-sh/busybox";

/// `/etc/passwd` of the busybox image (the users of upstream's busybox).
const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
daemon:x:1:1:daemon:/usr/sbin:/bin/false\n\
bin:x:2:2:bin:/bin:/bin/false\n\
sys:x:3:3:sys:/dev:/bin/false\n\
sync:x:4:100:sync:/bin:/bin/sync\n\
mail:x:8:8:mail:/var/spool/mail:/bin/false\n\
www-data:x:33:33:www-data:/var/www:/bin/false\n\
operator:x:37:37:Operator:/var:/bin/false\n\
nobody:x:65534:65534:nobody:/home:/bin/false\n";

/// `/etc/group` of the busybox image.
const GROUP: &str = "root:x:0:\ndaemon:x:1:\nbin:x:2:\nsys:x:3:\nadm:x:4:\ntty:x:5:\n\
disk:x:6:\nmail:x:8:\nwheel:x:10:root\nwww-data:x:33:\nusers:x:100:\nnogroup:x:65534:\n";

/// One image and every upstream name (`registry/repository:tag`) it is
/// pushed under.
#[derive(Debug, Clone)]
pub struct CritestImage {
    pub names: Vec<String>,
    pub image: Image,
}

/// Every image critest pulls, built once per process (blocking: compiles
/// and compresses).
pub fn images() -> Result<Arc<Vec<CritestImage>>> {
    static SET: OnceLock<Result<Arc<Vec<CritestImage>>, String>> = OnceLock::new();
    SET.get_or_init(|| build().map(Arc::new).map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!("building the critest images: {e}"))
}

/// Builds (once per process) and pushes every critest image to `registry`
/// under its upstream path (`registry.k8s.io/pause:3.9` as `pause:3.9`);
/// returns the upstream names.
pub async fn push_critest_images(registry: &RegistryClient) -> Result<Vec<String>> {
    let set = tokio::task::spawn_blocking(images).await??;
    let mut pushed = Vec::new();
    for entry in set.iter() {
        for name in &entry.names {
            let (repository, tag) = local_path(name)?;
            push_image(registry, repository, &entry.image).await?;
            push_manifest(registry, repository, tag, &entry.image.manifest)
                .await
                .with_context(|| format!("push {name}"))?;
            pushed.push(name.clone());
        }
    }
    Ok(pushed)
}

/// `(repository, tag)` of an upstream name inside the local registry: the
/// registry host dropped (`gcr.io/a/b:t` -> `("a/b", "t")`).
pub fn local_path(name: &str) -> Result<(&str, &str)> {
    let (_, path) = name
        .split_once('/')
        .with_context(|| format!("{name} has no registry host"))?;
    path.rsplit_once(':')
        .filter(|(repository, _)| !repository.is_empty())
        .with_context(|| format!("{name} has no tag"))
}

fn build() -> Result<Vec<CritestImage>> {
    let base = base_layer()?;
    let webserver = pause::compile_static("webserver", WEBSERVER)?;
    let nginx = nginx_layer(&webserver, None)?;
    let hostnet_nginx = nginx_layer(&webserver, Some(12003))?;
    let httpd = layer::build(vec![
        ("usr".into(), layer::dir(0o755)),
        ("usr/local".into(), layer::dir(0o755)),
        ("usr/local/bin".into(), layer::dir(0o755)),
        ("usr/local/bin/httpd".into(), executable(webserver.clone())),
    ])?;
    let nnp = layer::build(vec![
        ("usr".into(), layer::dir(0o755)),
        ("usr/local".into(), layer::dir(0o755)),
        ("usr/local/bin".into(), layer::dir(0o755)),
        (
            "usr/local/bin/nnp".into(),
            Entry::File {
                mode: 0o4755,
                data: pause::compile_static("nnp", NNP)?,
            },
        ),
    ])?;
    let predefined_group = etc_layer(
        &format!("{PASSWD}default-user:x:1000:1000:default-user:/home/default-user:/bin/sh\n"),
        &format!("{GROUP}default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n"),
    )?;
    let pause = layer::pause_layer(pause::binary()?)?;

    let staging = |name: &str| format!("{STAGING}/{name}");
    let shell = || Some(vec!["sh".to_string()]);
    let mut out = Vec::new();
    let mut add = |names: Vec<String>, layers: &[&Layer], spec: ImageSpec| -> Result<()> {
        let mut spec = ImageSpec {
            architecture: host_arch().to_string(),
            created_by: "cri-tests: critest image from busybox-static and assets/critest".into(),
            ..spec
        };
        // Images that share their layers still differ in their config.
        spec.labels
            .push(("io.cri-tests.image".into(), names[0].clone()));
        let image = Image::build(&spec, layers, ManifestFormat::Oci)?;
        out.push(CritestImage { names, image });
        Ok(())
    };

    add(
        vec![BUSYBOX.into()],
        &[&base],
        ImageSpec {
            cmd: shell(),
            ..ImageSpec::default()
        },
    )?;
    let nginx_spec = || ImageSpec {
        cmd: Some(vec!["nginx".into(), "-g".into(), "daemon off;".into()]),
        stop_signal: Some("SIGQUIT".into()),
        ..ImageSpec::default()
    };
    add(vec![NGINX.into()], &[&base, &nginx], nginx_spec())?;
    add(
        vec![staging(&format!("hostnet-nginx-{}:latest", host_arch()))],
        &[&base, &hostnet_nginx],
        nginx_spec(),
    )?;
    add(
        vec!["registry.k8s.io/e2e-test-images/httpd:2.4.39-4".into()],
        &[&base, &httpd],
        ImageSpec {
            cmd: Some(vec!["httpd".into(), "-D".into(), "FOREGROUND".into()]),
            stop_signal: Some("SIGWINCH".into()),
            ..ImageSpec::default()
        },
    )?;
    add(
        vec!["registry.k8s.io/e2e-test-images/nonewprivs:1.3".into()],
        &[&base, &nnp],
        ImageSpec {
            entrypoint: Some(vec!["/usr/local/bin/nnp".into()]),
            ..ImageSpec::default()
        },
    )?;
    add(
        vec![PAUSE.into()],
        &[&pause],
        ImageSpec {
            entrypoint: Some(vec!["/pause".into()]),
            user: Some("65535:65535".into()),
            ..ImageSpec::default()
        },
    )?;
    for (name, user) in [
        ("test-image-user-uid", "1002"),
        ("test-image-user-username", "www-data"),
        ("test-image-user-uid-group", "1003:1004"),
        ("test-image-user-username-group", "www-data:1004"),
    ] {
        add(
            vec![staging(&format!("{name}:latest"))],
            &[&base],
            ImageSpec {
                cmd: shell(),
                user: Some(user.into()),
                ..ImageSpec::default()
            },
        )?;
    }
    add(
        vec![staging("test-image-predefined-group:latest")],
        &[&base, &predefined_group],
        ImageSpec {
            cmd: shell(),
            user: Some("1000".into()),
            ..ImageSpec::default()
        },
    )?;
    let mut distinct: Vec<Vec<String>> = [
        "test-image-1:latest",
        "test-image-2:latest",
        "test-image-3:latest",
        "test-image-latest:latest",
        "test-image-digest:latest",
        "test-image-tag:test",
        "test-image-tag:all",
    ]
    .iter()
    .map(|name| vec![staging(name)])
    .collect();
    distinct.push(
        ["1", "2", "3"]
            .iter()
            .map(|tag| staging(&format!("test-image-tags:{tag}")))
            .collect(),
    );
    for tag in ["1.35.0-glibc", "1-uclibc", "1", "1-glibc", "1-musl"] {
        distinct.push(vec![format!("public.ecr.aws/docker/library/busybox:{tag}")]);
    }
    for names in distinct {
        add(
            names,
            &[&base],
            ImageSpec {
                cmd: shell(),
                ..ImageSpec::default()
            },
        )?;
    }
    Ok(out)
}

fn executable(data: Vec<u8>) -> Entry {
    Entry::File { mode: 0o755, data }
}

/// The busybox root filesystem upstream's `e2e-test-images/busybox` has:
/// every applet a hard link to `/bin/busybox` (so masking one path masks
/// only that applet), `sh` an ash that runs what `$PATH` finds, plus
/// `pgrep` and `ipcs`, which busybox-static lacks.
fn base_layer() -> Result<Layer> {
    let busybox = Component::Busybox.path()?;
    let shell = Component::BusyboxShell.path()?;
    let read =
        |path: &Path| std::fs::read(path).with_context(|| format!("read {}", path.display()));

    let mut dirs: BTreeSet<String> = [
        "bin",
        "dev",
        "etc",
        "home",
        "proc",
        "sys",
        "usr",
        "usr/bin",
        "usr/sbin",
        "usr/lib",
        "var",
        "var/run",
        "var/spool",
        "var/spool/mail",
    ]
    .iter()
    .map(|d| d.to_string())
    .collect();
    let mut entries: Vec<(String, Entry)> = vec![
        ("root".into(), layer::dir(0o700)),
        ("tmp".into(), layer::dir(0o1777)),
        (
            "var/www".into(),
            Entry::Dir {
                mode: 0o755,
                uid: 33,
            },
        ),
        ("bin/busybox".into(), executable(read(&busybox)?)),
        (SHELL_PATH.into(), executable(read(&shell)?)),
        (
            "bin/pgrep".into(),
            executable(pause::compile_static("pgrep", PGREP)?),
        ),
        (
            "bin/ipcs".into(),
            executable(pause::compile_static("ipcs", IPCS)?),
        ),
        ("etc/passwd".into(), layer::file(0o644, PASSWD)),
        ("etc/group".into(), layer::file(0o644, GROUP)),
        (
            "etc/hosts".into(),
            layer::file(
                0o644,
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
            ),
        ),
    ];
    for applet in layer::applets(&busybox)? {
        if matches!(applet.as_str(), "sh" | "ash" | "pgrep" | "ipcs") {
            continue;
        }
        entries.push((
            format!("bin/{applet}"),
            Entry::HardLink {
                target: "bin/busybox".into(),
            },
        ));
    }
    for name in ["sh", "ash"] {
        entries.push((
            format!("bin/{name}"),
            Entry::HardLink {
                target: SHELL_PATH.into(),
            },
        ));
    }
    for library in shared_libraries(&shell)? {
        let inside = library.trim_start_matches('/').to_string();
        entries.push((inside.clone(), executable(read(Path::new(&library))?)));
        dirs.extend(ancestors(&inside));
    }
    dirs.extend(ancestors(SHELL_PATH));
    let listed: BTreeSet<String> = entries.iter().map(|(path, _)| path.clone()).collect();
    entries.extend(
        dirs.into_iter()
            .filter(|d| !listed.contains(d))
            .map(|d| (d, layer::dir(0o755))),
    );
    layer::build(entries)
}

/// The directories above `path` (`a/b/c` -> `a`, `a/b`).
fn ancestors(path: &str) -> Vec<String> {
    let parts: Vec<&str> = path.split('/').collect();
    (1..parts.len()).map(|n| parts[..n].join("/")).collect()
}

/// The absolute paths of the shared objects `binary` loads, its
/// interpreter included, as `ldd` resolves them on this host.
fn shared_libraries(binary: &Path) -> Result<Vec<String>> {
    let out = Command::new("ldd")
        .arg(binary)
        .env("PATH", CHILD_PATH)
        .output()
        .context("run ldd (apt-get install -y libc-bin)")?;
    if !out.status.success() {
        bail!(
            "ldd {} failed with {}: {}",
            binary.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let libraries = parse_ldd(&String::from_utf8_lossy(&out.stdout));
    if libraries.is_empty() {
        bail!(
            "ldd {} named no libraries: is it the dynamically linked busybox?",
            binary.display()
        );
    }
    Ok(libraries)
}

/// The paths in `ldd` output: `name => /path (addr)` and `/path (addr)`.
fn parse_ldd(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, right)) => right.trim(),
                None => line,
            };
            let path = path.split_whitespace().next()?;
            path.starts_with('/').then(|| path.to_string())
        })
        .collect()
}

/// `/usr/sbin/nginx`, and `/etc/nginx/port` when it listens elsewhere than 80.
fn nginx_layer(webserver: &[u8], port: Option<u16>) -> Result<Layer> {
    let mut entries = vec![
        ("etc".into(), layer::dir(0o755)),
        ("etc/nginx".into(), layer::dir(0o755)),
        ("usr".into(), layer::dir(0o755)),
        ("usr/sbin".into(), layer::dir(0o755)),
        ("usr/sbin/nginx".into(), executable(webserver.to_vec())),
    ];
    if let Some(port) = port {
        entries.push((
            "etc/nginx/port".into(),
            layer::file(0o644, &format!("{port}\n")),
        ));
    }
    layer::build(entries)
}

/// A layer replacing `/etc/passwd` and `/etc/group`.
fn etc_layer(passwd: &str, group: &str) -> Result<Layer> {
    layer::build(vec![
        ("etc".into(), layer::dir(0o755)),
        ("etc/passwd".into(), layer::file(0o644, passwd)),
        ("etc/group".into(), layer::file(0o644, group)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_names_map_to_local_paths() -> Result<()> {
        assert_eq!(local_path(BUSYBOX)?, ("e2e-test-images/busybox", "1.29-2"));
        assert_eq!(local_path(PAUSE)?, ("pause", "3.9"));
        assert_eq!(
            local_path("public.ecr.aws/docker/library/busybox:1-musl")?,
            ("docker/library/busybox", "1-musl")
        );
        assert!(local_path("busybox:latest").is_err());
        assert!(local_path("gcr.io/a/b").is_err());
        Ok(())
    }

    #[test]
    fn ldd_output_gives_library_paths() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\
            \tlibresolv.so.2 => /lib/x86_64-linux-gnu/libresolv.so.2 (0x00007f)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_ldd(out),
            [
                "/lib/x86_64-linux-gnu/libresolv.so.2",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
    }

    /// The tar entries of an image's layer `index`: path -> (type, mode,
    /// link target).
    fn entries(
        image: &Image,
        index: usize,
    ) -> Result<std::collections::BTreeMap<String, (tar::EntryType, u32, String)>> {
        let gzip = &image.layers[index].data;
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gzip.as_slice()));
        let mut out = std::collections::BTreeMap::new();
        for entry in archive.entries()? {
            let entry = entry?;
            let link = entry
                .link_name()?
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.insert(
                entry.path()?.to_string_lossy().into_owned(),
                (entry.header().entry_type(), entry.header().mode()?, link),
            );
        }
        Ok(out)
    }

    #[test]
    fn images_are_what_the_specs_rely_on() -> Result<()> {
        let set = images()?;
        let find = |name: &str| {
            set.iter()
                .find(|i| i.names.iter().any(|n| n == name))
                .with_context(|| format!("no image named {name}"))
        };
        let staging = |name: &str| format!("{STAGING}/{name}");

        // busybox: applets hard-linked to the static busybox, the shell to
        // the dynamically linked one, pgrep and ipcs as programs.
        let busybox = entries(&find(BUSYBOX)?.image, 0)?;
        let link = |path: &str| {
            busybox
                .get(path)
                .map(|(kind, _, target)| (*kind, target.as_str()))
        };
        assert_eq!(link("bin/ls"), Some((tar::EntryType::Link, "bin/busybox")));
        assert_eq!(link("bin/sh"), Some((tar::EntryType::Link, SHELL_PATH)));
        assert_eq!(
            link("bin/pgrep").map(|l| l.0),
            Some(tar::EntryType::Regular)
        );
        assert_eq!(link("bin/ipcs").map(|l| l.0), Some(tar::EntryType::Regular));

        let nnp = entries(
            &find("registry.k8s.io/e2e-test-images/nonewprivs:1.3")?.image,
            1,
        )?;
        assert_eq!(
            nnp.get("usr/local/bin/nnp").map(|e| e.1 & 0o7777),
            Some(0o4755)
        );

        // One image under three tags; every other name its own image.
        let tags = find(&staging("test-image-tags:1"))?;
        assert_eq!(tags.names.len(), 3);
        let mut ids = BTreeSet::new();
        for image in set.iter() {
            assert!(
                ids.insert(image.image.config.digest.clone()),
                "{:?}",
                image.names
            );
        }
        let all_names: Vec<&String> = set.iter().flat_map(|i| &i.names).collect();
        let unique: BTreeSet<&String> = all_names.iter().copied().collect();
        assert_eq!(all_names.len(), unique.len());
        for name in all_names {
            local_path(name)?;
        }

        let config = |name: &str| -> Result<serde_json::Value> {
            Ok(serde_json::from_slice(&find(name)?.image.config.data)?)
        };
        assert_eq!(config(NGINX)?["config"]["StopSignal"], "SIGQUIT");
        assert_eq!(
            config(&staging("test-image-user-username-group:latest"))?["config"]["User"],
            "www-data:1004"
        );
        Ok(())
    }

    #[test]
    fn ancestors_are_every_parent_directory() {
        assert_eq!(ancestors("a/b/c"), ["a", "a/b"]);
        assert!(ancestors("a").is_empty());
    }
}
