//! The JavaScript SDK's server side (SPEC 2.7), without a browser: the script and the login buttons as served,
//! the popup relay page for unknown, malformed and real apps, and the popup's code flow through the relay (the
//! requests `login1.js` makes, with the relay as the return URL). The real-browser story is in `browser.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::*;
use latchkey_core::client::ClientKind;
use latchkey_core::pkce;
use scraper::{Html, Selector};
use serde_json::Value;

const EMAIL: &str = "ada@example.com";
const SHOP: &str = "https://shop.example";
const SHOP_LOCAL: &str = "http://127.0.0.1:8081";
/// A client id of the right form that no app has.
const NOBODY: &str = "lk1.application-oa2-client.00000000000000000000000000000000";

// ---------------------------------------------------------------------------------------------------------------
// The vocabulary of this file

struct Got {
    status: u16,
    content_type: String,
    csp: String,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn get(app: &TestApp, path: &str) -> Got {
    let res = app.api().get(app.url(path)).send().await.unwrap();
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    Got {
        status: res.status().as_u16(),
        content_type: header("content-type"),
        csp: header("content-security-policy"),
        headers: res.headers().clone(),
        body: res.text().await.unwrap(),
    }
}

fn relay_path(client_id: &str) -> String {
    format!("/sdk/relay/{client_id}")
}

/// The origins the relay page will post to (its `latchkey-origins` meta tag), in order.
fn relay_origins(html: &str) -> Vec<String> {
    let doc = Html::parse_document(html);
    let sel = Selector::parse(r#"meta[name="latchkey-origins"]"#).unwrap();
    let metas: Vec<_> = doc.select(&sel).collect();
    assert_eq!(metas.len(), 1, "{html}");
    metas[0]
        .value()
        .attr("content")
        .unwrap()
        .split(' ')
        .filter(|o| !o.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Every `<script>` of a page: (its `src`, its inline text).
fn scripts(html: &str) -> Vec<(Option<String>, String)> {
    let doc = Html::parse_document(html);
    let sel = Selector::parse("script").unwrap();
    doc.select(&sel)
        .map(|s| {
            (
                s.value().attr("src").map(str::to_owned),
                s.text().collect::<String>(),
            )
        })
        .collect()
}

/// What `login1.js`'s `authorize` asks for in popup mode: the relay as the return URL, PKCE S256.
fn popup_authorize_url(app: &TestApp, client_id: &str, challenge: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", client_id)
        .append_pair("response_type", "code")
        .append_pair("scope", "profile")
        .append_pair("state", "popup-state")
        .append_pair("redirect_uri", &app.url(&relay_path(client_id)))
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    app.url(&format!("/ap/oa?{query}"))
}

// ---------------------------------------------------------------------------------------------------------------
// The script and the buttons

#[tokio::test]
async fn the_sdk_script_is_javascript_that_defines_latchkey_login_and_amazon_login() {
    let app = spawn_app().await;
    let js = get(&app, "/sdk/login1.js").await;
    assert_eq!(js.status, 200);
    assert!(
        js.content_type.starts_with("text/javascript"),
        "{}",
        js.content_type
    );
    assert!(
        js.body.contains("global.latchkey.Login = Login"),
        "{}",
        js.body
    );
    assert!(
        js.body
            .contains("if (!global.amazon) { global.amazon = { Login: Login }; }"),
        "amazon.Login is defined unless the page has its own"
    );
    // Login with Amazon's method names (SPEC 2.7).
    for method in [
        "setClientId:",
        "authorize:",
        "retrieveToken:",
        "retrieveProfile:",
        "logout:",
        "getClientId:",
        "setUseCookie:",
        "setSiteDomain:",
    ] {
        assert!(js.body.contains(method), "login1.js has no {method}");
    }
    // LWA's cookie names, which sites' server code reads (SPEC 2.7; the browser story checks their contents).
    for cookie in ["'amazon_Login_accessToken'", "'amazon_Login_state_cache'"] {
        assert!(js.body.contains(cookie), "login1.js never names {cookie}");
    }
    // Small, with no dependencies: nothing is loaded from anywhere else.
    assert!(js.body.len() < 16 * 1024, "{} bytes", js.body.len());
    assert!(!js.body.contains("import ") && !js.body.contains("require("));

    let relay = get(&app, "/sdk/relay.js").await;
    assert_eq!(relay.status, 200);
    assert!(relay.content_type.starts_with("text/javascript"));
}

#[tokio::test]
async fn the_login_buttons_are_svg_images_with_a_name() {
    let app = spawn_app().await;
    for path in ["/sdk/button-light.svg", "/sdk/button-dark.svg"] {
        let svg = get(&app, path).await;
        assert_eq!(svg.status, 200, "{path}");
        assert_eq!(svg.content_type, "image/svg+xml", "{path}");
        assert!(svg.body.starts_with("<svg"), "{path}: {}", svg.body);
        assert!(
            svg.body
                .contains(r#"role="img" aria-label="Login with Latchkey""#),
            "{path}"
        );
        assert!(!svg.body.contains("<script"), "{path}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The relay page

#[tokio::test]
async fn the_relay_of_an_unknown_or_malformed_client_id_is_a_clear_4xx_page() {
    let app = spawn_app().await;
    let no_origins = app.register_app(|a| a.allowed_origins.clear()).await;
    let long = "a".repeat(4000);
    for client_id in [
        NOBODY,
        no_origins.client_id.as_str(),
        "not-a-client-id",
        "lk1.application-oa2-client.",
        "lk1.application-oa2-client.ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ",
        "%00",
        "%FF%FE",
        "..%2F..%2Fetc%2Fpasswd",
        "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        long.as_str(),
    ] {
        let got = get(&app, &relay_path(client_id)).await;
        let shown = &client_id[..client_id.len().min(40)];
        assert!(
            (400..500).contains(&got.status),
            "{shown}: {} {}",
            got.status,
            got.body
        );
        assert!(
            got.content_type.starts_with("text/html"),
            "{shown}: {}",
            got.content_type
        );
        assert!(
            got.body.contains("This sign-in window belongs to no app"),
            "{shown}: {}",
            got.body
        );
        // An error page runs no script and posts nothing to anyone.
        assert!(scripts(&got.body).is_empty(), "{shown}");
        assert!(!got.body.contains("latchkey-origins"), "{shown}");
        assert!(!got.body.contains("<script>alert"), "{shown}");
        assert!(!got.csp.contains("script-src"), "{shown}: {}", got.csp);
    }
}

#[tokio::test]
async fn the_relay_of_an_app_with_origins_posts_to_exactly_those_origins_and_runs_only_its_own_script(
) {
    let app = spawn_app().await;
    let shop = app
        .register_app(|a| {
            a.name = "Shop <&> Co".into();
            a.kind = ClientKind::Public;
            a.allowed_origins = vec![SHOP.into(), SHOP_LOCAL.into()];
        })
        .await;
    let other = app
        .register_app(|a| a.allowed_origins = vec!["https://other.example".into()])
        .await;

    let got = get(&app, &relay_path(&shop.client_id)).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert!(got.content_type.starts_with("text/html"));
    assert_eq!(relay_origins(&got.body), [SHOP, SHOP_LOCAL]);
    assert!(!got.body.contains("https://other.example"));
    // The app's name is text on the page, never markup.
    assert!(got.body.contains("Shop &#60;&#38;&#62; Co"), "{}", got.body);

    // The one page that runs a script: its own, from Latchkey, and nothing inline.
    assert_eq!(
        scripts(&got.body),
        [(Some("/sdk/relay.js".to_owned()), String::new())]
    );
    let directives: Vec<&str> = got.csp.split(';').map(str::trim).collect();
    assert!(directives.contains(&"default-src 'none'"), "{}", got.csp);
    assert!(directives.contains(&"script-src 'self'"), "{}", got.csp);
    assert!(
        directives.contains(&"frame-ancestors 'none'"),
        "{}",
        got.csp
    );
    assert!(!got.csp.contains("unsafe"), "{}", got.csp);
    assert_eq!(got.csp.matches("script-src").count(), 1, "{}", got.csp);
    assert_eq!(got.headers["x-frame-options"], "DENY");
    assert!(got.headers.get("access-control-allow-origin").is_none());

    // Each app's relay lists its own origins.
    let got = get(&app, &relay_path(&other.client_id)).await;
    assert_eq!(relay_origins(&got.body), ["https://other.example"]);
}

// ---------------------------------------------------------------------------------------------------------------
// The popup's code flow, as login1.js runs it

#[tokio::test]
async fn the_popup_flow_returns_through_the_relay_and_the_code_is_exchanged_from_the_allowed_origin(
) {
    let app = spawn_app().await;
    let shop = app
        .register_app(|a| {
            a.kind = ClientKind::Public;
            a.allowed_origins = vec![SHOP.into()];
        })
        .await;
    app.create_user(EMAIL, "Ada Lovelace", None).await;
    let browser = app.browser();
    let verifier = "a-verifier-of-forty-three-characters-or-more-xyz";
    let mut step = browser
        .open(&popup_authorize_url(
            &app,
            &shop.client_id,
            &pkce::s256(verifier),
        ))
        .await;
    step = browser.sign_in_on(step, EMAIL, PASSWORD).await;
    // The relay is on Latchkey, so the browser stays on Latchkey: it ends on the relay with the code.
    let (status, at, html) = browser.consent_on(step, true, &[]).await.page();
    assert_eq!(status, 200, "{html}");
    let at = url::Url::parse(&at).unwrap();
    assert_eq!(at.path(), relay_path(&shop.client_id));
    assert_eq!(Step::param(&at, "state").as_deref(), Some("popup-state"));
    assert_eq!(relay_origins(&html), [SHOP]);
    let code = Step::param(&at, "code").expect("a code on the relay");

    // retrieveToken: the page on the allowed origin exchanges the code (no secret, PKCE) and may read the answer.
    let res = app
        .api()
        .post(app.url("/auth/o2/token"))
        .header("origin", SHOP)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", shop.client_id.as_str()),
            (
                "redirect_uri",
                app.url(&relay_path(&shop.client_id)).as_str(),
            ),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], SHOP);
    let tokens: Value = res.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    assert!(tokens["refresh_token"].is_string(), "{tokens}");

    // retrieveProfile, from the same origin.
    let res = app
        .api()
        .get(app.url("/user/profile"))
        .header("origin", SHOP)
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], SHOP);
    let profile: Value = res.json().await.unwrap();
    assert_eq!(profile["email"], EMAIL);
}

#[tokio::test]
async fn only_an_app_with_origins_may_return_through_its_own_relay() {
    let app = spawn_app().await;
    let server_side = app.register_app(|a| a.allowed_origins.clear()).await;
    let shop = app
        .register_app(|a| {
            a.kind = ClientKind::Public;
            a.allowed_origins = vec![SHOP.into()];
        })
        .await;
    app.create_user(EMAIL, "Ada Lovelace", None).await;
    let browser = app.browser();
    browser.sign_in(EMAIL, PASSWORD).await.page();
    let challenge = pkce::s256("a-verifier-of-forty-three-characters-or-more-xyz");

    // An app without origins has no relay; another app's relay is not a return URL of this one. Both are pages
    // (never a redirect), as for any return URL the app did not register.
    let foreign_relay = popup_authorize_url(&app, &shop.client_id, &challenge).replace(
        &format!("client_id={}", shop.client_id),
        &format!("client_id={}", server_side.client_id),
    );
    for url in [
        popup_authorize_url(&app, &server_side.client_id, &challenge),
        foreign_relay,
    ] {
        let (status, at, html) = browser.open(&url).await.page();
        assert_eq!(status, 400, "{at}: {html}");
        assert!(at.contains("/ap/oa"), "{at}");
        assert!(
            !html.contains("would like to use your Latchkey account"),
            "{html}"
        );
    }

    // The relay is accepted only exactly: not with a trailing slash or a query.
    let exact = app.url(&relay_path(&shop.client_id));
    let good = popup_authorize_url(&app, &shop.client_id, &challenge);
    for near in [format!("{exact}/"), format!("{exact}?x=1")] {
        let url = good.replace(
            &url::form_urlencoded::byte_serialize(exact.as_bytes()).collect::<String>(),
            &url::form_urlencoded::byte_serialize(near.as_bytes()).collect::<String>(),
        );
        assert_ne!(url, good);
        let (status, _, html) = browser.open(&url).await.page();
        assert_eq!(status, 400, "{near}: {html}");
    }
    let (status, _, html) = browser.open(&good).await.page();
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("would like to use your Latchkey account"),
        "{html}"
    );
}
