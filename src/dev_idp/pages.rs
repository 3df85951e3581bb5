//! The provider's HTML: a sign-in form shaped like Cognito's classic Hosted UI (same
//! field ids, so browser tests read like tests against the real one) and error pages.
//! Every page says plainly that this is a development provider.

use crate::respond::escape_html as escape;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

const BANNER: &str = "Portcullis development identity provider: for tests and demos only, never for real users.";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\n<style>\
         body{{font-family:system-ui,sans-serif;background:#f4f5f7;color:#222;margin:0}}\
         .banner{{background:#fff3cd;padding:.5rem 1rem;font-size:.85rem}}\
         main{{max-width:22rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002}}\
         label{{display:block;margin:.8rem 0 .2rem}} input{{width:100%;padding:.5rem;box-sizing:border-box}}\
         button{{margin-top:1.2rem;width:100%;padding:.6rem;background:#1f6feb;color:#fff;border:0;border-radius:4px;font-size:1rem}}\
         .error{{color:#b00020}}</style></head>\n<body><div class=\"banner\">{BANNER}</div><main>{body}</main></body></html>\n"
    )
}

/// The sign-in form. It posts back to `/login` with the authorize query unchanged.
pub fn sign_in(query: &str, error: Option<&str>, username: &str) -> Response {
    let error =
        error.map(|e| format!("<p class=\"error\" id=\"loginErrorMessage\">{}</p>", escape(e))).unwrap_or_default();
    let body = format!(
        "<h1>Sign in</h1><p>Sign in with your username and password</p>{error}\
         <form method=\"post\" action=\"/login?{action}\" name=\"cognitoSignInForm\">\
         <label for=\"signInFormUsername\">Username</label>\
         <input id=\"signInFormUsername\" name=\"username\" type=\"text\" autocomplete=\"username\" value=\"{username}\" required>\
         <label for=\"signInFormPassword\">Password</label>\
         <input id=\"signInFormPassword\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\" name=\"signInSubmitButton\">Sign in</button></form>",
        action = escape(query),
        username = escape(username),
    );
    Html(page("Signin", &body)).into_response()
}

/// An error the provider shows itself, because it cannot trust the redirect URI.
pub fn error(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<h1>An error was encountered with the requested page.</h1><p id=\"errorMessage\">{}</p>",
        escape(message)
    );
    (status, Html(page("Error", &body))).into_response()
}

pub async fn index() -> Html<String> {
    Html(page(
        "Portcullis dev IdP",
        "<h1>Portcullis dev IdP</h1><p>A Cognito-compatible user pool for tests and demos.</p>",
    ))
}
