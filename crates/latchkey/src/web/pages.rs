//! Server-rendered pages: one struct per template (askama checks them at compile time), and the helpers that
//! turn them into responses.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

#[derive(Template)]
#[template(path = "home.html")]
pub struct Home {
    pub user_name: Option<String>,
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "signin.html")]
pub struct SignIn {
    pub csrf: String,
    pub return_to: String,
    pub return_to_q: String,
    pub email: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "register.html")]
pub struct Register {
    pub csrf: String,
    pub return_to: String,
    pub return_to_q: String,
    pub name: String,
    pub email: String,
    pub postal_code: String,
    pub error: Option<String>,
}

/// One line of the consent page: what the app will see, with its current value.
pub struct ConsentItem {
    pub scope: String,
    pub label: &'static str,
    pub value: String,
    /// Non-essential (`scope_data`): the customer may untick it.
    pub optional: bool,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub struct Consent {
    pub app_name: String,
    pub logo_url: Option<String>,
    pub privacy_url: String,
    pub user_email: String,
    pub csrf: String,
    /// The original authorization query string, re-validated when the form comes back.
    pub request: String,
    /// Binds the decision to the session that saw this page.
    pub consent_token: String,
    pub items: Vec<ConsentItem>,
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct Message {
    pub title: String,
    pub paragraphs: Vec<String>,
    pub signout_csrf: Option<String>,
}

/// Renders a page with a status.
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be shown.",
            )
                .into_response()
        }
    }
}

/// A page that explains something (an error, a result).
pub fn message(status: StatusCode, title: &str, paragraphs: &[&str]) -> Response {
    render(
        status,
        &Message {
            title: title.into(),
            paragraphs: paragraphs.iter().map(|p| p.to_string()).collect(),
            signout_csrf: None,
        },
    )
}

/// The page shown when storage fails.
pub fn unavailable() -> Response {
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Latchkey is having trouble",
        &["Something went wrong on our side. Please try again in a moment."],
    )
}

#[derive(Template)]
#[template(path = "code_entry.html")]
pub struct CodeEntry {
    pub csrf: String,
    pub user_email: String,
    /// What the customer typed (or what `verification_uri_complete` carried).
    pub user_code: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "code_confirm.html")]
pub struct CodeConfirm {
    pub app_name: String,
    pub logo_url: Option<String>,
    pub privacy_url: String,
    pub user_email: String,
    pub csrf: String,
    /// The canonical user code, carried to the confirmation.
    pub user_code: String,
    pub user_code_shown: String,
    /// Binds the answer to the session that saw this page and to this code.
    pub confirm_token: String,
    pub items: Vec<ConsentItem>,
}
