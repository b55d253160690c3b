//! Resource and metadata endpoints (tokeninfo, profile, userinfo, discovery, JWKS): extract the presented token,
//! call one flow, answer JSON.

use crate::app::AppState;
use crate::flows::error::Failure;
use crate::flows::{self};
use crate::web::api::{for_app, no_store};
use crate::web::error::{resource_error, Resource};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::Method;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use latchkey_core::bearer::{self, Accepts, Presented};

/// The one access token the request presents (`latchkey_core::bearer`), from its query, headers and, for a form
/// POST, its body.
fn presented_token(
    accepts: Accepts,
    query: Option<&str>,
    headers: &HeaderMap,
    form: Option<&[u8]>,
) -> Result<String, Failure> {
    let parts = Presented {
        query: query.unwrap_or("").as_bytes(),
        form,
    };
    let amz = headers
        .get_all("x-amz-access-token")
        .iter()
        .map(|v| v.as_bytes());
    let authorization = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .map(|v| v.as_bytes());
    Ok(bearer::presented_token(accepts, parts, amz, authorization)?)
}

pub async fn tokeninfo(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let result = match presented_token(Accepts::QueryOrAmz, query.as_deref(), &headers, None) {
        Ok(token) => flows::tokeninfo::tokeninfo(&state, &token).await,
        Err(f) => Err(f),
    };
    match result {
        Ok(info) => {
            let app = info.aud.clone();
            for_app(no_store(Json(info).into_response()), app)
        }
        Err(f) => resource_error(Resource::Lwa, f),
    }
}

pub async fn profile(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let result = match presented_token(Accepts::AlsoBearerHeader, query.as_deref(), &headers, None)
    {
        Ok(token) => flows::profile::profile(&state, &token).await,
        Err(f) => Err(f),
    };
    match result {
        Ok(p) => {
            let app = p.client_id.clone();
            for_app(no_store(Json(p).into_response()), app)
        }
        Err(f) => resource_error(Resource::Lwa, f),
    }
}

/// A public, cacheable JSON document (for 60 s: `keys::JWKS_MAX_AGE_SECS`, which new signing keys wait out).
fn public_json(body: impl serde::Serialize) -> Response {
    let mut res = Json(body).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    res
}

pub async fn discovery(State(state): State<AppState>) -> Response {
    public_json(flows::discovery::metadata(&state))
}

pub async fn jwks(State(state): State<AppState>) -> Response {
    match flows::discovery::jwks(&state).await {
        Ok(set) => public_json(set),
        Err(e) => resource_error(Resource::Lwa, Failure::Store(e)),
    }
}

/// `GET` or `POST /oauth2/userinfo` (OpenID Connect Core 5.3.1); a form POST may carry the token in its body
/// (RFC 6750 2.2).
pub async fn userinfo(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let form = (method == Method::POST
        && headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            }))
    .then_some(&body[..]);
    let result = match presented_token(Accepts::AlsoBearerHeader, query.as_deref(), &headers, form)
    {
        Ok(token) => flows::userinfo::userinfo(&state, &token).await,
        Err(f) => Err(f),
    };
    match result {
        Ok(info) => {
            let app = info.client_id.clone();
            for_app(no_store(Json(info).into_response()), app)
        }
        Err(f) => resource_error(Resource::Standard, f),
    }
}
