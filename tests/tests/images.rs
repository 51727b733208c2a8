//! The CRI ImageService against a real containerd and registry: pulls by tag, digest and tag+digest, Docker schema 2 and multi-platform images, the containerd records, labels and unpacked snapshot a pull leaves, list/status/remove/fsinfo, the pinned sandbox image, a hosts.toml mirror, basic auth, shared concurrent pulls, and the progress timeout.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cri_api::v1::image_service_client::ImageServiceClient;
use cri_api::v1::{
    AuthConfig, ImageFilter, ImageFsInfoRequest, ImageSpec, ImageStatusRequest,
    ImageStatusResponse, ListImagesRequest, PullImageRequest, RemoveImageRequest,
};
use cri_tests::proxy::{ProxyOptions, RegistryProxy};
use cri_tests::{CriServer, Harness, ServerOptions, TestImages};
use tonic::transport::Channel;
use tonic::Code;

type Client = ImageServiceClient<Channel>;

fn spec(image: &str) -> Option<ImageSpec> {
    Some(ImageSpec {
        image: image.to_owned(),
        ..ImageSpec::default()
    })
}

async fn pull(
    client: &mut Client,
    image: &str,
    auth: Option<AuthConfig>,
) -> Result<String, tonic::Status> {
    let response = client
        .pull_image(PullImageRequest {
            image: spec(image),
            auth,
            sandbox_config: None,
        })
        .await?;
    Ok(response.into_inner().image_ref)
}

async fn status(client: &mut Client, image: &str, verbose: bool) -> Result<ImageStatusResponse> {
    Ok(client
        .image_status(ImageStatusRequest {
            image: spec(image),
            verbose,
        })
        .await?
        .into_inner())
}

async fn remove(client: &mut Client, image: &str) -> Result<()> {
    client
        .remove_image(RemoveImageRequest { image: spec(image) })
        .await?;
    Ok(())
}

/// The image record names containerd has, with their labels column.
async fn records(harness: &Harness) -> Result<String> {
    harness.containerd.ctr_ok(&["images", "ls"]).await
}

/// Mounts a read-only view of snapshot `chain_id` and checks `/bin/busybox`.
async fn check_snapshot_has_busybox(harness: &Harness, chain_id: &str) -> Result<()> {
    let target = tempfile::tempdir()?;
    let key = format!("images-test-view-{}", std::process::id());
    let target_arg = target.path().display().to_string();
    let printed = harness
        .containerd
        .ctr_ok(&["snapshots", "view", "--target", &target_arg, &key, chain_id])
        .await?;
    let args: Vec<&str> = printed
        .split_whitespace()
        .skip_while(|w| *w != "mount")
        .skip(1)
        .collect();
    ensure!(!args.is_empty(), "no mount command in {printed:?}");
    let status = std::process::Command::new("mount").args(&args).status()?;
    ensure!(status.success(), "mount {args:?}: {status}");
    let found = target.path().join("bin/busybox").exists();
    let _ = std::process::Command::new("umount")
        .arg(target.path())
        .status();
    // `ctr snapshots view` makes the view under a lease that ends when ctr
    // exits, so containerd's GC may already have removed it.
    let rm = harness.containerd.ctr(&["snapshots", "rm", &key]).await?;
    let stderr = String::from_utf8_lossy(&rm.stderr);
    ensure!(
        rm.status.success() || stderr.contains("not found"),
        "ctr snapshots rm {key}: {stderr}"
    );
    ensure!(
        found,
        "/bin/busybox missing in the unpacked snapshot {chain_id}"
    );
    Ok(())
}

fn assert_code<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: Code,
    fragment: &str,
) -> Result<()> {
    match result {
        Ok(v) => bail!("expected {code:?}, got {v:?}"),
        Err(s) => {
            ensure!(
                s.code() == code,
                "expected {code:?} with {fragment:?}, got {s:?}"
            );
            ensure!(s.message().contains(fragment), "{fragment:?} not in {s:?}");
            Ok(())
        }
    }
}

