//! HTTP: the one router constructor, the middleware every response passes through (request ids, logs without
//! secrets, metrics, security headers, body limits), and the server loop with graceful shutdown.

mod api;
mod assets;
mod browser;
pub mod cors;
pub mod error;
mod extract;
mod ops;
pub mod pages;
pub mod params;
mod resource;
pub mod server;
pub mod session;

use crate::app::AppState;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, State};
use axum::http::{header, HeaderName, HeaderValue, Request, Response};
use axum::middleware::{self, Next};
use axum::routing::{get, post};
use axum::Router;
use std::time::{Duration, Instant};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// The largest request body any endpoint reads, but the logo upload.
pub const MAX_BODY_BYTES: usize = 32 * 1024;

/// The logo upload's body: the largest logo accepted, and room for the form's other field and multipart framing.
pub const MAX_LOGO_BODY_BYTES: usize = crate::flows::logo::MAX_UPLOAD_BYTES + 16 * 1024;

/// Builds the whole HTTP surface. The binary and the tests both serve exactly this.
pub fn router(state: AppState) -> Router {
    let pages = Router::new()
        .route("/", get(browser::home))
        .route("/ap/oa", get(browser::authorize::authorize))
        .route("/oauth2/authorize", get(browser::authorize::authorize))
        .route("/ap/oa/consent", post(browser::authorize::consent))
        .route(
            "/ap/signin",
            get(browser::signin::signin_page).post(browser::signin::signin),
        )
        .route(
            "/ap/register",
            get(browser::signin::register_page).post(browser::signin::register),
        )
        .route(
            "/ap/verify",
            get(browser::verify::verify_page).post(browser::verify::verify_submit),
        )
        .route("/ap/verify/resend", post(browser::verify::resend))
        .route(
            "/ap/signout",
            get(browser::signin::signout_page).post(browser::signin::signout),
        )
        .route(
            "/code",
            get(browser::device::code_page).post(browser::device::code_submit),
        )
        .route("/code/confirm", post(browser::device::code_confirm))
        .route(
            "/ap/adam",
            get(browser::apps::apps_page).post(browser::apps::apps_remove),
        )
        .route(
            "/account/apps",
            get(browser::apps::apps_page).post(browser::apps::apps_remove),
        )
        .route("/account", get(browser::account::account_page))
        .route("/account/profile", post(browser::account::account_profile))
        .route("/account/delete", post(browser::account::account_delete))
        .route("/account/email", post(browser::account::account_email))
        .route(
            "/account/email/verify",
            get(browser::account::account_email_verify_page)
                .post(browser::account::account_email_verify),
        )
        .route(
            "/ap/forgot",
            get(browser::recovery::forgot_page).post(browser::recovery::forgot),
        )
        .route(
            "/ap/reset",
            get(browser::recovery::reset_page).post(browser::recovery::reset),
        )
        .route("/account/export", post(browser::account::account_export))
        .route(
            "/account/password",
            post(browser::account::account_password),
        )
        .route(
            "/account/sessions/end",
            post(browser::account::account_end_session),
        )
        .route(
            "/account/sessions/end-all",
            post(browser::account::account_end_all_sessions),
        )
        .route("/developer", get(browser::developer::developer_console))
        .route(
            "/developer/enable",
            post(browser::developer::developer_enable),
        )
        .route(
            "/developer/apps",
            post(browser::developer::developer_create),
        )
        .route(
            "/developer/apps/new",
            get(browser::developer::developer_new_app),
        )
        .route(
            "/developer/apps/{client_id}",
            get(browser::developer::developer_app),
        )
        .route(
            "/developer/apps/{client_id}/edit",
            get(browser::developer::developer_edit_form).post(browser::developer::developer_save),
        )
        .route(
            "/developer/apps/{client_id}/secret",
            post(browser::developer::developer_rotate),
        )
        .route(
            "/developer/apps/{client_id}/delete",
            get(browser::developer::developer_delete_page)
                .post(browser::developer::developer_delete),
        )
        .route(
            "/developer/apps/{client_id}/logo/remove",
            post(browser::developer::developer_logo_remove),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            session::ensure_browser_cookie,
        ))
        .route_layer(middleware::from_fn(refuse_nul_in_pages));
    // The logo upload (SPEC 2.6): the one form whose body is binary and up to 1 MB, so it has its own limit and
    // is not scanned for NULs (its path is a checked client id; its file is decoded, never stored as sent).
    let uploads = Router::new()
        .route(
            "/developer/apps/{client_id}/logo",
            post(browser::developer::developer_logo_upload),
        )
        .route_layer(DefaultBodyLimit::max(MAX_LOGO_BODY_BYTES))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            session::ensure_browser_cookie,
        ));
    // What browser apps call from their own pages (SPEC 2.7, 3): CORS for registered origins only.
    let cross_origin_token = cors::cross_origin(
        Router::new()
            .route("/auth/o2/token", post(api::token))
            .route("/oauth2/token", post(api::token))
            .method_not_allowed_fallback(|| async { error::method_not_allowed("POST") }),
        &state,
    );
    let cross_origin_api = cors::cross_origin(
        Router::new()
            .route("/auth/o2/tokeninfo", get(resource::tokeninfo))
            .route("/user/profile", get(resource::profile))
            .route(
                "/.well-known/openid-configuration",
                get(resource::discovery),
            )
            .route(
                "/.well-known/oauth-authorization-server",
                get(resource::discovery),
            )
            .route("/jwks.json", get(resource::jwks))
            .method_not_allowed_fallback(|| async { error::method_not_allowed("GET, HEAD") }),
        &state,
    );
    let cross_origin_userinfo = cors::cross_origin(
        Router::new()
            .route(
                "/oauth2/userinfo",
                get(resource::userinfo).post(resource::userinfo),
            )
            .method_not_allowed_fallback(|| async { error::method_not_allowed("GET, HEAD, POST") }),
        &state,
    );
    let token_api = Router::new()
        .route("/auth/o2/create/codepair", post(api::codepair))
        .route(
            "/oauth2/device_authorization",
            post(api::device_authorization),
        )
        .route("/oauth2/introspect", post(api::introspect))
        .route("/oauth2/revoke", post(api::revoke))
        .method_not_allowed_fallback(|| async { error::method_not_allowed("POST") })
        .merge(cross_origin_token);
    let api = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/static/latchkey.css", get(assets::stylesheet))
        .route("/sdk/login1.js", get(assets::sdk_script))
        .route("/sdk/relay.js", get(assets::relay_script))
        .route("/sdk/relay/{client_id}", get(browser::sdk::sdk_relay))
        .route("/sdk/button-light.svg", get(assets::button_light))
        .route("/sdk/button-dark.svg", get(assets::button_dark))
        .route("/logos/{client_id}/{version}", get(assets::logo))
        .method_not_allowed_fallback(|| async { error::method_not_allowed("GET, HEAD") })
        .merge(token_api)
        .merge(cross_origin_api)
        .merge(cross_origin_userinfo);
    let inner = pages
        .merge(uploads)
        .merge(api)
        .fallback(browser::not_found)
        .layer(
            ServiceBuilder::new()
                // The request id is always the server's own: one sent by the client is dropped, not logged.
                .map_request(|mut req: Request<Body>| {
                    req.headers_mut().remove("x-request-id");
                    req
                })
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(request_span)
                        .on_response(log_response),
                )
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(CatchPanicLayer::custom(error::panic_response))
                .layer(middleware::from_fn_with_state(
                    state.clone(),
                    record_metrics,
                ))
                .layer(middleware::from_fn_with_state(
                    state.clone(),
                    security_headers,
                ))
                // A request, its body included, within 30 s (SPEC 4): a client trickling its body is cut off.
                .layer(TimeoutLayer::with_status_code(
                    axum::http::StatusCode::REQUEST_TIMEOUT,
                    server::REQUEST_TIMEOUT,
                ))
                // Enforced where bodies are read, so that each endpoint family answers in its own shape
                // (token JSON, page) instead of a bare plain-text 413.
                .layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .with_state(state);
    // SPEC 2: the `o2` segment of LWA paths matches case-insensitively (`/auth/O2/token`).
    Router::new().fallback_service(
        ServiceBuilder::new()
            .map_request(normalize_lwa_path)
            .service(inner),
    )
}

