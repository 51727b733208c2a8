//! Table-style tests of `ContainerSpecBuilder`, one `check(input, expected)`
//! per case, covering every requirement of the Linux container spec.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cri_api::{
    ids::{ContainerId, SandboxId},
    v1::{
        security_profile::ProfileType, Capability as CriCapability, ContainerConfig,
        ContainerMetadata, Device, HugepageLimit, IdMapping, ImageSpec, Int64Value, KeyValue,
        LinuxContainerConfig, LinuxContainerResources, LinuxContainerSecurityContext,
        LinuxPodSandboxConfig, LinuxSandboxSecurityContext, Mount as CriMount, MountPropagation,
        NamespaceMode, NamespaceOption, PodSandboxConfig, PodSandboxMetadata, SeLinuxOption,
        SecurityProfile, SupplementalGroupsPolicy, UserNamespace,
    },
};
use oci_spec::{image::ImageConfiguration, runtime::Spec};
use serde_json::{json, Value};

use super::*;
use crate::{
    host::MountInfo,
    testutil::{char_device, FakeHost, FakeSelinux, Users},
    Platform, RuntimeOptions, SandboxFiles,
};

pub(crate) const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:34::/var/www:/bin/false\nalice:x:1000:1000::/home/alice:/bin/sh\n";
pub(crate) const GROUP: &str =
    "root:x:0:\nwheel:x:10:root\nwww-data:x:34:\nalice:x:1000:\nvideo:x:44:alice,www\n";

/// Everything a build reads, owned, so cases can edit any of it.
pub(crate) struct Input {
    pub config: ContainerConfig,
    pub sandbox: PodSandboxConfig,
    pub image: ImageConfiguration,
    pub image_name: String,
    pub options: RuntimeOptions,
    pub files: SandboxFiles,
    pub host: FakeHost,
    pub users: Users,
    pub selinux: FakeSelinux,
    pub platform: Platform,
    pub extra: Vec<CriMount>,
    pub target_pid: Option<u32>,
    pub sandbox_label: String,
}

pub(crate) fn image(config: Value) -> ImageConfiguration {
    serde_json::from_value(json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": config,
    }))
    .expect("image config")
}

pub(crate) fn input() -> Input {
    Input {
        config: ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: "app".into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: "sha256:abc".into(),
                ..Default::default()
            }),
            linux: Some(LinuxContainerConfig {
                resources: None,
                security_context: Some(Default::default()),
            }),
            ..Default::default()
        },
        sandbox: PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: "pod".into(),
                uid: "uid-1".into(),
                namespace: "ns".into(),
                attempt: 0,
            }),
            hostname: "pod-host".into(),
            log_directory: "/var/log/pods/ns_pod_uid-1".into(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: "/kubepods/besteffort/poduid-1".into(),
                security_context: Some(Default::default()),
                ..Default::default()
            }),
            ..Default::default()
        },
        image: image(json!({
            "Entrypoint": ["/bin/app"], "Cmd": ["--serve"],
            "Env": ["PATH=/usr/bin:/bin", "IMG=1"], "WorkingDir": "/srv",
        })),
        image_name: "docker.io/library/app:1".into(),
        options: RuntimeOptions::default(),
        files: SandboxFiles {
            hostname: "/var/lib/cri/sandboxes/s1/hostname".into(),
            hosts: "/var/lib/cri/sandboxes/s1/hosts".into(),
            resolv_conf: "/var/lib/cri/sandboxes/s1/resolv.conf".into(),
            shm: "/run/cri/sandboxes/s1/shm".into(),
        },
        host: FakeHost::default(),
        users: Users::new(Some(PASSWD), Some(GROUP)),
        selinux: FakeSelinux::default(),
        platform: Platform::new("linux", "amd64"),
        extra: Vec::new(),
        target_pid: None,
        sandbox_label: String::new(),
    }
}

impl Input {
    pub(crate) fn sc(&mut self) -> &mut LinuxContainerSecurityContext {
        self.config
            .linux
            .get_or_insert_with(Default::default)
            .security_context
            .get_or_insert_with(Default::default)
    }
    pub(crate) fn sandbox_sc(&mut self) -> &mut LinuxSandboxSecurityContext {
        self.sandbox
            .linux
            .get_or_insert_with(Default::default)
            .security_context
            .get_or_insert_with(Default::default)
    }
    pub(crate) fn resources(&mut self) -> &mut LinuxContainerResources {
        self.config
            .linux
            .get_or_insert_with(Default::default)
            .resources
            .get_or_insert_with(Default::default)
    }
    pub(crate) fn ns(&mut self) -> &mut NamespaceOption {
        self.sc()
            .namespace_options
            .get_or_insert_with(Default::default)
    }
}

pub(crate) fn run(i: &Input) -> Result<LabeledSpec> {
    let (id, sandbox_id) = (ContainerId::from("c1"), SandboxId::from("s1"));
    let inputs = ContainerInputs {
        id: &id,
        sandbox_id: &sandbox_id,
        sandbox_pid: 42,
        sandbox_config: &i.sandbox,
        image_config: &i.image,
        image_name: &i.image_name,
        runtime_handler: "runc",
        options: &i.options,
        sandbox_files: &i.files,
    };
    let host = SpecHost {
        os: &i.host,
        users: &i.users,
        selinux: &i.selinux,
    };
    let mut b = ContainerSpecBuilder::new(&i.config, inputs, host)
        .with_platform(i.platform.clone())
        .with_extra_mounts(i.extra.clone())
        .with_sandbox_process_label(i.sandbox_label.clone());
    if let Some(pid) = i.target_pid {
        b = b.with_target_pid(pid);
    }
    b.build_labeled()
}

pub(crate) fn to_json(spec: &Spec) -> Value {
    serde_json::to_value(spec).expect("spec json")
}

