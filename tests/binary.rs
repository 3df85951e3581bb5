//! The `portcullis run` binary as an operator runs it: configured by file plus
//! environment, JSON logs on stdout (one access line per request, never a query string),
//! health endpoints, and a clean exit on SIGTERM.

mod common;

use common::upstream;
use std::process::Command;
use std::time::Duration;

#[tokio::test]
async fn run_logs_json_serves_and_exits_cleanly_on_sigterm() {
    let app = upstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("portcullis.toml");
    std::fs::write(&config, format!("[[route]]\nprefix = \"/\"\nupstream = \"http://{app}\"\n")).unwrap();

    let (mut child, lines) = common::spawn_with_lines(
        std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["run", "--config"])
            .arg(&config)
            .env("PORTCULLIS_SERVER__LISTEN", "127.0.0.1:0")
            .env("PORTCULLIS_SERVER__ADMIN_LISTEN", "127.0.0.1:0"),
    );
    let mut log = Vec::new();
    let next_json = |log: &mut Vec<String>| -> serde_json::Value {
        let line = lines.recv_timeout(common::BOUND).expect("a log line in time");
        log.push(line.clone());
        serde_json::from_str(&line).unwrap_or_else(|err| panic!("log line is not JSON ({err}): {line}"))
    };

    let ready = loop {
        let line = next_json(&mut log);
        if line["message"] == "portcullis is listening" {
            break line;
        }
    };
    let listen = ready["listen"].as_str().unwrap().to_owned();
    let admin = ready["admin_listen"].as_str().unwrap().to_owned();

    assert_eq!(common::get(&format!("http://{admin}/healthz"), &[]).await.status, 200);
    assert_eq!(common::get(&format!("http://{admin}/readyz"), &[]).await.status, 200);
    let reply = common::get(&format!("http://{listen}/callback?code=SECRET-CODE&state=xyz"), &[]).await;
    assert_eq!(reply.status, 200);
    let request_id = reply.header("x-request-id").unwrap().to_owned();

    let access = loop {
        let line = next_json(&mut log);
        if line["target"] == "access" {
            break line;
        }
    };
    assert_eq!(access["method"], "GET");
    assert_eq!(access["path"], "/callback");
    assert_eq!(access["status"], 200);
    assert_eq!(access["route"], "/");
    assert_eq!(access["request_id"], request_id.as_str());
    assert!(access["duration_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(access["level"], "INFO");

    let killed = Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = {
        let deadline = std::time::Instant::now() + common::BOUND;
        loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "portcullis did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(2)) {
        log.push(line);
    }
    let all = log.join("\n");
    assert!(all.contains("shutdown signal received"), "{all}");
    assert!(!all.contains("SECRET-CODE"), "a query string reached the log:\n{all}");
}

#[test]
fn port_in_use_is_a_clear_startup_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"{}\"\nadmin_listen = \"127.0.0.1:0\"\n[[route]]\nprefix = \"/\"\nupstream = \"http://127.0.0.1:1\"\n",
            taken.local_addr().unwrap()
        ),
    )
    .unwrap();
    let output =
        Command::new(env!("CARGO_BIN_EXE_portcullis")).args(["run", "--config"]).arg(&config).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("cannot listen on server.listen = {}", taken.local_addr().unwrap())), "{stderr}");
}
