//! The `portcullis` command: `run` (default), `check`, `demo`, `sessions revoke`.

use clap::{Parser, Subcommand};
use portcullis::{Config, Portcullis};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc: the proxy path allocates many small, short-lived buffers across threads;
/// glibc malloc spent measurably more time on them (see bench/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Operate on the sessions of the gateway this configuration describes.
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// Run the Cognito-compatible development identity provider (tests and demos only).
    DevIdp {
        /// Provider settings (pool, clients, users, lifetimes); see config/dev-idp.example.toml.
        #[arg(long = "idp-config")]
        idp_config: Option<PathBuf>,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: std::net::SocketAddr,
        /// Issue tokens with Cognito's own issuer of the pool, "original" or "updated"
        /// (overrides the settings' cognito_issuer); reach it with provider.issuer_endpoint.
        #[arg(long, value_parser = cognito_issuer)]
        cognito_issuer: Option<portcullis::oidc::metadata::CognitoIssuer>,
    },
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// End every session of a user (--sub) or of a provider session (--sid) on every
    /// replica, through Redis when configured, else through the admin listener.
    Revoke {
        /// The user's `sub`: every session signed in until now ends.
        #[arg(long, conflicts_with = "sid", required_unless_present = "sid")]
        sub: Option<String>,
        /// The provider's session id (the ID token's `sid`).
        #[arg(long)]
        sid: Option<String>,
    },
}

/// Exit codes: 0 ok, 1 runtime failure (e.g. port in use), 2 bad configuration.
fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Check => check(&cli.config),
        Command::Run => run(&cli.config),
        Command::Demo { port } => demo(port),
        Command::Sessions { command: SessionsCommand::Revoke { sub, sid } } => {
            let who = match (sub, sid) {
                (Some(sub), _) => portcullis::auth::denylist::Denied::User(sub),
                (None, Some(sid)) => portcullis::auth::denylist::Denied::ProviderSession(sid),
                (None, None) => unreachable!("clap requires --sub or --sid"),
            };
            revoke(&cli.config, who)
        }
        Command::DevIdp { idp_config, listen, cognito_issuer } => {
            dev_idp(idp_config.as_deref(), listen, cognito_issuer)
        }
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
            Ok(gateway) => match gateway.run(shutdown_signal()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!(error = %err, "gateway failed");
                    eprintln!("portcullis: {err}");
                    ExitCode::FAILURE
                }
            },
            Err(err) => {
                tracing::error!(error = %err, "startup failed");
                eprintln!("portcullis: {err}");
                ExitCode::FAILURE
            }
        }
    })
}

fn revoke(path: &std::path::Path, who: portcullis::auth::denylist::Denied) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    runtime().block_on(async move {
        match portcullis::sessions_command::revoke(&config, who).await {
            Ok(done) => {
                println!("{done}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("portcullis sessions revoke: {err}");
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

fn cognito_issuer(text: &str) -> Result<portcullis::oidc::metadata::CognitoIssuer, String> {
    portcullis::oidc::metadata::CognitoIssuer::parse(text).ok_or_else(|| format!("{text:?} is not original or updated"))
}

fn dev_idp(
    path: Option<&std::path::Path>,
    listen: std::net::SocketAddr,
    cognito_issuer: Option<portcullis::oidc::metadata::CognitoIssuer>,
) -> ExitCode {
    let mut settings = match path {
        Some(path) => match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| toml::from_str::<portcullis::dev_idp::Settings>(&text).map_err(|e| e.to_string()))
        {
            Ok(settings) => settings,
            Err(err) => {
                eprintln!("portcullis dev-idp: {}: {err}", path.display());
                return ExitCode::from(2);
            }
        },
        None => portcullis::dev_idp::Settings::demo("http://localhost:8080"),
    };
    if cognito_issuer.is_some() {
        settings.cognito_issuer = cognito_issuer;
    }
    runtime().block_on(async move {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(listener) => listener,
            Err(err) => {
                eprintln!("portcullis dev-idp: cannot listen on {listen}: {err}");
                return ExitCode::FAILURE;
            }
        };
        let idp = match portcullis::dev_idp::DevIdp::serve_on(listener, settings) {
            Ok(idp) => idp,
            Err(err) => {
                eprintln!("portcullis dev-idp: {err}");
                return ExitCode::FAILURE;
            }
        };
        println!("Portcullis development identity provider (tests and demos only)");
        println!("issuer: {}", idp.issuer());
        println!("hosted UI: {}", idp.base_url());
        for client in &idp.settings().clients {
            println!(
                "client: {} ({})",
                client.client_id,
                if client.client_secret.is_some() { "confidential" } else { "public" }
            );
        }
        for user in &idp.settings().users {
            println!("user: {}  password: {}", user.username, user.password);
        }
        shutdown_signal().await;
        ExitCode::SUCCESS
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
