//! The one mapping from errors to HTTP. Flows return a [`Failure`] (`flows::error`) and never speak HTTP; each
//! endpoint family renders it in its own shape (token JSON, resource JSON with a Bearer challenge, HTML page), and
//! two exhaustive tables decide the status: [`status`] for protocol error codes, [`page_status`] for pages.
//! Internal causes are logged (inside the request's span, so with its request id) and never sent. A failure that
//! passes by itself is a 503 with `Retry-After`; any other internal failure is a 500.

use crate::flows::error::{Cause, Failure, RETRY_AFTER_SECS};
use crate::web::pages;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use latchkey_core::error::ErrorCode;

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

/// Adds `Retry-After` to a `temporarily_unavailable` answer.
fn add_retry_after(res: &mut Response, code: ErrorCode) {
    if code == ErrorCode::TemporarilyUnavailable {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
}

/// What a page answers for each kind of failure: the one table for pages.
pub fn page_status(cause: Cause, code: ErrorCode) -> StatusCode {
    match cause {
        Cause::Refused => status(code),
        Cause::Transient => StatusCode::SERVICE_UNAVAILABLE,
        Cause::Fault => StatusCode::INTERNAL_SERVER_ERROR,
        Cause::Limited(_) => StatusCode::TOO_MANY_REQUESTS,
    }
}

/// Page shape, for any failure behind a page (sign-in, sign-up, the account page, the console, an authorization
/// request that cannot be redirected yet): a protocol error is explained with its table status; a failure on our
/// side that passes by itself is a 503 with `Retry-After` and a page that says to wait a little; a real fault is a
/// 500 page; an abuse limit is a 429 with `Retry-After`.
pub fn page_failure(failure: Failure) -> Response {
    let (cause, e) = failure.split();
    let status = page_status(cause, e.code);
    match cause {
        Cause::Refused => pages::message(
            status,
            "This request cannot be completed",
            &[e.description.as_str()],
        ),
        Cause::Transient => {
            let mut res = pages::busy(RETRY_AFTER_SECS);
            *res.status_mut() = status;
            add_retry_after(&mut res, e.code);
            res
        }
        Cause::Fault => {
            let mut res = pages::unavailable();
            *res.status_mut() = status;
            res
        }
        Cause::Limited(wait) => pages::too_many(
            "Too many attempts",
            "There have been too many attempts. Wait a few minutes, then try again.",
            wait,
        ),
    }
}

#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

/// Token-endpoint shape (RFC 6749 5.2): JSON, `no-store`, and a `WWW-Authenticate` challenge with 401.
pub fn token_error(failure: Failure) -> Response {
    let (cause, e) = failure.split();
    let mut res = (
        token_status(cause, e.code),
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
    if let Cause::Limited(wait) = cause {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
    }
    res
}

/// Status of a token-endpoint error: the [`status`] table, but 429 past the failure throttle.
pub fn token_status(cause: Cause, code: ErrorCode) -> StatusCode {
    match cause {
        Cause::Limited(_) => StatusCode::TOO_MANY_REQUESTS,
        Cause::Refused | Cause::Transient | Cause::Fault => status(code),
    }
}

/// Too many failed client-authenticated requests (`crate::throttle`): 429 with `Retry-After`, in the token
/// endpoint's JSON shape.
pub fn too_many_failures(retry_after: i64) -> Response {
    token_error(Failure::Limited(retry_after))
}

/// Which resource endpoints a token error comes from: they agree on everything but one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// LWA's paths (`/auth/o2/tokeninfo`, `/user/profile`): an invalid token is 400, as LWA answers.
    Lwa,
    /// The standard Bearer resource (`/oauth2/userinfo`, RFC 6750 3.1): an invalid token is 401, as OAuth
    /// libraries expect.
    Standard,
}

/// Status of a resource endpoint's error: the [`status`] table, but for `invalid_token` at a standard resource.
pub fn resource_status(family: Resource, code: ErrorCode) -> StatusCode {
    match (family, code) {
        (Resource::Standard, ErrorCode::InvalidToken) => StatusCode::UNAUTHORIZED,
        (Resource::Standard | Resource::Lwa, code) => status(code),
    }
}

/// Resource-endpoint shape (tokeninfo, profile, userinfo): JSON, plus a Bearer challenge (RFC 6750 3).
pub fn resource_error(family: Resource, failure: Failure) -> Response {
    let e = failure.into_oauth();
    let mut res = (
        resource_status(family, e.code),
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
