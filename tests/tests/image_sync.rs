//! The CRI image view follows containerd's own, whoever changes it, as
//! containerd's CRI plugin does through its event monitor: an image
//! imported with `ctr -n k8s.io images import` shows up (tags, id, size as
//! for a pulled one) and `ctr images rm` takes it away within a second;
//! changes made while the daemon was down or disconnected from containerd
//! are caught on start-up and on resubscription; other namespaces stay
//! invisible; a burst of 200 image events is applied in order; and
//! ImageFsInfo reports the directory the snapshotter really uses.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cri_api::v1::image_service_client::ImageServiceClient;
use cri_api::v1::*;
use cri_tests::images::{write_oci_archive, ImageKind};
use cri_tests::{CriServer, Harness, ServerOptions};
use nix::sys::signal::Signal;
use tonic::transport::Channel;

type Images = ImageServiceClient<Channel>;

const IMPORTED: &str = "registry.example/imported/busybox:1";

async fn status(images: &mut Images, reference: &str) -> Result<Option<Image>> {
    Ok(images
        .image_status(ImageStatusRequest {
            image: Some(ImageSpec {
                image: reference.into(),
                ..ImageSpec::default()
            }),
            verbose: false,
        })
        .await?
        .into_inner()
        .image)
}

async fn listed_tags(images: &mut Images) -> Result<Vec<String>> {
    let mut tags: Vec<String> = images
        .list_images(ListImagesRequest { filter: None })
        .await?
        .into_inner()
        .images
        .into_iter()
        .flat_map(|i| i.repo_tags)
        .collect();
    tags.sort();
    Ok(tags)
}

