//! The authorization code flow end to end (SPEC 2.1, 2.2, 2.4, 2.5, 4): a real server on a real socket, the
//! `oauth2` crate as the app, and the cookie-keeping browser filling Latchkey's real pages.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::*;
use latchkey_core::client::{ClientKind, Feature};
use latchkey_core::refresh::REUSE_GRACE_SECS;
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicTokenResponse, BasicTokenType,
};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientSecret, CsrfToken, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

const INVALID_TOKEN: &str = "The request has an invalid parameter : access_token";

// ---------------------------------------------------------------------------------------------------------------
// The vocabulary of this file

/// An authorization request without PKCE.
fn plain_request(client: &OAuthClient, scopes: &str, extra: &[(&str, &str)]) -> (String, String) {
    let mut request = client.authorize_url(CsrfToken::new_random);
    for scope in scopes.split(' ') {
        request = request.add_scope(Scope::new(scope.to_owned()));
    }
    for (k, v) in extra {
        request = request.add_extra_param(k.to_string(), v.to_string());
    }
    let (url, state) = request.url();
    (url.to_string(), state.secret().clone())
}

fn param(url: &Url, name: &str) -> Option<String> {
    Step::param(url, name)
}

fn fragment_param(url: &Url, name: &str) -> Option<String> {
    url::form_urlencoded::parse(url.fragment().unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn is_consent_page(step: &Step) -> bool {
    matches!(step, Step::Page { status: 200, html, .. } if html.contains("would like to use your Latchkey account"))
}

fn is_signin_page(step: &Step) -> bool {
    matches!(step, Step::Page { status: 200, url, .. } if url.contains("/ap/signin"))
}

/// The redirect back to the app carries `state` and `iss`, and a code, which is returned.
fn code_from(w: &World, back: &Url, state: &str) -> String {
    assert!(
        back.as_str().starts_with(&w.shop.redirect_uri),
        "redirected to {back}, not to the registered return URL"
    );
    assert_eq!(param(back, "state").as_deref(), Some(state), "{back}");
    assert_eq!(param(back, "iss").as_deref(), Some(w.app.base.as_str()));
    assert_eq!(param(back, "error"), None, "{back}");
    param(back, "code").unwrap_or_else(|| panic!("no code in {back}"))
}

/// The browser goes through `url` (consenting if asked) and comes back with a code.
async fn code_through(w: &World, url: &str, state: &str) -> String {
    let back = login_through(&w.browser, url, EMAIL).await;
    code_from(w, &back, state)
}

/// The error an `oauth2` crate request got from the server.
fn oauth_error<RE: std::error::Error + 'static>(
    e: RequestTokenError<RE, BasicErrorResponse>,
) -> BasicErrorResponseType {
    match e {
        RequestTokenError::ServerResponse(r) => r.error().clone(),
        other => panic!("expected an OAuth error response, got {other:?}"),
    }
}

async fn exchange(
    client: &OAuthClient,
    code: &str,
    verifier: Option<&PkceCodeVerifier>,
) -> Result<BasicTokenResponse, BasicErrorResponseType> {
    let mut request = client.exchange_code(AuthorizationCode::new(code.to_owned()));
    if let Some(v) = verifier {
        request = request.set_pkce_verifier(PkceCodeVerifier::new(v.secret().clone()));
    }
    request
        .request_async(&http_client())
        .await
        .map_err(oauth_error)
}

async fn refresh(
    client: &OAuthClient,
    token: &RefreshToken,
) -> Result<BasicTokenResponse, BasicErrorResponseType> {
    client
        .exchange_refresh_token(token)
        .request_async(&http_client())
        .await
        .map_err(oauth_error)
}

/// The whole flow for `scopes`: authorize (PKCE S256), consent if asked, exchange.
async fn tokens_for(w: &World, scopes: &str) -> BasicTokenResponse {
    let (url, state, verifier) = pkce_request(&w.client, scopes, &[]);
    let code = code_through(w, &url, &state).await;
    exchange(&w.client, &code, Some(&verifier)).await.unwrap()
}

fn access(t: &BasicTokenResponse) -> String {
    t.access_token().secret().clone()
}

fn refresh_of(t: &BasicTokenResponse) -> RefreshToken {
    t.refresh_token()
        .expect("a refresh token in the token response")
        .clone()
}

/// The token is dead: tokeninfo (both ways) and the profile answer `invalid_token` in LWA's words.
async fn assert_token_dead(app: &TestApp, token: &str) {
    for (what, a) in [
        ("tokeninfo", tokeninfo(app, token).await),
        ("tokeninfo by header", tokeninfo_by_header(app, token).await),
        ("profile", profile(app, token, Presented::Bearer).await),
    ] {
        assert_eq!(a.status, 400, "{what}: {}", a.json);
        assert_eq!(a.json["error"], "invalid_token", "{what}");
        assert_eq!(a.json["error_description"], INVALID_TOKEN, "{what}");
    }
}

async fn assert_token_alive(app: &TestApp, token: &str) {
    let a = tokeninfo(app, token).await;
    assert_eq!(a.status, 200, "tokeninfo: {}", a.json);
}

/// An authorization request to `/ap/oa` built by hand, for URLs the `oauth2` crate would not send.
fn hand_made_request(app: &TestApp, client_id: &str, redirect_uri: &str) -> String {
    Url::parse_with_params(
        &app.url("/ap/oa"),
        [
            ("client_id", client_id),
            ("response_type", "code"),
            ("scope", "profile"),
            ("state", "st-1"),
            ("redirect_uri", redirect_uri),
        ],
    )
    .unwrap()
    .to_string()
}

/// The browser stays on Latchkey with a 400 page that says the return URL is not registered.
fn assert_not_registered_page(step: Step, what: &str) {
    let (status, url, html) = match step {
        Step::Page { status, url, html } => (status, url, html),
        Step::LeftTo(u) => panic!("{what}: the browser was redirected to {u}"),
    };
    assert_eq!(status, 400, "{what}: {html}");
    assert!(
        url.contains("/ap/oa?"),
        "{what}: the browser moved to {url}"
    );
    assert!(
        html.contains("not registered") && html.contains("redirect_uri"),
        "{what}: the page does not explain the return URL is not registered:\n{html}"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// 1. The flow itself

#[tokio::test]
async fn code_flow_with_pkce_s256_signs_in_consents_and_issues_lwa_tokens() {
    let app = spawn_app().await;
    let shop = app.register_app(|_| {}).await;
    let client = app.oauth_client(&shop);
    app.create_user(EMAIL, NAME, None).await;
    let (url, state, verifier) = pkce_request(&client, "profile", &[]);

    let browser = app.browser();
    let signin = browser.open(&url).await;
    assert!(is_signin_page(&signin), "{signin:?}");
    let consent = browser.sign_in_on(signin, EMAIL, PASSWORD).await;
    let back = browser.consent_on(consent, true, &[]).await.left_to();
    assert!(
        back.as_str().starts_with("http://127.0.0.1/callback?"),
        "{back}"
    );
    assert_eq!(param(&back, "state").as_deref(), Some(state.as_str()));
    assert_eq!(param(&back, "iss").as_deref(), Some(app.base.as_str()));
    assert_eq!(param(&back, "scope").as_deref(), Some("profile"));
    let code = param(&back, "code").unwrap();

    let token = exchange(&client, &code, Some(&verifier)).await.unwrap();
    assert_eq!(*token.token_type(), BasicTokenType::Bearer);
    assert_eq!(token.expires_in(), Some(Duration::from_secs(3600)));
    assert_eq!(
        token
            .scopes()
            .map(|s| s.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
        Some(vec!["profile".to_string()])
    );
    let access = access(&token);
    assert!(
        access.starts_with("Atza|") && access.len() >= 5 + 43,
        "{access}"
    );
    let refresh = refresh_of(&token);
    assert!(refresh.secret().starts_with("Atzr|") && refresh.secret().len() >= 5 + 43);
    assert_token_alive(&app, &access).await;
}

#[tokio::test]
async fn token_response_has_lwa_shape_and_no_store_headers() {
    let w = World::new(|_| {}).await;
    let (url, state, verifier) = pkce_request(&w.client, "profile", &[]);
    let code = code_through(&w, &url, &state).await;
    let a = post_form(
        &w.app,
        "/auth/o2/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &w.shop.redirect_uri),
            ("client_id", &w.shop.client_id),
            ("client_secret", w.shop.secret.as_deref().unwrap()),
            ("code_verifier", verifier.secret()),
        ],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.json["token_type"], "bearer");
    assert_eq!(a.json["expires_in"].as_i64(), Some(3600), "{}", a.json);
    assert!(a.json["access_token"]
        .as_str()
        .unwrap()
        .starts_with("Atza|"));
    assert!(a.json["refresh_token"]
        .as_str()
        .unwrap()
        .starts_with("Atzr|"));
    assert_eq!(a.headers["cache-control"], "no-store");
    assert_eq!(a.headers["pragma"], "no-cache");
    assert!(a.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
}

// ---------------------------------------------------------------------------------------------------------------
// 2-4. Refresh rotation, reuse detection, code replay

#[tokio::test]
async fn refresh_rotates_the_refresh_token_and_the_new_one_works() {
    let w = World::new(|_| {}).await;
    let first = tokens_for(&w, "profile").await;
    let r1 = refresh_of(&first);
    w.app.state.clock.advance(60);

    let second = refresh(&w.client, &r1).await.unwrap();
    let r2 = refresh_of(&second);
    assert_ne!(r2.secret(), r1.secret(), "refresh must rotate");
    assert!(r2.secret().starts_with("Atzr|"));
    assert_ne!(access(&second), access(&first));
    assert_eq!(second.expires_in(), Some(Duration::from_secs(3600)));
    assert_token_alive(&w.app, &access(&second)).await;

    // Rotation does not end the access token issued before: it lives until its own expiry.
    let old = tokeninfo(&w.app, &access(&first)).await;
    assert_eq!(old.status, 200, "{}", old.json);
    let exp = old.json["exp"].as_i64().unwrap();
    assert_eq!(exp, 3540, "its own expiry, 60 s on");

    // The new refresh token works and rotates again.
    let third = refresh(&w.client, &r2).await.unwrap();
    let r3 = refresh_of(&third);
    assert_ne!(r3.secret(), r2.secret());

    // Presenting r2 again within the grace window (a client's parallel refresh) is refused without revoking.
    assert_eq!(
        refresh(&w.client, &r2).await.unwrap_err(),
        BasicErrorResponseType::InvalidGrant
    );
    assert_token_alive(&w.app, &access(&third)).await;
    let fourth = refresh(&w.client, &r3).await.unwrap();

    // The first access token expires at its own time; the later ones do not go with it.
    w.app.state.clock.advance(3600 - 60 + 1);
    assert_token_dead(&w.app, &access(&first)).await;
    assert_token_alive(&w.app, &access(&fourth)).await;
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_after_the_grace_window_revokes_the_family() {
    let w = World::new(|_| {}).await;
    let first = tokens_for(&w, "profile").await;
    let other_family = tokens_for(&w, "profile").await;
    let r1 = refresh_of(&first);
    let second = refresh(&w.client, &r1).await.unwrap();
    let r2 = refresh_of(&second);
    w.app.state.clock.advance(REUSE_GRACE_SECS + 5);

    // The stolen, rotated r1 comes back: refused, in LWA's words.
    let a = post_form(
        &w.app,
        "/auth/o2/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", r1.secret()),
            ("client_id", &w.shop.client_id),
            ("client_secret", w.shop.secret.as_deref().unwrap()),
        ],
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.json);
    assert_eq!(a.json["error"], "invalid_grant");
    assert_eq!(
        a.json["error_description"],
        "The request has an invalid grant parameter : refresh_token"
    );

    // ... and the whole family is gone: the newest refresh token and every access token.
    assert_eq!(
        refresh(&w.client, &r2).await.unwrap_err(),
        BasicErrorResponseType::InvalidGrant
    );
    assert_token_dead(&w.app, &access(&first)).await;
    assert_token_dead(&w.app, &access(&second)).await;

    // Another grant of the same customer and app is another family and lives on.
    assert_token_alive(&w.app, &access(&other_family)).await;
    refresh(&w.client, &refresh_of(&other_family))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_replayed_code_is_invalid_grant_and_revokes_what_it_issued() {
    let w = World::new(|_| {}).await;
    let (url, state, verifier) = pkce_request(&w.client, "profile", &[]);
    let code = code_through(&w, &url, &state).await;
    let first = exchange(&w.client, &code, Some(&verifier)).await.unwrap();
    assert_token_alive(&w.app, &access(&first)).await;

    let replay = post_form(
        &w.app,
        "/auth/o2/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &w.shop.redirect_uri),
            ("client_id", &w.shop.client_id),
            ("client_secret", w.shop.secret.as_deref().unwrap()),
            ("code_verifier", verifier.secret()),
        ],
    )
    .await;
    assert_eq!(replay.status, 400, "{}", replay.json);
    assert_eq!(replay.json["error"], "invalid_grant");
    assert_eq!(
        replay.json["error_description"],
        "The request has an invalid grant parameter : code"
    );

    assert_token_dead(&w.app, &access(&first)).await;
    assert_eq!(
        refresh(&w.client, &refresh_of(&first)).await.unwrap_err(),
        BasicErrorResponseType::InvalidGrant
    );
}

#[tokio::test]
async fn a_used_code_revokes_only_when_its_own_app_replays_it_with_proof() {
    let w = World::new(|_| {}).await;
    let other = w.app.register_app(|i| i.kind = ClientKind::Public).await;
    let (url, state, verifier) = pkce_request(&w.client, "profile", &[]);
    let code = code_through(&w, &url, &state).await;
    let first = exchange(&w.client, &code, Some(&verifier)).await.unwrap();
    let replay = |client_id: &str, secret: Option<&str>, verifier: Option<&str>| {
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.clone()),
            ("redirect_uri", w.shop.redirect_uri.clone()),
            ("client_id", client_id.to_owned()),
        ];
        if let Some(s) = secret {
            form.push(("client_secret", s.to_owned()));
        }
        if let Some(v) = verifier {
            form.push(("code_verifier", v.to_owned()));
        }
        form
    };
    let app = &w.app;
    let send = |form: Vec<(&'static str, String)>| async move {
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let res = post_form(app, "/auth/o2/token", &pairs).await;
        assert_eq!(res.status, 400, "{}", res.json);
        assert_eq!(res.json["error"], "invalid_grant", "{}", res.json);
    };

    // The leaked code in anyone else's hands is only invalid_grant: another (public) app, even with the
    // verifier; or the shop's own id without its secret and without the verifier, or with a wrong one.
    send(replay(&other.client_id, None, Some(verifier.secret()))).await;
    send(replay(&w.shop.client_id, None, None)).await;
    let wrong = oauth2::PkceCodeChallenge::new_random_sha256().1;
    send(replay(&w.shop.client_id, None, Some(wrong.secret()))).await;
    assert_token_alive(&w.app, &access(&first)).await;

    // The shop itself, proved by the PKCE verifier the code is bound to: everything the code issued ends.
    send(replay(&w.shop.client_id, None, Some(verifier.secret()))).await;
    assert_token_dead(&w.app, &access(&first)).await;
    assert_eq!(
        refresh(&w.client, &refresh_of(&first)).await.unwrap_err(),
        BasicErrorResponseType::InvalidGrant
    );
}

// ---------------------------------------------------------------------------------------------------------------
// 5-6. Profile and tokeninfo

#[tokio::test]
async fn profile_returns_the_fields_the_scopes_allow_however_the_token_is_presented() {
    let w = World::new(|_| {}).await;
    let mut user_ids = Vec::new();
    let table: &[(&str, &[&str])] = &[
        ("profile", &["email", "name", "user_id"]),
        ("profile:user_id", &["user_id"]),
        (
            "profile postal_code",
            &["email", "name", "postal_code", "user_id"],
        ),
        ("postal_code", &["postal_code", "user_id"]),
        // The address alone, as the consent page says it shares (`Scopes::released`).
        ("email", &["email", "user_id"]),
    ];
    for (scopes, fields) in table {
        let token = access(&tokens_for(&w, scopes).await);
        let mut seen: Option<Value> = None;
        for how in [Presented::Bearer, Presented::Query, Presented::AmzHeader] {
            let a = profile(&w.app, &token, how).await;
            assert_eq!(a.status, 200, "{scopes} {how:?}: {}", a.json);
            let keys: Vec<&str> = a
                .json
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let mut keys = keys;
            keys.sort_unstable();
            assert_eq!(keys, *fields, "{scopes} {how:?}");
            if let Some(prev) = &seen {
                assert_eq!(&a.json, prev, "{scopes}: {how:?} answers differently");
            }
            seen = Some(a.json);
        }
        let p = seen.unwrap();
        if fields.contains(&"name") {
            assert_eq!(p["name"], NAME);
        }
        if fields.contains(&"email") {
            assert_eq!(p["email"], EMAIL);
        }
        if fields.contains(&"postal_code") {
            assert_eq!(p["postal_code"], POSTAL_CODE);
        }
        let user_id = p["user_id"].as_str().unwrap().to_owned();
        assert!(user_id.starts_with("lk1.account."), "{user_id}");
        user_ids.push(user_id);
    }
    user_ids.dedup();
    assert_eq!(user_ids.len(), 1, "one app sees one user_id: {user_ids:?}");

    // The Bearer scheme is case-insensitive.
    let token = access(&tokens_for(&w, "profile").await);
    let res = w
        .app
        .api()
        .get(w.app.url("/user/profile"))
        .header("authorization", format!("bEaReR {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // A token without a profile scope is insufficient_scope.
    let openid_only = access(&tokens_for(&w, "openid").await);
    let a = profile(&w.app, &openid_only, Presented::Bearer).await;
    assert_eq!(a.status, 403, "{}", a.json);
    assert_eq!(a.json["error"], "insufficient_scope");
}

#[tokio::test]
async fn tokeninfo_describes_the_token_and_counts_down_to_expiry() {
    let w = World::new(|_| {}).await;
    let token = access(&tokens_for(&w, "profile").await);
    let issued_around = w.app.state.clock.now();
    let user_id = profile(&w.app, &token, Presented::Bearer).await.json["user_id"].clone();

    let info = tokeninfo(&w.app, &token).await;
    assert_eq!(info.status, 200, "{}", info.json);
    assert_eq!(info.json["aud"], w.shop.client_id.as_str());
    assert_eq!(info.json["app_id"], w.shop.app_id.as_str());
    assert_eq!(info.json["iss"], w.app.base.as_str());
    assert_eq!(info.json["user_id"], user_id);
    assert_eq!(info.json["scope"], "profile");
    // The clock is frozen: no second passes unless the test says so.
    let iat = info.json["iat"].as_i64().unwrap();
    assert_eq!(iat, issued_around, "iat");
    let exp = info.json["exp"].as_i64().unwrap();
    assert_eq!(exp, 3600, "exp is the seconds remaining");
    assert_eq!(tokeninfo_by_header(&w.app, &token).await.json, info.json);

    w.app.state.clock.advance(1000);
    let later = tokeninfo(&w.app, &token).await;
    assert_eq!(later.json["iat"].as_i64(), Some(iat));
    let exp = later.json["exp"].as_i64().unwrap();
    assert_eq!(exp, 2600, "exp counts down");

    // Alive up to its last second, dead at the 3600th.
    w.app.state.clock.advance(2599);
    assert_eq!(
        tokeninfo(&w.app, &token).await.json["exp"].as_i64(),
        Some(1)
    );
    w.app.state.clock.advance(1);
    assert_token_dead(&w.app, &token).await;

    // Tokens that never were.
    assert_token_dead(&w.app, "Atza|not-a-token").await;
    assert_token_dead(&w.app, "garbage").await;
}

// ---------------------------------------------------------------------------------------------------------------
// 7. Consent

#[tokio::test]
async fn consent_is_remembered_for_the_same_scopes() {
    let w = World::new(|_| {}).await;
    let (url, state, _) = pkce_request(&w.client, "profile", &[]);
    let step = w.browser.open(&url).await;
    assert!(is_consent_page(&step), "the first time asks: {step:?}");
    let back = w.browser.consent_on(step, true, &[]).await.left_to();
    code_from(&w, &back, &state);

    let (url, state, verifier) = pkce_request(&w.client, "profile", &[]);
    let back = w.browser.open(&url).await.left_to();
    let code = code_from(&w, &back, &state);
    exchange(&w.client, &code, Some(&verifier)).await.unwrap();

    // A narrower request is covered too.
    let (url, state, _) = pkce_request(&w.client, "profile:user_id", &[]);
    let back = w.browser.open(&url).await.left_to();
    code_from(&w, &back, &state);
}

#[tokio::test]
async fn a_broader_scope_asks_for_consent_again() {
    let w = World::new(|_| {}).await;
    tokens_for(&w, "profile").await;
    let (url, state, _) = pkce_request(&w.client, "profile postal_code", &[]);
    let step = w.browser.open(&url).await;
    assert!(is_consent_page(&step), "{step:?}");
    let Step::Page { html, .. } = &step else {
        unreachable!()
    };
    assert!(
        html.contains(POSTAL_CODE),
        "the page shows the value asked for"
    );
    let back = w.browser.consent_on(step, true, &[]).await.left_to();
    code_from(&w, &back, &state);
    assert_eq!(
        param(&back, "scope").as_deref(),
        Some("postal_code profile")
    );
}

#[tokio::test]
async fn cancel_on_the_consent_page_is_access_denied_with_state() {
    let w = World::new(|_| {}).await;
    let (url, state, _) = pkce_request(&w.client, "profile", &[]);
    let step = w.browser.open(&url).await;
    let back = w.browser.consent_on(step, false, &[]).await.left_to();
    assert!(back.as_str().starts_with(&w.shop.redirect_uri), "{back}");
    assert_eq!(param(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&back, "state").as_deref(), Some(state.as_str()));
    assert_eq!(param(&back, "iss").as_deref(), Some(w.app.base.as_str()));
    assert_eq!(param(&back, "code"), None);

    // Nothing was remembered: the next request asks again.
    let (url, _, _) = pkce_request(&w.client, "profile", &[]);
    assert!(is_consent_page(&w.browser.open(&url).await));
}

#[tokio::test]
async fn an_unticked_optional_scope_is_left_out_of_the_grant() {
    let w = World::new(|_| {}).await;
    let scope_data = r#"{"postal_code":{"essential":false}}"#;
    let (url, state, verifier) = pkce_request(
        &w.client,
        "profile postal_code",
        &[("scope_data", scope_data)],
    );
    let step = w.browser.open(&url).await;
    let Step::Page { html, .. } = &step else {
        panic!("expected the consent page, got {step:?}")
    };
    assert!(
        html.contains(r#"name="share" value="postal_code""#),
        "postal_code can be unticked:\n{html}"
    );
    assert!(
        !html.contains(r#"name="share" value="profile""#),
        "profile is essential"
    );
    let back = w
        .browser
        .consent_on(step, true, &["postal_code"])
        .await
        .left_to();
    let code = code_from(&w, &back, &state);
    assert_eq!(param(&back, "scope").as_deref(), Some("profile"));

    let token = access(&exchange(&w.client, &code, Some(&verifier)).await.unwrap());
    assert_eq!(tokeninfo(&w.app, &token).await.json["scope"], "profile");
    let p = profile(&w.app, &token, Presented::Bearer).await.json;
    assert_eq!(p["name"], NAME);
    assert!(p.get("postal_code").is_none(), "{p}");

    // The declined scope was not remembered as consented.
    let (url, _, _) = pkce_request(&w.client, "profile postal_code", &[]);
    assert!(is_consent_page(&w.browser.open(&url).await));
}

#[tokio::test]
async fn only_profile_user_id_needs_no_consent_page() {
    let w = World::new(|_| {}).await;
    let (url, state, verifier) = pkce_request(&w.client, "profile:user_id", &[]);
    let back = w.browser.open(&url).await.left_to();
    let code = code_from(&w, &back, &state);
    let token = access(&exchange(&w.client, &code, Some(&verifier)).await.unwrap());
    let p = profile(&w.app, &token, Presented::Bearer).await.json;
    assert!(p["user_id"].as_str().unwrap().starts_with("lk1.account."));
    assert!(p.get("email").is_none());
}

// ---------------------------------------------------------------------------------------------------------------
// 8. PKCE

#[tokio::test]
async fn a_code_bound_to_a_challenge_needs_the_right_verifier() {
    let w = World::new(|_| {}).await;
    let (url, state, verifier) = pkce_request(&w.client, "profile", &[]);
    let code = code_through(&w, &url, &state).await;

    assert_eq!(
        exchange(&w.client, &code, None).await.unwrap_err(),
        BasicErrorResponseType::InvalidGrant,
        "a secret alone does not redeem a PKCE-bound code"
    );
    let (_, wrong) = PkceCodeChallenge::new_random_sha256();
    let a = post_form(
        &w.app,
        "/auth/o2/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &w.shop.redirect_uri),
            ("client_id", &w.shop.client_id),
            ("client_secret", w.shop.secret.as_deref().unwrap()),
            ("code_verifier", wrong.secret()),
        ],
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.json);
    assert_eq!(a.json["error"], "invalid_grant");
    assert_eq!(
        a.json["error_description"],
        "The request has an invalid grant parameter : code_verifier"
    );
    // Presenting the challenge itself (as if it were plain) does not pass an S256 binding.
    let challenge = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
    let as_plain = PkceCodeVerifier::new(challenge.as_str().to_owned());
    assert_eq!(
        exchange(&w.client, &code, Some(&as_plain))
            .await
            .unwrap_err(),
        BasicErrorResponseType::InvalidGrant
    );
    exchange(&w.client, &code, Some(&verifier)).await.unwrap();
}

#[tokio::test]
async fn a_verifier_for_a_code_without_challenge_is_a_downgrade() {
    let w = World::new(|_| {}).await;
    let (url, state) = plain_request(&w.client, "profile", &[]);
    let code = code_through(&w, &url, &state).await;
    let (_, verifier) = PkceCodeChallenge::new_random_sha256();
    assert_eq!(
        exchange(&w.client, &code, Some(&verifier))
            .await
            .unwrap_err(),
        BasicErrorResponseType::InvalidGrant
    );
}

#[tokio::test]
async fn plain_pkce_is_refused_unless_the_app_opted_in() {
    let w = World::new(|_| {}).await;
    let verifier = "p".repeat(50);
    let (url, state) = plain_request(
        &w.client,
        "profile",
        &[
            ("code_challenge", &verifier),
            ("code_challenge_method", "plain"),
        ],
    );
    let back = w.browser.open(&url).await.left_to();
    assert!(back.as_str().starts_with(&w.shop.redirect_uri), "{back}");
    assert_eq!(param(&back, "error").as_deref(), Some("invalid_request"));
    assert_eq!(param(&back, "state").as_deref(), Some(state.as_str()));
    assert_eq!(param(&back, "iss").as_deref(), Some(w.app.base.as_str()));
    assert_eq!(param(&back, "code"), None);

    // Without a method, Latchkey does not default to plain for such apps either.
    let (url, _) = plain_request(&w.client, "profile", &[("code_challenge", &verifier)]);
    let back = w.browser.open(&url).await.left_to();
    assert_eq!(param(&back, "error").as_deref(), Some("invalid_request"));
}

#[tokio::test]
async fn plain_pkce_works_for_apps_that_opted_in_for_lwa_compatibility() {
    let w = World::new(|input| input.features.insert(Feature::PlainPkce)).await;
    let verifier = "p".repeat(50);
    let (url, state) = plain_request(
        &w.client,
        "profile",
        &[
            ("code_challenge", &verifier),
            ("code_challenge_method", "plain"),
        ],
    );
    let code = code_through(&w, &url, &state).await;
    exchange(&w.client, &code, Some(&PkceCodeVerifier::new(verifier)))
        .await
        .unwrap();

    // LWA's default: a challenge without a method is plain.
    let raw = "b".repeat(50);
    let (url, state) = plain_request(&w.client, "profile", &[("code_challenge", &raw)]);
    let code = code_through(&w, &url, &state).await;
    let wrong = PkceCodeVerifier::new("c".repeat(50));
    assert_eq!(
        exchange(&w.client, &code, Some(&wrong)).await.unwrap_err(),
        BasicErrorResponseType::InvalidGrant
    );
    exchange(&w.client, &code, Some(&PkceCodeVerifier::new(raw)))
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------------------------------
// 9. Return URLs and unknown clients

#[tokio::test]
async fn unregistered_return_urls_and_near_misses_get_an_error_page_never_a_redirect() {
    let w = World::new(|input| {
        input.redirect_uris = vec![
            "https://shop.example/callback".into(),
            "http://127.0.0.1/callback".into(),
        ]
    })
    .await;
    let near_misses = [
        "https://shop.example/callback/",
        "https://shop.example/Callback",
        "https://SHOP.example/callback",
        "https://shop.example/callback?extra=1",
        "https://shop.example/callback#frag",
        "http://shop.example/callback",
        "https://shop.example:8443/callback",
        "https://shop.example:443/callback",
        "https://shop.example/call",
        "https://shop.example/callback/deeper",
        "https://shop.example/callback/../callback",
        "https://shop.example.evil.example/callback",
        "https://shop.example@evil.example/callback",
        "https://evil.example/callback",
        "http://localhost/callback",
        "http://localhost:5000/callback",
        "https://127.0.0.1:5000/callback",
        "http://127.0.0.1:5000/callback/",
        "http://127.0.0.1:5000/callback?x=1",
        "http://[::1]:5000/callback",
        "http://127.1:5000/callback",
        "",
    ];
    let fresh = w.app.browser();
    for uri in near_misses {
        let url = hand_made_request(&w.app, &w.shop.client_id, uri);
        if uri.is_empty() {
            // An empty redirect_uri counts as absent: with two registered URLs the app must say which.
            let (status, _, html) = w.browser.open(&url).await.page();
            assert_eq!(status, 400, "{html}");
            assert!(html.contains("redirect_uri"), "{html}");
            continue;
        }
        assert_not_registered_page(w.browser.open(&url).await, uri);
        assert_not_registered_page(fresh.open(&url).await, uri);
    }

    // A repeated redirect_uri is refused on a page as well, even when both copies are registered.
    let url = format!(
        "{}&redirect_uri={}",
        hand_made_request(&w.app, &w.shop.client_id, "https://shop.example/callback"),
        "https%3A%2F%2Fshop.example%2Fcallback"
    );
    let (status, page_url, html) = w.browser.open(&url).await.page();
    assert_eq!(status, 400, "{page_url}: {html}");

    // The registered string itself works.
    let url = hand_made_request(&w.app, &w.shop.client_id, "https://shop.example/callback");
    let back = login_through(&w.browser, &url, EMAIL).await;
    assert!(
        back.as_str()
            .starts_with("https://shop.example/callback?code="),
        "{back}"
    );
}

#[tokio::test]
async fn an_unknown_client_gets_an_error_page_never_a_redirect() {
    let w = World::new(|_| {}).await;
    let unknown = format!("lk1.application-oa2-client.{}", "0".repeat(32));
    for (what, client_id) in [
        ("well-formed but unknown", unknown.as_str()),
        ("malformed", "amzn1.application-oa2-client.nope"),
        ("empty", ""),
    ] {
        let url = hand_made_request(&w.app, client_id, &w.shop.redirect_uri);
        let step = w.browser.open(&url).await;
        let (status, page_url, html) = match step {
            Step::Page { status, url, html } => (status, url, html),
            Step::LeftTo(u) => panic!("{what}: redirected to {u}"),
        };
        assert_eq!(status, 400, "{what}: {html}");
        assert!(page_url.contains("/ap/oa?"), "{what}: moved to {page_url}");
        assert!(
            html.contains("not registered") || html.contains("client_id"),
            "{what}: the page does not say what is wrong:\n{html}"
        );
    }
    let url = Url::parse_with_params(
        &w.app.url("/ap/oa"),
        [
            ("response_type", "code"),
            ("scope", "profile"),
            ("redirect_uri", w.shop.redirect_uri.as_str()),
        ],
    )
    .unwrap();
    let (status, _, html) = w.browser.open(url.as_str()).await.page();
    assert_eq!(status, 400);
    assert!(html.contains("client_id"), "{html}");
}

#[tokio::test]
async fn a_loopback_return_url_may_use_any_port() {
    let w = World::new(|_| {}).await;
    assert_eq!(w.shop.redirect_uri, "http://127.0.0.1/callback");
    let ported = "http://127.0.0.1:53123/callback";
    let client = w
        .app
        .oauth_client(&w.shop)
        .set_redirect_uri(RedirectUrl::new(ported.into()).unwrap());
    let (url, state, verifier) = pkce_request(&client, "profile", &[]);
    let back = login_through(&w.browser, &url, EMAIL).await;
    assert_eq!(back.port(), Some(53123), "{back}");
    assert!(back
        .as_str()
        .starts_with("http://127.0.0.1:53123/callback?"));
    assert_eq!(param(&back, "state").as_deref(), Some(state.as_str()));
    let code = param(&back, "code").unwrap();

    // The token request must repeat the port it used, not the registered string.
    assert_eq!(
        exchange(&w.client, &code, Some(&verifier))
            .await
            .unwrap_err(),
        BasicErrorResponseType::InvalidGrant
    );
    exchange(&client, &code, Some(&verifier)).await.unwrap();
}

// ---------------------------------------------------------------------------------------------------------------
// 10. Implicit grant

#[tokio::test]
async fn the_implicit_grant_works_for_apps_that_enabled_it() {
    let w = World::new(|input| input.features.insert(Feature::Implicit)).await;
    let (url, state) = w
        .client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("profile".into()))
        .use_implicit_flow()
        .url();
    let back = login_through(&w.browser, url.as_str(), EMAIL).await;
    assert!(
        back.as_str().starts_with("http://127.0.0.1/callback#"),
        "{back}"
    );
    assert_eq!(
        back.query(),
        None,
        "implicit answers travel in the fragment"
    );
    let token = fragment_param(&back, "access_token").unwrap();
    assert!(token.starts_with("Atza|"));
    assert_eq!(
        fragment_param(&back, "token_type").as_deref(),
        Some("bearer")
    );
    assert_eq!(fragment_param(&back, "expires_in").as_deref(), Some("3600"));
    assert_eq!(fragment_param(&back, "scope").as_deref(), Some("profile"));
    assert_eq!(
        fragment_param(&back, "state").as_deref(),
        Some(state.secret().as_str())
    );
    assert_eq!(
        fragment_param(&back, "iss").as_deref(),
        Some(w.app.base.as_str())
    );
    assert_eq!(fragment_param(&back, "refresh_token"), None);
    assert_eq!(fragment_param(&back, "code"), None);
    let p = profile(&w.app, &token, Presented::Bearer).await;
    assert_eq!(p.status, 200);
    assert_eq!(p.json["email"], EMAIL);
}

#[tokio::test]
async fn the_implicit_grant_is_refused_for_apps_that_did_not_enable_it() {
    let w = World::new(|_| {}).await;
    let (url, state) = w
        .client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("profile".into()))
        .use_implicit_flow()
        .url();
    let back = w.browser.open(url.as_str()).await.left_to();
    assert!(back.as_str().starts_with(&w.shop.redirect_uri), "{back}");
    // RFC 6749 4.2.2.1: the server supports the response type, this client may not use it.
    assert_eq!(
        fragment_param(&back, "error").as_deref(),
        Some("unauthorized_client"),
        "{back}"
    );
    assert_eq!(
        fragment_param(&back, "state").as_deref(),
        Some(state.secret().as_str())
    );
    assert_eq!(fragment_param(&back, "access_token"), None);

    // A response type Latchkey does not support at all.
    let (url, state) = plain_request(&w.client, "profile", &[]);
    let url = url.replace("response_type=code", "response_type=id_token");
    let back = w.browser.open(&url).await.left_to();
    assert_eq!(
        param(&back, "error").as_deref(),
        Some("unsupported_response_type"),
        "{back}"
    );
    assert_eq!(param(&back, "state").as_deref(), Some(state.as_str()));
}

/// The redirect back carries nothing in its query: the answer is in the fragment. Returns the fragment's `error`.
fn fragment_only(w: &World, back: &Url, state: &str) -> Option<String> {
    assert!(
        back.as_str()
            .starts_with(&format!("{}#", w.shop.redirect_uri)),
        "{back}"
    );
    assert_eq!(back.query(), None, "nothing in the query: {back}");
    assert_eq!(
        fragment_param(back, "state").as_deref(),
        Some(state),
        "{back}"
    );
    assert_eq!(
        fragment_param(back, "iss").as_deref(),
        Some(w.app.base.as_str()),
        "{back}"
    );
    fragment_param(back, "error")
}

#[tokio::test]
async fn response_mode_fragment_returns_the_code_and_every_later_error_in_the_fragment() {
    let w = World::new(|_| {}).await;
    // Through sign-in (which keeps the mode) and consent, the code comes back in the fragment and works.
    let (url, state, verifier) =
        pkce_request(&w.client, "profile", &[("response_mode", "fragment")]);
    let browser = w.app.browser();
    let back = login_through(&browser, &url, EMAIL).await;
    assert_eq!(fragment_only(&w, &back, &state), None, "{back}");
    assert_eq!(fragment_param(&back, "scope").as_deref(), Some("profile"));
    let code = fragment_param(&back, "code").unwrap_or_else(|| panic!("no code in {back}"));
    let token = exchange(&w.client, &code, Some(&verifier)).await.unwrap();
    let p = profile(&w.app, &access(&token), Presented::Bearer).await;
    assert_eq!(p.json["email"], EMAIL);

    // Cancel on the consent page: access_denied, in the fragment.
    let (url, state, _) = pkce_request(
        &w.client,
        "profile postal_code",
        &[("response_mode", "fragment")],
    );
    let consent = browser.open(&url).await;
    assert!(is_consent_page(&consent));
    let back = browser.consent_on(consent, false, &[]).await.left_to();
    assert_eq!(
        fragment_only(&w, &back, &state).as_deref(),
        Some("access_denied")
    );

    // prompt=none without a session: login_required, in the fragment.
    let (url, state, _) = pkce_request(
        &w.client,
        "profile",
        &[("response_mode", "fragment"), ("prompt", "none")],
    );
    let back = w.app.browser().open(&url).await.left_to();
    assert_eq!(
        fragment_only(&w, &back, &state).as_deref(),
        Some("login_required")
    );

    // A parse error after the mode: invalid_scope, in the fragment.
    let (url, state, _) = pkce_request(&w.client, "bogus", &[("response_mode", "fragment")]);
    let back = w.browser.open(&url).await.left_to();
    assert_eq!(
        fragment_only(&w, &back, &state).as_deref(),
        Some("invalid_scope")
    );

    // response_mode=query is the default for codes: the code in the query, no fragment.
    let (url, state, verifier) = pkce_request(&w.client, "profile", &[("response_mode", "query")]);
    let back = login_through(&w.browser, &url, EMAIL).await;
    assert_eq!(back.fragment(), None, "{back}");
    let code = code_from(&w, &back, &state);
    exchange(&w.client, &code, Some(&verifier)).await.unwrap();
}

#[tokio::test]
async fn response_modes_we_do_not_serve_and_query_for_tokens_are_invalid_request() {
    let w = World::new(|input| input.features.insert(Feature::Implicit)).await;
    for mode in [
        "form_post",
        "jwt",
        "query.jwt",
        "Fragment",
        "fragment query",
    ] {
        let (url, state, _) = pkce_request(&w.client, "profile", &[("response_mode", mode)]);
        let back = w.browser.open(&url).await.left_to();
        assert!(back.as_str().starts_with(&w.shop.redirect_uri), "{back}");
        assert_eq!(back.fragment(), None, "{mode}: the default mode, {back}");
        assert_eq!(
            param(&back, "error").as_deref(),
            Some("invalid_request"),
            "{mode}: {back}"
        );
        assert!(
            param(&back, "error_description")
                .unwrap()
                .contains("response_mode"),
            "{mode}: {back}"
        );
        assert_eq!(param(&back, "state").as_deref(), Some(state.as_str()));
        assert_eq!(param(&back, "iss").as_deref(), Some(w.app.base.as_str()));
        assert_eq!(param(&back, "code"), None);
    }
    // Sent twice, even with the same value.
    let (url, state, _) = pkce_request(
        &w.client,
        "profile",
        &[("response_mode", "query"), ("response_mode", "query")],
    );
    let back = w.browser.open(&url).await.left_to();
    assert_eq!(param(&back, "error").as_deref(), Some("invalid_request"));
    assert_eq!(param(&back, "state").as_deref(), Some(state.as_str()));

    // A token never travels in a query string: refused, and the refusal goes in the fragment.
    let implicit = |mode: &str| {
        let (url, state) = w
            .client
            .authorize_url(CsrfToken::new_random)
            .add_scope(Scope::new("profile".into()))
            .add_extra_param("response_mode", mode.to_owned())
            .use_implicit_flow()
            .url();
        (url.to_string(), state.secret().clone())
    };
    let (url, state) = implicit("query");
    let back = login_through(&w.browser, &url, EMAIL).await;
    assert_eq!(
        fragment_only(&w, &back, &state).as_deref(),
        Some("invalid_request")
    );
    assert!(fragment_param(&back, "error_description")
        .unwrap()
        .contains("response_mode"));
    assert_eq!(fragment_param(&back, "access_token"), None);
    // response_mode=fragment is the implicit default, and works.
    let (url, state) = implicit("fragment");
    let back = login_through(&w.browser, &url, EMAIL).await;
    assert_eq!(fragment_only(&w, &back, &state), None, "{back}");
    assert!(fragment_param(&back, "access_token")
        .unwrap()
        .starts_with("Atza|"));
}

/// SPEC 2.1: every authorization response is a 303 See Other, so that the browser follows it with a GET and
/// never re-sends the consent form to the app: the code, the implicit token, and errors, from `GET /ap/oa` and
/// from the consent form's POST.
#[tokio::test]
async fn authorization_responses_are_303_see_other() {
    let w = World::new(|input| input.features.insert(Feature::Implicit)).await;
    let see_other = |label: &str, res: &reqwest::Response, carries: &str| {
        assert_eq!(res.status(), 303, "{label}");
        let location = res.headers()["location"].to_str().unwrap();
        assert!(
            location.starts_with(&w.shop.redirect_uri),
            "{label}: {location}"
        );
        assert!(location.contains(carries), "{label}: {location}");
    };
    let get = |url: String| async { w.browser.http.get(url).send().await.unwrap() };

    // GET /ap/oa: the code (profile:user_id needs no consent), the implicit token, an error.
    let (url, _, _) = pkce_request(&w.client, "profile:user_id", &[]);
    see_other("code", &get(url).await, "?code=");
    let (url, _) = w
        .client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("profile:user_id".into()))
        .use_implicit_flow()
        .url();
    see_other("implicit", &get(url.to_string()).await, "#access_token=");
    let (url, _, _) = pkce_request(&w.client, "bogus", &[]);
    see_other("error", &get(url).await, "?error=invalid_scope");

    // POST /ap/oa/consent: Allow and Cancel.
    for (decision, carries) in [("allow", "?code="), ("cancel", "?error=access_denied")] {
        let (url, _, _) = pkce_request(&w.client, "profile", &[("prompt", "consent")]);
        let (status, page_url, html) = w.browser.open(&url).await.page();
        assert_eq!(status, 200, "consent page");
        let res = w
            .browser
            .submit_answer(
                &page_url,
                &html,
                "/ap/oa/consent",
                &[],
                Some(("decision", decision)),
                &[],
            )
            .await;
        see_other(decision, &res, carries);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// 11. Client authentication

#[tokio::test]
async fn a_public_client_must_use_pkce_and_gets_a_rotating_refresh_token() {
    let w = World::new(|input| input.kind = ClientKind::Public).await;
    assert_eq!(w.shop.secret, None);

    let (url, state) = plain_request(&w.client, "profile", &[]);
    let back = w.browser.open(&url).await.left_to();
    assert_eq!(param(&back, "error").as_deref(), Some("invalid_request"));
    assert_eq!(param(&back, "state").as_deref(), Some(state.as_str()));
    assert!(
        param(&back, "error_description")
            .unwrap()
            .contains("code_challenge"),
        "{back}"
    );

    let tokens = tokens_for(&w, "profile").await;
    let r1 = refresh_of(&tokens);
    let next = refresh(&w.client, &r1).await.unwrap();
    assert_ne!(refresh_of(&next).secret(), r1.secret());

    // A public client has no secret to present.
    let with_secret = w
        .app
        .oauth_client(&w.shop)
        .set_client_secret(ClientSecret::new("x".repeat(64)));
    assert_eq!(
        refresh(&with_secret, &refresh_of(&next)).await.unwrap_err(),
        BasicErrorResponseType::InvalidClient
    );
}

#[tokio::test]
async fn a_confidential_client_with_a_wrong_secret_is_invalid_client() {
    let w = World::new(|_| {}).await;
    let (url, state, verifier) = pkce_request(&w.client, "profile", &[]);
    let code = code_through(&w, &url, &state).await;

    let wrong = w
        .app
        .oauth_client(&w.shop)
        .set_client_secret(ClientSecret::new("y".repeat(64)));
    assert_eq!(
        exchange(&wrong, &code, Some(&verifier)).await.unwrap_err(),
        BasicErrorResponseType::InvalidClient,
        "HTTP Basic"
    );
    let a = post_form(
        &w.app,
        "/auth/o2/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &w.shop.redirect_uri),
            ("client_id", &w.shop.client_id),
            ("client_secret", &"y".repeat(64)),
            ("code_verifier", verifier.secret()),
        ],
    )
    .await;
    assert_eq!(a.status, 401, "{}", a.json);
    assert_eq!(a.json["error"], "invalid_client");
    assert!(a.headers.contains_key("www-authenticate"));

    // A wrong secret changes nothing: the right one still redeems the code.
    exchange(&w.client, &code, Some(&verifier)).await.unwrap();
}

#[tokio::test]
async fn a_confidential_client_without_its_secret_needs_pkce_and_gets_no_refresh_token() {
    let w = World::new(|_| {}).await;
    let secretless = {
        let mut shop = w.shop.clone();
        shop.secret = None;
        w.app.oauth_client(&shop)
    };

    let (url, state) = plain_request(&w.client, "profile", &[]);
    let code = code_through(&w, &url, &state).await;
    let a = post_form(
        &w.app,
        "/auth/o2/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &w.shop.redirect_uri),
            ("client_id", &w.shop.client_id),
        ],
    )
    .await;
    assert_eq!(a.status, 401, "{}", a.json);
    assert_eq!(a.json["error"], "invalid_client");

    // LWA's browser-side exchange: PKCE instead of the secret, and then no refresh token.
    let (url, state, verifier) = pkce_request(&w.client, "profile", &[]);
    let code = code_through(&w, &url, &state).await;
    let tokens = exchange(&secretless, &code, Some(&verifier)).await.unwrap();
    assert!(tokens.refresh_token().is_none());
    assert_token_alive(&w.app, &access(&tokens)).await;
}

// ---------------------------------------------------------------------------------------------------------------
// 12. Standard paths

#[tokio::test]
async fn the_standard_paths_behave_like_the_lwa_paths() {
    let w = World::new(|_| {}).await;
    let standard = w
        .app
        .oauth_client(&w.shop)
        .set_auth_uri(AuthUrl::new(w.app.url("/oauth2/authorize")).unwrap())
        .set_token_uri(TokenUrl::new(w.app.url("/oauth2/token")).unwrap());
    let (url, state, verifier) = pkce_request(&standard, "profile", &[]);
    assert!(url.contains("/oauth2/authorize?"));
    let step = w.browser.open(&url).await;
    assert!(is_consent_page(&step), "{step:?}");
    let back = w.browser.consent_on(step, true, &[]).await.left_to();
    let code = code_from(&w, &back, &state);
    let tokens = exchange(&standard, &code, Some(&verifier)).await.unwrap();
    assert!(access(&tokens).starts_with("Atza|"));
    assert_eq!(tokens.expires_in(), Some(Duration::from_secs(3600)));

    // Consent given through one path is remembered on the other.
    let (url, state, _) = pkce_request(&w.client, "profile", &[]);
    code_from(&w, &w.browser.open(&url).await.left_to(), &state);

    let next = refresh(&standard, &refresh_of(&tokens)).await.unwrap();
    assert_token_alive(&w.app, &access(&next)).await;

    // Replay and its revocation, at /oauth2/token.
    assert_eq!(
        exchange(&standard, &code, Some(&verifier))
            .await
            .unwrap_err(),
        BasicErrorResponseType::InvalidGrant
    );
    assert_token_dead(&w.app, &access(&next)).await;

    // Return URL problems are pages on /oauth2/authorize too.
    let url = hand_made_request(&w.app, &w.shop.client_id, "https://evil.example/cb")
        .replace("/ap/oa?", "/oauth2/authorize?");
    let (status, page_url, html) = w.browser.open(&url).await.page();
    assert_eq!(status, 400, "{page_url}");
    assert!(html.contains("not registered"));

    // And the `o2` segment of LWA paths ignores case.
    let fresh = tokens_for(&w, "profile").await;
    let odd_case = w
        .app
        .oauth_client(&w.shop)
        .set_token_uri(TokenUrl::new(w.app.url("/auth/O2/token")).unwrap());
    refresh(&odd_case, &refresh_of(&fresh)).await.unwrap();
}

// ---------------------------------------------------------------------------------------------------------------
// 13. prompt and max_age

#[tokio::test]
async fn prompt_login_asks_the_customer_to_sign_in_again() {
    let w = World::new(|_| {}).await;
    tokens_for(&w, "profile").await;
    let (url, state, verifier) = pkce_request(&w.client, "profile", &[("prompt", "login")]);
    let step = w.browser.open(&url).await;
    assert!(
        is_signin_page(&step),
        "prompt=login must show sign-in: {step:?}"
    );
    let back = w.browser.sign_in_on(step, EMAIL, PASSWORD).await.left_to();
    let code = code_from(&w, &back, &state);
    exchange(&w.client, &code, Some(&verifier)).await.unwrap();
}

#[tokio::test]
async fn prompt_none_answers_without_showing_any_page() {
    let w = World::new(|_| {}).await;

    // Not signed in.
    let stranger = w.app.browser();
    let (url, state, _) = pkce_request(&w.client, "profile", &[("prompt", "none")]);
    let back = stranger.open(&url).await.left_to();
    assert!(back.as_str().starts_with(&w.shop.redirect_uri), "{back}");
    assert_eq!(param(&back, "error").as_deref(), Some("login_required"));
    assert_eq!(param(&back, "state").as_deref(), Some(state.as_str()));
    assert_eq!(param(&back, "iss").as_deref(), Some(w.app.base.as_str()));

    // Signed in, but no consent yet.
    let back = w.browser.open(&url).await.left_to();
    assert_eq!(param(&back, "error").as_deref(), Some("consent_required"));
    assert_eq!(param(&back, "state").as_deref(), Some(state.as_str()));

    // Signed in and consented: a code, silently.
    tokens_for(&w, "profile").await;
    let (url, state, verifier) = pkce_request(&w.client, "profile", &[("prompt", "none")]);
    let code = code_from(&w, &w.browser.open(&url).await.left_to(), &state);
    exchange(&w.client, &code, Some(&verifier)).await.unwrap();
}

#[tokio::test]
async fn max_age_asks_for_a_fresh_sign_in_when_the_last_one_is_older() {
    let w = World::new(|_| {}).await;
    tokens_for(&w, "profile").await;
    w.app.state.clock.advance(120);

    let (url, state, _) = pkce_request(&w.client, "profile", &[("max_age", "600")]);
    code_from(&w, &w.browser.open(&url).await.left_to(), &state);

    let (url, state, verifier) = pkce_request(&w.client, "profile", &[("max_age", "60")]);
    let step = w.browser.open(&url).await;
    assert!(
        is_signin_page(&step),
        "a 120 s old sign-in is too old: {step:?}"
    );
    let back = w.browser.sign_in_on(step, EMAIL, PASSWORD).await.left_to();
    let code = code_from(&w, &back, &state);
    exchange(&w.client, &code, Some(&verifier)).await.unwrap();

    // The new sign-in is fresh enough.
    let (url, state, _) = pkce_request(&w.client, "profile", &[("max_age", "60")]);
    code_from(&w, &w.browser.open(&url).await.left_to(), &state);
}

// ---------------------------------------------------------------------------------------------------------------
// 14. Disabled customers

#[tokio::test]
async fn a_disabled_customer_cannot_sign_in_and_their_tokens_stop_working() {
    for (engine, db) in each_db().await {
        let w = World::on(spawn_app_on(Arc::new(db)).await, |_| {}).await;
        let tokens = tokens_for(&w, "profile").await;
        let (url, state, verifier) = pkce_request(&w.client, "profile", &[]);
        let pending_code = code_through(&w, &url, &state).await;

        let now = w.app.state.clock.now();
        assert!(
            w.app
                .store()
                .set_user_disabled(EMAIL, true, now)
                .await
                .unwrap(),
            "{engine}"
        );

        assert_token_dead(&w.app, &access(&tokens)).await;
        assert_eq!(
            refresh(&w.client, &refresh_of(&tokens)).await.unwrap_err(),
            BasicErrorResponseType::InvalidGrant,
            "{engine}"
        );
        assert_eq!(
            exchange(&w.client, &pending_code, Some(&verifier))
                .await
                .unwrap_err(),
            BasicErrorResponseType::InvalidGrant,
            "{engine}: a code issued before the account was disabled"
        );

        // The session is over, and signing in again fails.
        let (url, _, _) = pkce_request(&w.client, "profile", &[]);
        let step = w.browser.open(&url).await;
        assert!(is_signin_page(&step), "{engine}: {step:?}");
        let (status, _, html) = w.browser.sign_in_on(step, EMAIL, PASSWORD).await.page();
        assert_eq!(status, 401, "{engine}: {html}");
        assert!(html.contains("not correct"), "{engine}: {html}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// More edges of the same flow

#[tokio::test]
async fn state_is_echoed_byte_for_byte_through_sign_in_and_consent() {
    let app = spawn_app().await;
    let shop = app.register_app(|_| {}).await;
    app.create_user(EMAIL, NAME, None).await;
    let state = "a b&c=d/é+%25<\"'>#?x";
    let url = Url::parse_with_params(
        &app.url("/ap/oa"),
        [
            ("client_id", shop.client_id.as_str()),
            ("response_type", "code"),
            ("scope", "profile"),
            ("state", state),
            ("redirect_uri", shop.redirect_uri.as_str()),
        ],
    )
    .unwrap();
    let back = login_through(&app.browser(), url.as_str(), EMAIL).await;
    assert_eq!(param(&back, "state").as_deref(), Some(state), "{back}");
    assert!(param(&back, "code").is_some());
}

#[tokio::test]
async fn a_code_expires_after_five_minutes_and_belongs_to_its_client() {
    let w = World::new(|_| {}).await;
    let other = w.app.register_app(|i| i.name = "Other Shop".into()).await;
    let other_client = w.app.oauth_client(&other);

    let (url, state, verifier) = pkce_request(&w.client, "profile", &[]);
    let code = code_through(&w, &url, &state).await;
    assert_eq!(
        exchange(&other_client, &code, Some(&verifier))
            .await
            .unwrap_err(),
        BasicErrorResponseType::InvalidGrant,
        "another app cannot redeem the code"
    );
    exchange(&w.client, &code, Some(&verifier)).await.unwrap();

    let (url, state, verifier) = pkce_request(&w.client, "profile", &[]);
    let code = code_through(&w, &url, &state).await;
    w.app.state.clock.advance(5 * 60 + 1);
    assert_eq!(
        exchange(&w.client, &code, Some(&verifier))
            .await
            .unwrap_err(),
        BasicErrorResponseType::InvalidGrant,
        "the code is older than five minutes"
    );
}

#[tokio::test]
async fn another_app_presenting_a_refresh_token_is_refused_without_revoking_it() {
    let w = World::new(|_| {}).await;
    let other = w.app.register_app(|i| i.name = "Other Shop".into()).await;
    let other_client = w.app.oauth_client(&other);
    let tokens = tokens_for(&w, "profile").await;
    let r1 = refresh_of(&tokens);
    let next = refresh(&w.client, &r1).await.unwrap();
    w.app.state.clock.advance(REUSE_GRACE_SECS + 5);

    for token in [&r1, &refresh_of(&next)] {
        assert_eq!(
            refresh(&other_client, token).await.unwrap_err(),
            BasicErrorResponseType::InvalidGrant
        );
    }
    assert_token_alive(&w.app, &access(&next)).await;
    refresh(&w.client, &refresh_of(&next)).await.unwrap();
}

/// The form fields of the form posting to `action` in `html`, as a browser would send them.
fn form_fields(html: &str, action: &str) -> Vec<(String, String)> {
    let doc = scraper::Html::parse_document(html);
    let form_sel = scraper::Selector::parse("form").unwrap();
    let input_sel = scraper::Selector::parse("input").unwrap();
    let form = doc
        .select(&form_sel)
        .find(|f| f.value().attr("action") == Some(action))
        .unwrap_or_else(|| panic!("no form posting to {action}"));
    form.select(&input_sel)
        .filter_map(|i| {
            let name = i.value().attr("name")?;
            Some((
                name.to_owned(),
                i.value().attr("value").unwrap_or("").to_owned(),
            ))
        })
        .collect()
}

#[tokio::test]
async fn max_age_zero_does_not_send_a_customer_who_just_signed_in_back_to_sign_in() {
    let w = World::new(|_| {}).await;
    tokens_for(&w, "profile").await;
    w.app.state.clock.advance(5);
    let (url, state, _) = pkce_request(&w.client, "profile", &[("max_age", "0")]);
    let (status, page_url, html) = w.browser.open(&url).await.page();
    assert!(page_url.contains("/ap/signin"), "{status} {page_url}");

    // Sign in, and arrive back at the authorization request a second later (a slow network).
    let mut fields = form_fields(&html, "/ap/signin");
    for (k, v) in &mut fields {
        match k.as_str() {
            "email" => *v = EMAIL.into(),
            "password" => *v = PASSWORD.into(),
            _ => {}
        }
    }
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&fields)
        .finish();
    let res = w
        .browser
        .http
        .post(w.app.url("/ap/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "a form answers with 303 See Other");
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    w.app.state.clock.advance(1);
    let back = w.browser.open(&location).await.left_to();
    code_from(&w, &back, &state);
}

#[tokio::test]
async fn prompt_consent_asks_again_even_when_consent_was_given() {
    let w = World::new(|_| {}).await;
    tokens_for(&w, "profile").await;
    let (url, state, verifier) = pkce_request(&w.client, "profile", &[("prompt", "consent")]);
    let step = w.browser.open(&url).await;
    assert!(is_consent_page(&step), "{step:?}");
    let back = w.browser.consent_on(step, true, &[]).await.left_to();
    let code = code_from(&w, &back, &state);
    exchange(&w.client, &code, Some(&verifier)).await.unwrap();
}
