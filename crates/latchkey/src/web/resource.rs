//! Resource and metadata endpoints (tokeninfo, profile, userinfo, discovery, JWKS): extract the presented token,
//! call one flow, answer JSON.

use crate::app::AppState;
use crate::flows::error::Failure;
use crate::flows::{self};
use crate::web::api::{for_app, no_store};
use crate::web::error::{resource_error, Resource};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use latchkey_core::error::OAuthError;
use latchkey_core::params::Params;

/// The access token from the query (`access_token`), `x-amz-access-token`, or (if `bearer`) `Authorization:
/// Bearer`. Sending it more than one way, or twice, is `invalid_request`.
fn presented_token(
    query: Option<&str>,
    headers: &HeaderMap,
    bearer: bool,
) -> Result<String, OAuthError> {
    let params = Params::from_urlencoded(query.unwrap_or("").as_bytes())?;
    let mut found: Vec<String> = Vec::with_capacity(1);
    if let Some(t) = params.get("access_token")? {
        found.push(t.to_owned());
    }
    for value in headers.get_all("x-amz-access-token") {
        found.push(
            value
                .to_str()
                .map_err(|_| OAuthError::invalid("x-amz-access-token"))?
                .trim()
                .to_owned(),
        );
    }
    if bearer {
        for value in headers.get_all(header::AUTHORIZATION) {
            let v = value
                .to_str()
                .map_err(|_| OAuthError::invalid("Authorization"))?;
            match v.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                    found.push(token.trim().to_owned())
                }
                _ => return Err(OAuthError::invalid("Authorization")),
            }
        }
    }
    match found.len() {
        1 => found
            .pop()
            .ok_or_else(|| OAuthError::missing("access_token")),
        0 => Err(OAuthError::missing("access_token")),
        _ => Err(OAuthError::new(
            latchkey_core::error::ErrorCode::InvalidRequest,
            "The request sends the access token more than once : access_token",
        )),
    }
}

pub async fn tokeninfo(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let result = match presented_token(query.as_deref(), &headers, false) {
        Ok(token) => flows::tokeninfo::tokeninfo(&state, &token).await,
        Err(e) => Err(Failure::OAuth(e)),
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
    let result = match presented_token(query.as_deref(), &headers, true) {
        Ok(token) => flows::profile::profile(&state, &token).await,
        Err(e) => Err(Failure::OAuth(e)),
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

pub async fn userinfo(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let result = match presented_token(query.as_deref(), &headers, true) {
        Ok(token) => flows::userinfo::userinfo(&state, &token).await,
        Err(e) => Err(Failure::OAuth(e)),
    };
    match result {
        Ok(info) => {
            let app = info.client_id.clone();
            for_app(no_store(Json(info).into_response()), app)
        }
        Err(f) => resource_error(Resource::Standard, f),
    }
}
