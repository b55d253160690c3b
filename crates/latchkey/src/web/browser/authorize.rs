//! `/ap/oa` (and `/oauth2/authorize`) and the consent form: the browser's proofs (CSRF, the fresh-sign-in marker
//! bound to the browser cookie) are checked here, the flow decides, and its outcome becomes a redirect or a page.

use crate::app::AppState;
use crate::flows::authorize::{self, AuthorizeOutcome, ConsentAnswer, ErrorNotice};
use crate::web::error::page_failure;
use crate::web::pages;
use crate::web::session::Browser;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::authorize::PageError;
use latchkey_core::error::ErrorCode;
use latchkey_core::secret::{Kind, Stamp};

/// `GET /ap/oa`.
pub async fn authorize(
    State(state): State<AppState>,
    browser: Browser,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.as_deref().unwrap_or("");
    let asked = reauth_asked_at(&state, &browser, query, state.clock.now());
    match authorize::authorize(&state, browser.signed_in.as_ref(), query, asked).await {
        Ok(outcome) => respond(&state, &browser, outcome),
        Err(failure) => page_failure(failure),
    }
}

/// `POST /ap/oa/consent`: Allow or Cancel, bound to the browser (CSRF) and the session that saw the page.
pub async fn consent(State(state): State<AppState>, browser: Browser, body: Bytes) -> Response {
    let form = ConsentForm::parse(&body);
    if !browser.csrf_ok(&state, form.csrf.as_deref()) {
        return pages::message(
            StatusCode::BAD_REQUEST,
            "This form has expired",
            &["For your security, Latchkey could not accept this form. Go back to the app and sign in again."],
        );
    }
    match authorize::consent(&state, browser.signed_in.as_ref(), form.answer).await {
        Ok(outcome) => respond(&state, &browser, outcome),
        Err(failure) => page_failure(failure),
    }
}

/// The consent form's fields.
struct ConsentForm {
    csrf: Option<String>,
    answer: ConsentAnswer,
}

impl ConsentForm {
    /// The form's fields; a repeated field keeps its last value (`share` keeps them all).
    fn parse(body: &[u8]) -> ConsentForm {
        let mut form = ConsentForm {
            csrf: None,
            answer: ConsentAnswer::default(),
        };
        for (k, v) in url::form_urlencoded::parse(body) {
            match &*k {
                "csrf" => form.csrf = Some(v.into_owned()),
                "request" => form.answer.request = v.into_owned(),
                "consent_token" => form.answer.consent_token = Some(v.into_owned()),
                "decision" => form.answer.allow = v == "allow",
                "share" => form.answer.shared.push(v.into_owned()),
                "confirm" => form.answer.confirm = v == "1",
                _ => {}
            }
        }
        form
    }
}

/// The outcome as HTTP.
fn respond(state: &AppState, browser: &Browser, outcome: AuthorizeOutcome) -> Response {
    match outcome {
        AuthorizeOutcome::Issued { location } => no_store(Redirect::to(&location).into_response()),
        AuthorizeOutcome::ErrorRedirect { location } => Redirect::to(&location).into_response(),
        AuthorizeOutcome::Notice(notice) => no_store(notice_page(state, notice)),
        AuthorizeOutcome::SignIn {
            request,
            login_hint,
            fresh_since,
        } => {
            let return_to = return_to(state, browser, &request, fresh_since);
            let email = login_hint.as_deref().filter(|h| h.contains('@'));
            Redirect::to(&signin_location(&return_to, email)).into_response()
        }
        // Back to the request as it came (a fresh sign-in's marker included).
        AuthorizeOutcome::Verify { request } => {
            super::verify::verify_first(&format!("/ap/oa?{request}"))
        }
        AuthorizeOutcome::Consent(view) => pages::render(
            StatusCode::OK,
            &pages::Consent {
                confirm: view.confirm,
                unverified_by: (!view.verified).then(|| state.config.operator_name()),
                app_name: view.app_name,
                logo: view.logo,
                privacy_url: view.privacy_url,
                user_email: view.user_email,
                csrf: browser.csrf(state),
                request: view.request,
                consent_token: view.consent_token,
                items: view.items,
            },
        ),
        AuthorizeOutcome::Refused(e) => refused_page(e),
        AuthorizeOutcome::Expired { why } => {
            pages::message(StatusCode::BAD_REQUEST, "This form has expired", &[why])
        }
    }
}

fn no_store(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The sign-in page's address, coming back to `return_to` (a local path), with `email` pre-filled.
pub fn signin_location(return_to: &str, email: Option<&str>) -> String {
    let prefix = "/ap/signin?";
    let mut target = url::form_urlencoded::Serializer::for_suffix(prefix.to_owned(), prefix.len());
    target.append_pair("return_to", return_to);
    if let Some(email) = email {
        target.append_pair("email", email);
    }
    target.finish()
}

/// The parameter that carries proof that sign-in was asked for afresh (`prompt=login`, `max_age`).
const REAUTH_PARAM: &str = "lk_reauth";
/// How long such a proof is honoured: long enough to sign in.
const REAUTH_WINDOW_SECS: i64 = 600;

/// The request's parameters without the re-authentication marker, in one canonical encoding (what the marker's
/// MAC covers, so that a browser re-encoding the URL does not break it).
fn without_marker(query: &str) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if k != REAUTH_PARAM {
            out.append_pair(&k, &v);
        }
    }
    out.finish()
}

