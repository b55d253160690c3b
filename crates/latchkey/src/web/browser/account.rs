//! The account page: profile, password, sessions. The forms, their CSRF check, and the flows' outcomes as pages
//! and redirects (`flows::account` decides).

use super::form_session;
use super::signin::{signin_first, too_many_signins};
use crate::app::AppState;
use crate::flows::account::{
    self, DeleteOutcome, EmailChangeOutcome, EmailConfirmOutcome, EndSessionOutcome,
    PasswordOutcome, ProfileInput, ProfileOutcome, PAGE,
};
use crate::flows::codes::Presented;
use crate::flows::SignedIn;
use crate::web::error::page_failure;
use crate::web::extract::Seen;
use crate::web::pages::{self, AccountSettings, SessionRow};
use crate::web::session::{self, Browser};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::secret::Secret;
use std::collections::HashMap;

/// The fields of the account page's forms.
#[derive(Default)]
pub struct SettingsForm {
    pub csrf: Option<String>,
    pub name: String,
    pub postal_code: String,
    pub current_password: Secret,
    pub new_password: Secret,
    /// Which session to end (its handle).
    pub session: String,
    /// The "yes, delete my account" box.
    pub confirm: bool,
    pub new_email: String,
    pub code: String,
    pub link: String,
}

impl SettingsForm {
    pub fn parse(body: &[u8]) -> SettingsForm {
        let mut f = SettingsForm::default();
        for (k, v) in url::form_urlencoded::parse(body) {
            match &*k {
                "csrf" => f.csrf = Some(v.into_owned()),
                "name" => f.name = v.trim().to_owned(),
                "postal_code" => f.postal_code = v.trim().to_owned(),
                "current_password" => f.current_password = Secret::new(v.into_owned()),
                "new_password" => f.new_password = Secret::new(v.into_owned()),
                "session" => f.session = v.into_owned(),
                "confirm" => f.confirm = v == "yes",
                "new_email" => f.new_email = v.trim().to_lowercase(),
                "code" => f.code = v.trim().to_owned(),
                "link" => f.link = v.trim().to_owned(),
                _ => {}
            }
        }
        f
    }
}

/// What the page says after a change went through (Post/Redirect/Get).
fn notice(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "profile" => Some("Your profile is saved."),
        "password" => Some("Your password is changed. You are signed out everywhere else."),
        "session" => Some("That browser is signed out."),
        "reset" => Some("Your new password is saved. Every other browser is signed out."),
        "email" => Some("Your address is changed."),
        _ => None,
    }
}

/// The page's own form values, and errors, to show again.
struct Shown {
    name: String,
    email: String,
    postal_code: String,
    profile_error: Option<String>,
    password_error: Option<String>,
    delete_error: Option<String>,
    email_error: Option<String>,
}

impl Shown {
    fn current(signed_in: &SignedIn) -> Shown {
        let user = &signed_in.session.user;
        Shown {
            name: user.name.clone(),
            email: user.email.clone(),
            postal_code: user.postal_code.clone().unwrap_or_default(),
            profile_error: None,
            password_error: None,
            delete_error: None,
            email_error: None,
        }
    }
}

async fn page(
    state: &AppState,
    browser: &Browser,
    signed_in: &SignedIn,
    shown: Shown,
    notice: Option<&'static str>,
    status: StatusCode,
) -> Response {
    let sessions = match account::sessions(state, signed_in).await {
        Ok(s) => s,
        Err(failure) => return page_failure(failure),
    };
    let activity = match crate::flows::activity::recent(state, &signed_in.session.user.id).await {
        Ok(a) => a,
        Err(failure) => return page_failure(failure),
    };
    let activity = activity
        .into_iter()
        .map(|e| pages::ActivityRow {
            at: pages::utc(e.at),
            what: e.what,
            ip: e.ip,
            browser: e.browser,
        })
        .collect();
    let sessions = sessions
        .into_iter()
        .map(|s| SessionRow {
            handle: s.handle,
            started: pages::utc(s.auth_time),
            expires: pages::utc(s.expires_at),
            current: s.current,
        })
        .collect();
    pages::render(
        status,
        &AccountSettings {
            csrf: browser.csrf(state),
            notice,
            name: shown.name,
            email: shown.email,
            email_verified: signed_in.session.user.email_verified,
            postal_code: shown.postal_code,
            profile_error: shown.profile_error,
            password_error: shown.password_error,
            delete_error: shown.delete_error,
            email_error: shown.email_error,
            sessions,
            activity,
        },
    )
}

fn done(what: &str) -> Response {
    Redirect::to(&format!("{PAGE}?done={what}")).into_response()
}

/// Signs this browser out and sends it to sign in again, to come back to the account page.
fn signed_out_here(state: &AppState) -> Response {
    let mut res = signin_first(PAGE);
    res.headers_mut()
        .append(header::SET_COOKIE, session::clear_session_cookie(state));
    res
}

