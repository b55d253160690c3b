//! The code-entry pages at `/code` (RFC 8628 3.3; SPEC 2.3): a signed-in customer types the code their device
//! shows, sees which app asks for what, and confirms or denies. Wrong codes are counted per browser session and
//! per address; past the limit, entry is refused (429 in web) until the window passes. The forms' CSRF tokens are
//! checked by web before these functions are called; each returns a [`CodeOutcome`] that web turns into a page.

use super::authorize::{consent_items, remember_consent, shared_scopes, ConsentItem};
use crate::app::AppState;
use crate::flows::error::Failure;
use crate::flows::SignedIn;
use crate::limits::{self, Bucket};
use crate::store::{Client, DeviceDecision, DeviceRequest};
use latchkey_core::client::Feature;
use latchkey_core::device::{self, Status};
use latchkey_core::scope::Scopes;
use latchkey_core::secret::{Kind, Secret, Stamp};
use latchkey_core::{ids, CONSENT_PAGE_TTL_SECS};

/// What a code-entry page comes to.
#[derive(Debug)]
pub enum CodeOutcome {
    /// Sign in first, then come back to `return_to` (the code page, with what was typed).
    SignIn { return_to: String },
    /// The app asks for the address, not verified yet (SPEC 2.8): the code page for it first, then `return_to`.
    Verify { return_to: String },
    /// The code-entry form; with `error`, what was wrong with the code entered.
    Entry(EntryView),
    /// "Is this your device?": the app, what it asks for, and the form to answer.
    Confirm(ConfirmView),
    /// The confirmation form is too old, was shown to another session, or its code is gone.
    Expired,
    /// Past the limit of wrong codes: try again after `wait` seconds.
    Throttled { wait: i64 },
    /// The code has expired or was already used.
    Unusable,
    /// The code's app may no longer link devices.
    AppCannotLink,
    /// The customer shared nothing the app needs.
    NothingShared,
    /// The customer said no: the device will not be signed in to `app_name`.
    Denied { app_name: String },
    /// The device is linked to the customer's account in `app_name`.
    Linked { app_name: String },
}

/// The code-entry form.
#[derive(Debug)]
pub struct EntryView {
    pub user_email: String,
    /// What the customer typed (or what `verification_uri_complete` carried), cut to 32 characters.
    pub user_code: String,
    pub error: Option<&'static str>,
}

/// The confirmation page.
#[derive(Debug)]
pub struct ConfirmView {
    /// Whether the operator verified the app (an unverified one is named as such).
    pub verified: bool,
    pub app_name: String,
    /// The app's logo, served by Latchkey (`flows::logo`): never a developer's URL.
    pub logo: Option<String>,
    pub privacy_url: String,
    pub user_email: String,
    /// The canonical user code, carried to the confirmation.
    pub user_code: String,
    pub user_code_shown: String,
    /// Binds the answer to the session that saw this page and to this code.
    pub confirm_token: String,
    pub items: Vec<ConsentItem>,
}

/// The customer's answer on the confirmation form (its CSRF token already checked by web).
#[derive(Debug, Default)]
pub struct CodeAnswer {
    pub user_code: String,
    pub confirm_token: Option<String>,
    pub allow: bool,
    /// The optional items left ticked.
    pub shared: Vec<String>,
}

/// Sends the browser to sign in, then back to the code page with what it typed.
fn signin_first(user_code: &str) -> CodeOutcome {
    CodeOutcome::SignIn {
        return_to: code_page(user_code),
    }
}

/// The code page, with what was typed.
fn code_page(user_code: &str) -> String {
    if user_code.is_empty() {
        "/code".to_owned()
    } else {
        format!(
            "/code?{}",
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("user_code", user_code)
                .finish()
        )
    }
}

fn entry(signed_in: &SignedIn, typed: &str, error: Option<&'static str>) -> CodeOutcome {
    CodeOutcome::Entry(EntryView {
        user_email: signed_in.session.user.email.clone(),
        user_code: typed.chars().take(32).collect(),
        error,
    })
}

