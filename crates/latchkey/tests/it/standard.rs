//! The standard endpoints around the token (SPEC 3, 2.7): introspection (RFC 7662), revocation (RFC 7009), the
//! client credentials grant seen from the resource side, CORS for registered origins, and discovery listing only
//! endpoints that answer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::*;
use latchkey_core::client::{ClientKind, Feature};
use latchkey_core::refresh::REUSE_GRACE_SECS;
use oauth2::basic::{BasicErrorResponseType, BasicTokenResponse};
use oauth2::{
    AccessToken, IntrospectionUrl, RefreshToken, RequestTokenError, TokenIntrospectionResponse,
    TokenResponse,
};
use serde_json::{json, Value};

const SHOP_ORIGIN: &str = "https://shop.example";

// ---------------------------------------------------------------------------------------------------------------
// The vocabulary of this file

async fn tokens(w: &World, scopes: &str) -> BasicTokenResponse {
    tokens_with(w, &w.client, scopes).await
}

fn access(t: &BasicTokenResponse) -> String {
    t.access_token().secret().clone()
}

fn refresh_of(t: &BasicTokenResponse) -> String {
    t.refresh_token()
        .expect("a refresh token in the token response")
        .secret()
        .clone()
}

async fn refresh(
    client: &OAuthClient,
    token: &str,
) -> Result<BasicTokenResponse, BasicErrorResponseType> {
    client
        .exchange_refresh_token(&RefreshToken::new(token.to_owned()))
        .request_async(&http_client())
        .await
        .map_err(|e| match e {
            RequestTokenError::ServerResponse(r) => r.error().clone(),
            other => panic!("expected an OAuth error response, got {other:?}"),
        })
}