#[tokio::test]
async fn pull_list_status_remove_and_fs_info() -> Result<()> {
    let started = Instant::now();
    let harness = Harness::start().await?;
    let images: &TestImages = &harness.images;
    let mut server = harness.server(ServerOptions::default()).await?;
    let mut client = server.image_client().await?;
    let busybox_id = images.busybox_digests.config.clone();
    let repo = cri_tests::images::repository(&images.busybox).to_owned();
    let manifest = images.busybox_digests.manifest.clone();

    // By tag: the id is the config digest; tag and digest records.
    let id = pull(&mut client, &images.busybox, None).await?;
    ensure!(id == busybox_id, "image_ref {id}, want {busybox_id}");
    let st = status(&mut client, &images.busybox, true).await?;
    let image = st.image.context("status of a pulled image is empty")?;
    ensure!(image.id == busybox_id);
    ensure!(
        image.repo_tags == vec![images.busybox.clone()],
        "{:?}",
        image.repo_tags
    );
    ensure!(
        image.repo_digests == vec![format!("{repo}@{manifest}")],
        "{:?}",
        image.repo_digests
    );
    ensure!(image.size > 0 && !image.pinned);
    ensure!(image.spec.as_ref().map(|s| s.image.as_str()) == Some(busybox_id.as_str()));
    let info: serde_json::Value =
        serde_json::from_str(st.info.get("info").context("verbose info")?)?;
    let chain_id = info["chainID"].as_str().context("chainID")?.to_owned();
    ensure!(info["imageSpec"]["rootfs"]["diff_ids"].is_array(), "{info}");
    check_snapshot_has_busybox(&harness, &chain_id).await?;

    let listed = records(&harness).await?;
    for name in [
        busybox_id.as_str(),
        images.busybox.as_str(),
        &format!("{repo}@{manifest}"),
    ] {
        let line = listed
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .with_context(|| format!("no record {name} in\n{listed}"))?;
        ensure!(line.contains("io.cri-containerd.image=managed"), "{line}");
    }
    let content = harness.containerd.ctr_ok(&["content", "ls"]).await?;
    let manifest_line = content
        .lines()
        .find(|l| l.starts_with(&manifest))
        .with_context(|| format!("manifest not in content:\n{content}"))?;
    ensure!(
        manifest_line.contains("containerd.io/gc.ref.content.config="),
        "{manifest_line}"
    );
    ensure!(
        manifest_line.contains("containerd.io/gc.ref.content.l.0="),
        "{manifest_line}"
    );
    ensure!(
        manifest_line.contains("containerd.io/distribution.source.127.0.0.1=library/busybox"),
        "{manifest_line}"
    );
    let config_line = content
        .lines()
        .find(|l| l.starts_with(&busybox_id))
        .context("config blob")?;
    ensure!(
        config_line.contains(&format!(
            "containerd.io/gc.ref.snapshot.overlayfs={chain_id}"
        )),
        "{config_line}"
    );
    let layer = &images.busybox_digests.layers[0];
    let layer_line = content
        .lines()
        .find(|l| l.starts_with(layer.as_str()))
        .context("layer blob")?;
    ensure!(
        layer_line.contains(&format!(
            "containerd.io/uncompressed={}",
            images.busybox_digests.diff_ids[0]
        )),
        "{layer_line}"
    );
    let leases = harness.containerd.ctr_ok(&["leases", "ls"]).await?;
    ensure!(
        leases.lines().count() <= 1,
        "pull leases left behind:\n{leases}"
    );

    // By digest, and tag+digest (the tag is dropped, as containerd does).
    let by_digest = format!("{repo}@{manifest}");
    ensure!(pull(&mut client, &by_digest, None).await? == busybox_id);
    ensure!(pull(&mut client, &format!("{repo}:1.35@{manifest}"), None).await? == busybox_id);
    let image = status(&mut client, &busybox_id, false)
        .await?
        .image
        .context("by id")?;
    ensure!(
        image.repo_tags == vec![images.busybox.clone()],
        "{:?}",
        image.repo_tags
    );
    // Short id prefix resolves too.
    let short = &busybox_id["sha256:".len().."sha256:".len() + 12];
    ensure!(
        status(&mut client, short, false).await?.image.map(|i| i.id) == Some(busybox_id.clone())
    );

    // Docker schema 2 media types and a multi-platform index.
    let docker_id = pull(&mut client, &images.docker_schema2, None).await?;
    ensure!(
        docker_id == images.docker_schema2_digests.config,
        "{docker_id}"
    );
    let multi_id = pull(&mut client, &images.multiarch, None).await?;
    ensure!(
        multi_id == images.multiarch_platforms[0].config,
        "index picked {multi_id}"
    );
    let multi = status(&mut client, &images.multiarch, false)
        .await?
        .image
        .context("multiarch")?;
    ensure!(multi
        .repo_digests
        .contains(&format!("{repo}@{}", images.multiarch_index_digest)));

    // The sandbox image is pinned.
    pull(&mut client, &images.pause, None).await?;
    let pause = status(&mut client, &images.pause, false)
        .await?
        .image
        .context("pause")?;
    ensure!(pause.pinned, "sandbox image not pinned");
    let listed = records(&harness).await?;
    ensure!(
        listed
            .lines()
            .any(|l| l.starts_with(&images.pause) && l.contains("io.cri-containerd.pinned=pinned")),
        "{listed}"
    );

    // List, with and without a filter.
    let all = client
        .list_images(ListImagesRequest { filter: None })
        .await?
        .into_inner()
        .images;
    ensure!(all.len() >= 3, "{all:?}");
    let filtered = client
        .list_images(ListImagesRequest {
            filter: Some(ImageFilter {
                image: spec(&images.pause),
            }),
        })
        .await?
        .into_inner()
        .images;
    ensure!(
        filtered.len() == 1 && filtered[0].id == pause.id,
        "{filtered:?}"
    );

    // ImageFsInfo: the snapshotter's usage.
    let fs = client
        .image_fs_info(ImageFsInfoRequest {})
        .await?
        .into_inner();
    let usage = fs
        .image_filesystems
        .first()
        .context("no image filesystem")?;
    let mountpoint = usage
        .fs_id
        .as_ref()
        .map(|f| f.mountpoint.clone())
        .unwrap_or_default();
    ensure!(
        mountpoint.ends_with("io.containerd.snapshotter.v1.overlayfs"),
        "{mountpoint}"
    );
    ensure!(
        usage.used_bytes.as_ref().map(|u| u.value).unwrap_or(0) > 0,
        "{usage:?}"
    );
    ensure!(
        usage.inodes_used.as_ref().map(|u| u.value).unwrap_or(0) > 0,
        "{usage:?}"
    );

    // Errors: malformed reference, missing tag; unknown image status.
    assert_code(
        pull(&mut client, "Not A Ref", None).await,
        Code::InvalidArgument,
        "Not A Ref",
    )?;
    assert_code(
        pull(&mut client, &format!("{repo}:no-such-tag"), None).await,
        Code::NotFound,
        "no-such-tag",
    )?;
    ensure!(status(&mut client, "docker.io/library/nothing:here", false)
        .await?
        .image
        .is_none());

    // A restarted server rebuilds its store from containerd's records.
    server.restart().await?;
    let mut client = server.image_client().await?;
    let again = status(&mut client, &images.busybox, false)
        .await?
        .image
        .context("after restart")?;
    ensure!(
        again.id == busybox_id && again.repo_digests.contains(&format!("{repo}@{manifest}")),
        "{again:?}"
    );
    ensure!(
        status(&mut client, &images.pause, false)
            .await?
            .image
            .map(|i| i.pinned)
            == Some(true)
    );

    // Remove drops every reference; a second remove is fine.
    remove(&mut client, &images.busybox).await?;
    ensure!(status(&mut client, &images.busybox, false)
        .await?
        .image
        .is_none());
    ensure!(status(&mut client, &busybox_id, false)
        .await?
        .image
        .is_none());
    remove(&mut client, &images.busybox).await?;
    let listed = records(&harness).await?;
    ensure!(!listed.contains(&busybox_id), "records left:\n{listed}");
    ensure!(
        !listed
            .lines()
            .any(|l| l.starts_with(&format!("{repo}@{manifest}"))),
        "{listed}"
    );
    eprintln!(
        "pull/list/status/remove/fsinfo took {:?}",
        started.elapsed()
    );
    Ok(())
}

