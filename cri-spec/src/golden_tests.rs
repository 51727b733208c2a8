//! Golden specs: whole container and pause specs for kubelet-like inputs,
//! compared field by field with `testdata/golden/*.json` (what
//! containerd's CRI plugin writes for the same inputs). A golden seccomp
//! section of `"RUNTIME_DEFAULT"` stands for our default profile for the
//! spec's bounding set. `UPDATE_GOLDEN=1` rewrites the files.

use std::collections::HashMap;

use cri_api::v1::{
    security_profile::ProfileType, ContainerConfig, Int64Value, KeyValue, LinuxContainerResources,
    Mount as CriMount, NamespaceMode, NamespaceOption, SecurityProfile, WindowsContainerConfig,
    WindowsContainerResources, WindowsContainerSecurityContext, WindowsPodSandboxConfig,
    WindowsSandboxSecurityContext,
};
use serde_json::{json, Value};

use super::tests::{image, input, run, to_json, userns, Input};
use crate::{container::LabeledSpec, pause, Platform};

const KUBELET_MASKED: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
const KUBELET_READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Paths whose arrays are sets (serialized from hash sets).
fn is_set_path(path: &str) -> bool {
    path.starts_with("/process/capabilities/")
}

fn diff(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
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
                diff(&format!("{path}/{k}"), wv, gv, out);
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
                diff(&format!("{path}/{i}"), wv, gv, out);
            }
        }
        _ if want != got => out.push(format!("{path}: want {want}, got {got}")),
        _ => {}
    }
}

fn golden_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/golden")
        .join(format!("{name}.json"))
}

/// Compare `spec` with the golden file `name`, field by field.
fn check(name: &str, spec: crate::Result<LabeledSpec>) {
    let spec = spec.expect("spec builds");
    let mut got = to_json(&spec.spec);
    let bounding: Vec<oci_spec::runtime::Capability> = spec
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().clone())
        .and_then(|c| c.bounding().clone())
        .map(|b| b.into_iter().collect())
        .unwrap_or_default();
    let default_profile =
        serde_json::to_value(crate::default_seccomp_profile("amd64", &bounding).expect("profile"))
            .expect("profile json");
    if got["linux"].get("seccomp") == Some(&default_profile) {
        got["linux"]["seccomp"] = json!("RUNTIME_DEFAULT");
    }
    let path = golden_path(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let mut sorted = got.clone();
        sort_sets(&mut sorted);
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&sorted).expect("json") + "\n",
        )
        .expect("write golden");
        return;
    }
    let want: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("golden file"))
        .expect("golden json");
    let mut out = Vec::new();
    diff("", &want, &got, &mut out);
    assert!(
        out.is_empty(),
        "{name} differs from its golden spec:\n{}",
        out.join("\n")
    );
}

fn sort_sets(v: &mut Value) {
    if let Some(caps) = v
        .pointer_mut("/process/capabilities")
        .and_then(Value::as_object_mut)
    {
        for set in caps.values_mut() {
            if let Some(a) = set.as_array_mut() {
                a.sort_by_key(Value::to_string);
            }
        }
    }
}

/// A container config as the kubelet sends it for a plain pod.
fn kubelet_input() -> Input {
    let mut i = input();
    i.config = ContainerConfig {
        envs: vec![KeyValue {
            key: "KUBERNETES_SERVICE_HOST".into(),
            value: "10.96.0.1".into(),
        }],
        mounts: vec![
            CriMount {
                container_path: "/var/run/secrets/kubernetes.io/serviceaccount".into(),
                host_path:
                    "/var/lib/kubelet/pods/uid-1/volumes/kubernetes.io~projected/kube-api-access-x"
                        .into(),
                readonly: true,
                selinux_relabel: true,
                ..Default::default()
            },
            CriMount {
                container_path: "/dev/termination-log".into(),
                host_path: "/var/lib/kubelet/pods/uid-1/containers/app/0a1b".into(),
                selinux_relabel: true,
                ..Default::default()
            },
        ],
        log_path: "app/0.log".into(),
        ..i.config
    };
    *i.resources() = LinuxContainerResources {
        cpu_period: 100000,
        cpu_shares: 2,
        oom_score_adj: 1000,
        ..Default::default()
    };
    let sc = i.sc();
    sc.namespace_options = Some(NamespaceOption {
        pid: NamespaceMode::Container as i32,
        ..Default::default()
    });
    sc.masked_paths = KUBELET_MASKED.iter().map(|s| (*s).to_owned()).collect();
    sc.readonly_paths = KUBELET_READONLY.iter().map(|s| (*s).to_owned()).collect();
    sc.seccomp = Some(SecurityProfile {
        profile_type: ProfileType::RuntimeDefault as i32,
        localhost_ref: String::new(),
    });
    i
}

#[test]
fn golden_default_container() {
    check("default", run(&kubelet_input()));
}

#[test]
fn golden_privileged_container() {
    let mut i = kubelet_input();
    i.sc().privileged = true;
    i.sc().masked_paths.clear();
    i.sc().readonly_paths.clear();
    i.sandbox_sc().privileged = true;
    check("privileged", run(&i));
}

#[test]
fn golden_host_network_and_pid() {
    let mut i = kubelet_input();
    let host = NamespaceOption {
        network: NamespaceMode::Node as i32,
        pid: NamespaceMode::Node as i32,
        ..Default::default()
    };
    i.sc().namespace_options = Some(host.clone());
    i.sandbox_sc().namespace_options = Some(host);
    i.sandbox.hostname = String::new();
    i.host.hostname = "node-1".into();
    check("host_network_pid", run(&i));
}

#[test]
fn golden_userns_container() {
    let mut i = kubelet_input();
    let ns = NamespaceOption {
        pid: NamespaceMode::Container as i32,
        userns_options: Some(userns(65536)),
        ..Default::default()
    };
    i.sc().namespace_options = Some(ns.clone());
    i.sc().run_as_user = Some(Int64Value { value: 1000 });
    i.sandbox_sc().namespace_options = Some(ns);
    check("userns", run(&i));
}

#[test]
fn golden_pause() {
    let mut i = pause::tests::input();
    i.config.linux.as_mut().expect("linux").sysctls =
        HashMap::from([("net.ipv4.ip_forward".to_owned(), "1".to_owned())]);
    i.sc().seccomp = Some(SecurityProfile {
        profile_type: ProfileType::RuntimeDefault as i32,
        localhost_ref: String::new(),
    });
    check("pause", pause::tests::run(&i));
}

/// A Windows HostProcess container as the kubelet sends it: pod and
/// container both HostProcess, run as `NT AUTHORITY\SYSTEM`, a projected
/// service-account volume, a host-path volume and a named pipe (ordered by
/// depth, the pipe counted as `\\.\pipe\...`), CPU and memory limits.
#[test]
fn golden_windows_host_process() {
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
    check("windows_host_process", run(&i));
}

/// A Darwin container: command and args, working dir, tty, env, a
/// read-only bind mount and pass-through annotations.
#[test]
fn golden_darwin() {
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
    check("darwin", run(&i));
}
