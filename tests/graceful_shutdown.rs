//! Shutdown drains: readiness turns 503 and new connections are refused at once,
//! requests in flight finish, and whatever outlives `server.shutdown_timeout` is cut
//! so the process can exit.

mod common;

use common::upstream::{self, full};
use common::{BOUND, ConfigBuilder};
use http::{Request, Response};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::time::timeout;

/// An upstream that reports when a request arrives and answers once released.
async fn held_upstream() -> (std::net::SocketAddr, oneshot::Receiver<()>, oneshot::Sender<()>) {
    let (arrived_tx, arrived) = oneshot::channel();
    let (release, released) = oneshot::channel::<()>();
    let state = Arc::new(Mutex::new((Some(arrived_tx), Some(released))));
    let addr = upstream::serve(move |_| {
        let state = state.clone();
        async move {
            let (arrived_tx, released) = {
                let mut state = state.lock().unwrap();
                (state.0.take(), state.1.take())
            };
            if let Some(tx) = arrived_tx {
                let _ = tx.send(());
            }
            if let Some(released) = released {
                let _ = timeout(BOUND, released).await;
            }
            Response::new(full("finished"))
        }
    })
    .await;
    (addr, arrived, release)
}

async fn readyz(gateway: &common::TestGateway) -> u16 {
    common::get(&gateway.admin_url("/readyz"), &[]).await.status.as_u16()
}

#[tokio::test]
async fn in_flight_requests_finish_while_new_ones_are_refused() {
    let (app, arrived, release) = held_upstream().await;
    let mut gateway = ConfigBuilder::new().server("shutdown_timeout = \"10s\"").route("/", app).start().await;
    assert_eq!(readyz(&gateway).await, 200);
    assert_eq!(common::get(&gateway.admin_url("/healthz"), &[]).await.status, 200);

    let url = gateway.url("/slow");
    let in_flight = tokio::spawn(async move { common::get(&url, &[]).await });
    timeout(BOUND, arrived).await.unwrap().unwrap();

    gateway.begin_shutdown();
    let deadline = Instant::now() + BOUND;
    while readyz(&gateway).await != 503 {
        assert!(Instant::now() < deadline, "readiness never turned 503 during the drain");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = tokio::net::TcpStream::connect(gateway.addr).await;
    assert!(refused.is_err(), "the listener is closed during the drain");
    assert!(!in_flight.is_finished(), "the request is still in flight while draining");
    release.send(()).unwrap();

    let reply = timeout(BOUND, in_flight).await.unwrap().unwrap();
    assert_eq!(reply.status, 200, "the in-flight request finished");
    assert_eq!(reply.text(), "finished");
    gateway.stopped().await;
}

#[tokio::test]
async fn drain_deadline_cuts_requests_that_outlive_it() {
    let (app, mut arrived) = upstream::hanging().await;
    let gateway = ConfigBuilder::new()
        .server("shutdown_timeout = \"300ms\"")
        .upstream("response_timeout = \"60s\"")
        .route("/", app)
        .start()
        .await;

    let url = gateway.url("/never");
    let in_flight = tokio::spawn(async move {
        let request = Request::get(url).body(Default::default()).unwrap();
        common::client().request(request).await
    });
    timeout(BOUND, arrived.recv()).await.expect("the request reached the upstream").unwrap();

    let started = Instant::now();
    gateway.stopped().await;
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(250), "waited for the deadline, not less: {took:?}");
    assert!(took < Duration::from_secs(5), "stopped soon after the deadline: {took:?}");
    let result = timeout(BOUND, in_flight).await.expect("the cut request is not left hanging").unwrap();
    assert!(result.is_err(), "the cut request ends in a connection error: {result:?}");
}