/// `cri_server_containerd_calls_total` for one containerd method.
async fn calls(address: &str, service: &str, method: &str) -> Result<f64> {
    use cri_server::metrics::exposition::{find, parse};
    let response = cri_tests::http::request(address, "GET", "/v1/metrics", &[], b"").await?;
    ensure!(response.status == 200, "{}", response.text());
    let text = response.text();
    let samples = parse(&text).with_context(|| format!("not Prometheus text:\n{text}"))?;
    let labels = [
        ("service", format!("containerd.services.{service}")),
        ("method", method.to_owned()),
    ];
    let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Ok(find(&samples, "cri_server_containerd_calls_total", &labels)
        .first()
        .map_or(0.0, |s| s.value))
}

/// What a pull writes into containerd: content, leases, snapshots, records.
const WRITES: [(&str, &str); 6] = [
    ("content.v1.Content", "Write"),
    ("content.v1.Content", "Update"),
    ("leases.v1.Leases", "Create"),
    ("snapshots.v1.Snapshots", "Prepare"),
    ("images.v1.Images", "Create"),
    ("images.v1.Images", "Update"),
];

async fn writes(address: &str) -> Result<Vec<f64>> {
    let mut counts = Vec::new();
    for (service, method) in WRITES {
        counts.push(calls(address, service, method).await?);
    }
    Ok(counts)
}

