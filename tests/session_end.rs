//! What outlives its request ends with its session: a WebSocket tunnel and a stream of
//! server-sent events opened with a session close within a few seconds of the session's
//! end (logout on another replica, revocation, expiry), while the upstream keeps them
//! busy, so neither the idle timeout nor the drain could be what closed them.

mod common;

use bytes::Bytes;
use common::browser::{Browser, Extra, Setup, setup_with};
use common::redis::RedisServer;
use common::upstream::{UpstreamBody, serve};
use common::websocket::ws_server;
use common::{BOUND, TestGateway};
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use std::time::{Duration, Instant};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// How often the upstreams send: the tunnel and the stream are never idle.
const TICK: Duration = Duration::from_millis(200);
/// The bound the issue sets: closed within 5 s of the session's end.
const WITHIN: Duration = Duration::from_secs(5);

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A gateway in front of the development provider with routes `/ws` (a WebSocket server
/// that sends a tick every 200 ms) and `/events` (an event stream, the same), signed in
/// as alice; `session` and `sections` as in [`setup_with`].
async fn signed_in(session: &str, sections: &str) -> (Setup, String) {
    let ws = ws_server(|mut socket| async move {
        loop {
            tokio::time::sleep(TICK).await;
            if socket.send(Message::text("tick")).await.is_err() {
                return;
            }
        }
    })
    .await;
    let events = serve(|_| async {
        let ticks = futures_util::stream::unfold((), |()| async {
            tokio::time::sleep(TICK).await;
            Some((Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(Bytes::from("data: tick\n\n"))), ()))
        });
        let body: UpstreamBody = BodyExt::boxed(StreamBody::new(ticks));
        http::Response::builder().header("content-type", "text/event-stream").body(body).unwrap()
    })
    .await;
    let routes = format!(
        "[[route]]\nprefix = \"/ws\"\nupstream = \"http://{ws}\"\n[[route]]\nprefix = \"/events\"\nupstream = \"http://{events}\"\n"
    );
    let s = setup_with("cognito", |_| {}, Extra { session, sections, routes: &routes, ..Extra::default() }).await;
    let mut browser = Browser::default();
    assert_eq!(browser.log_in(&s, "%2F").await.status(), 302);
    let cookies = Browser::cookie_header(&browser.gateway);
    (s, cookies)
}

/// A browser's WebSocket from the app's own page (`origin`) through `gateway`.
async fn open_websocket(gateway: &TestGateway, origin: &str, cookies: &str) -> Socket {
    let mut request = format!("ws://{}/ws", gateway.addr).into_client_request().unwrap();
    request.headers_mut().insert("cookie", cookies.parse().unwrap());
    request.headers_mut().insert("origin", origin.parse().unwrap());
    let (mut socket, _) = timeout(BOUND, tokio_tungstenite::connect_async(request)).await.unwrap().expect("handshake");
    let first = timeout(BOUND, socket.next()).await.unwrap();
    assert!(matches!(first, Some(Ok(Message::Text(_)))), "the tunnel carries ticks: {first:?}");
    socket
}

/// Reads until the tunnel closes; how long after `since` it did. Fails after [`WITHIN`].
async fn closed_after(socket: &mut Socket, since: Instant) -> Duration {
    loop {
        match timeout(WITHIN.saturating_sub(since.elapsed()), socket.next()).await {
            Err(_) => panic!("the tunnel is still open {:?} after its session ended", since.elapsed()),
            Ok(Some(Ok(Message::Text(_)))) => continue,
            Ok(_) => return since.elapsed(),
        }
    }
}

async fn logout(s: &Setup, gateway: &TestGateway, cookies: &str) {
    let request = s.http.post(gateway.url("/auth/logout")).header("cookie", cookies);
    assert_eq!(request.header("sec-fetch-site", "same-origin").send().await.unwrap().status(), 303);
}

/// A WebSocket open on one replica closes when the session is signed out on the
/// other (with Redis), or on the same one (cookie sessions without Redis).
async fn a_websocket_closes_after_its_sessions_logout(store: &str, redis: Option<&RedisServer>) {
    let session = format!("store = \"{store}\"");
    let sections = redis.map(RedisServer::section).unwrap_or_default();
    let (s, cookies) = signed_in(&session, &sections).await;
    let other = if redis.is_some() { Some(s.replica().await) } else { None };
    let mut socket = open_websocket(other.as_ref().unwrap_or(&s.gateway), &s.gateway.url(""), &cookies).await;
    // Open and busy for a while first: what closes it later is the logout.
    let opened = Instant::now();
    while opened.elapsed() < Duration::from_millis(1500) {
        let tick = timeout(BOUND, socket.next()).await.unwrap();
        assert!(matches!(tick, Some(Ok(Message::Text(_)))), "{store}: closed before the logout: {tick:?}");
    }
    logout(&s, &s.gateway, &cookies).await;
    let took = closed_after(&mut socket, Instant::now()).await;
    eprintln!("{store}: the WebSocket closed {took:?} after the logout");
}

#[tokio::test]
async fn cookie_sessions_a_websocket_closes_after_its_sessions_logout() {
    a_websocket_closes_after_its_sessions_logout("cookie", None).await;
}

#[tokio::test]
async fn redis_sessions_a_websocket_on_another_replica_closes_after_its_sessions_logout() {
    let redis = RedisServer::start().await;
    a_websocket_closes_after_its_sessions_logout("redis", Some(&redis)).await;
}

#[tokio::test]
async fn cookie_sessions_with_redis_a_websocket_on_another_replica_closes_after_its_sessions_logout() {
    let redis = RedisServer::start().await;
    a_websocket_closes_after_its_sessions_logout("cookie", Some(&redis)).await;
}

/// A WebSocket and an event stream close when an operator revokes the user.
#[tokio::test]
async fn a_revocation_closes_the_users_websocket_and_event_stream() {
    let (s, cookies) = signed_in("", "").await;
    let mut socket = open_websocket(&s.gateway, &s.gateway.url(""), &cookies).await;
    let mut events = s.http.get(s.gateway.url("/events")).header("cookie", &cookies).send().await.unwrap();
    assert_eq!(events.status(), 200);
    assert!(timeout(BOUND, events.chunk()).await.unwrap().unwrap().is_some(), "the stream carries events");
    let sub = s.sub(&cookies).await;
    let revoked = s.http.post(s.gateway.admin_url("/sessions/revoke")).form(&[("sub", &sub)]);
    assert_eq!(revoked.send().await.unwrap().status(), 200);
    let since = Instant::now();
    closed_after(&mut socket, since).await;
    loop {
        match timeout(WITHIN.saturating_sub(since.elapsed()), events.chunk()).await {
            Err(_) => panic!("the event stream is still open {:?} after the revocation", since.elapsed()),
            Ok(Ok(Some(_))) => continue,
            Ok(_) => break,
        }
    }
}

/// A WebSocket closes when its session reaches its end (`session.lifetime`), though the
/// access token would still be good for an hour.
#[tokio::test]
async fn a_websocket_closes_when_its_session_expires() {
    let (s, cookies) = signed_in("lifetime = \"3s\"", "").await;
    let mut socket = open_websocket(&s.gateway, &s.gateway.url(""), &cookies).await;
    let opened = Instant::now();
    let took = closed_after(&mut socket, opened).await;
    assert!(took >= Duration::from_millis(1000), "closed early: {took:?}");
    let api = s.http.get(s.gateway.url("/api")).header("cookie", &cookies).header("accept", "application/json");
    assert_eq!(api.send().await.unwrap().status(), 401, "the session is over");
}
