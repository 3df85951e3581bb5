//! The `portcullis` command: `run` (default), `check`, `demo`.

use clap::{Parser, Subcommand};
use portcullis::{Config, Portcullis};
use std::path::PathBuf;
use std::process::ExitCode;

/// OAuth2/OIDC backend-for-frontend gateway: keeps tokens out of single-page apps.
#[derive(Parser)]
#[command(name = "portcullis", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Configuration file; every key can be overridden by PORTCULLIS_<SECTION>__<KEY>.
    #[arg(long, short, global = true, env = "PORTCULLIS_CONFIG", default_value = "portcullis.toml")]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Run,
    /// Validate the configuration and print every problem; exit 2 if there are any.
    Check,
    /// Run the gateway in front of a built-in demo application on localhost.
    Demo {
        /// Port of the gateway on 127.0.0.1.
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
}

/// Exit codes: 0 ok, 1 runtime failure (e.g. port in use), 2 bad configuration.
fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Check => check(&cli.config),
        Command::Run => run(&cli.config),
        Command::Demo { port } => demo(port),
    }
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|err| {
        eprintln!("portcullis: {}", path.display());
        for problem in err.problems() {
            eprintln!("  error: {problem}");
        }
        ExitCode::from(2)
    })
}

fn check(path: &std::path::Path) -> ExitCode {
    match load(path) {
        Ok(config) => {
            println!(
                "{}: ok ({} route{}, listening on {}, admin on {})",
                path.display(),
                config.routes.len(),
                if config.routes.len() == 1 { "" } else { "s" },
                config.server.listen,
                config.server.admin_listen
            );
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn run(path: &std::path::Path) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let _log_guard = portcullis::telemetry::init(&config.log);
    runtime().block_on(async move {
        match Portcullis::bind(config).await {
            Ok(gateway) => {
                gateway.run(shutdown_signal()).await;
                ExitCode::SUCCESS
            }
            Err(err) => {
                tracing::error!(error = %err, "startup failed");
                eprintln!("portcullis: {err}");
                ExitCode::FAILURE
            }
        }
    })
}

fn demo(port: u16) -> ExitCode {
    let log = portcullis::config::LogConfig {
        level: "info".into(),
        format: portcullis::config::LogFormat::Text,
        access_log: true,
    };
    let _log_guard = portcullis::telemetry::init(&log);
    runtime().block_on(async move {
        match portcullis::demo::run(port, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("portcullis demo: {err}");
                ExitCode::FAILURE
            }
        }
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime starts")
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM (Kubernetes, systemd, docker stop).
async fn shutdown_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutdown signal received");
}
