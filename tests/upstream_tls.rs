//! `https://` upstreams: verified against a configured CA, with and without a client
//! certificate (mutual TLS), pooled connections reused over TLS, and an untrusted
//! certificate answered 502 with nothing about it in the answer.

mod common;

use common::tls::{TestCa, echo_over_tls, echo_over_tls_on};
use common::upstream::seen;
use std::sync::atomic::Ordering;

/// Writes the PEM texts into files of a temporary folder; their paths, in order.
fn files(dir: &tempfile::TempDir, texts: &[(&str, &str)]) -> Vec<String> {
    texts
        .iter()
        .map(|(name, text)| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        })
        .collect()
}

/// A gateway (one worker: each worker has a pool of its own) whose route `/` goes to
/// `url`, trusting `ca`, written into `dir`.
async fn trusting(ca: &TestCa, url: &str, dir: &tempfile::TempDir) -> common::TestGateway {
    let paths = files(dir, &[("ca.pem", &ca.pem())]);
    common::ConfigBuilder::new()
        .server("workers = 1")
        .route_with("/", url, &format!("ca_file = {:?}", paths[0]))
        .start()
        .await
}

#[tokio::test]
async fn an_https_upstream_with_a_private_ca_is_verified_and_its_connections_pooled() {
    let ca = TestCa::new();
    let (cert, key) = ca.leaf("upstream", (-1, 30));
    let (upstream, connections) = echo_over_tls(&cert, &key, None).await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = trusting(&ca, &format!("https://localhost:{}", upstream.port()), &dir).await;
    for round in 0..3 {
        let reply = common::get(&gateway.url(&format!("/round/{round}")), &[]).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.json()["uri"], format!("/round/{round}"));
        let post = common::send(
            &common::client(),
            http::Request::post(gateway.url("/form")).body(http_body_util::Full::new("a=1".into())).unwrap(),
        )
        .await;
        assert_eq!(post.status, 200);
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1, "one TLS connection, reused");
}

#[tokio::test]
async fn mutual_tls_presents_the_configured_client_certificate() {
    let ca = TestCa::new();
    let (cert, key) = ca.leaf("upstream", (-1, 30));
    let (upstream, _) = echo_over_tls(&cert, &key, Some(&ca)).await;
    let (client_cert, client_key) = ca.leaf("portcullis-client", (-1, 30));
    let dir = tempfile::tempdir().unwrap();
    let paths = files(&dir, &[("ca.pem", &ca.pem()), ("client.crt", &client_cert), ("client.key", &client_key)]);
    let url = format!("https://127.0.0.1:{}", upstream.port());

    let without =
        common::ConfigBuilder::new().route_with("/", &url, &format!("ca_file = {:?}", paths[0])).start().await;
    let refused = common::get(&without.url("/"), &[]).await;
    assert_eq!(refused.status, 502, "the upstream wants a client certificate");
    // TLS 1.3: the refusal comes as an alert after the handshake, with the response.
    assert_eq!(refused.json()["error"], "upstream_tls");

    let with = common::ConfigBuilder::new()
        .upstream(&format!(
            "[upstream.tls]\nca_file = {:?}\nclient_cert_file = {:?}\nclient_key_file = {:?}",
            paths[0], paths[1], paths[2]
        ))
        .route_with("/", &url, "")
        .start()
        .await;
    let reply = common::get(&with.url("/"), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(seen(&reply.json(), "x-test-client-cert"), ["portcullis-client"]);
}

#[tokio::test]
async fn an_untrusted_upstream_certificate_is_a_502_naming_nothing_about_it() {
    let trusted = TestCa::new();
    let other = TestCa::new();
    let (cert, key) = other.leaf("impostor", (-1, 30));
    let (upstream, _) = echo_over_tls(&cert, &key, None).await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = trusting(&trusted, &format!("https://localhost:{}", upstream.port()), &dir).await;
    let reply = common::get(&gateway.url("/"), &[]).await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.json()["error"], "upstream_tls");
    let text = reply.text().to_lowercase();
    for secret in ["impostor", "issuer", "certificate", "localhost"] {
        assert!(!text.contains(secret), "the answer names {secret}: {text}");
    }
}

#[tokio::test]
async fn routes_with_their_own_client_certificates_never_share_a_connection() {
    let ca = TestCa::new();
    let (cert, key) = ca.leaf("upstream", (-1, 30));
    let (upstream, connections) = echo_over_tls(&cert, &key, Some(&ca)).await;
    let (alpha_cert, alpha_key) = ca.leaf("alpha", (-1, 30));
    let (beta_cert, beta_key) = ca.leaf("beta", (-1, 30));
    let dir = tempfile::tempdir().unwrap();
    let paths = files(
        &dir,
        &[
            ("ca.pem", &ca.pem()),
            ("alpha.crt", &alpha_cert),
            ("alpha.key", &alpha_key),
            ("beta.crt", &beta_cert),
            ("beta.key", &beta_key),
        ],
    );
    let url = format!("https://localhost:{}", upstream.port());
    let own = |cert: &str, key: &str| {
        format!("ca_file = {:?}\nclient_cert_file = {:?}\nclient_key_file = {:?}", paths[0], cert, key)
    };
    let gateway = common::ConfigBuilder::new()
        .server("workers = 1")
        .route_with("/alpha/", &url, &own(&paths[1], &paths[2]))
        .route_with("/beta/", &url, &own(&paths[3], &paths[4]))
        .start()
        .await;
    for round in 0..2 {
        for who in ["alpha", "beta"] {
            let reply = common::get(&gateway.url(&format!("/{who}/{round}")), &[]).await;
            assert_eq!(reply.status, 200, "{}", reply.text());
            assert_eq!(seen(&reply.json(), "x-test-client-cert"), [who], "round {round}");
        }
    }
    assert_eq!(connections.load(Ordering::SeqCst), 2, "one pooled connection per client certificate");
}

#[tokio::test]
async fn an_ipv6_literal_upstream_is_verified_by_its_address() {
    let ca = TestCa::new();
    let (cert, key) = ca.leaf("upstream", (-1, 30));
    let (upstream, _) = echo_over_tls_on("[::1]:0", &cert, &key, None, false).await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = trusting(&ca, &format!("https://[::1]:{}", upstream.port()), &dir).await;
    let reply = common::get(&gateway.url("/six"), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["uri"], "/six");
}

#[tokio::test]
async fn an_upstream_that_chooses_http2_gets_one_multiplexed_connection() {
    let ca = TestCa::new();
    let (cert, key) = ca.leaf("upstream", (-1, 30));
    let (upstream, connections) = echo_over_tls_on("127.0.0.1:0", &cert, &key, None, true).await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = trusting(&ca, &format!("https://localhost:{}", upstream.port()), &dir).await;
    let first = common::get(&gateway.url("/first?q=1"), &[("x-custom", "kept")]).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let echo = first.json();
    assert_eq!(echo["version"], "HTTP/2.0");
    assert_eq!(echo["uri"], format!("https://localhost:{}/first?q=1", upstream.port()));
    assert_eq!(seen(&echo, "x-custom"), ["kept"]);
    // Concurrent requests share the one connection.
    let requests = (0..8).map(|n| {
        let url = gateway.url(&format!("/many/{n}"));
        async move { common::get(&url, &[]).await }
    });
    for reply in futures_util::future::join_all(requests).await {
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()["version"], "HTTP/2.0");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1, "one multiplexed connection");
}
