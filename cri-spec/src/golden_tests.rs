//! Golden specs from containerd's own CRI plugin. Each file in
//! `testdata/golden/` was written by `scripts/regen-goldens.sh` (`make
//! goldens`): a corpus case of the differential suite run through
//! containerd's plugin, with the spec it wrote and every input the builder
//! needs for the same spec (CRI requests, image config and user database,
//! the reference's config keys, the host facts `HostOs` answers). The
//! builder gets those inputs, with the normalization placeholders as its ids
//! and dirs, and its spec is diffed against containerd's. A difference
//! passes only when it is a row of `docs/differences.md`, matched by the
//! differential suite's own code: `diff.rs` and `normalize.rs` below are
//! that suite's files, included by path, so the unit goldens and the live
//! suite judge by the same rules.
//!
//! `testdata/snapshots/` holds the Windows and Darwin specs: containerd on
//! Linux cannot build those, so they are our own output kept as regression
//! snapshots, not evidence of compatibility.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use cri_api::{
    ids::{ContainerId, SandboxId},
    v1::{
        ContainerConfig, KeyValue, Mount as CriMount, PodSandboxConfig, WindowsContainerConfig,
        WindowsContainerResources, WindowsContainerSecurityContext, WindowsPodSandboxConfig,
        WindowsSandboxSecurityContext,
    },
};
use oci_spec::image::ImageConfiguration;
use serde_json::{json, Value};

use super::tests::{image, input, run, to_json};
use crate::{
    host::{DeviceInfo, DeviceKind, MountInfo},
    pause::{PauseInputs, PauseSpecBuilder},
    testutil::{FakeHost, FakeSelinux, Users},
    ContainerInputs, ContainerSpecBuilder, Platform, RuntimeOptions, SandboxFiles, SpecHost,
};

#[allow(dead_code)]
#[path = "../../tests/src/differential/diff.rs"]
mod diff;
#[allow(dead_code)]
#[path = "../../tests/src/differential/normalize.rs"]
mod normalize;

/// The sandbox's pid in the builder's input; `/proc/<pid>` in both specs
/// after normalization.
const SANDBOX_PID: u32 = 4242;

fn testdata(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(dir)
}

/// The golden files, sorted.
fn goldens() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(testdata("golden"))
        .expect("testdata/golden")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn field<T: serde::de::DeserializeOwned>(golden: &Value, key: &str) -> T {
    serde_json::from_value(golden[key].clone()).unwrap_or_else(|e| panic!("golden {key}: {e}"))
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

fn device(v: &Value) -> DeviceInfo {
    let number = |k: &str| v[k].as_i64().expect("device number");
    DeviceInfo {
        path: PathBuf::from(v["path"].as_str().expect("device path")),
        kind: match v["kind"].as_str() {
            Some("b") => DeviceKind::Block,
            Some("p") => DeviceKind::Fifo,
            _ => DeviceKind::Char,
        },
        major: number("major"),
        minor: number("minor"),
        file_mode: number("file_mode") as u32,
        uid: number("uid") as u32,
        gid: number("gid") as u32,
    }
}

/// The host as the golden recorded it (`LinuxHostOs` on the machine that
/// ran containerd).
fn host(facts: &Value) -> FakeHost {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().filter_map(text).collect())
            .unwrap_or_default()
    };
    let mut host = FakeHost {
        hostname: text(&facts["hostname"]).expect("hostname"),
        caps: strings(&facts["capabilities"]),
        cgroup_v2: facts["cgroup_v2"] == true,
        swap: facts["swap"] == true,
        hugetlb: facts["hugetlb"] == true,
        seccomp: facts["seccomp"] == true,
        apparmor: facts["apparmor"] == true,
        apparmor_profiles: strings(&facts["apparmor_profiles"]),
        userns: facts["userns"] == true,
        host_devices: facts["host_devices"]
            .as_array()
            .map(|a| a.iter().map(device).collect())
            .unwrap_or_default(),
        missing: HashSet::new(),
        ..FakeHost::default()
    };
    for (path, fact) in facts["paths"].as_object().into_iter().flatten() {
        let path = PathBuf::from(path);
        if fact["exists"] != true {
            host.missing.insert(path.clone());
        }
        if let Some(resolved) = text(&fact["resolved"]) {
            let resolved = PathBuf::from(resolved);
            if let Some(m) = fact["mount"].as_object() {
                host.mounts.insert(
                    resolved.clone(),
                    MountInfo {
                        mount_point: PathBuf::from(m["mount_point"].as_str().unwrap_or("/")),
                        shared: m["shared"] == true,
                        slave: m["slave"] == true,
                    },
                );
            }
            if resolved != path {
                host.symlinks.insert(path, resolved);
            }
        }
    }
    for (path, found) in facts["devices"].as_object().into_iter().flatten() {
        let found = found
            .as_array()
            .map(|a| a.iter().map(device).collect())
            .unwrap_or_default();
        host.devices.insert(PathBuf::from(path), found);
    }
    for (path, content) in facts["files"].as_object().into_iter().flatten() {
        host.files.insert(
            PathBuf::from(path),
            content.as_str().unwrap_or_default().as_bytes().to_vec(),
        );
    }
    host
}

