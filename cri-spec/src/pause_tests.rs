//! Tests of `PauseSpecBuilder`, one `check(input, expected)` per case.

use std::collections::HashMap;

use cri_api::{
    ids::SandboxId,
    v1::{
        security_profile::ProfileType, Int64Value, LinuxContainerResources, LinuxPodSandboxConfig,
        LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption, PodSandboxConfig,
        PodSandboxMetadata, SeLinuxOption, SecurityProfile,
    },
};
use oci_spec::image::ImageConfiguration;
use serde_json::{json, Value};

use super::*;
use crate::{
    container::tests::{image, mount_at, set, to_json, userns, GROUP, PASSWD},
    testutil::{FakeHost, FakeSelinux, Users},
};

pub(crate) struct Input {
    pub config: PodSandboxConfig,
    pub image: ImageConfiguration,
    pub options: RuntimeOptions,
    pub host: FakeHost,
    pub users: Users,
    pub selinux: FakeSelinux,
    pub netns: Option<&'static str>,
    pub userns_path: Option<&'static str>,
    pub image_name: Option<&'static str>,
}

pub(crate) fn input() -> Input {
    Input {
        config: PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: "pod".into(),
                uid: "uid-1".into(),
                namespace: "ns".into(),
                attempt: 1,
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
        image: image(
            json!({"Entrypoint": ["/pause"], "Env": ["PATH=/bin"], "User": "65535:65535"}),
        ),
        options: RuntimeOptions::default(),
        host: FakeHost::default(),
        users: Users::new(Some(PASSWD), Some(GROUP)),
        selinux: FakeSelinux::default(),
        netns: Some("/var/run/netns/cni-1"),
        userns_path: None,
        image_name: None,
    }
}

impl Input {
    pub(crate) fn sc(&mut self) -> &mut LinuxSandboxSecurityContext {
        self.config
            .linux
            .get_or_insert_with(Default::default)
            .security_context
            .get_or_insert_with(Default::default)
    }
    pub(crate) fn ns(&mut self) -> &mut NamespaceOption {
        self.sc()
            .namespace_options
            .get_or_insert_with(Default::default)
    }
}

pub(crate) fn run(i: &Input) -> Result<LabeledSpec> {
    let id = SandboxId::from("s1");
    let inputs = PauseInputs {
        sandbox_id: &id,
        config: &i.config,
        image_config: &i.image,
        options: &i.options,
        shm: Path::new("/run/cri/sandboxes/s1/shm"),
        resolv_conf: Path::new("/var/lib/cri/sandboxes/s1/resolv.conf"),
    };
    let host = SpecHost {
        os: &i.host,
        users: &i.users,
        selinux: &i.selinux,
    };
    let mut b = PauseSpecBuilder::new(inputs, host).with_platform(Platform::new("linux", "amd64"));
    if let Some(p) = i.netns {
        b = b.with_netns_path(p);
    }
    if let Some(p) = i.userns_path {
        b = b.with_userns_path(p);
    }
    if let Some(n) = i.image_name {
        b = b.with_sandbox_image_name(n);
    }
    b.build_labeled()
}

fn check(input: Input, expected: std::result::Result<fn(&Value, &LabeledSpec), &str>) {
    match (run(&input), expected) {
        (Ok(spec), Ok(f)) => f(&to_json(&spec.spec), &spec),
        (Err(e), Err(variant)) => assert!(
            format!("{e:?}").starts_with(variant),
            "want {variant}, got {e:?}"
        ),
        (Ok(spec), Err(variant)) => panic!("want {variant}, got {}", to_json(&spec.spec)),
        (Err(e), Ok(_)) => panic!("want a spec, got {e:?}"),
    }
}

fn with(f: impl FnOnce(&mut Input)) -> Input {
    let mut i = input();
    f(&mut i);
    i
}

