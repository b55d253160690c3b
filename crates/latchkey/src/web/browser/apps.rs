//! "Your apps": the apps a customer allowed, and Remove (`/ap/adam`, `/account/apps`).

use crate::app::AppState;
use crate::flows::allowed_apps;
use crate::web::session::Browser;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Response;
use std::collections::HashMap;

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
