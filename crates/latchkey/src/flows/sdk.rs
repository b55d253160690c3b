//! The JavaScript SDK's server side (SPEC 2.7): the popup relay page. `authorize` in `/sdk/login1.js` sends the
//! popup back to `{issuer}/sdk/relay/{client_id}`, a return URL every app with allowed origins has implicitly;
//! the relay hands the response to the opener only if the opener is on one of those origins.

use crate::app::AppState;
use crate::store::Client;
use crate::web::error::page_failure;
use crate::web::pages;
use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

/// The popup return URL of `client_id`.
pub fn relay_uri(issuer: &str, client_id: &str) -> String {
    format!("{issuer}/sdk/relay/{client_id}")
}

/// `client` with its popup relay among its return URLs, if it has allowed origins and `requested` is the relay.
pub fn with_relay(issuer: &str, mut client: Client, requested: Option<&str>) -> Client {
    let relay = relay_uri(issuer, &client.policy.client_id);
    if !client.allowed_origins.is_empty() && requested == Some(relay.as_str()) {
        client.policy.redirect_uris.push(relay);
    }
    client
}

#[derive(Template)]
#[template(path = "relay.html")]
struct Relay {
    app_name: String,
    origins: String,
}

/// `GET /sdk/relay/{client_id}`.
pub async fn relay(state: &AppState, client_id: &str) -> Response {
    let found = if latchkey_core::ids::is_client_id(client_id) {
        state.store.find_client(client_id).await
    } else {
        Ok(None)
    };
    let client = match found {
        Ok(Some(c)) if !c.allowed_origins.is_empty() => c,
        Ok(_) => {
            return pages::message(
                StatusCode::BAD_REQUEST,
                "Unknown app",
                &["This sign-in window belongs to no app that uses the Latchkey SDK."],
            )
        }
        Err(e) => {
            return page_failure(e.into());
        }
    };
    let page = Relay {
        app_name: client.name,
        origins: client.allowed_origins.join(" "),
    };
    match page.render() {
        Ok(html) => {
            let mut res = Html(html).into_response();
            res.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'",
                ),
            );
            res
        }
        Err(e) => {
            tracing::error!(error = %e, "relay template failed");
            pages::unavailable()
        }
    }
}