/// `GET /code` (and `verification_uri_complete`, which pre-fills the code).
pub fn show(signed_in: Option<&SignedIn>, user_code: Option<&str>) -> CodeOutcome {
    let typed = user_code.unwrap_or("");
    let Some(signed_in) = signed_in else {
        return signin_first(typed.get(..32).unwrap_or(typed));
    };
    entry(signed_in, typed, None)
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

/// A code pair that can still be confirmed, with its app; or the outcome explaining why not.
async fn live_request(
    state: &AppState,
    code: &str,
) -> Result<Result<Option<(DeviceRequest, Client)>, CodeOutcome>, Failure> {
    let hash = state.hasher.token(Kind::UserCode, code);
    let Some(request) = state.store.find_device_code(&hash).await? else {
        return Ok(Ok(None));
    };
    if request.status != Status::Pending || request.expires_at <= state.clock.now() {
        return Ok(Err(CodeOutcome::Unusable));
    }
    match state.store.find_client(&request.client_id).await? {
        Some(client) if client.policy.allows(Feature::Device) => Ok(Ok(Some((request, client)))),
        _ => Ok(Err(CodeOutcome::AppCannotLink)),
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

/// `POST /code`: look the code `user_code` up and ask "Is this your device?". `client_ip` is the client
/// address's limit key.
pub async fn submit(
    state: &AppState,
    signed_in: Option<&SignedIn>,
    client_ip: &str,
    user_code: &str,
) -> Result<CodeOutcome, Failure> {
    let Some(signed_in) = signed_in else {
        return Ok(signin_first(user_code));
    };
    let buckets = buckets(state, signed_in, client_ip);
    if let Some(wait) = limits::hit(state, &buckets).await? {
        return Ok(CodeOutcome::Throttled { wait });
    }
    let Some(code) = device::normalize(user_code) else {
        // Not a guess at any code: it does not count.
        limits::refund(state, &buckets).await?;
        return Ok(entry(
            signed_in,
            user_code,
            Some("A code is 8 letters, like BCDF-GHJK. Check the code on your device."),
        ));
    };
    let (request, client) = match live_request(state, &code).await? {
        Ok(Some(found)) => found,
        Ok(None) => {
            return Ok(entry(
                signed_in,
                user_code,
                Some("That code is not right. Check the code on your device and try again."),
            ));
        }
        Err(outcome) => return Ok(outcome),
    };
    limits::refund(state, &buckets).await?;
    let user = &signed_in.session.user;
    if Scopes::from_stored(&request.scopes).released().email && !user.email_verified {
        return Ok(CodeOutcome::Verify {
            return_to: code_page(user_code),
        });
    }
    let optional: Vec<String> = Scopes::from_stored(&request.optional_scopes)
        .iter()
        .map(str::to_owned)
        .collect();
    Ok(CodeOutcome::Confirm(ConfirmView {
        verified: client.verified,
        app_name: client.name.clone(),
        logo: crate::flows::logo::src(&client),
        privacy_url: client.privacy_url.clone(),
        user_email: user.email.clone(),
        user_code_shown: device::display(&code),
        confirm_token: confirm_token(state, signed_in, &code),
        user_code: code,
        items: consent_items(
            &Scopes::from_stored(&request.scopes),
            &optional,
            user,
            &state.config.scopes,
        ),
    }))
}

/// `POST /code/confirm`: the customer's answer, bound to the session that saw the question.
pub async fn confirm(
    state: &AppState,
    signed_in: Option<&SignedIn>,
    answer: CodeAnswer,
) -> Result<CodeOutcome, Failure> {
    let Some(signed_in) = signed_in else {
        return Ok(signin_first(""));
    };
    let token_ok = answer.confirm_token.as_deref().is_some_and(|t| {
        let stamp = state.hasher.check_stamp(
            Kind::Consent,
            &[&signed_in.id_hash, b"device", answer.user_code.as_bytes()],
            t,
            state.clock.now(),
            CONSENT_PAGE_TTL_SECS,
        );
        matches!(stamp, Stamp::Fresh { .. })
    });
    if !token_ok {
        return Ok(CodeOutcome::Expired);
    }
    let code = Secret::new(answer.user_code.clone());
    let (request, client) = match live_request(state, code.expose()).await? {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(CodeOutcome::Expired),
        Err(outcome) => return Ok(outcome),
    };
    let hash = state.hasher.token(Kind::UserCode, code.expose());
    let now = state.clock.now();
    let user = &signed_in.session.user;
    if !answer.allow {
        state
            .store
            .decide_device_code(&hash, &DeviceDecision::Deny, now)
            .await?;
        return Ok(CodeOutcome::Denied {
            app_name: client.name,
        });
    }
    let optional: Vec<String> = Scopes::from_stored(&request.optional_scopes)
        .iter()
        .map(str::to_owned)
        .collect();
    let scopes = shared_scopes(
        &Scopes::from_stored(&request.scopes),
        &optional,
        &answer.shared,
    );
    if scopes.is_empty() {
        return Ok(CodeOutcome::NothingShared);
    }
    let decision = DeviceDecision::Approve {
        user_id: user.id.clone(),
        subject: ids::pairwise_user_id(&state.hasher, &client.owner, &user.id),
        scopes: scopes.to_string_sorted(),
        auth_time: signed_in.session.auth_time,
    };
    if !state
        .store
        .decide_device_code(&hash, &decision, now)
        .await?
    {
        return Ok(CodeOutcome::Unusable);
    }
    remember_consent(state, &user.id, &client.policy.client_id, &scopes, now).await?;
    Ok(CodeOutcome::Linked {
        app_name: client.name,
    })
}
