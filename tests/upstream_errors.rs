//! Upstream failures get a quick, clear answer and never hang the client: 502 for an
//! unreachable upstream, 504 for one that does not answer, a cut connection for a body
//! that stalls, 408 for a client whose upload stalls.

mod common;

use common::upstream::{self, full};
use common::{BOUND, ConfigBuilder, closed_port, get};
use http::{Request, Response};
use http_body_util::BodyExt;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

#[tokio::test]
async fn unreachable_upstream_is_502_json_or_html() {
    let gateway = ConfigBuilder::new().route("/", closed_port()).start().await;

    let reply = get(&gateway.url("/api/x"), &[("accept", "application/json")]).await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let json = reply.json();
    assert_eq!(json["error"], "upstream_unreachable");
    assert_eq!(json["request_id"], reply.header("x-request-id").unwrap());
    assert!(!reply.text().contains("127.0.0.1"), "no internal detail leaks: {}", reply.text());

    let reply = get(&gateway.url("/page"), &[("accept", "text/html,application/xhtml+xml")]).await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(reply.text().contains("<h1>Bad Gateway</h1>"), "{}", reply.text());
}

#[tokio::test]
async fn silent_upstream_is_504_after_the_response_timeout() {
    let gateway = ConfigBuilder::new()
        .upstream("response_timeout = \"300ms\"")
        .route("/", upstream::silent().await)
        .start()
        .await;

    let started = Instant::now();
    let reply = get(&gateway.url("/slow"), &[("accept", "application/json")]).await;
    assert_eq!(reply.status, 504);
    assert_eq!(reply.json()["error"], "upstream_timeout");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn stalled_response_body_is_cut_after_the_idle_timeout() {
    let app = upstream::serve(|_| async {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>(1);
        tokio::spawn(async move {
            tx.send(Ok(http_body::Frame::data(bytes::Bytes::from_static(b"partial")))).await.unwrap();
            tokio::time::sleep(BOUND).await; // stalls, keeping the stream open
            drop(tx);
        });
        let mut rx = rx;
        let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        Response::new(http_body_util::StreamBody::new(stream).map_err(Into::into).boxed())
    })
    .await;
    let gateway = ConfigBuilder::new().upstream("idle_timeout = \"300ms\"").route("/", app).start().await;

    let started = Instant::now();
    let response =
        common::client().request(Request::get(gateway.url("/")).body(Default::default()).unwrap()).await.unwrap();
    assert_eq!(response.status(), 200);
    let result = timeout(BOUND, response.into_body().collect()).await.expect("the client is not left hanging");
    assert!(result.is_err(), "a truncated body must end in an error, not look complete");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn stalled_upload_is_answered_408() {
    let app = upstream::serve(|request: Request<hyper::body::Incoming>| async move {
        match request.into_body().collect().await {
            Ok(body) => Response::new(full(body.to_bytes().len().to_string())),
            Err(_) => Response::new(full("upload failed")),
        }
    })
    .await;
    let gateway = ConfigBuilder::new().upstream("idle_timeout = \"300ms\"").route("/", app).start().await;

    let mut stream = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    stream
        .write_all(
            b"POST /upload HTTP/1.1\r\nhost: app\r\naccept: application/json\r\ncontent-length: 100\r\n\r\nonly-some",
        )
        .await
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = timeout(BOUND, stream.read(&mut answer)).await.expect("answered in time").unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
}

/// A listener whose accept queue is full: the kernel drops further SYNs, so a new
/// connection attempt hangs in connect, as with a blackholed host.
async fn full_backlog() -> (std::net::SocketAddr, Vec<tokio::net::TcpStream>, tokio::net::TcpListener) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(stream)) = timeout(Duration::from_millis(200), tokio::net::TcpStream::connect(addr)).await {
            fillers.push(stream);
        }
    }
    let probe = timeout(Duration::from_millis(300), tokio::net::TcpStream::connect(addr)).await;
    assert!(probe.is_err(), "the backlog is full: a further connect must hang");
    (addr, fillers, listener)
}

#[tokio::test]
async fn upstream_that_does_not_accept_is_504_after_the_connect_timeout() {
    let (addr, _fillers, _listener) = full_backlog().await;
    let gateway = ConfigBuilder::new()
        .upstream("connect_timeout = \"300ms\"")
        .upstream("response_timeout = \"30s\"")
        .route("/", addr)
        .start()
        .await;

    let started = Instant::now();
    let reply = get(&gateway.url("/"), &[("accept", "application/json")]).await;
    assert_eq!(reply.status, 504, "{}", reply.text());
    assert_eq!(reply.json()["error"], "upstream_timeout");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}
