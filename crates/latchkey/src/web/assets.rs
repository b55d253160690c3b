//! Static assets (the stylesheet, the SDK's scripts and buttons) and app logos.

use crate::app::AppState;
use crate::flows::{self};
use crate::web::error::page_failure;
use crate::web::pages;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// `GET /logos/{client_id}/{version}`: the stored PNG, cacheable for good (a new upload has a new version);
/// 404 when the app has no logo or another version.
pub async fn logo(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
) -> Response {
    let (client_id, version) = path.map(|Path(p)| p).unwrap_or_default();
    match flows::logo::serve(&state, &client_id, &version).await {
        Ok(Some(png)) => (
            [
                (header::CONTENT_TYPE, "image/png"),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            png,
        )
            .into_response(),
        Ok(None) => pages::message(
            StatusCode::NOT_FOUND,
            "Logo not found",
            &["There is no logo at this address."],
        ),
        Err(failure) => page_failure(failure),
    }
}

/// A static asset, cacheable for an hour.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

pub async fn sdk_script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../static/sdk/login1.js"),
    )
}

pub async fn relay_script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../static/sdk/relay.js"),
    )
}

pub async fn button_light() -> Response {
    asset(
        "image/svg+xml",
        include_str!("../../static/sdk/button-light.svg"),
    )
}

pub async fn button_dark() -> Response {
    asset(
        "image/svg+xml",
        include_str!("../../static/sdk/button-dark.svg"),
    )
}

pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/latchkey.css"),
    )
        .into_response()
}
