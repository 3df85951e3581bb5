//! `portcullis sessions revoke --sub <user> | --sid <provider session>`: an operator ends
//! sessions from the command line, as `POST /sessions/revoke` on the admin listener
//! does.
//!
//! With `[redis]` it goes through the same store as the gateway (the records are
//! deleted, or the denial is written and announced to every replica), so it needs no
//! running gateway it can reach. Without Redis the sessions' state lives in the running
//! gateway's memory, so it asks that gateway's admin listener (`server.admin_listen`).

use crate::auth::Auth;
use crate::auth::denylist::Denied;
use crate::config::Config;
use crate::metrics::Metrics;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// What was done, for the operator; or why nothing was.
pub async fn revoke(config: &Config, who: Denied) -> Result<String, String> {
    let Some(auth_config) = &config.auth else {
        return Err("the configuration has no [provider]: there are no sessions to revoke".into());
    };
    let named = format!("{} {:?}", who.kind(), who.id());
    if auth_config.redis.is_none() {
        return ask_admin_listener(config, &who, &named).await;
    }
    let auth = Auth::new(auth_config, &Metrics::new()).map_err(|err| err.to_string())?;
    match auth.revoke(&who).await {
        Ok(revoked) if revoked.on_every_replica => Ok(match revoked.sessions_ended {
            Some(ended) => format!("revoked {named}: {ended} session(s) ended on every replica"),
            None => format!("revoked {named}: its sessions are refused on every replica"),
        }),
        Ok(_) | Err(_) => Err(format!("Redis did not answer: {named} was not revoked")),
    }
}

async fn ask_admin_listener(config: &Config, who: &Denied, named: &str) -> Result<String, String> {
    let admin = config.server.admin_listen;
    let ip = match admin.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let url = format!("http://{}/sessions/revoke", SocketAddr::new(ip, admin.port()));
    let http = crate::oidc::back_channel(Duration::from_secs(10));
    let mut request = http.post(&url).form(&[(who.kind(), who.id())]);
    if let Some(token) = &config.server.admin_token {
        request = request.bearer_auth(token.expose());
    }
    let answer = request.send().await.map_err(|err| {
        let causes: Vec<String> = std::iter::successors(std::error::Error::source(&err), |e| e.source())
            .map(ToString::to_string)
            .collect();
        format!(
            "without [redis] the running gateway holds the sessions, but its admin listener {url} did not answer: {err}: {}",
            causes.join(": ")
        )
    })?;
    let status = answer.status();
    let body = answer.text().await.unwrap_or_default();
    if status.is_success() {
        Ok(format!("revoked {named} in the gateway at {url} (this replica only: no [redis] configured)"))
    } else {
        Err(format!("{url} answered {status}: {body}"))
    }
}
