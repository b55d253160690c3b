//! `/account`: the customer's profile (name, email, postal code), password and sessions (SPEC 2.6). Every form
//! is CSRF-protected and checked in full before anything is written; a password change needs the current password
//! (counted against the sign-in rate limit) and ends every other session; "Sign out everywhere" ends them all.

use super::signin::{check_password, check_profile, expired_form, signin_first, too_many};
use crate::app::AppState;
use crate::flows::SignedIn;
use crate::limits::{self, Bucket};
use crate::store::ProfileUpdate;
use crate::web::error::page_failure;
use crate::web::pages::{self, AccountSettings, SessionRow};
use crate::web::session::{self, Browser};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::secret::{Digest, Kind, Secret};

const PAGE: &str = "/account";

/// The fields of the account page's forms.
#[derive(Default)]
pub struct SettingsForm {
    pub csrf: Option<String>,
    pub name: String,
    pub email: String,
    pub postal_code: String,
    pub current_password: Secret,
    pub new_password: Secret,
    /// Which session to end (its handle).
    pub session: String,
}

impl SettingsForm {
    pub fn parse(body: &[u8]) -> SettingsForm {
        let mut f = SettingsForm::default();
        for (k, v) in url::form_urlencoded::parse(body) {
            match &*k {
                "csrf" => f.csrf = Some(v.into_owned()),
                "name" => f.name = v.trim().to_owned(),
                "email" => f.email = v.trim().to_lowercase(),
                "postal_code" => f.postal_code = v.trim().to_owned(),
                "current_password" => f.current_password = Secret::new(v.into_owned()),
                "new_password" => f.new_password = Secret::new(v.into_owned()),
                "session" => f.session = v.into_owned(),
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
        _ => None,
    }
}

/// The session's name in forms: a MAC of its stored hash, so the page never shows the hash itself.
fn handle(state: &AppState, id_hash: &Digest) -> String {
    state
        .hasher
        .mac_b64(Kind::Session, &[b"session-handle", id_hash])
}

/// The page's own form values, and errors, to show again.
struct Shown {
    name: String,
    email: String,
    postal_code: String,
    profile_error: Option<String>,
    password_error: Option<String>,
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
    let now = state.clock.now();
    let sessions = match state
        .store
        .list_sessions(&signed_in.session.user.id, now)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            return page_failure(e.into());
        }
    };
    let sessions = sessions
        .iter()
        .map(|s| SessionRow {
            handle: handle(state, &s.id_hash),
            started: pages::utc(s.auth_time),
            expires: pages::utc(s.expires_at),
            current: s.id_hash == signed_in.id_hash,
        })
        .collect();
    pages::render(
        status,
        &AccountSettings {
            csrf: browser.csrf(state),
            notice,
            name: shown.name,
            email: shown.email,
            postal_code: shown.postal_code,
            profile_error: shown.profile_error,
            password_error: shown.password_error,
            sessions,
        },
    )
}

fn done(what: &str) -> Response {
    Redirect::to(&format!("{PAGE}?done={what}")).into_response()
}

/// `GET /account`.
pub async fn show(state: &AppState, browser: &Browser, done: Option<&str>) -> Response {
    let Some(signed_in) = &browser.signed_in else {
        return signin_first(PAGE);
    };
    page(
        state,
        browser,
        signed_in,
        Shown::current(signed_in),
        notice(done),
        StatusCode::OK,
    )
    .await
}

/// `POST /account/profile`.
pub async fn update_profile(state: &AppState, browser: &Browser, form: SettingsForm) -> Response {
    if !browser.csrf_ok(state, form.csrf.as_deref()) {
        return expired_form();
    }
    let Some(signed_in) = &browser.signed_in else {
        return signin_first(PAGE);
    };
    let refuse = |why: &str, status| {
        let shown = Shown {
            name: form.name.clone(),
            email: form.email.clone(),
            postal_code: form.postal_code.clone(),
            profile_error: Some(why.to_owned()),
            password_error: None,
        };
        page(state, browser, signed_in, shown, None, status)
    };
    if let Err(why) = check_profile(&form.name, &form.email, &form.postal_code) {
        return refuse(why, StatusCode::BAD_REQUEST).await;
    }
    let postal_code = Some(form.postal_code.as_str()).filter(|p| !p.is_empty());
    match state
        .store
        .update_user_profile(
            &signed_in.session.user.id,
            &form.name,
            &form.email,
            postal_code,
        )
        .await
    {
        Ok(ProfileUpdate::Updated) => done("profile"),
        Ok(ProfileUpdate::EmailTaken) => {
            refuse(
                "Another account uses this email address. Choose a different one.",
                StatusCode::CONFLICT,
            )
            .await
        }
        Ok(ProfileUpdate::UnknownUser) => signin_first(PAGE),
        Err(e) => page_failure(e.into()),
    }
}

