//! The pooled HTTP/1.1 client that talks to upstreams: one pool per worker thread.
//!
//! Built on hyper's client connections instead of hyper-util's pooled client, which
//! for every request clones and rebuilds the URI, hashes a pool key under its lock and
//! spawns a task that puts the connection back. A worker owns its pool (`workers.rs`):
//! a short list of idle connections per upstream, found by the upstream's index in the
//! route table (no hashing), behind a lock no other thread takes.
//!
//! GET and HEAD requests without a body go on the gateway's own exchange
//! (`bodiless.rs`) over connections from a second list per upstream; the rest on
//! hyper's client connections.
//!
//! A connection goes back to the pool once its response body has been read to the end
//! ([`PooledBody`]); one whose response was not read to the end, that switched
//! protocols, or that the upstream closed is dropped. A request that a reused
//! connection could not start (the upstream closed it while it sat idle) goes out on
//! another connection: it was never sent, so this is safe for any method.

use super::bodiless::{self, Connection, UpstreamBody};
use super::body::{IdleTimeout, RequestBody};
use super::routes::Upstream;
use crate::config::UpstreamConfig;
use crate::error::BoxError;
use bytes::Bytes;
use http::uri::Authority;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, request};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

type RequestBodyOf = RequestBody<IdleTimeout<Incoming>>;
type Sender = http1::SendRequest<RequestBodyOf>;
/// A multiplexed HTTP/2 connection to a TLS upstream that chose `h2` by ALPN: one per
/// upstream and worker, shared by its requests.
type Multiplexed = http2::SendRequest<RequestBodyOf>;

/// Why an exchange with the upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect to {authority}: {source}")]
    Connect { authority: Authority, source: std::io::Error },
    #[error("connecting to {authority} took longer than {timeout:?}")]
    ConnectTimeout { authority: Authority, timeout: Duration },
    /// The TLS handshake failed: an untrusted or mismatched certificate, a refused
    /// client certificate, no common protocol.
    #[error("TLS with {authority} failed: {source}")]
    Tls { authority: Authority, source: std::io::Error },
    #[error("upstream exchange failed: {0}")]
    Exchange(BoxError),
}

impl From<hyper::Error> for UpstreamError {
    fn from(error: hyper::Error) -> Self {
        Self::Exchange(Box::new(error))
    }
}

pub struct UpstreamClient {
    pool: Arc<Pool>,
    connect_timeout: Duration,
}

pub struct Pool {
    /// Idle connections, one list per upstream (`Route::upstream`): hyper's, and
    /// the plain ones of `bodiless.rs`.
    idle: Box<[Mutex<Vec<Idle<Sender>>>]>,
    idle_plain: Box<[Mutex<Vec<Idle<Connection>>>]>,
    multiplexed: Box<[Mutex<Option<Multiplexed>>]>,
    idle_timeout: Duration,
    max_idle_per_upstream: usize,
}

struct Idle<C> {
    connection: C,
    since: Instant,
}

/// A client for `upstreams` distinct upstreams, numbered from 0.
pub fn build(config: &UpstreamConfig, upstreams: usize) -> UpstreamClient {
    UpstreamClient {
        pool: Arc::new(Pool {
            idle: (0..upstreams).map(|_| Mutex::new(Vec::new())).collect(),
            multiplexed: (0..upstreams).map(|_| Mutex::new(None)).collect(),
            idle_plain: (0..upstreams).map(|_| Mutex::new(Vec::new())).collect(),
            idle_timeout: config.pool_idle_timeout,
            max_idle_per_upstream: config.pool_max_idle_per_host,
        }),
        connect_timeout: config.connect_timeout,
    }
}

