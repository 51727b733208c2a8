//! [`AuthorityShim`]: the [`Rewriter`] around one accepted connection,
//! as the `AsyncRead + AsyncWrite` the server reads from.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::rewrite::Rewriter;

/// One client connection as the server sees it: reads are the client's
/// bytes with every request header block rewritten by a [`Rewriter`];
/// writes go to the client untouched.
///
/// Opaque frame payloads (DATA above all) are read straight into the
/// server's buffer without a copy; only frame headers and header blocks
/// are buffered. A header block the shim cannot decode fails the read, so
/// the server closes this connection; it is logged once.
#[derive(Debug)]
pub struct AuthorityShim<S> {
    inner: S,
    rewriter: Rewriter,
    input: BytesMut,
    output: BytesMut,
    failed: bool,
    logged_rewrite: bool,
}

impl<S> AuthorityShim<S> {
    pub fn new(inner: S) -> AuthorityShim<S> {
        AuthorityShim {
            inner,
            rewriter: Rewriter::new(),
            input: BytesMut::new(),
            output: BytesMut::new(),
            failed: false,
            logged_rewrite: false,
        }
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// How many `:authority` values this connection had replaced.
    pub fn rewritten(&self) -> u64 {
        self.rewriter.rewritten()
    }

    fn drain_output(&mut self, buf: &mut ReadBuf<'_>) {
        let n = buf.remaining().min(self.output.len());
        buf.put_slice(&self.output[..n]);
        self.output.advance(n);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityShim<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "connection closed after a malformed header block",
            )));
        }
        loop {
            if !this.output.is_empty() || buf.remaining() == 0 {
                this.drain_output(buf);
                return Poll::Ready(Ok(()));
            }
            // Read straight into the server's buffer; keep what may pass
            // untouched there and take the rest out for the rewriter.
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            let after = buf.filled().len();
            if after == before {
                return Poll::Ready(Ok(())); // end of stream
            }
            let mut keep = 0;
            if this.input.is_empty() {
                keep = this.rewriter.passthrough_budget().min(after - before);
                this.rewriter.passed_through(keep);
            }
            if before + keep < after {
                this.input.extend_from_slice(&buf.filled()[before + keep..]);
                buf.set_filled(before + keep);
                if let Err(e) = this.rewriter.process(&mut this.input, &mut this.output) {
                    this.failed = true;
                    tracing::warn!(error = %e, "closing client connection: cannot rewrite its HTTP/2 headers");
                    return Poll::Ready(Err(e.into()));
                }
                if !this.logged_rewrite && this.rewriter.rewritten() > 0 {
                    this.logged_rewrite = true;
                    tracing::debug!(
                        authority = ?String::from_utf8_lossy(this.rewriter.last_replaced()),
                        replacement = %String::from_utf8_lossy(crate::REPLACEMENT_AUTHORITY),
                        "client sent an :authority h2 refuses; replacing it on this connection"
                    );
                }
                this.drain_output(buf);
            }
            if buf.filled().len() > before {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityShim<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(feature = "tonic")]
impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected
    for AuthorityShim<S>
{
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
