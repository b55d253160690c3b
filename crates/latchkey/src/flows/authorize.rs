//! `GET /ap/oa` and `/oauth2/authorize` with the consent page (RFC 6749 4.1.1-4.1.2 and 4.2, RFC 9207, OpenID
//! Connect Core 3.1.2; SPEC 2.1). Client and return URL problems are shown on a page and never redirected;
//! everything else is redirected to the registered URL with `state` and `iss`, except that an unverified app's
//! errors before the customer did anything are shown on a page with a link to follow (RFC 9700 4.11.2). A public
//! app whose return URL cannot prove which app receives it (loopback, private-use scheme) is always confirmed by
//! the customer (RFC 8252 8.6).
//!
//! The flow decides and commits; it returns an [`AuthorizeOutcome`] that `web::browser::authorize` turns into a
//! redirect or a page. The browser's own proofs (the CSRF token, the fresh-sign-in marker bound to the browser
//! cookie) are checked there, before the flow is called.

use crate::app::AppState;
use crate::config::ScopeSetting;
use crate::flows::error::Failure;
use crate::flows::SignedIn;
use crate::store::{Client, NewAuthCode, User};
use latchkey_core::authorize::{
    self as authz, AuthorizeRequest, PageError, RedirectError, ResponseType,
};
use latchkey_core::error::{ErrorCode, OAuthError};
use latchkey_core::params::Params;
use latchkey_core::scope::{ScopeKind, Scopes};
use latchkey_core::secret::{self, Kind, Stamp};
use latchkey_core::{ids, redirect, AUTH_CODE_TTL_SECS, CONSENT_PAGE_TTL_SECS};
use std::collections::BTreeMap;

/// What an authorization request (or its consent form) comes to.
#[derive(Debug)]
pub enum AuthorizeOutcome {
    /// Back to the app with its code or token (a redirect no cache may keep).
    Issued { location: String },
    /// Back to the app with an error (the exact error redirect).
    ErrorRedirect { location: String },
    /// An unverified app's error before anyone acted on the request: shown, with a link to follow
    /// (RFC 9700 4.11.2).
    Notice(ErrorNotice),
    /// Sign in first, then come back to this authorization request (`request`, its query string as received).
    /// With `fresh_since`, a fresh sign-in was asked for at that time (`prompt=login`, `max_age`, or a consent
    /// form posted after signing out): web binds a marker of it to the browser and the exact request.
    SignIn {
        request: String,
        login_hint: Option<String>,
        fresh_since: Option<i64>,
    },
    /// The app asks for the address, which is not verified yet (SPEC 2.8): the code page first, then back to this
    /// authorization request (`request`, its query string as received).
    Verify { request: String },
    /// Ask the customer (the consent page, or its "Continue to <app>?" form).
    Consent(ConsentView),
    /// The request cannot be answered to the app: its client or return URL is wrong, or it is unreadable.
    Refused(PageError),
    /// The consent form is too old or was shown to another session; nothing was granted.
    Expired { why: &'static str },
}

/// An unverified app's error, as its page shows it.
#[derive(Debug)]
pub struct ErrorNotice {
    pub app_name: String,
    pub code: ErrorCode,
    pub description: String,
    /// The return URL the link leads to.
    pub redirect_uri: String,
    /// The exact error redirect.
    pub location: String,
}

/// One line of the consent page: what the app will see, with its current value.
#[derive(Debug, Clone)]
pub struct ConsentItem {
    pub scope: String,
    pub label: String,
    /// The account's current value; empty for an operator's scope, which its label describes.
    pub value: String,
    /// Non-essential (`scope_data`): the customer may untick it.
    pub optional: bool,
}

/// What the consent page shows, and what its form carries back.
#[derive(Debug)]
pub struct ConsentView {
    /// "Continue to <app>?": the customer allowed it before (or it asks for nothing that needs consent), but its
    /// return URL cannot prove it is that app (RFC 8252 8.6).
    pub confirm: bool,
    /// Whether the operator verified the app (an unverified one is named as such).
    pub verified: bool,
    pub app_name: String,
    /// The app's logo, served by Latchkey (`flows::logo`): never a developer's URL.
    pub logo: Option<String>,
    pub privacy_url: String,
    pub user_email: String,
    /// The original authorization query string, re-validated when the form comes back.
    pub request: String,
    /// Binds the decision to the session that saw this page and to `request`.
    pub consent_token: String,
    pub items: Vec<ConsentItem>,
}

/// When an error is answered, which decides whether an unverified app's error may be redirected (SPEC 2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Moment {
    /// Nobody has interacted on this request yet: a malformed request, a storage failure on the way.
    BeforeInteraction,
    /// The answer the app asked for (`prompt=none`) or the one the customer gave (Cancel).
    Answer,
}

