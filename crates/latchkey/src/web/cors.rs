//! CORS for the endpoints a browser app calls from its own pages (SPEC 2.7, 3): the token endpoints, tokeninfo,
//! profile, userinfo, discovery and the JWKS. A successful answer about one app (tokens for the app a token
//! request names, what a token issued to it reads: the handler marks the response with [`ForApp`]) is shared only
//! with that app's allowed origins; any other answer (discovery, the JWKS, an error, which carries nothing) and a
//! preflight (which carries no body to name an app) only with origins some app lists. Each origin is answered with itself (never `*`, never credentials); any other
//! gets no CORS headers and its preflight is refused. Pages (`/ap/oa`, sign-in, consent) never get this layer.

use crate::app::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::Router;

pub const ALLOWED_METHODS: &str = "GET, POST, OPTIONS";
pub const ALLOWED_HEADERS: &str = "Authorization, Content-Type, x-amz-access-token";
/// How long a browser may cache a preflight answer, in seconds.
pub const MAX_AGE: &str = "600";
/// No registered origin is longer (scheme, host, port); longer ones are not looked up.
const MAX_ORIGIN_LEN: usize = 256;

/// Puts `router`'s routes behind CORS. Call it after adding the routes (and their method-not-allowed fallback):
/// it wraps the routes present then, including their fallback, so that `OPTIONS` preflights reach it.
pub fn cross_origin(router: Router<AppState>, state: &AppState) -> Router<AppState> {
    router.route_layer(middleware::from_fn_with_state(state.clone(), cors))
}

/// A response extension: the answer is about this app's token or request.
#[derive(Clone)]
pub struct ForApp(pub String);

/// The request's origin if `app` (or, with `None`, some app) allows it. A store failure is logged and refuses the
/// origin (fail closed).
async fn allowed_origin(
    state: &AppState,
    headers: &HeaderMap,
    app: Option<&str>,
) -> Option<HeaderValue> {
    let value = headers.get(header::ORIGIN)?;
    let origin = value.to_str().ok()?;
    if origin.is_empty() || origin.len() > MAX_ORIGIN_LEN {
        return None;
    }
    match state.store.origin_allowed(origin, app).await {
        Ok(true) => Some(value.clone()),
        Ok(false) => None,
        Err(e) => {
            tracing::error!(error = %e, "could not check a CORS origin");
            None
        }
    }
}

async fn cors(State(state): State<AppState>, req: Request<Body>, next: Next) -> Response<Body> {
    if !req.headers().contains_key(header::ORIGIN) {
        let mut res = next.run(req).await;
        vary_origin(&mut res);
        return res;
    }
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let allowed = allowed_origin(&state, req.headers(), None).await;
        let mut res = match &allowed {
            Some(_) => StatusCode::NO_CONTENT.into_response(),
            None => StatusCode::FORBIDDEN.into_response(),
        };
        vary_origin(&mut res);
        if let Some(origin) = allowed {
            let h = res.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOWED_METHODS),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(ALLOWED_HEADERS),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static(MAX_AGE),
            );
        }
        return res;
    }
    let headers = req.headers().clone();
    let mut res = next.run(req).await;
    vary_origin(&mut res);
    let app = res.extensions().get::<ForApp>().map(|a| a.0.clone());
    if let Some(origin) = allowed_origin(&state, &headers, app.as_deref()).await {
        let h = res.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("WWW-Authenticate"),
        );
    }
    res
}

/// The answer depends on `Origin`, so caches (the discovery documents are cacheable) must key on it.
fn vary_origin(res: &mut Response<Body>) {
    res.headers_mut()
        .append(header::VARY, HeaderValue::from_static("Origin"));
}
