//! Bodies stream through the gateway in both directions: the far side sees the first
//! bytes before the near side has finished, and a 1 GiB transfer each way leaves the
//! process's peak memory flat.

mod common;

use bytes::Bytes;
use common::upstream::{self, UpstreamBody, full};
use common::{BOUND, ConfigBuilder};
use http::{Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;

type Chunk = Result<Frame<Bytes>, std::io::Error>;

/// A request or response body fed from a channel, so a test decides when bytes flow.
fn channel_body(rx: mpsc::Receiver<Chunk>) -> StreamBody<impl futures_util::Stream<Item = Chunk>> {
    let mut rx = rx;
    StreamBody::new(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

fn data(bytes: &Bytes) -> Chunk {
    Ok(Frame::data(bytes.clone()))
}

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn upload_reaches_upstream_before_the_client_finishes() {
    let (first_seen_tx, first_seen) = oneshot::channel::<()>();
    let first_seen_tx = Arc::new(Mutex::new(Some(first_seen_tx)));
    let app = upstream::serve(move |request: Request<hyper::body::Incoming>| {
        let first_seen_tx = first_seen_tx.clone();
        async move {
            let mut body = request.into_body();
            let mut total = 0;
            while let Some(frame) = body.frame().await {
                if let Some(chunk) = frame.expect("upload frame").data_ref() {
                    total += chunk.len();
                    if let Some(tx) = first_seen_tx.lock().unwrap().take() {
                        let _ = tx.send(());
                    }
                }
            }
            Response::new(full(total.to_string()))
        }
    })
    .await;
    let gateway = ConfigBuilder::new().route("/", app).start().await;

    let (tx, rx) = mpsc::channel::<Chunk>(1);
    let client = Client::builder(TokioExecutor::new()).build_http();
    let request = Request::post(gateway.url("/upload")).body(channel_body(rx)).unwrap();
    let response = tokio::spawn(async move { client.request(request).await });

    let chunk = Bytes::from(vec![7u8; 64 * 1024]);
    tx.send(data(&chunk)).await.unwrap();
    timeout(BOUND, first_seen)
        .await
        .expect("upstream saw the first bytes while the client was still sending (no buffering)")
        .unwrap();
    for _ in 0..15 {
        tx.send(data(&chunk)).await.unwrap();
    }
    drop(tx);

    let response = timeout(BOUND, response).await.unwrap().unwrap().expect("answered");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, (16 * 64 * 1024).to_string());
}

#[tokio::test]
async fn download_reaches_client_before_the_upstream_finishes() {
    let (client_got_tx, client_got) = oneshot::channel::<()>();
    let client_got = Arc::new(Mutex::new(Some(client_got)));
    let app = upstream::serve(move |_| {
        let client_got = client_got.lock().unwrap().take().expect("one request");
        async move {
            let (tx, rx) = mpsc::channel::<Chunk>(1);
            tokio::spawn(async move {
                tx.send(Ok(Frame::data(Bytes::from_static(b"first")))).await.unwrap();
                // The rest only once the client proves it already has the first part.
                if timeout(BOUND, client_got).await.is_ok() {
                    tx.send(Ok(Frame::data(Bytes::from_static(b"-rest")))).await.unwrap();
                }
            });
            let body: UpstreamBody = channel_body(rx).map_err(Into::into).boxed();
            Response::new(body)
        }
    })
    .await;
    let gateway = ConfigBuilder::new().route("/", app).start().await;

    let response = common::client()
        .request(Request::get(gateway.url("/download")).body(Default::default()).unwrap())
        .await
        .unwrap();
    let mut body = response.into_body();
    let first = timeout(BOUND, body.frame())
        .await
        .expect("first bytes arrived while the upstream was still sending (no buffering)")
        .unwrap()
        .unwrap();
    assert_eq!(first.data_ref().unwrap().as_ref(), b"first");
    client_got_tx.send(()).unwrap();
    let rest = timeout(BOUND, body.collect()).await.unwrap().unwrap().to_bytes();
    assert_eq!(rest.as_ref(), b"-rest");
}

/// Peak resident memory of this test process (its own process under nextest).
fn peak_rss_mib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_each_way_with_flat_memory() {
    const TOTAL_MIB: usize = 1024;
    let app = upstream::serve(|request: Request<hyper::body::Incoming>| async move {
        let download = request.uri().path() == "/download";
        let mut body = request.into_body();
        let mut received = 0usize;
        while let Some(frame) = body.frame().await {
            received += frame.unwrap().data_ref().map_or(0, Bytes::len);
        }
        if !download {
            return Response::new(full(received.to_string()));
        }
        let (tx, rx) = mpsc::channel::<Chunk>(4);
        tokio::spawn(async move {
            let chunk = Bytes::from(vec![1u8; MIB]);
            for _ in 0..TOTAL_MIB {
                if tx.send(data(&chunk)).await.is_err() {
                    return;
                }
            }
        });
        Response::new(channel_body(rx).map_err(Into::into).boxed())
    })
    .await;
    let gateway = ConfigBuilder::new().route("/", app).start().await;
    let before = peak_rss_mib();

    // Upload 1 GiB.
    let (tx, rx) = mpsc::channel::<Chunk>(4);
    tokio::spawn(async move {
        let chunk = Bytes::from(vec![2u8; MIB]);
        for _ in 0..TOTAL_MIB {
            tx.send(data(&chunk)).await.unwrap();
        }
    });
    let client = Client::builder(TokioExecutor::new()).build_http();
    let request = Request::post(gateway.url("/upload")).body(channel_body(rx)).unwrap();
    let response = timeout(BOUND * 6, client.request(request)).await.unwrap().unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, (TOTAL_MIB * MIB).to_string());

    // Download 1 GiB, counting without keeping.
    let response = common::client()
        .request(Request::get(gateway.url("/download")).body(Default::default()).unwrap())
        .await
        .unwrap();
    let mut body = response.into_body();
    let mut received = 0usize;
    timeout(BOUND * 6, async {
        while let Some(frame) = body.frame().await {
            received += frame.unwrap().data_ref().map_or(0, Bytes::len);
        }
    })
    .await
    .expect("download finishes");
    assert_eq!(received, TOTAL_MIB * MIB);

    let growth = peak_rss_mib().saturating_sub(before);
    assert!(growth < 64, "peak memory grew by {growth} MiB while streaming 2 GiB (before: {before} MiB)");
}

#[tokio::test]
async fn slow_upload_outlasting_the_response_timeout_succeeds() {
    // The response timeout measures the upstream once it has the whole request; a slow
    // upload is governed by the idle timeout alone.
    let app = upstream::serve(|request: Request<hyper::body::Incoming>| async move {
        let body = request.into_body().collect().await.unwrap().to_bytes();
        Response::new(full(body.len().to_string()))
    })
    .await;
    let gateway = ConfigBuilder::new()
        .upstream("response_timeout = \"300ms\"")
        .upstream("idle_timeout = \"5s\"")
        .route("/", app)
        .start()
        .await;

    let (tx, rx) = mpsc::channel::<Chunk>(1);
    tokio::spawn(async move {
        for _ in 0..8 {
            tx.send(Ok(Frame::data(Bytes::from_static(b"0123456789")))).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        }
    });
    let client = Client::builder(TokioExecutor::new()).build_http();
    let request = Request::post(gateway.url("/slow-upload")).body(channel_body(rx)).unwrap();
    let response = timeout(BOUND, client.request(request)).await.unwrap().unwrap();
    assert_eq!(response.status(), 200, "an upload of 1.2 s is not a 300 ms upstream timeout");
    assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), "80");
}
