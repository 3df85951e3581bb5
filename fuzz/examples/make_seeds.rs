//! Writes the seed corpora under `fuzz/corpus/` (which git ignores). Run from `fuzz/`:
//! `cargo +nightly run --example make_seeds`. The important one is
//! `corpus/cookie_open/seed-genuine`: a real session sealed under the target's key and
//! split into chunks, which no fuzzer could forge. Sealing uses a fresh random nonce,
//! so each run writes a different (equally genuine) file.

#[allow(dead_code)] // the round-trip key is only for the target
#[path = "../common/cookie.rs"]
mod cookie;

use portcullis::auth::cookies;
use portcullis::session::{chunks, seal::Sealer};
use std::fs;
use std::path::Path;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    fs::create_dir_all(&dir).expect("create corpus directory");
    fs::write(dir.join(name), bytes).expect("write seed");
}

fn main() {
    let sealer = Sealer::new(&[cookie::KEY.to_vec()]).expect("32-byte key");
    let sealed = sealer.seal(cookie::SESSION, &cookie::genuine_plaintext());
    let parts = chunks::split(cookie::SESSION, &sealed).expect("fits in the chunk limit");
    assert!(parts.len() >= 2, "the genuine seed should be split, got {} cookie(s)", parts.len());
    let header: Vec<String> = parts.iter().map(|(name, value)| format!("{name}={value}")).collect();
    let mut input = vec![cookie::MODE_HEADER];
    input.extend_from_slice(format!("app=1; {}; theme=dark", header.join("; ")).as_bytes());
    // It must open the way the gateway reads it, or the seed is no use.
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::COOKIE, http::HeaderValue::from_bytes(&input[1..]).expect("header-safe"));
    let all = cookies::read(&headers);
    let joined = chunks::join(cookie::SESSION, |name| all.iter().find(|(n, _)| *n == name).map(|(_, v)| *v));
    assert_eq!(
        joined.and_then(|value| sealer.open(cookie::SESSION, &value)),
        Some(cookie::genuine_plaintext()),
        "the genuine seed does not open"
    );
    write("cookie_open", "seed-genuine", &input);
    // Round-trip mode (even first byte): a short and a chunk-sized plaintext.
    write("cookie_open", "seed-round-trip-short", b"0hello");
    write("cookie_open", "seed-round-trip-long", &[b"0".as_slice(), &[b'y'; 3000]].concat());
    write("cookie_open", "seed-forged", b"1__Host-portcullis.0=2.AQ; __Host-portcullis.1=AAAA");

    for (i, path) in
        ["/", "/api/users", "//admin", "/%61pi/%7Euser", "/public/..%3b/admin", "/caf%C3%A9", "/a;b=c/d", "/%C0%AE"]
            .iter()
            .enumerate()
    {
        write("path_normalize", &format!("seed-{i}"), path.as_bytes());
    }
    for (i, target) in
        ["/", "/app/page?x=1#frag", "/a/b/../c", "//evil.example", "/\\evil", "https://evil.example", "/%2F%2Fx"]
            .iter()
            .enumerate()
    {
        write("return_to", &format!("seed-{i}"), target.as_bytes());
    }
    // First byte: even = answer to a GET, odd = to a HEAD.
    for (i, answer) in [
        "0HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: keep-alive\r\n\r\nhello",
        "0HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nt: 1\r\n\r\n",
        "0HTTP/1.0 200 OK\r\nserver: x\r\n\r\nuntil close",
        "1HTTP/1.1 304 Not Modified\r\ncontent-length: 7\r\n\r\n",
        "0HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\nconnection: close, x-hop\r\nx-hop: 1\r\n\r\nhello",
    ]
    .iter()
    .enumerate()
    {
        write("upstream_answer", &format!("seed-{i}"), answer.as_bytes());
    }
    println!("wrote seeds; genuine session cookie in {} chunks", parts.len());
}