#[test]
fn pause_defaults() {
    check(
        input(),
        Ok(|v, _| {
            assert_eq!(v["root"], json!({"path": "rootfs", "readonly": true}));
            assert_eq!(v["hostname"], "pod-host");
            assert_eq!(v["process"]["args"], json!(["/pause"]));
            assert_eq!(v["process"]["env"], json!(["PATH=/bin"]));
            assert_eq!(v["process"]["cwd"], "/");
            assert_eq!(v["process"]["noNewPrivileges"], true);
            assert_eq!(v["process"]["oomScoreAdj"], -998);
            assert_eq!(
                v["process"]["user"],
                json!({"uid": 65535, "gid": 65535, "additionalGids": [65535]})
            );
            assert_eq!(set(&v["process"]["capabilities"]["bounding"]).len(), 14);
            assert_eq!(v["process"].get("rlimits"), None);
            assert_eq!(v["process"].get("apparmorProfile"), None);
            assert_eq!(
                v["linux"]["cgroupsPath"],
                "/kubepods/besteffort/poduid-1/s1"
            );
            assert_eq!(v["linux"]["resources"]["cpu"], json!({"shares": 2}));
            assert_eq!(
                v["linux"]["namespaces"],
                json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network", "path": "/var/run/netns/cni-1"}])
            );
            assert_eq!(v["linux"]["maskedPaths"].as_array().map(Vec::len), Some(10));
            assert_eq!(
                v["linux"]["readonlyPaths"].as_array().map(Vec::len),
                Some(5)
            );
            assert_eq!(mount_at(v, "/run"), Value::Null);
            assert_eq!(
                mount_at(v, "/dev/shm"),
                json!({"destination": "/dev/shm", "type": "bind", "source": "/run/cri/sandboxes/s1/shm", "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]})
            );
            assert_eq!(
                mount_at(v, "/etc/resolv.conf")["source"],
                "/var/lib/cri/sandboxes/s1/resolv.conf"
            );
            assert_eq!(mount_at(v, "/etc/hostname"), Value::Null);
            assert_eq!(
                v["annotations"],
                json!({
                    "io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-id": "s1",
                    "io.kubernetes.cri.sandbox-namespace": "ns", "io.kubernetes.cri.sandbox-uid": "uid-1",
                    "io.kubernetes.cri.sandbox-name": "pod", "io.kubernetes.cri.sandbox-log-directory": "/var/log/pods/ns_pod_uid-1",
                })
            );
            assert_eq!(v["linux"].get("seccomp"), None);
            assert_eq!(v["linux"].get("sysctl"), None);
        }),
    );
}

#[test]
fn pause_host_namespaces() {
    check(
        with(|i| {
            i.ns().network = NamespaceMode::Node as i32;
            i.ns().pid = NamespaceMode::Node as i32;
            i.ns().ipc = NamespaceMode::Node as i32;
            i.config.hostname = String::new();
            i.options.enable_unprivileged_ports = true;
        }),
        Ok(|v, _| {
            assert_eq!(v["linux"]["namespaces"], json!([{"type": "mount"}]));
            assert_eq!(mount_at(v, "/dev/shm")["source"], "/dev/shm");
            assert_eq!(v.get("hostname"), None);
            assert_eq!(v["linux"].get("sysctl"), None);
        }),
    );
    check(
        with(|i| i.netns = None),
        Ok(|v, _| assert_eq!(v["linux"]["namespaces"][4], json!({"type": "network"}))),
    );
}

#[test]
fn pause_sysctls() {
    check(
        with(|i| {
            i.config.linux.as_mut().expect("linux").sysctls =
                HashMap::from([("kernel.shm_rmid_forced".to_owned(), "1".to_owned())]);
            i.options.enable_unprivileged_ports = true;
            i.options.enable_unprivileged_icmp = true;
        }),
        Ok(|v, _| {
            assert_eq!(
                v["linux"]["sysctl"],
                json!({"kernel.shm_rmid_forced": "1", "net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647"})
            );
        }),
    );
    check(
        with(|i| {
            i.options.enable_unprivileged_icmp = true;
            i.host.userns = true;
        }),
        Ok(|v, _| assert_eq!(v["linux"].get("sysctl"), None)),
    );
}

#[test]
fn pause_oom_cgroups_and_resources() {
    check(
        with(|i| {
            i.options.restrict_oom_score_adj = true;
            i.options.daemon_oom_score_adj = -500;
            i.config.linux.as_mut().expect("linux").resources = Some(LinuxContainerResources {
                cpu_period: 100000,
                cpu_quota: 20000,
                cpu_shares: 204,
                memory_limit_in_bytes: 1 << 28,
                ..Default::default()
            });
            i.config.linux.as_mut().expect("linux").cgroup_parent = "kubepods-pod1.slice".into();
        }),
        Ok(|v, _| {
            assert_eq!(v["process"]["oomScoreAdj"], -500);
            assert_eq!(
                v["linux"]["cgroupsPath"],
                "kubepods-pod1.slice:cri-containerd:s1"
            );
            assert_eq!(
                v["annotations"]["io.kubernetes.cri.sandbox-cpu-period"],
                "100000"
            );
            assert_eq!(
                v["annotations"]["io.kubernetes.cri.sandbox-cpu-quota"],
                "20000"
            );
            assert_eq!(
                v["annotations"]["io.kubernetes.cri.sandbox-cpu-shares"],
                "204"
            );
            assert_eq!(
                v["annotations"]["io.kubernetes.cri.sandbox-memory"],
                "268435456"
            );
        }),
    );
    check(
        with(|i| {
            i.options.disable_cgroup = true;
            i.config
                .linux
                .as_mut()
                .expect("linux")
                .cgroup_parent
                .clear();
        }),
        Ok(|v, _| {
            assert_eq!(v["linux"].get("cgroupsPath"), None);
            assert_eq!(v["linux"]["resources"].get("cpu"), None);
        }),
    );
    check(
        with(|i| {
            i.config
                .linux
                .as_mut()
                .expect("linux")
                .cgroup_parent
                .clear()
        }),
        Ok(|v, _| assert_eq!(v["linux"]["cgroupsPath"], "/k8s.io/s1")),
    );
}

#[test]
fn pause_user_seccomp_selinux() {
    check(
        with(|i| {
            i.sc().run_as_user = Some(Int64Value { value: 33 });
            i.sc().supplemental_groups = vec![5];
        }),
        Ok(|v, _| {
            assert_eq!(
                v["process"]["user"],
                json!({"uid": 33, "gid": 34, "additionalGids": [34]})
            )
        }),
    );
    check(
        with(|i| {
            i.image = image(json!({"Cmd": ["/pause"]}));
            i.sc().supplemental_groups = vec![9, 5];
        }),
        Ok(|v, _| {
            assert_eq!(
                v["process"]["user"],
                json!({"uid": 0, "gid": 0, "additionalGids": [5, 9]})
            )
        }),
    );
    check(
        with(|i| i.sc().run_as_group = Some(Int64Value { value: 1 })),
        Err("GroupWithoutUser"),
    );
    check(
        with(|i| {
            i.sc().seccomp = Some(SecurityProfile {
                profile_type: ProfileType::RuntimeDefault as i32,
                localhost_ref: String::new(),
            })
        }),
        Ok(|v, _| {
            assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
            assert_eq!(
                v["linux"]["seccomp"]["architectures"][0],
                "SCMP_ARCH_X86_64"
            );
        }),
    );
    check(
        with(|i| {
            i.sc().privileged = true;
            i.sc().seccomp = Some(SecurityProfile {
                profile_type: ProfileType::RuntimeDefault as i32,
                localhost_ref: String::new(),
            });
            i.sc().selinux_options = Some(SeLinuxOption {
                level: "s0:c3,c4".into(),
                ..Default::default()
            });
            i.options.enable_selinux = true;
        }),
        Ok(|v, labeled| {
            assert_eq!(v["linux"].get("seccomp"), None);
            assert_eq!(v["process"].get("selinuxLabel"), None);
            assert_eq!(
                v["linux"]["mountLabel"],
                "system_u:object_r:container_file_t:s0:c3,c4"
            );
            assert_eq!(
                labeled.process_label,
                "system_u:system_r:container_t:s0:c3,c4"
            );
        }),
    );
    check(
        with(|i| {
            i.options.enable_selinux = true;
            i.sc().selinux_options = Some(SeLinuxOption {
                r#type: "spc_t".into(),
                ..Default::default()
            });
        }),
        Ok(|v, _| {
            assert_eq!(
                v["process"]["selinuxLabel"],
                "system_u:system_r:spc_t:s0:c1,c2"
            )
        }),
    );
    check(
        with(|i| {
            i.sc().selinux_options = Some(SeLinuxOption {
                level: "x".into(),
                ..Default::default()
            })
        }),
        Err("InvalidSelinuxLevel"),
    );
}

#[test]
fn pause_userns_annotations_and_errors() {
    check(
        with(|i| {
            i.ns().userns_options = Some(userns(100000));
            i.options.enable_unprivileged_icmp = true;
        }),
        Ok(|v, _| {
            assert_eq!(v["linux"]["namespaces"][5], json!({"type": "user"}));
            assert_eq!(
                v["linux"]["uidMappings"],
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}])
            );
            assert_eq!(v["linux"].get("sysctl"), None);
        }),
    );
    check(
        with(|i| {
            i.ns().userns_options = Some(userns(100000));
            i.userns_path = Some("/run/cri/sandboxes/s1/pinned-namespaces/user");
        }),
        Ok(|v, _| {
            assert_eq!(
                v["linux"]["namespaces"][5],
                json!({"type": "user", "path": "/run/cri/sandboxes/s1/pinned-namespaces/user"})
            )
        }),
    );
    check(
        with(|i| {
            i.ns().userns_options = Some(cri_api::v1::UserNamespace {
                mode: NamespaceMode::Node as i32,
                ..Default::default()
            })
        }),
        Ok(|v, _| assert_eq!(v["linux"]["namespaces"].as_array().map(Vec::len), Some(5))),
    );
    check(
        with(|i| {
            i.ns().userns_options = Some(cri_api::v1::UserNamespace {
                mode: NamespaceMode::Pod as i32,
                ..Default::default()
            })
        }),
        Err("UsernsPodWithoutMappings"),
    );
    check(
        with(|i| {
            i.config.annotations = HashMap::from([("io.kata.a".to_owned(), "1".to_owned())]);
            i.options.pod_annotations = vec!["io.kata.*".into()];
            i.image_name = Some("registry.k8s.io/pause:3.10");
        }),
        Ok(|v, _| {
            assert_eq!(v["annotations"]["io.kata.a"], "1");
            assert_eq!(
                v["annotations"]["io.kubernetes.cri.podsandbox.image-name"],
                "registry.k8s.io/pause:3.10"
            );
        }),
    );
    check(
        with(|i| i.image = image(json!({}))),
        Err("PauseWithoutCommand"),
    );
    let linux_only = input();
    let id = SandboxId::from("s1");
    let inputs = PauseInputs {
        sandbox_id: &id,
        config: &linux_only.config,
        image_config: &linux_only.image,
        options: &linux_only.options,
        shm: Path::new("/shm"),
        resolv_conf: Path::new("/resolv.conf"),
    };
    let host = SpecHost {
        os: &linux_only.host,
        users: &linux_only.users,
        selinux: &linux_only.selinux,
    };
    let got = PauseSpecBuilder::new(inputs, host)
        .with_platform(Platform::new("windows", "amd64"))
        .build();
    assert!(matches!(got, Err(Error::UnsupportedPlatform { .. })));
}