/// An error sent back to the app: the redirect to the return URL, or for an unverified app before any
/// interaction, the notice naming the app, the error and where the link goes (no open redirector,
/// RFC 9700 4.11.2).
fn redirect_error(
    state: &AppState,
    client: &Client,
    e: &RedirectError,
    moment: Moment,
) -> AuthorizeOutcome {
    let location = authz::error_redirect(e, &state.issuer);
    if client.verified || moment == Moment::Answer {
        return AuthorizeOutcome::ErrorRedirect { location };
    }
    AuthorizeOutcome::Notice(ErrorNotice {
        app_name: client.name.clone(),
        code: e.error.code,
        description: e.error.description.clone(),
        redirect_uri: e.redirect_uri.clone(),
        location,
    })
}

fn redirect_with(
    state: &AppState,
    client: &Client,
    req: &AuthorizeRequest,
    error: OAuthError,
    moment: Moment,
) -> AuthorizeOutcome {
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

/// Parses and checks an authorization request; `Ok(Err(_))` is the answer to give instead. A storage failure
/// before the return URL is known to be the app's is a page (`Err`), never a redirect.
async fn validate(
    state: &AppState,
    query: &str,
) -> Result<Result<(Client, AuthorizeRequest), AuthorizeOutcome>, Failure> {
    let refused = |e| Ok(Err(AuthorizeOutcome::Refused(e)));
    let params = match Params::from_urlencoded(query.as_bytes()) {
        Ok(p) => p,
        Err(e) => return refused(PageError::Malformed(e.description)),
    };
    let client_id = match authz::client_id(&params) {
        Ok(id) => id,
        Err(e) => return refused(e),
    };
    if !ids::is_client_id(client_id) {
        return refused(PageError::UnknownClient);
    }
    let Some(client) = state.store.find_client(client_id).await? else {
        return refused(PageError::UnknownClient);
    };
    let requested = params.get("redirect_uri").ok().flatten();
    let client = super::sdk::with_relay(&state.issuer, client, requested);
    let (redirect_uri, sent) = match authz::redirect_uri(&params, &client.policy) {
        Ok(found) => found,
        Err(e) => return refused(e),
    };
    match authz::parse(
        &params,
        &client.policy,
        redirect_uri,
        sent,
        &state.known_scopes,
    ) {
        Ok(request) => Ok(Ok((client, request))),
        Err(e) => Ok(Err(redirect_error(
            state,
            &client,
            &e,
            Moment::BeforeInteraction,
        ))),
    }
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

/// `GET /ap/oa` for the raw query string `query`. `reauth_asked_at` is when Latchkey sent this browser to sign in
/// afresh for exactly this request, if the request carries a valid marker of that (checked by web: the marker is
/// bound to the browser): a session authenticated since then satisfies `prompt=login` and `max_age` (L4).
pub async fn authorize(
    state: &AppState,
    signed_in: Option<&SignedIn>,
    query: &str,
    reauth_asked_at: Option<i64>,
) -> Result<AuthorizeOutcome, Failure> {
    let (client, req) = match validate(state, query).await? {
        Ok(v) => v,
        Err(outcome) => return Ok(outcome),
    };
    let now = state.clock.now();
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
    let signed_in = match signed_in {
        Some(s) if fresh_enough(s) => s,
        _ if req.prompt.none => {
            return Ok(redirect_with(
                state,
                &client,
                &req,
                OAuthError::new(
                    ErrorCode::LoginRequired,
                    "The customer is not signed in, and prompt=none forbids asking : prompt",
                ),
                Moment::Answer,
            ))
        }
        _ => {
            let fresh_since = (req.prompt.login || req.max_age.is_some()).then_some(now);
            return Ok(AuthorizeOutcome::SignIn {
                request: query.to_owned(),
                login_hint: req.login_hint.clone(),
                fresh_since,
            });
        }
    };
    let user = &signed_in.session.user;
    if req.scopes.released().email && !user.email_verified {
        if req.prompt.none {
            return Ok(redirect_with(
                state,
                &client,
                &req,
                OAuthError::new(
                    ErrorCode::InteractionRequired,
                    "The customer's email address is not verified yet, and prompt=none forbids asking : prompt",
                ),
                Moment::Answer,
            ));
        }
        return Ok(AuthorizeOutcome::Verify {
            request: query.to_owned(),
        });
    }
    if req.scopes.needs_consent() {
        let remembered = match state
            .store
            .find_consent(&user.id, &client.policy.client_id)
            .await
        {
            Ok(c) => c.is_some_and(|c| req.scopes.is_subset(&Scopes::from_stored(&c.scopes))),
            Err(e) => {
                return Ok(store_failed(
                    state,
                    &client,
                    &req,
                    e,
                    Moment::BeforeInteraction,
                ))
            }
        };
        if !remembered || req.prompt.consent {
            if req.prompt.none {
                return Ok(redirect_with(
                    state,
                    &client,
                    &req,
                    OAuthError::new(
                        ErrorCode::ConsentRequired,
                        "The customer has not allowed these scopes, and prompt=none forbids asking : prompt",
                    ),
                    Moment::Answer,
                ));
            }
            return Ok(consent_page(state, signed_in, &client, &req, query, false));
        }
    }
    if must_confirm(state, &client, &req) {
        if req.prompt.none {
            return Ok(redirect_with(
                state,
                &client,
                &req,
                OAuthError::new(
                    ErrorCode::InteractionRequired,
                    "The customer must confirm apps on this device each time, and prompt=none forbids asking : prompt",
                ),
                Moment::Answer,
            ));
        }
        return Ok(consent_page(state, signed_in, &client, &req, query, true));
    }
    let scopes = req.scopes.clone();
    Ok(complete(
        state,
        &client,
        &req,
        signed_in,
        &scopes,
        Moment::BeforeInteraction,
    )
    .await)
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
    signed_in: &SignedIn,
    client: &Client,
    req: &AuthorizeRequest,
    query: &str,
    confirm: bool,
) -> AuthorizeOutcome {
    let user = &signed_in.session.user;
    let items = consent_items(
        &req.scopes,
        &req.optional_scopes,
        user,
        &state.config.scopes,
    );
    AuthorizeOutcome::Consent(ConsentView {
        confirm,
        verified: client.verified,
        app_name: client.name.clone(),
        logo: crate::flows::logo::src(client),
        privacy_url: client.privacy_url.clone(),
        user_email: user.email.clone(),
        request: query.to_owned(),
        consent_token: consent_token(state, signed_in, query),
        items,
    })
}

/// The customer's answer on the consent form (its CSRF token already checked by web).
#[derive(Debug, Default)]
pub struct ConsentAnswer {
    /// The authorization query string the page was shown for.
    pub request: String,
    pub consent_token: Option<String>,
    pub allow: bool,
    /// The optional items left ticked.
    pub shared: Vec<String>,
    /// The "Continue to <app>?" form: nothing new is allowed, so nothing is remembered.
    pub confirm: bool,
}

/// `POST /ap/oa/consent`: Allow or Cancel, bound to the session that saw the page.
pub async fn consent(
    state: &AppState,
    signed_in: Option<&SignedIn>,
    answer: ConsentAnswer,
) -> Result<AuthorizeOutcome, Failure> {
    let Some(signed_in) = signed_in else {
        // Signed out since the page was shown: whatever sign-in the request asked for, the one now is fresh.
        return Ok(AuthorizeOutcome::SignIn {
            request: answer.request,
            login_hint: None,
            fresh_since: Some(state.clock.now()),
        });
    };
    let token = answer.consent_token.as_deref().map_or(Stamp::Invalid, |t| {
        state.hasher.check_stamp(
            Kind::Consent,
            &[&signed_in.id_hash, answer.request.as_bytes()],
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
        return Ok(AuthorizeOutcome::Expired { why });
    }
    let (client, req) = match validate(state, &answer.request).await? {
        Ok(v) => v,
        Err(outcome) => return Ok(outcome),
    };
    if !answer.allow {
        return Ok(redirect_with(
            state,
            &client,
            &req,
            OAuthError::new(
                ErrorCode::AccessDenied,
                "The customer declined to allow the app",
            ),
            Moment::Answer,
        ));
    }
    let scopes = shared_scopes(&req.scopes, &req.optional_scopes, &answer.shared);
    if scopes.is_empty() {
        return Ok(redirect_with(
            state,
            &client,
            &req,
            OAuthError::new(
                ErrorCode::AccessDenied,
                "The customer shared nothing with the app",
            ),
            Moment::Answer,
        ));
    }
    let user = &signed_in.session.user;
    let now = state.clock.now();
    if !answer.confirm {
        if let Err(e) =
            remember_consent(state, &user.id, &client.policy.client_id, &scopes, now).await
        {
            return Ok(store_failed(state, &client, &req, e, Moment::Answer));
        }
    }
    Ok(complete(state, &client, &req, signed_in, &scopes, Moment::Answer).await)
}

/// A storage failure once the return URL is known: `temporarily_unavailable` when the database is unreachable or
/// overloaded and `server_error` otherwise (the one mapping decides and logs), redirected to the app as `moment`
/// allows: this is the protocol's answer, not a page's failure.
fn store_failed(
    state: &AppState,
    client: &Client,
    req: &AuthorizeRequest,
    e: crate::store::StoreError,
    moment: Moment,
) -> AuthorizeOutcome {
    redirect_with(state, client, req, Failure::Store(e).into_oauth(), moment)
}

/// Issues the code (or, for implicit, the token) and sends the browser back to the app; `moment` says whether the
/// customer acted on this request (a failure is then redirected even for an unverified app).
async fn complete(
    state: &AppState,
    client: &Client,
    req: &AuthorizeRequest,
    signed_in: &SignedIn,
    scopes: &Scopes,
    moment: Moment,
) -> AuthorizeOutcome {
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
    AuthorizeOutcome::Issued { location }
}