/// `POST /account/password`: the current password, then the new one; other sessions end.
pub async fn change_password(state: &AppState, browser: &Browser, form: SettingsForm) -> Response {
    if !browser.csrf_ok(state, form.csrf.as_deref()) {
        return expired_form();
    }
    let Some(signed_in) = &browser.signed_in else {
        return signin_first(PAGE);
    };
    let user = &signed_in.session.user;
    let refuse = |why: &str, status| {
        let shown = Shown {
            password_error: Some(why.to_owned()),
            ..Shown::current(signed_in)
        };
        page(state, browser, signed_in, shown, None, status)
    };
    if form.current_password.expose().is_empty()
        || form.current_password.expose().len() > crate::password::MAX_PASSWORD_LEN
    {
        return refuse("Enter your current password.", StatusCode::BAD_REQUEST).await;
    }
    if let Err(why) = check_password(form.new_password.expose()) {
        return refuse(why, StatusCode::BAD_REQUEST).await;
    }
    // Guessing the current password here is limited per account: only whoever holds this session can guess.
    let bucket = [Bucket::new(
        format!("password:account:{}", user.id),
        state.config.signin_limit,
        state.config.signin_window,
    )];
    match limits::hit(state, &bucket).await {
        Ok(None) => {}
        Ok(Some(wait)) => return too_many(wait),
        Err(e) => return page_failure(e.into()),
    }
    match state
        .passwords
        .verify(&form.current_password, Some(&user.password_hash))
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            return refuse(
                "Your current password is not correct.",
                StatusCode::BAD_REQUEST,
            )
            .await
        }
        Err(e) => return page_failure(e.into()),
    }
    if let Err(e) = limits::refund(state, &bucket).await {
        return page_failure(e.into());
    }
    let new_hash = match state.passwords.hash(&form.new_password).await {
        Ok(h) => h,
        Err(e) => return page_failure(e.into()),
    };
    match state
        .store
        .change_password(
            &user.id,
            &user.password_hash,
            &new_hash,
            Some(&signed_in.id_hash),
        )
        .await
    {
        Ok(true) => done("password"),
        Ok(false) => {
            refuse(
                "Your password was changed somewhere else meanwhile. Enter your current password again.",
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(e) => {
            page_failure(e.into())
        }
    }
}

/// Signs this browser out and sends it to sign in again, to come back to the account page.
fn signed_out_here(state: &AppState) -> Response {
    let mut res = signin_first(PAGE);
    res.headers_mut()
        .append(header::SET_COOKIE, session::clear_session_cookie(state));
    res
}

/// `POST /account/sessions/end`: signs one browser out.
pub async fn end_session(state: &AppState, browser: &Browser, form: SettingsForm) -> Response {
    if !browser.csrf_ok(state, form.csrf.as_deref()) {
        return expired_form();
    }
    let Some(signed_in) = &browser.signed_in else {
        return signin_first(PAGE);
    };
    let user_id = &signed_in.session.user.id;
    let sessions = match state.store.list_sessions(user_id, state.clock.now()).await {
        Ok(s) => s,
        Err(e) => {
            return page_failure(e.into());
        }
    };
    let Some(target) = sessions.iter().find(|s| {
        state.hasher.verify_b64(
            Kind::Session,
            &[b"session-handle", &s.id_hash],
            &form.session,
        )
    }) else {
        // Already signed out (or never one of this customer's sessions): nothing to do.
        return done("session");
    };
    if let Err(e) = state
        .store
        .delete_user_session(user_id, &target.id_hash)
        .await
    {
        return page_failure(e.into());
    }
    if target.id_hash == signed_in.id_hash {
        return signed_out_here(state);
    }
    done("session")
}

/// `POST /account/sessions/end-all`: "Sign out everywhere", this browser included.
pub async fn end_all_sessions(state: &AppState, browser: &Browser, form: SettingsForm) -> Response {
    if !browser.csrf_ok(state, form.csrf.as_deref()) {
        return expired_form();
    }
    let Some(signed_in) = &browser.signed_in else {
        return signin_first(PAGE);
    };
    if let Err(e) = state
        .store
        .delete_user_sessions(&signed_in.session.user.id)
        .await
    {
        return page_failure(e.into());
    }
    signed_out_here(state)
}