/// How a request authenticates its client.
#[derive(Clone, Copy)]
enum Auth<'a> {
    /// `Authorization: Basic`.
    Basic(&'a RegisteredApp),
    /// `client_id` and `client_secret` in the body.
    Post(&'a RegisteredApp),
    /// `client_id` alone.
    IdOnly(&'a RegisteredApp),
    None,
}

/// `POST path` with a form body and the client authenticated as `auth`.
async fn post(app: &TestApp, path: &str, auth: Auth<'_>, form: &[(&str, &str)]) -> Answer {
    let mut pairs: Vec<(&str, &str)> = form.to_vec();
    let mut request = app.api().post(app.url(path));
    match auth {
        Auth::Basic(reg) => {
            request = request.basic_auth(&reg.client_id, reg.secret.as_deref());
        }
        Auth::Post(reg) => {
            pairs.push(("client_id", &reg.client_id));
            pairs.push(("client_secret", reg.secret.as_deref().unwrap()));
        }
        Auth::IdOnly(reg) => pairs.push(("client_id", &reg.client_id)),
        Auth::None => {}
    }
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&pairs)
        .finish();
    let res = request
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    answer(res).await
}

async fn introspect(app: &TestApp, auth: Auth<'_>, token: &str) -> Answer {
    post(app, "/oauth2/introspect", auth, &[("token", token)]).await
}

async fn revoke(app: &TestApp, auth: Auth<'_>, token: &str) -> Answer {
    post(app, "/oauth2/revoke", auth, &[("token", token)]).await
}

fn assert_inactive(a: &Answer, what: &str) {
    assert_eq!(a.status, 200, "{what}: {}", a.json);
    assert_eq!(a.json, json!({"active": false}), "{what}");
}

fn assert_error(a: &Answer, status: u16, error: &str, what: &str) {
    assert_eq!(a.status, status, "{what}: {}", a.json);
    assert_eq!(a.json["error"], error, "{what}");
}

async fn assert_alive(app: &TestApp, token: &str, what: &str) {
    let a = tokeninfo_by_header(app, token).await;
    assert_eq!(a.status, 200, "{what}: {}", a.json);
}

async fn assert_dead(app: &TestApp, token: &str, what: &str) {
    let a = tokeninfo_by_header(app, token).await;
    assert_error(&a, 400, "invalid_token", what);
}

// ---------------------------------------------------------------------------------------------------------------
// Introspection (RFC 7662)

#[tokio::test]
async fn the_owning_client_introspects_its_access_and_refresh_tokens() {
    let w = World::new(|_| {}).await;
    let issued_at = w.app.state.clock.now();
    let t = tokens(&w, "profile postal_code").await;
    let subject = tokeninfo_by_header(&w.app, &access(&t)).await.json["user_id"].clone();
    assert!(subject.as_str().unwrap().starts_with("lk1.account."));

    let a = introspect(&w.app, Auth::Basic(&w.shop), &access(&t)).await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.header("cache-control"), Some("no-store"));
    let iat = a.json["iat"].as_i64().unwrap();
    assert!((issued_at..issued_at + 5).contains(&iat), "{}", a.json);
    assert_eq!(
        a.json,
        json!({
            "active": true,
            "scope": "postal_code profile",
            "client_id": w.shop.client_id,
            "token_type": "Bearer",
            "exp": iat + w.app.state.config.access_token_ttl,
            "iat": iat,
            "sub": subject,
            "aud": w.shop.client_id,
            "iss": w.app.base,
        })
    );

    // client_secret_post, and a hint naming the other type or no type at all, change nothing.
    for hint in ["refresh_token", "bogus"] {
        let a = post(
            &w.app,
            "/oauth2/introspect",
            Auth::Post(&w.shop),
            &[("token", &access(&t)), ("token_type_hint", hint)],
        )
        .await;
        assert_eq!(a.json["active"], true, "hint {hint}: {}", a.json);
    }

    let r = introspect(&w.app, Auth::Post(&w.shop), &refresh_of(&t)).await;
    assert_eq!(
        r.json,
        json!({
            "active": true,
            "scope": "postal_code profile",
            "client_id": w.shop.client_id,
            "token_type": "refresh_token",
            "sub": subject,
            "iss": w.app.base,
        })
    );

    // The oauth2 crate reads the answer as a standard introspection response.
    let standard = w
        .client
        .clone()
        .set_introspection_url(IntrospectionUrl::new(w.app.url("/oauth2/introspect")).unwrap())
        .introspect(&AccessToken::new(access(&t)))
        .request_async(&http_client())
        .await
        .unwrap();
    assert!(standard.active());
    assert_eq!(
        standard.client_id().map(|c| c.as_str()),
        Some(w.shop.client_id.as_str())
    );
    assert_eq!(standard.sub(), subject.as_str());

    // A rotated refresh token is no longer active; its successor is.
    let next = refresh(&w.client, &refresh_of(&t)).await.unwrap();
    assert_inactive(
        &introspect(&w.app, Auth::Basic(&w.shop), &refresh_of(&t)).await,
        "rotated refresh token",
    );
    let r = introspect(&w.app, Auth::Basic(&w.shop), &refresh_of(&next)).await;
    assert_eq!(r.json["active"], true, "{}", r.json);
}

#[tokio::test]
async fn another_client_sees_only_inactive_tokens() {
    let w = World::new(|_| {}).await;
    let other = w.app.register_app(|i| i.name = "Other Shop".into()).await;
    let t = tokens(&w, "profile").await;
    for (what, token) in [("access", access(&t)), ("refresh", refresh_of(&t))] {
        assert_inactive(
            &introspect(&w.app, Auth::Basic(&other), &token).await,
            &format!("{what} token of another app"),
        );
    }
    // Asking changed nothing.
    assert_alive(&w.app, &access(&t), "the shop's access token").await;
    refresh(&w.client, &refresh_of(&t)).await.unwrap();
}

