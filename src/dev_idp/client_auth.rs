//! Client authentication for `/oauth2/token` and `/oauth2/revoke`, as Cognito takes
//! it: `client_secret_basic` (Authorization: Basic), `client_secret_post` (form
//! fields), or a public client sending only `client_id`. Secrets compare in constant
//! time. Every failure is `invalid_client`.

use super::{ClientSettings, Provider};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::collections::HashMap;

fn form_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("v={text}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

pub fn authenticate<'a>(
    provider: &'a Provider,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<&'a ClientSettings, &'static str> {
    let basic = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .map(|encoded| {
            let decoded = STANDARD.decode(encoded.trim()).map_err(|_| "invalid_client")?;
            let decoded = String::from_utf8(decoded).map_err(|_| "invalid_client")?;
            let (id, secret) = decoded.split_once(':').ok_or("invalid_client")?;
            // RFC 6749 §2.3.1: both parts are form-urlencoded before joining.
            Ok::<_, &'static str>((form_decode(id), Some(form_decode(secret))))
        })
        .transpose()?;
    let (client_id, secret) = match basic {
        Some((id, secret)) => {
            if form.get("client_id").is_some_and(|form_id| *form_id != id) {
                return Err("invalid_client");
            }
            (id, secret)
        }
        None => (form.get("client_id").cloned().ok_or("invalid_client")?, form.get("client_secret").cloned()),
    };
    let client = provider.client(&client_id).ok_or("invalid_client")?;
    match (&client.client_secret, secret) {
        (None, _) => Ok(client),
        (Some(expected), Some(given))
            if aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), given.as_bytes()).is_ok() =>
        {
            Ok(client)
        }
        (Some(_), _) => Err("invalid_client"),
    }
}
