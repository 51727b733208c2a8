//! containerd's Content service: blob info, labels, reads, and the
//! Write bidi-stream protocol (stat, write chunks, commit).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::traced::TracedChannel;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::{
    AbortRequest, DeleteContentRequest, InfoRequest, ListContentRequest, ReadContentRequest,
    UpdateRequest, WriteAction, WriteContentRequest, WriteContentResponse,
};
use cri_api::containerd::{ContainerdError, Content, ContentInfo, Descriptor, Result};
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::Streaming;
use tonic::{Code, Status};

use super::convert::{content_info_from_proto, content_info_to_proto, field_mask};
use super::{ContainerdClient, Deadline, MAX_MESSAGE_SIZE};

/// The most data one Write message carries, well under the message limit.
const WRITE_CHUNK: usize = 1 << 20;
/// Write messages sent before the reply to the first is read.
const WRITES_IN_FLIGHT: usize = 3;
/// Backoff bounds while another writer holds the ingest's lock.
const LOCK_RETRY_FIRST: Duration = Duration::from_millis(16);
const LOCK_RETRY_MAX: Duration = Duration::from_secs(2);

/// [`Content`] over containerd's gRPC API.
#[derive(Clone, Debug)]
pub struct ContainerdContent {
    client: ContainerdClient,
}

impl ContainerdContent {
    pub fn new(client: ContainerdClient) -> Self {
        Self { client }
    }

    fn api(&self) -> ContentClient<TracedChannel> {
        ContentClient::new(self.client.channel())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }

    /// Opens a write session on `reference` and stats it. containerd
    /// answers AlreadyExists here when the blob is present. The outer
    /// error is a lease that cannot be sent.
    async fn open_writer(
        &self,
        reference: &str,
        expected: &Descriptor,
        lease: Option<&str>,
    ) -> Result<std::result::Result<WriteSession, Status>> {
        let (tx, rx) = mpsc::channel(2);
        let request = self.client.leased_request(
            OP_WRITE,
            ReceiverStream::new(rx),
            lease,
            Deadline::Unbounded,
        )?;
        let stat = WriteContentRequest {
            action: WriteAction::Stat as i32,
            r#ref: reference.to_owned(),
            total: expected.size,
            expected: expected.digest.clone(),
            ..Default::default()
        };
        // Queue the first message before the call: containerd sends its
        // response headers only with its first reply. The receiver is
        // alive, so this cannot fail.
        if tx.send(stat).await.is_err() {
            return Ok(Err(Status::internal("write request queue closed")));
        }
        let responses = match self.api().write(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => return Ok(Err(status)),
        };
        let mut session = WriteSession {
            tx: Some(tx),
            responses,
            offset: 0,
        };
        Ok(session.receive().await.map(|_| session))
    }

    /// Drops the ingest `reference` after a failed write; best effort.
    async fn abort(&self, reference: &str) {
        let request = AbortRequest {
            r#ref: reference.to_owned(),
        };
        if let Err(status) = self
            .api()
            .abort(self.client.request(request, Deadline::Default))
            .await
        {
            tracing::debug!(
                reference,
                code = ?status.code(),
                message = status.message(),
                "abort content write failed"
            );
        }
    }

    async fn write_and_commit(
        &self,
        session: &mut WriteSession,
        reference: &str,
        expected: &Descriptor,
        labels: HashMap<String, String>,
        mut data: BoxStream<'static, std::io::Result<Bytes>>,
    ) -> Result<()> {
        let rpc_error = |s: Status| self.client.error(OP_WRITE, reference, &s);
        let short_write = |message: String| ContainerdError::Decode {
            op: OP_WRITE,
            message: format!("{reference}: {message}"),
        };
        // Writes are pipelined: up to WRITES_IN_FLIGHT chunks are sent
        // before the reply to the first is read, so containerd writes one
        // chunk while the next is on its way. Each reply must account for
        // its chunk.
        let mut in_flight: VecDeque<i64> = VecDeque::with_capacity(WRITES_IN_FLIGHT);
        while let Some(item) = data.next().await {
            let mut bytes = item.map_err(|e| ContainerdError::Rpc {
                op: OP_WRITE,
                code: Code::Aborted,
                message: format!("reading the data for {reference}: {e}"),
            })?;
            while !bytes.is_empty() {
                let chunk = if bytes.len() > WRITE_CHUNK {
                    bytes.split_to(WRITE_CHUNK)
                } else {
                    std::mem::take(&mut bytes)
                };
                if in_flight.len() >= WRITES_IN_FLIGHT {
                    if let Some(want) = in_flight.pop_front() {
                        session
                            .acknowledged(want)
                            .await
                            .map_err(rpc_error)?
                            .map_err(short_write)?;
                    }
                }
                in_flight.push_back(session.send_write(chunk).await.map_err(rpc_error)?);
            }
        }
        while let Some(want) = in_flight.pop_front() {
            session
                .acknowledged(want)
                .await
                .map_err(rpc_error)?
                .map_err(short_write)?;
        }
        let committed = session.commit(expected, labels).await.map_err(rpc_error)?;
        check_commit(&committed, expected).map_err(|message| ContainerdError::Decode {
            op: OP_WRITE,
            message: format!("{reference}: {message}"),
        })?;
        session.finish().await.map_err(rpc_error)
    }
}