/// When Latchkey sent this browser to sign in afresh for exactly this request, if the request carries a valid
/// marker of that: a session authenticated since then satisfies `prompt=login` and `max_age` (L4: the sign-in
/// page's `return_to` cannot be followed without signing in).
fn reauth_asked_at(state: &AppState, browser: &Browser, query: &str, now: i64) -> Option<i64> {
    let mut markers = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == REAUTH_PARAM)
        .map(|(_, v)| v.into_owned());
    let marker = markers.next()?;
    if markers.next().is_some() || browser.id.is_empty() {
        return None;
    }
    let request = without_marker(query);
    match state.hasher.check_stamp(
        Kind::Reauth,
        &[browser.id.as_bytes(), request.as_bytes()],
        &marker,
        now,
        REAUTH_WINDOW_SECS,
    ) {
        Stamp::Fresh { issued_at } => Some(issued_at),
        Stamp::Expired | Stamp::Invalid => None,
    }
}

/// Where the sign-in page sends the browser back: this request. With `fresh_since` (a fresh sign-in is asked
/// for: `prompt=login`, `max_age`) it comes back with a marker, bound to this browser and this exact request,
/// saying when that was asked, so that a session authenticated since satisfies it (otherwise `max_age=0` would
/// send the customer back to sign in once a second has passed), and one from before does not.
fn return_to(state: &AppState, browser: &Browser, query: &str, fresh_since: Option<i64>) -> String {
    let request = without_marker(query);
    match fresh_since {
        Some(now) => {
            let marker = state.hasher.stamp_b64(
                Kind::Reauth,
                now,
                &[browser.id.as_bytes(), request.as_bytes()],
            );
            let sep = if request.is_empty() { "" } else { "&" };
            format!("/ap/oa?{request}{sep}{REAUTH_PARAM}={marker}")
        }
        None => format!("/ap/oa?{request}"),
    }
}

fn refused_page(e: PageError) -> Response {
    let (title, detail) = match e {
        PageError::BadClientId(why) => ("This sign-in link is not valid".to_owned(), format!("The app sent an invalid request: {why}.")),
        PageError::UnknownClient => (
            "Unknown app".to_owned(),
            "The app that sent you here is not registered with Latchkey, so you cannot sign in to it. Contact the app's developer.".to_owned(),
        ),
        PageError::BadRedirectUri(why) => ("This sign-in link is not valid".to_owned(), format!("The app sent an invalid request: {why}.")),
        PageError::RedirectUriNotRegistered => (
            "The return address is not registered".to_owned(),
            "The app asked Latchkey to send you back to an address (redirect_uri) that it has not registered. For your safety, Latchkey did not send you there. Contact the app's developer.".to_owned(),
        ),
        PageError::Malformed(why) => ("This sign-in link is not valid".to_owned(), format!("The request could not be read: {why}.")),
    };
    pages::message(StatusCode::BAD_REQUEST, &title, &[&detail])
}

/// An unverified app's error: a page naming the app, the error and where the link goes (RFC 9700 4.11.2).
fn notice_page(state: &AppState, notice: ErrorNotice) -> Response {
    pages::render(
        StatusCode::OK,
        &pages::RedirectNotice {
            app_name: notice.app_name,
            operator: state.config.operator_name(),
            what_happened: error_words(notice.code),
            code: notice.code.as_str(),
            description: notice.description,
            destination: destination(&notice.redirect_uri),
            location: notice.location,
        },
    )
}

/// Where a return URL leads, as a person reads it: its host (and port), or a native app's scheme.
fn destination(uri: &str) -> String {
    match url::Url::parse(uri) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => u.scheme().to_owned(),
        },
        Err(_) => uri.to_owned(),
    }
}

/// What an authorization error means, in words for the customer.
fn error_words(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidRequest => "the app's sign-in request was not valid.",
        ErrorCode::UnauthorizedClient => "the app is not allowed to sign in this way.",
        ErrorCode::UnsupportedResponseType => {
            "the app asked for a kind of answer Latchkey does not give."
        }
        ErrorCode::InvalidScope => "the app asked for information Latchkey does not have.",
        ErrorCode::RequestNotSupported | ErrorCode::RequestUriNotSupported => {
            "the app sent its request in a form Latchkey does not accept."
        }
        ErrorCode::AccessDenied => "you did not allow the app.",
        ErrorCode::LoginRequired | ErrorCode::ConsentRequired | ErrorCode::InteractionRequired => {
            "the app asked to sign you in without showing you anything, which is not possible now."
        }
        ErrorCode::TemporarilyUnavailable => "Latchkey is busy right now.",
        ErrorCode::ServerError
        | ErrorCode::InvalidClient
        | ErrorCode::InvalidGrant
        | ErrorCode::UnsupportedGrantType
        | ErrorCode::InvalidToken
        | ErrorCode::InsufficientScope
        | ErrorCode::AuthorizationPending
        | ErrorCode::SlowDown
        | ErrorCode::ExpiredToken
        | ErrorCode::InvalidCodePair => "the sign-in could not be completed.",
    }
}
