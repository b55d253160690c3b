//! The developer console (SPEC 2.6 `/developer`), driven through its real forms with the cookie-keeping browser:
//! turning on developer access, creating a security profile that then signs customers in with the `oauth2`
//! crate, validation next to each field, editing, rotating the secret with and without a grace period,
//! deleting, and the absences: no page for another customer's app, no change without the form's CSRF token,
//! no console without signing in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::*;
use latchkey::store::Client;
use latchkey_core::client::Feature;
use oauth2::basic::BasicTokenResponse;
use oauth2::{AuthorizationCode, CsrfToken, PkceCodeChallenge, RefreshToken, TokenResponse};
use scraper::{Html, Selector};
use std::sync::Arc;

const DEV: &str = "dev@example.com";
const OTHER_DEV: &str = "other-dev@example.com";
const CUSTOMER: &str = "ada@example.com";
const RETURN_URL: &str = "http://127.0.0.1/callback";

// ---------------------------------------------------------------------------------------------------------------
// The vocabulary of this file

/// A customer `email`, signed in on a new browser, who has turned on developer access. Returns the browser and
/// the customer's internal id (the owner of their apps).
pub(crate) async fn developer(app: &TestApp, email: &str) -> (Browser, String) {
    let user = app.create_user(email, "Dev Eloper", None).await;
    let b = app.browser();
    b.sign_in(email, PASSWORD).await.page();
    let (status, url, html) = b.open("/developer").await.page();
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Turn on developer access"), "{html}");
    let (status, _, html) = b
        .submit(&url, &html, "/developer/enable", &[], None, &[])
        .await
        .page();
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Developer access is on"), "{html}");
    assert!(html.contains("Create a security profile"), "{html}");
    (b, user.id)
}

/// The good values of the new-app form; `fields` replace them.
const GOOD: [(&str, &str); 4] = [
    ("name", "Dev Shop"),
    ("privacy_url", "https://shop.example/privacy"),
    ("redirect_uris", RETURN_URL),
    ("allowed_origins", "https://shop.example"),
];

/// Form fields: (name, value), a name may repeat.
type Fields<'a> = Vec<(&'a str, &'a str)>;

fn with<'a>(fields: &[(&'a str, &'a str)]) -> Fields<'a> {
    let mut all: Vec<(&str, &str)> = GOOD
        .iter()
        .filter(|(n, _)| !fields.iter().any(|(f, _)| f == n))
        .copied()
        .collect();
    all.extend_from_slice(fields);
    all
}

/// Fills the new-app form with [`GOOD`] values overridden by `fields`, and submits it.
pub(crate) async fn submit_new_app(b: &Browser, fields: &[(&str, &str)]) -> (u16, String, String) {
    let (status, url, html) = b.open("/developer/apps/new").await.page();
    assert_eq!(status, 200, "{html}");
    b.submit(&url, &html, "/developer/apps", &with(fields), None, &[])
        .await
        .page()
}

/// The text of the element with `id`, if the page has one.
pub(crate) fn text_of(html: &str, id: &str) -> Option<String> {
    let doc = Html::parse_document(html);
    let sel = Selector::parse(&format!("#{id}")).unwrap();
    doc.select(&sel)
        .next()
        .map(|e| e.text().collect::<String>().trim().to_owned())
}

/// An attribute of the element with `id`.
fn attr_of(html: &str, id: &str, attr: &str) -> Option<String> {
    let doc = Html::parse_document(html);
    let sel = Selector::parse(&format!("#{id}")).unwrap();
    doc.select(&sel)
        .next()
        .and_then(|e| e.value().attr(attr).map(str::to_owned))
}

/// The CSRF token in a page's forms.
pub(crate) fn csrf_in(html: &str) -> String {
    let doc = Html::parse_document(html);
    let sel = Selector::parse("input[name=csrf]").unwrap();
    doc.select(&sel)
        .next()
        .and_then(|e| e.value().attr("value"))
        .expect("a form with a CSRF token")
        .to_owned()
}