#[tokio::test]
async fn expired_revoked_and_unknown_tokens_are_inactive() {
    let w = World::new(|_| {}).await;
    let t = tokens(&w, "profile").await;
    w.app
        .state
        .clock
        .advance(w.app.state.config.access_token_ttl + 1);
    assert_inactive(
        &introspect(&w.app, Auth::Basic(&w.shop), &access(&t)).await,
        "expired access token",
    );
    let r = introspect(&w.app, Auth::Basic(&w.shop), &refresh_of(&t)).await;
    assert_eq!(
        r.json["active"], true,
        "refresh tokens outlive access tokens: {}",
        r.json
    );

    let fresh = refresh(&w.client, &refresh_of(&t)).await.unwrap();
    assert_eq!(
        revoke(&w.app, Auth::Basic(&w.shop), &access(&fresh))
            .await
            .status,
        200
    );
    assert_inactive(
        &introspect(&w.app, Auth::Basic(&w.shop), &access(&fresh)).await,
        "revoked access token",
    );
    assert_eq!(
        revoke(&w.app, Auth::Basic(&w.shop), &refresh_of(&fresh))
            .await
            .status,
        200
    );
    assert_inactive(
        &introspect(&w.app, Auth::Basic(&w.shop), &refresh_of(&fresh)).await,
        "revoked refresh token",
    );

    let long = format!("Atza|{}", "A".repeat(4000));
    for unknown in [
        "Atza|IwOGYQIBIEmB3Rl3yRz1lx0bqKzNwhYHwo8tBqyvdlg",
        "Atzr|IwOGYQIBIEmB3Rl3yRz1lx0bqKzNwhYHwo8tBqyvdlg",
        "not-a-token",
        long.as_str(),
    ] {
        assert_inactive(
            &introspect(&w.app, Auth::Basic(&w.shop), unknown).await,
            &format!("unknown token {}", &unknown[..unknown.len().min(20)]),
        );
    }
}

#[tokio::test]
async fn introspection_needs_a_client_that_proves_its_secret_and_a_token() {
    let w = World::new(|_| {}).await;
    let public = w
        .app
        .register_app(|i| {
            i.name = "Public".into();
            i.kind = ClientKind::Public;
        })
        .await;
    let t = tokens(&w, "profile").await;
    let token = access(&t);
    let wrong = RegisteredApp {
        secret: Some("not-the-secret".into()),
        ..w.shop.clone()
    };
    for (what, auth) in [
        ("no client at all", Auth::None),
        ("client_id without the secret", Auth::IdOnly(&w.shop)),
        ("a public client", Auth::IdOnly(&public)),
        ("a wrong secret in Basic", Auth::Basic(&wrong)),
        ("a wrong secret in the body", Auth::Post(&wrong)),
    ] {
        let a = introspect(&w.app, auth, &token).await;
        assert_error(&a, 401, "invalid_client", what);
        assert!(a.header("www-authenticate").is_some(), "{what}");
        assert!(a.json.get("active").is_none(), "{what}: {}", a.json);
    }

    let a = post(&w.app, "/oauth2/introspect", Auth::Basic(&w.shop), &[]).await;
    assert_error(&a, 400, "invalid_request", "missing token");
    assert!(
        a.json["error_description"]
            .as_str()
            .unwrap()
            .contains("token"),
        "{}",
        a.json
    );
    let a = post(
        &w.app,
        "/oauth2/introspect",
        Auth::Basic(&w.shop),
        &[("token", &token), ("token", &token)],
    )
    .await;
    assert_error(&a, 400, "invalid_request", "token sent twice");
}

