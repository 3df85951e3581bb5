//! What connections and tunnels share about shutdown: the hard stop (the drain
//! deadline has passed: cut everything) and the count of open upgraded tunnels, which
//! the drain waits for like in-flight requests.

use std::sync::Arc;
use tokio::sync::watch;

#[derive(Clone)]
pub struct ShutdownSignals {
    hard_stop: watch::Receiver<bool>,
    tunnels: Arc<watch::Sender<usize>>,
}

/// The server's side: trigger the hard stop, wait for tunnels.
pub struct ShutdownControl {
    hard_stop: watch::Sender<bool>,
    tunnels: Arc<watch::Sender<usize>>,
}

impl ShutdownControl {
    pub fn new() -> Self {
        Self { hard_stop: watch::channel(false).0, tunnels: Arc::new(watch::channel(0).0) }
    }

    pub fn signals(&self) -> ShutdownSignals {
        ShutdownSignals { hard_stop: self.hard_stop.subscribe(), tunnels: self.tunnels.clone() }
    }

    /// Completes when no upgraded tunnel is open.
    pub async fn tunnels_closed(&self) {
        let _ = self.tunnels.subscribe().wait_for(|open| *open == 0).await;
    }

    pub fn open_tunnels(&self) -> usize {
        *self.tunnels.borrow()
    }

    pub fn stop_now(&self) {
        let _ = self.hard_stop.send(true);
    }
}

impl Default for ShutdownControl {
    fn default() -> Self {
        Self::new()
    }
}

impl ShutdownSignals {
    /// Completes once the drain deadline has passed.
    pub async fn hard_stop(&mut self) {
        let _ = self.hard_stop.wait_for(|stop| *stop).await;
    }

    /// Counts a tunnel as open until the guard is dropped.
    pub fn tunnel_opened(&self) -> TunnelGuard {
        self.tunnels.send_modify(|open| *open += 1);
        TunnelGuard(self.tunnels.clone())
    }
}

pub struct TunnelGuard(Arc<watch::Sender<usize>>);

impl Drop for TunnelGuard {
    fn drop(&mut self) {
        self.0.send_modify(|open| *open -= 1);
    }
}