const OP_WRITE: &str = "write content";

/// One open Write call: requests go out through `tx`, replies come back on
/// `responses`, one reply per request.
struct WriteSession {
    /// `None` once half-closed.
    tx: Option<mpsc::Sender<WriteContentRequest>>,
    responses: Streaming<WriteContentResponse>,
    offset: i64,
}

impl WriteSession {
    async fn receive(&mut self) -> std::result::Result<WriteContentResponse, Status> {
        match self.responses.message().await? {
            Some(reply) => Ok(reply),
            None => Err(Status::unknown("content write stream ended early")),
        }
    }

    /// Queues `request` on the call. When the request side is gone, the
    /// call ended, and its status says why.
    async fn send(&mut self, request: WriteContentRequest) -> std::result::Result<(), Status> {
        let sent = match &self.tx {
            Some(tx) => tx.send(request).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        Err(match self.responses.message().await {
            Err(status) => status,
            Ok(_) => Status::unknown("content write stream closed"),
        })
    }

    /// One request-reply round trip.
    async fn round_trip(
        &mut self,
        request: WriteContentRequest,
    ) -> std::result::Result<WriteContentResponse, Status> {
        self.send(request).await?;
        self.receive().await
    }

    /// Sends `data` to be written at the current offset, without waiting
    /// for the reply; returns the offset that reply must report. A chunk
    /// that owns its whole buffer (what the pull's coalescing makes) moves
    /// into the message without a copy.
    async fn send_write(&mut self, data: Bytes) -> std::result::Result<i64, Status> {
        let len = i64::try_from(data.len()).unwrap_or(i64::MAX);
        self.send(WriteContentRequest {
            action: WriteAction::Write as i32,
            offset: self.offset,
            data: Vec::from(data),
            ..Default::default()
        })
        .await?;
        self.offset = self.offset.saturating_add(len);
        Ok(self.offset)
    }

    /// Reads the reply to the oldest write sent. The inner error is a
    /// reply that does not account for its data (containerd is not at
    /// `want`).
    async fn acknowledged(
        &mut self,
        want: i64,
    ) -> std::result::Result<std::result::Result<(), String>, Status> {
        let reply = self.receive().await?;
        if reply.offset != want {
            return Ok(Err(format!(
                "short write: containerd is at offset {}, want {want}",
                reply.offset
            )));
        }
        Ok(Ok(()))
    }

    async fn commit(
        &mut self,
        expected: &Descriptor,
        labels: HashMap<String, String>,
    ) -> std::result::Result<WriteContentResponse, Status> {
        self.round_trip(WriteContentRequest {
            action: WriteAction::Commit as i32,
            total: expected.size,
            offset: self.offset,
            expected: expected.digest.clone(),
            labels,
            ..Default::default()
        })
        .await
    }

    /// Half-closes the call and waits for containerd to end it.
    async fn finish(&mut self) -> std::result::Result<(), Status> {
        self.tx = None;
        while self.responses.message().await?.is_some() {}
        Ok(())
    }
}

/// Checks containerd's commit reply against what the caller expected.
fn check_commit(
    reply: &WriteContentResponse,
    expected: &Descriptor,
) -> std::result::Result<(), String> {
    if expected.size > 0 && reply.offset != expected.size {
        return Err(format!(
            "committed {} bytes, want {}",
            reply.offset, expected.size
        ));
    }
    if !expected.digest.is_empty() && reply.digest != expected.digest {
        return Err(format!(
            "committed digest {}, want {}",
            reply.digest, expected.digest
        ));
    }
    Ok(())
}

/// Whether containerd refused a write because another writer holds the
/// ingest's lock (`ref ... locked`): it reports that as Unavailable, which
/// here must not read as "containerd is down".
fn is_locked(status: &Status) -> bool {
    status.code() == Code::Unavailable && status.message().contains("locked")
}

#[async_trait]
impl Content for ContainerdContent {
    async fn info(&self, digest: &str) -> Result<ContentInfo> {
        const OP: &str = "content info";
        let request = InfoRequest {
            digest: digest.to_owned(),
        };
        let reply = self
            .api()
            .info(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, digest, &s))?;
        let info = reply
            .into_inner()
            .info
            .ok_or_else(|| ContainerdClient::missing(OP, "info"))?;
        Ok(content_info_from_proto(info))
    }

