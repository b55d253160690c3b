//! The one mapping from errors to HTTP. Flows return [`Failure`]; each endpoint family renders it in its own
//! shape (token JSON, resource JSON, HTML page), and [`status`] is the single exhaustive table of status codes.
//! Internal causes are logged (inside the request's span, so with its request id) and never sent. A failure that
//! passes by itself (a full hashing queue, a database that is unreachable or overloaded) is
//! `temporarily_unavailable`, a 503 with `Retry-After`; any other internal failure is `server_error`.

use crate::password::PasswordError;
use crate::store::StoreError;
use crate::web::pages;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use latchkey_core::error::{ErrorCode, OAuthError};

/// Why a flow did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// A protocol error the client should see.
    #[error("{0}")]
    OAuth(#[from] OAuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// Past an abuse limit (SPEC 4): 429, to try again after this many seconds.
    #[error("too many requests; retry after {0} s")]
    Limited(i64),
}

/// HTTP status of each error code (RFC 6749 5.2, RFC 6750 3.1).
pub fn status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidRequest
        | ErrorCode::InvalidGrant
        | ErrorCode::UnauthorizedClient
        | ErrorCode::UnsupportedGrantType
        | ErrorCode::UnsupportedResponseType
        | ErrorCode::InvalidScope
        | ErrorCode::AccessDenied
        | ErrorCode::LoginRequired
        | ErrorCode::ConsentRequired
        | ErrorCode::InteractionRequired
        | ErrorCode::RequestNotSupported
        | ErrorCode::RequestUriNotSupported
        | ErrorCode::AuthorizationPending
        | ErrorCode::SlowDown
        | ErrorCode::ExpiredToken
        | ErrorCode::InvalidCodePair
        | ErrorCode::InvalidToken => StatusCode::BAD_REQUEST,
        ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
        ErrorCode::InsufficientScope => StatusCode::FORBIDDEN,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// What `Retry-After` says with `temporarily_unavailable`: long enough for a queue to move.
pub const RETRY_AFTER_SECS: u32 = 5;

fn server_error() -> OAuthError {
    OAuthError::new(
        ErrorCode::ServerError,
        "The server could not complete the request; try again",
    )
}

fn busy() -> OAuthError {
    OAuthError::new(
        ErrorCode::TemporarilyUnavailable,
        format!("The server is busy; try again in {RETRY_AFTER_SECS} seconds"),
    )
}

impl Failure {
    /// The error to show the client; an internal cause is logged here and replaced by `temporarily_unavailable`
    /// when it passes by itself, by `server_error` otherwise.
    pub fn into_oauth(self) -> OAuthError {
        match self {
            Failure::OAuth(e) => e,
            Failure::Store(e) if e.is_transient() => {
                tracing::error!(error = %e, "storage unavailable");
                busy()
            }
            Failure::Store(e) => {
                tracing::error!(error = %e, "storage failure");
                server_error()
            }
            Failure::Password(PasswordError::Busy) => {
                tracing::warn!("password hashing queue full; request refused");
                busy()
            }
            Failure::Password(e @ (PasswordError::Hash(_) | PasswordError::Join)) => {
                tracing::error!(error = %e, "password hashing failure");
                server_error()
            }
            Failure::Limited(wait) => OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                format!("Too many requests from this address; try again in {wait} seconds"),
            ),
        }
    }
}

/// Adds `Retry-After` to a `temporarily_unavailable` answer.
fn add_retry_after(res: &mut Response, code: ErrorCode) {
    if code == ErrorCode::TemporarilyUnavailable {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
}

/// Page shape, for a failure on our side behind a page (sign-in, sign-up, the account page, an authorization
/// request that cannot be redirected yet): 503, with
/// `Retry-After` and a page that says to wait a little when it passes by itself.
pub fn page_error(failure: Failure) -> Response {
    let e = failure.into_oauth();
    if e.code != ErrorCode::TemporarilyUnavailable {
        return pages::unavailable();
    }
    let mut res = pages::busy(RETRY_AFTER_SECS);
    add_retry_after(&mut res, e.code);
    res
}

#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

/// Token-endpoint shape (RFC 6749 5.2): JSON, `no-store`, and a `WWW-Authenticate` challenge with 401.
pub fn token_error(failure: Failure) -> Response {
    let limited = match failure {
        Failure::Limited(wait) => Some(wait),
        _ => None,
    };
    let e = failure.into_oauth();
    let mut res = (
        status(e.code),
        Json(ErrorBody {
            error: e.code.as_str(),
            error_description: &e.description,
        }),
    )
        .into_response();
    add_retry_after(&mut res, e.code);
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    if e.code == ErrorCode::InvalidClient {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"latchkey\""),
        );
    }
    if let Some(wait) = limited {
        *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
    }
    res
}

/// Too many failed client-authenticated requests (`crate::throttle`): 429 with `Retry-After`, in the token
/// endpoint's JSON shape.
pub fn too_many_failures(retry_after: i64) -> Response {
    token_error(Failure::Limited(retry_after))
}

/// Resource-endpoint shape (tokeninfo, profile): JSON, plus a Bearer challenge (RFC 6750 3).
pub fn resource_error(failure: Failure) -> Response {
    let e = failure.into_oauth();
    let mut res = (
        status(e.code),
        Json(ErrorBody {
            error: e.code.as_str(),
            error_description: &e.description,
        }),
    )
        .into_response();
    add_retry_after(&mut res, e.code);
    let challenge = format!("Bearer realm=\"latchkey\", error=\"{}\"", e.code.as_str());
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    res
}

/// Standard Bearer-resource shape (`/oauth2/userinfo`, RFC 6750 3.1): like [`resource_error`], but an invalid
/// token is 401, as OAuth libraries expect, where LWA's paths answer 400.
pub fn bearer_error(failure: Failure) -> Response {
    let mut res = resource_error(failure);
    if res.status() == StatusCode::BAD_REQUEST
        && res
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("invalid_token"))
    {
        *res.status_mut() = StatusCode::UNAUTHORIZED;
    }
    res
}

/// A method an API endpoint does not serve: 405 in the API's JSON error shape, with the methods it does serve.
pub fn method_not_allowed(allow: &'static str) -> Response {
    let mut res = (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(ErrorBody {
            error: ErrorCode::InvalidRequest.as_str(),
            error_description: "The request method is not allowed at this endpoint",
        }),
    )
        .into_response();
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    res
}

/// A panic inside a handler: a plain 500 that says nothing about the cause.
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(ErrorBody {
            error: "server_error",
            error_description: "Internal error",
        }),
    )
        .into_response()
}
