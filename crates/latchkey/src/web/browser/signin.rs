//! Sign-in, sign-up and sign-out pages: the forms, their CSRF check, and the flows' outcomes as pages, redirects
//! and cookies (`flows::signin` decides).

use crate::app::AppState;
use crate::flows::signin::{
    self, safe_return_to, NewAccount, RegisterOutcome, SignInAttempt, SignInOutcome,
};
use crate::web::error::page_failure;
use crate::web::extract::{ClientIp, Seen};
use crate::web::pages;
use crate::web::session::{self, Browser};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::secret::Secret;
use std::collections::HashMap;

/// What a form whose CSRF token is missing or wrong says: nothing was done.
pub const EXPIRED: &str = "Your form expired. Please try again.";

fn q(return_to: &str) -> String {
    url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect()
}

/// Sends a browser that is not signed in to the sign-in page, to come back to `return_to` afterwards.
pub fn signin_first(return_to: &str) -> Response {
    Redirect::to(&format!(
        "/ap/signin?return_to={}",
        q(&safe_return_to(Some(return_to)))
    ))
    .into_response()
}

/// The page for a form whose CSRF token is missing or wrong: nothing was done.
pub fn expired_form() -> Response {
    pages::message(StatusCode::BAD_REQUEST, "This form has expired", &[EXPIRED])
}

/// The sign-in limit's page (sign-in, and guessing the current password on the account page).
pub fn too_many_signins(wait: i64) -> Response {
    pages::too_many(
        "Too many attempts",
        "There have been too many sign-in attempts. Wait a few minutes, then try again.",
        wait,
    )
}

/// The fields of the sign-in and register forms.
#[derive(Default)]
pub struct AccountForm {
    pub csrf: Option<String>,
    pub return_to: Option<String>,
    pub email: String,
    pub password: Secret,
    pub name: String,
    pub postal_code: String,
}

impl AccountForm {
    pub fn parse(body: &[u8]) -> AccountForm {
        let mut f = AccountForm::default();
        for (k, v) in url::form_urlencoded::parse(body) {
            match &*k {
                "csrf" => f.csrf = Some(v.into_owned()),
                "return_to" => f.return_to = Some(v.into_owned()),
                "email" => f.email = v.trim().to_lowercase(),
                "password" => f.password = Secret::new(v.into_owned()),
                "name" => f.name = v.trim().to_owned(),
                "postal_code" => f.postal_code = v.trim().to_owned(),
                _ => {}
            }
        }
        f
    }
}

fn signin_form(
    state: &AppState,
    browser: &Browser,
    return_to: Option<&str>,
    email: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let return_to = safe_return_to(return_to);
    pages::render(
        status,
        &pages::SignIn {
            csrf: browser.csrf(state),
            return_to_q: q(&return_to),
            return_to,
            email: email.to_owned(),
            error: error.map(str::to_owned),
        },
    )
}

fn register_form(
    state: &AppState,
    browser: &Browser,
    form: &AccountForm,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let return_to = safe_return_to(form.return_to.as_deref());
    pages::render(
        status,
        &pages::Register {
            csrf: browser.csrf(state),
            return_to_q: q(&return_to),
            return_to,
            name: form.name.clone(),
            email: form.email.clone(),
            postal_code: form.postal_code.clone(),
            error: error.map(str::to_owned),
        },
    )
}

/// Sends a browser with a new session on: the session cookie, then `return_to`.
fn session_started(state: &AppState, session_token: &Secret, return_to: &str) -> Response {
    let mut res = Redirect::to(return_to).into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        session::session_cookie(state, session_token.expose()),
    );
    res
}

/// `GET /ap/signin`.
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
    signin_form(
        &state,
        &browser,
        q.get("return_to").map(String::as_str),
        email,
        None,
        StatusCode::OK,
    )
}

