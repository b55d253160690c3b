//! The SDK's relay page (`flows::sdk`): the popup's return URL, which hands the response to its opener only on one
//! of the app's allowed origins.

use crate::app::AppState;
use crate::flows::sdk::{self, RelayApp};
use crate::web::error::page_failure;
use crate::web::extract::ClientIdParam;
use crate::web::pages;
use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

#[derive(Template)]
#[template(path = "relay.html")]
struct Relay {
    app_name: String,
    origins: String,
}

pub async fn sdk_relay(
    State(state): State<AppState>,
    ClientIdParam(client_id): ClientIdParam,
) -> Response {
    match sdk::relay(&state, &client_id).await {
        Ok(Some(RelayApp { app_name, origins })) => {
            let mut res = pages::render(
                StatusCode::OK,
                &Relay {
                    app_name,
                    origins: origins.join(" "),
                },
            );
            res.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'",
                ),
            );
            res
        }
        Ok(None) => pages::message(
            StatusCode::BAD_REQUEST,
            "Unknown app",
            &["This sign-in window belongs to no app that uses the Latchkey SDK."],
        ),
        Err(failure) => page_failure(failure),
    }
}