fn normalize_lwa_path(mut req: Request<Body>) -> Request<Body> {
    let path = req.uri().path();
    let prefix = path.get(..8).unwrap_or_default();
    if prefix.eq_ignore_ascii_case("/auth/o2") && prefix != "/auth/o2" {
        let mut fixed = String::with_capacity(path.len() + 32);
        fixed.push_str("/auth/o2");
        fixed.push_str(&path[8..]);
        if let Some(q) = req.uri().query() {
            fixed.push('?');
            fixed.push_str(q);
        }
        if let Ok(uri) = fixed.parse() {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// A percent-encoded NUL, which no URL, form field or identifier of ours contains (and PostgreSQL cannot store).
fn has_nul(bytes: &[u8]) -> bool {
    bytes.contains(&0) || bytes.windows(3).any(|w| w == b"%00")
}

fn nul_refused() -> axum::response::Response {
    pages::message(
        axum::http::StatusCode::BAD_REQUEST,
        "Bad request",
        &["The request contains a NUL character (%00), which no address or form field may contain."],
    )
}

/// Pages (bounded, never on a hot path): a NUL in the path, the query or a form body is refused before any
/// handler looks it up (SPEC 4). API parameters are refused where they are parsed (`Params`), by name and in
/// the API's own shape.
async fn refuse_nul_in_pages(req: Request<Body>, next: Next) -> Response<Body> {
    let uri = req.uri();
    if has_nul(uri.path().as_bytes()) || uri.query().is_some_and(|q| has_nul(q.as_bytes())) {
        return nul_refused();
    }
    if req.method() != axum::http::Method::POST {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return pages::message(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "Too much data",
            &["The form sent more data than any of our forms holds."],
        );
    };
    if has_nul(&bytes) {
        return nul_refused();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The log span of a request: method, path (never the query, which may carry a token) and request id.
fn request_span(req: &Request<Body>) -> tracing::Span {
    let id = req
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-");
    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
}

fn log_response<B>(res: &Response<B>, latency: Duration, _span: &tracing::Span) {
    tracing::info!(
        status = res.status().as_u16(),
        latency_ms = latency.as_secs_f64() * 1000.0,
        "response"
    );
}

async fn record_metrics(
    State(state): State<AppState>,
    req: Request<Body>,
    next: Next,
) -> Response<Body> {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_owned();
    let res = next.run(req).await;
    let m = &state.metrics;
    m.latency
        .get_or_create(&crate::metrics::RouteLabels {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&crate::metrics::RequestLabels {
            method,
            route,
            status: res.status().as_u16(),
        })
        .inc();
    res
}

/// Pages a popup opened by another site goes through on its way to the SDK's relay (`/sdk/relay/…`): they keep
/// their opener, so they send no `Cross-Origin-Opener-Policy` (it would sever the popup from the app's page).
fn keeps_opener(path: &str) -> bool {
    matches!(
        path,
        "/ap/oa"
            | "/oauth2/authorize"
            | "/ap/oa/consent"
            | "/ap/signin"
            | "/ap/register"
            | "/ap/verify"
    ) || path.starts_with("/sdk/relay/")
}

/// SPEC 4's headers on every response; `Cache-Control: no-store` unless the handler chose otherwise.
async fn security_headers(
    State(state): State<AppState>,
    req: Request<Body>,
    next: Next,
) -> Response<Body> {
    let isolate = !keeps_opener(req.uri().path());
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // A page that runs a script (the SDK's popup relay) sets its own, stricter-than-nothing policy.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
    }
    if isolate {
        h.insert(
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        );
    }
    if state.secure_cookies {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// Serves `router(state)` on `listener` until `shutdown` completes, then drains in-flight requests: HTTPS when
/// `tls_cert` and `tls_key` are set (reread on SIGHUP), plain HTTP otherwise, under SPEC 4's connection limits.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = match (&state.config.tls_cert, &state.config.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = std::sync::Arc::new(server::Tls::load(cert, key)?);
            reload_on_sighup(tls.clone());
            Some(tls)
        }
        _ => None,
    };
    let limits = server::Limits {
        max_connections: state.config.max_connections,
        per_address: server::MAX_CONNECTIONS_PER_ADDRESS,
        trusted: state.trusted_proxies.clone(),
    };
    server::run(listener, router(state), tls, limits, shutdown).await
}

/// The operator's listener (`admin_listen`, SPEC 5): `/metrics`, never served on the public one.
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(ops::metrics))
        .with_state(state)
}

/// Serves [`admin_router`] on `listener` until `shutdown`.
pub async fn serve_admin(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = server::Limits {
        max_connections: 64,
        per_address: 64,
        trusted: Default::default(),
    };
    server::run(listener, admin_router(state), None, limits, shutdown).await
}

#[cfg(unix)]
fn reload_on_sighup(tls: std::sync::Arc<server::Tls>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: the TLS certificate will not be reread");
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => tracing::info!("TLS certificate reread"),
                Err(e) => {
                    tracing::error!(error = %e, "TLS certificate not reread; the old one stays in use")
                }
            }
        }
    });
}

#[cfg(not(unix))]
fn reload_on_sighup(_tls: std::sync::Arc<server::Tls>) {}
