//! Browsers and sessions: a random browser id cookie that CSRF tokens are bound to, and the server-side session
//! (stored only as a keyed hash) that says who is signed in. Cookies are `HttpOnly; SameSite=Lax`, `Secure` and
//! `__Host-` prefixed unless the issuer is plain-http loopback development (SPEC 4).

use crate::app::AppState;
use crate::flows::SignedIn;
use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Request};
use axum::middleware::Next;
use axum::response::Response;
use latchkey_core::secret::{self, Kind};

/// Tokens we mint are 43 base64url characters; anything else in a cookie is ignored.
fn plausible_token(v: &str) -> bool {
    v.len() == 43
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn cookie_name(state: &AppState, base: &'static str) -> &'static str {
    match (state.secure_cookies, base) {
        (true, "b") => "__Host-lk_b",
        (true, "k") => "__Host-lk_k",
        (true, "c") => "__Host-lk_c",
        (true, _) => "__Host-lk_s",
        (false, "b") => "lk_b",
        (false, "k") => "lk_k",
        (false, "c") => "lk_c",
        (false, _) => "lk_s",
    }
}

/// The value of cookie `name`, if sent.
pub fn get_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn set_cookie(state: &AppState, name: &str, value: &str, max_age: i64) -> HeaderValue {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let v = format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("lk_invalid=1"))
}

/// A browser id minted for this request because it had none.
#[derive(Clone)]
struct NewBrowserId(String);

/// Gives every browser that reaches a page a random id cookie (CSRF tokens are MACs of it).
pub async fn ensure_browser_cookie(
    State(state): State<AppState>,
    mut req: Request<Body>,
    next: Next,
) -> Response {
    let name = cookie_name(&state, "b");
    if get_cookie(req.headers(), name).is_some_and(plausible_token) {
        return next.run(req).await;
    }
    let id = secret::mint(&mut rand::thread_rng(), "")
        .expose()
        .to_owned();
    req.extensions_mut().insert(NewBrowserId(id.clone()));
    let mut res = next.run(req).await;
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, name, &id, 400 * 24 * 3600),
    );
    res
}

/// The browser making a page request.
pub struct Browser {
    pub id: String,
    pub signed_in: Option<SignedIn>,
    /// The known-browser cookie, if sent (see [`Browser::knows`]).
    known: Option<String>,
}

impl FromRequestParts<AppState> for Browser {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let id = match parts.extensions.get::<NewBrowserId>() {
            Some(new) => new.0.clone(),
            None => get_cookie(&parts.headers, cookie_name(state, "b"))
                .unwrap_or_default()
                .to_owned(),
        };
        let signed_in = match get_cookie(&parts.headers, cookie_name(state, "s"))
            .filter(|v| plausible_token(v))
        {
            None => None,
            Some(token) => {
                let id_hash = state.hasher.token(Kind::Session, token);
                match state.store.find_session(&id_hash, state.clock.now()).await {
                    Ok(found) => found.map(|session| SignedIn { id_hash, session }),
                    Err(e) => return Err(super::error::page_failure(e.into())),
                }
            }
        };
        let known = get_cookie(&parts.headers, cookie_name(state, "k"))
            .filter(|v| plausible_token(v))
            .map(str::to_owned);
        Ok(Browser {
            id,
            signed_in,
            known,
        })
    }
}

impl Browser {
    /// The CSRF token for this browser's forms.
    pub fn csrf(&self, state: &AppState) -> String {
        state.hasher.mac_b64(Kind::Csrf, &[self.id.as_bytes()])
    }

    /// Whether a form's CSRF token belongs to this browser (constant-time).
    pub fn csrf_ok(&self, state: &AppState, presented: Option<&str>) -> bool {
        !self.id.is_empty()
            && presented.is_some_and(|p| {
                state
                    .hasher
                    .verify_b64(Kind::Csrf, &[self.id.as_bytes()], p)
            })
    }
}

impl Browser {
    /// Whether this browser signed in to the account of `email` (lowercase) before: an account under a guessing
    /// attack from many addresses still lets its owner in from a browser it knows.
    pub fn knows(&self, state: &AppState, email: &str) -> bool {
        self.known.as_deref().is_some_and(|v| {
            state
                .hasher
                .verify_b64(Kind::KnownBrowser, &[email.as_bytes()], v)
        })
    }
}

/// `Set-Cookie` that marks the browser as one that signed in to the account of `email` (lowercase).
pub fn known_browser_cookie(state: &AppState, email: &str) -> HeaderValue {
    let proof = state
        .hasher
        .mac_b64(Kind::KnownBrowser, &[email.as_bytes()]);
    set_cookie(state, cookie_name(state, "k"), &proof, 400 * 24 * 3600)
}

/// `Set-Cookie` for a new session.
pub fn session_cookie(state: &AppState, token: &str) -> HeaderValue {
    set_cookie(
        state,
        cookie_name(state, "s"),
        token,
        state.config.session_ttl,
    )
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_session_cookie(state: &AppState) -> HeaderValue {
    set_cookie(state, cookie_name(state, "s"), "", 0)
}

/// `Set-Cookie` naming the mailed code this browser waits for (SPEC 2.8): the code's id, never the code. It lives
/// as long as the code.
pub fn code_cookie(state: &AppState, code_id: &str) -> HeaderValue {
    set_cookie(
        state,
        cookie_name(state, "c"),
        code_id,
        crate::flows::codes::CODE_TTL_SECS,
    )
}

/// The id of the mailed code this browser waits for, if its cookie is there and could be one.
pub fn pending_code<'a>(state: &AppState, headers: &'a HeaderMap) -> Option<&'a str> {
    get_cookie(headers, cookie_name(state, "c")).filter(|v| {
        !v.is_empty()
            && v.len() <= 64
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// `Set-Cookie` that removes the code cookie (the code was used).
pub fn clear_code_cookie(state: &AppState) -> HeaderValue {
    set_cookie(state, cookie_name(state, "c"), "", 0)
}
