//! containerd's Events service: the subscription stream, scoped to the
//! client's namespace, and decoding of the event payloads the CRI uses.

use crate::traced::TracedChannel;
use async_trait::async_trait;
use containerd_client::events::{
    ContainerCreate, ContainerDelete, ContainerUpdate, TaskCreate, TaskDelete, TaskExit, TaskOom,
    TaskStart,
};
use containerd_client::services::v1::events_client::EventsClient;
use containerd_client::services::v1::{
    ImageCreate, ImageDelete, ImageUpdate, PublishRequest, SubscribeRequest,
};
use cri_api::containerd::{Any, Envelope, Events, Result};
use futures::stream::BoxStream;
use futures::StreamExt;
use prost::{Message, Name};

use super::convert::envelope_from_proto;
use super::{quote_filter_value, ContainerdClient, Deadline, MAX_MESSAGE_SIZE};

/// [`Events`] over containerd's gRPC API.
#[derive(Clone, Debug)]
pub struct ContainerdEvents {
    client: ContainerdClient,
}

impl ContainerdEvents {
    pub fn new(client: ContainerdClient) -> Self {
        Self { client }
    }

    fn api(&self) -> EventsClient<TracedChannel> {
        EventsClient::new(self.client.channel())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }
}

/// containerd delivers every namespace's events unless asked otherwise.
/// Filters are ORed and a comma ANDs within one, so the namespace goes
/// into each of them.
fn scoped_filters(namespace: &str, filters: Vec<String>) -> Vec<String> {
    let scope = format!("namespace=={}", quote_filter_value(namespace));
    if filters.is_empty() {
        return vec![scope];
    }
    filters
        .into_iter()
        .map(|filter| format!("{scope},{filter}"))
        .collect()
}

#[async_trait]
impl Events for ContainerdEvents {
    /// Only events of the client's namespace are delivered. The stream
    /// ends after its first error (e.g. `Unavailable` when containerd
    /// stops).
    async fn subscribe(
        &self,
        filters: Vec<String>,
    ) -> Result<BoxStream<'static, Result<Envelope>>> {
        const OP: &str = "subscribe to events";
        let filters = scoped_filters(self.client.namespace(), filters);
        let what = filters.join(" or ");
        let request = SubscribeRequest { filters };
        let stream = self
            .api()
            .subscribe(self.client.request(request, Deadline::Unbounded))
            .await
            .map_err(|s| self.client.error(OP, &what, &s))?
            .into_inner();
        let client = self.client.clone();
        // tonic repeats a broken stream's error; deliver it once, then end,
        // so callers resubscribe.
        let mut failed = false;
        Ok(stream
            .take_while(move |item| {
                let more = !failed;
                failed |= item.is_err();
                futures::future::ready(more)
            })
            .map(move |item| {
                item.map(envelope_from_proto)
                    .map_err(|s| client.error(OP, &what, &s))
            })
            .boxed())
    }

    async fn publish(&self, topic: &str, event: Any) -> Result<()> {
        const OP: &str = "publish event";
        let request = PublishRequest {
            topic: topic.to_owned(),
            event: Some(event),
        };
        self.api()
            .publish(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, topic, &s))?;
        Ok(())
    }
}

/// An event payload the CRI acts on, decoded from its `Any`.
#[derive(Clone, Debug, PartialEq)]
pub enum DecodedEvent {
    TaskCreate(TaskCreate),
    TaskStart(TaskStart),
    TaskExit(TaskExit),
    TaskOom(TaskOom),
    TaskDelete(TaskDelete),
    ImageCreate(ImageCreate),
    ImageUpdate(ImageUpdate),
    ImageDelete(ImageDelete),
    ContainerCreate(ContainerCreate),
    ContainerUpdate(ContainerUpdate),
    ContainerDelete(ContainerDelete),
}

/// The message name in a type URL: containerd 1.6 sends
/// `containerd.events.TaskExit`, others `/containerd.events.TaskExit` or
/// `type.googleapis.com/containerd.events.TaskExit`.
fn message_name(type_url: &str) -> &str {
    type_url.rsplit('/').next().unwrap_or(type_url)
}

fn decode_as<T: Message + Default>(any: &Any, wrap: fn(T) -> DecodedEvent) -> Option<DecodedEvent> {
    match T::decode(any.value.as_slice()) {
        Ok(event) => Some(wrap(event)),
        Err(e) => {
            tracing::debug!(type_url = %any.type_url, error = %e, "undecodable containerd event");
            None
        }
    }
}

