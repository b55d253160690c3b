//! The code-entry pages at `/code` (RFC 8628 3.3; SPEC 2.3): a signed-in customer types the code their device
//! shows, sees which app asks for what, and confirms or denies. Wrong codes are counted per browser session and
//! per address; past the limit, entry is refused with 429 until the window passes.

use super::authorize::{consent_items, remember_consent, shared_scopes};
use crate::app::AppState;
use crate::flows::SignedIn;
use crate::limits::{self, Bucket};
use crate::store::{Client, DeviceDecision, DeviceRequest};
use crate::web::pages::{self, CodeConfirm, CodeEntry};
use crate::web::session::Browser;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::client::Feature;
use latchkey_core::device::{self, Status};
use latchkey_core::scope::Scopes;
use latchkey_core::secret::{Kind, Secret, Stamp};
use latchkey_core::{ids, CONSENT_PAGE_TTL_SECS};

/// The code-entry forms' fields.
#[derive(Default)]
pub struct CodeForm {
    pub csrf: Option<String>,
    pub user_code: String,
    pub confirm_token: Option<String>,
    pub allow: bool,
    pub shared: Vec<String>,
}

impl CodeForm {
    pub fn parse(body: &[u8]) -> CodeForm {
        let mut form = CodeForm::default();
        for (k, v) in url::form_urlencoded::parse(body) {
            match &*k {
                "csrf" => form.csrf = Some(v.into_owned()),
                "user_code" => form.user_code = v.chars().take(64).collect(),
                "confirm_token" => form.confirm_token = Some(v.into_owned()),
                "decision" => form.allow = v == "allow",
                "share" => form.shared.push(v.into_owned()),
                _ => {}
            }
        }
        form
    }
}

/// Sends the browser to sign in, then back to the code page with what it typed.
fn signin_first(user_code: &str) -> Response {
    let back = if user_code.is_empty() {
        "/code".to_owned()
    } else {
        format!(
            "/code?{}",
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("user_code", user_code)
                .finish()
        )
    };
    let target = format!(
        "/ap/signin?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("return_to", &back)
            .finish()
    );
    Redirect::to(&target).into_response()
}

fn entry_page(
    state: &AppState,
    browser: &Browser,
    signed_in: &SignedIn,
    typed: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    pages::render(
        status,
        &CodeEntry {
            csrf: browser.csrf(state),
            user_email: signed_in.session.user.email.clone(),
            user_code: typed.chars().take(32).collect(),
            error: error.map(str::to_owned),
        },
    )
}

fn expired_form() -> Response {
    pages::message(
        StatusCode::BAD_REQUEST,
        "This form has expired",
        &["For your security, Latchkey could not accept this form. Open the code page again and enter the code shown on your device."],
    )
}

fn store_failed(e: crate::store::StoreError) -> Response {
    crate::web::error::page_failure(e.into())
}

/// `GET /code` (and `verification_uri_complete`, which pre-fills the code).
pub async fn show(state: &AppState, browser: &Browser, user_code: Option<&str>) -> Response {
    let typed = user_code.unwrap_or("");
    let Some(signed_in) = &browser.signed_in else {
        return signin_first(typed.get(..32).unwrap_or(typed));
    };
    entry_page(state, browser, signed_in, typed, None, StatusCode::OK)
}

/// The throttle buckets of this browser session and address: every code entered is counted before it is looked
/// up (so parallel guesses cannot pass the limit together), and refunded when it was right.
fn buckets(state: &AppState, signed_in: &SignedIn, client_ip: &str) -> [Bucket; 2] {
    let session: String = signed_in
        .id_hash
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    let (limit, window) = (state.config.user_code_limit, state.config.user_code_window);
    [
        Bucket::new(format!("user-code:session:{session}"), limit, window),
        Bucket::new(format!("user-code:ip:{client_ip}"), limit * 4, window),
    ]
}

fn too_many(wait: i64) -> Response {
    pages::too_many(
        "Too many wrong codes",
        "Too many codes entered here were not right. Wait a few minutes, check the code on your device, and try again.",
        wait,
    )
}

/// A code pair that can still be confirmed, with its app; or the page explaining why not.
async fn live_request(
    state: &AppState,
    code: &str,
) -> Result<Option<(DeviceRequest, Client)>, Response> {
    let hash = state.hasher.token(Kind::UserCode, code);
    let Some(request) = state
        .store
        .find_device_code(&hash)
        .await
        .map_err(store_failed)?
    else {
        return Ok(None);
    };
    if request.status != Status::Pending || request.expires_at <= state.clock.now() {
        return Err(pages::message(
            StatusCode::BAD_REQUEST,
            "This code can no longer be used",
            &["The code has expired or was already used. Start again on your device to get a new code."],
        ));
    }
    match state.store.find_client(&request.client_id).await {
        Ok(Some(client)) if client.policy.allows(Feature::Device) => Ok(Some((request, client))),
        Ok(_) => Err(pages::message(
            StatusCode::BAD_REQUEST,
            "This app can no longer link devices",
            &["The app that showed this code is no longer allowed to sign in on devices. Contact its developer."],
        )),
        Err(e) => Err(store_failed(e)),
    }
}

/// The confirmation form's token: a MAC of this session and this user code, stamped with when the page was shown
/// and refused after [`CONSENT_PAGE_TTL_SECS`]. A user code is drawn again only once its pair was purged (an
/// hour after it expired), so a page left open cannot approve another device's pair that came to have its code.
fn confirm_token(state: &AppState, signed_in: &SignedIn, code: &str) -> String {
    state.hasher.stamp_b64(
        Kind::Consent,
        state.clock.now(),
        &[&signed_in.id_hash, b"device", code.as_bytes()],
    )
}