impl UpstreamClient {
    /// Sends `request` (origin-form URI, `Host` set) to `upstream`, on a pooled
    /// connection, or a new one.
    pub async fn send(
        &self,
        upstream: &Upstream,
        mut request: Request<RequestBodyOf>,
    ) -> Result<Response<PooledBody>, UpstreamError> {
        // A protocol upgrade needs HTTP/1.1 (its own connection); anything else to a TLS
        // upstream rides its HTTP/2 connection when the upstream chose `h2`.
        let upgrade = request.headers().contains_key(http::header::UPGRADE);
        // Plain-HTTP upstreams never have one: no lock taken for them.
        if !upgrade
            && upstream.tls.is_some()
            && let Some(multiplexed) = self.pool.multiplexed(upstream.index)
        {
            return send_multiplexed(multiplexed, upstream, request).await;
        }
        loop {
            let (mut sender, reused) = match self.pool.checkout(upstream.index) {
                Some(sender) => (sender, true),
                None => match self.connect(upstream, !upgrade).await? {
                    Connected::Http1(sender) => (sender, false),
                    Connected::Http2(multiplexed) => {
                        self.pool.keep_multiplexed(upstream.index, multiplexed.clone());
                        return send_multiplexed(multiplexed, upstream, request).await;
                    }
                },
            };
            if let Err(err) = sender.ready().await {
                // Closed while it sat in the pool: take another one.
                if reused {
                    continue;
                }
                return Err(err.into());
            }
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(self.pool.clone().lease(upstream.index, sender, response)),
                Err(mut err) => match err.take_message() {
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(err.into_error().into()),
                },
            }
        }
    }

    /// Sends a GET or HEAD request without a body ([`bodiless::applies`]) on the
    /// gateway's own exchange. On a reused connection that the upstream closed while
    /// it sat idle, the request goes out again on another (both methods are safe to
    /// repeat).
    pub async fn send_bodiless(
        &self,
        upstream: &Upstream,
        head: &request::Parts,
        host: &HeaderValue,
        added: &[(HeaderName, HeaderValue)],
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let encoded = bodiless::encode(head, host, added);
        let head_request = head.method == http::Method::HEAD;
        loop {
            let (connection, reused) = match self.pool.checkout_plain(upstream.index) {
                Some(connection) => (connection, true),
                None => (Connection::new(self.connect_stream(upstream).await?), false),
            };
            match bodiless::exchange(connection, &encoded, head_request, (self.pool.clone(), upstream.index)).await {
                Ok(response) => return Ok(response),
                Err(err) if reused && err.unanswered() => continue,
                Err(err) => return Err(UpstreamError::Exchange(Box::new(err))),
            }
        }
    }

    /// A new connection to `upstream`; over TLS, HTTP/2 when `http2` allows it and the
    /// upstream chooses it.
    async fn connect(&self, upstream: &Upstream, http2: bool) -> Result<Connected, UpstreamError> {
        let started = Instant::now();
        let stream = self.connect_stream(upstream).await?;
        let Some(tls) = &upstream.tls else { return handshake(stream).await.map(Connected::Http1) };
        let authority = &upstream.target.authority;
        let connector = if http2 { &tls.connector } else { &tls.connector_http1 };
        // The TLS handshake gets what the TCP connect left of the connect timeout.
        let left = self.connect_timeout.saturating_sub(started.elapsed());
        let secured = tokio::time::timeout(left, connector.connect(tls.server_name.clone(), stream));
        match secured.await {
            Ok(Ok(stream)) if stream.get_ref().1.alpn_protocol() == Some(b"h2") => {
                let (sender, connection) =
                    http2::handshake(hyper_util::rt::TokioExecutor::new(), TokioIo::new(stream)).await?;
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        tracing::debug!(error = %err, "upstream HTTP/2 connection ended with an error");
                    }
                });
                Ok(Connected::Http2(sender))
            }
            Ok(Ok(stream)) => handshake(stream).await.map(Connected::Http1),
            Ok(Err(source)) => Err(UpstreamError::Tls { authority: authority.clone(), source }),
            Err(_) => {
                Err(UpstreamError::ConnectTimeout { authority: authority.clone(), timeout: self.connect_timeout })
            }
        }
    }

    async fn connect_stream(&self, upstream: &Upstream) -> Result<tokio::net::TcpStream, UpstreamError> {
        let authority = &upstream.target.authority;
        let address = match authority.port() {
            Some(_) => authority.as_str().to_owned(),
            None => format!("{}:{}", authority.as_str(), upstream.default_port()),
        };
        let connecting = tokio::net::TcpStream::connect(address);
        let stream = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => return Err(UpstreamError::Connect { authority: authority.clone(), source }),
            Err(_) => {
                return Err(UpstreamError::ConnectTimeout {
                    authority: authority.clone(),
                    timeout: self.connect_timeout,
                });
            }
        };
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}

/// A new connection, by the protocol it speaks.
enum Connected {
    Http1(Sender),
    Http2(Multiplexed),
}

/// Sends `request` on an upstream's HTTP/2 connection: the URI in absolute form (its
/// scheme and authority become `:scheme` and `:authority`), no `Host`.
async fn send_multiplexed(
    mut multiplexed: Multiplexed,
    upstream: &Upstream,
    request: Request<RequestBodyOf>,
) -> Result<Response<PooledBody>, UpstreamError> {
    let (mut parts, body) = request.into_parts();
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    parts.uri = format!("https://{}{target}", upstream.target.authority)
        .parse()
        .map_err(|err: http::uri::InvalidUri| UpstreamError::Exchange(Box::new(err)))?;
    parts.version = http::Version::HTTP_2;
    parts.headers.remove(http::header::HOST);
    multiplexed.ready().await?;
    let response = multiplexed.send_request(Request::from_parts(parts, body)).await?;
    Ok(response.map(|body| PooledBody { body, lease: None }))
}

