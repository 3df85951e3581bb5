//! WebSocket servers for upstreams, on fresh loopback ports.

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;

pub type ServerSocket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A WebSocket server on a fresh loopback port; `session` serves each connection.
pub async fn ws_server<F, Fut>(session: F) -> std::net::SocketAddr
where
    F: Fn(ServerSocket) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let session = std::sync::Arc::new(session);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let session = session.clone();
            tokio::spawn(async move {
                let Ok(socket) = tokio_tungstenite::accept_async(stream).await else { return };
                session(socket).await;
            });
        }
    });
    addr
}

/// A WebSocket server that echoes every message back.
pub async fn echo_server() -> std::net::SocketAddr {
    ws_server(|mut socket| async move {
        while let Some(Ok(message)) = socket.next().await {
            if message.is_close() || socket.send(message).await.is_err() {
                break;
            }
        }
    })
    .await
}
