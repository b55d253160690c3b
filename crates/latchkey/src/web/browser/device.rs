//! The code-entry page of code-based linking (`/code`): CSRF is checked here, the flow decides, and its outcome
//! becomes a page or a redirect to sign in.

use crate::app::AppState;
use crate::flows::code_entry::{self, CodeAnswer, CodeOutcome};
use crate::web::browser::authorize::signin_location;
use crate::web::error::page_failure;
use crate::web::extract::ClientIp;
use crate::web::pages::{self, CodeConfirm, CodeEntry};
use crate::web::session::Browser;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::HashMap;

pub async fn code_page(
    State(state): State<AppState>,
    browser: Browser,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let outcome = code_entry::show(
        browser.signed_in.as_ref(),
        q.get("user_code").map(String::as_str),
    );
    respond(&state, &browser, outcome)
}

pub async fn code_submit(
    State(state): State<AppState>,
    browser: Browser,
    ip: ClientIp,
    body: Bytes,
) -> Response {
    let form = CodeForm::parse(&body);
    if !browser.csrf_ok(&state, form.csrf.as_deref()) {
        return expired_form();
    }
    let outcome = code_entry::submit(
        &state,
        browser.signed_in.as_ref(),
        &ip.key(),
        &form.answer.user_code,
    )
    .await;
    answer(&state, &browser, outcome)
}

pub async fn code_confirm(
    State(state): State<AppState>,
    browser: Browser,
    body: Bytes,
) -> Response {
    let form = CodeForm::parse(&body);
    if !browser.csrf_ok(&state, form.csrf.as_deref()) {
        return expired_form();
    }
    let outcome = code_entry::confirm(&state, browser.signed_in.as_ref(), form.answer).await;
    answer(&state, &browser, outcome)
}

/// The code-entry forms' fields.
#[derive(Default)]
struct CodeForm {
    csrf: Option<String>,
    answer: CodeAnswer,
}

impl CodeForm {
    /// The forms' fields; a repeated field keeps its last value (`share` keeps them all).
    fn parse(body: &[u8]) -> CodeForm {
        let mut form = CodeForm::default();
        for (k, v) in url::form_urlencoded::parse(body) {
            match &*k {
                "csrf" => form.csrf = Some(v.into_owned()),
                "user_code" => form.answer.user_code = v.chars().take(64).collect(),
                "confirm_token" => form.answer.confirm_token = Some(v.into_owned()),
                "decision" => form.answer.allow = v == "allow",
                "share" => form.answer.shared.push(v.into_owned()),
                _ => {}
            }
        }
        form
    }
}

fn expired_form() -> Response {
    pages::message(
        StatusCode::BAD_REQUEST,
        "This form has expired",
        &["For your security, Latchkey could not accept this form. Open the code page again and enter the code shown on your device."],
    )
}

fn answer(
    state: &AppState,
    browser: &Browser,
    outcome: Result<CodeOutcome, crate::flows::error::Failure>,
) -> Response {
    match outcome {
        Ok(outcome) => respond(state, browser, outcome),
        Err(failure) => page_failure(failure),
    }
}

/// The outcome as HTTP.
fn respond(state: &AppState, browser: &Browser, outcome: CodeOutcome) -> Response {
    let unusable = || {
        pages::message(
            StatusCode::BAD_REQUEST,
            "This code can no longer be used",
            &["The code has expired or was already used. Start again on your device to get a new code."],
        )
    };
    match outcome {
        CodeOutcome::SignIn { return_to } => {
            Redirect::to(&signin_location(&return_to, None)).into_response()
        }
        CodeOutcome::Verify { return_to } => super::verify::verify_first(&return_to),
        CodeOutcome::Entry(view) => {
            let status = if view.error.is_some() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            pages::render(
                status,
                &CodeEntry {
                    csrf: browser.csrf(state),
                    user_email: view.user_email,
                    user_code: view.user_code,
                    error: view.error.map(str::to_owned),
                },
            )
        }
        CodeOutcome::Confirm(view) => pages::render(
            StatusCode::OK,
            &CodeConfirm {
                unverified_by: (!view.verified).then(|| state.config.operator_name()),
                app_name: view.app_name,
                logo: view.logo,
                privacy_url: view.privacy_url,
                user_email: view.user_email,
                csrf: browser.csrf(state),
                user_code: view.user_code,
                user_code_shown: view.user_code_shown,
                confirm_token: view.confirm_token,
                items: view.items,
            },
        ),
        CodeOutcome::Expired => expired_form(),
        CodeOutcome::Throttled { wait } => pages::too_many(
            "Too many wrong codes",
            "Too many codes entered here were not right. Wait a few minutes, check the code on your device, and try again.",
            wait,
        ),
        CodeOutcome::Unusable => unusable(),
        CodeOutcome::AppCannotLink => pages::message(
            StatusCode::BAD_REQUEST,
            "This app can no longer link devices",
            &["The app that showed this code is no longer allowed to sign in on devices. Contact its developer."],
        ),
        CodeOutcome::NothingShared => pages::message(
            StatusCode::BAD_REQUEST,
            "Nothing to share",
            &["The app needs at least one item. Start again on your device."],
        ),
        CodeOutcome::Denied { app_name } => pages::message(
            StatusCode::OK,
            "Device not linked",
            &[&format!(
                "You said no, so the device will not be signed in to {app_name}. You can close this page."
            )],
        ),
        CodeOutcome::Linked { app_name } => pages::message(
            StatusCode::OK,
            "Your device is linked",
            &[&format!(
                "Go back to your device: {app_name} will finish signing you in within a few seconds. You can close this page."
            )],
        ),
    }
}
