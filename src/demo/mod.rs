//! `portcullis demo`: the gateway with the development identity provider in front of
//! a small demo application, all on localhost, so a newcomer sees the whole flow (sign
//! in, the app calling its API without a token, sign out) before owning an account.

mod app;

use crate::config::Config;
use crate::dev_idp::{DevIdp, Settings};
use crate::server::Portcullis;
use std::future::Future;
use std::path::Path;

pub use app::serve as serve_app;

/// Starts the development identity provider and the demo application on free
/// loopback ports, and the gateway on `port` in front of the application, with login;
/// runs until `shutdown` completes.
pub async fn run(port: u16, shutdown: impl Future<Output = ()>) -> Result<(), Box<dyn std::error::Error>> {
    let gateway_url = format!("http://localhost:{port}");
    // Two-minute tokens: with the default one-minute refresh skew the gateway renews
    // them every minute of use, which the demo page shows.
    let mut settings = Settings::demo(&gateway_url);
    settings.access_token_ttl = std::time::Duration::from_secs(120);
    settings.id_token_ttl = std::time::Duration::from_secs(120);
    let idp = DevIdp::start(settings).await?;
    let app_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let app_addr = app_listener.local_addr()?;
    tokio::spawn(app::serve(app_listener));

    let config = Config::from_sources(&demo_config(port, app_addr, &idp), Path::new("<demo>"), std::iter::empty())?;
    let gateway = Portcullis::bind(config).await?;
    let user = &idp.settings().users[0];
    println!();
    println!("  Portcullis demo is running: the gateway, a Cognito-compatible sign-in, a demo app.");
    println!("  open: {gateway_url}/");
    println!("  user: {}", user.username);
    println!("  password: {}", user.password);
    println!("  (access tokens last 2 minutes here: watch the page renew them without a sign-in)");
    println!("  admin: http://{}/readyz", gateway.admin_addr());
    println!("  (Ctrl-C to stop)");
    println!();
    gateway.run(shutdown).await?;
    Ok(())
}

fn demo_config(port: u16, app: std::net::SocketAddr, idp: &DevIdp) -> String {
    use base64::Engine;
    // A fresh key per run: demo sessions end with the demo.
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let client = &idp.settings().clients[0].client_id;
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:0"
public_url = "http://localhost:{port}"
shutdown_timeout = "2s"

[log]
format = "text"

[provider]
kind = "cognito"
issuer = "{issuer}"
domain = "{domain}"
client_id = "{client}"

[session]
cookie_keys = ["{key}"]

[[route]]
prefix = "/"
upstream = "http://{app}"
"#,
        issuer = idp.issuer(),
        domain = idp.base_url(),
    )
}
