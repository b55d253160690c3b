//! The developer console.

use crate::app::AppState;
use crate::flows::developer;
use crate::web::extract::ClientIdParam;
use crate::web::session::Browser;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Response;
use std::collections::HashMap;

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
