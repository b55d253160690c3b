//! Thin axum handlers: extract, call one flow, map the result to HTTP.

use crate::app::AppState;
use crate::flows::{
    self, account, account_settings, allowed_apps, authorize, code_entry, developer,
};
use crate::web::error::{bearer_error, resource_error, token_error, Failure};
use crate::web::pages;
use crate::web::params::BodyParams;
use crate::web::session::Browser;
use axum::body::Bytes;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{FromRequestParts, Path, Query, RawPathParams, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use latchkey_core::device::Endpoint;
use latchkey_core::error::OAuthError;
use latchkey_core::params::Params;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// Who is asking (SPEC 4): the TCP peer, or the client a trusted proxy forwards for
/// (`latchkey_core::address`). Per-address limits count it by [`ClientIp::key`].
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The key per-address limits count under (the IPv6 /64).
    pub fn key(&self) -> String {
        latchkey_core::address::limit_key(self.0)
    }
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        if state.trusted_proxies.is_empty() {
            return Ok(ClientIp(peer));
        }
        // Lossy: bytes a client put in its own part of the header must not hide the part our proxy appended.
        let header = state.proxy_header;
        let lossy: Vec<std::borrow::Cow<'_, str>> = parts
            .headers
            .get_all(header.name())
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
            .collect();
        let values: Vec<&str> = lossy.iter().map(|c| c.as_ref()).collect();
        Ok(ClientIp(latchkey_core::address::client_address(
            peer,
            &state.trusted_proxies,
            header,
            &values,
        )))
    }
}

/// The `{client_id}` of a page's path. A segment that does not decode to UTF-8 (`%FF`) is kept as sent, still
/// percent-encoded: no client id contains `%`, so the page answers as for any unknown app (a page, not axum's
/// plain-text rejection).
pub struct ClientIdParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIdParam {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Ok(Path(id)) = Path::<String>::from_request_parts(parts, state).await {
            return Ok(ClientIdParam(id));
        }
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .ok()
            .and_then(|params| {
                params
                    .iter()
                    .find(|(name, _)| *name == "client_id")
                    .map(|(_, value)| value.to_owned())
            })
            .unwrap_or_default();
        Ok(ClientIdParam(raw))
    }
}

pub async fn home(State(state): State<AppState>, browser: Browser) -> Response {
    let user_name = browser
        .signed_in
        .as_ref()
        .map(|s| s.session.user.name.clone());
    pages::render(
        StatusCode::OK,
        &pages::Home {
            user_name,
            csrf: browser.csrf(&state),
        },
    )
}

pub async fn authorize(
    State(state): State<AppState>,
    browser: Browser,
    RawQuery(query): RawQuery,
) -> Response {
    authorize::authorize(&state, &browser, query.as_deref().unwrap_or("")).await
}

pub async fn consent(State(state): State<AppState>, browser: Browser, body: Bytes) -> Response {
    authorize::consent(&state, &browser, authorize::ConsentForm::parse(&body)).await
}

pub async fn signin_page(
    State(state): State<AppState>,
    browser: Browser,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    // `email` pre-fills the form: the authorization request's `login_hint` (OpenID Connect Core 3.1.2.1).
    let email = q
        .get("email")
        .map(String::as_str)
        .filter(|e| e.len() <= 254)
        .unwrap_or("");
    account::signin_page(
        &state,
        &browser,
        q.get("return_to").map(String::as_str),
        email,
        None,
        StatusCode::OK,
    )
}

pub async fn signin(
    State(state): State<AppState>,
    browser: Browser,
    ip: ClientIp,
    body: Bytes,
) -> Response {
    account::signin(
        &state,
        &browser,
        &ip.key(),
        account::AccountForm::parse(&body),
    )
    .await
}

pub async fn register_page(
    State(state): State<AppState>,
    browser: Browser,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    account::register_form(&state, &browser, q.get("return_to").map(String::as_str))
}

pub async fn register(
    State(state): State<AppState>,
    browser: Browser,
    ip: ClientIp,
    body: Bytes,
) -> Response {
    account::register(
        &state,
        &browser,
        &ip.key(),
        account::AccountForm::parse(&body),
    )
    .await
}

pub async fn signout_page(State(state): State<AppState>, browser: Browser) -> Response {
    account::signout_page(&state, &browser)
}

