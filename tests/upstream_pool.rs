//! The per-worker upstream pool: keep-alive connections are reused, a connection the
//! upstream closed while it sat idle is never used again, and one the upstream closes
//! after each answer (HTTP/1.0) is never reused.

mod common;

use common::{ConfigBuilder, get};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A raw upstream on 127.0.0.1 that hands each accepted connection to `serve` and
/// counts the connections it accepted.
async fn counting_upstream<F, Fut>(serve: F) -> (std::net::SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(stream));
        }
    });
    (addr, accepted)
}

/// A raw HTTP/1.1 upstream: answers `ok` to each request on a connection, keeps the
/// connection open for `linger` after each answer (without announcing a close), then
/// closes it.
async fn upstream(linger: Duration) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    counting_upstream(move |mut stream| async move {
        let mut buffer = vec![0; 16 * 1024];
        let mut head = Vec::new();
        loop {
            let read = tokio::time::timeout(linger, stream.read(&mut buffer)).await;
            let Ok(Ok(n)) = read else { return }; // idle for `linger`: close silently
            if n == 0 {
                return;
            }
            head.extend_from_slice(&buffer[..n]);
            // Requests here are GETs without a body: one per blank line.
            while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                head.drain(..end + 4);
                let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                if stream.write_all(answer).await.is_err() {
                    return;
                }
            }
        }
    })
    .await
}

#[tokio::test]
async fn keep_alive_connections_to_the_upstream_are_reused() {
    let (addr, accepted) = upstream(Duration::from_secs(30)).await;
    let gateway = ConfigBuilder::new().server("workers = 1").route("/", addr).start().await;
    for i in 0..20 {
        let reply = get(&gateway.url(&format!("/item/{i}")), &[]).await;
        assert_eq!((reply.status.as_u16(), reply.text().as_str()), (200, "ok"), "request {i}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "20 requests one after the other share one connection");
}

#[tokio::test]
async fn a_connection_the_upstream_closed_while_idle_is_replaced() {
    let (addr, accepted) = upstream(Duration::from_millis(50)).await;
    let gateway = ConfigBuilder::new().server("workers = 1").route("/", addr).start().await;
    for i in 0..5 {
        let reply = get(&gateway.url("/"), &[]).await;
        assert_eq!((reply.status.as_u16(), reply.text().as_str()), (200, "ok"), "request {i} after an upstream close");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 5, "each request after an idle close needed a new connection");
}

/// A raw HTTP/1.0 upstream, like Python's `http.server`: reads a request, answers with
/// `answer`, closes.
async fn one_shot_upstream(answer: &'static [u8]) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    counting_upstream(move |mut stream| async move {
        let mut head = Vec::new();
        let mut buffer = [0; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buffer[..n]),
            }
        }
        let _ = stream.write_all(answer).await;
    })
    .await
}

#[tokio::test]
async fn http_1_0_upstreams_that_close_after_each_answer_are_served() {
    for answer in [
        &b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil close"[..],
        b"HTTP/1.0 200 OK\r\ncontent-length: 11\r\n\r\nuntil close",
    ] {
        let (addr, accepted) = one_shot_upstream(answer).await;
        let gateway = ConfigBuilder::new().server("workers = 1").route("/", addr).start().await;
        for i in 0..3 {
            let reply = get(&gateway.url("/"), &[]).await;
            assert_eq!((reply.status.as_u16(), reply.text().as_str()), (200, "until close"), "request {i}");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3, "an HTTP/1.0 answer without keep-alive is never reused");
    }
}

/// An upstream that answers the first request on each connection (keep-alive), then
/// reads the next one and closes without answering: what a server does that drops an
/// idle connection just as a request arrives on it.
async fn answers_once_per_connection() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    counting_upstream(|mut stream| async move {
        let mut buffer = [0; 4096];
        let mut head = Vec::new();
        let mut answered = false;
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buffer[..n]),
            }
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                if answered {
                    return; // the second request: closed unanswered
                }
                head.drain(..end + 4);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
                answered = true;
            }
        }
    })
    .await
}

#[tokio::test]
async fn a_get_the_upstream_drops_unanswered_on_a_reused_connection_is_sent_again() {
    let (addr, accepted) = answers_once_per_connection().await;
    let gateway = ConfigBuilder::new().server("workers = 1").route("/", addr).start().await;
    for i in 0..3 {
        let reply = get(&gateway.url(&format!("/item/{i}")), &[]).await;
        assert_eq!((reply.status.as_u16(), reply.text().as_str()), (200, "ok"), "request {i}");
    }
    // Request 0 opens a connection. Requests 1 and 2 each find the previous connection
    // in the pool, lose it unanswered, and go out again on a new one.
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}
