//! Code-based linking end to end (SPEC 2.3): a device asks for a code pair in LWA's shape or RFC 8628's (the
//! `oauth2` crate's device flow), polls, and the customer enters the code on the real `/code` pages.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::*;
use latchkey_core::client::{ClientKind, Feature};
use oauth2::{DeviceAuthorizationUrl, Scope, StandardDeviceAuthorizationResponse, TokenResponse};
use serde_json::Value;
use std::sync::Arc;

const LWA_GRANT: &str = "device_code";
const RFC_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

async fn device_app(app: &TestApp, public: bool) -> RegisteredApp {
    app.register_app(|i| {
        i.features.insert(Feature::Device);
        i.kind = if public {
            ClientKind::Public
        } else {
            ClientKind::Confidential
        };
        i.name = "Living Room TV".into();
    })
    .await
}

/// An LWA code pair for `client`.
async fn codepair(app: &TestApp, client: &RegisteredApp, scope: &str) -> Value {
    let (status, body) = post_form(
        app,
        "/auth/o2/create/codepair",
        &[
            ("response_type", "device_code"),
            ("client_id", &client.client_id),
            ("scope", scope),
        ],
    )
    .await
    .parts();
    assert_eq!(status, 200, "{body}");
    body
}

/// One LWA-shaped poll.
async fn poll_lwa(app: &TestApp, pair: &Value) -> (u16, Value) {
    post_form(
        app,
        "/auth/o2/token",
        &[
            ("grant_type", LWA_GRANT),
            ("device_code", pair["device_code"].as_str().unwrap()),
            ("user_code", pair["user_code"].as_str().unwrap()),
        ],
    )
    .await
    .parts()
}

/// One RFC 8628-shaped poll by `client_id`.
async fn poll_rfc(app: &TestApp, pair: &Value, client_id: &str) -> (u16, Value) {
    post_form(
        app,
        "/auth/o2/token",
        &[
            ("grant_type", RFC_GRANT),
            ("device_code", pair["device_code"].as_str().unwrap()),
            ("client_id", client_id),
        ],
    )
    .await
    .parts()
}

fn error_of(body: &Value) -> &str {
    body["error"].as_str().unwrap_or("<none>")
}

/// A signed-in browser on the code-entry page.
async fn signed_in_browser(app: &TestApp, email: &str) -> Browser {
    let browser = app.browser();
    browser.sign_in(email, PASSWORD).await;
    browser
}

/// Types `code` on the code page; returns the page that follows.
async fn enter_code(browser: &Browser, code: &str) -> Step {
    let (status, url, html) = browser.open("/code").await.page();
    assert_eq!(status, 200, "{html}");
    browser
        .submit(&url, &html, "/code", &[("user_code", code)], None, &[])
        .await
}

/// On the "Is this your device?" page, answers yes or no.
async fn answer(browser: &Browser, step: Step, allow: bool, untick: &[&str]) -> (u16, String) {
    let (status, url, html) = step.page();
    assert_eq!(status, 200, "expected the confirmation page:\n{html}");
    assert!(html.contains("Is this your device?"), "{html}");
    let decision = if allow { "allow" } else { "deny" };
    let (status, _, html) = browser
        .submit(
            &url,
            &html,
            "/code/confirm",
            &[],
            Some(("decision", decision)),
            untick,
        )
        .await
        .page();
    (status, html)
}

#[tokio::test]
async fn lwa_code_pair_pending_then_approved_gives_tokens_exactly_once() {
    for (engine, db) in each_db().await {
        eprintln!("engine: {engine}");
        lwa_flow(spawn_app_on(std::sync::Arc::new(db)).await).await;
    }
}

