//! `GET /ap/oa` and `/oauth2/authorize` with the consent page (RFC 6749 4.1.1-4.1.2 and 4.2, RFC 9207, OpenID
//! Connect Core 3.1.2; SPEC 2.1). Client and return URL problems are shown on a page and never redirected;
//! everything else is redirected to the registered URL with `state` and `iss`.

use crate::app::AppState;
use crate::store::{Client, NewAuthCode, User};
use crate::web::error::{self, Failure};
use crate::web::pages::{self, ConsentItem};
use crate::web::session::{Browser, SignedIn};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::authorize::{
    self as authz, AuthorizeRequest, PageError, RedirectError, ResponseType,
};
use latchkey_core::error::{ErrorCode, OAuthError};
use latchkey_core::params::Params;
use latchkey_core::scope::Scopes;
use latchkey_core::secret::{self, Kind};
use latchkey_core::{ids, AUTH_CODE_TTL_SECS};

fn page_error(e: PageError) -> Response {
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

fn redirect_error(state: &AppState, e: &RedirectError) -> Response {
    Redirect::to(&authz::error_redirect(e, &state.issuer)).into_response()
}

fn redirect_with(state: &AppState, req: &AuthorizeRequest, error: OAuthError) -> Response {
    redirect_error(
        state,
        &RedirectError {
            redirect_uri: req.redirect_uri.clone(),
            state: req.state.clone(),
            response_mode: req.response_mode,
            error,
        },
    )
}

/// Parses and checks an authorization request; `Err` is the response to send.
async fn validate(state: &AppState, query: &str) -> Result<(Client, AuthorizeRequest), Response> {
    let params = Params::from_urlencoded(query.as_bytes())
        .map_err(|e| page_error(PageError::Malformed(e.description)))?;
    let client_id = authz::client_id(&params).map_err(page_error)?;
    if !ids::is_client_id(client_id) {
        return Err(page_error(PageError::UnknownClient));
    }
    let client = match state.store.find_client(client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return Err(page_error(PageError::UnknownClient)),
        // The return URL is not known to be the app's yet: a page, never a redirect.
        Err(e) => return Err(error::page_error(e.into())),
    };
    let requested = params.get("redirect_uri").ok().flatten();
    let client = super::sdk::with_relay(&state.issuer, client, requested);
    let (redirect_uri, sent) = authz::redirect_uri(&params, &client.policy).map_err(page_error)?;
    let request = authz::parse(
        &params,
        &client.policy,
        redirect_uri,
        sent,
        &state.known_scopes,
    )
    .map_err(|e| redirect_error(state, &e))?;
    Ok((client, request))
}

/// Where to send the browser to sign in and come back: this request, without `prompt=login` and `max_age`, which
/// the sign-in honours (otherwise `max_age=0` would send the customer back to sign in once a second has passed).
fn signin_redirect(query: &str, login_hint: Option<&str>) -> Response {
    let pairs = url::form_urlencoded::parse(query.as_bytes()).into_owned();
    let mut again = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if k == "max_age" {
            continue;
        }
        if k == "prompt" {
            let rest: Vec<&str> = v
                .split(' ')
                .filter(|p| *p != "login" && !p.is_empty())
                .collect();
            if !rest.is_empty() {
                again.append_pair(&k, &rest.join(" "));
            }
        } else {
            again.append_pair(&k, &v);
        }
    }
    let return_to = format!("/ap/oa?{}", again.finish());
    let prefix = "/ap/signin?";
    let mut target = url::form_urlencoded::Serializer::for_suffix(prefix.to_owned(), prefix.len());
    target.append_pair("return_to", &return_to);
    if let Some(hint) = login_hint.filter(|h| h.contains('@')) {
        target.append_pair("email", hint);
    }
    let target = target.finish();
    Redirect::to(&target).into_response()
}

/// `GET /ap/oa`.
pub async fn authorize(state: &AppState, browser: &Browser, query: &str) -> Response {
    let (client, req) = match validate(state, query).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let now = state.clock.now();
    let fresh_enough = |s: &SignedIn| {
        req.max_age
            .is_none_or(|max| now - s.session.auth_time <= max)
    };
    let signed_in = match &browser.signed_in {
        Some(s) if !req.prompt.login && fresh_enough(s) => s,
        _ if req.prompt.none => {
            return redirect_with(
                state,
                &req,
                OAuthError::new(
                    ErrorCode::LoginRequired,
                    "The customer is not signed in, and prompt=none forbids asking : prompt",
                ),
            )
        }
        _ => return signin_redirect(query, req.login_hint.as_deref()),
    };
    let user = &signed_in.session.user;
    if req.scopes.needs_consent() {
        let remembered = match state
            .store
            .find_consent(&user.id, &client.policy.client_id)
            .await
        {
            Ok(c) => c.is_some_and(|c| req.scopes.is_subset(&Scopes::from_stored(&c.scopes))),
            Err(e) => return store_failed(state, &req, e),
        };
        if !remembered || req.prompt.consent {
            if req.prompt.none {
                return redirect_with(
                    state,
                    &req,
                    OAuthError::new(
                        ErrorCode::ConsentRequired,
                        "The customer has not allowed these scopes, and prompt=none forbids asking : prompt",
                    ),
                );
            }
            return consent_page(state, browser, signed_in, &client, &req, query);
        }
    }
    let scopes = req.scopes.clone();
    complete(state, &client, &req, signed_in, &scopes).await
}

