//! Why the shim gave up on a connection.

/// A client sent something the shim cannot rewrite; the connection is
/// closed (the server keeps serving others).
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("malformed HPACK header block on stream {stream_id}: {reason}")]
    Hpack { stream_id: u32, reason: String },
    #[error("malformed {frame} frame on stream {stream_id}: {reason}")]
    Frame {
        frame: &'static str,
        stream_id: u32,
        reason: &'static str,
    },
    #[error("expected CONTINUATION for stream {expected}, got frame type {frame_type:#x} on stream {stream_id}")]
    ExpectedContinuation {
        expected: u32,
        frame_type: u8,
        stream_id: u32,
    },
    #[error("header block of stream {stream_id} exceeds {limit} bytes")]
    HeaderBlockTooLarge { stream_id: u32, limit: usize },
    #[error("PUSH_PROMISE from a client on stream {stream_id}")]
    PushPromiseFromClient { stream_id: u32 },
}

impl From<ShimError> for std::io::Error {
    fn from(e: ShimError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}