async fn lwa_flow(app: TestApp) {
    let tv = device_app(&app, false).await;
    app.create_user("viewer@example.com", "Vera Viewer", Some("98109"))
        .await;
    let pair = codepair(&app, &tv, "profile postal_code").await;

    let user_code = pair["user_code"].as_str().unwrap();
    assert_eq!(user_code.len(), 9, "{pair}");
    assert_eq!(&user_code[4..5], "-");
    assert!(user_code
        .chars()
        .filter(|c| *c != '-')
        .all(|c| "BCDFGHJKLMNPQRSTVWXZ".contains(c)));
    assert_eq!(pair["verification_uri"], app.url("/code"));
    assert_eq!(
        pair["verification_uri_complete"],
        format!("{}?user_code={user_code}", app.url("/code"))
    );
    assert_eq!(pair["expires_in"], 600);
    assert_eq!(pair["interval"], 5);
    assert!(pair["device_code"].as_str().unwrap().len() >= 43);

    let (status, body) = poll_lwa(&app, &pair).await;
    assert_eq!((status, error_of(&body)), (400, "authorization_pending"));

    // The customer follows verification_uri_complete: sign in first, then the code is already filled in.
    let browser = app.browser();
    let complete = pair["verification_uri_complete"].as_str().unwrap();
    let signin = browser.open(complete).await;
    let (_, url, html) = browser
        .sign_in_on(signin, "viewer@example.com", PASSWORD)
        .await
        .page();
    assert!(url.contains("/code?user_code="), "{url}");
    assert!(html.contains(&format!("value=\"{user_code}\"")), "{html}");
    assert!(html.contains("autocomplete=\"one-time-code\""));
    let confirm = browser.submit(&url, &html, "/code", &[], None, &[]).await;
    let (_, _, confirm_html) = match &confirm {
        Step::Page { status, url, html } => (*status, url.clone(), html.clone()),
        Step::LeftTo(u) => panic!("left to {u}"),
    };
    assert!(confirm_html.contains("Living Room TV"));
    assert!(confirm_html.contains("98109"), "current values are shown");
    let (status, html) = answer(&browser, confirm, true, &[]).await;
    assert_eq!(status, 200);
    assert!(html.contains("Go back to your device"), "{html}");

    app.state.clock.advance(5);
    let (status, tokens) = poll_lwa(&app, &pair).await;
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens["access_token"]
        .as_str()
        .unwrap()
        .starts_with("Atza|"));
    assert!(tokens["refresh_token"]
        .as_str()
        .unwrap()
        .starts_with("Atzr|"));
    assert_eq!(tokens["scope"], "postal_code profile");
    let profile: Value = app
        .api()
        .get(app.url("/user/profile"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(profile["name"], "Vera Viewer");
    assert_eq!(profile["postal_code"], "98109");

    // Exactly once: the pair is spent.
    app.state.clock.advance(5);
    let (status, body) = poll_lwa(&app, &pair).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_code_pair"));
    let (status, body) = poll_rfc(&app, &pair, &tv.client_id).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"));
}

#[tokio::test]
async fn rfc8628_client_from_the_oauth2_crate_completes_and_refreshes_without_a_secret() {
    let app = spawn_app().await;
    let tv = device_app(&app, true).await;
    app.create_user("crate@example.com", "Crate User", None)
        .await;
    let client = oauth2::basic::BasicClient::new(oauth2::ClientId::new(tv.client_id.clone()))
        .set_token_uri(oauth2::TokenUrl::new(app.url("/oauth2/token")).unwrap())
        .set_device_authorization_url(
            DeviceAuthorizationUrl::new(app.url("/oauth2/device_authorization")).unwrap(),
        );
    let http = http_client();
    let details: StandardDeviceAuthorizationResponse = client
        .exchange_device_code()
        .add_scope(Scope::new("profile".into()))
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(details.interval().as_secs(), 5);
    assert_eq!(details.verification_uri().as_str(), app.url("/code"));
    let complete = details.verification_uri_complete().unwrap();
    assert!(complete.secret().contains(details.user_code().secret()));

    // The customer approves after the device's first poll; the device "sleeps" by moving the clock.
    let browser = signed_in_browser(&app, "crate@example.com").await;
    let code = details.user_code().secret().clone();
    let polls = std::sync::atomic::AtomicUsize::new(0);
    let token = client
        .exchange_device_access_token(&details)
        .request_async(
            &http,
            |wait| {
                let n = polls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let browser = &browser;
                let code = code.clone();
                let clock = app.state.clock.clone();
                async move {
                    if n == 1 {
                        let step = enter_code(browser, &code).await;
                        let (status, _) = answer(browser, step, true, &[]).await;
                        assert_eq!(status, 200);
                    }
                    clock.advance(wait.as_secs() as i64);
                }
            },
            None,
        )
        .await
        .unwrap();
    assert!(polls.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    let refresh = token.refresh_token().unwrap();

    // A public device client refreshes with its client id alone.
    let refreshed = client
        .exchange_refresh_token(refresh)
        .request_async(&http)
        .await
        .unwrap();
    assert!(refreshed.access_token().secret().starts_with("Atza|"));
    assert_ne!(
        refreshed.refresh_token().unwrap().secret(),
        refresh.secret(),
        "rotated"
    );
}

#[tokio::test]
async fn confidential_apps_refresh_device_tokens_without_their_secret_but_not_web_tokens() {
    let app = spawn_app().await;
    let tv = device_app(&app, false).await;
    app.create_user("both@example.com", "Both Ways", None).await;
    let pair = codepair(&app, &tv, "profile").await;
    let browser = signed_in_browser(&app, "both@example.com").await;
    let step = enter_code(&browser, pair["user_code"].as_str().unwrap()).await;
    answer(&browser, step, true, &[]).await;
    let (status, tokens) = poll_lwa(&app, &pair).await;
    assert_eq!(status, 200, "{tokens}");

    let (status, body) = post_form(
        &app,
        "/auth/o2/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", &tv.client_id),
        ],
    )
    .await
    .parts();
    assert_eq!(status, 200, "{body}");
    // And the rotated one again, still without a secret: the family stays a device family.
    let (status, body) = post_form(
        &app,
        "/auth/o2/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", body["refresh_token"].as_str().unwrap()),
            ("client_id", &tv.client_id),
        ],
    )
    .await
    .parts();
    assert_eq!(status, 200, "{body}");

    // The same app's browser-flow refresh token still needs the secret.
    let shop = app.oauth_client(&tv);
    let (url, _) = shop
        .authorize_url(oauth2::CsrfToken::new_random)
        .add_scope(Scope::new("profile".into()))
        .url();
    let back = login_through(&browser, url.as_str(), "both@example.com").await;
    let code = Step::param(&back, "code").unwrap();
    let web = shop
        .exchange_code(oauth2::AuthorizationCode::new(code))
        .request_async(&http_client())
        .await
        .unwrap();
    let (status, body) = post_form(
        &app,
        "/auth/o2/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", web.refresh_token().unwrap().secret()),
            ("client_id", &tv.client_id),
        ],
    )
    .await
    .parts();
    assert_eq!((status, error_of(&body)), (401, "invalid_client"));
}

