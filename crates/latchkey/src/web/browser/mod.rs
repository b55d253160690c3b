//! The browser pages (SPEC 2.6): one module per area, each turning a flow's outcome into a page, a redirect or
//! cookies. Pages render through `web::pages`, and failures through the one page table in `web::error`.

pub mod account;
pub mod apps;
pub mod authorize;
pub mod developer;
pub mod device;
pub mod recovery;
pub mod sdk;
pub mod signin;
pub mod verify;

use crate::app::AppState;
use crate::flows::SignedIn;
use crate::web::pages;
use crate::web::session::Browser;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

pub async fn home(State(state): State<AppState>, browser: Browser) -> Response {
    let user_name = browser
        .signed_in
        .as_ref()
        .map(|s| s.session.user.name.clone());
    pages::render(
        StatusCode::OK,
        &pages::Home {
            user_name,
            csrf: browser.csrf(&state),
        },
    )
}

/// The session a signed-in form acts for: its CSRF token must be this browser's (else the "expired" page, and
/// nothing is done), and the browser must be signed in (else to sign in, then back to `back`).
pub fn form_session<'b>(
    state: &AppState,
    browser: &'b Browser,
    csrf: Option<&str>,
    back: &str,
) -> Result<&'b SignedIn, Box<Response>> {
    if !browser.csrf_ok(state, csrf) {
        return Err(Box::new(signin::expired_form()));
    }
    browser
        .signed_in
        .as_ref()
        .ok_or_else(|| Box::new(signin::signin_first(back)))
}

pub async fn not_found() -> Response {
    pages::message(
        StatusCode::NOT_FOUND,
        "Page not found",
        &["There is nothing at this address."],
    )
}
