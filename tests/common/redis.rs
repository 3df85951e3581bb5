//! A real `redis-server` (Debian's package; `.ci/run` installs it) on a free loopback
//! port, with nothing saved to disk, for the Redis store and cross-replica tests. It
//! can be frozen (SIGSTOP: a Redis that hangs instead of refusing), thawed and killed.

use super::{BOUND, ChildGuard, free_port};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    child: ChildGuard,
}

impl RedisServer {
    pub async fn start() -> Self {
        let binary = "/usr/bin/redis-server";
        assert!(
            std::path::Path::new(binary).exists(),
            "redis-server is not installed: run ./.ci/run (it installs Debian's redis-server)"
        );
        let port = free_port();
        let child = std::process::Command::new(binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--protected-mode", "no", "--loglevel", "warning"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let server = Self { port, child: ChildGuard(child) };
        let deadline = Instant::now() + BOUND;
        while server.command(&["PING"]).await.is_err() {
            assert!(Instant::now() < deadline, "redis-server never answered PING");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The gateway's `[redis]` section for this server.
    pub fn section(&self) -> String {
        format!("[redis]\nurl = \"{}\"\n", self.url())
    }

    /// One command on a fresh connection, bounded in time.
    pub async fn command(&self, args: &[&str]) -> Result<redis::Value, String> {
        let run = async {
            let client = redis::Client::open(self.url()).map_err(|e| e.to_string())?;
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
