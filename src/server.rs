//! Listeners and the connection lifecycle: accept, serve HTTP/1.1 or HTTP/2 on the
//! same port, and shut down gracefully.
//!
//! Shutdown, in order: stop accepting → `/readyz` turns 503 → every connection is asked
//! to finish (keep-alive connections close after their current request) → wait up to
//! `server.shutdown_timeout` for in-flight requests → cut what is left, tunnels
//! included.

use crate::admin::{self, Readiness};
use crate::auth::Auth;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::otlp::SpanExport;
use crate::shutdown::ShutdownControl;
use crate::tls::{ServerTls, redirect, reload};
use crate::workers::Workers;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {key} = {addr}: {source}")]
pub struct StartError {
    pub key: &'static str,
    pub addr: SocketAddr,
    pub source: std::io::Error,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start connection worker threads: {0}")]
    Workers(#[source] std::io::Error),
    #[error("{0}")]
    Auth(#[source] crate::auth::AuthError),
    #[error("server.tls: {0}")]
    Tls(#[source] crate::tls::CertificateError),
    #[error("otlp.endpoint: {0}")]
    Otlp(#[source] opentelemetry_otlp::ExporterBuildError),
}

/// A gateway with its sockets bound, ready to [`run`](Portcullis::run).
pub struct Portcullis {
    config: Config,
    listener: TcpListener,
    admin_listener: TcpListener,
    /// `server.tls.redirect_listen`: plain HTTP, redirected to https.
    redirect_listener: Option<TcpListener>,
    readiness: Readiness,
}

impl Portcullis {
    pub async fn bind(config: Config) -> Result<Self, StartError> {
        let bind =
            |key, addr| async move { TcpListener::bind(addr).await.map_err(|source| StartError { key, addr, source }) };
        let listener = bind("server.listen", config.server.listen).await?;
        let admin_listener = bind("server.admin_listen", config.server.admin_listen).await?;
        let redirect_listener = match config.server.tls.as_ref().and_then(|tls| tls.redirect_listen) {
            Some(addr) => Some(bind("server.tls.redirect_listen", addr).await?),
            None => None,
        };
        Ok(Self { config, listener, admin_listener, redirect_listener, readiness: Readiness::default() })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then drains.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
        // Read again, before anything starts: the files may have changed since `check`.
        let tls = match &self.config.server.tls {
            Some(tls) => Some((ServerTls::load(&tls.files).map_err(RunError::Tls)?, tls.files.clone())),
            None => None,
        };
        let shutdown_control = ShutdownControl::new();
        let metrics = Arc::new(Metrics::new());
        let auth = match self.config.auth.as_ref().map(|auth| Auth::new(auth, &metrics)).transpose() {
            Ok(auth) => auth.map(Arc::new),
            Err(err) => return Err(RunError::Auth(err)),
        };
        let (admin_stop, admin_stop_rx) = watch::channel(false);
        let admin_listener_addr = self.admin_addr();
        let admin = admin::router(
            self.readiness.clone(),
            metrics.clone(),
            auth.clone(),
            self.config.server.admin_token.clone(),
        );
        let redirect_addr = self.redirect_listener.as_ref().and_then(|listener| listener.local_addr().ok());
        let redirects = self.redirect_listener.map(|listener| {
            let https_port = self.listener.local_addr().map_or(443, |addr| addr.port());
            tokio::spawn(serve_router(listener, redirect::router(https_port), admin_stop_rx.clone(), "redirect"))
        });
        let admin_task = tokio::spawn(serve_router(self.admin_listener, admin, admin_stop_rx, "admin"));

        // The other replicas' events, followed on this (the main) runtime until shutdown.
        let follower = auth.clone().and_then(|auth| {
            let cluster = auth.cluster()?.clone();
            Some(tokio::spawn(async move { crate::cluster::events::follow(&cluster, &*auth).await }))
        });
        let reloads = tls
            .as_ref()
            .map(|(tls, files)| tokio::spawn(reload::follow(tls.served.clone(), files.clone(), tls.loaded.clone())));
        let spans = match &self.config.otlp {
            Some(otlp) => match SpanExport::start(otlp) {
                Ok(export) => {
                    tracing::info!(endpoint = %otlp.endpoint, "exporting a span per request over OTLP");
                    Some(Arc::new(export))
                }
                Err(err) => return Err(RunError::Otlp(err)),
            },
            None => None,
        };
        let worker_count = self.config.server.workers;
        let acceptor = tls.map(|(tls, _)| tls.acceptor);
        let signals = shutdown_control.signals();
        let mut workers = match Workers::start(
            worker_count,
            &self.config,
            &metrics,
            &signals,
            auth.clone(),
            acceptor.clone(),
            spans.clone(),
        ) {
            Ok(workers) => workers,
            Err(source) => return Err(RunError::Workers(source)),
        };
        let graceful = GracefulShutdown::new();
        // Ready once the provider's metadata and keys are loaded (at once without one).
        match auth.clone() {
            Some(auth) => {
                let readiness = self.readiness.clone();
                tokio::spawn(async move {
                    auth.load_with_retry().await;
                    readiness.set(true);
                    tracing::info!("portcullis is ready");
                });
            }
            None => {
                self.readiness.set(true);
                tracing::info!("portcullis is ready");
            }
        }
        tracing::info!(
            listen = %self.listener.local_addr().expect("bound"),
            admin_listen = %admin_listener_addr,
            redirect_listen = redirect_addr.map(|addr| addr.to_string()),
            routes = self.config.routes.len(),
            workers = worker_count,
            tls = acceptor.is_some(),
            "portcullis is listening"
        );

        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(err) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            workers.dispatch(stream, peer, graceful.watcher());
        }

        drop(self.listener);
        self.readiness.set(false);
        let deadline = self.config.server.shutdown_timeout;
        tracing::info!(connections = graceful.count(), ?deadline, "shutting down: draining in-flight requests");
        let drained = async {
            graceful.shutdown().await;
            if shutdown_control.open_tunnels() > 0 {
                tracing::info!(tunnels = shutdown_control.open_tunnels(), "waiting for upgraded connections to close");
            }
            shutdown_control.tunnels_closed().await;
        };
        tokio::select! {
            () = drained => tracing::info!("drained: all connections closed"),
            () = tokio::time::sleep(deadline) => tracing::warn!("drain deadline passed: closing remaining connections"),
        }
        shutdown_control.stop_now();
        workers.finished().await;
        if let Some(follower) = follower {
            follower.abort();
        }
        if let Some(reloads) = reloads {
            reloads.abort();
        }
        if let Some(spans) = spans {
            // Off the runtime: the exporter's last send blocks.
            let _ = tokio::task::spawn_blocking(move || spans.shutdown()).await;
        }
        let _ = admin_stop.send(true);
        let _ = admin_task.await;
        if let Some(redirects) = redirects {
            let _ = redirects.await;
        }
        Ok(())
    }

    /// For embedding and tests: the readiness flag the admin listener reports.
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }
}

/// Serves one of the gateway's own small listeners (`what`: the admin one, the https
/// redirects) until `stop`.
async fn serve_router(listener: TcpListener, app: axum::Router, mut stop: watch::Receiver<bool>, what: &'static str) {
    let stopped = async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    if let Err(err) = axum::serve(listener, app).with_graceful_shutdown(stopped).await {
        tracing::error!(error = %err, listener = what, "listener failed");
    }
}