fn item(scope: &str, user: &User, optional: bool) -> Option<ConsentItem> {
    let (label, value) = match scope {
        "profile" => (
            "Your name and email address",
            format!("{} · {}", user.name, user.email),
        ),
        "profile:user_id" => (
            "An identifier for your account",
            "a code that only this developer's apps can see".to_owned(),
        ),
        "postal_code" => (
            "Your postal code",
            user.postal_code
                .clone()
                .unwrap_or_else(|| "(none on your account)".into()),
        ),
        "email" => ("Your email address", user.email.clone()),
        _ => return None,
    };
    Some(ConsentItem {
        scope: scope.to_owned(),
        label,
        value,
        optional,
    })
}

/// What a consent page lists for `scopes`: essential items first, in the order people expect (who you are, how
/// to reach you, where), each with its current value; `optional` ones can be unticked.
pub fn consent_items(scopes: &Scopes, optional: &[String], user: &User) -> Vec<ConsentItem> {
    let mut items: Vec<ConsentItem> = scopes
        .iter()
        .filter_map(|s| item(s, user, optional.iter().any(|o| o == s)))
        .collect();
    let rank = |scope: &str| {
        ["profile", "profile:user_id", "email", "postal_code"]
            .iter()
            .position(|s| *s == scope)
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

fn consent_token(state: &AppState, signed_in: &SignedIn, request: &str) -> String {
    state
        .hasher
        .mac_b64(Kind::Consent, &[&signed_in.id_hash, request.as_bytes()])
}

fn consent_page(
    state: &AppState,
    browser: &Browser,
    signed_in: &SignedIn,
    client: &Client,
    req: &AuthorizeRequest,
    query: &str,
) -> Response {
    let user = &signed_in.session.user;
    let items = consent_items(&req.scopes, &req.optional_scopes, user);
    pages::render(
        StatusCode::OK,
        &pages::Consent {
            app_name: client.name.clone(),
            logo_url: client.logo_url.clone(),
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
}

impl ConsentForm {
    pub fn parse(body: &[u8]) -> ConsentForm {
        let mut form = ConsentForm {
            csrf: None,
            request: String::new(),
            consent_token: None,
            allow: false,
            shared: Vec::new(),
        };
        for (k, v) in url::form_urlencoded::parse(body) {
            match &*k {
                "csrf" => form.csrf = Some(v.into_owned()),
                "request" => form.request = v.into_owned(),
                "consent_token" => form.consent_token = Some(v.into_owned()),
                "decision" => form.allow = v == "allow",
                "share" => form.shared.push(v.into_owned()),
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
        return signin_redirect(&form.request, None);
    };
    let token_ok = form.consent_token.as_deref().is_some_and(|t| {
        state.hasher.verify_b64(
            Kind::Consent,
            &[&signed_in.id_hash, form.request.as_bytes()],
            t,
        )
    });
    if !token_ok {
        return pages::message(
            StatusCode::BAD_REQUEST,
            "This form has expired",
            &["This consent page was shown in another session. Go back to the app and sign in again."],
        );
    }
    let (client, req) = match validate(state, &form.request).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    if !form.allow {
        return redirect_with(
            state,
            &req,
            OAuthError::new(
                ErrorCode::AccessDenied,
                "The customer declined to allow the app",
            ),
        );
    }
    let scopes = shared_scopes(&req.scopes, &req.optional_scopes, &form.shared);
    if scopes.is_empty() {
        return redirect_with(
            state,
            &req,
            OAuthError::new(
                ErrorCode::AccessDenied,
                "The customer shared nothing with the app",
            ),
        );
    }
    let user = &signed_in.session.user;
    let now = state.clock.now();
    if let Err(e) = remember_consent(state, &user.id, &client.policy.client_id, &scopes, now).await
    {
        return store_failed(state, &req, e);
    }
    complete(state, &client, &req, signed_in, &scopes).await
}

/// A storage failure once the return URL is known: redirected, as `temporarily_unavailable` when the database is
/// unreachable or overloaded and `server_error` otherwise (the one mapping decides and logs).
fn store_failed(state: &AppState, req: &AuthorizeRequest, e: crate::store::StoreError) -> Response {
    redirect_with(state, req, Failure::Store(e).into_oauth())
}

/// Issues the code (or, for implicit, the token) and redirects back to the app.
async fn complete(
    state: &AppState,
    client: &Client,
    req: &AuthorizeRequest,
    signed_in: &SignedIn,
    scopes: &Scopes,
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
                return store_failed(state, req, e);
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
                Err(e) => return store_failed(state, req, e),
            };
            if let Err(e) = state.store.insert_grant(&grant).await {
                return store_failed(state, req, e);
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