pub async fn signout(State(state): State<AppState>, browser: Browser, body: Bytes) -> Response {
    let form = account::AccountForm::parse(&body);
    account::signout(&state, &browser, form.csrf.as_deref()).await
}

pub async fn apps_page(
    State(state): State<AppState>,
    browser: Browser,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    allowed_apps::show(
        &state,
        &browser,
        "/ap/adam",
        q.get("removed").map(String::as_str),
    )
    .await
}

pub async fn apps_remove(State(state): State<AppState>, browser: Browser, body: Bytes) -> Response {
    allowed_apps::remove(
        &state,
        &browser,
        "/ap/adam",
        allowed_apps::RemoveForm::parse(&body),
    )
    .await
}

pub async fn account_apps_page(
    State(state): State<AppState>,
    browser: Browser,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    allowed_apps::show(
        &state,
        &browser,
        "/account/apps",
        q.get("removed").map(String::as_str),
    )
    .await
}

pub async fn account_apps_remove(
    State(state): State<AppState>,
    browser: Browser,
    body: Bytes,
) -> Response {
    allowed_apps::remove(
        &state,
        &browser,
        "/account/apps",
        allowed_apps::RemoveForm::parse(&body),
    )
    .await
}

pub async fn account_page(
    State(state): State<AppState>,
    browser: Browser,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    account_settings::show(&state, &browser, q.get("done").map(String::as_str)).await
}

pub async fn account_profile(
    State(state): State<AppState>,
    browser: Browser,
    body: Bytes,
) -> Response {
    account_settings::update_profile(
        &state,
        &browser,
        account_settings::SettingsForm::parse(&body),
    )
    .await
}

pub async fn account_password(
    State(state): State<AppState>,
    browser: Browser,
    body: Bytes,
) -> Response {
    account_settings::change_password(
        &state,
        &browser,
        account_settings::SettingsForm::parse(&body),
    )
    .await
}

pub async fn account_end_session(
    State(state): State<AppState>,
    browser: Browser,
    body: Bytes,
) -> Response {
    account_settings::end_session(
        &state,
        &browser,
        account_settings::SettingsForm::parse(&body),
    )
    .await
}

pub async fn account_end_all_sessions(
    State(state): State<AppState>,
    browser: Browser,
    body: Bytes,
) -> Response {
    account_settings::end_all_sessions(
        &state,
        &browser,
        account_settings::SettingsForm::parse(&body),
    )
    .await
}

pub async fn code_page(
    State(state): State<AppState>,
    browser: Browser,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    code_entry::show(&state, &browser, q.get("user_code").map(String::as_str)).await
}

pub async fn code_submit(
    State(state): State<AppState>,
    browser: Browser,
    ip: ClientIp,
    body: Bytes,
) -> Response {
    code_entry::submit(
        &state,
        &browser,
        &ip.key(),
        code_entry::CodeForm::parse(&body),
    )
    .await
}

pub async fn code_confirm(
    State(state): State<AppState>,
    browser: Browser,
    body: Bytes,
) -> Response {
    code_entry::confirm(&state, &browser, code_entry::CodeForm::parse(&body)).await
}

pub async fn developer_console(
    State(state): State<AppState>,
    browser: Browser,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    developer::console(&state, &browser, q.get("done").map(String::as_str)).await
}

pub async fn developer_enable(
    State(state): State<AppState>,
    browser: Browser,
    body: Bytes,
) -> Response {
    developer::enable(&state, &browser, developer::ConsoleForm::parse(&body)).await
}

pub async fn developer_new_app(State(state): State<AppState>, browser: Browser) -> Response {
    developer::new_app_form(&state, &browser).await
}

pub async fn developer_create(
    State(state): State<AppState>,
    browser: Browser,
    body: Bytes,
) -> Response {
    developer::create(&state, &browser, developer::ConsoleForm::parse(&body)).await
}

pub async fn developer_app(
    State(state): State<AppState>,
    browser: Browser,
    ClientIdParam(client_id): ClientIdParam,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    developer::app_page(
        &state,
        &browser,
        &client_id,
        q.get("done").map(String::as_str),
    )
    .await
}

