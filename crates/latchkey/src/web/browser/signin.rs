//! Sign-in, sign-up and sign-out pages.

use crate::app::AppState;
use crate::flows::signin;
use crate::web::extract::ClientIp;
use crate::web::session::Browser;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use std::collections::HashMap;

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
    signin::signin_page(
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
    signin::signin(
        &state,
        &browser,
        &ip.key(),
        signin::AccountForm::parse(&body),
    )
    .await
}

pub async fn register_page(
    State(state): State<AppState>,
    browser: Browser,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    signin::register_form(&state, &browser, q.get("return_to").map(String::as_str))
}

pub async fn register(
    State(state): State<AppState>,
    browser: Browser,
    ip: ClientIp,
    body: Bytes,
) -> Response {
    signin::register(
        &state,
        &browser,
        &ip.key(),
        signin::AccountForm::parse(&body),
    )
    .await
}

pub async fn signout_page(State(state): State<AppState>, browser: Browser) -> Response {
    signin::signout_page(&state, &browser)
}

pub async fn signout(State(state): State<AppState>, browser: Browser, body: Bytes) -> Response {
    let form = signin::AccountForm::parse(&body);
    signin::signout(&state, &browser, form.csrf.as_deref()).await
}
