//! Body types of the proxy path. Bodies are never collected: frames pass through as
//! they arrive, so memory stays flat whatever the size of an upload or download.

use crate::error::BoxError;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// What the gateway answers with: a streamed upstream body or one it made itself.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

pub fn full(text: impl Into<Bytes>) -> ProxyBody {
    http_body_util::Full::new(text.into()).map_err(|never| match never {}).boxed()
}

pub fn empty() -> ProxyBody {
    http_body_util::Empty::new().map_err(|never| match never {}).boxed()
}

/// The longest silence a body was allowed, carried as the stream error.
#[derive(Debug, thiserror::Error)]
#[error("no body data for {0:?}")]
pub struct IdleTimeoutError(pub Duration);

/// Fails a body that stays silent for longer than `timeout`, so a stalled peer
/// cannot hold a connection (and its upstream twin) forever.
///
/// Cheap on the fast path: a frame only records the time; the timer is allocated the
/// first time the body has to wait, and pushed back (not re-armed per frame) when it
/// fires before the silence is long enough.
pub struct IdleTimeout<B> {
    inner: B,
    timeout: Duration,
    last_activity: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<B> IdleTimeout<B> {
    pub fn new(inner: B, timeout: Duration) -> Self {
        Self { inner, timeout, last_activity: Instant::now(), sleep: None }
    }
}

impl<B> Body for IdleTimeout<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.last_activity = Instant::now();
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.last_activity + this.timeout;
        let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        loop {
            ready!(sleep.as_mut().poll(cx));
            let deadline = this.last_activity + this.timeout;
            if Instant::now() >= deadline {
                return Poll::Ready(Some(Err(IdleTimeoutError(this.timeout).into())));
            }
            sleep.as_mut().reset(deadline);
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An error of the client's request body (it stalled, or the client went away), kept
/// apart from upstream errors so it is not blamed on the upstream.
#[derive(Debug, thiserror::Error)]
#[error("request body from the client failed")]
pub struct ClientBodyError(#[source] pub BoxError);

/// The request body on its way upstream: tags its errors as the client's and reports
/// when it has been sent completely (or given up), so the wait for the upstream's
/// answer starts only then: a long upload is not a slow upstream.
pub struct RequestBody<B> {
    inner: B,
    sent: Option<tokio::sync::oneshot::Sender<()>>,
}

impl<B: Body> RequestBody<B> {
    /// The body, and what completes once it is sent (None when it is empty already).
    pub fn new(inner: B) -> (Self, Option<tokio::sync::oneshot::Receiver<()>>) {
        if inner.is_end_stream() {
            return (Self { inner, sent: None }, None);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        (Self { inner, sent: Some(tx) }, Some(rx))
    }
}

impl<B> RequestBody<B> {
    fn finished(&mut self) {
        if let Some(sent) = self.sent.take() {
            let _ = sent.send(());
        }
    }
}

impl<B> Drop for RequestBody<B> {
    fn drop(&mut self) {
        self.finished();
    }
}

impl<B> Body for RequestBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match frame {
            Some(Ok(frame)) => {
                if this.inner.is_end_stream() {
                    this.finished();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(err)) => {
                this.finished();
                Poll::Ready(Some(Err(Box::new(ClientBodyError(err.into())))))
            }
            None => {
                this.finished();
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;

    #[tokio::test(start_paused = true)]
    async fn silent_body_fails_after_timeout_and_active_body_does_not() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
        let stream = Box::pin(tokio_stream_from(rx));
        let mut body = IdleTimeout::new(StreamBody::new(stream), Duration::from_secs(10));

        tokio::time::advance(Duration::from_secs(8)).await;
        tx.send(Ok(Frame::data(Bytes::from_static(b"a")))).await.unwrap();
        assert!(body.frame().await.unwrap().is_ok(), "frame within the timeout passes");

        // 8 s after the first frame: 16 s since start, but only 8 s of silence.
        tokio::time::advance(Duration::from_secs(8)).await;
        tx.send(Ok(Frame::data(Bytes::from_static(b"b")))).await.unwrap();
        assert!(body.frame().await.unwrap().is_ok(), "the timer measures silence, not age");

        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.is::<IdleTimeoutError>(), "then silence fails the body: {err}");
    }

    fn tokio_stream_from<T>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures_util::Stream<Item = T> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