#[tokio::test]
async fn pulling_a_present_image_writes_nothing_and_repairs_what_is_missing() -> Result<()> {
    let harness = Harness::start().await?;
    let address = format!(
        "127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port()
    );
    let server = harness
        .server(ServerOptions {
            cri_server_toml: format!("metrics_address = \"{address}\"\n"),
            ..Default::default()
        })
        .await?;
    let mut client = server.image_client().await?;
    let images: &TestImages = &harness.images;
    let manifest = images.busybox_digests.manifest.clone();
    let id = images.busybox_digests.config.clone();

    for image in [&images.busybox, &images.multiarch] {
        let reads = calls(&address, "content.v1.Content", "Read").await?;
        pull(&mut client, image, None).await?;
        if image == &images.busybox {
            // The config that streamed into containerd is not read back.
            let read_back = calls(&address, "content.v1.Content", "Read").await? - reads;
            ensure!(read_back == 0.0, "{read_back} content reads in a cold pull");
        }
        let before = writes(&address).await?;
        let again = pull(&mut client, image, None).await?;
        let after = writes(&address).await?;
        ensure!(
            before == after,
            "pulling the present {image} again wrote into containerd: {WRITES:?} went from {before:?} to {after:?}"
        );
        ensure!(
            status(&mut client, image, false).await?.image.map(|i| i.id) == Some(again.clone()),
            "{image} is not {again} after the second pull"
        );
    }

    // A record removed behind our back is written again.
    harness
        .containerd
        .ctr_ok(&["images", "rm", images.busybox.as_str()])
        .await?;
    let before = calls(&address, "images.v1.Images", "Create").await?;
    ensure!(pull(&mut client, &images.busybox, None).await? == id);
    let created = calls(&address, "images.v1.Images", "Create").await? - before;
    ensure!(created == 1.0, "{created} image records created, want 1");
    let listed = records(&harness).await?;
    ensure!(
        listed
            .lines()
            .any(|l| l.starts_with(images.busybox.as_str())
                && l.contains("io.cri-containerd.image=managed")),
        "tag record not restored:\n{listed}"
    );

    // A manifest that lost its source label gets it back.
    let source = "containerd.io/distribution.source.127.0.0.1";
    harness
        .containerd
        .ctr_ok(&["content", "label", manifest.as_str(), &format!("{source}=")])
        .await?;
    let content = harness.containerd.ctr_ok(&["content", "ls"]).await?;
    ensure!(
        content
            .lines()
            .any(|l| l.starts_with(&manifest) && !l.contains(source)),
        "the label was not removed:\n{content}"
    );
    ensure!(pull(&mut client, &images.busybox, None).await? == id);
    let content = harness.containerd.ctr_ok(&["content", "ls"]).await?;
    let line = content
        .lines()
        .find(|l| l.starts_with(&manifest))
        .context("manifest gone")?;
    ensure!(
        line.contains(&format!("{source}=library/busybox")),
        "source label not restored: {line}"
    );
    let leases = harness.containerd.ctr_ok(&["leases", "ls"]).await?;
    ensure!(
        leases.lines().count() <= 1,
        "pull leases left behind:\n{leases}"
    );
    Ok(())
}