/// An HTTP/1.1 client connection over `stream`, driven by a task of its own.
async fn handshake<S>(stream: S) -> Result<Sender, UpstreamError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.with_upgrades().await {
            tracing::debug!(error = %err, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

impl Pool {
    fn checkout(&self, upstream: usize) -> Option<Sender> {
        self.take(&self.idle[upstream], |sender| !sender.is_closed())
    }

    fn checkin(&self, upstream: usize, sender: Sender) {
        if !sender.is_closed() {
            self.put(&self.idle[upstream], sender, |sender| !sender.is_closed());
        }
    }

    /// The upstream's HTTP/2 connection, if it has one still open.
    fn multiplexed(&self, upstream: usize) -> Option<Multiplexed> {
        let mut slot = self.multiplexed[upstream].lock().expect("pool lock");
        match slot.as_ref() {
            Some(multiplexed) if !multiplexed.is_closed() => Some(multiplexed.clone()),
            Some(_) => slot.take().and(None),
            None => None,
        }
    }

    fn keep_multiplexed(&self, upstream: usize, multiplexed: Multiplexed) {
        *self.multiplexed[upstream].lock().expect("pool lock") = Some(multiplexed);
    }

    fn checkout_plain(&self, upstream: usize) -> Option<Connection> {
        self.take(&self.idle_plain[upstream], Connection::is_open_and_quiet)
    }

    pub fn checkin_plain(&self, upstream: usize, connection: Connection) {
        self.put(&self.idle_plain[upstream], connection, Connection::is_open_and_quiet);
    }

    /// The most recently used idle connection in `list` that is still open.
    fn take<C>(&self, list: &Mutex<Vec<Idle<C>>>, open: impl Fn(&C) -> bool) -> Option<C> {
        let now = Instant::now();
        let mut list = list.lock().expect("pool lock");
        while let Some(idle) = list.pop() {
            if self.usable(&idle, now, &open) {
                return Some(idle.connection);
            }
        }
        None
    }

    /// Puts a connection back. Each list is in the order connections came back (the
    /// oldest first), so the expired ones are a prefix, dropped here without looking
    /// at the others; closed ones are dropped when popped, or here when the list is full.
    fn put<C>(&self, list: &Mutex<Vec<Idle<C>>>, connection: C, open: impl Fn(&C) -> bool) {
        let now = Instant::now();
        let mut list = list.lock().expect("pool lock");
        let expired = list.partition_point(|idle| now.duration_since(idle.since) >= self.idle_timeout);
        list.drain(..expired);
        if list.len() >= self.max_idle_per_upstream {
            list.retain(|idle| self.usable(idle, now, &open));
        }
        if list.len() < self.max_idle_per_upstream {
            list.push(Idle { connection, since: now });
        }
    }

    fn usable<C>(&self, idle: &Idle<C>, now: Instant, open: impl Fn(&C) -> bool) -> bool {
        open(&idle.connection) && now.duration_since(idle.since) < self.idle_timeout
    }

    /// The response, with its connection going back to the pool when the body ends.
    /// A `101 Switching Protocols` connection becomes a tunnel, never pooled.
    fn lease(self: Arc<Self>, upstream: usize, sender: Sender, response: Response<Incoming>) -> Response<PooledBody> {
        let (parts, body) = response.into_parts();
        let lease = (parts.status != StatusCode::SWITCHING_PROTOCOLS).then_some(Lease { pool: self, upstream, sender });
        let mut pooled = PooledBody { body, lease };
        if pooled.body.is_end_stream() {
            pooled.release();
        }
        Response::from_parts(parts, pooled)
    }
}

struct Lease {
    pool: Arc<Pool>,
    upstream: usize,
    sender: Sender,
}

/// An upstream response body that returns its connection to the pool once read to
/// the end. Dropped before that, the connection is dropped with it.
pub struct PooledBody {
    body: Incoming,
    lease: Option<Lease>,
}

impl PooledBody {
    fn release(&mut self) {
        if let Some(Lease { pool, upstream, sender }) = self.lease.take() {
            pool.checkin(upstream, sender);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        match &frame {
            // The server may stop polling after the last frame (it knows the length).
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => this.release(),
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Err(_))) => this.lease = None,
            _ => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