/// `POST /ap/signin`.
pub async fn signin(
    State(state): State<AppState>,
    browser: Browser,
    ip: ClientIp,
    Seen(origin): Seen,
    body: Bytes,
) -> Response {
    let form = AccountForm::parse(&body);
    let again = |error: &str, status| {
        signin_form(
            &state,
            &browser,
            form.return_to.as_deref(),
            &form.email,
            Some(error),
            status,
        )
    };
    if !browser.csrf_ok(&state, form.csrf.as_deref()) {
        return again(EXPIRED, StatusCode::BAD_REQUEST);
    }
    let attempt = SignInAttempt {
        email: &form.email,
        password: &form.password,
        return_to: form.return_to.as_deref(),
        known_browser: browser.knows(&state, &form.email.to_lowercase()),
        origin: &origin,
    };
    match signin::signin(&state, browser.signed_in.as_ref(), &ip.key(), attempt).await {
        Ok(SignInOutcome::Started {
            session_token,
            return_to,
            email,
        }) => {
            let mut res = session_started(&state, &session_token, &return_to);
            res.headers_mut().append(
                header::SET_COOKIE,
                session::known_browser_cookie(&state, &email),
            );
            res
        }
        Ok(SignInOutcome::Invalid { message }) => again(message, StatusCode::BAD_REQUEST),
        Ok(SignInOutcome::Incorrect { message }) => again(message, StatusCode::UNAUTHORIZED),
        Ok(SignInOutcome::Throttled { wait }) => too_many_signins(wait),
        Err(failure) => page_failure(failure),
    }
}

/// `GET /ap/register`.
pub async fn register_page(
    State(state): State<AppState>,
    browser: Browser,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let form = AccountForm {
        return_to: q.get("return_to").cloned(),
        ..AccountForm::default()
    };
    register_form(&state, &browser, &form, None, StatusCode::OK)
}

/// `POST /ap/register`.
pub async fn register(
    State(state): State<AppState>,
    browser: Browser,
    ip: ClientIp,
    body: Bytes,
) -> Response {
    let form = AccountForm::parse(&body);
    if !browser.csrf_ok(&state, form.csrf.as_deref()) {
        return register_form(
            &state,
            &browser,
            &form,
            Some(EXPIRED),
            StatusCode::BAD_REQUEST,
        );
    }
    let account = NewAccount {
        verified: false,
        email: &form.email,
        name: &form.name,
        postal_code: &form.postal_code,
        password: &form.password,
    };
    match signin::register(&state, &ip.key(), account, form.return_to.as_deref()).await {
        Ok(RegisterOutcome::CodeSent { code_id, return_to }) => {
            let mut res = crate::web::browser::verify::verify_first(&return_to);
            res.headers_mut()
                .append(header::SET_COOKIE, session::code_cookie(&state, &code_id));
            res
        }
        Ok(RegisterOutcome::Invalid { message }) => register_form(
            &state,
            &browser,
            &form,
            Some(message),
            StatusCode::BAD_REQUEST,
        ),
        Ok(RegisterOutcome::Throttled { wait }) => pages::too_many(
            "Too many new accounts",
            "Too many accounts have been created from this network. Wait a while, then try again.",
            wait,
        ),
        Err(failure) => page_failure(failure),
    }
}

/// `GET /ap/signout`: a button, because signing out changes state and must not happen on a link.
pub async fn signout_page(State(state): State<AppState>, browser: Browser) -> Response {
    if browser.signed_in.is_none() {
        return pages::message(
            StatusCode::OK,
            "You are signed out",
            &["You are not signed in to Latchkey on this browser."],
        );
    }
    pages::render(
        StatusCode::OK,
        &pages::Message {
            title: "Sign out".into(),
            paragraphs: vec!["Sign out of Latchkey on this browser?".into()],
            signout_csrf: Some(browser.csrf(&state)),
        },
    )
}

/// `POST /ap/signout`: ends the session on the server and removes the cookie.
pub async fn signout(State(state): State<AppState>, browser: Browser, body: Bytes) -> Response {
    let form = AccountForm::parse(&body);
    if !browser.csrf_ok(&state, form.csrf.as_deref()) {
        return expired_form();
    }
    if let Err(failure) = signin::signout(&state, browser.signed_in.as_ref()).await {
        return page_failure(failure);
    }
    let mut res = pages::message(
        StatusCode::OK,
        "You are signed out",
        &["You have signed out of Latchkey on this browser."],
    );
    res.headers_mut()
        .append(header::SET_COOKIE, session::clear_session_cookie(&state));
    res
}
