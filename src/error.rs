//! One error type for everything a request can run into, tagged with whose fault it
//! was, so logs and metrics can tell "upstream down" from "bad request" from "our bug".
//! `respond.rs` is the one place that turns these into responses.

use http::StatusCode;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Whose side an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSource {
    /// The request itself is wrong or not allowed.
    Client,
    /// The application behind the gateway failed or was unreachable.
    Upstream,
    /// The identity provider failed or was unreachable.
    Provider,
    /// The shared session store (Redis) failed or was too slow.
    Store,
    /// A defect or resource problem in the gateway.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("no route matches the request path")]
    NoRoute,
    #[error("client sent no request body data for {0:?}")]
    ClientBodyTimeout(std::time::Duration),
    #[error("client closed or broke its request body")]
    ClientAborted,
    #[error("request path refused: {0}")]
    BadPath(#[from] crate::proxy::path::PathError),
    #[error("unsafe request without proof of coming from the app's own pages (CSRF)")]
    CrossSiteRequest,
    #[error("authorization policy refused the request (rule: {})", .0.name())]
    Forbidden(crate::auth::policy::Rule),
    #[error("the request has more than one Host header")]
    DuplicateHost,
    /// `/auth/verify` asked by a peer outside `forward_auth.trusted_proxies`.
    #[error("{0} asked /auth/verify but is not in forward_auth.trusted_proxies")]
    UntrustedForwardAuthCaller(std::net::IpAddr),
    /// `/auth/verify` could not tell which request it decides on.
    #[error("forward-auth request without a usable original URI: {0}")]
    UnknownOriginalRequest(&'static str),
    #[error("the request's cookies exceed the configured limits")]
    CookiesTooLarge,
    #[error("method {0} is not proxied")]
    MethodNotAllowed(http::Method),
    #[error("upstream connection failed")]
    UpstreamUnreachable(#[source] BoxError),
    /// The TLS handshake with an `https://` upstream failed (its certificate was not
    /// trusted, or ours not accepted).
    #[error("upstream TLS failed")]
    UpstreamTls(#[source] BoxError),
    #[error("upstream did not answer within {0:?}")]
    UpstreamTimeout(std::time::Duration),
    #[error("upstream request failed")]
    UpstreamFailed(#[source] BoxError),
    #[error("upstream refused the protocol upgrade")]
    UpgradeFailed(#[source] BoxError),
    /// With the time after which the provider will be asked again.
    #[error("the identity provider is unavailable and the access token has expired")]
    ProviderUnavailable(std::time::Duration),
    /// The request needs the session store (Redis), which did not answer in time.
    #[error("the session store is unavailable")]
    StoreUnavailable,
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl GatewayError {
    pub fn source_kind(&self) -> ErrorSource {
        match self {
            GatewayError::NoRoute
            | GatewayError::ClientBodyTimeout(_)
            | GatewayError::ClientAborted
            | GatewayError::BadPath(_)
            | GatewayError::CrossSiteRequest
            | GatewayError::Forbidden(_)
            | GatewayError::CookiesTooLarge
            | GatewayError::DuplicateHost
            | GatewayError::UntrustedForwardAuthCaller(_)
            | GatewayError::UnknownOriginalRequest(_)
            | GatewayError::MethodNotAllowed(_) => ErrorSource::Client,
            GatewayError::UpstreamUnreachable(_)
            | GatewayError::UpstreamTls(_)
            | GatewayError::UpstreamTimeout(_)
            | GatewayError::UpstreamFailed(_)
            | GatewayError::UpgradeFailed(_) => ErrorSource::Upstream,
            GatewayError::ProviderUnavailable(_) => ErrorSource::Provider,
            GatewayError::StoreUnavailable => ErrorSource::Store,
            GatewayError::Internal(_) => ErrorSource::Internal,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::NoRoute => StatusCode::NOT_FOUND,
            GatewayError::ClientBodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            GatewayError::ClientAborted
            | GatewayError::BadPath(_)
            | GatewayError::DuplicateHost
            | GatewayError::UnknownOriginalRequest(_) => StatusCode::BAD_REQUEST,
            GatewayError::UntrustedForwardAuthCaller(_) => StatusCode::FORBIDDEN,
            GatewayError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::CrossSiteRequest | GatewayError::Forbidden(_) => StatusCode::FORBIDDEN,
            GatewayError::CookiesTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            GatewayError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::UpstreamUnreachable(_)
            | GatewayError::UpstreamTls(_)
            | GatewayError::UpstreamFailed(_)
            | GatewayError::UpgradeFailed(_) => StatusCode::BAD_GATEWAY,
            GatewayError::ProviderUnavailable(_) | GatewayError::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable machine-readable code for the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::NoRoute => "not_found",
            GatewayError::ClientBodyTimeout(_) => "request_timeout",
            GatewayError::ClientAborted => "bad_request",
            GatewayError::BadPath(_) => "bad_path",
            GatewayError::MethodNotAllowed(_) => "method_not_allowed",
            GatewayError::CrossSiteRequest => "csrf",
            GatewayError::Forbidden(_) => "forbidden",
            GatewayError::CookiesTooLarge => "cookies_too_large",
            GatewayError::DuplicateHost => "bad_host",
            GatewayError::UntrustedForwardAuthCaller(_) => "untrusted_caller",
            GatewayError::UnknownOriginalRequest(_) => "bad_forward_auth_request",
            GatewayError::UpstreamUnreachable(_) => "upstream_unreachable",
            GatewayError::UpstreamTls(_) => "upstream_tls",
            GatewayError::UpstreamTimeout(_) => "upstream_timeout",
            GatewayError::UpstreamFailed(_) | GatewayError::UpgradeFailed(_) => "bad_gateway",
            GatewayError::ProviderUnavailable(_) => "provider_unavailable",
            GatewayError::StoreUnavailable => "session_store_unavailable",
            GatewayError::Internal(_) => "internal_error",
        }
    }

    /// What the client is told: generic, never the underlying detail.
    pub fn public_message(&self) -> &'static str {
        match self {
            GatewayError::NoRoute => "Nothing is served at this path.",
            GatewayError::ClientBodyTimeout(_) => "The request body stopped arriving.",
            GatewayError::ClientAborted => "The request body was incomplete.",
            GatewayError::BadPath(reason) => reason.public_message(),
            GatewayError::MethodNotAllowed(_) => "This method is not supported.",
            GatewayError::CrossSiteRequest => {
                "This request did not come from the application's own pages (send X-CSRF: 1 from your app's fetch calls)."
            }
            GatewayError::Forbidden(rule) => rule.public_message(),
            GatewayError::DuplicateHost => "The request must have exactly one Host header.",
            GatewayError::UntrustedForwardAuthCaller(_) => "This address may not ask for authorization decisions.",
            GatewayError::UnknownOriginalRequest(_) => {
                "The proxy did not say which request to decide on (X-Forwarded-Uri or X-Original-URI)."
            }
            GatewayError::CookiesTooLarge => {
                "This site has set too many or too large cookies. Clear the cookies for this site and reload."
            }
            GatewayError::UpstreamUnreachable(_) => {
                "The application is not reachable right now. Please try again shortly."
            }
            GatewayError::UpstreamTls(_) => "The application could not be reached securely.",
            GatewayError::UpstreamTimeout(_) => "The application took too long to answer. Please try again shortly.",
            GatewayError::UpstreamFailed(_) | GatewayError::UpgradeFailed(_) => {
                "The application returned an invalid response."
            }
            GatewayError::ProviderUnavailable(_) => {
                "Signing in is temporarily unavailable. You are still signed in; please try again shortly."
            }
            GatewayError::StoreUnavailable => {
                "Sessions are temporarily unavailable. You are still signed in; please try again shortly."
            }
            GatewayError::Internal(_) => "Something went wrong in the gateway.",
        }
    }

    /// Whole seconds for a 503's `Retry-After`: when the gateway will ask again, at
    /// least 1.
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            GatewayError::ProviderUnavailable(after) => after.as_secs_f64().ceil().max(1.0) as u64,
            // The store's own timeout is well under a second: try again soon.
            GatewayError::StoreUnavailable => 1,
            _ => 5,
        }
    }

    /// The authorization rule that failed, for the JSON body.
    pub fn rule(&self) -> Option<&'static str> {
        match self {
            GatewayError::Forbidden(rule) => Some(rule.name()),
            _ => None,
        }
    }

    /// The full cause chain, for the log line.
    pub fn detail(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(err) = cause {
            out.push_str(": ");
            out.push_str(&err.to_string());
            cause = err.source();
        }
        out
    }
}
