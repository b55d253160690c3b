//! Sign in, create an account, sign out (SPEC 2.6). Sign-in attempts are rate limited per account and per
//! address in the shared store, passwords are Argon2id, and a new session id is minted at every sign-in.

use crate::app::AppState;
use crate::limits::{self, Bucket};
use crate::metrics::OutcomeLabels;
use crate::password::{MAX_PASSWORD_LEN, MIN_PASSWORD_LEN};
use crate::store::{Created, User};
use crate::web::error::page_failure;
use crate::web::pages;
use crate::web::session::{self, Browser};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::ids;
use latchkey_core::secret::{self, Kind, Secret};

/// Only local paths may be returned to after sign-in (no open redirect).
pub fn safe_return_to(raw: Option<&str>) -> String {
    match raw {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.starts_with("/\\")
                && p.len() <= 4096
                // Visible ASCII only: it becomes a `Location` header, which nothing else may be in.
                && p.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

fn q(return_to: &str) -> String {
    url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect()
}

/// The fields of the sign-in and register forms.
#[derive(Default)]
pub struct AccountForm {
    pub csrf: Option<String>,
    pub return_to: Option<String>,
    pub email: String,
    pub password: Secret,
    pub name: String,
    pub postal_code: String,
}

impl AccountForm {
    pub fn parse(body: &[u8]) -> AccountForm {
        let mut f = AccountForm::default();
        for (k, v) in url::form_urlencoded::parse(body) {
            match &*k {
                "csrf" => f.csrf = Some(v.into_owned()),
                "return_to" => f.return_to = Some(v.into_owned()),
                "email" => f.email = v.trim().to_lowercase(),
                "password" => f.password = Secret::new(v.into_owned()),
                "name" => f.name = v.trim().to_owned(),
                "postal_code" => f.postal_code = v.trim().to_owned(),
                _ => {}
            }
        }
        f
    }
}

pub fn signin_page(
    state: &AppState,
    browser: &Browser,
    return_to: Option<&str>,
    email: &str,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let return_to = safe_return_to(return_to);
    pages::render(
        status,
        &pages::SignIn {
            csrf: browser.csrf(state),
            return_to_q: q(&return_to),
            return_to,
            email: email.to_owned(),
            error,
        },
    )
}

fn register_page(
    state: &AppState,
    browser: &Browser,
    form: &AccountForm,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let return_to = safe_return_to(form.return_to.as_deref());
    pages::render(
        status,
        &pages::Register {
            csrf: browser.csrf(state),
            return_to_q: q(&return_to),
            return_to,
            name: form.name.clone(),
            email: form.email.clone(),
            postal_code: form.postal_code.clone(),
            error,
        },
    )
}

pub fn register_form(state: &AppState, browser: &Browser, return_to: Option<&str>) -> Response {
    let form = AccountForm {
        return_to: return_to.map(str::to_owned),
        ..AccountForm::default()
    };
    register_page(state, browser, &form, None, StatusCode::OK)
}

pub(crate) const EXPIRED: &str = "Your form expired. Please try again.";

/// Sends a browser that is not signed in to the sign-in page, to come back to `return_to` afterwards.
pub fn signin_first(return_to: &str) -> Response {
    Redirect::to(&format!(
        "/ap/signin?return_to={}",
        q(&safe_return_to(Some(return_to)))
    ))
    .into_response()
}

/// The page for a form whose CSRF token is missing or wrong: nothing was done.
pub fn expired_form() -> Response {
    pages::message(StatusCode::BAD_REQUEST, "This form has expired", &[EXPIRED])
}

/// Starts a session for `user` and sends the browser on. The browser's previous session, whoever's it was, ends
/// first: a browser holds one session, and the one it leaves behind is not left alive on the server.
async fn start_session(
    state: &AppState,
    browser: &Browser,
    user_id: &str,
    return_to: &str,
) -> Response {
    if let Some(previous) = &browser.signed_in {
        if let Err(e) = state.store.delete_session(&previous.id_hash).await {
            return page_failure(e.into());
        }
    }
    let token = secret::mint(&mut rand::thread_rng(), "");
    let now = state.clock.now();
    let hash = state.hasher.token(Kind::Session, token.expose());
    if let Err(e) = state
        .store
        .create_session(&hash, user_id, now, now + state.config.session_ttl)
        .await
    {
        return page_failure(e.into());
    }
    let mut res = Redirect::to(return_to).into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        session::session_cookie(state, token.expose()),
    );
    res
}

pub(crate) fn too_many(wait: i64) -> Response {
    pages::too_many(
        "Too many attempts",
        "There have been too many sign-in attempts. Wait a few minutes, then try again.",
        wait,
    )
}

/// `POST /ap/signin`.
pub async fn signin(
    state: &AppState,
    browser: &Browser,
    client_ip: &str,
    form: AccountForm,
) -> Response {
    if !browser.csrf_ok(state, form.csrf.as_deref()) {
        return signin_page(
            state,
            browser,
            form.return_to.as_deref(),
            &form.email,
            Some(EXPIRED.into()),
            StatusCode::BAD_REQUEST,
        );
    }
    if form.email.is_empty()
        || form.password.expose().is_empty()
        || form.email.len() > 254
        || form.password.expose().len() > MAX_PASSWORD_LEN
    {
        return signin_page(
            state,
            browser,
            form.return_to.as_deref(),
            &form.email,
            Some("Enter your email address and password.".into()),
            StatusCode::BAD_REQUEST,
        );
    }
    // Counted before the (costly) check, so parallel guesses cannot pass the limit together; refunded when the
    // password was right, so that only failures count. Per account and address, so that a stranger's wrong
    // guesses never lock the owner out, and per address. Per account too, against guesses spread over many
    // addresses, but never for a browser that signed in to the account before: under such an attack the owner
    // still gets in from a browser the account knows.
    let (window, limit) = (state.config.signin_window, state.config.signin_limit);
    let email = form.email.to_lowercase();
    let mut buckets = vec![
        Bucket::new(
            format!("signin:account-ip:{email}|{client_ip}"),
            limit,
            window,
        ),
        Bucket::new(format!("signin:ip:{client_ip}"), limit * 5, window),
    ];
    if !browser.knows(state, &email) {
        buckets.push(Bucket::new(
            format!("signin:account:{email}"),
            limit * 10,
            window,
        ));
    }
    match limits::hit(state, &buckets).await {
        Ok(None) => {}
        Ok(Some(wait)) => {
            state
                .metrics
                .signins
                .get_or_create(&OutcomeLabels {
                    outcome: "throttled",
                })
                .inc();
            return too_many(wait);
        }
        Err(e) => return page_failure(e.into()),
    }
    let user = match state.store.find_user_by_email(&form.email).await {
        Ok(u) => u.filter(|u| !u.disabled),
        Err(e) => {
            return page_failure(e.into());
        }
    };
    let ok = match state
        .passwords
        .verify(
            &form.password,
            user.as_ref().map(|u| u.password_hash.as_str()),
        )
        .await
    {
        Ok(ok) => ok,
        Err(e) => return page_failure(e.into()),
    };
    match (ok, user) {
        (true, Some(user)) => {
            state
                .metrics
                .signins
                .get_or_create(&OutcomeLabels { outcome: "success" })
                .inc();
            if let Err(e) = limits::refund(state, &buckets).await {
                return page_failure(e.into());
            }
            let return_to = safe_return_to(form.return_to.as_deref());
            let mut res = start_session(state, browser, &user.id, &return_to).await;
            res.headers_mut().append(
                header::SET_COOKIE,
                session::known_browser_cookie(state, &email),
            );
            res
        }
        _ => {
            state
                .metrics
                .signins
                .get_or_create(&OutcomeLabels { outcome: "failure" })
                .inc();
            signin_page(
                state,
                browser,
                form.return_to.as_deref(),
                &form.email,
                Some("The email address or password is not correct.".into()),
                StatusCode::UNAUTHORIZED,
            )
        }
    }
}

/// What is wrong with a new account's fields, in words for the person filling the form.
pub fn check_new_account(
    name: &str,
    email: &str,
    password: &str,
    postal_code: &str,
) -> Result<(), &'static str> {
    check_name_and_email(name, email)?;
    check_password(password)?;
    check_postal_code(postal_code)
}