pub async fn developer_edit_form(
    State(state): State<AppState>,
    browser: Browser,
    ClientIdParam(client_id): ClientIdParam,
) -> Response {
    developer::edit_form(&state, &browser, &client_id).await
}

pub async fn developer_save(
    State(state): State<AppState>,
    browser: Browser,
    ClientIdParam(client_id): ClientIdParam,
    body: Bytes,
) -> Response {
    developer::save(
        &state,
        &browser,
        &client_id,
        developer::ConsoleForm::parse(&body),
    )
    .await
}

pub async fn developer_rotate(
    State(state): State<AppState>,
    browser: Browser,
    ClientIdParam(client_id): ClientIdParam,
    body: Bytes,
) -> Response {
    developer::rotate(
        &state,
        &browser,
        &client_id,
        developer::ConsoleForm::parse(&body),
    )
    .await
}

pub async fn developer_delete_page(
    State(state): State<AppState>,
    browser: Browser,
    ClientIdParam(client_id): ClientIdParam,
) -> Response {
    developer::delete_page(&state, &browser, &client_id).await
}

pub async fn developer_delete(
    State(state): State<AppState>,
    browser: Browser,
    ClientIdParam(client_id): ClientIdParam,
    body: Bytes,
) -> Response {
    developer::delete(
        &state,
        &browser,
        &client_id,
        developer::ConsoleForm::parse(&body),
    )
    .await
}

pub async fn developer_logo_upload(
    State(state): State<AppState>,
    browser: Browser,
    ClientIdParam(client_id): ClientIdParam,
    multipart: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let form = developer::LogoForm::read(multipart).await;
    developer::upload_logo(&state, &browser, &client_id, form).await
}

pub async fn developer_logo_remove(
    State(state): State<AppState>,
    browser: Browser,
    ClientIdParam(client_id): ClientIdParam,
    body: Bytes,
) -> Response {
    developer::remove_logo(
        &state,
        &browser,
        &client_id,
        developer::ConsoleForm::parse(&body),
    )
    .await
}

/// `GET /logos/{client_id}/{version}`.
pub async fn logo(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
) -> Response {
    let (client_id, version) = path.map(|Path(p)| p).unwrap_or_default();
    flows::logo::serve(&state, &client_id, &version).await
}

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

fn no_store(mut res: Response) -> Response {
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
                        if let Some(wait) = state.token_throttle.failed(state, &buckets).await {
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

/// The one `Authorization` header of a token request, if sent. A header that cannot be read, or a second one,
/// is refused rather than skipped: skipping it would authenticate the client by the body alone.
fn authorization_header(headers: &HeaderMap) -> Result<Option<&str>, OAuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(OAuthError::new(
            latchkey_core::error::ErrorCode::InvalidRequest,
            "The request has more than one Authorization header",
        ));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| OAuthError::invalid_client("Authorization"))
}

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
        Err(f) => resource_error(f),
    }
}

/// Marks a response as being about `client_id`'s token: CORS answers only that app's origins (`web::cors`).
fn for_app(mut res: Response, client_id: String) -> Response {
    res.extensions_mut()
        .insert(crate::web::cors::ForApp(client_id));
    res
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
        Err(f) => resource_error(f),
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
        Err(e) => resource_error(Failure::Store(e)),
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
        Err(f) => bearer_error(f),
    }
}

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => "ready".into_response(),
        Err(e) => {
            tracing::error!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
    }
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// A static asset, cacheable for an hour.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

pub async fn sdk_script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../static/sdk/login1.js"),
    )
}

pub async fn relay_script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../static/sdk/relay.js"),
    )
}

pub async fn button_light() -> Response {
    asset(
        "image/svg+xml",
        include_str!("../../static/sdk/button-light.svg"),
    )
}

pub async fn button_dark() -> Response {
    asset(
        "image/svg+xml",
        include_str!("../../static/sdk/button-dark.svg"),
    )
}

pub async fn sdk_relay(
    State(state): State<AppState>,
    ClientIdParam(client_id): ClientIdParam,
) -> Response {
    flows::sdk::relay(&state, &client_id).await
}

pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/latchkey.css"),
    )
        .into_response()
}

pub async fn not_found() -> Response {
    pages::message(
        StatusCode::NOT_FOUND,
        "Page not found",
        &["There is nothing at this address."],
    )
}