/// The builder's spec for the golden's inputs, as cri-server stores it
/// (`spec_to_json`), normalized.
fn build(golden: &Value) -> Value {
    let pod: PodSandboxConfig = field(golden, "pod");
    let image: ImageConfiguration = field(&golden["image"], "config");
    let users = Users::new(
        golden["image"]["passwd"].as_str(),
        golden["image"]["group"].as_str(),
    );
    let options = RuntimeOptions {
        restrict_oom_score_adj: golden["runtime_options"]["restrict_oom_score_adj"] == true,
        daemon_oom_score_adj: golden["runtime_options"]["daemon_oom_score_adj"]
            .as_i64()
            .expect("daemon_oom_score_adj") as i32,
        ..RuntimeOptions::default()
    };
    let os = host(&golden["host"]);
    let selinux = FakeSelinux::default();
    let spec_host = SpecHost {
        os: &os,
        users: &users,
        selinux: &selinux,
    };
    let sandbox_id = SandboxId::from("<sandbox-id>");
    let root = Path::new("<cri-root>/sandboxes/<sandbox-id>");
    let shm = PathBuf::from("<cri-state>/sandboxes/<sandbox-id>/shm");
    let platform = Platform::host();
    let spec = match golden.get("container").filter(|c| !c.is_null()) {
        None => {
            let host_network = pod
                .linux
                .as_ref()
                .and_then(|l| l.security_context.as_ref())
                .and_then(|s| s.namespace_options.as_ref())
                .is_some_and(|n| n.network == cri_api::v1::NamespaceMode::Node as i32);
            let inputs = PauseInputs {
                sandbox_id: &sandbox_id,
                config: &pod,
                image_config: &image,
                options: &options,
                shm: &shm,
                resolv_conf: &root.join("resolv.conf"),
            };
            let mut builder = PauseSpecBuilder::new(inputs, spec_host).with_platform(platform);
            if !host_network {
                builder = builder.with_netns_path("<netns>");
            }
            builder.build_labeled()
        }
        Some(_) => {
            let config: ContainerConfig = field(golden, "container");
            let name = config.metadata.as_ref().map(|m| m.name.clone());
            let id = ContainerId::from(format!("<container-id:{}>", name.unwrap_or_default()));
            let files = SandboxFiles {
                hostname: root.join("hostname"),
                hosts: root.join("hosts"),
                resolv_conf: root.join("resolv.conf"),
                shm,
            };
            let image_name = golden["image"]["name"].as_str().expect("image name");
            let inputs = ContainerInputs {
                id: &id,
                sandbox_id: &sandbox_id,
                sandbox_pid: SANDBOX_PID,
                sandbox_config: &pod,
                image_config: &image,
                image_name,
                runtime_handler: "",
                options: &options,
                sandbox_files: &files,
            };
            ContainerSpecBuilder::new(&config, inputs, spec_host)
                .with_platform(platform)
                .build_labeled()
        }
    };
    let spec = spec.unwrap_or_else(|e| panic!("the builder refused the golden's inputs: {e:?}"));
    let bytes = crate::spec_to_json(&spec.spec).expect("spec json");
    let got: Value = serde_json::from_slice(&bytes).expect("spec json");
    normalize::SideFacts::default().value(&got)
}

