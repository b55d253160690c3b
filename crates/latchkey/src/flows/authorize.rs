//! `GET /ap/oa` and `/oauth2/authorize` with the consent page (RFC 6749 4.1.1-4.1.2 and 4.2, RFC 9207, OpenID
//! Connect Core 3.1.2; SPEC 2.1). Client and return URL problems are shown on a page and never redirected;
//! everything else is redirected to the registered URL with `state` and `iss`, except that an unverified app's
//! errors before the customer did anything are shown on a page with a link to follow (RFC 9700 4.11.2). A public
//! app whose return URL cannot prove which app receives it (loopback, private-use scheme) is always confirmed by
//! the customer (RFC 8252 8.6).

use crate::app::AppState;
use crate::config::ScopeSetting;
use crate::flows::error::Failure;
use crate::flows::SignedIn;
use crate::store::{Client, NewAuthCode, User};
use crate::web::error;
use crate::web::pages::{self, ConsentItem};
use crate::web::session::Browser;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::authorize::{
    self as authz, AuthorizeRequest, PageError, RedirectError, ResponseType,
};
use latchkey_core::error::{ErrorCode, OAuthError};
use latchkey_core::params::Params;
use latchkey_core::scope::{ScopeKind, Scopes};
use latchkey_core::secret::{self, Kind, Stamp};
use latchkey_core::{ids, redirect, AUTH_CODE_TTL_SECS, CONSENT_PAGE_TTL_SECS};
use std::collections::BTreeMap;

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

/// When an error is answered, which decides whether an unverified app's error may be redirected (SPEC 2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Moment {
    /// Nobody has interacted on this request yet: a malformed request, a storage failure on the way.
    BeforeInteraction,
    /// The answer the app asked for (`prompt=none`) or the one the customer gave (Cancel).
    Answer,
}

