//! The scopes a session was granted, which a route's `required_scopes` checks.
//!
//! Rules:
//! 1. The token response's `scope`, when it has one (RFC 6749 §5.1).
//! 2. Otherwise the access token's own `scope` claim (or `scp`), when it is a JWT.
//!    Cognito's token response never has `scope`, its access token always does, and it
//!    leaves out silently a requested scope the app client is not allowed: the requested
//!    scopes are no guide there.
//! 3. Otherwise nothing is known: at login the requested scopes (RFC 6749 §5.1: an
//!    omitted `scope` is the one requested), on refresh what the session had.
//!
//! The access token is read without verifying its signature: it is the token
//! endpoint's own answer over the back channel, and only its scopes are taken.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// The granted scopes, space-separated, when the provider says which they are.
pub fn granted(response: Option<&Vec<oauth2::Scope>>, access_token: &str) -> Option<String> {
    match response {
        Some(scopes) => Some(scopes.iter().map(|scope| scope.as_str()).collect::<Vec<_>>().join(" ")),
        None => in_access_token(access_token),
    }
}

/// The `scope` (space-separated) or `scp` (a list, or space-separated) claim of a JWT.
fn in_access_token(access_token: &str) -> Option<String> {
    let mut parts = access_token.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    match claims.get("scope").or_else(|| claims.get("scp"))? {
        Value::String(scopes) => Some(scopes.split_whitespace().collect::<Vec<_>>().join(" ")),
        Value::Array(scopes) => {
            let names: Option<Vec<&str>> = scopes.iter().map(Value::as_str).collect();
            Some(names?.join(" "))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: Value) -> String {
        format!("e30.{}.c2ln", URL_SAFE_NO_PAD.encode(claims.to_string()))
    }

    #[test]
    fn the_response_first_then_the_access_token_then_nothing() {
        let response = vec![oauth2::Scope::new("openid".into()), oauth2::Scope::new("email".into())];
        let token = jwt(serde_json::json!({ "scope": "openid" }));
        assert_eq!(granted(Some(&response), &token).as_deref(), Some("openid email"));
        assert_eq!(granted(None, &token).as_deref(), Some("openid"), "Cognito: the access token's claim");
        let listed = jwt(serde_json::json!({ "scp": ["openid", "api.read"] }));
        assert_eq!(granted(None, &listed).as_deref(), Some("openid api.read"));
        let none_granted = jwt(serde_json::json!({ "scope": "" }));
        assert_eq!(granted(None, &none_granted).as_deref(), Some(""), "granted nothing is not unknown");
        for unknown in ["opaque-token", "a.b", "a.b.c.d", "e30.!!!.c2ln", &jwt(serde_json::json!({ "sub": "x" }))] {
            assert_eq!(granted(None, unknown), None, "{unknown}");
        }
        assert_eq!(granted(None, &jwt(serde_json::json!({ "scp": ["a", 1] }))), None);
    }
}