/// A `config_path` with one `hosts.toml` per registry.
fn write_hosts(dir: &Path, host_dir: &str, text: &str) -> Result<()> {
    let d = dir.join(host_dir);
    std::fs::create_dir_all(&d)?;
    std::fs::write(d.join("hosts.toml"), text)?;
    Ok(())
}

#[tokio::test]
async fn hosts_toml_mirror_and_basic_auth() -> Result<()> {
    let harness = Harness::start().await?;
    let images = &harness.images;
    let proxy = RegistryProxy::start(
        &harness.registry.host(),
        ProxyOptions {
            basic_auth: Some(("tester".into(), "s3cret-pw".into())),
            ..ProxyOptions::default()
        },
    )
    .await?;
    let certs = tempfile::tempdir()?;
    write_hosts(
        certs.path(),
        "registry.k8s.io",
        &format!(
            "server = \"https://registry.k8s.io\"\n\n[host.\"http://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            harness.registry.host()
        ),
    )?;
    // No `registry.mirrors` here: containerd refuses them next to config_path.
    let server = CriServer::start(
        &harness.containerd,
        ServerOptions {
            sandbox_image: Some(images.pause.clone()),
            cri_plugin_toml: format!("registry.config_path = \"{}\"", certs.path().display()),
            ..ServerOptions::default()
        },
    )
    .await?;
    let mut client = server.image_client().await?;

    // registry.k8s.io/pause:3.8 comes from the mirror.
    let id = pull(&mut client, "registry.k8s.io/pause:3.8", None).await?;
    ensure!(id == images.pause_digests.config, "{id}");
    let pause = status(&mut client, "registry.k8s.io/pause:3.8", false)
        .await?
        .image
        .context("mirrored")?;
    ensure!(
        pause
            .repo_tags
            .contains(&"registry.k8s.io/pause:3.8".to_owned()),
        "{pause:?}"
    );
    let content = harness.containerd.ctr_ok(&["content", "ls"]).await?;
    ensure!(
        content.contains("containerd.io/distribution.source.registry.k8s.io=pause"),
        "{content}"
    );

    // Basic auth: refused without or with wrong credentials, naming the registry.
    let behind_auth = format!("{}/library/busybox:1.35", proxy.host());
    assert_code(
        pull(&mut client, &behind_auth, None).await,
        Code::Unauthenticated,
        &proxy.host(),
    )?;
    let wrong = AuthConfig {
        username: "tester".into(),
        password: "wrong".into(),
        ..AuthConfig::default()
    };
    assert_code(
        pull(&mut client, &behind_auth, Some(wrong)).await,
        Code::Unauthenticated,
        &proxy.host(),
    )?;
    let right = AuthConfig {
        username: "tester".into(),
        password: "s3cret-pw".into(),
        ..AuthConfig::default()
    };
    let id = pull(&mut client, &behind_auth, Some(right)).await?;
    ensure!(id == images.busybox_digests.config, "{id}");
    ensure!(
        !server.log().contains("s3cret-pw"),
        "the password reached the log"
    );
    Ok(())
}