/// `GET /account`.
pub async fn account_page(
    State(state): State<AppState>,
    browser: Browser,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(signed_in) = &browser.signed_in else {
        return signin_first(PAGE);
    };
    let notice = notice(q.get("done").map(String::as_str));
    let shown = Shown::current(signed_in);
    page(&state, &browser, signed_in, shown, notice, StatusCode::OK).await
}

/// `POST /account/profile`.
pub async fn account_profile(
    State(state): State<AppState>,
    browser: Browser,
    body: Bytes,
) -> Response {
    let form = SettingsForm::parse(&body);
    let signed_in = match form_session(&state, &browser, form.csrf.as_deref(), PAGE) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let refuse = |why: &str, status| {
        let shown = Shown {
            name: form.name.clone(),
            email: signed_in.session.user.email.clone(),
            postal_code: form.postal_code.clone(),
            profile_error: Some(why.to_owned()),
            password_error: None,
            delete_error: None,
            email_error: None,
        };
        page(&state, &browser, signed_in, shown, None, status)
    };
    let input = ProfileInput {
        name: &form.name,
        postal_code: &form.postal_code,
    };
    match account::update_profile(&state, signed_in, input).await {
        Ok(ProfileOutcome::Saved) => done("profile"),
        Ok(ProfileOutcome::Invalid { message }) => refuse(message, StatusCode::BAD_REQUEST).await,
        Ok(ProfileOutcome::SignInFirst) => signin_first(PAGE),
        Err(failure) => page_failure(failure),
    }
}

/// `POST /account/password`: the current password, then the new one; other sessions end.
pub async fn account_password(
    State(state): State<AppState>,
    browser: Browser,
    Seen(origin): Seen,
    body: Bytes,
) -> Response {
    let form = SettingsForm::parse(&body);
    let signed_in = match form_session(&state, &browser, form.csrf.as_deref(), PAGE) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let refuse = |why: &str, status| {
        let shown = Shown {
            password_error: Some(why.to_owned()),
            ..Shown::current(signed_in)
        };
        page(&state, &browser, signed_in, shown, None, status)
    };
    match account::change_password(
        &state,
        signed_in,
        &form.current_password,
        &form.new_password,
        &origin,
    )
    .await
    {
        Ok(PasswordOutcome::Changed) => done("password"),
        Ok(PasswordOutcome::Invalid { message }) => refuse(message, StatusCode::BAD_REQUEST).await,
        Ok(PasswordOutcome::Conflict { message }) => refuse(message, StatusCode::CONFLICT).await,
        Ok(PasswordOutcome::Throttled { wait }) => too_many_signins(wait),
        Err(failure) => page_failure(failure),
    }
}

/// `POST /account/sessions/end`: signs one browser out.
pub async fn account_end_session(
    State(state): State<AppState>,
    browser: Browser,
    body: Bytes,
) -> Response {
    let form = SettingsForm::parse(&body);
    let signed_in = match form_session(&state, &browser, form.csrf.as_deref(), PAGE) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    match account::end_session(&state, signed_in, &form.session).await {
        Ok(EndSessionOutcome::Ended) => done("session"),
        Ok(EndSessionOutcome::EndedHere) => signed_out_here(&state),
        Err(failure) => page_failure(failure),
    }
}

/// `POST /account/sessions/end-all`: "Sign out everywhere", this browser included.
pub async fn account_end_all_sessions(
    State(state): State<AppState>,
    browser: Browser,
    Seen(origin): Seen,
    body: Bytes,
) -> Response {
    let form = SettingsForm::parse(&body);
    let signed_in = match form_session(&state, &browser, form.csrf.as_deref(), PAGE) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    match account::end_all_sessions(&state, signed_in, &origin).await {
        Ok(()) => signed_out_here(&state),
        Err(failure) => page_failure(failure),
    }
}

/// `POST /account/delete`: the current password and the ticked box, then the account is gone and this browser
/// signed out.
pub async fn account_delete(
    State(state): State<AppState>,
    browser: Browser,
    body: Bytes,
) -> Response {
    let form = SettingsForm::parse(&body);
    let signed_in = match form_session(&state, &browser, form.csrf.as_deref(), PAGE) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let refuse = |why: String, status| {
        let shown = Shown {
            delete_error: Some(why),
            ..Shown::current(signed_in)
        };
        page(&state, &browser, signed_in, shown, None, status)
    };
    match account::delete_account(&state, signed_in, &form.current_password, form.confirm).await {
        Ok(DeleteOutcome::Deleted) => {
            let mut res = pages::message(
                StatusCode::OK,
                "Your account is deleted",
                &[
                    "Your account and everything it held are gone: your profile, the apps you allowed, your sessions and your security activity.",
                    "You are signed out. You can create a new account with the same address at any time.",
                ],
            );
            res.headers_mut()
                .append(header::SET_COOKIE, session::clear_session_cookie(&state));
            res
        }
        Ok(DeleteOutcome::Invalid { message }) => {
            refuse(message.to_owned(), StatusCode::BAD_REQUEST).await
        }
        Ok(DeleteOutcome::OwnsApps { count }) => {
            refuse(
                format!(
                    "You own {count} app{} in the developer console: delete {} there first, then your account.",
                    if count == 1 { "" } else { "s" },
                    if count == 1 { "it" } else { "them" }
                ),
                StatusCode::CONFLICT,
            )
            .await
        }
        Ok(DeleteOutcome::Throttled { wait }) => too_many_signins(wait),
        Err(failure) => page_failure(failure),
    }
}

