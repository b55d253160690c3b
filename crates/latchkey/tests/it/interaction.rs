//! When the customer must be asked (SPEC 2.1, 2.6, RFC 9700 4.11.2, RFC 8252 8.6): an unverified app's request
//! errors wait on a page with a link instead of redirecting (no open redirector) until the operator verifies it;
//! a public app with a loopback or private-use return URL is confirmed every time, `prompt=none` included; a fresh
//! sign-in asked by `prompt=login` or `max_age` cannot be skipped by following the sign-in page's `return_to`;
//! request objects are refused by name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::developer::{create_app, developer, text_of};
use crate::support::*;
use latchkey_core::client::{ClientKind, Feature};
use oauth2::basic::BasicTokenResponse;
use oauth2::{AuthorizationCode, PkceCodeVerifier, RedirectUrl, TokenResponse};
use scraper::{Html, Selector};
use url::Url;

const DEV: &str = "dev@example.com";
const CUSTOMER: &str = "ada@example.com";
const EVIL: &str = "https://evil.example/x";

// ---------------------------------------------------------------------------------------------------------------
// The vocabulary of this file

/// The link that leaves Latchkey on an interstitial: its text and its exact `href`.
fn continue_link(html: &str) -> Option<(String, String)> {
    let doc = Html::parse_document(html);
    let sel = Selector::parse("a").unwrap();
    doc.select(&sel)
        .map(|a| {
            (
                a.text().collect::<String>().trim().to_owned(),
                a.value().attr("href").unwrap_or_default().to_owned(),
            )
        })
        .find(|(text, _)| text.starts_with("Continue to "))
}

/// The error redirect Latchkey builds: `uri` with `pairs` (and `iss`) in the query, in order.
fn error_url(uri: &str, pairs: &[(&str, &str)], issuer: &str) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        query.append_pair(k, v);
    }
    query.append_pair("iss", issuer);
    format!("{uri}?{}", query.finish())
}

/// Query parameters, in order.
type Pairs<'a> = Vec<(&'a str, &'a str)>;

/// `/ap/oa` with exactly `pairs`, as a hand-made link would be.
fn authorize_url(app: &TestApp, pairs: &[(&str, &str)]) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    app.url(&format!("/ap/oa?{query}"))
}

/// A PKCE request from `client` to `redirect_uri` for `scopes`, with `extra` parameters: URL, state, verifier.
fn pkce_request(
    client: &OAuthClient,
    redirect_uri: &str,
    scopes: &str,
    extra: &[(&str, &str)],
) -> (String, String, PkceCodeVerifier) {
    let client = client
        .clone()
        .set_redirect_uri(RedirectUrl::new(redirect_uri.to_owned()).unwrap());
    crate::support::pkce_request(&client, scopes, extra)
}

/// Redeems `code` (sent to `redirect_uri`) with `verifier`.
async fn exchange(
    client: &OAuthClient,
    redirect_uri: &str,
    code: &str,
    verifier: &PkceCodeVerifier,
) -> BasicTokenResponse {
    client
        .clone()
        .set_redirect_uri(RedirectUrl::new(redirect_uri.to_owned()).unwrap())
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.secret().clone()))
        .request_async(&http_client())
        .await
        .unwrap()
}

fn param(url: &Url, name: &str) -> Option<String> {
    Step::param(url, name)
}

/// The redirect went to `redirect_uri` with `state` and a code; returns the code.
fn code_at(back: &Url, redirect_uri: &str, state: &str) -> String {
    assert!(back.as_str().starts_with(redirect_uri), "{back}");
    assert_eq!(param(back, "state").as_deref(), Some(state), "{back}");
    assert_eq!(param(back, "error"), None, "{back}");
    param(back, "code").unwrap_or_else(|| panic!("no code in {back}"))
}

fn is_signin_page(step: &Step) -> bool {
    matches!(step, Step::Page { status: 200, url, .. } if url.contains("/ap/signin"))
}

/// The `return_to` of a sign-in page's URL.
fn return_to_of(signin_url: &str) -> String {
    let url = Url::parse(signin_url).unwrap();
    param(&url, "return_to").expect("the sign-in page says where it returns to")
}

// ---------------------------------------------------------------------------------------------------------------
// 1. No open redirector (M1): an unverified app's errors before any interaction wait on a page