#[tokio::test]
async fn polling_faster_than_the_interval_slows_the_device_down() {
    let app = spawn_app().await;
    let tv = device_app(&app, true).await;
    let pair = codepair(&app, &tv, "profile").await;
    let (_, first) = poll_rfc(&app, &pair, &tv.client_id).await;
    assert_eq!(error_of(&first), "authorization_pending");
    let (status, second) = poll_rfc(&app, &pair, &tv.client_id).await;
    assert_eq!((status, error_of(&second)), (400, "slow_down"));
    // The interval for this device code is now 10 s: 5 s later is still too fast...
    app.state.clock.advance(5);
    let (_, third) = poll_rfc(&app, &pair, &tv.client_id).await;
    assert_eq!(error_of(&third), "slow_down");
    // ...and it grew to 15 s, which a polite device then keeps.
    app.state.clock.advance(15);
    let (_, fourth) = poll_rfc(&app, &pair, &tv.client_id).await;
    assert_eq!(error_of(&fourth), "authorization_pending");
    // Another device code is not affected.
    let other = codepair(&app, &tv, "profile").await;
    let (_, body) = poll_lwa(&app, &other).await;
    assert_eq!(error_of(&body), "authorization_pending");
}

#[tokio::test]
async fn a_denied_pair_answers_access_denied_in_both_shapes() {
    let app = spawn_app().await;
    let tv = device_app(&app, true).await;
    app.create_user("no@example.com", "Nope", None).await;
    let pair = codepair(&app, &tv, "profile").await;
    let browser = signed_in_browser(&app, "no@example.com").await;
    let step = enter_code(&browser, pair["user_code"].as_str().unwrap()).await;
    let (status, html) = answer(&browser, step, false, &[]).await;
    assert_eq!(status, 200);
    assert!(html.contains("Device not linked"), "{html}");
    let (status, body) = poll_lwa(&app, &pair).await;
    assert_eq!((status, error_of(&body)), (400, "access_denied"));
    app.state.clock.advance(5);
    let (_, body) = poll_rfc(&app, &pair, &tv.client_id).await;
    assert_eq!(error_of(&body), "access_denied");
    // The code cannot be approved after it was denied.
    let step = enter_code(&browser, pair["user_code"].as_str().unwrap()).await;
    let (status, _, html) = step.page();
    assert_eq!(status, 400);
    assert!(html.contains("can no longer be used"), "{html}");
}

#[tokio::test]
async fn an_expired_pair_is_expired_token_or_invalid_code_pair_and_cannot_be_entered() {
    let app = spawn_app().await;
    let tv = device_app(&app, true).await;
    app.create_user("late@example.com", "Late", None).await;
    let pair = codepair(&app, &tv, "profile").await;
    app.state.clock.advance(601);
    let (status, body) = poll_rfc(&app, &pair, &tv.client_id).await;
    assert_eq!((status, error_of(&body)), (400, "expired_token"));
    let (status, body) = poll_lwa(&app, &pair).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_code_pair"));
    let browser = signed_in_browser(&app, "late@example.com").await;
    let (status, _, html) = enter_code(&browser, pair["user_code"].as_str().unwrap())
        .await
        .page();
    assert_eq!(status, 400);
    assert!(html.contains("expired"), "{html}");

    // Expired pairs are purged after a while; then the device code is simply unknown.
    app.state.clock.advance(3_601);
    app.store()
        .purge_expired(app.state.clock.now())
        .await
        .unwrap();
    let (_, body) = poll_rfc(&app, &pair, &tv.client_id).await;
    assert_eq!(error_of(&body), "invalid_grant");
}

