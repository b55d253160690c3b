//! The account page: profile, password, sessions.

use crate::app::AppState;
use crate::flows::account;
use crate::web::session::Browser;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Response;
use std::collections::HashMap;

pub async fn account_page(
    State(state): State<AppState>,
    browser: Browser,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    account::show(&state, &browser, q.get("done").map(String::as_str)).await
}

pub async fn account_profile(
    State(state): State<AppState>,
    browser: Browser,
    body: Bytes,
) -> Response {
    account::update_profile(&state, &browser, account::SettingsForm::parse(&body)).await
}

pub async fn account_password(
    State(state): State<AppState>,
    browser: Browser,
    body: Bytes,
) -> Response {
    account::change_password(&state, &browser, account::SettingsForm::parse(&body)).await
}

pub async fn account_end_session(
    State(state): State<AppState>,
    browser: Browser,
    body: Bytes,
) -> Response {
    account::end_session(&state, &browser, account::SettingsForm::parse(&body)).await
}

pub async fn account_end_all_sessions(
    State(state): State<AppState>,
    browser: Browser,
    body: Bytes,
) -> Response {
    account::end_all_sessions(&state, &browser, account::SettingsForm::parse(&body)).await
}