#[tokio::test]
async fn an_unverified_apps_request_errors_wait_on_a_page_until_the_operator_verifies_it() {
    let app = spawn_app().await;
    let (dev, _) = developer(&app, DEV).await;
    let evil = create_app(&dev, &[("name", "Totally Legit"), ("redirect_uris", EVIL)]).await;
    let issuer = app.base.clone();
    let console = format!("/developer/apps/{}", evil.client_id);
    let (_, _, html) = dev.open(&console).await.page();
    assert!(
        text_of(&html, "verified").unwrap().starts_with("Not yet"),
        "the console says the profile is unverified:\n{html}"
    );

    // The attacker's link: nothing but the client id, opened by a browser with no session.
    let bare = authorize_url(&app, &[("client_id", &evil.client_id)]);
    let expected_bare = error_url(
        EVIL,
        &[
            ("error", "invalid_request"),
            (
                "error_description",
                "The request is missing a required parameter : response_type",
            ),
        ],
        &issuer,
    );
    let id = evil.client_id.as_str();
    let cases: Vec<(&str, Pairs, String)> = vec![
        (
            "nothing but the client id",
            vec![("client_id", id)],
            expected_bare.clone(),
        ),
        (
            "an unsupported response type, with a state",
            vec![
                ("client_id", id),
                ("response_type", "id_token"),
                ("scope", "profile"),
                ("state", "<payload>"),
            ],
            error_url(
                EVIL,
                &[
                    ("error", "unsupported_response_type"),
                    (
                        "error_description",
                        "The request has an unsupported parameter value : response_type",
                    ),
                    ("state", "<payload>"),
                ],
                &issuer,
            ),
        ),
        (
            "an unknown scope",
            vec![
                ("client_id", id),
                ("response_type", "code"),
                ("scope", "bogus"),
            ],
            error_url(
                EVIL,
                &[
                    ("error", "invalid_scope"),
                    (
                        "error_description",
                        "An unknown scope was requested : bogus",
                    ),
                ],
                &issuer,
            ),
        ),
        (
            "a request object",
            vec![
                ("client_id", id),
                ("response_type", "code"),
                ("scope", "profile"),
                ("request", "eyJhbGciOiJub25lIn0.e30."),
            ],
            error_url(
                EVIL,
                &[
                    ("error", "request_not_supported"),
                    (
                        "error_description",
                        "Request objects are not supported : request",
                    ),
                ],
                &issuer,
            ),
        ),
    ];
    for (what, pairs, expected) in &cases {
        let (status, url, html) = app.browser().open(&authorize_url(&app, pairs)).await.page();
        assert_eq!(
            status, 200,
            "{what}: an interstitial, not a redirect ({url}):\n{html}"
        );
        let (text, href) =
            continue_link(&html).unwrap_or_else(|| panic!("{what}: no link:\n{html}"));
        assert_eq!(text, "Continue to evil.example", "{what}");
        assert_eq!(
            &href, expected,
            "{what}: the link carries the exact redirect"
        );
        assert!(
            html.contains("Totally Legit"),
            "{what}: the page names the app:\n{html}"
        );
        assert!(
            html.contains("not verified by 127.0.0.1"),
            "{what}:\n{html}"
        );
    }
    let (_, _, html) = app.browser().open(&bare).await.page();
    assert!(
        html.contains("sign-in request was not valid"),
        "the error in words:\n{html}"
    );

    // What the app asked for (prompt=none) and what the customer chose are answered directly.
    let silent = authorize_url(
        &app,
        &[
            ("client_id", id),
            ("response_type", "code"),
            ("scope", "profile"),
            ("prompt", "none"),
            ("state", "s1"),
        ],
    );
    let back = app.browser().open(&silent).await.left_to();
    assert!(back.as_str().starts_with(EVIL), "{back}");
    assert_eq!(param(&back, "error").as_deref(), Some("login_required"));
    app.create_user(CUSTOMER, "Ada", None).await;
    let customer = app.browser();
    customer.sign_in(CUSTOMER, PASSWORD).await.page();
    let asking = authorize_url(
        &app,
        &[
            ("client_id", id),
            ("response_type", "code"),
            ("scope", "profile"),
            ("state", "s2"),
        ],
    );
    let consent = customer.open(&asking).await;
    let Step::Page { html, .. } = &consent else {
        panic!("expected the consent page: {consent:?}")
    };
    assert!(
        html.contains("Totally Legit is not verified by 127.0.0.1"),
        "the consent page says the app is not verified:\n{html}"
    );
    let back = customer.consent_on(consent, false, &[]).await.left_to();
    assert_eq!(
        param(&back, "error").as_deref(),
        Some("access_denied"),
        "{back}"
    );

    // The operator verifies it: errors are redirected (303), to exactly the URL the link carried.
    let verified = latchkey::cli::verify_client(&app.state, id).await.unwrap();
    assert!(verified.verified);
    let back = app.browser().open(&bare).await.left_to();
    assert_eq!(back.as_str(), expected_bare);
    let consent = customer.open(&asking).await;
    let Step::Page { html, .. } = &consent else {
        panic!("expected the consent page: {consent:?}")
    };
    assert!(!html.contains("not verified"), "{html}");
    let (_, _, html) = dev.open(&console).await.page();
    assert!(
        text_of(&html, "verified").unwrap().starts_with("Yes"),
        "the console says the profile is verified:\n{html}"
    );
    assert!(latchkey::cli::verify_client(
        &app.state,
        "lk1.application-oa2-client.00000000000000000000000000000000"
    )
    .await
    .is_err());
}

