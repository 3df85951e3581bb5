//! WebSocket upgrades pass through the gateway: handshake, messages both ways, close.

mod common;

use common::{BOUND, ConfigBuilder};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

/// A WebSocket server that echoes every message back.
async fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else { return };
                while let Some(Ok(message)) = socket.next().await {
                    if message.is_close() {
                        break;
                    }
                    if socket.send(message).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn websocket_echo_through_the_gateway() {
    let ws = echo_server().await;
    let gateway = ConfigBuilder::new().route("/ws/", ws).start().await;

    let url = format!("ws://{}/ws/echo", gateway.addr);
    let (mut socket, response) =
        timeout(BOUND, tokio_tungstenite::connect_async(url)).await.unwrap().expect("handshake");
    assert_eq!(response.status(), 101);
    assert!(response.headers().contains_key("x-request-id"));

    for i in 0..20 {
        let text = format!("message {i}");
        socket.send(Message::text(text.clone())).await.unwrap();
        let echoed = timeout(BOUND, socket.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(echoed, Message::text(text));
    }
    let binary = vec![0u8, 1, 2, 255];
    socket.send(Message::binary(binary.clone())).await.unwrap();
    let echoed = timeout(BOUND, socket.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(echoed, Message::binary(binary));

    socket.close(None).await.unwrap();
}

#[tokio::test]
async fn upgrade_refused_by_upstream_is_an_ordinary_response() {
    // A plain HTTP upstream answers the upgrade request with 200: no tunnel, no hang.
    let app = common::upstream::echo().await;
    let gateway = ConfigBuilder::new().route("/", app).start().await;
    let reply = common::get(
        &gateway.url("/ws"),
        &[
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
    )
    .await;
    assert_eq!(reply.status, 200);
    let echo = reply.json();
    assert_eq!(common::upstream::seen(&echo, "upgrade"), ["websocket"], "upgrade intent is forwarded");
}

#[tokio::test]
async fn open_tunnels_are_drained_then_cut_at_the_deadline() {
    let ws = echo_server().await;
    let mut gateway = ConfigBuilder::new().server("shutdown_timeout = \"1s\"").route("/", ws).start().await;
    let url = format!("ws://{}/ws", gateway.addr);
    let (mut socket, _) = timeout(BOUND, tokio_tungstenite::connect_async(url)).await.unwrap().unwrap();

    let started = std::time::Instant::now();
    gateway.begin_shutdown();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    socket.send(Message::text("still there?")).await.unwrap();
    let echoed = timeout(BOUND, socket.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(echoed, Message::text("still there?"), "the tunnel lives on during the drain");

    gateway.stopped().await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(900), "the drain waited for the tunnel");
    let after = timeout(BOUND, socket.next()).await.expect("the tunnel is cut, not left hanging");
    assert!(!matches!(after, Some(Ok(Message::Text(_)))), "{after:?}");
}
