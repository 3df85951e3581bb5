//! HTTPS on the main listener, as an operator runs it (`portcullis run` with
//! `[server.tls]`): HTTP/1.1 and HTTP/2 by ALPN with a test CA, the certificate
//! replaced on disk without a restart while open connections keep theirs, a corrupt
//! replacement refused and logged, and `check` naming an expired certificate and a key
//! of another certificate.

mod common;

use bytes::Bytes;
use common::tls::TestCa;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use portcullis::Config;
use portcullis::config::ConfigError;
use rustls::pki_types::ServerName;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};
use tokio_rustls::TlsConnector;

/// Writes `content` to `path` as a replacement does: a new file renamed over the old.
fn replace(path: &Path, content: &str) {
    let fresh = path.with_extension("new");
    std::fs::write(&fresh, content).unwrap();
    std::fs::rename(&fresh, path).unwrap();
}

/// `portcullis run` with `[server.tls]` in front of an echo app; its log lines.
struct Running {
    _child: common::ChildGuard,
    lines: Receiver<String>,
    addr: String,
    cert_file: PathBuf,
    key_file: PathBuf,
    _dir: tempfile::TempDir,
}

async fn run(ca: &TestCa, name: &str) -> Running {
    run_with(ca, name, "").await.0
}

/// As [`run`], with `tls_extra` added to `[server.tls]`; also the log line that said
/// the gateway listens.
async fn run_with(ca: &TestCa, name: &str, tls_extra: &str) -> (Running, serde_json::Value) {
    let app = common::upstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.leaf(name, (-1, 30));
    let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    let config = dir.path().join("portcullis.toml");
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[server.tls]\ncert_file = {:?}\nkey_file = {:?}\n\
         {tls_extra}\n[[route]]\nprefix = \"/\"\nupstream = \"http://{app}\"\n",
        cert_file.display().to_string(),
        key_file.display().to_string(),
    );
    std::fs::write(&config, toml).unwrap();
    let (child, lines) = common::spawn_with_lines(
        std::process::Command::new(env!("CARGO_BIN_EXE_portcullis")).args(["run", "--config"]).arg(&config),
    );
    let listening = loop {
        let line = lines.recv_timeout(common::BOUND).expect("the gateway starts");
        let line: serde_json::Value = serde_json::from_str(&line).unwrap();
        if line["message"] == "portcullis is listening" {
            assert_eq!(line["tls"], true);
            break line;
        }
    };
    let addr = listening["listen"].as_str().unwrap().to_owned();
    (Running { _child: child, lines, addr, cert_file, key_file, _dir: dir }, listening)
}

/// A TLS connection to `addr`: the certificate the server presented, and the protocol
/// ALPN chose.
async fn connect(
    connector: &TlsConnector,
    addr: &str,
) -> (tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String, Option<Vec<u8>>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let stream = tokio::time::timeout(common::BOUND, connector.connect(name, tcp)).await.unwrap().unwrap();
    let (_, session) = stream.get_ref();
    let presented = session.peer_certificates().unwrap()[0].clone();
    let (_, parsed) = x509_parser::parse_x509_certificate(presented.as_ref()).unwrap();
    let common_name = parsed.subject().iter_common_name().next().unwrap().as_str().unwrap().to_owned();
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    (stream, common_name, alpn)
}

fn get(path: &str) -> http::Request<Empty<Bytes>> {
    http::Request::get(path).header("host", "localhost").body(Empty::new()).unwrap()
}

async fn echo_of(response: http::Response<hyper::body::Incoming>) -> serde_json::Value {
    assert_eq!(response.status(), 200);
    serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap()
}

/// The name on the certificate a new handshake gets.
async fn served_name(ca: &TestCa, addr: &str) -> String {
    connect(&ca.client(b"http/1.1"), addr).await.1
}

#[tokio::test]
async fn https_speaks_http1_and_http2_by_alpn() {
    let ca = TestCa::new();
    let gateway = run(&ca, "first").await;

    let (stream, name, alpn) = connect(&ca.client(b"http/1.1"), &gateway.addr).await;
    assert_eq!((name.as_str(), alpn.as_deref()), ("first", Some(&b"http/1.1"[..])));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let echo = echo_of(sender.send_request(get("/one")).await.unwrap()).await;
    assert_eq!(common::upstream::seen(&echo, "x-forwarded-proto"), ["https"]);

    let (stream, _, alpn) = connect(&ca.client(b"h2"), &gateway.addr).await;
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let request = http::Request::get("https://localhost/two").body(Empty::<Bytes>::new()).unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    let echo = echo_of(response).await;
    assert_eq!(echo["uri"], "/two");
    assert_eq!(common::upstream::seen(&echo, "x-forwarded-proto"), ["https"]);
}

