//! Shared test harness: a gateway started in-process on port 0, upstreams built from
//! closures, and a small HTTP client whose every call is bounded in time.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod browser;
pub mod chrome;
pub mod front_proxy;
pub mod idp;
pub mod redis;
pub mod tls;
pub mod upstream;
pub mod websocket;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use portcullis::{Config, Portcullis};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Every network wait in the tests ends by itself after this long.
pub const BOUND: Duration = Duration::from_secs(20);

/// Builds a gateway config: loopback listeners on port 0, plus what the test adds.
#[derive(Default)]
pub struct ConfigBuilder {
    server: Vec<String>,
    upstream: Vec<String>,
    routes: Vec<String>,
}

impl ConfigBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn server(mut self, line: &str) -> Self {
        self.server.push(line.to_owned());
        self
    }

    pub fn upstream(mut self, line: &str) -> Self {
        self.upstream.push(line.to_owned());
        self
    }

    pub fn route(self, prefix: &str, upstream: SocketAddr) -> Self {
        self.route_with(prefix, &format!("http://{upstream}"), "")
    }

    /// A route with a full upstream URL and extra lines (e.g. `strip_prefix = true`).
    pub fn route_with(mut self, prefix: &str, upstream_url: &str, extra: &str) -> Self {
        self.routes.push(format!("[[route]]\nprefix = {prefix:?}\nupstream = {upstream_url:?}\n{extra}\n"));
        self
    }

    pub fn build(&self) -> String {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{}\n\n[upstream]\n{}\n\n[log]\nlevel = \"debug\"\n\n{}",
            self.server.join("\n"),
            self.upstream.join("\n"),
            self.routes.join("\n")
        )
    }

    pub async fn start(&self) -> TestGateway {
        TestGateway::start(&self.build()).await
    }
}

pub struct TestGateway {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), portcullis::RunError>>,
}

impl TestGateway {
    pub async fn start(toml: &str) -> Self {
        let config = Config::from_sources(toml, Path::new("test.toml"), std::iter::empty())
            .unwrap_or_else(|err| panic!("test config is invalid: {err}\n{toml}"));
        let gateway = Portcullis::bind(config).await.expect("gateway binds");
        let (addr, admin_addr) = (gateway.local_addr(), gateway.admin_addr());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(gateway.run(async move {
            let _ = stopped.await;
        }));
        Self { addr, admin_addr, stop: Some(stop), task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin_addr)
    }

    /// Waits until `/readyz` says ready (with a provider: once it has been loaded).
    pub async fn ready(&self) {
        let deadline = std::time::Instant::now() + BOUND;
        while get(&self.admin_url("/readyz"), &[]).await.status != 200 {
            assert!(std::time::Instant::now() < deadline, "the gateway never became ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends the shutdown signal; the gateway starts draining.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits until `run` has returned (drained or cut at the deadline).
    pub async fn stopped(mut self) {
        self.begin_shutdown();
        let result = tokio::time::timeout(BOUND, &mut self.task).await.expect("gateway stops in time");
        result.expect("gateway task").expect("gateway ran without error");
    }
}

/// A collected response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("body is not JSON ({err}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("header is text"))
    }
}

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn h2_client() -> TestClient {
    Client::builder(TokioExecutor::new()).http2_only(true).build_http()
}

/// Sends `request` and collects the whole response, within [`BOUND`].
pub async fn send(client: &TestClient, request: Request<Full<Bytes>>) -> Reply {
    tokio::time::timeout(BOUND, async {
        let response: Response<_> = client.request(request).await.expect("request is answered");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body arrives").to_bytes();
        Reply { status: parts.status, headers: parts.headers, body }
    })
    .await
    .expect("response within the bound")
}

pub async fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = Request::get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(&client(), request.body(Full::default()).unwrap()).await
}

/// A loopback port with nothing listening on it. The port stays bound (not listening)
/// for the rest of the test process, so no parallel test can take it.
pub fn closed_port() -> SocketAddr {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    std::mem::forget(socket);
    addr
}

/// Spawns `command` with stdout piped; its lines arrive on the receiver (read on a
/// thread, so the test can wait with `recv_timeout`). The child is killed on drop.
pub fn spawn_with_lines(command: &mut std::process::Command) -> (ChildGuard, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut child = ChildGuard(command.stdout(std::process::Stdio::piped()).spawn().expect("the command starts"));
    let stdout = child.0.stdout.take().expect("stdout is piped");
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    (child, lines)
}

/// A child process that is killed and reaped however the test ends.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port on 127.0.0.1 that is free now, for a server whose address must be known
/// before it starts (a gateway's `public_url`, chromedriver).
///
/// Taken below the kernel's ephemeral range: a port the kernel hands out (to a bind on
/// port 0, or as the source port of an outgoing connection, which tests make by the
/// thousand) could be taken again between this check and the server's own bind, and
/// was (`AddrInUse` in CI). Random within the range, so parallel test processes seldom
/// pick the same one.
pub fn free_port() -> u16 {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let low = ephemeral_start.saturating_sub(12_000).max(1024);
    for _ in 0..200 {
        let port = rand::random_range(low..ephemeral_start);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {low}..{ephemeral_start} after 200 tries")
}
