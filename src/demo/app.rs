//! The demo application behind the gateway: a one-page app and an `/api/echo`
//! endpoint that shows exactly what the gateway forwarded (method, path, headers),
//! so the effect of every header rule is visible in the browser.

use axum::Router;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;

pub async fn serve(listener: TcpListener) {
    let app = Router::new().route("/api/echo", axum::routing::any(echo)).fallback(get(page));
    if let Err(err) = axum::serve(listener, app).await {
        tracing::error!(error = %err, "demo app stopped");
    }
}

async fn echo(method: Method, uri: Uri, headers: HeaderMap) -> impl IntoResponse {
    let mut seen = Map::new();
    for (name, value) in &headers {
        seen.insert(name.to_string(), Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned()));
    }
    axum::Json(json!({ "method": method.as_str(), "path": uri.path(), "headers": seen }))
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Portcullis demo</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 48rem; margin: 3rem auto; padding: 0 1rem; color: #222; }
  pre { background: #f4f4f4; padding: 1rem; overflow: auto; }
  button { font-size: 1rem; padding: .4rem 1rem; margin-right: .5rem; }
</style>
</head>
<body>
<h1>Portcullis demo</h1>
<p id="who">Checking who is signed in...</p>
<p id="expiry"></p>
<p>This page is served by a demo application <em>behind</em> Portcullis. The page's
JavaScript holds no token: <code>document.cookie</code> is empty because the session
cookies are <code>HttpOnly</code>. The first button calls <code>/api/echo</code>, which
answers with the request exactly as the application received it from the gateway
(note <code>x-user-*</code>, <code>x-forwarded-*</code>, <code>x-request-id</code>).</p>
<button id="call">Call /api/echo</button>
<form method="post" action="/auth/logout" style="display:inline"><button id="logout">Sign out</button></form>
<pre id="out">(no call yet)</pre>
<p>document.cookie: <code id="cookies"></code></p>
<script>
document.getElementById('cookies').textContent = JSON.stringify(document.cookie);
async function who() {
  const response = await fetch('/auth/userinfo', { headers: { 'Accept': 'application/json' } });
  const me = response.ok ? await response.json() : null;
  document.getElementById('who').textContent =
    me ? `Signed in as ${me.username} (${me.email}), groups: ${me.groups.join(', ')}` : 'Not signed in.';
  document.getElementById('expiry').textContent = me
    ? `Current access token (held by the gateway, never by this page) expires at ${new Date(me.access_token_expires_at * 1000).toLocaleTimeString()}; the gateway renews it a minute before.`
    : '';
}
who();
document.getElementById('call').addEventListener('click', async () => {
  const response = await fetch('/api/echo', { headers: { 'Accept': 'application/json' } });
  document.getElementById('out').textContent = response.status + '\n' + JSON.stringify(await response.json(), null, 2);
  who();
});
</script>
</body>
</html>
"#;
