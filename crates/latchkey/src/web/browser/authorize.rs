//! `/ap/oa` (and `/oauth2/authorize`) and the consent form.

use crate::app::AppState;
use crate::flows::authorize;
use crate::web::session::Browser;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::Response;

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
