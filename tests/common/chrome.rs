//! Debian's headless Chromium driven through chromedriver (WebDriver) with fantoccini.

use fantoccini::{Client, ClientBuilder};
use serde_json::json;
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free port; killed when dropped.
pub async fn chromedriver() -> (crate::common::ChildGuard, u16) {
    chromedriver_at_home(None).await
}

/// As [`chromedriver`], with `HOME` set to `home` for it and the Chromium it starts
/// (which reads the certificates it trusts from `$HOME/.pki/nssdb`).
pub async fn chromedriver_at_home(home: Option<&std::path::Path>) -> (crate::common::ChildGuard, u16) {
    for needed in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            std::path::Path::new(needed).exists(),
            "{needed} is missing: the browser tests need Debian's chromium and chromium-driver (./.ci/run installs them)"
        );
    }
    let port = crate::common::free_port();
    let mut command = std::process::Command::new(CHROMEDRIVER);
    if let Some(home) = home {
        command.env("HOME", home);
    }
    let child = command
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let deadline = std::time::Instant::now() + crate::common::BOUND;
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "chromedriver did not start listening");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (crate::common::ChildGuard(child), port)
}

/// A home whose NSS database (`.pki/nssdb`) trusts the CA certificate `ca_pem` for
/// websites, as an administrator would install it: made with NSS's `certutil`.
pub fn home_trusting(ca_pem: &str) -> tempfile::TempDir {
    const CERTUTIL: &str = "/usr/bin/certutil";
    assert!(std::path::Path::new(CERTUTIL).exists(), "{CERTUTIL} is missing: install libnss3-tools (./.ci/run does)");
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join(".pki/nssdb");
    std::fs::create_dir_all(&db).unwrap();
    let ca = home.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let database = format!("sql:{}", db.display());
    let run = |args: &[&str]| {
        let status = std::process::Command::new(CERTUTIL).args(args).status().expect("certutil runs");
        assert!(status.success(), "certutil {args:?} failed");
    };
    run(&["-d", &database, "-N", "--empty-password"]);
    run(&["-d", &database, "-A", "-t", "C,,", "-n", "portcullis-test-ca", "-i", &ca.display().to_string()]);
    home
}

/// A headless Chromium session, with `extra` command-line switches.
pub async fn chromium(driver_port: u16, extra: &[String]) -> Client {
    let profile = tempfile::tempdir().unwrap().keep();
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
    ]
    .map(String::from)
    .to_vec();
    args.push(format!("--user-data-dir={}", profile.display()));
    args.extend_from_slice(extra);
    let capabilities = json!({ "goog:chromeOptions": { "binary": CHROMIUM, "args": args } });
    let capabilities = capabilities.as_object().unwrap().clone();
    ClientBuilder::rustls()
        .unwrap()
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("a Chromium session")
}
