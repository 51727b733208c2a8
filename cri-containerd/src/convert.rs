//! Conversions between the seam's plain records and containerd's protos,
//! including timestamps (Go's zero time reads as "unset").

use std::time::SystemTime;

use containerd_client::services::v1::container::Runtime as ProtoRuntime;
use containerd_client::services::v1::snapshots::{Info as ProtoSnapshotInfo, Kind as ProtoKind};
use containerd_client::services::v1::{
    Container as ProtoContainer, Image as ProtoImage, Info as ProtoContentInfo,
    Lease as ProtoLease, Plugin as ProtoPlugin, Resource as ProtoResource,
};
use containerd_client::types::v1::{Process as ProtoProcess, Status as ProtoStatus};
use containerd_client::types::{
    Descriptor as ProtoDescriptor, Envelope as ProtoEnvelope, Metric as ProtoMetric,
    Mount as ProtoMount,
};
use cri_api::containerd::{
    ContainerRecord, ContentInfo, Descriptor, Envelope, ImageRecord, Lease, LeaseResource, Mount,
    PluginInfo, RuntimeInfo, SnapshotInfo, SnapshotKind, TaskInfo, TaskMetric, TaskStatus,
};
use prost_types::{FieldMask, Timestamp};

/// Seconds from the Unix epoch back to Go's zero `time.Time`
/// (0001-01-01T00:00:00Z), which containerd sends for "never".
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// A timestamp as containerd sends it; `None` when unset or Go's zero time.
pub(crate) fn from_timestamp(ts: Option<Timestamp>) -> Option<SystemTime> {
    let ts = ts?;
    if ts.seconds <= GO_ZERO_TIME_SECONDS {
        return None;
    }
    SystemTime::try_from(ts).ok()
}

/// A time as containerd expects it; `None` stays unset.
pub(crate) fn to_timestamp(time: Option<SystemTime>) -> Option<Timestamp> {
    time.map(Timestamp::from)
}

/// The field mask of an update (`labels.<key>`, `extensions.<key>`, ...);
/// none when `paths` is empty, which means "replace everything".
pub(crate) fn field_mask(paths: Vec<String>) -> Option<FieldMask> {
    (!paths.is_empty()).then_some(FieldMask { paths })
}

pub(crate) fn descriptor_to_proto(d: Descriptor) -> ProtoDescriptor {
    ProtoDescriptor {
        media_type: d.media_type,
        digest: d.digest,
        size: d.size,
        annotations: d.annotations,
    }
}

pub(crate) fn descriptor_from_proto(d: ProtoDescriptor) -> Descriptor {
    Descriptor {
        media_type: d.media_type,
        digest: d.digest,
        size: d.size,
        annotations: d.annotations,
    }
}

pub(crate) fn mount_to_proto(m: Mount) -> ProtoMount {
    ProtoMount {
        r#type: m.kind,
        source: m.source,
        target: m.target,
        options: m.options,
    }
}

pub(crate) fn mount_from_proto(m: ProtoMount) -> Mount {
    Mount {
        kind: m.r#type,
        source: m.source,
        target: m.target,
        options: m.options,
    }
}

pub(crate) fn mounts_to_proto(mounts: Vec<Mount>) -> Vec<ProtoMount> {
    mounts.into_iter().map(mount_to_proto).collect()
}

pub(crate) fn mounts_from_proto(mounts: Vec<ProtoMount>) -> Vec<Mount> {
    mounts.into_iter().map(mount_from_proto).collect()
}

/// Extensions and Anys pass through untouched: their `type_url`s (e.g.
/// `github.com/containerd/cri/pkg/store/container/Metadata`) and JSON
/// values must survive byte for byte.
pub(crate) fn container_to_proto(c: ContainerRecord) -> ProtoContainer {
    let runtime =
        (!c.runtime.name.is_empty() || c.runtime.options.is_some()).then_some(ProtoRuntime {
            name: c.runtime.name,
            options: c.runtime.options,
        });
    ProtoContainer {
        id: c.id,
        labels: c.labels,
        image: c.image,
        runtime,
        spec: c.spec,
        snapshotter: c.snapshotter,
        snapshot_key: c.snapshot_key,
        created_at: to_timestamp(c.created_at),
        updated_at: to_timestamp(c.updated_at),
        extensions: c.extensions,
        sandbox: c.sandbox,
    }
}