#[tokio::test]
async fn concurrent_pulls_share_one_fetch_and_stalls_time_out() -> Result<()> {
    let harness = Harness::start().await?;
    let images = &harness.images;
    let counting = RegistryProxy::start(&harness.registry.host(), ProxyOptions::default()).await?;
    let stalling = RegistryProxy::start(
        &harness.registry.host(),
        ProxyOptions {
            stall_blobs_after: Some(100),
            ..ProxyOptions::default()
        },
    )
    .await?;
    let server = harness
        .server(ServerOptions {
            cri_plugin_toml: "image_pull_progress_timeout = \"2s\"".into(),
            ..ServerOptions::default()
        })
        .await?;
    let mut first = server.image_client().await?;
    let mut second = server.image_client().await?;

    // Two pulls at once: one fetch of each blob.
    let image = format!("{}/library/busybox:latest", counting.host());
    let (a, b) = tokio::join!(
        pull(&mut first, &image, None),
        pull(&mut second, &image, None)
    );
    let (a, b) = (a?, b?);
    ensure!(a == b && a == images.busybox_digests.config, "{a} / {b}");
    for digest in images
        .busybox_digests
        .layers
        .iter()
        .chain([&images.busybox_digests.config])
    {
        let gets = counting.blob_gets(digest);
        ensure!(
            gets == 1,
            "blob {digest} fetched {gets} times: {:?}",
            counting.requests()
        );
    }

    // A registry that stops sending mid-blob: cancelled after 2s without
    // progress, DeadlineExceeded, and no image record.
    // pause: blobs this containerd does not have yet.
    let stalled = format!("{}/pause:3.8", stalling.host());
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(30), pull(&mut first, &stalled, None))
        .await
        .context("the stalled pull was never cancelled")?;
    assert_code(result, Code::DeadlineExceeded, "no progress")?;
    ensure!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    ensure!(status(&mut first, &stalled, false).await?.image.is_none());
    let listed = records(&harness).await?;
    ensure!(
        !listed.contains(&stalling.host()),
        "partial image record:\n{listed}"
    );
    let leases = harness.containerd.ctr_ok(&["leases", "ls"]).await?;
    ensure!(
        leases.lines().count() <= 1,
        "pull lease left behind:\n{leases}"
    );
    Ok(())
}

/// A registry whose blob bytes are not the blob: the daemon passes a
/// ranged (206) body to containerd without hashing it, so containerd's
/// commit check is what catches it; a registry that ignores ranges
/// answers 200, which the client hashes. Either way the pull fails with
/// DataLoss naming the layer and leaves nothing: no image record, no
/// ingest, no extraction snapshot, no lease. The same image from the
/// clean registry then pulls.
#[tokio::test]
async fn wrong_bytes_from_the_registry_fail_the_pull_and_leave_nothing() -> Result<()> {
    let harness = Harness::start().await?;
    let busybox = &harness.images.busybox_digests;
    let layer = busybox
        .layers
        .first()
        .context("busybox has a layer")?
        .clone();
    let server = harness.server(ServerOptions::default()).await?;
    let mut client = server.image_client().await?;
    for ignore_ranges in [false, true] {
        let proxy = RegistryProxy::start(
            &harness.registry.host(),
            ProxyOptions {
                // Past the config (a few hundred bytes), inside the layer.
                corrupt_blobs_at: Some(4096),
                ignore_ranges,
                ..ProxyOptions::default()
            },
        )
        .await?;
        let image = format!("{}/library/busybox:latest", proxy.host());
        let result = pull(&mut client, &image, None).await;
        assert_code(result, Code::DataLoss, &layer)
            .with_context(|| format!("ignore_ranges={ignore_ranges}"))?;
        let ranges = proxy.blob_ranges(&layer);
        ensure!(
            ranges.first().map(String::as_str) == Some("bytes=0-"),
            "the layer was not asked for as a range: {ranges:?}"
        );

        ensure!(status(&mut client, &image, false).await?.image.is_none());
        let listed = records(&harness).await?;
        ensure!(
            !listed.contains(&proxy.host()),
            "image record left:\n{listed}"
        );
        let active = harness.containerd.ctr_ok(&["content", "active"]).await?;
        ensure!(!active.contains(&layer), "ingest left:\n{active}");
        let snapshots = harness.containerd.ctr_ok(&["snapshots", "ls"]).await?;
        ensure!(
            !snapshots.contains("extract-"),
            "extraction snapshot left:\n{snapshots}"
        );
        let leases = harness.containerd.ctr_ok(&["leases", "ls"]).await?;
        ensure!(
            leases.lines().count() <= 1,
            "pull lease left behind:\n{leases}"
        );
    }
    let clean = format!("{}/library/busybox:latest", harness.registry.host());
    let id = pull(&mut client, &clean, None).await?;
    ensure!(id == busybox.config, "{id}");
    Ok(())
}