/// `POST /code`: look the code up and ask "Is this your device?".
pub async fn submit(
    state: &AppState,
    browser: &Browser,
    client_ip: &str,
    form: CodeForm,
) -> Response {
    if !browser.csrf_ok(state, form.csrf.as_deref()) {
        return expired_form();
    }
    let Some(signed_in) = &browser.signed_in else {
        return signin_first(&form.user_code);
    };
    let buckets = buckets(state, signed_in, client_ip);
    match limits::hit(state, &buckets).await {
        Ok(None) => {}
        Ok(Some(wait)) => return too_many(wait),
        Err(e) => return store_failed(e),
    }
    let Some(code) = device::normalize(&form.user_code) else {
        // Not a guess at any code: it does not count.
        if let Err(e) = limits::refund(state, &buckets).await {
            return store_failed(e);
        }
        return entry_page(
            state,
            browser,
            signed_in,
            &form.user_code,
            Some("A code is 8 letters, like BCDF-GHJK. Check the code on your device."),
            StatusCode::BAD_REQUEST,
        );
    };
    let (request, client) = match live_request(state, &code).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            return entry_page(
                state,
                browser,
                signed_in,
                &form.user_code,
                Some("That code is not right. Check the code on your device and try again."),
                StatusCode::BAD_REQUEST,
            );
        }
        Err(res) => return res,
    };
    if let Err(e) = limits::refund(state, &buckets).await {
        return store_failed(e);
    }
    let optional: Vec<String> = Scopes::from_stored(&request.optional_scopes)
        .iter()
        .map(str::to_owned)
        .collect();
    let user = &signed_in.session.user;
    pages::render(
        StatusCode::OK,
        &CodeConfirm {
            unverified_by: (!client.verified).then(|| pages::operator_name(&state.issuer)),
            app_name: client.name.clone(),
            logo: crate::flows::logo::src(&client),
            privacy_url: client.privacy_url.clone(),
            user_email: user.email.clone(),
            csrf: browser.csrf(state),
            user_code_shown: device::display(&code),
            confirm_token: confirm_token(state, signed_in, &code),
            user_code: code,
            items: consent_items(
                &Scopes::from_stored(&request.scopes),
                &optional,
                user,
                &state.config.scopes,
            ),
        },
    )
}

/// `POST /code/confirm`: the customer's answer, bound to the session that saw the question.
pub async fn confirm(state: &AppState, browser: &Browser, form: CodeForm) -> Response {
    if !browser.csrf_ok(state, form.csrf.as_deref()) {
        return expired_form();
    }
    let Some(signed_in) = &browser.signed_in else {
        return signin_first("");
    };
    let token_ok = form.confirm_token.as_deref().is_some_and(|t| {
        let stamp = state.hasher.check_stamp(
            Kind::Consent,
            &[&signed_in.id_hash, b"device", form.user_code.as_bytes()],
            t,
            state.clock.now(),
            CONSENT_PAGE_TTL_SECS,
        );
        matches!(stamp, Stamp::Fresh { .. })
    });
    if !token_ok {
        return expired_form();
    }
    let code = Secret::new(form.user_code.clone());
    let (request, client) = match live_request(state, code.expose()).await {
        Ok(Some(found)) => found,
        Ok(None) => return expired_form(),
        Err(res) => return res,
    };
    let hash = state.hasher.token(Kind::UserCode, code.expose());
    let now = state.clock.now();
    let user = &signed_in.session.user;
    if !form.allow {
        return match state
            .store
            .decide_device_code(&hash, &DeviceDecision::Deny, now)
            .await
        {
            Ok(_) => pages::message(
                StatusCode::OK,
                "Device not linked",
                &[&format!(
                    "You said no, so the device will not be signed in to {}. You can close this page.",
                    client.name
                )],
            ),
            Err(e) => store_failed(e),
        };
    }
    let optional: Vec<String> = Scopes::from_stored(&request.optional_scopes)
        .iter()
        .map(str::to_owned)
        .collect();
    let scopes = shared_scopes(
        &Scopes::from_stored(&request.scopes),
        &optional,
        &form.shared,
    );
    if scopes.is_empty() {
        return pages::message(
            StatusCode::BAD_REQUEST,
            "Nothing to share",
            &["The app needs at least one item. Start again on your device."],
        );
    }
    let decision = DeviceDecision::Approve {
        user_id: user.id.clone(),
        subject: ids::pairwise_user_id(&state.hasher, &client.owner, &user.id),
        scopes: scopes.to_string_sorted(),
        auth_time: signed_in.session.auth_time,
    };
    match state.store.decide_device_code(&hash, &decision, now).await {
        Ok(true) => {}
        Ok(false) => {
            return pages::message(
                StatusCode::BAD_REQUEST,
                "This code can no longer be used",
                &["The code has expired or was already used. Start again on your device to get a new code."],
            )
        }
        Err(e) => return store_failed(e),
    }
    if let Err(e) = remember_consent(state, &user.id, &client.policy.client_id, &scopes, now).await
    {
        return store_failed(e);
    }
    pages::message(
        StatusCode::OK,
        "Your device is linked",
        &[&format!(
            "Go back to your device: {} will finish signing you in within a few seconds. You can close this page.",
            client.name
        )],
    )
}
