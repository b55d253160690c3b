//! `/ap/verify`: the page that takes a mailed verification code (or confirms a mailed link by a button), and
//! `/ap/verify/resend` (`flows::verify` decides).

use crate::app::AppState;
use crate::flows::codes::Presented;
use crate::flows::signin::safe_return_to;
use crate::flows::verify::{self, ResendOutcome, VerifyOutcome};
use crate::web::browser::signin::{expired_form, EXPIRED};
use crate::web::error::page_failure;
use crate::web::extract::ClientIp;
use crate::web::pages;
use crate::web::session::{self, Browser};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::HashMap;

fn q(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The path of the code page, to come back to `return_to` afterwards.
pub fn verify_first(return_to: &str) -> Response {
    Redirect::to(&format!(
        "/ap/verify?return_to={}",
        q(&safe_return_to(Some(return_to)))
    ))
    .into_response()
}

async fn page(
    state: &AppState,
    browser: &Browser,
    headers: &HeaderMap,
    return_to: Option<&str>,
    link: Option<String>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let pending = session::pending_code(state, headers);
    let (email, has_code) =
        match verify::current_code(state, pending, browser.signed_in.as_ref()).await {
            Ok(Some(code)) => (Some(code.email), true),
            Ok(None) => match &browser.signed_in {
                Some(s) if !s.session.user.email_verified => {
                    (Some(s.session.user.email.clone()), false)
                }
                _ => (None, false),
            },
            Err(failure) => return page_failure(failure),
        };
    let return_to = safe_return_to(return_to);
    pages::render(
        status,
        &pages::Verify {
            csrf: browser.csrf(state),
            return_to_q: q(&return_to),
            return_to,
            email,
            has_code,
            link,
            error: error.map(str::to_owned),
        },
    )
}

/// `GET /ap/verify` (and `?link=…`: a button that confirms it).
pub async fn verify_page(
    State(state): State<AppState>,
    browser: Browser,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let link = query
        .get("link")
        .filter(|l| !l.is_empty() && l.len() <= 128)
        .cloned();
    page(
        &state,
        &browser,
        &headers,
        query.get("return_to").map(String::as_str),
        link,
        None,
        StatusCode::OK,
    )
    .await
}

#[derive(Default)]
struct VerifyForm {
    csrf: Option<String>,
    return_to: Option<String>,
    code: Option<String>,
    link: Option<String>,
}

impl VerifyForm {
    fn parse(body: &[u8]) -> VerifyForm {
        let mut f = VerifyForm::default();
        for (k, v) in url::form_urlencoded::parse(body) {
            match &*k {
                "csrf" => f.csrf = Some(v.into_owned()),
                "return_to" => f.return_to = Some(v.into_owned()),
                "code" => f.code = Some(v.into_owned()),
                "link" => f.link = Some(v.into_owned()),
                _ => {}
            }
        }
        f
    }
}

/// What every code page says of a wrong code (verification, reset, address change).
pub fn wrong_code(tries_left: i64) -> String {
    format!(
        "That code is not right. {tries_left} {} left.",
        if tries_left == 1 { "try" } else { "tries" }
    )
}

/// `POST /ap/verify`.
pub async fn verify_submit(
    State(state): State<AppState>,
    browser: Browser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = VerifyForm::parse(&body);
    let return_to = form.return_to.as_deref();
    const GONE: &str = "This code has expired or was replaced: send a new one.";
    let error: String = 'outcome: {
        if !browser.csrf_ok(&state, form.csrf.as_deref()) {
            break 'outcome EXPIRED.to_owned();
        }
        let pending = session::pending_code(&state, &headers);
        let presented = match (&form.link, &form.code, pending) {
            (Some(link), _, _) => Presented::Link(link),
            (None, Some(code), Some(id)) => Presented::Code { id, code },
            _ => break 'outcome GONE.to_owned(),
        };
        match verify::submit(&state, pending, browser.signed_in.as_ref(), presented).await {
            Ok(VerifyOutcome::SignedIn { session_token }) => {
                let mut res = Redirect::to(&safe_return_to(return_to)).into_response();
                let h = res.headers_mut();
                h.append(
                    header::SET_COOKIE,
                    session::session_cookie(&state, session_token.expose()),
                );
                h.append(header::SET_COOKIE, session::clear_code_cookie(&state));
                return res;
            }
            Ok(VerifyOutcome::Continue) => {
                let mut res = Redirect::to(&safe_return_to(return_to)).into_response();
                res.headers_mut()
                    .append(header::SET_COOKIE, session::clear_code_cookie(&state));
                return res;
            }
            Ok(VerifyOutcome::VerifiedElsewhere) => {
                return pages::message(
                    StatusCode::OK,
                    "Your address is verified",
                    &["Your address is verified. Sign in to continue."],
                )
            }
            Ok(VerifyOutcome::Wrong { tries_left }) => wrong_code(tries_left),
            Ok(VerifyOutcome::Locked) => "Too many wrong codes: send a new one.".to_owned(),
            Ok(VerifyOutcome::Gone) => GONE.to_owned(),
            Err(failure) => return page_failure(failure),
        }
    };
    page(
        &state,
        &browser,
        &headers,
        return_to,
        None,
        Some(&error),
        StatusCode::BAD_REQUEST,
    )
    .await
}

/// `POST /ap/verify/resend`.
pub async fn resend(
    State(state): State<AppState>,
    browser: Browser,
    headers: HeaderMap,
    ip: ClientIp,
    body: Bytes,
) -> Response {
    let form = VerifyForm::parse(&body);
    if !browser.csrf_ok(&state, form.csrf.as_deref()) {
        return expired_form();
    }
    let pending = session::pending_code(&state, &headers);
    match verify::resend(&state, &ip.key(), pending, browser.signed_in.as_ref()).await {
        Ok(ResendOutcome::Sent { code_id }) => {
            let mut res = verify_first(&safe_return_to(form.return_to.as_deref()));
            res.headers_mut()
                .append(header::SET_COOKIE, session::code_cookie(&state, &code_id));
            res
        }
        Ok(ResendOutcome::Nothing) => verify_first(&safe_return_to(form.return_to.as_deref())),
        Ok(ResendOutcome::Throttled { wait }) => pages::too_many(
            "Too many codes",
            "Too many codes have been sent. Wait a few minutes, then try again.",
            wait,
        ),
        Err(failure) => page_failure(failure),
    }
}