/// Every golden file: the builder's spec differs from containerd's only
/// where `docs/differences.md` says so.
#[test]
fn specs_match_containerd_cri_plugin() {
    let documented = diff::read_documented(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/differences.md"),
    )
    .expect("docs/differences.md");
    let files = goldens();
    assert!(
        files.len() >= 20,
        "{} golden files; run scripts/regen-goldens.sh",
        files.len()
    );
    let mut failures = Vec::new();
    let mut explained = 0;
    for path in &files {
        let golden: Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("golden file"))
                .expect("golden json");
        assert!(
            golden["comment"]
                .as_str()
                .is_some_and(|c| c.starts_with("Generated by scripts/regen-goldens.sh")),
            "{}: not generated from containerd's plugin",
            path.display()
        );
        let case = golden["case"].as_str().expect("case");
        let doc = golden["document"].as_str().expect("document");
        let want = BTreeMap::from([(doc.to_owned(), golden["spec"].clone())]);
        let got = BTreeMap::from([(doc.to_owned(), build(&golden))]);
        let found = diff::documents(case, &want, &got);
        let unexplained: Vec<String> = found
            .iter()
            .filter(|d| !documented.iter().any(|row| row.matches(d)))
            .map(diff::Difference::markdown_row)
            .collect();
        explained += found.len() - unexplained.len();
        if !unexplained.is_empty() {
            failures.push(format!(
                "{}: differences from containerd not in docs/differences.md:\n{}",
                path.display(),
                unexplained.join("\n")
            ));
        }
    }
    println!(
        "{} goldens from containerd, {explained} documented differences",
        files.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The check cannot pass vacuously: a golden whose spec is changed in
/// one field fails it.
#[test]
fn a_changed_golden_fails() {
    let path = goldens().into_iter().next().expect("a golden file");
    let mut golden: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("golden")).expect("json");
    let (case, doc) = (
        golden["case"].as_str().expect("case").to_owned(),
        golden["document"].as_str().expect("document").to_owned(),
    );
    golden["spec"]["process"]["cwd"] = json!("/changed");
    let want = BTreeMap::from([(doc.clone(), golden["spec"].clone())]);
    let got = BTreeMap::from([(doc, build(&golden))]);
    let found = diff::documents(&case, &want, &got);
    assert!(
        found.iter().any(|d| d.at.ends_with("/process/cwd")),
        "{found:?}"
    );
}

// Regression snapshots of our own output for the platforms containerd on
// Linux cannot build specs for. Not compatibility evidence.

fn is_set_path(path: &str) -> bool {
    path.starts_with("/process/capabilities/")
}

fn snapshot_diff(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            let mut keys: Vec<&String> = w.keys().chain(g.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let (wv, gv) = (
                    w.get(k).unwrap_or(&Value::Null),
                    g.get(k).unwrap_or(&Value::Null),
                );
                snapshot_diff(&format!("{path}/{k}"), wv, gv, out);
            }
        }
        (Value::Array(w), Value::Array(g)) if is_set_path(path) => {
            let sorted = |a: &Vec<Value>| {
                let mut s: Vec<String> = a.iter().map(Value::to_string).collect();
                s.sort();
                s
            };
            if sorted(w) != sorted(g) {
                out.push(format!(
                    "{path}: want set {:?}, got {:?}",
                    sorted(w),
                    sorted(g)
                ));
            }
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => {
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                snapshot_diff(&format!("{path}/{i}"), wv, gv, out);
            }
        }
        _ if want != got => out.push(format!("{path}: want {want}, got {got}")),
        _ => {}
    }
}

/// Compares `spec` with the self-generated snapshot `name`.
fn check_snapshot(name: &str, spec: crate::Result<crate::container::LabeledSpec>) {
    let got = to_json(&spec.expect("spec builds").spec);
    let path = testdata("snapshots").join(format!("{name}.json"));
    let want: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("snapshot"))
        .expect("snapshot json");
    let mut out = Vec::new();
    snapshot_diff("", &want, &got, &mut out);
    assert!(
        out.is_empty(),
        "{name} differs from its snapshot (our own earlier output):\n{}",
        out.join("\n")
    );
}

