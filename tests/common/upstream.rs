//! Upstream applications for tests: real HTTP servers on loopback port 0.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use tokio::net::TcpListener;

pub type UpstreamBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

pub fn full(data: impl Into<Bytes>) -> UpstreamBody {
    Full::new(data.into()).map_err(|never| match never {}).boxed()
}

/// Serves `handler` on a fresh loopback port until the test process ends.
pub async fn serve<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<UpstreamBody>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let response = handler(request);
                    async move { Ok::<_, Infallible>(response.await) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// Answers every request with JSON describing it: method, URI, version and every
/// header in order (duplicates kept), so tests can see exactly what was forwarded.
/// Each `X-Echo-Set-Cookie` request header comes back as a `Set-Cookie`.
pub async fn echo() -> SocketAddr {
    serve(|request: Request<Incoming>| async move { describe(&request) }).await
}

/// An [`echo`] that also counts the requests it receives.
pub async fn counting_echo() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = count.clone();
    let addr = serve(move |request: Request<Incoming>| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move { describe(&request) }
    })
    .await;
    (addr, count)
}

pub fn describe(request: &Request<Incoming>) -> Response<UpstreamBody> {
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = serde_json::json!({
        "method": request.method().as_str(),
        "uri": request.uri().to_string(),
        "version": format!("{:?}", request.version()),
        "headers": headers,
    });
    let mut response =
        Response::builder().header("content-type", "application/json").body(full(body.to_string())).unwrap();
    // Lets a test make the upstream set cookies of its choosing.
    for cookie in request.headers().get_all("x-echo-set-cookie") {
        response.headers_mut().append("set-cookie", cookie.clone());
    }
    response
}

/// Answers nothing to any request, and reports each request's arrival.
pub async fn hanging() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<()>) {
    let (arrived_tx, arrived) = tokio::sync::mpsc::unbounded_channel();
    let addr = serve(move |_| {
        let arrived_tx = arrived_tx.clone();
        async move {
            let _ = arrived_tx.send(());
            std::future::pending::<Response<UpstreamBody>>().await
        }
    })
    .await;
    (addr, arrived)
}

/// Accepts connections and never answers.
pub async fn silent() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

/// All values of header `name` as the echo upstream saw them.
pub fn seen(echo: &serde_json::Value, name: &str) -> Vec<String> {
    echo["headers"]
        .as_array()
        .expect("echo has headers")
        .iter()
        .filter(|pair| pair[0].as_str() == Some(name))
        .map(|pair| pair[1].as_str().unwrap().to_owned())
        .collect()
}