/// Polls ImageStatus until `present` holds for `reference`, at most `limit`.
async fn wait_for(
    images: &mut Images,
    reference: &str,
    present: bool,
    limit: Duration,
) -> Result<Option<Image>> {
    let started = Instant::now();
    loop {
        let image = status(images, reference).await?;
        if image.is_some() == present {
            return Ok(image);
        }
        if started.elapsed() > limit {
            bail!(
                "{reference} still {} after {limit:?}",
                if present { "absent" } else { "present" }
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn pull(images: &mut Images, reference: &str) -> Result<String> {
    Ok(images
        .pull_image(PullImageRequest {
            image: Some(ImageSpec {
                image: reference.into(),
                ..ImageSpec::default()
            }),
            auth: None,
            sandbox_config: None,
        })
        .await?
        .into_inner()
        .image_ref)
}

fn archive(dir: &Path, name: &str) -> Result<String> {
    let path = dir.join("import.tar");
    write_oci_archive(&path, &[(ImageKind::Busybox, name)])?;
    Ok(path.display().to_string())
}

#[tokio::test]
async fn images_from_other_clients_appear_and_disappear_within_a_second() -> Result<()> {
    let harness = Harness::start().await?;
    let server = harness.server(ServerOptions::default()).await?;
    let mut images = server.image_client().await?;
    let dir = tempfile::tempdir()?;

    // The same image pulled through the CRI, for comparison.
    let pulled_id = pull(&mut images, &harness.images.busybox).await?;
    let pulled = status(&mut images, &harness.images.busybox)
        .await?
        .context("pulled image")?;

    let tar = archive(dir.path(), IMPORTED)?;
    harness
        .containerd
        .ctr_ok(&["images", "import", "--no-unpack", &tar])
        .await?;
    let imported = wait_for(&mut images, IMPORTED, true, Duration::from_secs(1))
        .await?
        .context("imported image")?;
    ensure!(imported.id == pulled_id, "{imported:?} vs {pulled_id}");
    ensure!(imported.size == pulled.size, "{imported:?} vs {pulled:?}");
    ensure!(
        imported.repo_tags.contains(&IMPORTED.to_owned()),
        "{imported:?}"
    );
    ensure!(listed_tags(&mut images)
        .await?
        .contains(&IMPORTED.to_owned()));

    // Removed with ctr (the name; the pulled image's records keep the id).
    harness
        .containerd
        .ctr_ok(&["images", "rm", IMPORTED])
        .await?;
    wait_for(&mut images, IMPORTED, false, Duration::from_secs(1)).await?;
    ensure!(!listed_tags(&mut images)
        .await?
        .contains(&IMPORTED.to_owned()));
    ensure!(
        status(&mut images, &harness.images.busybox)
            .await?
            .is_some(),
        "the pulled references stay"
    );

    // An image only another client knows about goes entirely: every record
    // of it removed (its name and the id record the CRI view added).
    let only = "registry.example/only-ctr/pause:1";
    let tar = dir.path().join("pause.tar");
    write_oci_archive(&tar, &[(ImageKind::Pause, only)])?;
    harness
        .containerd
        .ctr_ok(&[
            "images",
            "import",
            "--no-unpack",
            &tar.display().to_string(),
        ])
        .await?;
    let image = wait_for(&mut images, only, true, Duration::from_secs(1))
        .await?
        .context("pause image")?;
    harness
        .containerd
        .ctr_ok(&["images", "rm", only, &image.id])
        .await?;
    wait_for(&mut images, only, false, Duration::from_secs(1)).await?;
    // The id record's own delete event follows the name's.
    wait_for(&mut images, &image.id, false, Duration::from_secs(1))
        .await
        .context("the id resolves no more")?;

    // Another namespace is invisible to the CRI.
    let before = listed_tags(&mut images).await?;
    let other = tokio::process::Command::new("ctr")
        .arg("--address")
        .arg(harness.containerd.socket())
        .args(["-n", "other", "images", "pull", "--plain-http"])
        .arg(&harness.images.pause)
        .env("PATH", cri_tests::components::CHILD_PATH)
        .output()
        .await?;
    ensure!(
        other.status.success(),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    ensure!(
        listed_tags(&mut images).await? == before,
        "an image of namespace `other` showed up"
    );
    ensure!(status(&mut images, &harness.images.pause).await?.is_none());
    Ok(())
}

#[tokio::test]
async fn changes_while_down_or_disconnected_are_caught() -> Result<()> {
    let mut harness = Harness::start().await?;
    let mut server = harness.server(ServerOptions::default()).await?;
    let dir = tempfile::tempdir()?;

    // Imported while the daemon is down: there after start.
    server.signal(Signal::SIGKILL)?;
    server.wait_exit(Duration::from_secs(10)).await?;
    let tar = archive(dir.path(), IMPORTED)?;
    harness
        .containerd
        .ctr_ok(&["images", "import", "--no-unpack", &tar])
        .await?;
    server.restart().await?;
    let mut images = server.image_client().await?;
    let image = status(&mut images, IMPORTED)
        .await?
        .context("imported while down")?;

    // Removed while the daemon was disconnected: containerd stops, a
    // second containerd on the same root (another socket, so nothing
    // reaches the daemon) removes the records, the first comes back, and
    // the daemon's resync drops the image.
    harness.containerd.stop().await?;
    remove_with_a_second_containerd(&harness, &[IMPORTED, &image.id]).await?;
    harness.containerd.start_again().await?;
    wait_for(&mut images, IMPORTED, false, Duration::from_secs(15)).await?;
    ensure!(
        server
            .log()
            .contains("image store resynced with containerd"),
        "the resync is what caught it"
    );
    drop(server);
    Ok(())
}

/// Runs containerd on `harness`'s root and state with its own sockets and
/// removes `names` from namespace k8s.io through it.
async fn remove_with_a_second_containerd(harness: &Harness, names: &[&str]) -> Result<()> {
    let dir = harness.containerd.dir();
    let config = std::fs::read_to_string(dir.join("config.toml"))?;
    let socket = dir.join("second.sock");
    let second = dir.join("second.toml");
    let original = harness.containerd.socket().display().to_string();
    std::fs::write(
        &second,
        config
            .replace(
                &format!("{original}.ttrpc"),
                &format!("{}.ttrpc", socket.display()),
            )
            .replace(&original, &socket.display().to_string())
            .replace(
                &dir.join("containerd.sock.ttrpc").display().to_string(),
                &dir.join("second.sock.ttrpc").display().to_string(),
            ),
    )?;
    let mut child = tokio::process::Command::new("containerd")
        .arg("--config")
        .arg(&second)
        .env("PATH", cri_tests::components::CHILD_PATH)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let ctr = |args: Vec<String>| {
        let socket = socket.clone();
        async move {
            tokio::process::Command::new("ctr")
                .arg("--address")
                .arg(&socket)
                .args(["-n", "k8s.io"])
                .args(args)
                .env("PATH", cri_tests::components::CHILD_PATH)
                .output()
                .await
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(socket.exists() && ctr(vec!["version".into()]).await?.status.success()) {
        ensure!(Instant::now() < deadline, "second containerd did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut args = vec!["images".to_owned(), "rm".to_owned()];
    args.extend(names.iter().map(|n| (*n).to_owned()));
    let out = ctr(args).await?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id().context("second containerd pid")? as i32),
        Signal::SIGTERM,
    )?;
    tokio::time::timeout(Duration::from_secs(10), child.wait()).await??;
    Ok(())
}

#[tokio::test]
async fn a_burst_of_200_image_events_is_applied_in_order() -> Result<()> {
    let harness = Harness::start().await?;
    let server = harness.server(ServerOptions::default()).await?;
    let mut images = server.image_client().await?;
    let dir = tempfile::tempdir()?;
    let tar = archive(dir.path(), IMPORTED)?;
    harness
        .containerd
        .ctr_ok(&["images", "import", "--no-unpack", &tar])
        .await?;
    wait_for(&mut images, IMPORTED, true, Duration::from_secs(1)).await?;

    // 120 tags (one create event each), then 80 of them removed (one
    // delete event each): 200 events, most within a few ctr calls.
    let tags: Vec<String> = (0..120)
        .map(|i| format!("registry.example/burst/busybox:t{i:03}"))
        .collect();
    let started = Instant::now();
    for chunk in tags.chunks(40) {
        let mut args = vec!["images", "tag", IMPORTED];
        args.extend(chunk.iter().map(String::as_str));
        harness.containerd.ctr_ok(&args).await?;
    }
    let (removed, kept) = tags.split_at(80);
    let mut args = vec!["images", "rm"];
    args.extend(removed.iter().map(String::as_str));
    harness.containerd.ctr_ok(&args).await?;

    let mut want: Vec<String> = kept.to_vec();
    want.push(IMPORTED.to_owned());
    want.sort();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed: Vec<String> = listed_tags(&mut images)
            .await?
            .into_iter()
            .filter(|t| t.starts_with("registry.example/"))
            .collect();
        if listed == want {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the CRI view never matched containerd: {} tags listed, {} expected",
            listed.len(),
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "image-sync burst: 200 events applied, view matches containerd {:?} after the first",
        started.elapsed()
    );
    for tag in removed.iter().take(5) {
        ensure!(status(&mut images, tag).await?.is_none(), "{tag} lingers");
    }
    Ok(())
}

#[tokio::test]
async fn image_fs_info_reports_the_snapshotter_directory_and_its_usage() -> Result<()> {
    let harness = Harness::start().await?;
    let server: CriServer = harness.server(ServerOptions::default()).await?;
    let mut images = server.image_client().await?;
    let usage = |r: ImageFsInfoResponse| -> Result<(String, u64, u64)> {
        let fs = r.image_filesystems.first().context("no image filesystem")?;
        Ok((
            fs.fs_id.as_ref().context("fs_id")?.mountpoint.clone(),
            fs.used_bytes.as_ref().map_or(0, |v| v.value),
            fs.inodes_used.as_ref().map_or(0, |v| v.value),
        ))
    };
    let (mountpoint, bytes, inodes) = usage(
        images
            .image_fs_info(ImageFsInfoRequest {})
            .await?
            .into_inner(),
    )?;
    let root = harness.containerd.root();
    ensure!(
        Path::new(&mountpoint).starts_with(root),
        "{mountpoint} is not under containerd's root {}",
        root.display()
    );
    ensure!(
        Path::new(&mountpoint).is_dir(),
        "{mountpoint} does not exist"
    );
    pull(&mut images, &harness.images.busybox).await?;
    let (after, bytes_after, inodes_after) = usage(
        images
            .image_fs_info(ImageFsInfoRequest {})
            .await?
            .into_inner(),
    )?;
    ensure!(after == mountpoint);
    ensure!(
        bytes_after > bytes && inodes_after > inodes,
        "usage did not grow: {bytes}/{inodes} -> {bytes_after}/{inodes_after}"
    );
    Ok(())
}
