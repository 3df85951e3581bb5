//! Protocol upgrades (WebSocket): once both sides have switched protocols, the two
//! connections are joined and bytes are copied both ways until either side closes or
//! the gateway's drain deadline passes. An open tunnel counts as in flight for the drain.

use crate::shutdown::ShutdownSignals;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

pub fn tunnel(client: OnUpgrade, upstream: OnUpgrade, request_id: String, mut shutdown: ShutdownSignals) {
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
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        tokio::select! {
            result = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match result {
                Ok((sent, received)) => tracing::debug!(request_id, sent, received, "upgraded connection closed"),
                Err(err) => tracing::debug!(request_id, error = %err, "upgraded connection ended with an error"),
            },
            () = shutdown.hard_stop() => {
                tracing::info!(request_id, "upgraded connection closed by shutdown");
            }
        }
    });
}
