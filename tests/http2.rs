//! Clients may speak HTTP/2 (here: prior knowledge, as behind a TLS-terminating
//! load balancer that speaks h2c); upstreams get HTTP/1.1.

mod common;

use bytes::Bytes;
use common::upstream::{self, full, seen};
use common::{ConfigBuilder, h2_client, send};
use http::{Request, Response, Version};
use http_body_util::{BodyExt, Full};

#[tokio::test]
async fn http2_client_is_proxied_to_an_http1_upstream() {
    let app = upstream::echo().await;
    let gateway = ConfigBuilder::new().route("/", app).start().await;
    let client = h2_client();

    let response = client.request(Request::get(gateway.url("/h2?x=1")).body(Full::default()).unwrap()).await.unwrap();
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let echo: serde_json::Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(echo["version"], "HTTP/1.1");
    assert_eq!(echo["uri"], "/h2?x=1");
    assert_eq!(seen(&echo, "x-forwarded-host"), [gateway.addr.to_string()], ":authority becomes the forwarded host");
}

#[tokio::test]
async fn http2_streams_are_multiplexed_with_bodies() {
    let app = upstream::serve(|request: Request<hyper::body::Incoming>| async move {
        let body = request.into_body().collect().await.unwrap().to_bytes();
        Response::new(full(body.len().to_string()))
    })
    .await;
    let gateway = ConfigBuilder::new().route("/", app).start().await;
    let client = h2_client();

    let mut calls = Vec::new();
    for i in 0..20usize {
        let client = client.clone();
        let url = gateway.url("/upload");
        calls.push(tokio::spawn(async move {
            let body = Full::new(Bytes::from(vec![b'x'; i * 1000]));
            (i, send(&client, Request::post(url).body(body).unwrap()).await)
        }));
    }
    for call in calls {
        let (i, reply) = call.await.unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text(), (i * 1000).to_string());
    }
}