/// A Windows HostProcess container as the kubelet sends it: pod and
/// container both HostProcess, run as `NT AUTHORITY\SYSTEM`, a projected
/// service-account volume, a host-path volume and a named pipe (ordered by
/// depth, the pipe counted as `\\.\pipe\...`), CPU and memory limits.
#[test]
fn snapshot_windows_host_process() {
    let mut i = input();
    i.platform = Platform::new("windows", "amd64");
    i.image = image(json!({
        "Entrypoint": ["powershell.exe", "-NoLogo"],
        "Cmd": ["-Command", "Start-Sleep 3600"],
        "Env": ["PATH=C:\\Windows\\system32;C:\\Windows"],
        "WorkingDir": "C:\\app",
        "User": "ContainerUser",
    }));
    i.image_name = "mcr.microsoft.com/windows/nanoserver:ltsc2022".into();
    i.sandbox.linux = None;
    i.sandbox.windows = Some(WindowsPodSandboxConfig {
        security_context: Some(WindowsSandboxSecurityContext {
            run_as_username: r"NT AUTHORITY\SYSTEM".into(),
            host_process: true,
            ..Default::default()
        }),
    });
    i.sandbox.annotations =
        HashMap::from([("kubernetes.io/config.source".to_owned(), "api".to_owned())]);
    i.config = ContainerConfig {
        args: vec!["-Command".into(), "Get-Process; Start-Sleep 3600".into()],
        envs: vec![KeyValue {
            key: "KUBERNETES_SERVICE_HOST".into(),
            value: "10.96.0.1".into(),
        }],
        mounts: vec![
            CriMount {
                container_path: "/var/run/secrets/kubernetes.io/serviceaccount".into(),
                host_path: r"c:\var\lib\kubelet\pods\uid-1\volumes\kubernetes.io~projected\kube-api-access-x".into(),
                readonly: true,
                ..Default::default()
            },
            CriMount {
                container_path: "/var/lib/kube-proxy".into(),
                host_path: r"C:\var\lib\kube-proxy".into(),
                ..Default::default()
            },
            CriMount {
                container_path: r"\\.\pipe\containerd-containerd".into(),
                host_path: r"\\.\pipe\containerd-containerd".into(),
                ..Default::default()
            },
        ],
        log_path: "app/0.log".into(),
        linux: None,
        windows: Some(WindowsContainerConfig {
            resources: Some(WindowsContainerResources {
                cpu_maximum: 5000,
                memory_limit_in_bytes: 268_435_456,
                ..Default::default()
            }),
            security_context: Some(WindowsContainerSecurityContext {
                run_as_username: r"NT AUTHORITY\SYSTEM".into(),
                host_process: true,
                ..Default::default()
            }),
        }),
        ..i.config
    };
    check_snapshot("windows_host_process", run(&i));
}

/// A Darwin container: command and args, working dir, tty, env, a
/// read-only bind mount and pass-through annotations.
#[test]
fn snapshot_darwin() {
    let mut i = input();
    i.platform = Platform::new("darwin", "arm64");
    i.options.pod_annotations = vec!["example.com/*".into()];
    i.options.container_annotations = vec!["example.com/trace".into()];
    i.sandbox.linux = None;
    i.sandbox.annotations = HashMap::from([
        ("example.com/team".to_owned(), "infra".to_owned()),
        ("other.io/ignored".to_owned(), "x".to_owned()),
    ]);
    i.config = ContainerConfig {
        command: vec!["/bin/sh".into()],
        args: vec!["-c".into(), "exec top".into()],
        working_dir: "/Users/app".into(),
        tty: true,
        envs: vec![
            KeyValue {
                key: "IMG".into(),
                value: "2".into(),
            },
            KeyValue {
                key: "TERM".into(),
                value: "xterm-256color".into(),
            },
        ],
        mounts: vec![CriMount {
            container_path: "/etc/config".into(),
            host_path: "/Users/me/config".into(),
            readonly: true,
            ..Default::default()
        }],
        annotations: HashMap::from([
            ("example.com/trace".to_owned(), "on".to_owned()),
            ("example.com/untraced".to_owned(), "off".to_owned()),
        ]),
        log_path: "app/0.log".into(),
        linux: None,
        ..i.config
    };
    check_snapshot("darwin", run(&i));
}