// ---------------------------------------------------------------------------------------------------------------
// Revocation (RFC 7009)

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_whole_grant_and_nothing_else() {
    let w = World::new(|_| {}).await;
    let first = tokens(&w, "profile").await;
    let second = refresh(&w.client, &refresh_of(&first)).await.unwrap();
    let unrelated = tokens(&w, "profile").await;

    let a = post(
        &w.app,
        "/oauth2/revoke",
        Auth::Basic(&w.shop),
        &[
            ("token", &refresh_of(&second)),
            ("token_type_hint", "refresh_token"),
        ],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.json, Value::Null, "RFC 7009 2.2: an empty body");

    for (what, token) in [
        ("the first access token", access(&first)),
        ("the second access token", access(&second)),
    ] {
        assert_dead(&w.app, &token, what).await;
    }
    w.app.state.clock.advance(REUSE_GRACE_SECS + 1);
    for (what, token) in [
        ("the revoked refresh token", refresh_of(&second)),
        ("the rotated one before it", refresh_of(&first)),
    ] {
        assert_eq!(
            refresh(&w.client, &token).await.unwrap_err(),
            BasicErrorResponseType::InvalidGrant,
            "{what}"
        );
    }
    // Another grant of the same customer at the same app lives on.
    assert_alive(&w.app, &access(&unrelated), "another grant").await;
    refresh(&w.client, &refresh_of(&unrelated)).await.unwrap();
}

#[tokio::test]
async fn revoking_an_access_token_ends_only_that_token() {
    let w = World::new(|_| {}).await;
    let t = tokens(&w, "profile").await;
    let a = post(
        &w.app,
        "/oauth2/revoke",
        Auth::Post(&w.shop),
        &[("token", &access(&t)), ("token_type_hint", "access_token")],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.header("cache-control"), Some("no-store"));
    assert_dead(&w.app, &access(&t), "the revoked access token").await;
    let next = refresh(&w.client, &refresh_of(&t)).await.unwrap();
    assert_alive(&w.app, &access(&next), "the grant's next access token").await;

    // Revoking it again, or with a misleading hint, is still a plain 200.
    let a = post(
        &w.app,
        "/oauth2/revoke",
        Auth::Basic(&w.shop),
        &[("token", &access(&t)), ("token_type_hint", "refresh_token")],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.json);
}

#[tokio::test]
async fn unknown_and_other_clients_tokens_answer_200_and_change_nothing() {
    let w = World::new(|_| {}).await;
    let other = w.app.register_app(|i| i.name = "Other Shop".into()).await;
    let t = tokens(&w, "profile").await;

    for unknown in [
        "Atza|IwOGYQIBIEmB3Rl3yRz1lx0bqKzNwhYHwo8tBqyvdlg",
        "Atzr|IwOGYQIBIEmB3Rl3yRz1lx0bqKzNwhYHwo8tBqyvdlg",
        "whatever",
    ] {
        let a = revoke(&w.app, Auth::Basic(&w.shop), unknown).await;
        assert_eq!(a.status, 200, "{unknown}: {}", a.json);
    }
    for token in [access(&t), refresh_of(&t)] {
        let a = revoke(&w.app, Auth::Basic(&other), &token).await;
        assert_eq!(a.status, 200, "another app's token: {}", a.json);
    }
    assert_alive(&w.app, &access(&t), "the shop's access token").await;
    refresh(&w.client, &refresh_of(&t)).await.unwrap();
}

#[tokio::test]
async fn revocation_needs_a_token_and_a_confidential_client_needs_its_secret() {
    let w = World::new(|_| {}).await;
    let t = tokens(&w, "profile").await;
    let wrong = RegisteredApp {
        secret: Some("not-the-secret".into()),
        ..w.shop.clone()
    };
    for (what, auth) in [
        ("no client at all", Auth::None),
        (
            "a confidential client without its secret",
            Auth::IdOnly(&w.shop),
        ),
        ("a wrong secret", Auth::Basic(&wrong)),
    ] {
        for token in [access(&t), refresh_of(&t)] {
            let a = revoke(&w.app, auth, &token).await;
            assert_error(&a, 401, "invalid_client", what);
        }
    }
    assert_alive(&w.app, &access(&t), "after refused revocations").await;

    let a = post(&w.app, "/oauth2/revoke", Auth::Basic(&w.shop), &[]).await;
    assert_error(&a, 400, "invalid_request", "missing token");
}