/// Decodes an event `Any` the CRI acts on; `None` for other events and
/// for payloads that do not decode.
pub fn decode_event(any: &Any) -> Option<DecodedEvent> {
    let name = message_name(&any.type_url);
    let is = |full: String| full == name;
    if is(TaskExit::full_name()) {
        decode_as(any, DecodedEvent::TaskExit)
    } else if is(TaskOom::full_name()) {
        decode_as(any, DecodedEvent::TaskOom)
    } else if is(TaskStart::full_name()) {
        decode_as(any, DecodedEvent::TaskStart)
    } else if is(TaskCreate::full_name()) {
        decode_as(any, DecodedEvent::TaskCreate)
    } else if is(TaskDelete::full_name()) {
        decode_as(any, DecodedEvent::TaskDelete)
    } else if is(ImageCreate::full_name()) {
        decode_as(any, DecodedEvent::ImageCreate)
    } else if is(ImageUpdate::full_name()) {
        decode_as(any, DecodedEvent::ImageUpdate)
    } else if is(ImageDelete::full_name()) {
        decode_as(any, DecodedEvent::ImageDelete)
    } else if is(ContainerCreate::full_name()) {
        decode_as(any, DecodedEvent::ContainerCreate)
    } else if is(ContainerUpdate::full_name()) {
        decode_as(any, DecodedEvent::ContainerUpdate)
    } else if is(ContainerDelete::full_name()) {
        decode_as(any, DecodedEvent::ContainerDelete)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;

    use prost_types::Timestamp;

    use super::*;

    fn any<T: Message>(type_url: &str, message: &T) -> Any {
        Any {
            type_url: type_url.to_owned(),
            value: message.encode_to_vec(),
        }
    }

    fn check(any: Any, want: Option<DecodedEvent>) {
        assert_eq!(decode_event(&any), want, "{}", any.type_url);
    }

    #[test]
    fn task_exit_with_every_type_url_form() {
        let exit = TaskExit {
            container_id: "c1".into(),
            id: "c1".into(),
            pid: 42,
            exit_status: 137,
            exited_at: Some(Timestamp {
                seconds: 1_700_000_000,
                nanos: 5,
            }),
        };
        for url in [
            "containerd.events.TaskExit",
            "/containerd.events.TaskExit",
            "type.googleapis.com/containerd.events.TaskExit",
        ] {
            check(any(url, &exit), Some(DecodedEvent::TaskExit(exit.clone())));
        }
    }

    #[test]
    fn task_events() {
        let oom = TaskOom {
            container_id: "c1".into(),
        };
        check(
            any("containerd.events.TaskOOM", &oom),
            Some(DecodedEvent::TaskOom(oom)),
        );
        let start = TaskStart {
            container_id: "c1".into(),
            pid: 9,
        };
        check(
            any("containerd.events.TaskStart", &start),
            Some(DecodedEvent::TaskStart(start)),
        );
        let create = TaskCreate {
            container_id: "c1".into(),
            pid: 9,
            ..Default::default()
        };
        check(
            any("/containerd.events.TaskCreate", &create),
            Some(DecodedEvent::TaskCreate(create)),
        );
        let delete = TaskDelete {
            container_id: "c1".into(),
            exit_status: 1,
            ..Default::default()
        };
        check(
            any("containerd.events.TaskDelete", &delete),
            Some(DecodedEvent::TaskDelete(delete)),
        );
    }

    #[test]
    fn image_events_live_in_the_images_package() {
        let create = ImageCreate {
            name: "docker.io/library/busybox:latest".into(),
            labels: HashMap::from([("a".into(), "b".into())]),
        };
        check(
            any("containerd.services.images.v1.ImageCreate", &create),
            Some(DecodedEvent::ImageCreate(create)),
        );
        let update = ImageUpdate {
            name: "x".into(),
            labels: HashMap::new(),
        };
        check(
            any("/containerd.services.images.v1.ImageUpdate", &update),
            Some(DecodedEvent::ImageUpdate(update)),
        );
        let delete = ImageDelete { name: "x".into() };
        check(
            any("containerd.services.images.v1.ImageDelete", &delete),
            Some(DecodedEvent::ImageDelete(delete)),
        );
    }

    #[test]
    fn container_events() {
        let create = ContainerCreate {
            id: "c1".into(),
            image: "img".into(),
            runtime: None,
        };
        check(
            any("containerd.events.ContainerCreate", &create),
            Some(DecodedEvent::ContainerCreate(create)),
        );
        let update = ContainerUpdate {
            id: "c1".into(),
            ..Default::default()
        };
        check(
            any("containerd.events.ContainerUpdate", &update),
            Some(DecodedEvent::ContainerUpdate(update)),
        );
        let delete = ContainerDelete { id: "c1".into() };
        check(
            any("containerd.events.ContainerDelete", &delete),
            Some(DecodedEvent::ContainerDelete(delete)),
        );
    }

    #[test]
    fn unknown_or_broken_events() {
        check(
            any("containerd.events.SnapshotPrepare", &TaskOom::default()),
            None,
        );
        check(
            Any {
                type_url: "containerd.events.TaskExit".into(),
                value: vec![0xff, 0xff, 0xff],
            },
            None,
        );
        // A name that merely ends like a known one is not that event.
        check(
            any("containerd.events.XTaskExit", &TaskExit::default()),
            None,
        );
    }

    #[test]
    fn filters_are_scoped_to_the_namespace() {
        assert_eq!(
            scoped_filters("k8s.io", vec![]),
            vec![r#"namespace=="k8s.io""#.to_owned()]
        );
        assert_eq!(
            scoped_filters(
                "k8s.io",
                vec![
                    r#"topic=="/tasks/oom""#.into(),
                    r#"topic~="/images/""#.into()
                ]
            ),
            vec![
                r#"namespace=="k8s.io",topic=="/tasks/oom""#.to_owned(),
                r#"namespace=="k8s.io",topic~="/images/""#.to_owned(),
            ]
        );
    }
}