/// `POST /account/export`: "Download my data", a JSON file of the customer's profile, apps, sessions and activity.
pub async fn account_export(
    State(state): State<AppState>,
    browser: Browser,
    body: Bytes,
) -> Response {
    let form = SettingsForm::parse(&body);
    let signed_in = match form_session(&state, &browser, form.csrf.as_deref(), PAGE) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    match account::export(&state, signed_in).await {
        Ok(data) => {
            let body = serde_json::to_vec_pretty(&data).unwrap_or_default();
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"latchkey-data.json\"",
                    ),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                body,
            )
                .into_response()
        }
        Err(failure) => page_failure(failure),
    }
}

/// `POST /account/email`: the new address and the current password; a code goes to the new address.
pub async fn account_email(
    State(state): State<AppState>,
    browser: Browser,
    body: Bytes,
) -> Response {
    let form = SettingsForm::parse(&body);
    let signed_in = match form_session(&state, &browser, form.csrf.as_deref(), PAGE) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    match account::request_email_change(&state, signed_in, &form.new_email, &form.current_password)
        .await
    {
        Ok(EmailChangeOutcome::Sent { code_id }) => {
            let mut res = Redirect::to(EMAIL_VERIFY).into_response();
            res.headers_mut()
                .append(header::SET_COOKIE, session::code_cookie(&state, &code_id));
            res
        }
        Ok(EmailChangeOutcome::Invalid { message }) => {
            let shown = Shown {
                email_error: Some(message.to_owned()),
                ..Shown::current(signed_in)
            };
            page(
                &state,
                &browser,
                signed_in,
                shown,
                None,
                StatusCode::BAD_REQUEST,
            )
            .await
        }
        Ok(EmailChangeOutcome::Throttled { wait }) => too_many_signins(wait),
        Err(failure) => page_failure(failure),
    }
}

const EMAIL_VERIFY: &str = "/account/email/verify";

fn email_verify_form(
    state: &AppState,
    browser: &Browser,
    link: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    pages::render(
        status,
        &pages::EmailVerify {
            csrf: browser.csrf(state),
            link: link.chars().take(128).collect(),
            error: error.map(str::to_owned),
        },
    )
}

/// `GET /account/email/verify` (after `/account/email`, or `?link=` from the mail): signed in only.
pub async fn account_email_verify_page(
    State(state): State<AppState>,
    browser: Browser,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let link = q.get("link").map(String::as_str).unwrap_or("");
    if browser.signed_in.is_none() {
        let back = if link.is_empty() {
            EMAIL_VERIFY.to_owned()
        } else {
            format!(
                "{EMAIL_VERIFY}?link={}",
                url::form_urlencoded::byte_serialize(link.as_bytes()).collect::<String>()
            )
        };
        return signin_first(&back);
    }
    email_verify_form(&state, &browser, link, None, StatusCode::OK)
}

/// `POST /account/email/verify`.
pub async fn account_email_verify(
    State(state): State<AppState>,
    browser: Browser,
    headers: axum::http::HeaderMap,
    Seen(origin): Seen,
    body: Bytes,
) -> Response {
    let form = SettingsForm::parse(&body);
    let signed_in = match form_session(&state, &browser, form.csrf.as_deref(), EMAIL_VERIFY) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let presented = if !form.link.is_empty() {
        Presented::Link(&form.link)
    } else {
        match session::pending_code(&state, &headers) {
            Some(id) => Presented::Code {
                id,
                code: &form.code,
            },
            None => return Redirect::to(PAGE).into_response(),
        }
    };
    let again = |m: String| {
        email_verify_form(
            &state,
            &browser,
            &form.link,
            Some(&m),
            StatusCode::BAD_REQUEST,
        )
    };
    match account::confirm_email_change(&state, signed_in, presented, &origin).await {
        Ok(EmailConfirmOutcome::Changed) => {
            let mut res = done("email");
            res.headers_mut()
                .append(header::SET_COOKIE, session::clear_code_cookie(&state));
            res
        }
        Ok(EmailConfirmOutcome::Wrong { tries_left }) => again(super::verify::wrong_code(tries_left)),
        Ok(EmailConfirmOutcome::Locked) => {
            again("Too many wrong codes: this one no longer works. Ask for a new one on your account page.".into())
        }
        Ok(EmailConfirmOutcome::Gone) => {
            again("This code has expired or was already used. Ask for a new one on your account page.".into())
        }
        Ok(EmailConfirmOutcome::Taken) => {
            again("Another account now has this address, so yours was not changed.".into())
        }
        Err(failure) => page_failure(failure),
    }
}
