//! WebSocket upgrades pass through the gateway: handshake, messages both ways, close,
//! and the idle timeout that closes a silent tunnel.

mod common;

use common::websocket::{echo_server, ws_server};
use common::{BOUND, ConfigBuilder};
use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

/// A WebSocket server for the idle timeout: echoes text, swallows binary messages (so
/// bytes flow from the client only), and answers `push N` with N texts 250 ms apart (so
/// bytes flow from the upstream only).
async fn idle_server() -> std::net::SocketAddr {
    ws_server(|mut socket| async move {
        while let Some(Ok(message)) = socket.next().await {
            let Message::Text(text) = message else { continue };
            if let Some(count) = text.strip_prefix("push ").and_then(|n| n.parse::<usize>().ok()) {
                for i in 0..count {
                    tokio::time::sleep(PACE).await;
                    if socket.send(Message::text(format!("tick {i}"))).await.is_err() {
                        return;
                    }
                }
            } else if socket.send(Message::Text(text)).await.is_err() {
                return;
            }
        }
    })
    .await
}

/// The idle timeout in these tests, and how often the busy side sends: well within it.
const IDLE: &str = "websocket_idle_timeout = \"1s\"";
const PACE: Duration = Duration::from_millis(250);
/// How long the busy side keeps the tunnel busy: three idle timeouts.
const BUSY_FOR: usize = 12;

async fn connect_through(gateway: &common::TestGateway) -> Socket {
    let url = format!("ws://{}/ws", gateway.addr);
    timeout(BOUND, tokio_tungstenite::connect_async(url)).await.unwrap().expect("handshake").0
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The tunnel still carries messages both ways.
async fn assert_open(socket: &mut Socket) {
    socket.send(Message::text("still there?")).await.expect("the tunnel is open");
    let echoed = timeout(BOUND, socket.next()).await.expect("an answer in time");
    assert!(matches!(&echoed, Some(Ok(Message::Text(t))) if *t == "still there?"), "{echoed:?}");
}

#[tokio::test]
async fn a_silent_tunnel_is_closed_after_the_idle_timeout() {
    let ws = idle_server().await;
    let gateway = ConfigBuilder::new().upstream(IDLE).route("/", ws).start().await;
    let mut socket = connect_through(&gateway).await;
    assert_open(&mut socket).await;

    let silent_since = Instant::now();
    let after = timeout(Duration::from_secs(5), socket.next()).await.expect("the silent tunnel is closed");
    let silent_for = silent_since.elapsed();
    assert!(!matches!(after, Some(Ok(Message::Text(_) | Message::Binary(_)))), "{after:?}");
    assert!(silent_for >= Duration::from_millis(800), "closed after {silent_for:?} of silence, before the timeout");
    assert!(silent_for < Duration::from_secs(3), "closed only after {silent_for:?} of silence");
}

#[tokio::test]
async fn bytes_from_the_client_alone_keep_a_tunnel_open() {
    let ws = idle_server().await;
    let gateway = ConfigBuilder::new().upstream(IDLE).route("/", ws).start().await;
    let mut socket = connect_through(&gateway).await;
    for _ in 0..BUSY_FOR {
        tokio::time::sleep(PACE).await;
        socket.send(Message::binary(vec![0u8; 8])).await.expect("the tunnel is open while the client sends");
    }
    assert_open(&mut socket).await;
}

#[tokio::test]
async fn bytes_from_the_upstream_alone_keep_a_tunnel_open() {
    let ws = idle_server().await;
    let gateway = ConfigBuilder::new().upstream(IDLE).route("/", ws).start().await;
    let mut socket = connect_through(&gateway).await;
    socket.send(Message::text(format!("push {BUSY_FOR}"))).await.unwrap();
    for i in 0..BUSY_FOR {
        let tick = timeout(BOUND, socket.next()).await.expect("a tick in time");
        assert!(matches!(&tick, Some(Ok(Message::Text(t))) if *t == format!("tick {i}")), "tick {i}: {tick:?}");
    }
    assert_open(&mut socket).await;
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