/// What is wrong with the fields of a profile (the account page): the rules of a new account.
pub fn check_profile(name: &str, email: &str, postal_code: &str) -> Result<(), &'static str> {
    check_name_and_email(name, email)?;
    check_postal_code(postal_code)
}

fn check_name_and_email(name: &str, email: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(|c| c.is_control()) {
        return Err("Enter your name (up to 100 characters).");
    }
    let valid_email = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if !valid_email {
        return Err("Enter a valid email address, like name@example.com.");
    }
    Ok(())
}

/// The rule for a new password (sign-up and password change).
pub fn check_password(password: &str) -> Result<(), &'static str> {
    if password.chars().count() < MIN_PASSWORD_LEN || password.len() > MAX_PASSWORD_LEN {
        return Err("Choose a password of at least 8 characters.");
    }
    Ok(())
}

fn check_postal_code(postal_code: &str) -> Result<(), &'static str> {
    if postal_code.chars().count() > 20 || postal_code.chars().any(|c| c.is_control()) {
        return Err("Enter a postal code of up to 20 characters, or leave it empty.");
    }
    Ok(())
}

/// `POST /ap/register`.
pub async fn register(
    state: &AppState,
    browser: &Browser,
    client_ip: &str,
    form: AccountForm,
) -> Response {
    if !browser.csrf_ok(state, form.csrf.as_deref()) {
        return register_page(
            state,
            browser,
            &form,
            Some(EXPIRED.into()),
            StatusCode::BAD_REQUEST,
        );
    }
    if let Err(why) = check_new_account(
        &form.name,
        &form.email,
        form.password.expose(),
        &form.postal_code,
    ) {
        return register_page(
            state,
            browser,
            &form,
            Some(why.into()),
            StatusCode::BAD_REQUEST,
        );
    }
    // Every sign-up costs a password hash: counted per address before it is computed (SPEC 4).
    let bucket = [Bucket::new(
        format!("signup:ip:{client_ip}"),
        state.config.signup_limit,
        state.config.signup_window,
    )];
    match limits::hit(state, &bucket).await {
        Ok(None) => {}
        Ok(Some(wait)) => {
            return pages::too_many(
                "Too many new accounts",
                "Too many accounts have been created from this network. Wait a while, then try again.",
                wait,
            );
        }
        Err(e) => return page_failure(e.into()),
    }
    let password_hash = match state.passwords.hash(&form.password).await {
        Ok(h) => h,
        Err(e) => return page_failure(e.into()),
    };
    let user = User {
        id: ids::new_internal_id(&mut rand::thread_rng()),
        email: form.email.clone(),
        name: form.name.clone(),
        postal_code: Some(form.postal_code.clone()).filter(|p| !p.is_empty()),
        password_hash,
        disabled: false,
        created_at: state.clock.now(),
    };
    match state.store.create_user(&user).await {
        Ok(Created::Created) => {
            let return_to = safe_return_to(form.return_to.as_deref());
            start_session(state, browser, &user.id, &return_to).await
        }
        Ok(Created::AlreadyExists) => register_page(
            state,
            browser,
            &form,
            Some("An account with this email address already exists. Sign in instead.".into()),
            StatusCode::CONFLICT,
        ),
        Err(e) => page_failure(e.into()),
    }
}

