//! A real `redis-server` (Debian's package; `.ci/run` installs it) on a free loopback
//! port, with nothing saved to disk, for the Redis store and cross-replica tests. It
//! can be frozen (SIGSTOP: a Redis that hangs instead of refusing), thawed and killed.

use super::{BOUND, ChildGuard, free_port};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    child: ChildGuard,
    /// With TLS only (`rediss://`): the test CA that signed its certificate.
    pub ca_file: Option<std::path::PathBuf>,
    _tls_dir: Option<tempfile::TempDir>,
}

impl RedisServer {
    pub async fn start() -> Self {
        Self::start_with(false).await
    }

    /// A server that speaks TLS only, with a certificate for 127.0.0.1 from a test CA
    /// made here (openssl); clients must trust [`RedisServer::ca_file`].
    pub async fn start_tls() -> Self {
        Self::start_with(true).await
    }

    async fn start_with(tls: bool) -> Self {
        let binary = "/usr/bin/redis-server";
        assert!(
            std::path::Path::new(binary).exists(),
            "redis-server is not installed: run ./.ci/run (it installs Debian's redis-server)"
        );
        let port = free_port();
        let mut command = std::process::Command::new(binary);
        command.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]).args([
            "--protected-mode",
            "no",
            "--loglevel",
            "warning",
        ]);
        let tls_dir = tls.then(|| tempfile::tempdir().unwrap());
        match &tls_dir {
            None => command.args(["--port", &port.to_string()]),
            Some(dir) => {
                test_ca(dir.path());
                let file = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
                command
                    .args(["--port", "0", "--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
                    .args(["--tls-cert-file", &file("server.pem"), "--tls-key-file", &file("server.key")])
                    .args(["--tls-ca-cert-file", &file("ca.pem")])
            }
        };
        let child = command.stdout(std::process::Stdio::null()).spawn().expect("redis-server starts");
        let ca_file = tls_dir.as_ref().map(|dir| dir.path().join("ca.pem"));
        let server = Self { port, child: ChildGuard(child), ca_file, _tls_dir: tls_dir };
        let deadline = Instant::now() + BOUND;
        while server.command(&["PING"]).await.is_err() {
            assert!(Instant::now() < deadline, "redis-server never answered PING");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server
    }

    pub fn url(&self) -> String {
        let scheme = if self.ca_file.is_some() { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// The gateway's `[redis]` section for this server.
    pub fn section(&self) -> String {
        format!("[redis]\nurl = \"{}\"\n", self.url())
    }

    /// One command on a fresh connection, bounded in time.
    pub async fn command(&self, args: &[&str]) -> Result<redis::Value, String> {
        let run = async {
            let client = match &self.ca_file {
                None => redis::Client::open(self.url()),
                Some(ca) => redis::Client::build_with_tls(
                    self.url(),
                    redis::TlsCertificates { client_tls: None, root_cert: Some(std::fs::read(ca).unwrap()) },
                ),
            }
            .map_err(|e| e.to_string())?;
            let mut connection = client.get_multiplexed_async_connection().await.map_err(|e| e.to_string())?;
            let mut command = redis::cmd(args[0]);
            for arg in &args[1..] {
                command.arg(*arg);
            }
            command.query_async::<redis::Value>(&mut connection).await.map_err(|e| e.to_string())
        };
        tokio::time::timeout(Duration::from_secs(2), run).await.map_err(|_| "timed out".to_owned())?
    }

    /// Commands the server has processed so far (`INFO stats`), this one's own INFO
    /// included.
    pub async fn commands_processed(&self) -> u64 {
        let info = match self.command(&["INFO", "stats"]).await.expect("INFO answers") {
            redis::Value::BulkString(bytes) => String::from_utf8(bytes).unwrap(),
            redis::Value::VerbatimString { text, .. } => text,
            other => panic!("INFO answered {other:?}"),
        };
        info.lines()
            .find_map(|line| line.strip_prefix("total_commands_processed:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("INFO stats has total_commands_processed")
    }

    /// The keys under `pattern` (`KEYS`: the tests' servers are small).
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        match self.command(&["KEYS", pattern]).await.expect("KEYS answers") {
            redis::Value::Array(keys) => keys
                .into_iter()
                .map(|key| match key {
                    redis::Value::BulkString(bytes) => String::from_utf8(bytes).unwrap(),
                    other => panic!("a key {other:?}"),
                })
                .collect(),
            other => panic!("KEYS answered {other:?}"),
        }
    }

    /// SIGSTOP: the server keeps its connections but answers nothing.
    pub fn freeze(&self) {
        signal(self.child.0.id(), "-STOP");
    }

    /// SIGCONT.
    pub fn thaw(&self) {
        signal(self.child.0.id(), "-CONT");
    }
}

fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill").arg(signal).arg(pid.to_string()).status().expect("kill runs");
    assert!(status.success(), "kill {signal} {pid}");
}

/// A CA and a certificate for 127.0.0.1 it signed, into `dir` (ca.pem, server.pem,
/// server.key).
fn test_ca(dir: &std::path::Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    let steps: [&[&str]; 3] = [
        &[
            &["req", "-x509"],
            &ec[..],
            &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=portcullis test CA"],
        ]
        .concat(),
        &[&["req"], &ec[..], &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]].concat(),
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    ];
    for args in steps {
        let output = std::process::Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
        assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
}
