//! What outlives its request ends with its session: a WebSocket tunnel, or a streamed
//! response such as server-sent events, opened with a session is closed when that
//! session ends (logout, back-channel logout, revocation, expiry), on whichever replica
//! ended it, not at the drain deadline.
//!
//! A watcher task per such connection asks the store every [`CHECK_EVERY`] whether the
//! session has ended (an in-memory lookup, except for a Redis-store record not cached
//! here) and sleeps no longer than until the session's own end. A store that cannot
//! answer ends nothing. The watcher is aborted with the connection.

use super::session::Session;
use super::{Auth, now_secs};
use crate::error::BoxError;
use crate::proxy::body::ProxyBody;
use bytes::Bytes;
use http_body::{Body, Frame};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a connection may outlive its session, at most (plus one store read).
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Completes once the session it watches has ended.
pub struct SessionEnd {
    ended: oneshot::Receiver<()>,
    watcher: JoinHandle<()>,
}

impl SessionEnd {
    pub fn watch(auth: Arc<Auth>, session: Arc<Session>) -> Self {
        let (tell, ended) = oneshot::channel();
        let watcher = tokio::spawn(async move {
            loop {
                let left = Duration::from_secs(session.expires_at.saturating_sub(now_secs()));
                tokio::time::sleep(CHECK_EVERY.min(left)).await;
                if auth.store.has_ended(&session, &auth.sealing(), now_secs()).await {
                    let _ = tell.send(());
                    return;
                }
            }
        });
        Self { ended, watcher }
    }
}

impl Future for SessionEnd {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match Pin::new(&mut self.ended).poll(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(()),
            // The watcher is gone without an answer (aborted): nothing will end it.
            Poll::Ready(Err(_)) | Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for SessionEnd {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// A response body that ends when its session does.
pub struct EndsWithSession {
    body: ProxyBody,
    end: SessionEnd,
    request_id: String,
}

impl EndsWithSession {
    pub fn new(body: ProxyBody, end: SessionEnd, request_id: &str) -> Self {
        Self { body, end, request_id: request_id.to_owned() }
    }
}

impl Body for EndsWithSession {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if Pin::new(&mut self.end).poll(cx).is_ready() {
            tracing::info!(request_id = self.request_id, "streamed response closed: its session ended");
            return Poll::Ready(None);
        }
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