#[tokio::test]
async fn a_public_client_revokes_with_its_client_id_but_cannot_introspect() {
    let w = World::new(|i| i.kind = ClientKind::Public).await;
    assert!(w.shop.secret.is_none());
    let t = tokens(&w, "profile").await;
    let a = introspect(&w.app, Auth::IdOnly(&w.shop), &access(&t)).await;
    assert_error(&a, 401, "invalid_client", "a public client introspecting");

    let a = revoke(&w.app, Auth::IdOnly(&w.shop), &refresh_of(&t)).await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_dead(&w.app, &access(&t), "the grant's access token").await;
    assert_eq!(
        refresh(&w.client, &refresh_of(&t)).await.unwrap_err(),
        BasicErrorResponseType::InvalidGrant
    );
}

#[tokio::test]
async fn a_device_revokes_its_refresh_token_without_the_apps_secret() {
    let w = World::new(|i| i.features.insert(Feature::Device)).await;
    let pair = post(
        &w.app,
        "/auth/o2/create/codepair",
        Auth::IdOnly(&w.shop),
        &[("response_type", "device_code"), ("scope", "profile")],
    )
    .await;
    assert_eq!(pair.status, 200, "{}", pair.json);
    let (_, url, html) = w.browser.open("/code").await.page();
    let user_code = pair.json["user_code"].as_str().unwrap();
    let (status, url, html) = w
        .browser
        .submit(&url, &html, "/code", &[("user_code", user_code)], None, &[])
        .await
        .page();
    assert!(html.contains("Is this your device?"), "{status}: {html}");
    w.browser
        .submit(
            &url,
            &html,
            "/code/confirm",
            &[],
            Some(("decision", "allow")),
            &[],
        )
        .await;
    let device = post(
        &w.app,
        "/auth/o2/token",
        Auth::None,
        &[
            ("grant_type", "device_code"),
            ("device_code", pair.json["device_code"].as_str().unwrap()),
            ("user_code", user_code),
        ],
    )
    .await;
    assert_eq!(device.status, 200, "{}", device.json);
    let device_access = device.json["access_token"].as_str().unwrap();
    let device_refresh = device.json["refresh_token"].as_str().unwrap();

    // A web grant's tokens of the same confidential app still need the secret.
    let web = tokens(&w, "profile").await;
    for token in [access(&web), refresh_of(&web)] {
        let a = revoke(&w.app, Auth::IdOnly(&w.shop), &token).await;
        assert_error(&a, 401, "invalid_client", "a web token without the secret");
    }
    // So does the device's access token: only its refresh token is held without the secret.
    let a = revoke(&w.app, Auth::IdOnly(&w.shop), device_access).await;
    assert_error(
        &a,
        401,
        "invalid_client",
        "a device access token without the secret",
    );

    let a = revoke(&w.app, Auth::IdOnly(&w.shop), device_refresh).await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_dead(&w.app, device_access, "the device's access token").await;
    assert_alive(&w.app, &access(&web), "the web grant").await;
}

// ---------------------------------------------------------------------------------------------------------------
// Client credentials (RFC 6749 4.4) from the resource side