pub(crate) fn container_from_proto(c: ProtoContainer) -> ContainerRecord {
    let runtime = c
        .runtime
        .map(|r| RuntimeInfo {
            name: r.name,
            options: r.options,
        })
        .unwrap_or_default();
    ContainerRecord {
        id: c.id,
        labels: c.labels,
        image: c.image,
        runtime,
        spec: c.spec,
        snapshotter: c.snapshotter,
        snapshot_key: c.snapshot_key,
        extensions: c.extensions,
        sandbox: c.sandbox,
        created_at: from_timestamp(c.created_at),
        updated_at: from_timestamp(c.updated_at),
    }
}

pub(crate) fn image_to_proto(i: ImageRecord) -> ProtoImage {
    ProtoImage {
        name: i.name,
        labels: i.labels,
        target: Some(descriptor_to_proto(i.target)),
        created_at: to_timestamp(i.created_at),
        updated_at: to_timestamp(i.updated_at),
    }
}

pub(crate) fn image_from_proto(i: ProtoImage) -> ImageRecord {
    ImageRecord {
        name: i.name,
        labels: i.labels,
        target: i.target.map(descriptor_from_proto).unwrap_or_default(),
        created_at: from_timestamp(i.created_at),
        updated_at: from_timestamp(i.updated_at),
    }
}

pub(crate) fn content_info_to_proto(i: ContentInfo) -> ProtoContentInfo {
    ProtoContentInfo {
        digest: i.digest,
        size: i.size,
        created_at: to_timestamp(i.created_at),
        updated_at: to_timestamp(i.updated_at),
        labels: i.labels,
    }
}

pub(crate) fn content_info_from_proto(i: ProtoContentInfo) -> ContentInfo {
    ContentInfo {
        digest: i.digest,
        size: i.size,
        labels: i.labels,
        created_at: from_timestamp(i.created_at),
        updated_at: from_timestamp(i.updated_at),
    }
}

pub(crate) fn snapshot_kind_from_proto(kind: i32) -> SnapshotKind {
    match ProtoKind::try_from(kind) {
        Ok(ProtoKind::View) => SnapshotKind::View,
        Ok(ProtoKind::Active) => SnapshotKind::Active,
        Ok(ProtoKind::Committed) => SnapshotKind::Committed,
        Ok(ProtoKind::Unknown) | Err(_) => SnapshotKind::Unknown,
    }
}

pub(crate) fn snapshot_info_from_proto(i: ProtoSnapshotInfo) -> SnapshotInfo {
    SnapshotInfo {
        name: i.name,
        parent: i.parent,
        kind: snapshot_kind_from_proto(i.kind),
        labels: i.labels,
    }
}

pub(crate) fn task_status_from_proto(status: i32) -> TaskStatus {
    match ProtoStatus::try_from(status) {
        Ok(ProtoStatus::Created) => TaskStatus::Created,
        Ok(ProtoStatus::Running) => TaskStatus::Running,
        Ok(ProtoStatus::Stopped) => TaskStatus::Stopped,
        Ok(ProtoStatus::Paused) => TaskStatus::Paused,
        Ok(ProtoStatus::Pausing) => TaskStatus::Pausing,
        Ok(ProtoStatus::Unknown) | Err(_) => TaskStatus::Unknown,
    }
}

pub(crate) fn task_from_proto(p: ProtoProcess) -> TaskInfo {
    TaskInfo {
        id: p.id,
        container_id: p.container_id,
        pid: p.pid,
        status: task_status_from_proto(p.status),
        stdin: p.stdin,
        stdout: p.stdout,
        stderr: p.stderr,
        terminal: p.terminal,
        exit_status: p.exit_status,
        exited_at: from_timestamp(p.exited_at),
    }
}

pub(crate) fn metric_from_proto(m: ProtoMetric) -> TaskMetric {
    TaskMetric {
        id: m.id,
        timestamp: from_timestamp(m.timestamp),
        data: m.data,
    }
}