#[tokio::test]
async fn a_replaced_certificate_reaches_new_handshakes_while_open_connections_keep_theirs() {
    let ca = TestCa::new();
    let gateway = run(&ca, "first").await;
    let (stream, name, _) = connect(&ca.client(b"http/1.1"), &gateway.addr).await;
    assert_eq!(name, "first");
    let (mut open, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    echo_of(open.send_request(get("/before")).await.unwrap()).await;

    let (cert, key) = ca.leaf("second", (-1, 30));
    replace(&gateway.key_file, &key);
    replace(&gateway.cert_file, &cert);
    let started = Instant::now();
    while served_name(&ca, &gateway.addr).await != "second" {
        assert!(started.elapsed() < Duration::from_secs(10), "the new certificate is not served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The connection opened before the change still works, on its first certificate.
    echo_of(open.send_request(get("/after")).await.unwrap()).await;
    let reloaded = loop {
        let line: serde_json::Value =
            serde_json::from_str(&gateway.lines.recv_timeout(common::BOUND).unwrap()).unwrap();
        if line["message"] == "TLS certificate reloaded" {
            break line;
        }
    };
    assert_eq!(reloaded["level"], "INFO");
}

#[tokio::test]
async fn a_corrupt_replacement_is_logged_and_the_previous_certificate_kept() {
    let ca = TestCa::new();
    let gateway = run(&ca, "first").await;
    replace(&gateway.cert_file, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n");
    let refused = loop {
        let line = gateway.lines.recv_timeout(common::BOUND).expect("the refusal is logged");
        let line: serde_json::Value = serde_json::from_str(&line).unwrap();
        if line["level"] == "WARN" {
            break line;
        }
    };
    assert!(refused["message"].as_str().unwrap().contains("still serving the previous certificate"), "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("tls.crt"), "names the file: {refused}");
    assert_eq!(served_name(&ca, &gateway.addr).await, "first");

    // A key that belongs to another certificate is refused the same way.
    let (_, other_key) = ca.leaf("other", (-1, 30));
    let (cert, _) = ca.leaf("second", (-1, 30));
    replace(&gateway.cert_file, &cert);
    replace(&gateway.key_file, &other_key);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(served_name(&ca, &gateway.addr).await, "first");
}

fn tls_problems(cert: &str, key: &str) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    let toml = format!(
        "[server.tls]\ncert_file = {:?}\nkey_file = {:?}\n[[route]]\nprefix = \"/\"\nupstream = \"http://127.0.0.1:3000\"\n",
        cert_file.display().to_string(),
        key_file.display().to_string()
    );
    match Config::from_sources(&toml, Path::new("t.toml"), std::iter::empty()) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid(problems)) => problems.into_iter().map(|p| (p.key, p.message)).collect(),
        Err(other) => panic!("{other}"),
    }
}

#[test]
fn check_names_an_expired_certificate_a_foreign_key_and_a_missing_file() {
    let ca = TestCa::new();
    let (good_cert, good_key) = ca.leaf("good", (-1, 30));
    assert!(tls_problems(&good_cert, &good_key).is_empty());

    let (expired, expired_key) = ca.leaf("old", (-60, -1));
    let found = tls_problems(&expired, &expired_key);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "server.tls.cert_file");
    assert!(found[0].1.contains("c.pem") && found[0].1.contains("expired"), "{found:?}");

    let (_, foreign_key) = ca.leaf("other", (-1, 30));
    let found = tls_problems(&good_cert, &foreign_key);
    assert_eq!(found[0].0, "server.tls.key_file");
    assert!(found[0].1.contains("k.pem") && found[0].1.contains("does not match"), "{found:?}");
    assert!(!found[0].1.contains("PRIVATE KEY"), "never the key itself");

    let found = tls_problems("", &good_key);
    assert_eq!(found[0].0, "server.tls.cert_file");
    assert!(found[0].1.contains("no PEM certificate"), "{found:?}");

    let only_cert = Config::from_sources(
        "[server.tls]\ncert_file = \"/x.pem\"\n[[route]]\nprefix = \"/\"\nupstream = \"http://127.0.0.1:3000\"\n",
        Path::new("t.toml"),
        std::iter::empty(),
    );
    let Err(ConfigError::Invalid(problems)) = only_cert else { panic!("a cert without a key") };
    assert_eq!(problems[0].key, "server.tls.key_file");
}

#[tokio::test]
async fn hsts_on_every_answer_and_plain_http_redirected_to_https() {
    let ca = TestCa::new();
    let (gateway, listening) =
        run_with(&ca, "first", "hsts = \"max-age=31536000\"\nredirect_listen = \"127.0.0.1:0\"").await;
    let (stream, _, _) = connect(&ca.client(b"http/1.1"), &gateway.addr).await;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let response = sender.send_request(get("/page")).await.unwrap();
    assert_eq!(response.headers()["strict-transport-security"], "max-age=31536000");

    let redirects = listening["redirect_listen"].as_str().expect("the redirect listener's address is logged");
    let https_port = gateway.addr.rsplit_once(':').unwrap().1;
    let reply = common::get(&format!("http://{redirects}/a/b?c=1"), &[("host", "app.example:8080")]).await;
    assert_eq!(reply.status, 308);
    assert_eq!(reply.header("location"), Some(format!("https://app.example:{https_port}/a/b?c=1").as_str()));
    let reply = common::get(&format!("http://{redirects}/"), &[("host", "evil.example/@x")]).await;
    assert_eq!(reply.status, 400, "a Host that is no authority is not redirected to");
}