#[tokio::test]
async fn a_device_code_is_bound_to_its_client() {
    let app = spawn_app().await;
    let tv = device_app(&app, true).await;
    let other = device_app(&app, true).await;
    app.create_user("bound@example.com", "Bound", None).await;
    let pair = codepair(&app, &tv, "profile").await;
    let browser = signed_in_browser(&app, "bound@example.com").await;
    let step = enter_code(&browser, pair["user_code"].as_str().unwrap()).await;
    answer(&browser, step, true, &[]).await;

    let (status, body) = poll_rfc(&app, &pair, &other.client_id).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"));
    // The other client's attempt consumed nothing: the right client still gets its tokens.
    let (status, body) = poll_rfc(&app, &pair, &tv.client_id).await;
    assert_eq!(status, 200, "{body}");

    // An app without code-based linking cannot ask for a pair, nor poll.
    let web = app.register_app(|_| {}).await;
    let (status, body) = post_form(
        &app,
        "/auth/o2/create/codepair",
        &[
            ("response_type", "device_code"),
            ("client_id", &web.client_id),
            ("client_secret", web.secret.as_deref().unwrap()),
            ("scope", "profile"),
        ],
    )
    .await
    .parts();
    assert_eq!((status, error_of(&body)), (400, "unauthorized_client"));
}

#[tokio::test]
async fn a_wrong_user_code_in_an_lwa_poll_is_invalid_and_locks_the_pair_after_a_few() {
    let app = spawn_app().await;
    let tv = device_app(&app, true).await;
    app.create_user("lock@example.com", "Lock", None).await;
    let pair = codepair(&app, &tv, "profile").await;
    let wrong = if pair["user_code"] == "BBBB-BBBB" {
        "CCCC-CCCC"
    } else {
        "BBBB-BBBB"
    };
    for _ in 0..5 {
        let (status, body) = post_form(
            &app,
            "/auth/o2/token",
            &[
                ("grant_type", LWA_GRANT),
                ("device_code", pair["device_code"].as_str().unwrap()),
                ("user_code", wrong),
            ],
        )
        .await
        .parts();
        assert_eq!((status, error_of(&body)), (400, "invalid_code_pair"));
    }
    // Locked: the right pair is refused too, and the customer cannot approve it any more.
    let (_, body) = poll_lwa(&app, &pair).await;
    assert_eq!(error_of(&body), "invalid_code_pair");
    let browser = signed_in_browser(&app, "lock@example.com").await;
    let (status, _, _) = enter_code(&browser, pair["user_code"].as_str().unwrap())
        .await
        .page();
    assert_eq!(status, 400);
}