/// An error sent back to the app: a 303 to the return URL, or for an unverified app before any interaction, a
/// page naming the app, the error and where the link goes (no open redirector, RFC 9700 4.11.2).
fn redirect_error(
    state: &AppState,
    client: &Client,
    e: &RedirectError,
    moment: Moment,
) -> Response {
    let location = authz::error_redirect(e, &state.issuer);
    if client.verified || moment == Moment::Answer {
        return Redirect::to(&location).into_response();
    }
    let mut res = pages::render(
        StatusCode::OK,
        &pages::RedirectNotice {
            app_name: client.name.clone(),
            operator: pages::operator_name(&state.issuer),
            what_happened: error_words(e.error.code),
            code: e.error.code.as_str(),
            description: e.error.description.clone(),
            destination: destination(&e.redirect_uri),
            location,
        },
    );
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    res
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

fn redirect_with(
    state: &AppState,
    client: &Client,
    req: &AuthorizeRequest,
    error: OAuthError,
    moment: Moment,
) -> Response {
    redirect_error(
        state,
        client,
        &RedirectError {
            redirect_uri: req.redirect_uri.clone(),
            state: req.state.clone(),
            response_mode: req.response_mode,
            error,
        },
        moment,
    )
}

/// Parses and checks an authorization request; `Err` is the response to send.
async fn validate(state: &AppState, query: &str) -> Result<(Client, AuthorizeRequest), Response> {
    let params = Params::from_urlencoded(query.as_bytes())
        .map_err(|e| refused_page(PageError::Malformed(e.description)))?;
    let client_id = authz::client_id(&params).map_err(refused_page)?;
    if !ids::is_client_id(client_id) {
        return Err(refused_page(PageError::UnknownClient));
    }
    let client = match state.store.find_client(client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return Err(refused_page(PageError::UnknownClient)),
        // The return URL is not known to be the app's yet: a page, never a redirect.
        Err(e) => return Err(error::page_failure(e.into())),
    };
    let requested = params.get("redirect_uri").ok().flatten();
    let client = super::sdk::with_relay(&state.issuer, client, requested);
    let (redirect_uri, sent) =
        authz::redirect_uri(&params, &client.policy).map_err(refused_page)?;
    let request = authz::parse(
        &params,
        &client.policy,
        redirect_uri,
        sent,
        &state.known_scopes,
    )
    .map_err(|e| redirect_error(state, &client, &e, Moment::BeforeInteraction))?;
    Ok((client, request))
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

/// Where to send the browser to sign in and come back: this request. With `fresh_since` (a fresh sign-in is
/// asked for: `prompt=login`, `max_age`) it comes back with a marker, bound to this browser and this exact
/// request, saying when that was asked, so that a session authenticated since satisfies it (otherwise `max_age=0`
/// would send the customer back to sign in once a second has passed), and one from before does not.
fn signin_redirect(
    state: &AppState,
    browser: &Browser,
    query: &str,
    login_hint: Option<&str>,
    fresh_since: Option<i64>,
) -> Response {
    let request = without_marker(query);
    let return_to = match fresh_since {
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
    };
    let prefix = "/ap/signin?";
    let mut target = url::form_urlencoded::Serializer::for_suffix(prefix.to_owned(), prefix.len());
    target.append_pair("return_to", &return_to);
    if let Some(hint) = login_hint.filter(|h| h.contains('@')) {
        target.append_pair("email", hint);
    }
    let target = target.finish();
    Redirect::to(&target).into_response()
}

/// Whether the customer must confirm even when nothing needs consent (RFC 8252 8.6, SPEC 2.1): a public app whose
/// matched return URL is a loopback address or a private-use scheme, which any local process or installed app could
/// be listening on. The SDK's relay on Latchkey's own origin is not such a URL, whatever the issuer's host.
fn must_confirm(state: &AppState, client: &Client, req: &AuthorizeRequest) -> bool {
    !client.policy.is_confidential()
        && req.redirect_uri != super::sdk::relay_uri(&state.issuer, &client.policy.client_id)
        && redirect::is_native(&req.redirect_uri)
}

/// How long after a sign-in that Latchkey asked for (`prompt=login`, `max_age=0`) it still counts as fresh: the
/// way back from the sign-in page to the request.
const FRESH_SIGNIN_SECS: i64 = 60;

/// `GET /ap/oa`.
pub async fn authorize(state: &AppState, browser: &Browser, query: &str) -> Response {
    let (client, req) = match validate(state, query).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let now = state.clock.now();
    let reauth_asked_at = reauth_asked_at(state, browser, query, now);
    let fresh_enough = |s: &SignedIn| {
        let auth_time = s.session.auth_time;
        // A sign-in since Latchkey asked, and recent: the marker proves the former, and a URL reopened from the
        // history later (the marker is still valid) must not pass on an old sign-in, nor one older than `max_age`.
        let recent = now - auth_time <= req.max_age.unwrap_or(0).max(FRESH_SIGNIN_SECS);
        let signed_in_since_asked =
            recent && reauth_asked_at.is_some_and(|asked| auth_time >= asked);
        signed_in_since_asked
            || (!req.prompt.login && req.max_age.is_none_or(|max| now - auth_time <= max))
    };
    let signed_in = match &browser.signed_in {
        Some(s) if fresh_enough(s) => s,
        _ if req.prompt.none => {
            return redirect_with(
                state,
                &client,
                &req,
                OAuthError::new(
                    ErrorCode::LoginRequired,
                    "The customer is not signed in, and prompt=none forbids asking : prompt",
                ),
                Moment::Answer,
            )
        }
        _ => {
            let fresh_since = (req.prompt.login || req.max_age.is_some()).then_some(now);
            return signin_redirect(
                state,
                browser,
                query,
                req.login_hint.as_deref(),
                fresh_since,
            );
        }
    };
    let user = &signed_in.session.user;
    if req.scopes.needs_consent() {
        let remembered = match state
            .store
            .find_consent(&user.id, &client.policy.client_id)
            .await
        {
            Ok(c) => c.is_some_and(|c| req.scopes.is_subset(&Scopes::from_stored(&c.scopes))),
            Err(e) => return store_failed(state, &client, &req, e, Moment::BeforeInteraction),
        };
        if !remembered || req.prompt.consent {
            if req.prompt.none {
                return redirect_with(
                    state,
                    &client,
                    &req,
                    OAuthError::new(
                        ErrorCode::ConsentRequired,
                        "The customer has not allowed these scopes, and prompt=none forbids asking : prompt",
                    ),
                    Moment::Answer,
                );
            }
            return consent_page(state, browser, signed_in, &client, &req, query, false);
        }
    }
    if must_confirm(state, &client, &req) {
        if req.prompt.none {
            return redirect_with(
                state,
                &client,
                &req,
                OAuthError::new(
                    ErrorCode::InteractionRequired,
                    "The customer must confirm apps on this device each time, and prompt=none forbids asking : prompt",
                ),
                Moment::Answer,
            );
        }
        return consent_page(state, browser, signed_in, &client, &req, query, true);
    }
    let scopes = req.scopes.clone();
    complete(
        state,
        &client,
        &req,
        signed_in,
        &scopes,
        Moment::BeforeInteraction,
    )
    .await
}

fn item(
    scope: &str,
    user: &User,
    optional: bool,
    operator: &BTreeMap<String, ScopeSetting>,
) -> Option<ConsentItem> {
    let (label, value) = match scope {
        "profile" => (
            "Your name and email address".to_owned(),
            format!("{} · {}", user.name, user.email),
        ),
        "profile:user_id" => (
            "An identifier for your account".to_owned(),
            "a code that only this developer's apps can see".to_owned(),
        ),
        "postal_code" => (
            "Your postal code".to_owned(),
            user.postal_code
                .clone()
                .unwrap_or_else(|| "(none on your account)".into()),
        ),
        "email" => ("Your email address".to_owned(), user.email.clone()),
        // The operator's customer scopes are described in its own words and carry no value of the account's.
        other => match operator.get(other) {
            Some(s) if s.kind == ScopeKind::Customer => {
                (s.description.trim().to_owned(), String::new())
            }
            _ => return None,
        },
    };
    Some(ConsentItem {
        scope: scope.to_owned(),
        label,
        value,
        optional,
    })
}

/// What a consent page lists for `scopes`: essential items first, in the order people expect (who you are, how
/// to reach you, where, then the operator's own scopes described by `operator`), each with its current value;
/// `optional` ones can be unticked.
pub fn consent_items(
    scopes: &Scopes,
    optional: &[String],
    user: &User,
    operator: &BTreeMap<String, ScopeSetting>,
) -> Vec<ConsentItem> {
    let mut items: Vec<ConsentItem> = scopes
        .iter()
        .filter_map(|s| item(s, user, optional.iter().any(|o| o == s), operator))
        .collect();
    let rank = |scope: &str| {
        ["profile", "profile:user_id", "email", "postal_code"]
            .iter()
            .position(|s| *s == scope)
            .unwrap_or(usize::MAX)
    };
    items.sort_by_key(|i| (i.optional, rank(&i.scope)));
    items
}

/// The scopes a consent form grants: all asked for, less the optional ones the customer unticked.
pub fn shared_scopes(scopes: &Scopes, optional: &[String], ticked: &[String]) -> Scopes {
    let declined: Vec<String> = optional
        .iter()
        .filter(|s| !ticked.contains(s))
        .cloned()
        .collect();
    scopes.without(&declined)
}

/// Adds `granted` to what the customer already allowed `client_id`.
pub async fn remember_consent(
    state: &AppState,
    user_id: &str,
    client_id: &str,
    granted: &Scopes,
    now: i64,
) -> Result<(), crate::store::StoreError> {
    let previous = state.store.find_consent(user_id, client_id).await?;
    let mut all: Vec<String> = granted.iter().map(str::to_owned).collect();
    if let Some(prev) = previous {
        all.extend(Scopes::from_stored(&prev.scopes).iter().map(str::to_owned));
    }
    let all = Scopes::from_stored(&all.join(" ")).to_string_sorted();
    state
        .store
        .save_consent(user_id, client_id, &all, now)
        .await
}

/// The consent form's token: a MAC of this session and this exact request, stamped with when the page was shown
/// (refused after [`CONSENT_PAGE_TTL_SECS`]).
fn consent_token(state: &AppState, signed_in: &SignedIn, request: &str) -> String {
    state.hasher.stamp_b64(
        Kind::Consent,
        state.clock.now(),
        &[&signed_in.id_hash, request.as_bytes()],
    )
}

/// The consent page; with `confirm`, its "Continue to <app>?" form for an app the customer already allowed (or
/// that asks for nothing that needs consent) but whose return URL cannot prove it is that app. Both post to the
/// same form, bound to this session and this exact request.
fn consent_page(
    state: &AppState,
    browser: &Browser,
    signed_in: &SignedIn,
    client: &Client,
    req: &AuthorizeRequest,
    query: &str,
    confirm: bool,
) -> Response {
    let user = &signed_in.session.user;
    let items = consent_items(
        &req.scopes,
        &req.optional_scopes,
        user,
        &state.config.scopes,
    );
    pages::render(
        StatusCode::OK,
        &pages::Consent {
            confirm,
            unverified_by: (!client.verified).then(|| pages::operator_name(&state.issuer)),
            app_name: client.name.clone(),
            logo: crate::flows::logo::src(client),
            privacy_url: client.privacy_url.clone(),
            user_email: user.email.clone(),
            csrf: browser.csrf(state),
            request: query.to_owned(),
            consent_token: consent_token(state, signed_in, query),
            items,
        },
    )
}

/// The consent form's fields.
pub struct ConsentForm {
    pub csrf: Option<String>,
    pub request: String,
    pub consent_token: Option<String>,
    pub allow: bool,
    pub shared: Vec<String>,
    /// The "Continue to <app>?" form: nothing new is allowed, so nothing is remembered.
    pub confirm: bool,
}

impl ConsentForm {
    pub fn parse(body: &[u8]) -> ConsentForm {
        let mut form = ConsentForm {
            csrf: None,
            request: String::new(),
            consent_token: None,
            allow: false,
            shared: Vec::new(),
            confirm: false,
        };
        for (k, v) in url::form_urlencoded::parse(body) {
            match &*k {
                "csrf" => form.csrf = Some(v.into_owned()),
                "request" => form.request = v.into_owned(),
                "consent_token" => form.consent_token = Some(v.into_owned()),
                "decision" => form.allow = v == "allow",
                "share" => form.shared.push(v.into_owned()),
                "confirm" => form.confirm = v == "1",
                _ => {}
            }
        }
        form
    }
}

/// `POST /ap/oa/consent`: Allow or Cancel, bound to the browser (CSRF) and the session that saw the page.
pub async fn consent(state: &AppState, browser: &Browser, form: ConsentForm) -> Response {
    if !browser.csrf_ok(state, form.csrf.as_deref()) {
        return pages::message(
            StatusCode::BAD_REQUEST,
            "This form has expired",
            &["For your security, Latchkey could not accept this form. Go back to the app and sign in again."],
        );
    }
    let Some(signed_in) = &browser.signed_in else {
        // Signed out since the page was shown: whatever sign-in the request asked for, the one now is fresh.
        return signin_redirect(state, browser, &form.request, None, Some(state.clock.now()));
    };
    let token = form.consent_token.as_deref().map_or(Stamp::Invalid, |t| {
        state.hasher.check_stamp(
            Kind::Consent,
            &[&signed_in.id_hash, form.request.as_bytes()],
            t,
            state.clock.now(),
            CONSENT_PAGE_TTL_SECS,
        )
    });
    let why = match token {
        Stamp::Fresh { .. } => None,
        Stamp::Expired => {
            Some("This consent page was open too long. Go back to the app and start again.")
        }
        Stamp::Invalid => Some(
            "This consent page was shown in another session. Go back to the app and sign in again.",
        ),
    };
    if let Some(why) = why {
        return pages::message(StatusCode::BAD_REQUEST, "This form has expired", &[why]);
    }
    let (client, req) = match validate(state, &form.request).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    if !form.allow {
        return redirect_with(
            state,
            &client,
            &req,
            OAuthError::new(
                ErrorCode::AccessDenied,
                "The customer declined to allow the app",
            ),
            Moment::Answer,
        );
    }
    let scopes = shared_scopes(&req.scopes, &req.optional_scopes, &form.shared);
    if scopes.is_empty() {
        return redirect_with(
            state,
            &client,
            &req,
            OAuthError::new(
                ErrorCode::AccessDenied,
                "The customer shared nothing with the app",
            ),
            Moment::Answer,
        );
    }
    let user = &signed_in.session.user;
    let now = state.clock.now();
    if !form.confirm {
        if let Err(e) =
            remember_consent(state, &user.id, &client.policy.client_id, &scopes, now).await
        {
            return store_failed(state, &client, &req, e, Moment::Answer);
        }
    }
    complete(state, &client, &req, signed_in, &scopes, Moment::Answer).await
}

/// A storage failure once the return URL is known: `temporarily_unavailable` when the database is unreachable or
/// overloaded and `server_error` otherwise (the one mapping decides and logs), redirected as `moment` allows.
fn store_failed(
    state: &AppState,
    client: &Client,
    req: &AuthorizeRequest,
    e: crate::store::StoreError,
    moment: Moment,
) -> Response {
    redirect_with(state, client, req, Failure::Store(e).into_oauth(), moment)
}

/// Issues the code (or, for implicit, the token) and redirects back to the app; `moment` says whether the
/// customer acted on this request (a failure is then redirected even for an unverified app).
async fn complete(
    state: &AppState,
    client: &Client,
    req: &AuthorizeRequest,
    signed_in: &SignedIn,
    scopes: &Scopes,
    moment: Moment,
) -> Response {
    let now = state.clock.now();
    let user = &signed_in.session.user;
    let subject = ids::pairwise_user_id(&state.hasher, &client.owner, &user.id);
    let scope = scopes.to_string_sorted();
    let location = match req.response_type {
        ResponseType::Code => {
            let code = secret::mint(&mut rand::thread_rng(), "");
            let stored = NewAuthCode {
                code_hash: state.hasher.token(Kind::AuthCode, code.expose()),
                client_id: client.policy.client_id.clone(),
                user_id: user.id.clone(),
                subject,
                scopes: scope.clone(),
                redirect_uri: req.redirect_uri.clone(),
                redirect_uri_sent: req.redirect_uri_sent,
                challenge: req.challenge.clone(),
                nonce: req.nonce.clone(),
                auth_time: signed_in.session.auth_time,
                created_at: now,
                expires_at: now + AUTH_CODE_TTL_SECS,
            };
            if let Err(e) = state.store.insert_auth_code(&stored).await {
                return store_failed(state, client, req, e, moment);
            }
            let mut pairs = vec![("code", code.expose()), ("scope", scope.as_str())];
            if let Some(s) = &req.state {
                pairs.push(("state", s));
            }
            pairs.push(("iss", &state.issuer));
            authz::append_to_uri(&req.redirect_uri, &pairs, req.response_mode)
        }
        ResponseType::Token => {
            let (grant, token) = match super::mint_grant(
                state,
                ids::new_family_id(),
                &super::GrantSubject {
                    client_id: &client.policy.client_id,
                    app_id: &client.app_id,
                    user_id: &user.id,
                    subject: &subject,
                    scopes: &scope,
                    refresh_scopes: None,
                    auth_time: signed_in.session.auth_time,
                    nonce: req.nonce.as_deref(),
                    id_token_alg: client.id_token_alg,
                },
                now,
            )
            .await
            {
                Ok(minted) => minted,
                Err(e) => return store_failed(state, client, req, e, moment),
            };
            if let Err(e) = state.store.insert_grant(&grant).await {
                return store_failed(state, client, req, e, moment);
            }
            state
                .metrics
                .tokens_issued
                .get_or_create(&crate::metrics::GrantLabels { grant: "implicit" })
                .inc();
            let expires = token.expires_in.to_string();
            let mut pairs = vec![
                ("access_token", token.access_token.as_str()),
                ("token_type", "bearer"),
                ("expires_in", expires.as_str()),
                ("scope", scope.as_str()),
            ];
            if let Some(s) = &req.state {
                pairs.push(("state", s));
            }
            pairs.push(("iss", &state.issuer));
            authz::append_to_uri(&req.redirect_uri, &pairs, req.response_mode)
        }
    };
    let mut res = Redirect::to(&location).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    res
}
