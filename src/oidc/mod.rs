//! The identity provider, seen from the gateway: its metadata (discovery, or derived for
//! Cognito), its signing keys (a cached JWKS), and the checks every token must pass.

pub mod jwks;
pub mod logout_token;
pub mod metadata;
pub mod verify;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, the unit of every token time claim.
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()
}

/// Milliseconds since the Unix epoch: when a sign-in or a revocation happened, finer
/// than a second so that a user who signs in again right after a revocation is not
/// caught by it.
pub fn now_millis() -> u64 {
    u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis())
        .unwrap_or(u64::MAX)
}

/// `endpoint` with `params` appended to its query (kept as is when it is not a URL).
pub fn with_query(endpoint: &str, params: &[(&str, &str)]) -> String {
    match url::Url::parse(endpoint) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(params);
            url.into()
        }
        Err(_) => endpoint.to_owned(),
    }
}

/// The back-channel HTTP client: no redirects (a token endpoint that redirects is an
/// SSRF hole, and discovery must come from the issuer itself), bounded time.
pub fn back_channel(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("HTTP client builds")
}

/// Why talking to the provider failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{what}: request to {url} failed: {source}")]
    Unreachable { what: &'static str, url: String, source: reqwest::Error },
    #[error("{what}: {url} answered {status}")]
    Status { what: &'static str, url: String, status: u16 },
    #[error("{what}: {url} sent an invalid document: {detail}")]
    Invalid { what: &'static str, url: String, detail: String },
}

/// GETs `url` as JSON, with errors that say what was being fetched.
pub async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    what: &'static str,
    url: &str,
) -> Result<T, ProviderError> {
    let response =
        http.get(url).send().await.map_err(|source| ProviderError::Unreachable { what, url: url.into(), source })?;
    if !response.status().is_success() {
        return Err(ProviderError::Status { what, url: url.into(), status: response.status().as_u16() });
    }
    let bytes =
        response.bytes().await.map_err(|source| ProviderError::Unreachable { what, url: url.into(), source })?;
    serde_json::from_slice(&bytes).map_err(|err| ProviderError::Invalid {
        what,
        url: url.into(),
        detail: err.to_string(),
    })
}
