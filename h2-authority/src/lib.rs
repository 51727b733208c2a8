//! Makes any HTTP/2 `:authority` acceptable to an `h2` server (hyper,
//! tonic).
//!
//! gRPC clients on unix sockets send whatever they like as the
//! `:authority` pseudo-header: grpc-go (crictl, critest, older kubelets)
//! and grpc-java send the socket path, Python grpcio sends it
//! percent-encoded, some send an empty value. The `h2` crate parses the
//! value as a URI authority and resets the stream (`PROTOCOL_ERROR`) when
//! it is not one, while containerd's Go server accepts anything.
//!
//! [`AuthorityShim`] wraps each accepted connection below `h2`: it reads
//! the client's frames, decodes every request header block (HEADERS plus
//! CONTINUATION) with its own HPACK decoder that follows the client's
//! encoder, replaces an `:authority` that `h2` would refuse with
//! `localhost`, and re-encodes the block for `h2` without touching `h2`'s
//! dynamic table (static-table references and literals without indexing;
//! never-indexed fields stay never-indexed). Every other frame, and the
//! whole server-to-client direction, passes through byte for byte, so
//! flow control, streaming, trailers and settings are `h2`'s alone.

mod error;
mod frame;
mod rewrite;
mod stream;

pub use error::ShimError;
pub use rewrite::{Rewriter, REPLACEMENT_AUTHORITY};
pub use stream::AuthorityShim;
