//! The code-entry page of code-based linking (`/code`).

use crate::app::AppState;
use crate::flows::code_entry;
use crate::web::extract::ClientIp;
use crate::web::session::Browser;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Response;
use std::collections::HashMap;

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