pub(crate) fn envelope_from_proto(e: ProtoEnvelope) -> Envelope {
    Envelope {
        timestamp: from_timestamp(e.timestamp),
        namespace: e.namespace,
        topic: e.topic,
        event: e.event,
    }
}

pub(crate) fn lease_from_proto(l: ProtoLease) -> Lease {
    Lease {
        id: l.id,
        labels: l.labels,
    }
}

pub(crate) fn lease_resource_to_proto(r: LeaseResource) -> ProtoResource {
    ProtoResource {
        id: r.id,
        r#type: r.kind,
    }
}

pub(crate) fn plugin_from_proto(p: ProtoPlugin) -> PluginInfo {
    PluginInfo {
        kind: p.r#type,
        id: p.id,
        requires: p.requires,
        capabilities: p.capabilities,
        init_error: p.init_err.map(|s| s.message),
        exports: p.exports,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;
    use std::time::{Duration, UNIX_EPOCH};

    use prost_types::Any;

    use super::*;

    fn check_time(ts: Option<Timestamp>, want: Option<SystemTime>) {
        assert_eq!(from_timestamp(ts), want, "{ts:?}");
    }

    #[test]
    fn timestamps() {
        check_time(None, None);
        check_time(
            Some(Timestamp {
                seconds: GO_ZERO_TIME_SECONDS,
                nanos: 0,
            }),
            None,
        );
        check_time(
            Some(Timestamp {
                seconds: 0,
                nanos: 0,
            }),
            Some(UNIX_EPOCH),
        );
        check_time(
            Some(Timestamp {
                seconds: 1_700_000_000,
                nanos: 123_456_789,
            }),
            Some(UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789)),
        );
        let now = SystemTime::now();
        assert_eq!(from_timestamp(to_timestamp(Some(now))), Some(now));
        assert_eq!(to_timestamp(None), None);
    }

    #[test]
    fn field_masks() {
        assert_eq!(field_mask(vec![]), None);
        assert_eq!(
            field_mask(vec!["labels.a".into()]),
            Some(FieldMask {
                paths: vec!["labels.a".into()]
            })
        );
    }

    #[test]
    fn container_round_trip_keeps_extensions_byte_exact() {
        let ext = Any {
            type_url: "github.com/containerd/cri/pkg/store/container/Metadata".into(),
            value: br#"{"Version":"v1","Metadata":{"ID":"abc"}}"#.to_vec(),
        };
        let record = ContainerRecord {
            id: "abc".into(),
            labels: HashMap::from([("io.cri-containerd.kind".into(), "container".into())]),
            image: "docker.io/library/busybox:latest".into(),
            runtime: RuntimeInfo {
                name: "io.containerd.runc.v2".into(),
                options: Some(Any {
                    type_url: "containerd.runc.v1.Options".into(),
                    value: vec![0x3a, 0x01, 0x78],
                }),
            },
            spec: Some(Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".into(),
                value: b"{}".to_vec(),
            }),
            snapshotter: "overlayfs".into(),
            snapshot_key: "abc".into(),
            extensions: HashMap::from([(
                "io.cri-containerd.container.metadata".into(),
                ext.clone(),
            )]),
            sandbox: "sb".into(),
            created_at: Some(UNIX_EPOCH + Duration::from_secs(5)),
            updated_at: None,
        };
        let proto = container_to_proto(record.clone());
        assert_eq!(
            proto.extensions["io.cri-containerd.container.metadata"],
            ext
        );
        assert_eq!(container_from_proto(proto), record);
    }

    #[test]
    fn container_without_runtime_sends_none() {
        let proto = container_to_proto(ContainerRecord::default());
        assert_eq!(proto.runtime, None);
        assert_eq!(container_from_proto(proto), ContainerRecord::default());
    }

    #[test]
    fn image_and_descriptor_round_trip() {
        let image = ImageRecord {
            name: "docker.io/library/busybox:latest".into(),
            labels: HashMap::from([("io.cri-containerd.image".into(), "managed".into())]),
            target: Descriptor {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                digest: "sha256:00".into(),
                size: 42,
                annotations: HashMap::from([("a".into(), "b".into())]),
            },
            created_at: Some(UNIX_EPOCH + Duration::from_secs(1)),
            updated_at: Some(UNIX_EPOCH + Duration::from_secs(2)),
        };
        assert_eq!(image_from_proto(image_to_proto(image.clone())), image);
        let bare = image_from_proto(ProtoImage {
            name: "x".into(),
            ..Default::default()
        });
        assert_eq!(bare.target, Descriptor::default());
    }

    #[test]
    fn mounts_round_trip() {
        let mount = Mount {
            kind: "overlay".into(),
            source: "overlay".into(),
            target: String::new(),
            options: vec!["lowerdir=/a".into(), "upperdir=/b".into()],
        };
        let proto = mount_to_proto(mount.clone());
        assert_eq!(proto.r#type, "overlay");
        assert_eq!(
            mounts_from_proto(mounts_to_proto(vec![mount.clone()])),
            vec![mount]
        );
    }

    #[test]
    fn content_info_round_trip() {
        let info = ContentInfo {
            digest: "sha256:ab".into(),
            size: 3,
            labels: HashMap::from([("containerd.io/gc.ref.content".into(), "sha256:cd".into())]),
            created_at: Some(UNIX_EPOCH),
            updated_at: None,
        };
        assert_eq!(
            content_info_from_proto(content_info_to_proto(info.clone())),
            info
        );
    }

    #[test]
    fn enums() {
        assert_eq!(snapshot_kind_from_proto(1), SnapshotKind::View);
        assert_eq!(snapshot_kind_from_proto(2), SnapshotKind::Active);
        assert_eq!(snapshot_kind_from_proto(3), SnapshotKind::Committed);
        assert_eq!(snapshot_kind_from_proto(99), SnapshotKind::Unknown);
        assert_eq!(task_status_from_proto(1), TaskStatus::Created);
        assert_eq!(task_status_from_proto(2), TaskStatus::Running);
        assert_eq!(task_status_from_proto(3), TaskStatus::Stopped);
        assert_eq!(task_status_from_proto(4), TaskStatus::Paused);
        assert_eq!(task_status_from_proto(5), TaskStatus::Pausing);
        assert_eq!(task_status_from_proto(-1), TaskStatus::Unknown);
    }

    #[test]
    fn task_with_go_zero_exit_time() {
        let task = task_from_proto(ProtoProcess {
            container_id: "c".into(),
            id: "c".into(),
            pid: 7,
            status: ProtoStatus::Running as i32,
            exited_at: Some(Timestamp {
                seconds: GO_ZERO_TIME_SECONDS,
                nanos: 0,
            }),
            ..Default::default()
        });
        assert_eq!(task.status, TaskStatus::Running);
        assert_eq!(task.exited_at, None);
        assert_eq!(task.pid, 7);
    }

    #[test]
    fn plugin_init_error() {
        let plugin = plugin_from_proto(ProtoPlugin {
            r#type: "io.containerd.snapshotter.v1".into(),
            id: "btrfs".into(),
            init_err: Some(containerd_client::google::rpc::Status {
                code: 9,
                message: "not a btrfs filesystem".into(),
                details: vec![],
            }),
            ..Default::default()
        });
        assert_eq!(plugin.kind, "io.containerd.snapshotter.v1");
        assert_eq!(plugin.init_error.as_deref(), Some("not a btrfs filesystem"));
    }

    #[test]
    fn envelope_keeps_the_any() {
        let event = Any {
            type_url: "containerd.events.TaskExit".into(),
            value: vec![0x0a, 0x01, 0x61],
        };
        let envelope = envelope_from_proto(ProtoEnvelope {
            timestamp: Some(Timestamp {
                seconds: 10,
                nanos: 0,
            }),
            namespace: "k8s.io".into(),
            topic: "/tasks/exit".into(),
            event: Some(event.clone()),
        });
        assert_eq!(envelope.event, Some(event));
        assert_eq!(envelope.topic, "/tasks/exit");
        assert_eq!(
            envelope.timestamp,
            Some(UNIX_EPOCH + Duration::from_secs(10))
        );
    }

    #[test]
    fn lease_resources() {
        let proto = lease_resource_to_proto(LeaseResource {
            id: "sha256:ab".into(),
            kind: "content".into(),
        });
        assert_eq!(proto.r#type, "content");
        assert_eq!(proto.id, "sha256:ab");
    }
}
