//! Connection workers: one OS thread per core, each with its own single-threaded
//! runtime and its own upstream connection pool, the shape nginx has.
//!
//! Why: in a work-stealing runtime a proxied request hops between the client
//! connection's task and the pooled upstream connection's task, often across threads,
//! and every request takes the shared pool lock. Pinning each client connection and
//! the upstream connections it uses to one thread removes both costs. The accept loop
//! hands connections out round-robin; per-connection cost only, so it is cheap.

use crate::auth::Auth;
use crate::config::Config;
use crate::gateway::Gateway;
use crate::metrics::Metrics;
use crate::otlp::SpanExport;
use crate::proxy::peer::Peer;
use crate::shutdown::ShutdownSignals;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::TlsAcceptor;

/// A connection accepted on the main listener, on its way to a worker.
struct Accepted {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    watcher: Watcher,
}

pub struct Workers {
    queues: Vec<mpsc::UnboundedSender<Accepted>>,
    next: usize,
    finished: Vec<oneshot::Receiver<()>>,
}

impl Workers {
    pub fn start(
        count: usize,
        config: &Config,
        metrics: &Arc<Metrics>,
        shutdown: &ShutdownSignals,
        auth: Option<Arc<Auth>>,
        tls: Option<TlsAcceptor>,
        spans: Option<Arc<SpanExport>>,
    ) -> std::io::Result<Self> {
        let mut workers = Self { queues: Vec::new(), next: 0, finished: Vec::new() };
        for index in 0..count.max(1) {
            let (queue, incoming) = mpsc::unbounded_channel();
            let (finished_tx, finished) = oneshot::channel();
            let worker = Worker {
                config: config.clone(),
                metrics: metrics.clone(),
                shutdown: shutdown.clone(),
                auth: auth.clone(),
                tls: tls.clone(),
                spans: spans.clone(),
            };
            std::thread::Builder::new().name(format!("portcullis-worker-{index}")).spawn(move || {
                let runtime =
                    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("worker runtime starts");
                runtime.block_on(worker.serve(incoming));
                let _ = finished_tx.send(());
            })?;
            workers.queues.push(queue);
            workers.finished.push(finished);
        }
        Ok(workers)
    }

    /// Hands a connection to the next worker.
    pub fn dispatch(&mut self, stream: tokio::net::TcpStream, peer: SocketAddr, watcher: Watcher) {
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(err) => {
                tracing::warn!(error = %err, "could not hand a connection to a worker");
                return;
            }
        };
        let queue = &self.queues[self.next];
        self.next = (self.next + 1) % self.queues.len();
        if queue.send(Accepted { stream, peer, watcher }).is_err() {
            tracing::error!("a connection worker has stopped");
        }
    }

    /// Closes the queues and waits until every worker has served or cut its last
    /// connection.
    pub async fn finished(self) {
        drop(self.queues);
        for finished in self.finished {
            let _ = finished.await;
        }
    }
}

struct Worker {
    config: Config,
    metrics: Arc<Metrics>,
    shutdown: ShutdownSignals,
    auth: Option<Arc<Auth>>,
    /// With `[server.tls]`: every connection starts with a handshake.
    tls: Option<TlsAcceptor>,
    spans: Option<Arc<SpanExport>>,
}

impl Worker {
    async fn serve(self, mut incoming: mpsc::UnboundedReceiver<Accepted>) {
        let gateway = Arc::new(Gateway::new(
            &self.config,
            self.auth.clone(),
            self.spans.clone(),
            self.metrics.clone(),
            self.shutdown.clone(),
        ));
        let builder = http_builder(&self.config);
        let mut connections = tokio::task::JoinSet::new();
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(keep_time_driver_armed());
        // The hard stop is watched here, for all of this worker's connections at once,
        // not by each connection (that would poll it on every wake of every request).
        loop {
            tokio::select! {
                accepted = incoming.recv() => match accepted {
                    Some(accepted) => self.serve_connection(&mut connections, &builder, &gateway, accepted),
                    None => break,
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                () = shutdown.hard_stop() => {
                    connections.abort_all();
                    break;
                }
            }
        }
        // No new connections: let the current ones finish, unless the drain deadline passes.
        tokio::select! {
            () = async { while connections.join_next().await.is_some() {} } => {}
            () = shutdown.hard_stop() => connections.abort_all(),
        }
    }

    fn serve_connection(
        &self,
        connections: &mut tokio::task::JoinSet<()>,
        builder: &auto::Builder<TokioExecutor>,
        gateway: &Arc<Gateway>,
        accepted: Accepted,
    ) {
        let Accepted { stream, peer, watcher } = accepted;
        let stream = match tokio::net::TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(err) => {
                tracing::warn!(error = %err, "could not adopt a connection");
                return;
            }
        };
        let gateway = gateway.clone();
        let peer = Arc::new(Peer::new(peer, self.tls.is_some()));
        let service = hyper::service::service_fn(move |request| gateway.clone().handle(request, peer.clone()));
        let open = OpenConnection::counted(self.metrics.open_connections.clone());
        let Some(tls) = self.tls.clone() else {
            let connection =
                watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned());
            connections.spawn(async move {
                if let Err(err) = connection.await {
                    tracing::debug!(error = %err, "connection ended with an error");
                }
                drop(open);
            });
            return;
        };
        // The handshake counts against the head's time limit: a client that stalls in
        // it holds a connection like one that stalls in its request head.
        let handshake_limit = self.config.server.header_read_timeout;
        let builder = builder.clone();
        connections.spawn(async move {
            let stream = match tokio::time::timeout(handshake_limit, tls.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(err)) => return tracing::debug!(error = %err, "TLS handshake failed"),
                Err(_) => return tracing::debug!("TLS handshake timed out"),
            };
            let connection = watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), service));
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
            drop(open);
        });
    }
}

/// Counts a connection in the open-connections gauge until dropped: when it ends, or
/// when the hard stop aborts its task.
struct OpenConnection(prometheus_client::metrics::gauge::Gauge);

impl OpenConnection {
    fn counted(gauge: prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Keeps a timer at most a second away in this worker's time driver.
///
/// Every request re-arms timers seconds ahead (header read, response, idle). Tokio
/// wakes its driver through an eventfd write whenever a timer is armed earlier than the
/// driver's next wake, which is always the case once the previous request's timer is
/// gone: one extra `write` and `epoll_wait` per request. With this tick pending, the
/// next wake is never later than a second, so re-arming costs no syscall.
async fn keep_time_driver_armed() {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
    }
}

fn http_builder(config: &Config) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let limits = config.server.limits;
    // Heads beyond the limits are answered 431 by hyper before the gateway sees them.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.server.header_read_timeout)
        .keep_alive(true)
        .max_buf_size(limits.header_bytes)
        .max_headers(limits.headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30))
        .max_header_list_size(u32::try_from(limits.header_bytes).unwrap_or(u32::MAX));
    builder
}
