//! "Forgot your password?" pages: `/ap/forgot` asks for the address, `/ap/reset` takes the mailed code (or link)
//! and the new password (`flows::recovery` decides). Every form carries a CSRF token.

use super::signin::{expired_form, EXPIRED};
use crate::app::AppState;
use crate::flows::codes::Presented;
use crate::flows::recovery::{self, ForgotOutcome, ResetOutcome};
use crate::web::error::page_failure;
use crate::web::extract::{ClientIp, Seen};
use crate::web::pages;
use crate::web::session::{self, Browser};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::secret::Secret;
use std::collections::HashMap;

#[derive(Default)]
struct Form {
    csrf: Option<String>,
    email: String,
    code: String,
    link: String,
    new_password: Secret,
}

impl Form {
    fn parse(body: &[u8]) -> Form {
        let mut f = Form::default();
        for (k, v) in url::form_urlencoded::parse(body) {
            match &*k {
                "csrf" => f.csrf = Some(v.into_owned()),
                "email" => f.email = v.trim().to_lowercase(),
                "code" => f.code = v.trim().to_owned(),
                "link" => f.link = v.trim().to_owned(),
                "new_password" => f.new_password = Secret::new(v.into_owned()),
                _ => {}
            }
        }
        f
    }
}

fn forgot_form(
    state: &AppState,
    browser: &Browser,
    email: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    pages::render(
        status,
        &pages::Forgot {
            csrf: browser.csrf(state),
            email: email.to_owned(),
            error: error.map(str::to_owned),
        },
    )
}

fn reset_form(
    state: &AppState,
    browser: &Browser,
    link: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    pages::render(
        status,
        &pages::Reset {
            csrf: browser.csrf(state),
            link: link.chars().take(128).collect(),
            error: error.map(str::to_owned),
        },
    )
}

/// `GET /ap/forgot`.
pub async fn forgot_page(
    State(state): State<AppState>,
    browser: Browser,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let email = q
        .get("email")
        .map(String::as_str)
        .filter(|e| e.len() <= 254)
        .unwrap_or("");
    forgot_form(&state, &browser, email, None, StatusCode::OK)
}

/// `POST /ap/forgot`: the same answer whether or not an account has the address.
pub async fn forgot(
    State(state): State<AppState>,
    browser: Browser,
    ip: ClientIp,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    if !browser.csrf_ok(&state, form.csrf.as_deref()) {
        return forgot_form(
            &state,
            &browser,
            &form.email,
            Some(EXPIRED),
            StatusCode::BAD_REQUEST,
        );
    }
    match recovery::forgot(&state, &ip.key(), &form.email).await {
        Ok(ForgotOutcome::Sent { code_id }) => {
            let mut res = Redirect::to("/ap/reset").into_response();
            res.headers_mut()
                .append(header::SET_COOKIE, session::code_cookie(&state, &code_id));
            res
        }
        Ok(ForgotOutcome::Invalid { message }) => {
            forgot_form(&state, &browser, &form.email, Some(message), StatusCode::BAD_REQUEST)
        }
        Ok(ForgotOutcome::Throttled { wait }) => pages::too_many(
            "Too many codes asked for",
            "Too many reset codes were asked for this address or from this network. Wait a few minutes, then try again.",
            wait,
        ),
        Err(failure) => page_failure(failure),
    }
}

/// `GET /ap/reset` (after `/ap/forgot`, or `?link=` from the mail).
pub async fn reset_page(
    State(state): State<AppState>,
    browser: Browser,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let link = q.get("link").map(String::as_str).unwrap_or("");
    if link.is_empty() && session::pending_code(&state, &headers).is_none() {
        return Redirect::to("/ap/forgot").into_response();
    }
    reset_form(&state, &browser, link, None, StatusCode::OK)
}

/// `POST /ap/reset`.
pub async fn reset(
    State(state): State<AppState>,
    browser: Browser,
    headers: HeaderMap,
    Seen(origin): Seen,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    if !browser.csrf_ok(&state, form.csrf.as_deref()) {
        return expired_form();
    }
    let presented = if !form.link.is_empty() {
        Presented::Link(&form.link)
    } else {
        match session::pending_code(&state, &headers) {
            Some(id) => Presented::Code {
                id,
                code: &form.code,
            },
            None => return Redirect::to("/ap/forgot").into_response(),
        }
    };
    let again =
        |message: String, status| reset_form(&state, &browser, &form.link, Some(&message), status);
    match recovery::reset(&state, presented, &form.new_password, &origin).await {
        Ok(ResetOutcome::Done { session_token }) => {
            let mut res = Redirect::to("/account?done=reset").into_response();
            res.headers_mut().append(
                header::SET_COOKIE,
                session::session_cookie(&state, session_token.expose()),
            );
            res.headers_mut()
                .append(header::SET_COOKIE, session::clear_code_cookie(&state));
            res
        }
        Ok(ResetOutcome::Invalid { message }) => again(message.to_owned(), StatusCode::BAD_REQUEST),
        Ok(ResetOutcome::Wrong { tries_left }) => again(
            super::verify::wrong_code(tries_left),
            StatusCode::BAD_REQUEST,
        ),
        Ok(ResetOutcome::Locked) => again(
            "Too many wrong codes: this one no longer works. Send a new code.".into(),
            StatusCode::BAD_REQUEST,
        ),
        Ok(ResetOutcome::Gone) => again(
            "This code has expired or was already used. Send a new code.".into(),
            StatusCode::BAD_REQUEST,
        ),
        Err(failure) => page_failure(failure),
    }
}