#[tokio::test]
async fn wrong_codes_are_throttled_per_session_and_per_address() {
    let app = spawn_app().await;
    let tv = device_app(&app, true).await;
    app.create_user("guess@example.com", "Guesser", None).await;
    let pair = codepair(&app, &tv, "profile").await;
    let right = pair["user_code"].as_str().unwrap();
    let wrong = if right == "BBBB-BBBB" {
        "CCCC-CCCC"
    } else {
        "BBBB-BBBB"
    };

    let browser = signed_in_browser(&app, "guess@example.com").await;
    for _ in 0..5 {
        let (status, _, html) = enter_code(&browser, wrong).await.page();
        assert_eq!(status, 400);
        assert!(html.contains("That code is not right"), "{html}");
    }
    // Over the limit, even the right code is refused until the window passes.
    let res = {
        let (_, url, html) = browser.open("/code").await.page();
        let doc_csrf = html
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned();
        browser
            .http
            .post(url)
            .form(&[("csrf", doc_csrf.as_str()), ("user_code", right)])
            .send()
            .await
            .unwrap()
    };
    assert_eq!(res.status().as_u16(), 429);
    assert_eq!(res.headers()["retry-after"], "900");
    assert!(res.text().await.unwrap().contains("Too many wrong codes"));

    // Malformed input is explained, not counted (a guesser gains nothing from it).
    let fresh = signed_in_browser(&app, "guess@example.com").await;
    let (status, _, html) = enter_code(&fresh, "12").await.page();
    assert_eq!(status, 400);
    assert!(html.contains("8 letters"), "{html}");

    // Per address: three more sessions guess five times each; a fourth session from the same address is refused.
    for _ in 0..3 {
        let b = signed_in_browser(&app, "guess@example.com").await;
        for _ in 0..5 {
            enter_code(&b, wrong).await;
        }
    }
    let late = signed_in_browser(&app, "guess@example.com").await;
    let (status, _, _) = enter_code(&late, right).await.page();
    assert_eq!(status, 429);

    // After the window, a right code goes through (the first pair has expired by then: a new one).
    app.state.clock.advance(901);
    let again = codepair(&app, &tv, "profile").await;
    let step = enter_code(&browser, again["user_code"].as_str().unwrap()).await;
    let (status, _) = answer(&browser, step, true, &[]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn code_entry_ignores_case_spaces_and_dashes_and_honours_unticked_items() {
    let app = spawn_app().await;
    let tv = device_app(&app, true).await;
    app.create_user("typist@example.com", "Typist", Some("10115"))
        .await;
    let (status, pair) = {
        let res = app
            .api()
            .post(app.url("/auth/o2/create/codepair"))
            .json(&serde_json::json!({
                "response_type": "device_code",
                "client_id": tv.client_id,
                "scope": "profile postal_code",
                "scope_data": "{\"postal_code\":{\"essential\":false}}",
            }))
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 200, "JSON bodies work too: {pair}");
    let typed = pair["user_code"]
        .as_str()
        .unwrap()
        .replace('-', " ")
        .to_lowercase();
    let browser = signed_in_browser(&app, "typist@example.com").await;
    let step = enter_code(&browser, &format!("  {typed} ")).await;
    let (status, _) = answer(&browser, step, true, &["postal_code"]).await;
    assert_eq!(status, 200);
    let (status, tokens) = poll_lwa(&app, &pair).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(
        tokens["scope"], "profile",
        "the unticked item is not shared"
    );
}

#[tokio::test]
async fn code_pages_need_a_session_and_a_csrf_token() {
    let app = spawn_app().await;
    let browser = app.browser();
    let step = browser.open("/code").await;
    let (_, url, _) = step.page();
    assert!(url.contains("/ap/signin"), "{url}");
    app.create_user("csrf@example.com", "Csrf", None).await;
    browser.sign_in("csrf@example.com", PASSWORD).await;
    let res = browser
        .http
        .post(app.url("/code"))
        .form(&[("user_code", "BCDF-GHJK")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let res = browser
        .http
        .post(app.url("/code/confirm"))
        .form(&[("user_code", "BCDFGHJK"), ("decision", "allow")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
}

#[tokio::test]
async fn code_pair_requests_are_validated() {
    let app = spawn_app().await;
    let tv = device_app(&app, false).await;
    type Case<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("response_type", "device_code"), ("scope", "profile")],
            401,
            "invalid_client",
        ),
        (
            vec![
                ("response_type", "device_code"),
                (
                    "client_id",
                    "lk1.application-oa2-client.00000000000000000000000000000000",
                ),
                ("scope", "profile"),
            ],
            401,
            "invalid_client",
        ),
        (
            vec![("client_id", &tv.client_id), ("scope", "profile")],
            400,
            "invalid_request",
        ),
        (
            vec![
                ("response_type", "code"),
                ("client_id", &tv.client_id),
                ("scope", "profile"),
            ],
            400,
            "unsupported_response_type",
        ),
        (
            vec![
                ("response_type", "device_code"),
                ("client_id", &tv.client_id),
            ],
            400,
            "invalid_request",
        ),
        (
            vec![
                ("response_type", "device_code"),
                ("client_id", &tv.client_id),
                ("scope", "bogus"),
            ],
            400,
            "invalid_scope",
        ),
        (
            vec![
                ("response_type", "device_code"),
                ("client_id", &tv.client_id),
                ("client_secret", "wrong"),
                ("scope", "profile"),
            ],
            401,
            "invalid_client",
        ),
    ];
    for (form, status, error) in cases {
        let (got, body) = post_form(&app, "/auth/o2/create/codepair", &form)
            .await
            .parts();
        assert_eq!((got, error_of(&body)), (status, error), "{form:?}: {body}");
    }
    // The o2 segment is case-insensitive here too.
    let (status, _) = post_form(
        &app,
        "/auth/O2/create/codepair",
        &[
            ("response_type", "device_code"),
            ("client_id", &tv.client_id),
            ("scope", "profile"),
        ],
    )
    .await
    .parts();
    assert_eq!(status, 200);
    // Polls with missing parts.
    for form in [
        vec![("grant_type", LWA_GRANT), ("device_code", "x")],
        vec![("grant_type", LWA_GRANT), ("user_code", "BCDF-GHJK")],
        vec![
            ("grant_type", RFC_GRANT),
            ("client_id", tv.client_id.as_str()),
        ],
    ] {
        let (status, body) = post_form(&app, "/auth/o2/token", &form).await.parts();
        assert_eq!(
            (status, error_of(&body)),
            (400, "invalid_request"),
            "{form:?}"
        );
    }
    let (status, body) = post_form(
        &app,
        "/auth/o2/token",
        &[
            ("grant_type", LWA_GRANT),
            ("device_code", "nope"),
            ("user_code", "BCDF-GHJK"),
        ],
    )
    .await
    .parts();
    assert_eq!((status, error_of(&body)), (400, "invalid_code_pair"));
}

#[tokio::test]
async fn the_example_device_client_shows_a_code_and_prints_the_profile() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let app = spawn_app().await;
    let tv = device_app(&app, true).await;
    app.create_user("couch@example.com", "Couch Potato", None)
        .await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args([
            "device-login",
            "--issuer",
            &app.base,
            "--client-id",
            &tv.client_id,
        ])
        .env("LATCHKEY_DATA_DIR", tempfile::tempdir().unwrap().path())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut shown = Vec::new();
    let code = loop {
        let line = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
            .await
            .expect("the device client printed its code in time")
            .unwrap()
            .expect("the device client printed a code before exiting");
        shown.push(line.clone());
        if let Some(code) = line.strip_prefix("and enter the code:") {
            break code.trim().to_owned();
        }
    };
    assert!(shown[0].contains(&app.url("/code")), "{shown:?}");
    let browser = signed_in_browser(&app, "couch@example.com").await;
    let step = enter_code(&browser, &code).await;
    let (status, _) = answer(&browser, step, true, &[]).await;
    assert_eq!(status, 200);
    let mut rest = String::new();
    while let Ok(Some(line)) =
        tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
            .await
            .expect("the device client finished in time")
    {
        rest.push_str(&line);
        rest.push('\n');
    }
    let status = child.wait().await.unwrap();
    assert!(status.success(), "{rest}");
    assert!(rest.contains("Signed in"), "{rest}");
    assert!(rest.contains("\"name\": \"Couch Potato\""), "{rest}");
}

#[tokio::test]
async fn two_nodes_share_every_poll_of_a_code_pair() {
    let Some(db) = postgres_db().await else {
        return;
    };
    let db = std::sync::Arc::new(db);
    // One frozen clock for both nodes: advancing it moves them together.
    let clock = frozen_clock();
    let a = spawn_app_clocked(db.clone(), clock.clone(), |_| {}).await;
    let b = spawn_app_clocked(db, clock, |_| {}).await;
    let tv = device_app(&a, true).await;
    a.create_user("nodes@example.com", "Two Nodes", None).await;
    let pair = codepair(&a, &tv, "profile").await;
    let (_, body) = poll_rfc(&a, &pair, &tv.client_id).await;
    assert_eq!(error_of(&body), "authorization_pending");
    // Node B saw node A's poll a moment ago: too fast.
    let (_, body) = poll_rfc(&b, &pair, &tv.client_id).await;
    assert_eq!(error_of(&body), "slow_down");
    // The customer enters the code on node B; the device collects at node A, once.
    let browser = signed_in_browser(&b, "nodes@example.com").await;
    let step = enter_code(&browser, pair["user_code"].as_str().unwrap()).await;
    answer(&browser, step, true, &[]).await;
    a.state.clock.advance(20);
    let (status, body) = poll_rfc(&a, &pair, &tv.client_id).await;
    assert_eq!(status, 200, "{body}");
    b.state.clock.advance(20);
    let (_, body) = poll_rfc(&b, &pair, &tv.client_id).await;
    assert_eq!(error_of(&body), "invalid_grant");
}

/// Approves `pair` as the signed-in `browser`'s customer on the real `/code` pages.
async fn approve(browser: &Browser, pair: &Value) {
    let step = enter_code(browser, pair["user_code"].as_str().unwrap()).await;
    let (status, html) = answer(browser, step, true, &[]).await;
    assert_eq!(status, 200);
    assert!(html.contains("Go back to your device"), "{html}");
}

#[tokio::test]
async fn removing_the_app_ends_pairs_approved_but_not_yet_collected() {
    for (engine, db) in each_db().await {
        let app = spawn_app_on(std::sync::Arc::new(db)).await;
        let tv = device_app(&app, false).await;
        let vera = app
            .create_user("vera@example.com", "Vera Viewer", None)
            .await;
        // Vera allowed the TV's maker on the web once, so it is listed on /ap/adam.
        app.store()
            .save_consent(&vera.id, &tv.client_id, "profile", app.state.clock.now())
            .await
            .unwrap();
        let (lwa, rfc) = (
            codepair(&app, &tv, "profile").await,
            codepair(&app, &tv, "profile").await,
        );
        let browser = signed_in_browser(&app, "vera@example.com").await;
        approve(&browser, &lwa).await;
        approve(&browser, &rfc).await;

        // Before either device polls again, she removes the app.
        let (_, url, html) = browser.open("/ap/adam").await.page();
        assert!(html.contains("Living Room TV"), "{engine}: {html}");
        let (status, url, _) = browser
            .submit(&url, &html, "/ap/adam", &[], None, &[])
            .await
            .page();
        assert_eq!(status, 200, "{engine}");
        assert!(url.contains("removed="), "{engine}: {url}");

        app.state.clock.advance(5);
        let (status, body) = poll_lwa(&app, &lwa).await;
        assert_eq!(
            (status, error_of(&body)),
            (400, "invalid_code_pair"),
            "{engine}: {body}"
        );
        let (status, body) = poll_rfc(&app, &rfc, &tv.client_id).await;
        assert_eq!(
            (status, error_of(&body)),
            (400, "invalid_grant"),
            "{engine}: {body}"
        );
        // And it stays so: the pair is over, not merely pending.
        app.state.clock.advance(5);
        let (_, body) = poll_lwa(&app, &lwa).await;
        assert_eq!(error_of(&body), "invalid_code_pair", "{engine}");
    }
}

#[tokio::test]
async fn disabling_the_account_ends_pairs_it_approved() {
    let app = spawn_app().await;
    let tv = device_app(&app, true).await;
    app.create_user("gone@example.com", "Gone", None).await;
    let (lwa, rfc) = (
        codepair(&app, &tv, "profile").await,
        codepair(&app, &tv, "profile").await,
    );
    let browser = signed_in_browser(&app, "gone@example.com").await;
    approve(&browser, &lwa).await;
    approve(&browser, &rfc).await;
    // What `latchkey user disable --email gone@example.com` does.
    assert!(app
        .store()
        .set_user_disabled("gone@example.com", true, app.state.clock.now())
        .await
        .unwrap());
    app.state.clock.advance(5);
    let (status, body) = poll_lwa(&app, &lwa).await;
    assert_eq!(
        (status, error_of(&body)),
        (400, "invalid_code_pair"),
        "{body}"
    );
    let (status, body) = poll_rfc(&app, &rfc, &tv.client_id).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"), "{body}");
}

#[tokio::test]
async fn turning_the_device_flow_off_stops_lwa_polls_that_name_no_client() {
    let app = spawn_app().await;
    let tv = device_app(&app, false).await;
    app.create_user("off@example.com", "Off", None).await;
    let (approved, pending) = (
        codepair(&app, &tv, "profile").await,
        codepair(&app, &tv, "profile").await,
    );
    let browser = signed_in_browser(&app, "off@example.com").await;
    approve(&browser, &approved).await;

    // The developer turns code-based linking off for the app.
    let mut client = app
        .store()
        .find_client(&tv.client_id)
        .await
        .unwrap()
        .unwrap();
    client.policy.features.remove(Feature::Device);
    assert!(app.store().update_client(&client).await.unwrap());

    app.state.clock.advance(5);
    for pair in [&approved, &pending] {
        let (status, body) = poll_lwa(&app, pair).await;
        assert_eq!(
            (status, error_of(&body)),
            (400, "unauthorized_client"),
            "{body}"
        );
    }
    // Turned on again, the approved pair still issues its tokens once: nothing was consumed.
    client.policy.features.insert(Feature::Device);
    assert!(app.store().update_client(&client).await.unwrap());
    app.state.clock.advance(5);
    let (status, body) = poll_lwa(&app, &approved).await;
    assert_eq!(status, 200, "{body}");
}

/// SPEC 4 (review L2): every code entered is counted before it is looked up, so a burst of parallel guesses in
/// one session gets at most `user_code_limit` answers of "not right"; the rest are refused with 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_wrong_codes_cannot_pass_the_limit_together() {
    let app = spawn_app().await;
    app.create_user("burst@example.com", "Burst", None).await;
    let browser = Arc::new(signed_in_browser(&app, "burst@example.com").await);
    let (_, url, html) = browser.open("/code").await.page();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let guesses = (0..40).map(|i| {
        let (browser, url, csrf) = (browser.clone(), url.clone(), csrf.clone());
        let guess = format!(
            "BBBB-BB{}{}",
            ["B", "C", "D", "F"][i % 4],
            ["G", "H", "J", "K", "L", "M", "N", "P", "Q", "R"][i / 4]
        );
        tokio::spawn(async move {
            browser
                .http
                .post(url)
                .form(&[("csrf", csrf.as_str()), ("user_code", guess.as_str())])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    });
    let mut answers = Vec::new();
    for g in guesses.collect::<Vec<_>>() {
        answers.push(g.await.unwrap());
    }
    let wrong = answers.iter().filter(|s| **s == 400).count();
    let refused = answers.iter().filter(|s| **s == 429).count();
    assert_eq!(wrong + refused, 40, "{answers:?}");
    assert!(
        wrong <= app.state.config.user_code_limit as usize,
        "{wrong} guesses were checked: {answers:?}"
    );
}

/// SPEC 4 (review L11): code pairs are counted per app and address before they are made; past the limit the
/// answer is 429 with `Retry-After`, and another app from the same address is unaffected.
#[tokio::test]
async fn code_pairs_are_limited_per_app_and_address() {
    let app = spawn_app_with(Arc::new(sqlite_db()), |c| {
        c.codepair_limit = 2;
        c.codepair_window = 600;
    })
    .await;
    let tv = device_app(&app, true).await;
    let other = device_app(&app, true).await;
    for _ in 0..2 {
        codepair(&app, &tv, "profile").await;
    }
    let res = app
        .api()
        .post(app.url("/oauth2/device_authorization"))
        .form(&[("client_id", tv.client_id.as_str()), ("scope", "profile")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "600");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("600 seconds"),
        "{body}"
    );
    codepair(&app, &other, "profile").await;
}

#[tokio::test]
async fn a_confirmation_page_left_open_too_long_cannot_approve_a_later_pair_with_its_code() {
    use latchkey::store::{Created, NewDeviceCode};
    use latchkey_core::secret::{self, Kind};
    let app = spawn_app().await;
    let tv = device_app(&app, true).await;
    app.create_user("slow@example.com", "Slow", None).await;
    let pair = codepair(&app, &tv, "profile").await;
    let user_code = pair["user_code"].as_str().unwrap();
    let browser = signed_in_browser(&app, "slow@example.com").await;
    let (_, url, html) = enter_code(&browser, user_code).await.page();
    assert!(html.contains("Is this your device?"), "{html}");

    // The page stays open. The pair expires and is purged, and later the same code is drawn for another
    // device's pair (a code is drawn again only once its pair is purged).
    app.state
        .clock
        .advance(latchkey_core::device::DEVICE_CODE_TTL_SECS + 3_601);
    app.store()
        .purge_expired(app.state.clock.now())
        .await
        .unwrap();
    let now = app.state.clock.now();
    let other_device = secret::mint(&mut rand::thread_rng(), "");
    let code = latchkey_core::device::normalize(user_code).unwrap();
    let later = NewDeviceCode {
        device_hash: app
            .state
            .hasher
            .token(Kind::DeviceCode, other_device.expose()),
        user_code_hash: app.state.hasher.token(Kind::UserCode, &code),
        client_id: tv.client_id.clone(),
        scopes: "profile".into(),
        optional_scopes: String::new(),
        interval: latchkey_core::device::DEFAULT_INTERVAL_SECS,
        created_at: now,
        expires_at: now + latchkey_core::device::DEVICE_CODE_TTL_SECS,
    };
    assert_eq!(
        app.store().insert_device_code(&later).await.unwrap(),
        Created::Created
    );

    // The old page's Yes is refused, as is its time moved to now; the later pair still waits.
    let token = scraper::Html::parse_document(&html)
        .select(&scraper::Selector::parse("input[name=confirm_token]").unwrap())
        .next()
        .unwrap()
        .value()
        .attr("value")
        .unwrap()
        .to_owned();
    let mac = token.rsplit('.').next().unwrap();
    let moved = format!("{now}.{mac}");
    for fields in [vec![], vec![("confirm_token", moved.as_str())]] {
        let (status, _, page) = browser
            .submit(
                &url,
                &html,
                "/code/confirm",
                &fields,
                Some(("decision", "allow")),
                &[],
            )
            .await
            .page();
        assert_eq!(status, 400, "{page}");
        assert!(page.contains("This form has expired"), "{page}");
    }
    let later_pair = serde_json::json!({ "device_code": other_device.expose() });
    let (status, body) = poll_rfc(&app, &later_pair, &tv.client_id).await;
    assert_eq!((status, error_of(&body)), (400, "authorization_pending"));

    // A page shown now, answered within its lifetime (and the pair's), links the device.
    let step = enter_code(&browser, user_code).await;
    app.state
        .clock
        .advance(latchkey_core::device::DEVICE_CODE_TTL_SECS - 60);
    let (status, html) = answer(&browser, step, true, &[]).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Your device is linked"), "{html}");
}
