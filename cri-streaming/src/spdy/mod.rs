//! SPDY/3.1 as the Kubernetes streaming protocols use it: frames, header
//! compression and a connection (session) that runs over an upgraded HTTP
//! connection, for the server and for the in-process test client.

pub mod dictionary;
pub mod frame;
pub mod header;
pub mod session;
pub mod stream;

pub use frame::Frame;
pub use header::Headers;
pub use session::{
    IncomingStream, Role, Session, SessionConfig, SpdyReader, SpdyStream, SpdyWriter,
};