/// A JSON array as a sorted set of strings (capability sets are unordered).
pub(crate) fn set(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn strs(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// The mount at `dst`, if any.
pub(crate) fn mount_at(v: &Value, dst: &str) -> Value {
    v["mounts"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["destination"] == dst).cloned())
        .unwrap_or(Value::Null)
}

type SpecCheck = Box<dyn Fn(&Value, &LabeledSpec, &Input)>;

enum Expected {
    Spec(SpecCheck),
    Err(&'static str),
}

fn ok(f: impl Fn(&Value) + 'static) -> Expected {
    Expected::Spec(Box::new(move |v, _, _| f(v)))
}

fn ok_with(f: impl Fn(&Value, &LabeledSpec, &Input) + 'static) -> Expected {
    Expected::Spec(Box::new(f))
}

fn err(variant: &'static str) -> Expected {
    Expected::Err(variant)
}

/// Build `input` and compare with `expected`: a spec check or the name of
/// the error variant.
fn check(input: Input, expected: Expected) {
    let got = run(&input);
    match (got, expected) {
        (Ok(spec), Expected::Spec(f)) => f(&to_json(&spec.spec), &spec, &input),
        (Err(e), Expected::Err(variant)) => {
            let debug = format!("{e:?}");
            assert!(debug.starts_with(variant), "want {variant}, got {debug}");
            assert!(!e.to_string().is_empty());
        }
        (Ok(spec), Expected::Err(variant)) => panic!("want {variant}, got {}", to_json(&spec.spec)),
        (Err(e), Expected::Spec(_)) => panic!("want a spec, got {e:?}"),
    }
}

fn with(f: impl FnOnce(&mut Input)) -> Input {
    let mut i = input();
    f(&mut i);
    i
}

fn profile(t: ProfileType, r: &str) -> Option<SecurityProfile> {
    Some(SecurityProfile {
        profile_type: t as i32,
        localhost_ref: r.into(),
    })
}

fn cri_mount(container: &str, host: &str) -> CriMount {
    CriMount {
        container_path: container.into(),
        host_path: host.into(),
        ..Default::default()
    }
}

// ---- process ----

#[test]
fn args_from_image_and_config() {
    check(
        input(),
        ok(|v| assert_eq!(v["process"]["args"], json!(["/bin/app", "--serve"]))),
    );
    check(
        with(|i| i.config.command = vec!["/bin/sh".into()]),
        ok(|v| assert_eq!(v["process"]["args"], json!(["/bin/sh"]))),
    );
    check(
        with(|i| i.config.args = vec!["-v".into()]),
        ok(|v| assert_eq!(v["process"]["args"], json!(["/bin/app", "-v"]))),
    );
    check(
        with(|i| i.image = image(json!({"Entrypoint": [""], "Cmd": ["run"]}))),
        ok(|v| assert_eq!(v["process"]["args"], json!(["run"]))),
    );
    check(with(|i| i.image = image(json!({}))), err("NoCommand"));
    check(
        with(|i| i.config.metadata = None),
        err("MissingContainerMetadata"),
    );
}

#[test]
fn cwd_tty_and_env() {
    check(input(), ok(|v| assert_eq!(v["process"]["cwd"], "/srv")));
    check(
        with(|i| i.config.working_dir = "/work".into()),
        ok(|v| assert_eq!(v["process"]["cwd"], "/work")),
    );
    check(
        with(|i| i.image = image(json!({"Cmd": ["x"]}))),
        ok(|v| assert_eq!(v["process"]["cwd"], "/")),
    );
    check(
        with(|i| {
            i.config.envs = vec![
                KeyValue {
                    key: "IMG".into(),
                    value: "2".into(),
                },
                KeyValue {
                    key: "A".into(),
                    value: "b".into(),
                },
            ]
        }),
        ok(|v| {
            assert_eq!(
                v["process"]["env"],
                json!([
                    "PATH=/usr/bin:/bin",
                    "HOSTNAME=pod-host",
                    "IMG=1",
                    "IMG=2",
                    "A=b"
                ])
            )
        }),
    );
    check(
        with(|i| {
            i.config.tty = true;
            i.sandbox.hostname = String::new();
            i.image = image(json!({"Cmd": ["x"]}));
        }),
        ok(|v| {
            assert_eq!(v["process"]["terminal"], true);
            assert_eq!(
                v["process"]["env"],
                json!([
                    crate::process::DEFAULT_PATH_ENV,
                    "TERM=xterm",
                    "HOSTNAME=node-1"
                ])
            );
        }),
    );
    check(
        input(),
        ok(|v| assert_eq!(v["process"].get("terminal"), None)),
    );
}

#[test]
fn no_new_privs_and_rlimits() {
    check(
        input(),
        ok(|v| {
            assert_eq!(v["process"].get("noNewPrivileges"), None);
            assert_eq!(v["process"].get("rlimits"), None);
        }),
    );
    check(
        with(|i| i.sc().no_new_privs = true),
        ok(|v| assert_eq!(v["process"]["noNewPrivileges"], true)),
    );
}

#[test]
fn oom_score_adj() {
    check(
        input(),
        ok(|v| assert_eq!(v["process"].get("oomScoreAdj"), None)),
    );
    check(
        with(|i| i.resources().oom_score_adj = 500),
        ok(|v| assert_eq!(v["process"]["oomScoreAdj"], 500)),
    );
    check(
        with(|i| i.resources().oom_score_adj = 0),
        ok(|v| assert_eq!(v["process"]["oomScoreAdj"], 0)),
    );
    check(
        with(|i| {
            i.resources().oom_score_adj = -900;
            i.options.restrict_oom_score_adj = true;
            i.options.daemon_oom_score_adj = -500;
        }),
        ok(|v| assert_eq!(v["process"]["oomScoreAdj"], -500)),
    );
}

// ---- user ----

#[test]
fn run_as_user_group_and_name() {
    let user = |v: &Value| {
        (
            v["process"]["user"]["uid"].clone(),
            v["process"]["user"]["gid"].clone(),
            v["process"]["user"]["additionalGids"].clone(),
        )
    };
    check(
        input(),
        ok(move |v| assert_eq!(user(v), (json!(0), json!(0), json!([0, 10])))),
    );
    check(
        with(|i| i.sc().run_as_user = Some(Int64Value { value: 33 })),
        ok(move |v| assert_eq!(user(v), (json!(33), json!(34), json!([34, 44])))),
    );
    check(
        with(|i| i.sc().run_as_user = Some(Int64Value { value: 5000 })),
        ok(move |v| assert_eq!(user(v), (json!(5000), json!(0), json!([0])))),
    );
    check(
        with(|i| {
            i.sc().run_as_user = Some(Int64Value { value: 1000 });
            i.sc().run_as_group = Some(Int64Value { value: 3000 });
        }),
        ok(move |v| assert_eq!(user(v), (json!(1000), json!(3000), json!([44, 3000])))),
    );
    check(
        with(|i| i.sc().run_as_username = "alice".into()),
        ok(move |v| assert_eq!(user(v), (json!(1000), json!(1000), json!([44, 1000])))),
    );
    check(
        with(|i| i.sc().run_as_username = "bob".into()),
        err("UnknownUser"),
    );
    check(
        with(|i| i.sc().run_as_group = Some(Int64Value { value: 5 })),
        err("GroupWithoutUser"),
    );
    check(
        with(|i| i.image = image(json!({"Cmd": ["x"], "User": "www"}))),
        ok(move |v| assert_eq!(user(v), (json!(33), json!(34), json!([34, 44])))),
    );
    check(
        with(|i| i.image = image(json!({"Cmd": ["x"], "User": "1000:video"}))),
        ok(move |v| assert_eq!(user(v), (json!(1000), json!(44), json!([44])))),
    );
    check(with(|i| i.users = Users::failing()), err("ReadPasswd"));
}

#[test]
fn supplemental_groups_policies() {
    let gids = |v: &Value| v["process"]["user"]["additionalGids"].clone();
    let base = |i: &mut Input| {
        i.sc().run_as_user = Some(Int64Value { value: 1000 });
        i.sc().supplemental_groups = vec![7, 3];
    };
    check(
        with(base),
        ok(move |v| assert_eq!(gids(v), json!([3, 7, 44, 1000]))),
    );
    check(
        with(|i| {
            base(i);
            i.sc().supplemental_groups_policy = SupplementalGroupsPolicy::Strict as i32;
        }),
        ok(move |v| assert_eq!(gids(v), json!([3, 7, 1000]))),
    );
    check(
        with(|i| i.sc().supplemental_groups_policy = 9),
        err("UnsupportedSupplementalGroupsPolicy"),
    );
}

// ---- capabilities ----

#[test]
fn capabilities() {
    let default = strs(&[
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
    ]);
    let d = default.clone();
    check(
        input(),
        ok(move |v| {
            let caps = &v["process"]["capabilities"];
            assert_eq!(set(&caps["bounding"]), d);
            assert_eq!(set(&caps["effective"]), d);
            assert_eq!(set(&caps["permitted"]), d);
            assert_eq!(caps.get("ambient"), None);
            assert_eq!(caps.get("inheritable"), None);
        }),
    );
    let caps = |add: &[&str], drop: &[&str], ambient: &[&str]| {
        let v = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect();
        Some(CriCapability {
            add_capabilities: v(add),
            drop_capabilities: v(drop),
            add_ambient_capabilities: v(ambient),
        })
    };
    check(
        with(|i| i.sc().capabilities = caps(&["NET_ADMIN"], &["KILL", "MKNOD"], &[])),
        ok(|v| {
            let b = set(&v["process"]["capabilities"]["bounding"]);
            assert!(
                b.contains("CAP_NET_ADMIN") && !b.contains("CAP_KILL") && !b.contains("CAP_MKNOD")
            );
        }),
    );
    check(
        with(|i| i.sc().capabilities = caps(&["ALL"], &[], &[])),
        ok(|v| {
            assert_eq!(
                set(&v["process"]["capabilities"]["bounding"]).len(),
                crate::testutil::ALL_CAPS.len()
            )
        }),
    );
    check(
        with(|i| i.sc().capabilities = caps(&[], &["ALL"], &["NET_BIND_SERVICE"])),
        ok(|v| {
            let c = &v["process"]["capabilities"];
            for set_name in [
                "bounding",
                "effective",
                "permitted",
                "inheritable",
                "ambient",
            ] {
                assert_eq!(
                    set(&c[set_name]),
                    strs(&["CAP_NET_BIND_SERVICE"]),
                    "{set_name}"
                );
            }
        }),
    );
    check(
        with(|i| i.sc().capabilities = caps(&["WHATEVER"], &[], &[])),
        err("UnknownCapability"),
    );
}

// ---- namespaces ----

#[test]
fn pod_namespaces() {
    check(
        input(),
        ok(|v| {
            assert_eq!(
                v["linux"]["namespaces"],
                json!([
                    {"type": "pid", "path": "/proc/42/ns/pid"}, {"type": "ipc", "path": "/proc/42/ns/ipc"},
                    {"type": "uts", "path": "/proc/42/ns/uts"}, {"type": "mount"},
                    {"type": "network", "path": "/proc/42/ns/net"}, {"type": "cgroup"},
                ])
            );
        }),
    );
    check(
        with(|i| i.ns().pid = NamespaceMode::Container as i32),
        ok(|v| assert_eq!(v["linux"]["namespaces"][0], json!({"type": "pid"}))),
    );
    check(
        with(|i| {
            i.ns().pid = NamespaceMode::Target as i32;
            i.ns().target_id = "c0".into();
            i.target_pid = Some(77);
        }),
        ok(|v| {
            assert_eq!(
                v["linux"]["namespaces"][0],
                json!({"type": "pid", "path": "/proc/77/ns/pid"})
            )
        }),
    );
    check(
        with(|i| {
            i.ns().pid = NamespaceMode::Target as i32;
        }),
        err("MissingTargetPid"),
    );
    check(
        with(|i| i.host.cgroup_v2 = false),
        ok(|v| assert_eq!(v["linux"]["namespaces"].as_array().map(Vec::len), Some(5))),
    );
}

pub(crate) fn userns(host_id: u32) -> UserNamespace {
    let m = vec![IdMapping {
        host_id,
        container_id: 0,
        length: 65536,
    }];
    UserNamespace {
        mode: NamespaceMode::Pod as i32,
        uids: m.clone(),
        gids: m,
    }
}

#[test]
fn user_namespaces() {
    check(
        with(|i| {
            i.ns().userns_options = Some(userns(100000));
            i.sandbox_sc().namespace_options = Some(NamespaceOption {
                userns_options: Some(userns(100000)),
                ..Default::default()
            });
        }),
        ok(|v| {
            assert_eq!(
                v["linux"]["namespaces"][5],
                json!({"type": "user", "path": "/proc/42/ns/user"})
            );
            assert_eq!(v["linux"]["namespaces"][6], json!({"type": "cgroup"}));
            assert_eq!(
                v["linux"]["uidMappings"],
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}])
            );
            assert_eq!(
                v["linux"]["gidMappings"],
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}])
            );
        }),
    );
    check(
        with(|i| i.ns().userns_options = Some(userns(100000))),
        err("UsernsMismatch"),
    );
    check(
        with(|i| {
            i.ns().userns_options = Some(userns(100000));
            i.sandbox_sc().namespace_options = Some(NamespaceOption {
                userns_options: Some(userns(200000)),
                ..Default::default()
            });
        }),
        err("UsernsMismatch"),
    );
    check(
        with(|i| {
            i.ns().userns_options = Some(UserNamespace {
                mode: NamespaceMode::Pod as i32,
                ..Default::default()
            })
        }),
        err("UsernsPodWithoutMappings"),
    );
}

