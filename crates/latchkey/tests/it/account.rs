//! The customer's own pages (SPEC 2.6): "Apps and websites you've allowed" at `/ap/adam` (and `/account/apps`),
//! where Remove ends an app's access at once, and `/account` with the profile, the password and the sessions. The
//! cookie-keeping browser fills the real forms; the `oauth2` crate plays the apps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::*;
use latchkey::store::User;
use oauth2::basic::{BasicErrorResponseType, BasicTokenResponse};
use oauth2::{
    AuthorizationCode, CsrfToken, PkceCodeChallenge, RefreshToken, RequestTokenError, Scope,
    TokenResponse,
};
use std::sync::Arc;
use url::Url;

const NEW_PASSWORD: &str = "a brand new passphrase";

// ---------------------------------------------------------------------------------------------------------------
// The vocabulary of this file

/// A second browser signed in as the same customer.
async fn second_browser(w: &World) -> Browser {
    let other = w.app.browser();
    let (status, url, _) = other.sign_in(EMAIL, PASSWORD).await.page();
    assert_eq!(status, 200, "signing in ended at {url}");
    assert!(!url.contains("/ap/signin"), "still on the sign-in page");
    other
}

async fn refresh(
    w: &World,
    app: &RegisteredApp,
    token: &BasicTokenResponse,
) -> Result<BasicTokenResponse, BasicErrorResponseType> {
    let refresh: &RefreshToken = token.refresh_token().expect("a refresh token");
    w.app
        .oauth_client(app)
        .exchange_refresh_token(refresh)
        .request_async(&http_client())
        .await
        .map_err(|e| match e {
            RequestTokenError::ServerResponse(r) => r.error().clone(),
            other => panic!("expected an OAuth error response, got {other:?}"),
        })
}