#[tokio::test]
async fn a_console_edit_of_where_customers_are_sent_makes_a_verified_profile_unverified_again() {
    let app = spawn_app().await;
    let (dev, _) = developer(&app, DEV).await;
    let shop = create_app(&dev, &[]).await;
    latchkey::cli::verify_client(&app.state, &shop.client_id)
        .await
        .unwrap();
    let edit = format!("/developer/apps/{}/edit", shop.client_id);
    let (_, url, html) = dev.open(&edit).await.page();
    dev.submit(&url, &html, &edit, &[("redirect_uris", EVIL)], None, &[])
        .await
        .page();
    let client = app
        .store()
        .find_client(&shop.client_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(client.policy.redirect_uris, vec![EVIL.to_owned()]);
    assert!(
        !client.verified,
        "the operator vouched for the old return URL only"
    );
    let bare = authorize_url(&app, &[("client_id", &shop.client_id)]);
    let (status, _, _) = app.browser().open(&bare).await.page();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_device_confirmation_says_an_unverified_app_is_not_verified() {
    let app = spawn_app().await;
    let tv = app
        .register_app(|i| {
            i.features.insert(Feature::Device);
            i.name = "Living Room TV".into();
            i.verified = false;
        })
        .await;
    app.create_user(CUSTOMER, "Ada", None).await;
    let customer = app.browser();
    customer.sign_in(CUSTOMER, PASSWORD).await.page();
    let html = device_confirmation(&app, &customer, &tv.client_id).await;
    assert!(
        html.contains("Living Room TV is not verified by 127.0.0.1"),
        "{html}"
    );
    latchkey::cli::verify_client(&app.state, &tv.client_id)
        .await
        .unwrap();
    let html = device_confirmation(&app, &customer, &tv.client_id).await;
    assert!(!html.contains("not verified"), "{html}");
}

/// A new code pair for `client_id`, entered on `/code`: the "Is this your device?" page.
async fn device_confirmation(app: &TestApp, customer: &Browser, client_id: &str) -> String {
    let res = app
        .api()
        .post(app.url("/auth/o2/create/codepair"))
        .form(&[
            ("response_type", "device_code"),
            ("client_id", client_id),
            ("scope", "profile"),
        ])
        .send()
        .await
        .unwrap();
    let pair: serde_json::Value = res.json().await.unwrap();
    let (_, url, html) = customer.open("/code").await.page();
    let code = pair["user_code"].as_str().unwrap();
    let (status, _, html) = customer
        .submit(&url, &html, "/code", &[("user_code", code)], None, &[])
        .await
        .page();
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Is this your device?"), "{html}");
    html
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Native apps always confirm (M2, RFC 8252 8.6)

/// A public (native) app registered by the operator with a loopback return URL, its client, and a customer
/// signed in on a browser.
async fn native_world(redirect_uri: &str) -> (TestApp, OAuthClient, Browser) {
    let app = spawn_app().await;
    let uri = redirect_uri.to_owned();
    let native = app
        .register_app(|i| {
            i.kind = ClientKind::Public;
            i.redirect_uris = vec![uri];
        })
        .await;
    let client = app.oauth_client(&native);
    app.create_user(CUSTOMER, "Ada", None).await;
    let browser = app.browser();
    browser.sign_in(CUSTOMER, PASSWORD).await.page();
    (app, client, browser)
}

#[tokio::test]
async fn a_loopback_app_is_confirmed_every_time_even_with_consent_remembered() {
    let (_app, client, browser) = native_world("http://127.0.0.1/callback").await;
    let first = "http://127.0.0.1:50123/callback";
    let (url, state, verifier) = pkce_request(&client, first, "profile", &[]);
    let back = login_through(&browser, &url, CUSTOMER).await;
    exchange(&client, first, &code_at(&back, first, &state), &verifier).await;

    // Another process on another port, with its own PKCE pair, asking silently: no code.
    let other = "http://127.0.0.1:40000/callback";
    let (url, state, _) = pkce_request(&client, other, "profile", &[("prompt", "none")]);
    let back = browser.open(&url).await.left_to();
    assert!(back.as_str().starts_with(other), "{back}");
    assert_eq!(
        param(&back, "error").as_deref(),
        Some("interaction_required"),
        "{back}"
    );
    assert_eq!(param(&back, "state").as_deref(), Some(state.as_str()));
    assert_eq!(param(&back, "code"), None);

    // Without prompt: the customer is asked, and Continue gives the code.
    let (url, state, verifier) = pkce_request(&client, other, "profile", &[]);
    let step = browser.open(&url).await;
    assert!(is_confirm_page(&step), "expected Continue to …?: {step:?}");
    let Step::Page { html, .. } = &step else {
        unreachable!()
    };
    assert!(
        html.contains("Continue to <span class=\"app\">Test Shop</span>?"),
        "{html}"
    );
    let back = browser.confirm_on(step, true).await.left_to();
    let tokens = exchange(&client, other, &code_at(&back, other, &state), &verifier).await;
    assert!(tokens.refresh_token().is_some());

    // Cancel answers access_denied, directly.
    let (url, _, _) = pkce_request(&client, other, "profile", &[]);
    let step = browser.open(&url).await;
    let back = browser.confirm_on(step, false).await.left_to();
    assert_eq!(
        param(&back, "error").as_deref(),
        Some("access_denied"),
        "{back}"
    );
}

#[tokio::test]
async fn a_loopback_app_asking_only_for_openid_is_confirmed_too() {
    let (_app, client, browser) = native_world("http://127.0.0.1/callback").await;
    let port = "http://127.0.0.1:40000/callback";
    let (url, state, _) = pkce_request(
        &client,
        port,
        "openid",
        &[("prompt", "none"), ("nonce", "n1")],
    );
    let back = browser.open(&url).await.left_to();
    assert_eq!(
        param(&back, "error").as_deref(),
        Some("interaction_required"),
        "{back}"
    );
    assert_eq!(param(&back, "state").as_deref(), Some(state.as_str()));

    let (url, state, verifier) = pkce_request(&client, port, "openid", &[("nonce", "n2")]);
    let step = browser.open(&url).await;
    assert!(is_confirm_page(&step), "{step:?}");
    let back = browser.confirm_on(step, true).await.left_to();
    exchange(&client, port, &code_at(&back, port, &state), &verifier).await;
}

#[tokio::test]
async fn a_private_use_scheme_app_is_confirmed_and_an_https_one_keeps_the_silent_path() {
    let (_app, client, browser) = native_world("com.example.shop:/oauth").await;
    let uri = "com.example.shop:/oauth";
    let (url, _, _) = pkce_request(&client, uri, "profile:user_id", &[("prompt", "none")]);
    let back = browser.open(&url).await.left_to();
    assert_eq!(
        param(&back, "error").as_deref(),
        Some("interaction_required"),
        "{back}"
    );
    let (url, _, _) = pkce_request(&client, uri, "profile:user_id", &[]);
    assert!(is_confirm_page(&browser.open(&url).await));

    // A public app on https: the return URL identifies it, so remembered consent is silent as before.
    let (_app, client, browser) = native_world("https://spa.example/cb").await;
    let uri = "https://spa.example/cb";
    let (url, _, _) = pkce_request(&client, uri, "profile", &[]);
    login_through(&browser, &url, CUSTOMER).await;
    let (url, state, _) = pkce_request(&client, uri, "profile", &[("prompt", "none")]);
    code_at(&browser.open(&url).await.left_to(), uri, &state);
}

#[tokio::test]
async fn the_confirmation_is_bound_to_the_session_and_the_exact_request() {
    let (app, client, browser) = native_world("http://127.0.0.1/callback").await;
    let port = "http://127.0.0.1:40000/callback";
    let (url, _, _) = pkce_request(&client, port, "openid", &[]);
    let step = browser.open(&url).await;
    let (_, page_url, html) = step.page();
    // Another request (the attacker's own PKCE challenge) under this page's token: refused.
    let (other, _, _) = pkce_request(&client, port, "openid", &[]);
    let other_query = Url::parse(&other).unwrap().query().unwrap().to_owned();
    let res = browser
        .submit_answer(
            &page_url,
            &html,
            "/ap/oa/consent",
            &[("request", &other_query)],
            Some(("decision", "allow")),
            &[],
        )
        .await;
    assert_eq!(res.status(), 400);
    // Another browser (no CSRF cookie of this one, no session): refused.
    let stranger = app.browser();
    stranger.sign_in(CUSTOMER, PASSWORD).await.page();
    let res = stranger
        .submit_answer(
            &page_url,
            &html,
            "/ap/oa/consent",
            &[],
            Some(("decision", "allow")),
            &[],
        )
        .await;
    assert_eq!(res.status(), 400);
}

// ---------------------------------------------------------------------------------------------------------------
// 3. A fresh sign-in cannot be skipped (L4)

#[tokio::test]
async fn prompt_login_cannot_be_skipped_by_following_the_signin_pages_return_to() {
    let app = spawn_app().await;
    let shop = app.register_app(|_| {}).await;
    let client = app.oauth_client(&shop);
    app.create_user(CUSTOMER, "Ada", None).await;
    let browser = app.browser();
    browser.sign_in(CUSTOMER, PASSWORD).await.page();
    let (url, _, _) = pkce_request(&client, &shop.redirect_uri, "profile", &[]);
    login_through(&browser, &url, CUSTOMER).await;

    for extra in [vec![("prompt", "login")], vec![("max_age", "60")]] {
        app.state.clock.advance(120);
        let (url, state, verifier) = pkce_request(&client, &shop.redirect_uri, "profile", &extra);
        let step = browser.open(&url).await;
        assert!(is_signin_page(&step), "{extra:?}: {step:?}");
        let Step::Page {
            url: signin_url, ..
        } = &step
        else {
            unreachable!()
        };
        let return_to = return_to_of(signin_url);

        // Someone at the signed-in browser opens return_to instead of signing in: asked to sign in again.
        let again = browser.open(&return_to).await;
        assert!(
            is_signin_page(&again),
            "{extra:?}: followed return_to: {again:?}"
        );
        // Nor does a marker of Latchkey's asking made up to say it asked before the last sign-in.
        let (head, _) = return_to.split_once("lk_reauth=").unwrap();
        let before_last_sign_in = app.state.clock.now() - 120;
        let forged = format!("{head}lk_reauth={before_last_sign_in}.AAAA");
        assert!(is_signin_page(&browser.open(&forged).await), "{extra:?}");

        // Signing in on the page does it.
        let back = browser.sign_in_on(step, CUSTOMER, PASSWORD).await.left_to();
        let code = code_at(&back, &shop.redirect_uri, &state);
        exchange(&client, &shop.redirect_uri, &code, &verifier).await;

        // The same URL reopened from the history minutes later (its marker still valid) does not pass on that
        // sign-in any more.
        app.state.clock.advance(300);
        assert!(
            is_signin_page(&browser.open(&return_to).await),
            "{extra:?}: reopened from the history"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// 4. Request objects are refused by name (I6)

#[tokio::test]
async fn request_and_request_uri_are_refused_rather_than_ignored() {
    let app = spawn_app().await;
    let shop = app.register_app(|_| {}).await;
    app.create_user(CUSTOMER, "Ada", None).await;
    let browser = app.browser();
    browser.sign_in(CUSTOMER, PASSWORD).await.page();
    for (name, value, error) in [
        (
            "request",
            "eyJhbGciOiJub25lIn0.eyJzY29wZSI6InByb2ZpbGUifQ.",
            "request_not_supported",
        ),
        (
            "request_uri",
            "https://shop.example/request.jwt",
            "request_uri_not_supported",
        ),
    ] {
        let url = authorize_url(
            &app,
            &[
                ("client_id", &shop.client_id),
                ("response_type", "code"),
                ("scope", "profile"),
                ("state", "s"),
                (name, value),
            ],
        );
        let back = browser.open(&url).await.left_to();
        assert!(back.as_str().starts_with(&shop.redirect_uri), "{back}");
        assert_eq!(param(&back, "error").as_deref(), Some(error), "{back}");
        assert!(param(&back, "error_description").unwrap().contains(name));
        assert_eq!(param(&back, "state").as_deref(), Some("s"));
    }
    let discovery: serde_json::Value = app
        .api()
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["request_parameter_supported"], false);
    assert_eq!(discovery["request_uri_parameter_supported"], false);
}