// ---- mounts ----

#[test]
fn default_and_sandbox_mounts() {
    check(
        input(),
        ok(|v| {
            let dsts: Vec<&str> = v["mounts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m["destination"].as_str())
                .collect();
            assert_eq!(
                dsts,
                [
                    "/proc",
                    "/dev",
                    "/dev/pts",
                    "/dev/mqueue",
                    "/sys",
                    "/sys/fs/cgroup",
                    "/etc/hostname",
                    "/etc/hosts",
                    "/etc/resolv.conf",
                    "/dev/shm"
                ]
            );
            assert_eq!(
                mount_at(v, "/sys/fs/cgroup")["options"],
                json!(["nosuid", "noexec", "nodev", "relatime", "ro"])
            );
            assert_eq!(
                mount_at(v, "/etc/hosts"),
                json!({"destination": "/etc/hosts", "type": "bind", "source": "/var/lib/cri/sandboxes/s1/hosts", "options": ["rbind", "rprivate", "rw"]})
            );
            assert_eq!(
                mount_at(v, "/dev/shm")["source"],
                "/run/cri/sandboxes/s1/shm"
            );
        }),
    );
    check(
        with(|i| {
            i.sc().readonly_rootfs = true;
            i.host.missing.insert(i.files.hostname.clone());
            i.ns().ipc = NamespaceMode::Node as i32;
        }),
        ok(|v| {
            assert_eq!(mount_at(v, "/etc/hostname"), Value::Null);
            assert_eq!(
                mount_at(v, "/etc/resolv.conf")["options"],
                json!(["rbind", "rprivate", "ro"])
            );
            assert_eq!(mount_at(v, "/dev/shm")["source"], "/dev/shm");
            assert_eq!(
                mount_at(v, "/dev/shm")["options"],
                json!(["rbind", "rprivate", "rw"])
            );
            assert_eq!(v["root"]["readonly"], true);
        }),
    );
}

#[test]
fn cri_mounts_and_propagation() {
    check(
        with(|i| {
            i.config.mounts = vec![
                CriMount {
                    readonly: true,
                    ..cri_mount("/data/a/b", "/host/b")
                },
                CriMount {
                    propagation: MountPropagation::PropagationHostToContainer as i32,
                    ..cri_mount("/data", "/host/slave")
                },
                cri_mount("/etc/hosts", "/host/hosts"),
            ];
            i.host.mounts.insert(
                "/host/slave".into(),
                MountInfo {
                    mount_point: "/host".into(),
                    shared: false,
                    slave: true,
                },
            );
        }),
        ok(|v| {
            let dsts: Vec<&str> = v["mounts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m["destination"].as_str())
                .collect();
            let tail: Vec<&str> = dsts.iter().rev().take(6).rev().copied().collect();
            assert_eq!(
                tail,
                [
                    "/data",
                    "/etc/hosts",
                    "/etc/hostname",
                    "/etc/resolv.conf",
                    "/dev/shm",
                    "/data/a/b"
                ]
            );
            assert_eq!(
                mount_at(v, "/data/a/b")["options"],
                json!(["rbind", "rprivate", "ro"])
            );
            assert_eq!(
                mount_at(v, "/data")["options"],
                json!(["rbind", "rslave", "rw"])
            );
            assert_eq!(mount_at(v, "/etc/hosts")["source"], "/host/hosts");
            assert_eq!(v["linux"]["rootfsPropagation"], "rslave");
        }),
    );
    let shared = |i: &mut Input| {
        i.config.mounts = vec![CriMount {
            propagation: MountPropagation::PropagationBidirectional as i32,
            ..cri_mount("/m", "/host/m")
        }];
    };
    check(with(shared), err("NotSharedMount"));
    check(
        with(|i| {
            shared(i);
            i.host.mounts.insert(
                "/host/m".into(),
                MountInfo {
                    mount_point: "/".into(),
                    shared: true,
                    slave: false,
                },
            );
        }),
        ok(|v| {
            assert_eq!(
                mount_at(v, "/m")["options"],
                json!(["rbind", "rshared", "rw"])
            );
            assert_eq!(v["linux"]["rootfsPropagation"], "rshared");
        }),
    );
    check(
        with(|i| {
            i.config.mounts = vec![CriMount {
                propagation: MountPropagation::PropagationHostToContainer as i32,
                ..cri_mount("/m", "/host/m")
            }]
        }),
        err("NotSharedOrSlaveMount"),
    );
    check(
        with(|i| {
            i.config.mounts = vec![CriMount {
                propagation: 7,
                ..cri_mount("/m", "/host/m")
            }]
        }),
        ok(|v| assert_eq!(mount_at(v, "/m")["options"][1], "rprivate")),
    );
}

#[test]
fn recursive_readonly_symlinks_and_creation() {
    check(
        with(|i| {
            i.config.mounts = vec![CriMount {
                readonly: true,
                recursive_read_only: true,
                ..cri_mount("/r", "/host/r")
            }]
        }),
        ok(|v| {
            assert_eq!(
                mount_at(v, "/r")["options"],
                json!(["rbind", "rprivate", "rro"])
            )
        }),
    );
    check(
        with(|i| {
            i.config.mounts = vec![CriMount {
                recursive_read_only: true,
                ..cri_mount("/r", "/host/r")
            }]
        }),
        err("RecursiveReadOnlyNotReadOnly"),
    );
    check(
        with(|i| {
            i.config.mounts = vec![CriMount {
                readonly: true,
                recursive_read_only: true,
                propagation: MountPropagation::PropagationHostToContainer as i32,
                ..cri_mount("/r", "/host/r")
            }]
        }),
        err("RecursiveReadOnlyNotPrivate"),
    );
    check(
        with(|i| {
            i.config.mounts = vec![cri_mount("/l", "/host/link")];
            i.host
                .symlinks
                .insert("/host/link".into(), "/real/target".into());
        }),
        ok(|v| assert_eq!(mount_at(v, "/l")["source"], "/real/target")),
    );
    let missing = with(|i| {
        i.config.mounts = vec![cri_mount("/new", "/host/new")];
        i.host.missing.insert("/host/new".into());
    });
    check(
        missing,
        ok_with(|v, _, i| {
            assert_eq!(mount_at(v, "/new")["source"], "/host/new");
            assert_eq!(
                i.host.created(),
                vec![std::path::PathBuf::from("/host/new")]
            );
        }),
    );
    check(
        with(|i| {
            i.config.mounts = vec![cri_mount("/x", "/host/x")];
            i.host.stat_fails.insert("/host/x".into());
        }),
        err("StatHostPath"),
    );
    check(
        with(|i| {
            i.config.mounts = vec![CriMount {
                uid_mappings: vec![IdMapping::default()],
                ..cri_mount("/x", "/host/x")
            }]
        }),
        err("IdmapMount"),
    );
    check(
        with(|i| {
            i.config.mounts = vec![CriMount {
                image: Some(ImageSpec::default()),
                ..cri_mount("/x", "")
            }]
        }),
        err("ImageMount"),
    );
}

#[test]
fn extra_mounts_and_dev_override() {
    check(
        with(|i| {
            i.extra = vec![
                cri_mount("/vol", "/var/lib/cri/containers/c1/volumes/v1"),
                cri_mount("/data", "/vol/ignored"),
            ];
            i.config.mounts = vec![
                cri_mount("/data", "/host/data"),
                cri_mount("/dev", "/host/dev"),
            ];
        }),
        ok(|v| {
            assert_eq!(
                mount_at(v, "/vol")["source"],
                "/var/lib/cri/containers/c1/volumes/v1"
            );
            assert_eq!(mount_at(v, "/data")["source"], "/host/data");
            assert_eq!(mount_at(v, "/dev/pts"), Value::Null);
            assert_eq!(mount_at(v, "/dev/mqueue"), Value::Null);
            assert_eq!(mount_at(v, "/dev")["type"], "bind");
            // The sandbox /dev/shm is still bound over the CRI /dev.
            assert_eq!(mount_at(v, "/dev/shm")["type"], "bind");
        }),
    );
}

#[test]
fn masked_and_readonly_paths() {
    check(
        input(),
        ok(|v| {
            assert_eq!(v["linux"].get("maskedPaths"), None);
            assert_eq!(v["linux"].get("readonlyPaths"), None);
        }),
    );
    check(
        with(|i| {
            i.sc().masked_paths = vec!["/proc/kcore".into()];
            i.sc().readonly_paths = vec!["/proc/sys".into()];
        }),
        ok(|v| {
            assert_eq!(v["linux"]["maskedPaths"], json!(["/proc/kcore"]));
            assert_eq!(v["linux"]["readonlyPaths"], json!(["/proc/sys"]));
        }),
    );
    check(
        with(|i| {
            i.sc().masked_paths = vec!["/proc/kcore".into()];
            i.options.disable_proc_mount = true;
        }),
        ok(|v| {
            assert_eq!(v["linux"]["maskedPaths"].as_array().map(Vec::len), Some(10));
            assert_eq!(
                v["linux"]["readonlyPaths"].as_array().map(Vec::len),
                Some(5)
            );
        }),
    );
}

// ---- devices ----

#[test]
fn cri_devices() {
    let dev = |host: &str, container: &str| Device {
        host_path: host.into(),
        container_path: container.into(),
        permissions: "rw".into(),
    };
    check(
        with(|i| {
            i.config.devices = vec![
                dev("/dev/gpu-link", "/dev/gpu0"),
                dev("/dev/snd", "/dev/sound"),
            ];
            i.host
                .symlinks
                .insert("/dev/gpu-link".into(), "/dev/nvidia0".into());
            i.host.devices.insert(
                "/dev/nvidia0".into(),
                vec![char_device("/dev/nvidia0", 195, 0)],
            );
            i.host.devices.insert(
                "/dev/snd".into(),
                vec![
                    char_device("/dev/snd/pcm0", 116, 2),
                    char_device("/dev/snd/timer", 116, 33),
                ],
            );
        }),
        ok(|v| {
            assert_eq!(
                v["linux"]["devices"][0],
                json!({"path": "/dev/gpu0", "type": "c", "major": 195, "minor": 0, "fileMode": 438, "uid": 0, "gid": 0})
            );
            assert_eq!(v["linux"]["devices"][2]["path"], "/dev/sound/timer");
            assert_eq!(
                v["linux"]["resources"]["devices"],
                json!([
                    {"allow": false, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 195, "minor": 0, "access": "rw"},
                    {"allow": true, "type": "c", "major": 116, "minor": 2, "access": "rw"},
                    {"allow": true, "type": "c", "major": 116, "minor": 33, "access": "rw"},
                ])
            );
        }),
    );
    let owned = |enabled: bool| {
        with(move |i| {
            i.config.devices = vec![dev("/dev/fuse", "")];
            i.host
                .devices
                .insert("/dev/fuse".into(), vec![char_device("/dev/fuse", 10, 229)]);
            i.sc().run_as_user = Some(Int64Value { value: 1000 });
            i.sc().run_as_group = Some(Int64Value { value: 0 });
            i.options.device_ownership_from_security_context = enabled;
        })
    };
    check(
        owned(true),
        ok(|v| {
            assert_eq!(
                (
                    v["linux"]["devices"][0]["uid"].clone(),
                    v["linux"]["devices"][0]["gid"].clone(),
                    v["linux"]["devices"][0]["path"].clone()
                ),
                (json!(1000), json!(0), json!("/dev/fuse"))
            )
        }),
    );
    check(
        owned(false),
        ok(|v| assert_eq!(v["linux"]["devices"][0]["uid"], 0)),
    );
    check(
        with(|i| i.config.devices = vec![dev("/dev/none", "/dev/none")]),
        err("LookupDevice"),
    );
}

fn privileged(i: &mut Input) {
    i.sc().privileged = true;
    i.sandbox_sc().privileged = true;
}

#[test]
fn privileged_containers() {
    check(
        with(|i| i.sc().privileged = true),
        err("PrivilegedNotAllowed"),
    );
    check(
        with(|i| {
            privileged(i);
            i.sc().masked_paths = vec!["/proc/kcore".into()];
            i.sc().seccomp = profile(ProfileType::RuntimeDefault, "");
            i.options.enable_selinux = true;
        }),
        ok_with(|v, labeled, _| {
            assert_eq!(
                set(&v["process"]["capabilities"]["bounding"]).len(),
                crate::testutil::ALL_CAPS.len()
            );
            assert_eq!(v["linux"].get("maskedPaths"), None);
            assert_eq!(v["linux"].get("seccomp"), None);
            assert_eq!(v["process"].get("apparmorProfile"), None);
            assert_eq!(v["process"].get("selinuxLabel"), None);
            assert_eq!(
                v["linux"]["mountLabel"],
                "system_u:object_r:container_file_t:s0:c1,c2"
            );
            assert_eq!(
                labeled.process_label,
                "system_u:system_r:container_t:s0:c1,c2"
            );
            assert_eq!(
                mount_at(v, "/sys")["options"],
                json!(["nosuid", "noexec", "nodev", "rw"])
            );
            assert_eq!(mount_at(v, "/sys/fs/cgroup")["options"][4], "rw");
            assert_eq!(v["linux"]["devices"].as_array().map(Vec::len), Some(2));
            assert_eq!(
                v["linux"]["resources"]["devices"],
                json!([{"allow": true, "access": "rwm"}])
            );
            assert_eq!(v["linux"]["namespaces"].as_array().map(Vec::len), Some(5));
        }),
    );
    check(
        with(|i| {
            privileged(i);
            i.options.privileged_without_host_devices = true;
        }),
        ok(|v| {
            assert_eq!(v["linux"].get("devices"), None);
            assert_eq!(
                v["linux"]["resources"]["devices"],
                json!([{"allow": false, "access": "rwm"}])
            );
        }),
    );
    check(
        with(|i| {
            privileged(i);
            i.options.privileged_without_host_devices = true;
            i.options
                .privileged_without_host_devices_all_devices_allowed = true;
        }),
        ok(|v| {
            assert_eq!(v["linux"].get("devices"), None);
            assert_eq!(
                v["linux"]["resources"]["devices"],
                json!([{"allow": true, "access": "rwm"}])
            );
        }),
    );
}

// ---- resources and cgroups ----

#[test]
fn resources() {
    check(
        with(|i| {
            *i.resources() = LinuxContainerResources {
                cpu_period: 100000,
                cpu_quota: 50000,
                cpu_shares: 512,
                memory_limit_in_bytes: 1 << 30,
                cpuset_cpus: "0-1".into(),
                cpuset_mems: "0".into(),
                unified: HashMap::from([("memory.high".to_owned(), "900M".to_owned())]),
                ..Default::default()
            }
        }),
        ok(|v| {
            let r = &v["linux"]["resources"];
            assert_eq!(
                r["cpu"],
                json!({"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"})
            );
            assert_eq!(
                r["memory"],
                json!({"limit": 1073741824, "swap": 1073741824})
            );
            assert_eq!(r["unified"], json!({"memory.high": "900M"}));
        }),
    );
    check(
        with(|i| {
            i.resources().memory_limit_in_bytes = 100;
            i.resources().memory_swap_limit_in_bytes = 300;
        }),
        ok(|v| {
            assert_eq!(
                v["linux"]["resources"]["memory"],
                json!({"limit": 100, "swap": 300})
            )
        }),
    );
    check(
        with(|i| {
            i.resources().memory_limit_in_bytes = 100;
            i.host.swap = false;
        }),
        ok(|v| assert_eq!(v["linux"]["resources"]["memory"], json!({"limit": 100}))),
    );
    check(
        with(|i| *i.resources() = Default::default()),
        ok(|v| {
            assert_eq!(v["linux"]["resources"]["cpu"], json!({}));
            assert_eq!(v["linux"]["resources"]["memory"], json!({}));
        }),
    );
}

#[test]
fn hugepages() {
    let huge = |i: &mut Input| {
        i.resources().hugepage_limits = vec![HugepageLimit {
            page_size: "2MB".into(),
            limit: 1 << 21,
        }];
        i.options.disable_hugetlb_controller = false;
    };
    check(
        with(huge),
        ok(|v| {
            assert_eq!(
                v["linux"]["resources"]["hugepageLimits"],
                json!([{"pageSize": "2MB", "limit": 2097152}])
            )
        }),
    );
    check(
        with(|i| {
            huge(i);
            i.host.hugetlb = false;
        }),
        ok(|v| assert_eq!(v["linux"]["resources"].get("hugepageLimits"), None)),
    );
    check(
        with(|i| {
            huge(i);
            i.host.hugetlb = false;
            i.options.tolerate_missing_hugetlb_controller = false;
        }),
        err("HugetlbControllerMissing"),
    );
    check(
        with(|i| {
            huge(i);
            i.options.disable_hugetlb_controller = true;
        }),
        ok(|v| assert_eq!(v["linux"]["resources"].get("hugepageLimits"), None)),
    );
    check(
        with(|i| {
            huge(i);
            i.resources().hugepage_limits[0].limit = u64::MAX;
        }),
        err("HugepageLimitOutOfRange"),
    );
}

#[test]
fn cgroups_paths() {
    check(
        input(),
        ok(|v| {
            assert_eq!(
                v["linux"]["cgroupsPath"],
                "/kubepods/besteffort/poduid-1/c1"
            )
        }),
    );
    check(
        with(|i| {
            i.sandbox.linux.as_mut().expect("linux").cgroup_parent =
                "kubepods-besteffort-poduid_1.slice".into()
        }),
        ok(|v| {
            assert_eq!(
                v["linux"]["cgroupsPath"],
                "kubepods-besteffort-poduid_1.slice:cri-containerd:c1"
            )
        }),
    );
    check(
        with(|i| {
            i.sandbox
                .linux
                .as_mut()
                .expect("linux")
                .cgroup_parent
                .clear()
        }),
        ok(|v| assert_eq!(v["linux"]["cgroupsPath"], "/k8s.io/c1")),
    );
    check(
        with(|i| {
            i.options.disable_cgroup = true;
            i.resources().cpu_shares = 10;
        }),
        ok(|v| {
            assert_eq!(v["linux"].get("cgroupsPath"), None);
            assert_eq!(v["linux"]["resources"].get("cpu"), None);
        }),
    );
}

// ---- security profiles ----

#[test]
fn seccomp_profiles() {
    let seccomp = |v: &Value| v["linux"].get("seccomp").cloned();
    check(input(), ok(move |v| assert_eq!(seccomp(v), None)));
    check(
        with(|i| i.sc().seccomp = profile(ProfileType::RuntimeDefault, "")),
        ok(|v| {
            assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
            assert_eq!(
                v["linux"]["seccomp"]["architectures"],
                json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
            );
        }),
    );
    check(
        with(|i| i.sc().seccomp = profile(ProfileType::Unconfined, "")),
        ok(move |v| assert_eq!(seccomp(v), None)),
    );
    let local = |i: &mut Input| {
        i.sc().seccomp = profile(ProfileType::Localhost, "/etc/seccomp/p.json");
        i.host.files.insert(
            "/etc/seccomp/p.json".into(),
            br#"{"defaultAction":"SCMP_ACT_LOG"}"#.to_vec(),
        );
    };
    check(
        with(local),
        ok(|v| {
            assert_eq!(
                v["linux"]["seccomp"],
                json!({"defaultAction": "SCMP_ACT_LOG"})
            )
        }),
    );
    check(
        with(|i| i.sc().seccomp = profile(ProfileType::Localhost, "/nope.json")),
        err("ReadSeccompProfile"),
    );
    check(
        with(|i| {
            local(i);
            i.host
                .files
                .insert("/etc/seccomp/p.json".into(), b"{not json".to_vec());
        }),
        err("DecodeSeccompProfile"),
    );
    #[allow(deprecated)]
    let deprecated = |path: &'static str| with(move |i| i.sc().seccomp_profile_path = path.into());
    check(
        deprecated("runtime/default"),
        ok(|v| assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO")),
    );
    check(
        deprecated("unconfined"),
        ok(move |v| assert_eq!(seccomp(v), None)),
    );
    check(deprecated("bogus"), err("InvalidSecurityProfile"));
    check(
        with(|i| i.options.unset_seccomp_profile = "runtime/default".into()),
        ok(|v| assert_eq!(v["linux"]["seccomp"]["defaultErrnoRet"], 1)),
    );
    check(
        with(|i| i.sc().seccomp = profile(ProfileType::RuntimeDefault, "/x")),
        err("SeccompLocalhostRef"),
    );
    check(
        with(|i| i.sc().seccomp = profile(ProfileType::Localhost, "")),
        err("ReadSeccompProfile"),
    );
    check(
        with(|i| {
            i.sc().seccomp = Some(SecurityProfile {
                profile_type: 9,
                localhost_ref: String::new(),
            })
        }),
        err("UnknownSeccompProfileType"),
    );
    check(
        with(|i| {
            i.sc().seccomp = profile(ProfileType::RuntimeDefault, "");
            i.host.seccomp = false;
        }),
        err("SeccompUnsupported"),
    );
    check(
        with(|i| {
            i.sc().seccomp = profile(ProfileType::Unconfined, "");
            i.host.seccomp = false;
        }),
        ok(move |v| assert_eq!(seccomp(v), None)),
    );
}

#[test]
fn apparmor_profiles() {
    let aa = |v: &Value| v["process"].get("apparmorProfile").cloned();
    check(
        input(),
        ok(move |v| assert_eq!(aa(v), Some(json!("cri-containerd.apparmor.d")))),
    );
    check(
        with(|i| i.sc().apparmor = profile(ProfileType::Unconfined, "")),
        ok(move |v| assert_eq!(aa(v), None)),
    );
    check(
        with(|i| i.sc().apparmor = profile(ProfileType::Localhost, "my-profile")),
        ok(move |v| assert_eq!(aa(v), Some(json!("my-profile")))),
    );
    check(
        with(|i| i.sc().apparmor = profile(ProfileType::Localhost, "localhost/my-profile")),
        ok(move |v| assert_eq!(aa(v), Some(json!("my-profile")))),
    );
    check(
        with(|i| i.sc().apparmor = profile(ProfileType::Localhost, "other")),
        err("AppArmorProfileNotFound"),
    );
    check(
        with(|i| i.sc().apparmor = profile(ProfileType::Localhost, "")),
        err("EmptyAppArmorProfile"),
    );
    check(
        with(|i| i.sc().apparmor = profile(ProfileType::Unconfined, "x")),
        err("AppArmorLocalhostRef"),
    );
    check(
        with(|i| {
            i.sc().apparmor = Some(SecurityProfile {
                profile_type: 7,
                localhost_ref: String::new(),
            })
        }),
        err("UnknownAppArmorProfileType"),
    );
    #[allow(deprecated)]
    check(
        with(|i| i.sc().apparmor_profile = "localhost/my-profile".into()),
        ok(move |v| assert_eq!(aa(v), Some(json!("my-profile")))),
    );
    check(
        with(|i| i.options.disable_apparmor = true),
        ok(move |v| assert_eq!(aa(v), None)),
    );
    check(
        with(|i| i.host.apparmor = false),
        ok(move |v| assert_eq!(aa(v), None)),
    );
    check(
        with(|i| {
            i.host.apparmor = false;
            i.sc().apparmor = profile(ProfileType::Localhost, "my-profile");
        }),
        err("AppArmorUnsupported"),
    );
    check(with(privileged), ok(move |v| assert_eq!(aa(v), None)));
}

#[test]
fn selinux_labels() {
    let labels = |v: &Value| {
        (
            v["process"].get("selinuxLabel").cloned(),
            v["linux"].get("mountLabel").cloned(),
        )
    };
    check(
        with(|i| {
            i.sc().selinux_options = Some(SeLinuxOption {
                r#type: "spc_t".into(),
                ..Default::default()
            })
        }),
        ok(move |v| assert_eq!(labels(v), (None, None))),
    );
    check(
        with(|i| {
            i.options.enable_selinux = true;
            i.sc().selinux_options = Some(SeLinuxOption {
                level: "s0:c4,c5".into(),
                ..Default::default()
            });
            i.config.mounts = vec![CriMount {
                selinux_relabel: true,
                ..cri_mount("/data", "/host/data")
            }];
        }),
        ok_with(move |v, _, i| {
            assert_eq!(
                labels(v),
                (
                    Some(json!("system_u:system_r:container_t:s0:c4,c5")),
                    Some(json!("system_u:object_r:container_file_t:s0:c4,c5"))
                )
            );
            let relabeled: Vec<String> = i
                .selinux
                .relabeled()
                .into_iter()
                .map(|(p, _)| p.display().to_string())
                .collect();
            assert_eq!(
                relabeled,
                [
                    "/host/data",
                    "/var/lib/cri/sandboxes/s1/hostname",
                    "/var/lib/cri/sandboxes/s1/hosts",
                    "/var/lib/cri/sandboxes/s1/resolv.conf",
                    "/run/cri/sandboxes/s1/shm"
                ]
            );
        }),
    );
    check(
        with(|i| {
            i.options.enable_selinux = true;
            i.sandbox_label = "system_u:system_r:container_t:s0:c7,c8".into();
        }),
        ok(move |v| {
            assert_eq!(
                labels(v).0,
                Some(json!("system_u:system_r:container_t:s0:c7,c8"))
            )
        }),
    );
    check(
        with(|i| {
            i.sc().selinux_options = Some(SeLinuxOption {
                level: "bad".into(),
                ..Default::default()
            })
        }),
        err("InvalidSelinuxLevel"),
    );
    check(
        with(|i| {
            i.options.enable_selinux = true;
            i.image = image(json!({}));
        }),
        err("NoCommand"),
    );
    let failed = with(|i| {
        i.options.enable_selinux = true;
        i.image = image(json!({}));
    });
    assert!(run(&failed).is_err());
    assert_eq!(
        failed.selinux.released(),
        vec!["system_u:system_r:container_t:s0:c1,c2".to_owned()]
    );
}

// ---- annotations, classes, base spec ----

#[test]
fn annotations() {
    check(
        with(|i| {
            i.sandbox.annotations = HashMap::from([
                ("io.kata.x".to_owned(), "1".to_owned()),
                ("other".to_owned(), "2".to_owned()),
            ]);
            i.config.annotations = HashMap::from([("ctr.io/a".to_owned(), "3".to_owned())]);
            i.options.pod_annotations = vec!["io.kata.*".into()];
            i.options.container_annotations = vec!["ctr.io/*".into()];
        }),
        ok(|v| {
            assert_eq!(
                v["annotations"],
                json!({
                    "io.kata.x": "1", "ctr.io/a": "3",
                    "io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "s1",
                    "io.kubernetes.cri.sandbox-namespace": "ns", "io.kubernetes.cri.sandbox-uid": "uid-1",
                    "io.kubernetes.cri.sandbox-name": "pod", "io.kubernetes.cri.container-name": "app",
                    "io.kubernetes.cri.image-name": "docker.io/library/app:1",
                })
            );
        }),
    );
    check(
        with(|i| i.options.annotate_runtime_handler = true),
        ok(|v| {
            assert_eq!(
                v["annotations"]["io.containerd.cri.runtime-handler"],
                "runc"
            )
        }),
    );
}

#[test]
fn blockio_and_rdt_classes() {
    let blockio = oci_spec::runtime::LinuxBlockIoBuilder::default()
        .weight(300u16)
        .build()
        .expect("blockio");
    let classes = BTreeMap::from([("gold".to_owned(), blockio)]);
    let c = classes.clone();
    check(
        with(move |i| {
            i.options.blockio_classes = Some(c);
            i.sandbox.annotations = HashMap::from([(
                "blockio.resources.beta.kubernetes.io/container.app".to_owned(),
                "gold".to_owned(),
            )]);
        }),
        ok(|v| assert_eq!(v["linux"]["resources"]["blockIO"], json!({"weight": 300}))),
    );
    let ann = |key: &'static str, class: &'static str| {
        with(move |i| i.config.annotations = HashMap::from([(key.to_owned(), class.to_owned())]))
    };
    check(
        ann("io.kubernetes.cri.blockio-class", "gold"),
        err("BlockIoDisabled"),
    );
    check(
        with(|i| {
            *i = ann("io.kubernetes.cri.blockio-class", "gold");
            i.options.ignore_blockio_not_enabled_errors = true;
        }),
        ok(|v| assert_eq!(v["linux"]["resources"].get("blockIO"), None)),
    );
    check(
        with(move |i| {
            *i = ann("io.kubernetes.cri.blockio-class", "silver");
            i.options.blockio_classes = Some(classes.clone());
        }),
        err("UnknownBlockIoClass"),
    );
    check(
        with(|i| {
            i.sandbox.annotations = HashMap::from([(
                "rdt.resources.beta.kubernetes.io/pod".to_owned(),
                "fast".to_owned(),
            )]);
            i.options.rdt_classes = Some(BTreeSet::from(["fast".to_owned()]));
        }),
        ok(|v| assert_eq!(v["linux"]["intelRdt"], json!({"closID": "fast"}))),
    );
    check(
        ann("io.kubernetes.cri.rdt-class", "fast"),
        err("RdtDisabled"),
    );
    check(
        with(|i| {
            *i = ann("io.kubernetes.cri.rdt-class", "x");
            i.options.rdt_classes = Some(BTreeSet::new());
        }),
        err("UnknownRdtClass"),
    );
    check(
        with(|i| {
            *i = ann("io.kubernetes.cri.rdt-class", "x");
            i.options.ignore_rdt_not_enabled_errors = true;
        }),
        ok(|v| assert_eq!(v["linux"].get("intelRdt"), None)),
    );
}

#[test]
fn base_runtime_spec() {
    let base: Spec = serde_json::from_value(json!({
        "ociVersion": "1.0.2",
        "process": {"cwd": "/", "user": {"uid": 0, "gid": 0}, "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 4096}]},
        "linux": {"cgroupsPath": "/base", "namespaces": [{"type": "pid"}, {"type": "mount"}], "sysctl": {"net.core.somaxconn": "1024"}},
        "mounts": [{"destination": "/run", "type": "tmpfs", "source": "tmpfs"}],
        "annotations": {"base": "yes"},
    }))
    .expect("base spec");
    check(
        with(|i| {
            i.options.base_runtime_spec = Some(base);
            i.sandbox
                .linux
                .as_mut()
                .expect("linux")
                .cgroup_parent
                .clear();
        }),
        ok(|v| {
            assert_eq!(v["ociVersion"], "1.0.2");
            assert_eq!(
                v["process"]["rlimits"],
                json!([{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 4096}])
            );
            assert_eq!(v["linux"]["cgroupsPath"], "/k8s.io/c1");
            assert_eq!(v["linux"]["sysctl"], json!({"net.core.somaxconn": "1024"}));
            assert_eq!(v["annotations"]["base"], "yes");
            assert_eq!(mount_at(v, "/run"), Value::Null);
            assert_eq!(v["root"]["path"], "rootfs");
        }),
    );
}

// ---- other platforms ----

#[test]
fn windows_and_darwin() {
    check(
        with(|i| {
            i.platform = Platform::new("windows", "amd64");
            i.config.mounts = vec![CriMount {
                readonly: true,
                ..cri_mount("/data", "C:/host/data")
            }];
        }),
        ok(|v| {
            assert_eq!(v.get("root"), None);
            assert_eq!(v["process"]["cwd"], "/srv");
            assert_eq!(v["process"]["args"], json!(["/bin/app", "--serve"]));
            assert_eq!(v["hostname"], "pod-host");
            assert_eq!(
                v["mounts"],
                json!([{"destination": "C:\\data", "source": "C:\\host\\data", "options": ["ro"]}])
            );
            assert_eq!(
                v["annotations"]["microsoft.com/hostprocess-container"],
                "false"
            );
            assert_eq!(v["annotations"]["io.kubernetes.cri.container-name"], "app");
        }),
    );
    check(
        with(|i| {
            i.platform = Platform::new("windows", "amd64");
            i.config.windows = Some(cri_api::v1::WindowsContainerConfig {
                security_context: Some(cri_api::v1::WindowsContainerSecurityContext {
                    host_process: true,
                    ..Default::default()
                }),
                ..Default::default()
            });
        }),
        err("HostProcessMismatch"),
    );
    check(
        with(|i| {
            i.platform = Platform::new("darwin", "arm64");
            i.config.mounts = vec![cri_mount("/data", "/Users/me/data")];
        }),
        ok(|v| {
            assert_eq!(v["root"], json!({"path": ""}));
            assert_eq!(
                v["mounts"],
                json!([{"destination": "/data", "type": "bind", "source": "/Users/me/data", "options": ["rw"]}])
            );
            assert_eq!(v.get("linux"), None);
        }),
    );
    check(
        with(|i| i.platform = Platform::new("plan9", "amd64")),
        err("UnsupportedPlatform"),
    );
}

#[test]
fn hostname_is_read_only_when_needed() {
    let mut host = crate::host::MockHostOs::new();
    host.expect_hostname().times(0);
    host.expect_path_exists().returning(|_| Ok(true));
    host.expect_create_dir_all().times(0);
    host.expect_resolve_symlinks()
        .returning(|p| Ok(p.to_path_buf()));
    host.expect_cgroup_v2().return_const(true);
    host.expect_swap_controller_available().return_const(true);
    host.expect_apparmor_supported().return_const(false);
    host.expect_seccomp_supported().return_const(true);
    let i = input();
    let (id, sandbox_id) = (ContainerId::from("c1"), SandboxId::from("s1"));
    let inputs = ContainerInputs {
        id: &id,
        sandbox_id: &sandbox_id,
        sandbox_pid: 42,
        sandbox_config: &i.sandbox,
        image_config: &i.image,
        image_name: &i.image_name,
        runtime_handler: "runc",
        options: &i.options,
        sandbox_files: &i.files,
    };
    let spec = ContainerSpecBuilder::new(
        &i.config,
        inputs,
        SpecHost {
            os: &host,
            users: &i.users,
            selinux: &i.selinux,
        },
    )
    .with_platform(i.platform.clone())
    .build();
    assert!(spec.is_ok(), "{spec:?}");
}
