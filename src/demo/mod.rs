//! `portcullis demo`: the gateway in front of a small demo application, all on
//! localhost, so a newcomer sees it work before configuring anything.

mod app;

use crate::config::Config;
use crate::server::Portcullis;
use std::future::Future;
use std::path::Path;

pub use app::serve as serve_app;

/// Starts the demo application on a free loopback port and the gateway on `port`
/// in front of it; runs until `shutdown` completes.
pub async fn run(port: u16, shutdown: impl Future<Output = ()>) -> Result<(), Box<dyn std::error::Error>> {
    let app_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let app_addr = app_listener.local_addr()?;
    tokio::spawn(app::serve(app_listener));

    let config = Config::from_sources(&demo_config(port, app_addr), Path::new("<demo>"), std::iter::empty())?;
    let gateway = Portcullis::bind(config).await?;
    println!();
    println!("  Portcullis demo is running.");
    println!("  open:  http://localhost:{}/", gateway.local_addr().port());
    println!("  admin: http://{}/readyz", gateway.admin_addr());
    println!("  (Ctrl-C to stop)");
    println!();
    gateway.run(shutdown).await?;
    Ok(())
}

fn demo_config(port: u16, app: std::net::SocketAddr) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:0"
shutdown_timeout = "2s"

[log]
format = "text"

[[route]]
prefix = "/"
upstream = "http://{app}"
"#
    )
}