    async fn list(&self, filters: Vec<String>) -> Result<Vec<ContentInfo>> {
        const OP: &str = "list content";
        let what = filters.join(" or ");
        let request = ListContentRequest { filters };
        let mut stream = self
            .api()
            .list(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, &what, &s))?
            .into_inner();
        let mut infos = Vec::new();
        while let Some(reply) = stream
            .message()
            .await
            .map_err(|s| self.client.error(OP, &what, &s))?
        {
            infos.extend(reply.info.into_iter().map(content_info_from_proto));
        }
        Ok(infos)
    }

    async fn update(&self, info: ContentInfo, fieldpaths: Vec<String>) -> Result<ContentInfo> {
        const OP: &str = "update content";
        let digest = info.digest.clone();
        let request = UpdateRequest {
            info: Some(content_info_to_proto(info)),
            update_mask: field_mask(fieldpaths),
        };
        let reply = self
            .api()
            .update(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, &digest, &s))?;
        let info = reply
            .into_inner()
            .info
            .ok_or_else(|| ContainerdClient::missing(OP, "info"))?;
        Ok(content_info_from_proto(info))
    }

    async fn read(&self, digest: &str, offset: i64, size: i64) -> Result<Bytes> {
        const OP: &str = "read content";
        let request = ReadContentRequest {
            digest: digest.to_owned(),
            offset,
            size,
        };
        let mut stream = self
            .api()
            .read(self.client.request(request, Deadline::Unbounded))
            .await
            .map_err(|s| self.client.error(OP, digest, &s))?
            .into_inner();
        let mut data = BytesMut::new();
        while let Some(reply) = stream
            .message()
            .await
            .map_err(|s| self.client.error(OP, digest, &s))?
        {
            data.extend_from_slice(&reply.data);
        }
        Ok(data.freeze())
    }

    async fn write(
        &self,
        reference: &str,
        expected: Descriptor,
        labels: HashMap<String, String>,
        data: BoxStream<'static, std::io::Result<Bytes>>,
        lease: Option<String>,
    ) -> Result<()> {
        let mut backoff = LOCK_RETRY_FIRST;
        let mut session = loop {
            match self
                .open_writer(reference, &expected, lease.as_deref())
                .await?
            {
                Ok(session) => break session,
                Err(s) if s.code() == Code::AlreadyExists => return Ok(()),
                Err(s) if is_locked(&s) => {
                    tracing::debug!(reference, "content ingest locked, waiting");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(LOCK_RETRY_MAX);
                }
                Err(s) => return Err(self.client.error(OP_WRITE, reference, &s)),
            }
        };
        match self
            .write_and_commit(&mut session, reference, &expected, labels, data)
            .await
        {
            Ok(()) => Ok(()),
            // Someone else committed the same blob meanwhile.
            Err(ContainerdError::AlreadyExists { .. }) => Ok(()),
            Err(e) => {
                drop(session);
                self.abort(reference).await;
                Err(e)
            }
        }
    }

    async fn delete(&self, digest: &str) -> Result<()> {
        const OP: &str = "delete content";
        let request = DeleteContentRequest {
            digest: digest.to_owned(),
        };
        self.api()
            .delete(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, digest, &s))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn reply(offset: i64, digest: &str) -> WriteContentResponse {
        WriteContentResponse {
            offset,
            digest: digest.to_owned(),
            ..Default::default()
        }
    }

    fn descriptor(size: i64, digest: &str) -> Descriptor {
        Descriptor {
            digest: digest.to_owned(),
            size,
            ..Default::default()
        }
    }

    #[test]
    fn commit_checks() {
        assert!(check_commit(&reply(3, "sha256:a"), &descriptor(3, "sha256:a")).is_ok());
        assert!(check_commit(&reply(3, "sha256:a"), &descriptor(0, "")).is_ok());
        assert!(check_commit(&reply(2, "sha256:a"), &descriptor(3, "sha256:a")).is_err());
        assert!(check_commit(&reply(3, "sha256:b"), &descriptor(3, "sha256:a")).is_err());
    }

    #[test]
    fn lock_contention_is_not_unavailability() {
        assert!(is_locked(&Status::unavailable(
            "ref k8s.io/1/layer-sha256:ab locked for 1s (since 2024-01-01): unavailable"
        )));
        assert!(!is_locked(&Status::unavailable("transport error")));
        assert!(!is_locked(&Status::failed_precondition("locked")));
    }
}