#[tokio::test]
async fn client_credentials_tokens_act_for_the_app_only_where_enabled() {
    let w = World::new(|_| {}).await;
    let machine = w
        .app
        .register_app(|i| {
            i.name = "Machine".into();
            i.features.insert(Feature::ClientCredentials);
        })
        .await;
    let grant = [("grant_type", "client_credentials")];
    let a = post(&w.app, "/oauth2/token", Auth::Basic(&machine), &grant).await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert!(a.json.get("refresh_token").is_none(), "{}", a.json);
    let token = a.json["access_token"].as_str().unwrap().to_owned();

    let i = introspect(&w.app, Auth::Basic(&machine), &token).await;
    assert_eq!(i.json["active"], true, "{}", i.json);
    assert_eq!(i.json["client_id"], machine.client_id.as_str());
    assert_eq!(i.json["token_type"], "Bearer");
    assert!(i.json.get("sub").is_none(), "no customer: {}", i.json);

    // No customer, so no profile.
    let p = answer(
        w.app
            .api()
            .get(w.app.url("/user/profile"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&p, 400, "invalid_token", "profile with an app's own token");

    // The shop did not enable the grant.
    let a = post(&w.app, "/auth/o2/token", Auth::Basic(&w.shop), &grant).await;
    assert_error(
        &a,
        400,
        "unauthorized_client",
        "client_credentials not enabled",
    );

    let a = revoke(&w.app, Auth::Post(&machine), &token).await;
    assert_eq!(a.status, 200);
    assert_inactive(
        &introspect(&w.app, Auth::Basic(&machine), &token).await,
        "revoked client credentials token",
    );
}

/// SPEC 1, 2.2: a client-credentials token acts for the app, so a customer scope (`profile` and the rest) is
/// `invalid_scope`: there is no customer whose profile it could read. With no scope asked (and no app scope
/// allowed, `scopes.rs`), the response states no scope rather than one empty scope, which the `oauth2` crate
/// reads as no scopes; tokeninfo reports "" and introspection no scope.
#[tokio::test]
async fn client_credentials_refuse_customer_scopes_and_state_no_empty_scope() {
    let w = World::new(|_| {}).await;
    let machine = w
        .app
        .register_app(|i| {
            i.name = "Machine".into();
            i.features.insert(Feature::ClientCredentials);
        })
        .await;
    for scope in [
        "profile",
        "profile:user_id",
        "postal_code profile",
        "openid",
        "email",
    ] {
        let form = [("grant_type", "client_credentials"), ("scope", scope)];
        for (path, auth) in [
            ("/oauth2/token", Auth::Basic(&machine)),
            ("/auth/o2/token", Auth::Post(&machine)),
        ] {
            let a = post(&w.app, path, auth, &form).await;
            assert_error(&a, 400, "invalid_scope", scope);
            assert!(
                a.json["error_description"]
                    .as_str()
                    .unwrap()
                    .contains("customer scope"),
                "{scope} at {path}: {}",
                a.json
            );
        }
    }

    let tokens = w
        .app
        .oauth_client(&machine)
        .exchange_client_credentials()
        .request_async(&http_client())
        .await
        .unwrap();
    assert_eq!(tokens.scopes(), None, "no scope, not one empty scope");
    let token = tokens.access_token().secret();
    let raw = post(
        &w.app,
        "/auth/o2/token",
        Auth::Post(&machine),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert!(raw.json.get("scope").is_none(), "{}", raw.json);
    let info = tokeninfo_by_header(&w.app, token).await;
    assert_eq!(info.status, 200, "{}", info.json);
    assert_eq!(info.json["scope"], "", "tokeninfo always has a scope");
    let i = introspect(&w.app, Auth::Basic(&machine), token).await;
    assert_eq!(i.json["active"], true, "{}", i.json);
    assert!(i.json.get("scope").is_none(), "introspection: {}", i.json);
}

// ---------------------------------------------------------------------------------------------------------------
// CORS (SPEC 2.7, 3)

const CORS_PATHS: [(&str, &str); 9] = [
    ("POST", "/auth/o2/token"),
    ("POST", "/oauth2/token"),
    ("GET", "/user/profile"),
    ("GET", "/oauth2/userinfo"),
    ("POST", "/oauth2/userinfo"),
    ("GET", "/auth/o2/tokeninfo"),
    ("GET", "/jwks.json"),
    ("GET", "/.well-known/openid-configuration"),
    ("GET", "/.well-known/oauth-authorization-server"),
];

async fn preflight(app: &TestApp, path: &str, origin: &str, method: &str) -> Answer {
    let res = app
        .api()
        .request(reqwest::Method::OPTIONS, app.url(path))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    answer(res).await
}

async fn from_origin(app: &TestApp, method: &str, path: &str, origin: &str) -> Answer {
    let request = match method {
        "POST" => app
            .api()
            .post(app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=refresh_token&refresh_token=Atzr%7Cnope&client_id=nope"),
        _ => app.api().get(app.url(path)),
    };
    let res = request.header("origin", origin).send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    Answer {
        status,
        headers,
        text: String::new(),
        json: Value::Null,
    }
}

fn varies_on_origin(a: &Answer) -> bool {
    a.headers
        .get_all("vary")
        .iter()
        .any(|v| v.to_str().unwrap().to_ascii_lowercase().contains("origin"))
}

#[tokio::test]
async fn registered_origins_get_cors_on_the_api_and_others_do_not() {
    let w = World::new(|_| {}).await;
    for (method, path) in CORS_PATHS {
        let p = preflight(&w.app, path, SHOP_ORIGIN, method).await;
        assert!(
            (200..300).contains(&p.status),
            "{path}: preflight {}",
            p.status
        );
        assert_eq!(
            p.header("access-control-allow-origin"),
            Some(SHOP_ORIGIN),
            "{path}"
        );
        assert!(
            p.header("access-control-allow-methods")
                .unwrap()
                .contains(method),
            "{path}"
        );
        let allowed_headers = p
            .header("access-control-allow-headers")
            .unwrap()
            .to_ascii_lowercase();
        for h in ["authorization", "content-type", "x-amz-access-token"] {
            assert!(allowed_headers.contains(h), "{path}: {allowed_headers}");
        }
        assert!(p.header("access-control-max-age").is_some(), "{path}");
        assert!(
            p.header("access-control-allow-credentials").is_none(),
            "{path}"
        );
        assert!(varies_on_origin(&p), "{path}");

        // The actual request, successful or not, is readable by the page.
        let a = from_origin(&w.app, method, path, SHOP_ORIGIN).await;
        assert_ne!(a.status, 404, "{path}");
        assert_eq!(
            a.header("access-control-allow-origin"),
            Some(SHOP_ORIGIN),
            "{path}: {method} answered {}",
            a.status
        );
        assert!(varies_on_origin(&a), "{path}");

        for stranger in [
            "https://evil.example",
            "https://shop.example.evil.example",
            "null",
        ] {
            let p = preflight(&w.app, path, stranger, method).await;
            assert!(
                !(200..300).contains(&p.status),
                "{path}: preflight from {stranger} answered {}",
                p.status
            );
            assert!(
                p.header("access-control-allow-origin").is_none(),
                "{path}: {stranger}"
            );
            let a = from_origin(&w.app, method, path, stranger).await;
            assert!(
                a.header("access-control-allow-origin").is_none(),
                "{path}: {stranger}"
            );
        }
    }

    // A deleted app's origins are no longer allowed.
    let now = w.app.state.clock.now();
    w.app
        .store()
        .delete_client(&w.shop.client_id, now)
        .await
        .unwrap();
    let p = preflight(&w.app, "/auth/o2/token", SHOP_ORIGIN, "POST").await;
    assert!(p.header("access-control-allow-origin").is_none());
}

/// SPEC 2.7: a token, and what it reads, are shared only with the pages of the app it was issued to; another
/// app's registered origin gets no CORS headers on them (review L7).
#[tokio::test]
async fn an_answer_about_one_app_is_shared_only_with_that_apps_origins() {
    let w = World::new(|i| i.features.insert(Feature::ClientCredentials)).await;
    w.app
        .register_app(|i| i.allowed_origins = vec!["https://other.example".into()])
        .await;
    let token = access(&tokens(&w, "profile").await);
    for path in ["/auth/o2/tokeninfo", "/user/profile"] {
        for (origin, shared) in [(SHOP_ORIGIN, true), ("https://other.example", false)] {
            let res = w
                .app
                .api()
                .get(w.app.url(path))
                .header("x-amz-access-token", &token)
                .header("origin", origin)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{path}");
            assert_eq!(
                res.headers()
                    .get("access-control-allow-origin")
                    .map(|v| v.to_str().unwrap().to_owned()),
                shared.then(|| origin.to_owned()),
                "{path} from {origin}"
            );
        }
    }
    // A token request: its answer goes only to the origins of the app it names.
    for (origin, shared) in [(SHOP_ORIGIN, true), ("https://other.example", false)] {
        let res = w
            .app
            .api()
            .post(w.app.url("/auth/o2/token"))
            .header("origin", origin)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", w.shop.client_id.as_str()),
                ("client_secret", w.shop.secret.as_deref().unwrap()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers().contains_key("access-control-allow-origin"),
            shared,
            "token from {origin}"
        );
    }
}

#[tokio::test]
async fn pages_and_server_to_server_endpoints_never_send_cors_headers() {
    let w = World::new(|_| {}).await;
    let authorize = format!("/ap/oa?client_id={}&response_type=code", w.shop.client_id);
    for (method, path) in [
        ("GET", authorize.as_str()),
        ("GET", "/ap/oa"),
        ("GET", "/oauth2/authorize"),
        ("GET", "/ap/signin"),
        ("GET", "/"),
        ("POST", "/oauth2/introspect"),
        ("POST", "/oauth2/revoke"),
    ] {
        let p = preflight(&w.app, path, SHOP_ORIGIN, method).await;
        assert!(
            p.header("access-control-allow-origin").is_none(),
            "{path}: preflight"
        );
        let a = from_origin(&w.app, method, path, SHOP_ORIGIN).await;
        assert!(
            a.header("access-control-allow-origin").is_none(),
            "{path}: {method} answered {}",
            a.status
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Discovery

#[tokio::test]
async fn discovery_lists_introspection_and_revocation_and_every_listed_endpoint_answers() {
    let w = World::new(|_| {}).await;
    for doc in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let d = answer(w.app.api().get(w.app.url(doc)).send().await.unwrap()).await;
        assert_eq!(d.status, 200, "{doc}");
        let m = &d.json;
        assert_eq!(
            m["introspection_endpoint"],
            w.app.url("/oauth2/introspect"),
            "{doc}"
        );
        assert_eq!(
            m["revocation_endpoint"],
            w.app.url("/oauth2/revoke"),
            "{doc}"
        );
        for key in [
            "introspection_endpoint_auth_methods_supported",
            "revocation_endpoint_auth_methods_supported",
        ] {
            let methods: Vec<&str> = m[key]
                .as_array()
                .unwrap_or_else(|| panic!("{doc}: no {key}"))
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert!(methods.contains(&"client_secret_basic"), "{doc}: {key}");
            assert!(methods.contains(&"client_secret_post"), "{doc}: {key}");
        }
        assert!(
            !m["introspection_endpoint_auth_methods_supported"]
                .as_array()
                .unwrap()
                .contains(&json!("none")),
            "public clients cannot introspect"
        );

        let listed: Vec<(String, String)> = m
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.ends_with("_endpoint") || k.ends_with("_uri"))
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        assert!(listed.len() >= 6, "{doc}: {listed:?}");
        for (key, url) in listed {
            assert!(url.starts_with(&w.app.base), "{doc}: {key} = {url}");
            for request in [w.app.api().get(&url), w.app.api().post(&url)] {
                let status = request.send().await.unwrap().status().as_u16();
                assert_ne!(status, 404, "{doc}: {key} = {url}");
                assert!(status < 500, "{doc}: {key} = {url} answered {status}");
            }
        }
    }
}
