//! Protocol upgrades (WebSocket): once both sides have switched protocols, the two
//! connections are joined and bytes are copied both ways until either side closes, the
//! tunnel has been silent for `upstream.websocket_idle_timeout`, the session it was
//! opened with ends (`auth/session_end.rs`), or the gateway's drain deadline passes. An open tunnel counts as in flight for the drain.
//!
//! The tunnel copies bytes and parses no frames, so any byte in either direction counts
//! as activity (WebSocket pings and pongs included). Reads only record the time; one
//! timer sleeps until the deadline that time gives and is pushed back when it fires
//! early, so a busy tunnel does not touch the timer per read.

use crate::shutdown::ShutdownSignals;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

pub fn tunnel(
    client: OnUpgrade,
    upstream: OnUpgrade,
    request_id: String,
    mut shutdown: ShutdownSignals,
    idle_timeout: Duration,
    close_when: Option<super::CloseWhen>,
) {
    let open = shutdown.tunnel_opened();
    tokio::spawn(async move {
        let _open = open;
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(err) => {
                tracing::warn!(request_id, error = %err, "upgrade failed");
                return;
            }
        };
        let activity = Activity::new();
        let mut client = Watched { io: TokioIo::new(client), activity: &activity };
        let mut upstream = Watched { io: TokioIo::new(upstream), activity: &activity };
        tokio::select! {
            result = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match result {
                Ok((sent, received)) => tracing::debug!(request_id, sent, received, "upgraded connection closed"),
                Err(err) => tracing::debug!(request_id, error = %err, "upgraded connection ended with an error"),
            },
            () = activity.silent_for(idle_timeout) => {
                tracing::info!(request_id, ?idle_timeout, "upgraded connection closed: idle");
            }
            () = async { match close_when { Some(close) => close.await, None => std::future::pending().await } } => {
                tracing::info!(request_id, "upgraded connection closed: its session ended");
            }
            () = shutdown.hard_stop() => {
                tracing::info!(request_id, "upgraded connection closed by shutdown");
            }
        }
    });
}

/// When the tunnel last carried a byte, shared by its two halves.
struct Activity {
    opened: Instant,
    /// Nanoseconds from `opened` to the last read that returned bytes.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self { opened: Instant::now(), last: AtomicU64::new(0) }
    }

    fn record(&self) {
        let since = u64::try_from(self.opened.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last.store(since, Ordering::Relaxed);
    }

    fn deadline(&self, timeout: Duration) -> Instant {
        self.opened + Duration::from_nanos(self.last.load(Ordering::Relaxed)) + timeout
    }

    /// Completes once no byte has passed for `timeout`.
    async fn silent_for(&self, timeout: Duration) {
        let sleep = tokio::time::sleep_until(self.deadline(timeout));
        tokio::pin!(sleep);
        loop {
            sleep.as_mut().await;
            let deadline = self.deadline(timeout);
            if Instant::now() >= deadline {
                return;
            }
            sleep.as_mut().reset(deadline);
        }
    }
}

/// One side of the tunnel, recording every read that brings bytes.
struct Watched<'a, T> {
    io: T,
    activity: &'a Activity,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<'_, T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.record();
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<'_, T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn silence_is_measured_from_the_last_byte() {
        let activity = Activity::new();
        let timeout = Duration::from_secs(10);
        let idle = activity.silent_for(timeout);
        tokio::pin!(idle);
        for _ in 0..5 {
            tokio::select! {
                () = &mut idle => panic!("closed while bytes kept passing"),
                () = tokio::time::sleep(Duration::from_secs(8)) => activity.record(),
            }
        }
        let started = Instant::now();
        idle.await;
        assert_eq!(started.elapsed(), timeout, "closed a full timeout after the last byte");
    }
}