/// `POST /ap/signout`: ends the session on the server and removes the cookie.
pub async fn signout(state: &AppState, browser: &Browser, csrf: Option<&str>) -> Response {
    if !browser.csrf_ok(state, csrf) {
        return expired_form();
    }
    if let Some(s) = &browser.signed_in {
        if let Err(e) = state.store.delete_session(&s.id_hash).await {
            return page_failure(e.into());
        }
    }
    let mut res = pages::message(
        StatusCode::OK,
        "You are signed out",
        &["You have signed out of Latchkey on this browser."],
    );
    res.headers_mut()
        .append(header::SET_COOKIE, session::clear_session_cookie(state));
    res
}

/// `GET /ap/signout`: a button, because signing out changes state and must not happen on a link.
pub fn signout_page(state: &AppState, browser: &Browser) -> Response {
    if browser.signed_in.is_none() {
        return pages::message(
            StatusCode::OK,
            "You are signed out",
            &["You are not signed in to Latchkey on this browser."],
        );
    }
    pages::render(
        StatusCode::OK,
        &pages::Message {
            title: "Sign out".into(),
            paragraphs: vec!["Sign out of Latchkey on this browser?".into()],
            signout_csrf: Some(browser.csrf(state)),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_is_local_only() {
        for (raw, expected) in [
            (Some("/ap/oa?x=1"), "/ap/oa?x=1"),
            (Some("//evil.example"), "/"),
            (Some("/\\evil.example"), "/"),
            (Some("https://evil.example"), "/"),
            (Some("/a\r\nSet-Cookie: x"), "/"),
            (Some("/\0"), "/"),
            (Some("/\x01"), "/"),
            (Some("/\x7f"), "/"),
            (Some("/a b"), "/"),
            (Some("/caf\u{e9}"), "/"),
            (None, "/"),
        ] {
            assert_eq!(safe_return_to(raw), expected, "{raw:?}");
        }
    }

    #[test]
    fn new_account_rules() {
        assert!(check_new_account("Ada", "ada@example.com", "correct horse", "").is_ok());
        assert!(check_new_account("", "ada@example.com", "correct horse", "").is_err());
        assert!(check_new_account("Ada", "ada@", "correct horse", "").is_err());
        assert!(check_new_account("Ada", "ada@example", "correct horse", "").is_err());
        assert!(check_new_account("Ada", "ada@example.com", "short", "").is_err());
        assert!(
            check_new_account("Ada", "ada@example.com", "correct horse", &"9".repeat(21)).is_err()
        );
    }
}
