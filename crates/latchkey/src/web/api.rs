//! The client-authenticated API (token, introspection, revocation, code pairs; RFC 6749, 7662, 7009, 8628 and LWA's
//! shapes), under the failure throttle: extract, call one flow, map the result to HTTP.

use crate::app::AppState;
use crate::flows::error::Failure;
use crate::flows::{self};
use crate::web::error::token_error;
use crate::web::extract::{authorization_header, ClientIp};
use crate::web::params::BodyParams;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use latchkey_core::device::Endpoint;
use latchkey_core::params::Params;

/// `POST /auth/o2/create/codepair` (LWA shape).
pub async fn codepair(
    state: State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    params: BodyParams,
) -> Response {
    create_codepair(state, ip, headers, params, Endpoint::Lwa).await
}

/// `POST /oauth2/device_authorization` (RFC 8628 shape).
pub async fn device_authorization(
    state: State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    params: BodyParams,
) -> Response {
    create_codepair(state, ip, headers, params, Endpoint::Rfc).await
}

async fn create_codepair(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    BodyParams(params): BodyParams,
    endpoint: Endpoint,
) -> Response {
    client_api(&state, &ip, &params, &headers, async {
        let authorization = authorization_header(&headers)?;
        let pair =
            flows::codepair::create(&state, &params, authorization, endpoint, &ip.key()).await?;
        Ok(Json(pair).into_response())
    })
    .await
}

pub fn no_store(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

pub async fn token(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    BodyParams(params): BodyParams,
) -> Response {
    client_api(&state, &ip, &params, &headers, async {
        let authorization = authorization_header(&headers)?;
        let result = flows::token::token(&state, &params, authorization).await;
        if let Err(Failure::OAuth(e)) = &result {
            state
                .metrics
                .token_failures
                .get_or_create(&crate::metrics::OutcomeLabels {
                    outcome: e.code.as_str(),
                })
                .inc();
        }
        result.map(|body| Json(body).into_response())
    })
    .await
}

/// A client-authenticated API call (token, introspection, revocation, code pairs) under the failure throttle
/// (`crate::throttle`, per app and address): refused with 429 and `Retry-After` while a bucket is over its limit;
/// every answer is `no-store`, every error in the token endpoint's shape, and a cross-origin one is about the app
/// the request names (`web::cors`).
async fn client_api(
    state: &AppState,
    ip: &ClientIp,
    params: &Params,
    headers: &HeaderMap,
    call: impl std::future::Future<Output = Result<Response, Failure>>,
) -> Response {
    // The client id the request presents, read only when a bucket or an origin needs it (never on the hot path).
    let presented = || {
        params
            .get("client_id")
            .ok()
            .flatten()
            .map(str::to_owned)
            .or_else(|| {
                headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| latchkey_core::token_request::parse_basic(v).ok())
                    .map(|(id, _)| id)
            })
    };
    let res = 'answer: {
        if state.token_throttle.refusing() {
            let (address, client) = (ip.key(), presented());
            let buckets = crate::throttle::Buckets::new(&address, client.as_deref());
            if let Some(wait) = state.token_throttle.wait(&buckets, state.clock.now()) {
                break 'answer crate::web::error::too_many_failures(wait);
            }
        }
        match call.await {
            Ok(res) => no_store(res),
            Err(failure) => {
                if let Failure::OAuth(e) = &failure {
                    if crate::throttle::counts(e.code) {
                        let (address, client) = (ip.key(), presented());
                        let buckets = crate::throttle::Buckets::new(&address, client.as_deref());
                        if let Some(wait) = state
                            .token_throttle
                            .failed(state.store.as_ref(), &buckets, state.clock.now())
                            .await
                        {
                            break 'answer crate::web::error::too_many_failures(wait);
                        }
                    }
                }
                token_error(failure)
            }
        }
    };
    // Tokens are for the page of the app they were issued to; an error, which carries nothing, is readable by any
    // registered origin.
    let success = res.status().is_success();
    match (success && headers.contains_key(header::ORIGIN))
        .then(presented)
        .flatten()
    {
        Some(client_id) => for_app(res, client_id),
        None => res,
    }
}

pub async fn introspect(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    BodyParams(params): BodyParams,
) -> Response {
    client_api(&state, &ip, &params, &headers, async {
        let authorization = authorization_header(&headers)?;
        let body = flows::introspect::introspect(&state, &params, authorization).await?;
        Ok(Json(body).into_response())
    })
    .await
}

/// `POST /oauth2/revoke` (RFC 7009): 200 with an empty body whether or not there was anything to revoke.
pub async fn revoke(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    BodyParams(params): BodyParams,
) -> Response {
    client_api(&state, &ip, &params, &headers, async {
        let authorization = authorization_header(&headers)?;
        flows::revoke::revoke(&state, &params, authorization).await?;
        Ok(StatusCode::OK.into_response())
    })
    .await
}

/// Marks a response as being about `client_id`'s token: CORS answers only that app's origins (`web::cors`).
pub fn for_app(mut res: Response, client_id: String) -> Response {
    res.extensions_mut()
        .insert(crate::web::cors::ForApp(client_id));
    res
}