/// The CSRF token of browser `b` (from the sign-out form of the home page).
async fn csrf_of(b: &Browser) -> String {
    let (_, _, home) = b.open("/").await.page();
    csrf_in(&home)
}

/// Creates an app through the form and reads its client id and secret off the page that shows them once.
pub(crate) async fn create_app(b: &Browser, fields: &[(&str, &str)]) -> RegisteredApp {
    let (status, _, html) = submit_new_app(b, fields).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("shown only this once"), "{html}");
    let client_id = text_of(&html, "client-id").expect("the client id is shown");
    RegisteredApp {
        client_id,
        secret: text_of(&html, "client-secret"),
        redirect_uri: RETURN_URL.into(),
        app_id: String::new(),
    }
}

fn app_path(app: &RegisteredApp) -> String {
    format!("/developer/apps/{}", app.client_id)
}

async fn stored(app: &TestApp, client_id: &str) -> Option<Client> {
    app.store().find_client(client_id).await.unwrap()
}

/// POSTs `pairs` to `path` from browser `b`, as a hand-made form would (no redirects followed).
async fn post(app: &TestApp, b: &Browser, path: &str, pairs: &[(&str, &str)]) -> reqwest::Response {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    b.http
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// A customer signs in to `shop` in their own browser, allows it, and the app exchanges the code (PKCE).
async fn customer_login(app: &TestApp, shop: &RegisteredApp, email: &str) -> BasicTokenResponse {
    let client = app.oauth_client(shop);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(oauth2::Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    let back = login_through(&app.browser(), url.as_str(), email).await;
    assert_eq!(
        Step::param(&back, "state").as_deref(),
        Some(state.secret().as_str())
    );
    let code = Step::param(&back, "code").unwrap_or_else(|| panic!("no code in {back}"));
    client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http_client())
        .await
        .expect("the code exchange succeeds")
}

/// A client-credentials grant with `secret`: the token endpoint's status.
async fn token_with_secret(app: &TestApp, client_id: &str, secret: &str) -> u16 {
    app.api()
        .post(app.url("/auth/o2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

// ---------------------------------------------------------------------------------------------------------------
// Signing in first

#[tokio::test]
async fn the_console_asks_to_sign_in_first_and_comes_back() {
    let app = spawn_app().await;
    app.create_user(DEV, "Dev", None).await;
    let b = app.browser();
    for path in [
        "/developer",
        "/developer/apps/new",
        "/developer/apps/lk1.application-oa2-client.0123456789abcdef0123456789abcdef",
    ] {
        let (status, url, _) = b.open(path).await.page();
        assert_eq!(status, 200);
        let expected = format!(
            "/ap/signin?{}",
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("return_to", path)
                .finish()
        );
        assert!(url.ends_with(&expected), "{path}: ended at {url}");
    }
    // Forms posted without a session change nothing and also lead to sign-in.
    for path in [
        "/developer/enable",
        "/developer/apps",
        "/developer/apps/lk1.application-oa2-client.0123456789abcdef0123456789abcdef/delete",
    ] {
        let res = post(&app, &b, path, &[("csrf", "x"), ("name", "A")]).await;
        assert_eq!(res.status().as_u16(), 303, "{path}");
        let location = res.headers()["location"].to_str().unwrap();
        assert!(location.starts_with("/ap/signin?return_to="), "{location}");
    }
    // Signing in from the console's redirect comes back to the console.
    let step = b.open("/developer").await;
    let (status, url, html) = b.sign_in_on(step, DEV, PASSWORD).await.page();
    assert_eq!(status, 200);
    assert!(url.ends_with("/developer"), "{url}");
    assert!(html.contains("Turn on developer access"), "{html}");
    assert!(app.store().list_clients().await.unwrap().is_empty());
    // The home page links to the console once signed in.
    let (_, _, home) = b.open("/").await.page();
    assert!(home.contains("href=\"/developer\""), "{home}");
}

#[tokio::test]
async fn a_customer_must_turn_on_developer_access_before_making_apps() {
    let app = spawn_app().await;
    let user = app.create_user(DEV, "Dev", None).await;
    let b = app.browser();
    b.sign_in(DEV, PASSWORD).await.page();
    let (status, url, html) = b.open("/developer/apps/new").await.page();
    assert_eq!(status, 200);
    assert!(url.ends_with("/developer"), "ended at {url}");
    assert!(html.contains("Turn on developer access"));
    let (_, _, html) = b.open("/developer").await.page();
    let res = post(
        &app,
        &b,
        "/developer/apps",
        &with(&[("csrf", &csrf_in(&html))]),
    )
    .await;
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(res.headers()["location"], "/developer");
    assert!(app.store().list_clients().await.unwrap().is_empty());
    assert_eq!(app.store().developer_since(&user.id).await.unwrap(), None);
}

// ---------------------------------------------------------------------------------------------------------------
// Creating an app that works

#[tokio::test]
async fn a_new_app_shows_its_secret_once_and_signs_customers_in() {
    for (engine, db) in each_db().await {
        let app = spawn_app_on(Arc::new(db)).await;
        let (b, dev_id) = developer(&app, DEV).await;
        let shop = create_app(
            &b,
            &[
                ("name", "Dev Shop"),
                ("description", "Sells things"),
                (
                    "redirect_uris",
                    "http://127.0.0.1/callback\r\nhttps://shop.example/cb\n",
                ),
                (
                    "allowed_origins",
                    "https://shop.example\nhttps://www.shop.example",
                ),
                ("id_token_alg", "EdDSA"),
            ],
        )
        .await;
        let secret = shop
            .secret
            .clone()
            .expect("a confidential app has a secret");
        assert_eq!(secret.len(), 64, "{engine}");

        let client = stored(&app, &shop.client_id).await.expect("stored");
        assert_eq!(
            client.owner, dev_id,
            "{engine}: owned by the developer's id"
        );
        assert_eq!(client.name, "Dev Shop");
        assert_eq!(client.description, "Sells things");
        assert_eq!(client.logo, None, "{engine}: no logo until one is uploaded");
        assert_eq!(
            client.policy.redirect_uris,
            vec!["http://127.0.0.1/callback", "https://shop.example/cb"]
        );
        assert_eq!(
            client.allowed_origins,
            vec!["https://shop.example", "https://www.shop.example"]
        );
        assert!(client.policy.is_confidential());
        assert!(!client.policy.allows(Feature::Implicit) && !client.policy.allows(Feature::Device));
        assert_eq!(client.id_token_alg.as_str(), "EdDSA");

        // The console lists it and shows its client id, never the secret again.
        let (_, _, list) = b.open("/developer").await.page();
        assert!(
            list.contains(&shop.client_id) && list.contains("Dev Shop"),
            "{list}"
        );
        let (status, _, page) = b.open(&app_path(&shop)).await.page();
        assert_eq!(status, 200, "{page}");
        assert_eq!(
            text_of(&page, "client-id").as_deref(),
            Some(shop.client_id.as_str())
        );
        assert!(
            !page.contains(&secret),
            "{engine}: the secret is shown only once"
        );
        assert!(!list.contains(&secret));
        assert_eq!(text_of(&page, "usage-consents").as_deref(), Some("0"));

        // A customer signs in to it with the oauth2 crate, and the token is the app's.
        app.create_user(CUSTOMER, "Ada", None).await;
        let tokens = customer_login(&app, &shop, CUSTOMER).await;
        let (status, info) = tokeninfo(&app, tokens.access_token().secret())
            .await
            .parts();
        assert_eq!(status, 200, "{engine}: {info}");
        assert_eq!(info["aud"], shop.client_id.as_str());
        assert_eq!(info["app_id"], client.app_id.as_str());

        // The usage counts follow.
        let (_, _, page) = b.open(&app_path(&shop)).await.page();
        assert_eq!(
            text_of(&page, "usage-consents").as_deref(),
            Some("1"),
            "{engine}"
        );
        assert_eq!(
            text_of(&page, "usage-live").as_deref(),
            Some("1"),
            "{engine}"
        );
        assert_eq!(
            text_of(&page, "usage-day").as_deref(),
            Some("1"),
            "{engine}"
        );
        app.state.clock.advance(3601);
        let (_, _, page) = b.open(&app_path(&shop)).await.page();
        assert_eq!(
            text_of(&page, "usage-live").as_deref(),
            Some("0"),
            "{engine}: expired"
        );
        assert_eq!(
            text_of(&page, "usage-day").as_deref(),
            Some("1"),
            "{engine}"
        );
    }
}

#[tokio::test]
async fn a_public_app_has_no_secret_and_signs_in_with_pkce() {
    let app = spawn_app().await;
    let (b, _) = developer(&app, DEV).await;
    let (status, _, html) = submit_new_app(&b, &[("type", "public"), ("flow", "device")]).await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(text_of(&html, "client-secret"), None);
    assert!(html.contains("no secret"), "{html}");
    let client_id = text_of(&html, "client-id").unwrap();
    let client = stored(&app, &client_id).await.unwrap();
    assert!(!client.policy.is_confidential() && client.secret_hash.is_none());
    assert!(client.policy.allows(Feature::Device));

    let shop = RegisteredApp {
        client_id: client_id.clone(),
        secret: None,
        redirect_uri: RETURN_URL.into(),
        app_id: client.app_id.clone(),
    };
    app.create_user(CUSTOMER, "Ada", None).await;
    let tokens = customer_login(&app, &shop, CUSTOMER).await;
    assert_eq!(
        tokeninfo(&app, tokens.access_token().secret()).await.status,
        200
    );

    // A public app has no secret to rotate.
    let (_, _, page) = b.open(&format!("/developer/apps/{client_id}")).await.page();
    assert!(!page.contains("/secret\""), "{page}");
    let res = post(
        &app,
        &b,
        &format!("/developer/apps/{client_id}/secret"),
        &[("csrf", &csrf_of(&b).await), ("grace", "0")],
    )
    .await;
    assert_eq!(res.status().as_u16(), 400);
    assert_eq!(stored(&app, &client_id).await.unwrap().secret_hash, None);
}

// ---------------------------------------------------------------------------------------------------------------
// Validation

#[tokio::test]
async fn every_kind_of_bad_input_is_shown_next_to_its_field_and_nothing_is_created() {
    let app = spawn_app().await;
    let (b, dev_id) = developer(&app, DEV).await;
    let long_name = "n".repeat(101);
    // (what is wrong, fields, the field's id, words of the message)
    let cases: Vec<(&str, Fields, &str, &str)> = vec![
        ("empty name", vec![("name", "  ")], "name", "needs a name"),
        (
            "long name",
            vec![("name", &long_name)],
            "name",
            "1 to 100 characters",
        ),
        (
            "privacy URL not a URL",
            vec![("privacy_url", "shop.example/privacy")],
            "privacy_url",
            "not an absolute URL",
        ),
        (
            "privacy URL over http",
            vec![("privacy_url", "http://shop.example/privacy")],
            "privacy_url",
            "must use https",
        ),
        (
            "no return URL",
            vec![("redirect_uris", "\n")],
            "redirect_uris",
            "at least one allowed return URL",
        ),
        (
            "http return URL",
            vec![("redirect_uris", "http://shop.example/cb")],
            "redirect_uris",
            "http://shop.example/cb",
        ),
        (
            "return URL with a fragment",
            vec![("redirect_uris", "https://shop.example/cb#x")],
            "redirect_uris",
            "fragment",
        ),
        (
            "localhost without development",
            vec![("redirect_uris", "http://localhost:3000/cb")],
            "redirect_uris",
            "development",
        ),
        (
            "origin with a path",
            vec![("allowed_origins", "https://shop.example/app")],
            "allowed_origins",
            "no path",
        ),
        (
            "origin over http",
            vec![("allowed_origins", "http://shop.example")],
            "allowed_origins",
            "must use https",
        ),
        (
            "localhost origin without development",
            vec![("allowed_origins", "http://localhost:3000")],
            "allowed_origins",
            "development",
        ),
        (
            "public client credentials",
            vec![("type", "public"), ("flow", "client_credentials")],
            "flows",
            "client credentials",
        ),
        (
            "unknown algorithm",
            vec![("id_token_alg", "HS256")],
            "id_token_alg",
            "ES256, EdDSA or RS256",
        ),
    ];
    for (what, fields, field, words) in cases {
        let (status, _, html) = submit_new_app(&b, &fields).await;
        assert_eq!(status, 400, "{what}: {html}");
        let error_id = format!("{field}-error");
        let message =
            text_of(&html, &error_id).unwrap_or_else(|| panic!("{what}: no #{error_id} in {html}"));
        assert!(message.contains(words), "{what}: {message}");
        // The message is tied to its control, and the summary at the top links to it.
        let control = if field == "flows" { None } else { Some(field) };
        if let Some(control) = control {
            let described = attr_of(&html, control, "aria-describedby").unwrap_or_default();
            assert!(
                described.split(' ').any(|id| id == error_id),
                "{what}: {described}"
            );
            assert_eq!(
                attr_of(&html, control, "aria-invalid").as_deref(),
                Some("true"),
                "{what}"
            );
        }
        assert!(
            text_of(&html, "form-error").unwrap().contains(words),
            "{what}"
        );
        // What was typed is shown again.
        for (name, value) in &fields {
            let shown = match *name {
                "redirect_uris" | "allowed_origins" => text_of(&html, name),
                "type" | "flow" => continue,
                "id_token_alg" => continue,
                _ => attr_of(&html, name, "value"),
            };
            assert_eq!(
                shown.as_deref().map(str::trim),
                Some(value.trim()),
                "{what}: {name}"
            );
        }
        assert!(
            app.store()
                .list_clients_by_owner(&dev_id)
                .await
                .unwrap()
                .is_empty(),
            "{what}: nothing is created"
        );
    }
    // Several problems at once are each shown.
    let (status, _, html) = submit_new_app(
        &b,
        &[
            ("name", ""),
            ("allowed_origins", "https://a.example/\nnot an origin"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        text_of(&html, "form-error")
            .unwrap()
            .contains("these 3 problems"),
        "{html}"
    );
    let origins = text_of(&html, "allowed_origins-error").unwrap();
    assert!(
        origins.contains("no path") && origins.contains("not a URL"),
        "{origins}"
    );
    let doc = Html::parse_document(&html);
    let ids: Vec<&str> = doc
        .select(&Selector::parse("[id]").unwrap())
        .filter_map(|e| e.value().attr("id"))
        .collect();
    let unique: std::collections::HashSet<&&str> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "every id is unique: {ids:?}");
    assert!(app.store().list_clients().await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------------------------
// Editing

#[tokio::test]
async fn an_edit_is_validated_saved_and_keeps_the_ids_and_secret() {
    let app = spawn_app().await;
    let (b, _) = developer(&app, DEV).await;
    let shop = create_app(&b, &[]).await;
    let before = stored(&app, &shop.client_id).await.unwrap();
    assert_eq!(before.id_token_alg.as_str(), "RS256", "the form's default");
    let edit = format!("{}/edit", app_path(&shop));

    // A bad edit is refused with the message next to the field, and nothing changes.
    let (status, url, html) = b.open(&edit).await.page();
    assert_eq!(status, 200);
    assert_eq!(attr_of(&html, "name", "value").as_deref(), Some("Dev Shop"));
    assert_eq!(text_of(&html, "redirect_uris").as_deref(), Some(RETURN_URL));
    let (status, _, bad) = b
        .submit(
            &url,
            &html,
            &edit,
            &[
                ("name", "Renamed"),
                ("allowed_origins", "https://shop.example/path"),
            ],
            None,
            &[],
        )
        .await
        .page();
    assert_eq!(status, 400, "{bad}");
    assert!(text_of(&bad, "allowed_origins-error")
        .unwrap()
        .contains("no path"));
    assert_eq!(attr_of(&bad, "name", "value").as_deref(), Some("Renamed"));
    assert_eq!(stored(&app, &shop.client_id).await.unwrap(), before);

    // A good edit is saved; ids, type, owner and secret stay.
    let (status, url, page) = b
        .submit(
            &url,
            &html,
            &edit,
            &[
                ("name", "Dev Shop 2"),
                ("redirect_uris", "https://shop.example/new-cb"),
                ("flow", "implicit"),
                ("flow", "device"),
                ("id_token_alg", "EdDSA"),
                ("type", "public"),
            ],
            None,
            &[],
        )
        .await
        .page();
    assert_eq!(status, 200, "{page}");
    assert!(
        url.ends_with(&format!("{}?done=saved", app_path(&shop))),
        "{url}"
    );
    assert!(page.contains("Your changes are saved"), "{page}");
    assert!(page.contains("Dev Shop 2") && page.contains("https://shop.example/new-cb"));
    let after = stored(&app, &shop.client_id).await.unwrap();
    assert_eq!(after.name, "Dev Shop 2");
    assert_eq!(
        after.policy.redirect_uris,
        vec!["https://shop.example/new-cb"]
    );
    assert!(after.policy.allows(Feature::Implicit) && after.policy.allows(Feature::Device));
    assert_eq!(after.id_token_alg.as_str(), "EdDSA");
    assert!(
        after.policy.is_confidential(),
        "the type cannot be changed by an edit"
    );
    assert_eq!(after.secret_hash, before.secret_hash);
    assert_eq!(after.app_id, before.app_id);
    assert_eq!(after.owner, before.owner);
    assert_eq!(after.created_at, before.created_at);
    // The old return URL no longer works; the secret still does.
    assert_eq!(
        token_with_secret(&app, &shop.client_id, shop.secret.as_deref().unwrap()).await,
        400,
        "authenticated (client credentials is not enabled: 400, not 401)"
    );
    let (status, _, html) = b
        .open(&format!(
            "/ap/oa?client_id={}&response_type=code&scope=profile&redirect_uri={RETURN_URL}",
            shop.client_id
        ))
        .await
        .page();
    assert_eq!(status, 400, "{html}");
}

// ---------------------------------------------------------------------------------------------------------------
// Rotating the secret

/// On the app's page, makes a new secret keeping the old one for `grace` seconds; returns the new secret.
async fn rotate(b: &Browser, shop: &RegisteredApp, grace: &str) -> String {
    let (status, url, html) = b.open(&app_path(shop)).await.page();
    assert_eq!(status, 200);
    let action = format!("{}/secret", app_path(shop));
    let (status, _, page) = b
        .submit(&url, &html, &action, &[("grace", grace)], None, &[])
        .await
        .page();
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("shown only this once"), "{page}");
    assert_eq!(
        text_of(&page, "client-id").as_deref(),
        Some(shop.client_id.as_str())
    );
    text_of(&page, "client-secret").expect("the new secret is shown")
}

#[tokio::test]
async fn a_rotated_secret_keeps_the_old_one_only_for_the_grace_period() {
    for (engine, db) in each_db().await {
        let app = spawn_app_on(Arc::new(db)).await;
        let (b, _) = developer(&app, DEV).await;
        let shop = create_app(&b, &[("flow", "client_credentials")]).await;
        let id = shop.client_id.as_str();
        let first = shop.secret.clone().unwrap();
        assert_eq!(token_with_secret(&app, id, &first).await, 200, "{engine}");

        // With a grace period of one hour both work, until the hour is up.
        let second = rotate(&b, &shop, "3600").await;
        assert_ne!(second, first);
        assert_eq!(token_with_secret(&app, id, &second).await, 200, "{engine}");
        assert_eq!(
            token_with_secret(&app, id, &first).await,
            200,
            "{engine}: in grace"
        );
        let (_, _, page) = b.open(&app_path(&shop)).await.page();
        assert!(
            page.contains("previous secret still works for about 60 minutes"),
            "{page}"
        );
        assert!(!page.contains(&second), "{engine}: shown once");
        app.state.clock.advance(3601);
        assert_eq!(
            token_with_secret(&app, id, &first).await,
            401,
            "{engine}: grace over"
        );
        assert_eq!(token_with_secret(&app, id, &second).await, 200, "{engine}");

        // Without one, the old secret stops at once.
        let third = rotate(&b, &shop, "0").await;
        assert_eq!(token_with_secret(&app, id, &second).await, 401, "{engine}");
        assert_eq!(token_with_secret(&app, id, &third).await, 200, "{engine}");

        // The other periods on offer are 24 hours and 7 days.
        let fourth = rotate(&b, &shop, "604800").await;
        app.state.clock.advance(7 * 86_400 - 10);
        assert_eq!(token_with_secret(&app, id, &third).await, 200, "{engine}");
        assert_eq!(token_with_secret(&app, id, &fourth).await, 200, "{engine}");
        app.state.clock.advance(11);
        assert_eq!(token_with_secret(&app, id, &third).await, 401, "{engine}");
        let client = stored(&app, id).await.unwrap();
        let fifth = rotate(&b, &shop, "86400").await;
        let rotated = stored(&app, id).await.unwrap();
        assert_eq!(rotated.prev_secret_hash, client.secret_hash);
        assert_eq!(
            rotated.prev_secret_expires_at,
            Some(app.state.clock.now() + 86_400)
        );
        assert_eq!(token_with_secret(&app, id, &fifth).await, 200, "{engine}");

        // A period not on offer changes nothing.
        let (_, _, page) = b.open(&app_path(&shop)).await.page();
        let res = post(
            &app,
            &b,
            &format!("{}/secret", app_path(&shop)),
            &[("csrf", &csrf_in(&page)), ("grace", "99999999")],
        )
        .await;
        assert_eq!(res.status().as_u16(), 400, "{engine}");
        assert_eq!(stored(&app, id).await.unwrap(), rotated, "{engine}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Deleting

#[tokio::test]
async fn deleting_an_app_asks_first_and_ends_every_grant() {
    let app = spawn_app().await;
    let (b, dev_id) = developer(&app, DEV).await;
    let shop = create_app(&b, &[]).await;
    let kept = create_app(&b, &[("name", "Kept")]).await;
    app.create_user(CUSTOMER, "Ada", None).await;
    let tokens = customer_login(&app, &shop, CUSTOMER).await;
    let kept_tokens = customer_login(&app, &kept, CUSTOMER).await;
    let access = tokens.access_token().secret().clone();
    assert_eq!(tokeninfo(&app, &access).await.status, 200);

    let (status, url, html) = b.open(&format!("{}/delete", app_path(&shop))).await.page();
    assert_eq!(status, 200);
    assert!(html.contains("Delete Dev Shop?"), "{html}");
    assert!(
        stored(&app, &shop.client_id).await.is_some(),
        "asking deletes nothing"
    );
    let (status, url, list) = b
        .submit(
            &url,
            &html,
            &format!("{}/delete", app_path(&shop)),
            &[],
            None,
            &[],
        )
        .await
        .page();
    assert_eq!(status, 200);
    assert!(url.ends_with("/developer?done=deleted"), "{url}");
    assert!(list.contains("security profile is deleted"), "{list}");
    assert!(
        !list.contains(&shop.client_id) && list.contains(&kept.client_id),
        "{list}"
    );
    assert!(stored(&app, &shop.client_id).await.is_none());

    let (status, body) = tokeninfo(&app, &access).await.parts();
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_token");
    let refreshed = app
        .oauth_client(&shop)
        .exchange_refresh_token(&RefreshToken::new(
            tokens.refresh_token().unwrap().secret().clone(),
        ))
        .request_async(&http_client())
        .await;
    assert!(refreshed.is_err(), "the refresh token is dead too");
    // The app page is gone, and the other app is untouched.
    assert_eq!(b.open(&app_path(&shop)).await.page().0, 404);
    assert_eq!(
        tokeninfo(&app, kept_tokens.access_token().secret())
            .await
            .status,
        200
    );
    assert_eq!(
        app.store()
            .list_clients_by_owner(&dev_id)
            .await
            .unwrap()
            .len(),
        1
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Absences: another customer's app, forms without their CSRF token

#[tokio::test]
async fn another_customer_can_neither_see_nor_change_an_app() {
    let app = spawn_app().await;
    let (owner, _) = developer(&app, DEV).await;
    let shop = create_app(&owner, &[("flow", "client_credentials")]).await;
    let before = stored(&app, &shop.client_id).await.unwrap();
    let (other, _) = developer(&app, OTHER_DEV).await;

    let (_, _, list) = other.open("/developer").await.page();
    assert!(!list.contains(&shop.client_id), "{list}");
    let csrf = csrf_of(&other).await;
    let base = app_path(&shop);
    for path in [
        base.clone(),
        format!("{base}/edit"),
        format!("{base}/delete"),
    ] {
        let (status, _, html) = other.open(&path).await.page();
        assert_eq!(status, 404, "{path}");
        assert!(!html.contains("Dev Shop"), "{path}: {html}");
    }
    for (path, extra) in [
        (format!("{base}/edit"), with(&[("name", "Hijacked")])),
        (format!("{base}/secret"), vec![("grace", "604800")]),
        (format!("{base}/delete"), vec![]),
    ] {
        let mut pairs = vec![("csrf", csrf.as_str())];
        pairs.extend(extra);
        let res = post(&app, &other, &path, &pairs).await;
        assert_eq!(res.status().as_u16(), 404, "{path}");
    }
    assert_eq!(stored(&app, &shop.client_id).await.unwrap(), before);
    assert_eq!(
        token_with_secret(&app, &shop.client_id, shop.secret.as_deref().unwrap()).await,
        200
    );
    // An unknown or malformed client id (even one that is not UTF-8) is the same 404 page.
    for path in [
        "/developer/apps/lk1.application-oa2-client.0123456789abcdef0123456789abcdef",
        "/developer/apps/nonsense",
        "/developer/apps/%FF/edit",
        "/developer/apps/%FF%FE/delete",
    ] {
        let (status, _, html) = other.open(path).await.page();
        assert_eq!(status, 404, "{path}: {html}");
        assert!(
            html.contains("Security profile not found"),
            "{path}: {html}"
        );
    }
}

#[tokio::test]
async fn every_console_form_refuses_a_missing_or_wrong_csrf_token_and_changes_nothing() {
    let app = spawn_app().await;
    let (b, dev_id) = developer(&app, DEV).await;
    let shop = create_app(&b, &[]).await;
    let before = stored(&app, &shop.client_id).await.unwrap();
    // A valid token, but of another browser.
    let stranger = app.browser();
    let (_, _, page) = stranger.open("/ap/signin").await.page();
    let wrong = csrf_in(&page);
    let newcomer = app.create_user("new@example.com", "New", None).await;
    let nb = app.browser();
    nb.sign_in("new@example.com", PASSWORD).await.page();

    let base = app_path(&shop);
    let forms: Vec<(&Browser, String, Fields)> = vec![
        (&nb, "/developer/enable".into(), vec![]),
        (&b, "/developer/apps".into(), with(&[])),
        (&b, format!("{base}/edit"), with(&[("name", "Changed")])),
        (&b, format!("{base}/secret"), vec![("grace", "0")]),
        (&b, format!("{base}/delete"), vec![]),
    ];
    for (browser, path, fields) in forms {
        for csrf in [None, Some(""), Some(wrong.as_str())] {
            let mut pairs = fields.clone();
            if let Some(c) = csrf {
                pairs.push(("csrf", c));
            }
            let res = post(&app, browser, &path, &pairs).await;
            assert_eq!(res.status().as_u16(), 400, "{path} with csrf {csrf:?}");
            assert!(res.text().await.unwrap().contains("This form has expired"));
        }
    }
    assert_eq!(
        app.store().developer_since(&newcomer.id).await.unwrap(),
        None
    );
    assert_eq!(
        app.store().list_clients_by_owner(&dev_id).await.unwrap(),
        vec![before.clone()]
    );
    assert_eq!(
        token_with_secret(&app, &shop.client_id, shop.secret.as_deref().unwrap()).await,
        400,
        "the secret still authenticates (client credentials not enabled)"
    );
}