/// (status, JSON) of tokeninfo and of the profile for an access token.
async fn token_answers(app: &TestApp, token: &str) -> [(u16, serde_json::Value); 2] {
    let info = app
        .api()
        .get(
            Url::parse_with_params(&app.url("/auth/o2/tokeninfo"), [("access_token", token)])
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let profile = app
        .api()
        .get(app.url("/user/profile"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let mut out = Vec::new();
    for res in [info, profile] {
        out.push((res.status().as_u16(), res.json().await.unwrap()));
    }
    out.try_into().unwrap()
}

async fn assert_token_dead(app: &TestApp, token: &str) {
    for (status, json) in token_answers(app, token).await {
        assert_eq!(status, 400, "{json}");
        assert_eq!(json["error"], "invalid_token", "{json}");
    }
}

async fn assert_token_alive(app: &TestApp, token: &str) {
    for (status, json) in token_answers(app, token).await {
        assert_eq!(status, 200, "{json}");
    }
}

fn access(t: &BasicTokenResponse) -> &str {
    t.access_token().secret()
}

/// Opens a page the customer must be signed in for, and returns (url, html).
async fn open_page(browser: &Browser, path: &str) -> (String, String) {
    let (status, url, html) = browser.open(path).await.page();
    assert_eq!(status, 200, "{url}:\n{html}");
    assert!(url.contains(path), "expected {path}, got {url}");
    (url, html)
}

fn is_signin_page(step: &Step) -> bool {
    matches!(step, Step::Page { status: 200, url, .. } if url.contains("/ap/signin"))
}

/// Posts a form body straight from the browser (its cookies, none of the page's fields): how a forged or
/// expired form arrives.
async fn post_raw(browser: &Browser, app: &TestApp, path: &str, pairs: &[(&str, &str)]) -> u16 {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    browser
        .http
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The value of the input `name` of the first form posting to `action`.
fn form_value(html: &str, action: &str, name: &str) -> String {
    let doc = scraper::Html::parse_document(html);
    let sel =
        scraper::Selector::parse(&format!("form[action='{action}'] input[name='{name}']")).unwrap();
    doc.select(&sel)
        .next()
        .and_then(|i| i.value().attr("value"))
        .unwrap_or_else(|| panic!("no {name} in a form posting to {action}:\n{html}"))
        .to_owned()
}

/// Whether a fresh browser can sign in with `password`.
async fn signs_in(app: &TestApp, email: &str, password: &str) -> bool {
    match app.browser().sign_in(email, password).await {
        Step::Page { status, url, .. } => status == 200 && !url.contains("/ap/signin"),
        Step::LeftTo(u) => panic!("signing in left Latchkey for {u}"),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Apps and websites you've allowed

#[tokio::test]
async fn removing_an_app_ends_its_tokens_at_once_and_leaves_other_apps_alone() {
    for (engine, db) in each_db().await {
        let w = World::on(spawn_app_on(Arc::new(db)).await, |_| {}).await;
        let shop = w.app.register_app(|_| {}).await;
        let game = w
            .app
            .register_app(|i| {
                i.name = "Word Game".into();
                i.privacy_url = "https://game.example/privacy".into();
            })
            .await;
        let shop_tokens = tokens_with(&w, &w.app.oauth_client(&shop), "profile postal_code").await;
        let game_tokens = tokens_with(&w, &w.app.oauth_client(&game), "profile").await;

        let (url, html) = open_page(&w.browser, "/ap/adam").await;
        assert!(html.contains("<h1>Apps and websites you"), "{engine}");
        for expected in [
            "Test Shop",
            "Word Game",
            "https://shop.example/privacy",
            "https://game.example/privacy",
            "Your name and email address",
            "Your postal code",
            "98101",
            "Allowed since",
            " UTC",
        ] {
            assert!(
                html.contains(expected),
                "{engine}: {expected} missing:\n{html}"
            );
        }

        let after = w
            .browser
            .submit(
                &url,
                &html,
                "/ap/adam",
                &[("client_id", &shop.client_id)],
                None,
                &[],
            )
            .await;
        let (status, url, html) = after.page();
        assert_eq!(status, 200, "{engine}");
        assert!(
            url.contains("/ap/adam?removed="),
            "{engine}: Post/Redirect/Get, got {url}"
        );
        assert!(
            html.contains("Test Shop can no longer use your Latchkey account"),
            "{engine}: confirmation missing:\n{html}"
        );
        assert!(
            !html.contains("https://shop.example/privacy"),
            "{engine}: still listed"
        );
        assert!(html.contains("Word Game"), "{engine}");

        // The removed app's tokens stop working at once; the other app's keep working.
        assert_token_dead(&w.app, access(&shop_tokens)).await;
        assert_eq!(
            refresh(&w, &shop, &shop_tokens).await.unwrap_err(),
            BasicErrorResponseType::InvalidGrant,
            "{engine}"
        );
        assert_token_alive(&w.app, access(&game_tokens)).await;
        let renewed = refresh(&w, &game, &game_tokens).await.unwrap();
        assert_token_alive(&w.app, access(&renewed)).await;

        // Signing in to the removed app again asks the customer again.
        let client = w.app.oauth_client(&shop);
        let (url, _) = client
            .authorize_url(CsrfToken::new_random)
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(PkceCodeChallenge::new_random_sha256().0)
            .url();
        let (_, _, html) = w.browser.open(url.as_str()).await.page();
        assert!(
            html.contains("would like to use your Latchkey account"),
            "{engine}"
        );
    }
}

#[tokio::test]
async fn account_apps_is_the_same_page_and_removes_too() {
    let w = World::new(|_| {}).await;
    let shop = w.app.register_app(|_| {}).await;
    let tokens = tokens_with(&w, &w.app.oauth_client(&shop), "profile").await;
    let (url, html) = open_page(&w.browser, "/account/apps").await;
    assert!(html.contains("Test Shop") && html.contains("Your name and email address"));
    let (status, url, html) = w
        .browser
        .submit(&url, &html, "/account/apps", &[], None, &[])
        .await
        .page();
    assert_eq!(status, 200);
    assert!(url.contains("/account/apps?removed="), "{url}");
    assert!(html.contains("Test Shop can no longer use your Latchkey account"));
    assert!(
        html.contains("You have not allowed any apps or websites"),
        "{html}"
    );
    assert_token_dead(&w.app, access(&tokens)).await;
    assert!(w
        .app
        .store()
        .list_consents(&w.user.id)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn with_no_apps_the_page_says_so() {
    let w = World::new(|_| {}).await;
    let (_, html) = open_page(&w.browser, "/ap/adam").await;
    assert!(
        html.contains("You have not allowed any apps or websites"),
        "{html}"
    );
    assert!(!html.contains("Remove"), "{html}");
}

#[tokio::test]
async fn only_the_customers_own_consent_is_removed() {
    let w = World::new(|_| {}).await;
    let shop = w.app.register_app(|_| {}).await;
    // Another customer allowed the same app.
    w.app.create_user("bob@example.com", "Bob", None).await;
    let bob_browser = w.app.browser();
    bob_browser
        .sign_in("bob@example.com", PASSWORD)
        .await
        .page();
    let client = w.app.oauth_client(&shop);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    let back = login_through(&bob_browser, url.as_str(), "bob@example.com").await;
    let bob_tokens = client
        .exchange_code(AuthorizationCode::new(Step::param(&back, "code").unwrap()))
        .set_pkce_verifier(verifier)
        .request_async(&http_client())
        .await
        .unwrap();
    let ada_tokens = tokens_with(&w, &w.app.oauth_client(&shop), "profile").await;

    let (url, html) = open_page(&w.browser, "/ap/adam").await;
    w.browser
        .submit(&url, &html, "/ap/adam", &[], None, &[])
        .await
        .page();
    assert_token_dead(&w.app, access(&ada_tokens)).await;
    assert_token_alive(&w.app, bob_tokens.access_token().secret()).await;
    let (_, html) = open_page(&bob_browser, "/ap/adam").await;
    assert!(html.contains("Test Shop"), "Bob's consent is untouched");
}

#[tokio::test]
async fn a_remove_form_without_the_right_csrf_token_changes_nothing() {
    let w = World::new(|_| {}).await;
    let shop = w.app.register_app(|_| {}).await;
    let tokens = tokens_with(&w, &w.app.oauth_client(&shop), "profile").await;
    for path in ["/ap/adam", "/account/apps"] {
        for csrf in [
            None,
            Some(""),
            Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ] {
            let mut pairs = vec![("client_id", shop.client_id.as_str())];
            if let Some(c) = csrf {
                pairs.push(("csrf", c));
            }
            assert_eq!(
                post_raw(&w.browser, &w.app, path, &pairs).await,
                400,
                "{path} {csrf:?}"
            );
        }
    }
    // Another browser's valid token is not this browser's.
    let (_, html) = open_page(&w.browser, "/ap/adam").await;
    let stranger = w.app.browser();
    assert_eq!(
        post_raw(
            &stranger,
            &w.app,
            "/ap/adam",
            &[
                ("client_id", &shop.client_id),
                ("csrf", &form_value(&html, "/ap/adam", "csrf"))
            ]
        )
        .await,
        400
    );
    assert_token_alive(&w.app, access(&tokens)).await;
    assert_eq!(
        w.app.store().list_consents(&w.user.id).await.unwrap().len(),
        1
    );
    // A well-formed form naming no real app is refused clearly.
    let csrf = form_value(&html, "/ap/adam", "csrf");
    assert_eq!(
        post_raw(
            &w.browser,
            &w.app,
            "/ap/adam",
            &[("client_id", "nonsense"), ("csrf", &csrf)]
        )
        .await,
        400
    );
}

#[tokio::test]
async fn customer_pages_send_a_stranger_to_sign_in_and_back() {
    let app = spawn_app().await;
    app.create_user(EMAIL, NAME, None).await;
    for path in ["/ap/adam", "/account/apps", "/account"] {
        let browser = app.browser();
        let step = browser.open(path).await;
        let Step::Page { url, .. } = &step else {
            panic!("{path}: {step:?}")
        };
        let q: String = url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
        assert!(
            url.contains(&format!("/ap/signin?return_to={q}")),
            "{path}: {url}"
        );
        let (status, url, html) = browser.sign_in_on(step, EMAIL, PASSWORD).await.page();
        assert_eq!(status, 200, "{path}");
        assert!(url.ends_with(path), "{path}: came back to {url}");
        assert!(html.contains(EMAIL), "{path}");
    }
    // Forms posted without a session do nothing but send the browser to sign in.
    let browser = app.browser();
    let (_, _, html) = browser.open("/ap/signin").await.page();
    let csrf = form_value(&html, "/ap/signin", "csrf");
    for path in [
        "/account/profile",
        "/account/password",
        "/account/sessions/end",
        "/account/sessions/end-all",
        "/ap/adam",
    ] {
        let res = browser
            .http
            .post(app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={csrf}&name=X&email=x%40example.com"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 303, "{path}");
        assert!(res.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/ap/signin?return_to="));
    }
    let user = app
        .store()
        .find_user_by_email(EMAIL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.name, NAME);
}

#[tokio::test]
async fn the_home_page_links_the_customer_pages_when_signed_in() {
    let w = World::new(|_| {}).await;
    let (_, _, html) = w.browser.open("/").await.page();
    assert!(html.contains("href=\"/account\""), "{html}");
    assert!(html.contains("href=\"/ap/adam\""), "{html}");
    let (_, _, html) = w.app.browser().open("/").await.page();
    assert!(!html.contains("href=\"/ap/adam\""), "{html}");
}

// ---------------------------------------------------------------------------------------------------------------
// The profile

#[tokio::test]
async fn the_profile_is_edited_on_the_account_page() {
    let w = World::new(|_| {}).await;
    let shop = w.app.register_app(|_| {}).await;
    let tokens = tokens_with(&w, &w.app.oauth_client(&shop), "profile postal_code").await;
    let (url, html) = open_page(&w.browser, "/account").await;
    assert!(html.contains("autocomplete=\"name\""));
    assert!(html.contains("autocomplete=\"postal-code\""));
    assert!(
        html.contains(&format!("<strong>{EMAIL}</strong> (verified)")),
        "{html}"
    );
    assert_eq!(
        form_value(&html, "/account/profile", "postal_code"),
        "98101"
    );
    let (status, url, html) = w
        .browser
        .submit(
            &url,
            &html,
            "/account/profile",
            &[
                ("name", "Ada King"),
                ("email", " Ada.King@Example.com "),
                ("postal_code", ""),
            ],
            None,
            &[],
        )
        .await
        .page();
    assert_eq!(status, 200);
    assert!(url.ends_with("/account?done=profile"), "{url}");
    assert!(html.contains("Your profile is saved."), "{html}");
    // The profile form never changes the address, whatever it is sent: that takes a code (SPEC 2.8).
    let user = w.app.store().find_user(&w.user.id).await.unwrap().unwrap();
    assert_eq!(
        (user.name.as_str(), user.email.as_str(), user.postal_code),
        ("Ada King", EMAIL, None)
    );
    // Apps see the new profile; the address still signs in.
    let [_, (status, profile)] = token_answers(&w.app, access(&tokens)).await;
    assert_eq!(status, 200);
    assert_eq!(profile["name"], "Ada King");
    assert_eq!(profile["email"], EMAIL);
    assert!(signs_in(&w.app, EMAIL, PASSWORD).await);
    assert!(!signs_in(&w.app, "ada.king@example.com", PASSWORD).await);
}

#[tokio::test]
async fn a_profile_with_a_mistake_is_shown_again_with_the_reason_and_nothing_is_saved() {
    type Fields<'a> = &'a [(&'a str, &'a str)];
    let w = World::new(|_| {}).await;
    w.app.create_user("bob@example.com", "Bob", None).await;
    let cases: [(Fields, u16, &str); 3] = [
        (&[("name", "   ")], 400, "Enter your name"),
        (&[("name", "Ada\u{7}")], 400, "Enter your name"),
        (
            &[("postal_code", &"9".repeat(21))],
            400,
            "postal code of up to 20",
        ),
    ];
    for (fields, expected_status, expected_error) in cases {
        let (url, html) = open_page(&w.browser, "/account").await;
        let (status, _, html) = w
            .browser
            .submit(&url, &html, "/account/profile", fields, None, &[])
            .await
            .page();
        assert_eq!(status, expected_status, "{fields:?}");
        assert!(html.contains(expected_error), "{fields:?}:\n{html}");
        assert!(html.contains("role=\"alert\""), "{fields:?}");
        // What was typed is shown again, to correct.
        if let Some((_, v)) = fields.iter().find(|(k, _)| *k == "postal_code") {
            assert_eq!(form_value(&html, "/account/profile", "postal_code"), *v);
        }
        assert_eq!(
            w.app.store().find_user(&w.user.id).await.unwrap().unwrap(),
            w.user,
            "{fields:?}: nothing saved"
        );
    }
    let bob = w
        .app
        .store()
        .find_user_by_email("bob@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bob.name, "Bob");
}

// ---------------------------------------------------------------------------------------------------------------
// The password

#[tokio::test]
async fn a_wrong_current_password_or_a_short_new_one_is_refused() {
    let w = World::new(|_| {}).await;
    let cases: [(&str, &str, &str); 3] = [
        (
            "not my password",
            NEW_PASSWORD,
            "Your current password is not correct.",
        ),
        ("", NEW_PASSWORD, "Enter your current password."),
        (PASSWORD, "short", "at least 8 characters"),
    ];
    for (current, new, expected) in cases {
        let (url, html) = open_page(&w.browser, "/account").await;
        assert!(html.contains("autocomplete=\"current-password\""));
        assert!(html.contains("autocomplete=\"new-password\""));
        let (status, _, html) = w
            .browser
            .submit(
                &url,
                &html,
                "/account/password",
                &[("current_password", current), ("new_password", new)],
                None,
                &[],
            )
            .await
            .page();
        assert_eq!(status, 400, "{current:?}");
        assert!(html.contains(expected), "{current:?}:\n{html}");
    }
    let user = w.app.store().find_user(&w.user.id).await.unwrap().unwrap();
    assert_eq!(user.password_hash, w.user.password_hash);
    assert!(signs_in(&w.app, EMAIL, PASSWORD).await);
}

#[tokio::test]
async fn changing_the_password_signs_out_every_other_browser() {
    let w = World::new(|_| {}).await;
    let other = second_browser(&w).await;
    let (url, html) = open_page(&w.browser, "/account").await;
    let (status, url, html) = w
        .browser
        .submit(
            &url,
            &html,
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
            ],
            None,
            &[],
        )
        .await
        .page();
    assert_eq!(status, 200);
    assert!(url.ends_with("/account?done=password"), "{url}");
    assert!(html.contains("Your password is changed."), "{html}");
    let stored = w.app.store().find_user(&w.user.id).await.unwrap().unwrap();
    assert!(stored.password_hash.starts_with("$argon2id$"));
    assert_ne!(stored.password_hash, w.user.password_hash);
    // This browser stays signed in; the other one is sent to sign in.
    open_page(&w.browser, "/account").await;
    assert!(is_signin_page(&other.open("/account").await));
    assert!(
        !signs_in(&w.app, EMAIL, PASSWORD).await,
        "the old password no longer works"
    );
    assert!(
        signs_in(&w.app, EMAIL, NEW_PASSWORD).await,
        "the new one does"
    );
}

#[tokio::test]
async fn guessing_the_current_password_is_rate_limited_like_signing_in() {
    let app = spawn_app_with(Arc::new(sqlite_db()), |c| c.signin_limit = 3).await;
    let w = World::on(app, |_| {}).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (url, html) = open_page(&w.browser, "/account").await;
        let (status, _, _) = w
            .browser
            .submit(
                &url,
                &html,
                "/account/password",
                &[
                    ("current_password", "guess guess"),
                    ("new_password", NEW_PASSWORD),
                ],
                None,
                &[],
            )
            .await
            .page();
        statuses.push(status);
    }
    // Three guesses reach the limit (the correct sign-in before them did not count); the next is refused
    // before checking.
    assert_eq!(statuses, [400, 400, 400, 429]);
}

// ---------------------------------------------------------------------------------------------------------------
// Sessions

#[tokio::test]
async fn the_account_page_lists_sessions_and_signs_one_out() {
    let w = World::new(|_| {}).await;
    let other = second_browser(&w).await;
    let (url, html) = open_page(&w.browser, "/account").await;
    assert_eq!(html.matches("This browser").count(), 1, "{html}");
    assert_eq!(html.matches("Another browser").count(), 1, "{html}");
    let (status, url, html) = w
        .browser
        .submit(&url, &html, "/account/sessions/end", &[], None, &[])
        .await
        .page();
    assert_eq!(status, 200);
    assert!(url.ends_with("/account?done=session"), "{url}");
    assert!(html.contains("That browser is signed out."));
    assert!(!html.contains("Another browser"), "{html}");
    assert!(is_signin_page(&other.open("/account").await));
    open_page(&w.browser, "/account").await;
}

#[tokio::test]
async fn sign_out_everywhere_ends_every_session_including_this_one() {
    for (engine, db) in each_db().await {
        let w = World::on(spawn_app_on(Arc::new(db)).await, |_| {}).await;
        let other = second_browser(&w).await;
        let (url, html) = open_page(&w.browser, "/account").await;
        let after = w
            .browser
            .submit(&url, &html, "/account/sessions/end-all", &[], None, &[])
            .await;
        assert!(is_signin_page(&after), "{engine}: {after:?}");
        assert!(is_signin_page(&other.open("/account").await), "{engine}");
        assert!(
            is_signin_page(&w.browser.open("/ap/adam").await),
            "{engine}"
        );
        assert!(
            w.app
                .store()
                .list_sessions(&w.user.id, w.app.state.clock.now())
                .await
                .unwrap()
                .is_empty(),
            "{engine}"
        );
    }
}

#[tokio::test]
async fn signing_in_on_a_signed_in_browser_ends_its_previous_session() {
    for (engine, db) in each_db().await {
        let app = spawn_app_on(Arc::new(db)).await;
        let ada = app.create_user(EMAIL, NAME, None).await;
        let bob = app.create_user("bob@example.com", "Bob", None).await;
        let live = |user: &User| {
            let (store, user_id, now) =
                (app.store().clone(), user.id.clone(), app.state.clock.now());
            async move { store.list_sessions(&user_id, now).await.unwrap().len() }
        };
        let browser = app.browser();
        browser.sign_in(EMAIL, PASSWORD).await.page();
        assert_eq!(live(&ada).await, 1, "{engine}");
        // The same account again: the old session is replaced, not kept beside the new one.
        browser.sign_in(EMAIL, PASSWORD).await.page();
        assert_eq!(live(&ada).await, 1, "{engine}");
        // Another account: Ada's session on this browser is gone from the server.
        let (_, url, _) = browser.sign_in("bob@example.com", PASSWORD).await.page();
        assert!(!url.contains("/ap/signin"), "{engine}: {url}");
        assert_eq!(live(&ada).await, 0, "{engine}");
        assert_eq!(live(&bob).await, 1, "{engine}");
        let (_, url, html) = browser.open("/ap/register").await.page();
        let new_account = [
            ("name", "Cy"),
            ("email", "cy@example.com"),
            ("password", PASSWORD),
        ];
        let res = browser
            .submit_answer(&url, &html, "/ap/register", &new_account, None, &[])
            .await;
        // Signing up starts no session until the mailed code is entered (tests/it/verification.rs, where
        // verifying starts Cy's): Bob's stays.
        assert_eq!(res.status().as_u16(), 303, "{engine}");
        assert!(
            res.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/ap/verify"),
            "{engine}"
        );
        assert_eq!(live(&bob).await, 1, "{engine}");
    }
}

#[tokio::test]
async fn account_forms_without_the_right_csrf_token_change_nothing() {
    let w = World::new(|_| {}).await;
    let other = second_browser(&w).await;
    let (_, html) = open_page(&w.browser, "/account").await;
    let session = form_value(&html, "/account/sessions/end", "session");
    let forms: [(&str, Vec<(&str, &str)>); 4] = [
        (
            "/account/profile",
            vec![
                ("name", "Mallory"),
                ("email", "mallory@example.com"),
                ("postal_code", "1"),
            ],
        ),
        (
            "/account/password",
            vec![
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
            ],
        ),
        ("/account/sessions/end", vec![("session", &session)]),
        ("/account/sessions/end-all", vec![]),
    ];
    let stranger = w.app.browser();
    let (_, _, stranger_html) = stranger.open("/ap/signin").await.page();
    let strangers_csrf = form_value(&stranger_html, "/ap/signin", "csrf");
    for (path, fields) in &forms {
        for csrf in [
            None,
            Some(""),
            Some("not-a-token"),
            Some(strangers_csrf.as_str()),
        ] {
            let mut pairs = fields.clone();
            if let Some(c) = csrf {
                pairs.push(("csrf", c));
            }
            assert_eq!(
                post_raw(&w.browser, &w.app, path, &pairs).await,
                400,
                "{path} {csrf:?}"
            );
        }
    }
    assert_eq!(
        w.app.store().find_user(&w.user.id).await.unwrap().unwrap(),
        w.user
    );
    open_page(&w.browser, "/account").await;
    open_page(&other, "/account").await;
    assert!(signs_in(&w.app, EMAIL, PASSWORD).await);
}

#[tokio::test]
async fn customer_pages_carry_the_page_security_headers_and_are_not_cached() {
    let w = World::new(|_| {}).await;
    for path in ["/ap/adam", "/account/apps", "/account"] {
        let res = w.browser.http.get(w.app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let h = res.headers();
        let get = |name: &str| h.get(name).map(|v| v.to_str().unwrap()).unwrap_or_default();
        assert_eq!(get("x-frame-options"), "DENY", "{path}");
        assert!(
            get("content-security-policy").contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert_eq!(get("referrer-policy"), "no-referrer", "{path}");
        assert!(get("cache-control").contains("no-store"), "{path}");
        let html = res.text().await.unwrap();
        assert!(html.contains("name=\"viewport\""), "{path}: phone-sized");
        assert!(!html.contains("<script"), "{path}: no JavaScript");
    }
}

#[tokio::test]
async fn a_code_issued_before_the_app_was_removed_buys_no_tokens_after() {
    let w = World::new(|_| {}).await;
    let shop = w.app.register_app(|_| {}).await;
    let client = w.app.oauth_client(&shop);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    let back = login_through(&w.browser, url.as_str(), EMAIL).await;
    let code = Step::param(&back, "code").unwrap();

    let (url, html) = open_page(&w.browser, "/ap/adam").await;
    w.browser
        .submit(&url, &html, "/ap/adam", &[], None, &[])
        .await
        .page();
    let refused = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http_client())
        .await
        .unwrap_err();
    match refused {
        RequestTokenError::ServerResponse(r) => {
            assert_eq!(*r.error(), BasicErrorResponseType::InvalidGrant)
        }
        other => panic!("expected invalid_grant, got {other:?}"),
    }
}
