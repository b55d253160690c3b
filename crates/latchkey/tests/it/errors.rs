//! Every error SPEC 2.1, 2.2, 2.4 and 2.5 names, each answered in its endpoint's shape (page, redirect with
//! `error`/`state`/`iss`, token JSON with `no-store`, resource JSON); a table of malformed and oversized
//! requests that must all get a clear 4xx; and SPEC 4's security headers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::*;
use latchkey_core::client::{ClientKind, Feature};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

/// RFC 7636 Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// SPEC 2.4's exact wording for an unknown, expired or revoked access token.
const INVALID_TOKEN: &str = "The request has an invalid parameter : access_token";

// ---------------------------------------------------------------------------------------------------------------
// Vocabulary

type Pairs<'a> = Vec<(&'a str, &'a str)>;
/// label, app, parameters after client_id/redirect_uri/state, expected error, description.
type RedirectRow<'a> = (&'a str, &'a RegisteredApp, Pairs<'a>, &'a str, Says);

impl World {
    /// The authorization URL for `client` with `pairs` after `client_id`, `response_type=code`, `redirect_uri`.
    fn authorize_url(&self, client: &RegisteredApp, pairs: &[(&str, &str)]) -> String {
        let mut all = vec![
            ("client_id", client.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", client.redirect_uri.as_str()),
        ];
        all.extend_from_slice(pairs);
        self.app.url(&format!("/ap/oa?{}", form_body(&all)))
    }

    /// A fresh authorization code for `client` (scope `profile` unless `pairs` says otherwise).
    async fn code(&self, client: &RegisteredApp, pairs: &[(&str, &str)]) -> String {
        let mut all = pairs.to_vec();
        if !pairs.iter().any(|(k, _)| *k == "scope") {
            all.push(("scope", "profile"));
        }
        let back = login_through(&self.browser, &self.authorize_url(client, &all), EMAIL).await;
        Step::param(&back, "code").unwrap_or_else(|| panic!("no code in {back}"))
    }

    /// Exchanges `code` with `client`'s secret in the body; panics unless it succeeds.
    async fn tokens(&self, client: &RegisteredApp, code: &str, verifier: Option<&str>) -> Value {
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", client.redirect_uri.as_str()),
            ("client_id", client.client_id.as_str()),
        ];
        if let Some(s) = &client.secret {
            pairs.push(("client_secret", s));
        }
        if let Some(v) = verifier {
            pairs.push(("code_verifier", v));
        }
        let res = self.post_token(&form_body(&pairs)).await;
        assert_eq!(res.status(), 200, "exchange failed");
        res.json().await.unwrap()
    }

    async fn post_token(&self, body: &str) -> reqwest::Response {
        post_body(&self.app, "/auth/o2/token", body, None).await
    }
}

/// A well-formed client id that no app has.
fn unknown_client_id() -> String {
    format!(
        "lk1.application-oa2-client.{}",
        "0123456789abcdef".repeat(2)
    )
}

// ---------------------------------------------------------------------------------------------------------------
// SPEC 2.1: GET /ap/oa

/// Client and return-URL problems: an HTML page with 400 that says what is wrong, never a redirect, even when the
/// rest of the request is also wrong or a `state` is present.
#[tokio::test]
async fn authorize_client_and_redirect_uri_problems_are_pages_never_redirects() {
    let w = World::new(|_| {}).await;
    let two = w
        .app
        .register_app(|i| {
            i.redirect_uris = vec![
                "https://two.example/a".into(),
                "https://two.example/b".into(),
            ]
        })
        .await;
    let id = w.shop.client_id.as_str();
    let cb = "http://127.0.0.1/callback";
    let unknown = unknown_client_id();
    let long_id = "a".repeat(201);
    #[rustfmt::skip]
    let table: Vec<(&str, Pairs, &str)> = vec![
        ("no client_id", vec![("redirect_uri", cb)], "no client_id"),
        ("client_id twice", vec![("client_id", id), ("client_id", id), ("redirect_uri", cb)], "more than once"),
        ("client_id too long", vec![("client_id", &long_id), ("redirect_uri", cb)], "too long"),
        ("unknown client_id", vec![("client_id", &unknown), ("redirect_uri", cb)], "not registered with Latchkey"),
        ("malformed client_id", vec![("client_id", "shop"), ("redirect_uri", cb)], "not registered with Latchkey"),
        ("redirect_uri elsewhere", vec![("client_id", id), ("redirect_uri", "https://evil.example/callback")], "has not registered"),
        ("redirect_uri with trailing slash", vec![("client_id", id), ("redirect_uri", "http://127.0.0.1/callback/")], "has not registered"),
        ("redirect_uri with extra query", vec![("client_id", id), ("redirect_uri", "http://127.0.0.1/callback?x=1")], "has not registered"),
        ("redirect_uri other loopback path", vec![("client_id", id), ("redirect_uri", "http://127.0.0.1:8123/other")], "has not registered"),
        ("redirect_uri localhost for 127.0.0.1", vec![("client_id", id), ("redirect_uri", "http://localhost/callback")], "has not registered"),
        ("redirect_uri https for http", vec![("client_id", id), ("redirect_uri", "https://127.0.0.1/callback")], "has not registered"),
        ("redirect_uri case changed", vec![("client_id", id), ("redirect_uri", "http://127.0.0.1/Callback")], "has not registered"),
        ("redirect_uri twice", vec![("client_id", id), ("redirect_uri", cb), ("redirect_uri", cb)], "more than once"),
        ("redirect_uri missing, several registered", vec![("client_id", &two.client_id)], "more than one return URL"),
    ];
    for path in ["/ap/oa", "/oauth2/authorize"] {
        for (label, pairs, needle) in &table {
            let mut pairs = pairs.clone();
            // Even with a bad response_type, a bad scope and a state, nothing may be redirected.
            pairs.extend([
                ("response_type", "nonsense"),
                ("scope", "bogus"),
                ("state", "st"),
            ]);
            let url = w.app.url(&format!("{path}?{}", form_body(&pairs)));
            let res = w.browser.http.get(&url).send().await.unwrap();
            let label = format!("{path} {label}");
            assert_eq!(res.status(), 400, "{label}");
            assert!(res.headers().get("location").is_none(), "{label}");
            assert!(
                header(res.headers(), "content-type").starts_with("text/html"),
                "{label}"
            );
            let html = res.text().await.unwrap();
            assert!(
                html.contains(needle),
                "{label}: page should say {needle:?}:\n{html}"
            );
            assert!(
                !html.contains("evil.example"),
                "{label}: no link to the URL"
            );
        }
    }
}

/// SPEC 2.1: a loopback return URL may use any port, which is why the port-less registration above is not a
/// page error when only the port differs.
#[tokio::test]
async fn authorize_loopback_any_port_is_not_an_error() {
    let w = World::new(|_| {}).await;
    let url = w.app.url(&format!(
        "/ap/oa?{}",
        form_body(&[
            ("client_id", &w.shop.client_id),
            ("redirect_uri", "http://127.0.0.1:53123/callback"),
            ("scope", "bogus"),
            ("response_type", "code"),
        ])
    ));
    let to = w.browser.open(&url).await.left_to();
    assert!(
        to.as_str().starts_with("http://127.0.0.1:53123/callback?"),
        "{to}"
    );
    assert_eq!(Step::param(&to, "error").as_deref(), Some("invalid_scope"));
}

/// Checks a redirect back to the app with an error: registered URL, `error`, `error_description`, the `state`
/// byte for byte, `iss`, and no code.
fn check_error_redirect(
    label: &str,
    location: &str,
    redirect_uri: &str,
    issuer: &str,
    error: &str,
    says: Says,
    state: Option<&str>,
) {
    // Implicit requests (`response_type=token`) are answered in the fragment, everything else in the query.
    let (separator, location) = match location.split_once('#') {
        Some((uri, fragment)) => ('#', format!("{uri}?{fragment}")),
        None => ('?', location.to_owned()),
    };
    let url = Url::parse(&location).unwrap_or_else(|_| panic!("{label}: Location {location}"));
    assert!(
        location.starts_with(&format!("{redirect_uri}?")),
        "{label}: {location} is not on {redirect_uri}"
    );
    assert_eq!(
        separator == '#',
        label.contains("implicit"),
        "{label}: only implicit requests are answered in the fragment"
    );
    assert_eq!(
        Step::param(&url, "error").as_deref(),
        Some(error),
        "{label}: {location}"
    );
    let description = Step::param(&url, "error_description")
        .unwrap_or_else(|| panic!("{label}: no error_description in {location}"));
    check_description(label, &description, says);
    assert_eq!(Step::param(&url, "state").as_deref(), state, "{label}");
    assert_eq!(Step::param(&url, "iss").as_deref(), Some(issuer), "{label}");
    assert!(Step::param(&url, "code").is_none(), "{label}");
    assert!(Step::param(&url, "access_token").is_none(), "{label}");
}

/// Every other request error is redirected to the registered URL with `error`, `error_description`, `state`
/// and `iss` (RFC 9207), before any sign-in.
#[tokio::test]
async fn authorize_request_errors_redirect_with_state_and_iss() {
    let app = spawn_app().await;
    let shop = app.register_app(|_| {}).await;
    let public = app
        .register_app(|i| {
            i.kind = ClientKind::Public;
            i.redirect_uris = vec!["https://public.example/cb".into()];
        })
        .await;
    let state = "xyz 1/2?&=é+%";
    let short = &CHALLENGE[..42];
    let long = "a".repeat(129);
    let bad_chars = format!("{}+/", &CHALLENGE[..41]);
    use Says::*;
    #[rustfmt::skip]
    let table: Vec<RedirectRow> = vec![
        ("missing response_type", &shop, vec![("scope", "profile")], "invalid_request", Mentions("response_type")),
        ("unsupported response_type", &shop, vec![("response_type", "id_token"), ("scope", "profile")], "unsupported_response_type", Mentions("response_type")),
        ("implicit not enabled", &shop, vec![("response_type", "token"), ("scope", "profile")], "unauthorized_client", Mentions("response_type")),
        ("missing scope", &shop, vec![("response_type", "code")], "invalid_request", Mentions("scope")),
        ("unknown scope", &shop, vec![("response_type", "code"), ("scope", "profile bogus")], "invalid_scope", Mentions("bogus")),
        ("blank scope", &shop, vec![("response_type", "code"), ("scope", "   ")], "invalid_scope", Mentions("scope")),
        ("response_type twice", &shop, vec![("response_type", "code"), ("response_type", "code"), ("scope", "profile")], "invalid_request", Mentions("duplicate parameter : response_type")),
        ("code_challenge twice", &shop, vec![("response_type", "code"), ("scope", "profile"), ("code_challenge", CHALLENGE), ("code_challenge", CHALLENGE), ("code_challenge_method", "S256")], "invalid_request", Mentions("code_challenge")),
        ("code_challenge_method twice", &shop, vec![("response_type", "code"), ("scope", "profile"), ("code_challenge", CHALLENGE), ("code_challenge_method", "S256"), ("code_challenge_method", "S256")], "invalid_request", Mentions("code_challenge_method")),
        ("nonce twice", &shop, vec![("response_type", "code"), ("scope", "profile"), ("nonce", "a"), ("nonce", "b")], "invalid_request", Mentions("nonce")),
        ("plain PKCE not opted in", &shop, vec![("response_type", "code"), ("scope", "profile"), ("code_challenge", CHALLENGE), ("code_challenge_method", "plain")], "invalid_request", Mentions("code_challenge_method")),
        ("unknown PKCE method", &shop, vec![("response_type", "code"), ("scope", "profile"), ("code_challenge", CHALLENGE), ("code_challenge_method", "S512")], "invalid_request", Mentions("code_challenge_method")),
        ("challenge without method", &shop, vec![("response_type", "code"), ("scope", "profile"), ("code_challenge", CHALLENGE)], "invalid_request", Mentions("code_challenge_method")),
        ("method without challenge", &shop, vec![("response_type", "code"), ("scope", "profile"), ("code_challenge_method", "S256")], "invalid_request", Mentions("code_challenge")),
        ("challenge 42 characters", &shop, vec![("response_type", "code"), ("scope", "profile"), ("code_challenge", short), ("code_challenge_method", "S256")], "invalid_request", Mentions("code_challenge")),
        ("challenge 129 characters", &shop, vec![("response_type", "code"), ("scope", "profile"), ("code_challenge", &long), ("code_challenge_method", "S256")], "invalid_request", Mentions("code_challenge")),
        ("challenge with bad characters", &shop, vec![("response_type", "code"), ("scope", "profile"), ("code_challenge", &bad_chars), ("code_challenge_method", "S256")], "invalid_request", Mentions("code_challenge")),
        ("public app without PKCE", &public, vec![("response_type", "code"), ("scope", "profile")], "invalid_request", Mentions("code_challenge")),
        ("unsupported response_mode", &shop, vec![("response_type", "code"), ("scope", "profile"), ("response_mode", "form_post")], "invalid_request", Mentions("response_mode")),
        ("response_mode twice", &shop, vec![("response_type", "code"), ("scope", "profile"), ("response_mode", "query"), ("response_mode", "query")], "invalid_request", Mentions("response_mode")),
        ("unknown prompt", &shop, vec![("response_type", "code"), ("scope", "profile"), ("prompt", "sometimes")], "invalid_request", Mentions("prompt")),
        ("prompt none with login", &shop, vec![("response_type", "code"), ("scope", "profile"), ("prompt", "none login")], "invalid_request", Mentions("prompt")),
        ("negative max_age", &shop, vec![("response_type", "code"), ("scope", "profile"), ("max_age", "-1")], "invalid_request", Mentions("max_age")),
        ("max_age not a number", &shop, vec![("response_type", "code"), ("scope", "profile"), ("max_age", "soon")], "invalid_request", Mentions("max_age")),
        ("scope_data not JSON", &shop, vec![("response_type", "code"), ("scope", "profile"), ("scope_data", "{nope")], "invalid_request", Mentions("scope_data")),
        ("scope_data for a scope not asked", &shop, vec![("response_type", "code"), ("scope", "profile"), ("scope_data", r#"{"postal_code":{"essential":false}}"#)], "invalid_request", Mentions("scope_data")),
        ("scope_data essential not a bool", &shop, vec![("response_type", "code"), ("scope", "profile"), ("scope_data", r#"{"profile":{"essential":"no"}}"#)], "invalid_request", Mentions("scope_data")),
    ];
    let client = app.api();
    for path in ["/ap/oa", "/oauth2/authorize"] {
        for (label, target, pairs, error, says) in &table {
            let mut all = vec![
                ("client_id", target.client_id.as_str()),
                ("redirect_uri", target.redirect_uri.as_str()),
                ("state", state),
            ];
            all.extend(pairs.iter().copied());
            let url = app.url(&format!("{path}?{}", form_body(&all)));
            let res = client.get(&url).send().await.unwrap();
            let label = format!("{path} {label}");
            assert_eq!(res.status(), 303, "{label}: SPEC 2.1 redirects with 303");
            let location = header(res.headers(), "location");
            check_error_redirect(
                &label,
                &location,
                &target.redirect_uri,
                &app.base,
                error,
                *says,
                Some(state),
            );
        }
    }

    // A repeated state cannot be echoed: the error comes back without one.
    let url = app.url(&format!(
        "/ap/oa?{}",
        form_body(&[
            ("client_id", &shop.client_id),
            ("response_type", "code"),
            ("scope", "profile"),
            ("state", "one"),
            ("state", "two"),
        ])
    ));
    let res = client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 303, "state twice");
    check_error_redirect(
        "state twice",
        &header(res.headers(), "location"),
        &shop.redirect_uri,
        &app.base,
        "invalid_request",
        Says::Mentions("state"),
        None,
    );
}

/// An implicit-enabled app asking for `response_type=token` gets its error in the fragment.
#[tokio::test]
async fn implicit_errors_come_back_in_the_fragment() {
    let app = spawn_app().await;
    let lwa = app
        .register_app(|i| i.features.insert(Feature::Implicit))
        .await;
    let url = app.url(&format!(
        "/ap/oa?{}",
        form_body(&[
            ("client_id", &lwa.client_id),
            ("redirect_uri", &lwa.redirect_uri),
            ("response_type", "token"),
            ("scope", "bogus"),
            ("state", "s 1"),
        ])
    ));
    let res = app.api().get(&url).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let location = header(res.headers(), "location");
    let (before, fragment) = location
        .split_once('#')
        .unwrap_or_else(|| panic!("{location}"));
    assert_eq!(before, lwa.redirect_uri);
    let as_query = Url::parse(&format!("http://x/?{fragment}")).unwrap();
    assert_eq!(
        Step::param(&as_query, "error").as_deref(),
        Some("invalid_scope")
    );
    assert_eq!(Step::param(&as_query, "state").as_deref(), Some("s 1"));
    assert_eq!(
        Step::param(&as_query, "iss").as_deref(),
        Some(app.base.as_str())
    );
}

/// `login_required`, `consent_required` (prompt=none) and `access_denied` (Cancel on the consent page).
#[tokio::test]
async fn authorize_login_required_consent_required_and_access_denied() {
    let w = World::new(|_| {}).await;
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut pairs = vec![("scope", "profile"), ("state", "st-1")];
        pairs.extend_from_slice(extra);
        w.authorize_url(&w.shop, &pairs)
    };

    // Not signed in, prompt=none: login_required.
    let stranger = w.app.browser();
    let to = stranger.open(&with(&[("prompt", "none")])).await.left_to();
    check_error_redirect(
        "login_required",
        to.as_str(),
        &w.shop.redirect_uri,
        &w.app.base,
        "login_required",
        Says::Mentions(": prompt"),
        Some("st-1"),
    );

    // Signed in, no consent yet, prompt=none: consent_required.
    let to = w.browser.open(&with(&[("prompt", "none")])).await.left_to();
    check_error_redirect(
        "consent_required",
        to.as_str(),
        &w.shop.redirect_uri,
        &w.app.base,
        "consent_required",
        Says::Mentions(": prompt"),
        Some("st-1"),
    );

    // Cancel on the consent page: access_denied.
    let consent = w.browser.open(&with(&[])).await;
    let to = w.browser.consent_on(consent, false, &[]).await.left_to();
    check_error_redirect(
        "access_denied",
        to.as_str(),
        &w.shop.redirect_uri,
        &w.app.base,
        "access_denied",
        Says::Mentions("declined"),
        Some("st-1"),
    );

    // Unticking every optional item shares nothing: also access_denied.
    let consent = w
        .browser
        .open(&with(&[(
            "scope_data",
            r#"{"profile":{"essential":false}}"#,
        )]))
        .await;
    let to = w
        .browser
        .consent_on(consent, true, &["profile"])
        .await
        .left_to();
    check_error_redirect(
        "nothing shared",
        to.as_str(),
        &w.shop.redirect_uri,
        &w.app.base,
        "access_denied",
        Says::Mentions("shared nothing"),
        Some("st-1"),
    );
}

/// A broken store (a table gone) while issuing the code is `server_error` at the app, never a 5xx page.
#[tokio::test]
async fn authorize_storage_failure_is_server_error_redirect() {
    let w = World::new(|_| {}).await;
    let first = w.code(&w.shop, &[]).await;
    assert!(!first.is_empty());
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&w.app.db.url)
        .await
        .unwrap();
    sqlx::query("DROP TABLE auth_codes")
        .execute(&mut conn)
        .await
        .unwrap();
    let url = w.authorize_url(&w.shop, &[("scope", "profile"), ("state", "st")]);
    let to = w.browser.open(&url).await.left_to();
    check_error_redirect(
        "server_error",
        to.as_str(),
        &w.shop.redirect_uri,
        &w.app.base,
        "server_error",
        Says::Mentions("could not complete"),
        Some("st"),
    );
}

/// SPEC 2.1: a database that goes away while the code is issued (here PostgreSQL terminating the connection in
/// the middle of the INSERT, as in a restart or failover) is `temporarily_unavailable` at the app, with the
/// `state` and `iss`; once it is back, the same request gets a code.
#[tokio::test]
async fn authorize_with_the_database_unavailable_is_temporarily_unavailable_redirect() {
    let Some(db) = postgres_db().await else {
        return;
    };
    let w = World::on(spawn_app_on(Arc::new(db)).await, |_| {}).await;
    assert!(!w.code(&w.shop, &[]).await.is_empty());
    use sqlx::{Connection, Executor};
    let mut admin = sqlx::PgConnection::connect(&w.app.db.url).await.unwrap();
    admin
        .execute(
            "CREATE FUNCTION lk_test_go_away() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$; \
             CREATE TRIGGER lk_test_go_away BEFORE INSERT ON auth_codes \
             FOR EACH ROW EXECUTE FUNCTION lk_test_go_away()",
        )
        .await
        .unwrap();
    let url = w.authorize_url(&w.shop, &[("scope", "profile"), ("state", "st 1")]);
    let to = w.browser.open(&url).await.left_to();
    check_error_redirect(
        "temporarily_unavailable",
        to.as_str(),
        &w.shop.redirect_uri,
        &w.app.base,
        "temporarily_unavailable",
        Says::Mentions("try again"),
        Some("st 1"),
    );
    admin
        .execute("DROP TRIGGER lk_test_go_away ON auth_codes")
        .await
        .unwrap();
    let back = w.browser.open(&url).await.left_to();
    assert!(Step::param(&back, "code").is_some(), "{back}");
}

/// SPEC 2.2: at the token endpoint a broken database is 500 `server_error`, but one that cannot be reached (its
/// pool closed under the server) is 503 `temporarily_unavailable` with `Retry-After`, in the endpoint's shape;
/// the resource endpoints answer alike.
#[tokio::test]
async fn token_endpoint_with_the_database_unavailable_is_503_temporarily_unavailable() {
    let db = Arc::new(sqlite_db());
    let store = latchkey::store::SqlStore::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let app = spawn_app_over(db, Arc::new(store.clone())).await;
    let machine = app
        .register_app(|i| i.features.insert(Feature::ClientCredentials))
        .await;
    let body = form_body(&[
        ("grant_type", "client_credentials"),
        ("client_id", &machine.client_id),
        ("client_secret", machine.secret.as_deref().unwrap()),
    ]);
    let res = post_body(&app, "/auth/o2/token", &body, None).await;
    assert_eq!(res.status(), 200);

    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
    sqlx::query("DROP TABLE access_tokens")
        .execute(&mut conn)
        .await
        .unwrap();
    let res = post_body(&app, "/auth/o2/token", &body, None).await;
    assert!(res.headers().get("retry-after").is_none());
    expect_token_error(
        "broken database",
        res,
        500,
        "server_error",
        Says::Mentions("could not complete"),
    )
    .await;

    store.close().await;
    for path in ["/auth/o2/token", "/oauth2/token"] {
        let res = post_body(&app, path, &body, None).await;
        assert_eq!(header(res.headers(), "retry-after"), "5", "{path}");
        expect_token_error(
            path,
            res,
            503,
            "temporarily_unavailable",
            Says::Mentions("try again"),
        )
        .await;
    }
    let res = tokeninfo(&app, "Atza|anything").await;
    assert_eq!(header(&res.headers, "retry-after"), "5");
    expect_resource_error(
        "tokeninfo",
        res,
        503,
        "temporarily_unavailable",
        Says::Mentions("try again"),
    )
    .await;
    // Pages answer in their own shape through the same mapping: a sign-in (its rate limit is in the store) and the
    // code-entry page of a signed-in browser fail alike, with a page that says to wait.
    let page = app.api().get(app.url("/ap/signin")).send().await.unwrap();
    let cookies: Vec<String> = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect();
    let html = page.text().await.unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let res = app
        .api()
        .post(app.url("/ap/signin"))
        .header("cookie", cookies.join("; "))
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", "a@example.com"),
            ("password", "a password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(header(res.headers(), "retry-after"), "5");
    assert!(res.text().await.unwrap().contains("try again in 5 seconds"));
}

// ---------------------------------------------------------------------------------------------------------------
// SPEC 2.2: POST /auth/o2/token

/// Errors decided before any code or refresh token is looked at: parameters and client authentication.
#[tokio::test]
async fn token_request_and_client_authentication_errors() {
    let w = World::new(|_| {}).await;
    let app = &w.app;
    let shop = &w.shop;
    let public = app.register_app(|i| i.kind = ClientKind::Public).await;
    let machine = app
        .register_app(|i| i.features.insert(Feature::ClientCredentials))
        .await;
    let id = shop.client_id.as_str();
    let secret = shop.secret.as_deref().unwrap();
    let m_id = machine.client_id.as_str();
    let m_secret = machine.secret.as_deref().unwrap();
    let unknown = unknown_client_id();
    use Says::*;
    type Row<'a> = (
        &'a str,
        Vec<(&'a str, &'a str)>,
        Option<(&'a str, &'a str)>,
        u16,
        &'a str,
        Says,
    );
    #[rustfmt::skip]
    let table: Vec<Row> = vec![
        ("missing grant_type", vec![("code", "x"), ("client_id", id), ("client_secret", secret)], None, 400, "invalid_request", Mentions("grant_type")),
        ("grant_type twice", vec![("grant_type", "authorization_code"), ("grant_type", "authorization_code"), ("code", "x"), ("client_id", id), ("client_secret", secret)], None, 400, "invalid_request", Mentions("grant_type")),
        ("unsupported grant_type", vec![("grant_type", "password"), ("client_id", id), ("client_secret", secret)], None, 400, "unsupported_grant_type", Mentions("grant_type")),
        ("missing code", vec![("grant_type", "authorization_code"), ("client_id", id), ("client_secret", secret)], None, 400, "invalid_request", Mentions("code")),
        ("code twice", vec![("grant_type", "authorization_code"), ("code", "a"), ("code", "b"), ("client_id", id), ("client_secret", secret)], None, 400, "invalid_request", Mentions("code")),
        ("missing refresh_token", vec![("grant_type", "refresh_token"), ("client_id", id), ("client_secret", secret)], None, 400, "invalid_request", Mentions("refresh_token")),
        ("unknown code", vec![("grant_type", "authorization_code"), ("code", "not-a-code"), ("client_id", id), ("client_secret", secret)], None, 400, "invalid_grant", Exactly("The request has an invalid grant parameter : code")),
        ("unknown refresh token", vec![("grant_type", "refresh_token"), ("refresh_token", "Atzr|nope"), ("client_id", id), ("client_secret", secret)], None, 400, "invalid_grant", Exactly("The request has an invalid grant parameter : refresh_token")),
        ("no client_id at all", vec![("grant_type", "authorization_code"), ("code", "x")], None, 401, "invalid_client", Mentions("client_id")),
        ("unknown client_id", vec![("grant_type", "authorization_code"), ("code", "x"), ("client_id", &unknown), ("client_secret", secret)], None, 401, "invalid_client", Mentions(": client_id")),
        ("malformed client_id", vec![("grant_type", "authorization_code"), ("code", "x"), ("client_id", "shop"), ("client_secret", secret)], None, 401, "invalid_client", Mentions(": client_id")),
        ("wrong secret in body", vec![("grant_type", "authorization_code"), ("code", "x"), ("client_id", id), ("client_secret", "wrong")], None, 401, "invalid_client", Mentions(": client_secret")),
        ("other app's secret in body", vec![("grant_type", "client_credentials"), ("client_id", id), ("client_secret", m_secret)], None, 401, "invalid_client", Mentions(": client_secret")),
        ("wrong secret in Basic", vec![("grant_type", "authorization_code"), ("code", "x")], Some((id, "wrong")), 401, "invalid_client", Mentions(": client_secret")),
        ("unknown client in Basic", vec![("grant_type", "authorization_code"), ("code", "x")], Some((&unknown, secret)), 401, "invalid_client", Mentions(": client_id")),
        ("Basic and body secret", vec![("grant_type", "authorization_code"), ("code", "x"), ("client_secret", secret)], Some((id, secret)), 400, "invalid_request", Mentions("client_secret")),
        ("Basic id differs from body client_id", vec![("grant_type", "authorization_code"), ("code", "x"), ("client_id", m_id)], Some((id, secret)), 400, "invalid_request", Mentions("client_id")),
        ("secret sent for a public app", vec![("grant_type", "authorization_code"), ("code", "x"), ("client_id", &public.client_id), ("client_secret", "anything")], None, 401, "invalid_client", Mentions(": client_secret")),
        ("client_credentials not enabled", vec![("grant_type", "client_credentials"), ("client_id", id), ("client_secret", secret)], None, 400, "unauthorized_client", Mentions("grant_type")),
        ("client_credentials without secret", vec![("grant_type", "client_credentials"), ("client_id", m_id)], None, 401, "invalid_client", Mentions(": client_secret")),
        ("client_credentials by a public app", vec![("grant_type", "client_credentials"), ("client_id", &public.client_id)], None, 401, "invalid_client", Mentions(": client_secret")),
        ("client_credentials unknown scope", vec![("grant_type", "client_credentials"), ("scope", "bogus"), ("client_id", m_id), ("client_secret", m_secret)], None, 400, "invalid_scope", Mentions("bogus")),
        ("refresh by confidential app without secret", vec![("grant_type", "refresh_token"), ("refresh_token", "Atzr|nope"), ("client_id", id)], None, 401, "invalid_client", Mentions(": client_secret")),
    ];
    for path in ["/auth/o2/token", "/oauth2/token"] {
        for (label, pairs, basic, status, error, says) in &table {
            let res = post_body(app, path, &form_body(pairs), *basic).await;
            expect_token_error(&format!("{path} {label}"), res, *status, error, *says).await;
        }
    }

    // SPEC 2: in a JSON body a repeated member is a duplicate parameter too, never silently its last value (here
    // the right secret, after a wrong one); the last member alone succeeds.
    let post_json = |body: String| async move {
        app.api()
            .post(app.url("/auth/o2/token"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    };
    let machine_json = |members: &str| {
        format!(r#"{{"grant_type":"client_credentials","client_id":"{m_id}",{members}}}"#)
    };
    #[rustfmt::skip]
    let json_rows = [
        ("JSON client_secret twice", machine_json(&format!(r#""client_secret":"wrong","client_secret":"{m_secret}""#)), "The request has a duplicate parameter : client_secret"),
        ("JSON grant_type twice", format!(r#"{{"grant_type":"authorization_code","grant_type":"client_credentials","client_id":"{m_id}","client_secret":"{m_secret}"}}"#), "The request has a duplicate parameter : grant_type"),
    ];
    for (label, body, says) in json_rows {
        let res = post_json(body).await;
        expect_token_error(label, res, 400, "invalid_request", Exactly(says)).await;
    }
    let res = post_json(machine_json(&format!(r#""client_secret":"{m_secret}""#))).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());

    // Authorization headers that are not usable Basic credentials are invalid_client, not ignored.
    #[rustfmt::skip]
    let headers: Vec<(&str, Vec<u8>)> = vec![
        ("Basic with invalid base64", b"Basic !!!not-base64!!!".to_vec()),
        ("Basic without a colon", format!("Basic {}", base64_encode(id.as_bytes())).into_bytes()),
        ("Basic of non-UTF-8 bytes", format!("Basic {}", base64_encode(b"\xff\xfe:\xfd")).into_bytes()),
        ("Basic with no credentials", b"Basic".to_vec()),
        ("Bearer at the token endpoint", b"Bearer Atza|abc".to_vec()),
        ("non-UTF-8 header bytes", b"Basic \xff\xfe\xfd".to_vec()),
    ];
    let body = form_body(&[("grant_type", "client_credentials"), ("client_id", m_id)]);
    for (label, value) in headers {
        let res = app
            .api()
            .post(app.url("/auth/o2/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", HeaderValue::from_bytes(&value).unwrap())
            .body(body.clone())
            .send()
            .await
            .unwrap();
        expect_token_error(
            label,
            res,
            401,
            "invalid_client",
            Says::Mentions(": Authorization"),
        )
        .await;
    }
    // Even with good credentials in the body, an unreadable Authorization header is not silently skipped.
    let res = app
        .api()
        .post(app.url("/auth/o2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "authorization",
            HeaderValue::from_bytes(b"Basic \xff\xfe").unwrap(),
        )
        .body(form_body(&[
            ("grant_type", "client_credentials"),
            ("client_id", m_id),
            ("client_secret", m_secret),
        ]))
        .send()
        .await
        .unwrap();
    expect_token_error(
        "non-UTF-8 Authorization beside body credentials",
        res,
        401,
        "invalid_client",
        Says::Mentions(": Authorization"),
    )
    .await;
    // Control: the same body without the header succeeds, so the rows above fail for the header alone.
    let res = post_body(
        app,
        "/auth/o2/token",
        &form_body(&[
            ("grant_type", "client_credentials"),
            ("client_id", m_id),
            ("client_secret", m_secret),
        ]),
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The authorization code grant's errors (SPEC 2.2), each on a fresh code.
#[tokio::test]
async fn code_exchange_errors() {
    let w = World::new(|_| {}).await;
    let shop = &w.shop;
    let other = w.app.register_app(|_| {}).await;
    let public = w.app.register_app(|i| i.kind = ClientKind::Public).await;
    let secret = shop.secret.as_deref().unwrap();
    let exchange = |code: &str, client: &RegisteredApp, extra: Vec<(&'static str, String)>| {
        let mut pairs: Vec<(String, String)> = vec![
            ("grant_type".into(), "authorization_code".into()),
            ("code".into(), code.to_owned()),
            ("client_id".into(), client.client_id.clone()),
        ];
        let drop_redirect = extra.iter().any(|(k, _)| *k == "no_redirect_uri");
        if !drop_redirect && !extra.iter().any(|(k, _)| *k == "redirect_uri") {
            pairs.push(("redirect_uri".into(), client.redirect_uri.clone()));
        }
        for (k, v) in extra {
            if k != "no_redirect_uri" {
                pairs.push((k.to_owned(), v));
            }
        }
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    };
    let s = || ("client_secret", secret.to_owned());
    let pkce = [
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];

    // Issued to another client.
    let code = w.code(shop, &[]).await;
    let body = exchange(
        &code,
        &other,
        vec![("client_secret", other.secret.clone().unwrap())],
    );
    expect_token_error(
        "another client's code",
        w.post_token(&body).await,
        400,
        "invalid_grant",
        Says::Exactly("The request has an invalid grant parameter : code"),
    )
    .await;

    // redirect_uri differs from the authorization request's.
    let code = w.code(shop, &[]).await;
    let body = exchange(
        &code,
        shop,
        vec![s(), ("redirect_uri", "http://127.0.0.1/other".into())],
    );
    expect_token_error(
        "redirect_uri mismatch",
        w.post_token(&body).await,
        400,
        "invalid_grant",
        Says::Mentions("redirect_uri"),
    )
    .await;

    // redirect_uri was sent at authorization but not at exchange.
    let code = w.code(shop, &[]).await;
    let body = exchange(&code, shop, vec![s(), ("no_redirect_uri", String::new())]);
    expect_token_error(
        "redirect_uri omitted",
        w.post_token(&body).await,
        400,
        "invalid_grant",
        Says::Mentions("redirect_uri"),
    )
    .await;

    // PKCE: verifier missing, wrong, or the challenge itself.
    let code = w.code(shop, &pkce).await;
    let body = exchange(&code, shop, vec![s()]);
    expect_token_error(
        "verifier missing",
        w.post_token(&body).await,
        400,
        "invalid_grant",
        Says::Mentions("code_verifier"),
    )
    .await;
    let code = w.code(shop, &pkce).await;
    let wrong = format!("{}A", &VERIFIER[..VERIFIER.len() - 1]);
    let body = exchange(&code, shop, vec![s(), ("code_verifier", wrong)]);
    expect_token_error(
        "verifier wrong",
        w.post_token(&body).await,
        400,
        "invalid_grant",
        Says::Mentions("code_verifier"),
    )
    .await;
    let code = w.code(shop, &pkce).await;
    let body = exchange(&code, shop, vec![s(), ("code_verifier", CHALLENGE.into())]);
    expect_token_error(
        "challenge as verifier",
        w.post_token(&body).await,
        400,
        "invalid_grant",
        Says::Mentions("code_verifier"),
    )
    .await;
    let code = w.code(&public, &pkce).await;
    let body = exchange(&code, &public, vec![("code_verifier", "short".into())]);
    expect_token_error(
        "public app, malformed verifier",
        w.post_token(&body).await,
        400,
        "invalid_grant",
        Says::Mentions("code_verifier"),
    )
    .await;

    // PKCE downgrade: a verifier for a code issued without a challenge.
    let code = w.code(shop, &[]).await;
    let body = exchange(&code, shop, vec![s(), ("code_verifier", VERIFIER.into())]);
    expect_token_error(
        "verifier without challenge",
        w.post_token(&body).await,
        400,
        "invalid_grant",
        Says::Mentions("code_verifier"),
    )
    .await;

    // A confidential app with neither secret nor PKCE proves nothing.
    let code = w.code(shop, &[]).await;
    let body = exchange(&code, shop, vec![]);
    expect_token_error(
        "no secret, no PKCE",
        w.post_token(&body).await,
        401,
        "invalid_client",
        Says::Mentions(": client_secret"),
    )
    .await;
    // ...and that failure did not burn the code for the real app.
    let body = exchange(&code, shop, vec![s()]);
    assert_eq!(
        w.post_token(&body).await.status(),
        200,
        "a refused exchange must not consume the code"
    );

    // Used twice: invalid_grant, and every token from the first use is revoked.
    let code = w.code(shop, &[]).await;
    let first = w.tokens(shop, &code, None).await;
    let access = first["access_token"].as_str().unwrap();
    let refresh = first["refresh_token"].as_str().unwrap();
    assert_eq!(tokeninfo(&w.app, access).await.status, 200);
    let body = exchange(&code, shop, vec![s()]);
    expect_token_error(
        "code used twice",
        w.post_token(&body).await,
        400,
        "invalid_grant",
        Says::Exactly("The request has an invalid grant parameter : code"),
    )
    .await;
    expect_resource_error(
        "access token after replay",
        tokeninfo(&w.app, access).await,
        400,
        "invalid_token",
        Says::Exactly(INVALID_TOKEN),
    )
    .await;
    let body = form_body(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh),
        ("client_id", &shop.client_id),
        ("client_secret", secret),
    ]);
    expect_token_error(
        "refresh token after replay",
        w.post_token(&body).await,
        400,
        "invalid_grant",
        Says::Mentions("refresh_token"),
    )
    .await;

    // Expired: codes live at most 5 minutes.
    let code = w.code(shop, &[]).await;
    w.app.state.clock.advance(301);
    let body = exchange(&code, shop, vec![s()]);
    expect_token_error(
        "expired code",
        w.post_token(&body).await,
        400,
        "invalid_grant",
        Says::Exactly("The request has an invalid grant parameter : code"),
    )
    .await;
}

/// The refresh grant's errors: another app's token, broader scope, reuse of a rotated token.
#[tokio::test]
async fn refresh_errors() {
    let w = World::new(|_| {}).await;
    let shop = &w.shop;
    let other = w.app.register_app(|_| {}).await;
    let code = w.code(shop, &[]).await;
    let tokens = w.tokens(shop, &code, None).await;
    let r1 = tokens["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |token: &str, client: &RegisteredApp, scope: Option<&str>| {
        let mut pairs = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", client.client_id.as_str()),
            ("client_secret", client.secret.as_deref().unwrap()),
        ];
        if let Some(s) = scope {
            pairs.push(("scope", s));
        }
        form_body(&pairs)
    };

    expect_token_error(
        "another app's refresh token",
        w.post_token(&refresh(&r1, &other, None)).await,
        400,
        "invalid_grant",
        Says::Mentions("refresh_token"),
    )
    .await;
    expect_token_error(
        "broader scope",
        w.post_token(&refresh(&r1, shop, Some("profile postal_code")))
            .await,
        400,
        "invalid_scope",
        Says::Mentions("scope"),
    )
    .await;
    expect_token_error(
        "unknown scope",
        w.post_token(&refresh(&r1, shop, Some("bogus"))).await,
        400,
        "invalid_scope",
        Says::Mentions("bogus"),
    )
    .await;
    let body = form_body(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &r1),
        ("client_id", &shop.client_id),
        ("client_secret", "wrong"),
    ]);
    expect_token_error(
        "wrong secret",
        w.post_token(&body).await,
        401,
        "invalid_client",
        Says::Mentions(": client_secret"),
    )
    .await;

    // None of the refusals above used the token up.
    let res = w.post_token(&refresh(&r1, shop, None)).await;
    assert_eq!(res.status(), 200);
    let r2: Value = res.json().await.unwrap();
    let r2 = r2["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);

    // The rotated token presented again (after the grace window) is refused and revokes the family.
    w.app.state.clock.advance(60);
    expect_token_error(
        "rotated token reused",
        w.post_token(&refresh(&r1, shop, None)).await,
        400,
        "invalid_grant",
        Says::Mentions("refresh_token"),
    )
    .await;
    expect_token_error(
        "family revoked",
        w.post_token(&refresh(&r2, shop, None)).await,
        400,
        "invalid_grant",
        Says::Mentions("refresh_token"),
    )
    .await;
}

/// SPEC 2.2: N parallel refreshes of one token produce no 5xx; exactly one of them rotates it.
#[tokio::test]
async fn parallel_refreshes_of_one_token_never_5xx() {
    for (engine, db) in each_db().await {
        let w = World::on(spawn_app_on(std::sync::Arc::new(db)).await, |_| {}).await;
        let code = w.code(&w.shop, &[]).await;
        let tokens = w.tokens(&w.shop, &code, None).await;
        let body = form_body(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", &w.shop.client_id),
            ("client_secret", w.shop.secret.as_deref().unwrap()),
        ]);
        let mut parallel = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let request = w
                .app
                .api()
                .post(w.app.url("/auth/o2/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.clone());
            parallel.spawn(async move {
                let res = request.send().await.unwrap();
                (res.status().as_u16(), res.text().await.unwrap())
            });
        }
        let mut ok = 0;
        while let Some(answer) = parallel.join_next().await {
            let (status, text) = answer.unwrap();
            match status {
                200 => ok += 1,
                400 => assert!(text.contains("invalid_grant"), "{engine}: {text}"),
                _ => panic!("{engine}: parallel refresh answered {status}: {text}"),
            }
        }
        assert_eq!(ok, 1, "{engine}: exactly one refresh wins");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// SPEC 2.4 and 2.5: tokeninfo and profile

#[tokio::test]
async fn tokeninfo_and_profile_errors() {
    let w = World::new(|_| {}).await;
    let app = &w.app;
    let code = w.code(&w.shop, &[]).await;
    let good = w.tokens(&w.shop, &code, None).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Controls: the token works both ways, so the failures below are about the token presented.
    assert_eq!(tokeninfo(app, &good).await.status, 200);
    assert_eq!(profile(app, &good, Presented::Bearer).await.status, 200);

    let unknown = format!("Atza|{}", "A".repeat(43));
    for token in [unknown.as_str(), "not-a-token", "Atza|", "Atzr|abc"] {
        expect_resource_error(
            &format!("tokeninfo {token}"),
            tokeninfo(app, token).await,
            400,
            "invalid_token",
            Says::Exactly(INVALID_TOKEN),
        )
        .await;
        expect_resource_error(
            &format!("profile {token}"),
            profile(app, token, Presented::Bearer).await,
            400,
            "invalid_token",
            Says::Exactly(INVALID_TOKEN),
        )
        .await;
    }
    let by_header = |path: &str, name: &str, value: &str| {
        app.api().get(app.url(path)).header(name, value).send()
    };
    expect_resource_error(
        "tokeninfo x-amz-access-token unknown",
        by_header("/auth/o2/tokeninfo", "x-amz-access-token", &unknown)
            .await
            .unwrap(),
        400,
        "invalid_token",
        Says::Exactly(INVALID_TOKEN),
    )
    .await;
    expect_resource_error(
        "profile x-amz-access-token unknown",
        by_header("/user/profile", "x-amz-access-token", &unknown)
            .await
            .unwrap(),
        400,
        "invalid_token",
        Says::Exactly(INVALID_TOKEN),
    )
    .await;
    let res = app
        .api()
        .get(app.url("/user/profile"))
        .query(&[("access_token", &unknown)])
        .send()
        .await
        .unwrap();
    expect_resource_error(
        "profile query unknown",
        res,
        400,
        "invalid_token",
        Says::Exactly(INVALID_TOKEN),
    )
    .await;

    // Missing, or sent twice.
    for path in ["/auth/o2/tokeninfo", "/user/profile"] {
        let res = app.api().get(app.url(path)).send().await.unwrap();
        expect_resource_error(
            &format!("{path} no token"),
            res,
            400,
            "invalid_request",
            Says::Mentions("access_token"),
        )
        .await;
        let res = app
            .api()
            .get(app.url(path))
            .query(&[("access_token", &good)])
            .header("x-amz-access-token", &good)
            .send()
            .await
            .unwrap();
        expect_resource_error(
            &format!("{path} token twice"),
            res,
            400,
            "invalid_request",
            Says::Mentions("access_token"),
        )
        .await;
        let res = app
            .api()
            .get(format!(
                "{}?access_token={good}&access_token={good}",
                app.url(path)
            ))
            .send()
            .await
            .unwrap();
        expect_resource_error(
            &format!("{path} access_token param twice"),
            res,
            400,
            "invalid_request",
            Says::Mentions("access_token"),
        )
        .await;
    }
    // Profile: a non-Bearer Authorization scheme.
    let res = by_header("/user/profile", "authorization", &format!("Basic {good}"))
        .await
        .unwrap();
    expect_resource_error(
        "profile Basic scheme",
        res,
        400,
        "invalid_request",
        Says::Mentions("Authorization"),
    )
    .await;
    // Profile: the Bearer scheme is case-insensitive (control for the row above).
    let res = by_header("/user/profile", "authorization", &format!("bEaReR {good}"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // A token without any profile scope: 403 insufficient_scope.
    let oidc = w.code(&w.shop, &[("scope", "openid")]).await;
    let openid_only = w.tokens(&w.shop, &oidc, None).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(tokeninfo(app, &openid_only).await.status, 200);
    let res = profile(app, &openid_only, Presented::Bearer).await;
    expect_resource_error(
        "profile without profile scope",
        res,
        403,
        "insufficient_scope",
        Says::Mentions("scope"),
    )
    .await;
    // profile:user_id alone is enough for the profile endpoint.
    let uid = w.code(&w.shop, &[("scope", "profile:user_id")]).await;
    let uid_only = w.tokens(&w.shop, &uid, None).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(profile(app, &uid_only, Presented::Bearer).await.status, 200);

    // Revoked: visible at once (code replay revokes what the code issued).
    let code = w.code(&w.shop, &[]).await;
    let revoked = w.tokens(&w.shop, &code, None).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = form_body(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", &w.shop.redirect_uri),
        ("client_id", &w.shop.client_id),
        ("client_secret", w.shop.secret.as_deref().unwrap()),
    ]);
    assert_eq!(w.post_token(&body).await.status(), 400);
    expect_resource_error(
        "tokeninfo revoked",
        tokeninfo(app, &revoked).await,
        400,
        "invalid_token",
        Says::Exactly(INVALID_TOKEN),
    )
    .await;
    expect_resource_error(
        "profile revoked",
        profile(app, &revoked, Presented::Bearer).await,
        400,
        "invalid_token",
        Says::Exactly(INVALID_TOKEN),
    )
    .await;

    // Expired: access tokens live 3600 s. The world's clock is frozen, so this is exact: alive in its last
    // second, dead at the 3600th.
    app.state.clock.advance(3599);
    assert_eq!(tokeninfo(app, &good).await.status, 200);
    app.state.clock.advance(1);
    expect_resource_error(
        "tokeninfo expired",
        tokeninfo(app, &good).await,
        400,
        "invalid_token",
        Says::Exactly(INVALID_TOKEN),
    )
    .await;
    expect_resource_error(
        "profile expired",
        profile(app, &good, Presented::Bearer).await,
        400,
        "invalid_token",
        Says::Exactly(INVALID_TOKEN),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------------------------
// Malformed and oversized input (SPEC 4: every malformed input a clear 4xx, never a 5xx or a panic)

/// A response read off a raw socket.
struct RawResponse {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Sends `request` as-is over TCP and reads the answer (the server closes the connection).
async fn raw(app: &TestApp, request: &[u8]) -> RawResponse {
    let addr = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer (and close) before reading all of an oversized request.
    let _ = stream.write_all(request).await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        let mut chunk = [0u8; 8192];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server did not close the connection");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, _) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {text:?}"));
    let head = head.to_owned();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    let mut body = buf[head.len() + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    RawResponse { status, head, body }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 4 + size..];
    }
}

/// How a malformed request is sent.
#[allow(clippy::large_enum_variant)]
enum Via {
    Http(reqwest::RequestBuilder),
    Raw(Vec<u8>),
}

/// What the answer must look like besides being a 4xx.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// JSON with an `error` string (API endpoints).
    Json,
    /// Anything 4xx (pages, and requests the HTTP layer refuses before any route sees them).
    Any,
}

fn raw_request(method: &str, target: &[u8], headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(method.as_bytes());
    r.push(b' ');
    r.extend_from_slice(target);
    r.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for h in headers {
        r.extend_from_slice(h.as_bytes());
        r.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() {
        r.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    r.extend_from_slice(b"\r\n");
    r.extend_from_slice(body);
    r
}

#[tokio::test]
async fn malformed_and_oversized_inputs_get_a_clear_4xx() {
    let w = World::new(|_| {}).await;
    let app = &w.app;
    let http = app.api();
    let id = w.shop.client_id.clone();
    let secret = w.shop.secret.clone().unwrap();
    let machine = app
        .register_app(|i| i.features.insert(Feature::ClientCredentials))
        .await;
    let url = |p: &str| app.url(p);
    let form_post = |path: &str, body: Vec<u8>| {
        http.post(url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };
    let json_post = |path: &str, body: &str| {
        http.post(url(path))
            .header("content-type", "application/json")
            .body(body.to_owned())
    };
    let big_body = format!(
        "grant_type=authorization_code&code={}",
        "x".repeat(40 * 1024)
    )
    .into_bytes();
    let long = "x".repeat(5000);
    let hundred_params: String = (0..100).map(|i| format!("p{i}=v&")).collect();
    let query_60k = format!("access_token=Atza|x&pad={}", "y".repeat(60 * 1024));
    let query_100k = format!("access_token=Atza|x&pad={}", "y".repeat(100 * 1024));
    let long_bearer = format!("Bearer Atza|{}", "A".repeat(10_000));
    let chunked_big = {
        let mut r = b"POST /auth/o2/token HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..10 {
            r.extend_from_slice(format!("1000\r\n{}\r\n", "a".repeat(0x1000)).as_bytes());
        }
        r.extend_from_slice(b"0\r\n\r\n");
        r
    };
    use Shape::*;
    use Via::*;
    #[rustfmt::skip]
    let cases: Vec<(&str, Via, Shape)> = vec![
        // POST /auth/o2/token
        ("token: 40 KiB body", Http(form_post("/auth/o2/token", big_body.clone())), Json),
        ("token: 40 KiB chunked body", Raw(chunked_big), Json),
        ("token: 5000-character client_id", Http(form_post("/auth/o2/token", format!("grant_type=client_credentials&client_id={long}").into_bytes())), Json),
        ("token: 100 parameters", Http(form_post("/auth/o2/token", hundred_params.clone().into_bytes())), Json),
        ("token: invalid percent-encoding", Http(form_post("/auth/o2/token", b"grant_type=%ZZ&code=%&client_id=%E0%A4%A".to_vec())), Json),
        ("token: non-UTF-8 body bytes", Http(form_post("/auth/o2/token", b"grant_type=authorization_code&code=\xff\xfe".to_vec())), Json),
        ("token: percent-encoded non-UTF-8", Http(form_post("/auth/o2/token", format!("grant_type=authorization_code&code=%FF%FE&client_id={id}&client_secret={secret}").into_bytes())), Json),
        ("token: NUL bytes", Http(form_post("/auth/o2/token", format!("grant_type=authorization_code&code=a%00b&client_id={id}%00&client_secret={secret}").into_bytes())), Json),
        ("token: text/plain body", Http(http.post(url("/auth/o2/token")).header("content-type", "text/plain").body("grant_type=client_credentials")), Json),
        ("token: no content-type", Http(http.post(url("/auth/o2/token")).body("grant_type=client_credentials")), Json),
        ("token: multipart body", Http(http.post(url("/auth/o2/token")).header("content-type", "multipart/form-data; boundary=x").body("--x--")), Json),
        ("token: malformed JSON", Http(json_post("/auth/o2/token", r#"{"grant_type": "client_credentials""#)), Json),
        ("token: JSON array", Http(json_post("/auth/o2/token", r#"[{"grant_type":"client_credentials"}]"#)), Json),
        ("token: JSON string", Http(json_post("/auth/o2/token", r#""grant_type""#)), Json),
        ("token: JSON null", Http(json_post("/auth/o2/token", "null")), Json),
        ("token: JSON nested object", Http(json_post("/auth/o2/token", r#"{"grant_type":{"a":"b"}}"#)), Json),
        ("token: JSON array value", Http(json_post("/auth/o2/token", r#"{"grant_type":["client_credentials"]}"#)), Json),
        ("token: JSON number grant_type", Http(json_post("/auth/o2/token", r#"{"grant_type":5,"client_id":1}"#)), Json),
        ("token: JSON non-UTF-8", Http(http.post(url("/auth/o2/token")).header("content-type", "application/json").body(b"{\"grant_type\":\"\xff\"}".to_vec())), Json),
        ("token: JSON deeply nested", Http(json_post("/auth/o2/token", &format!("{}{}", "[".repeat(5000), "]".repeat(5000)))), Json),
        ("token: duplicate grant_type", Http(form_post("/auth/o2/token", b"grant_type=client_credentials&grant_type=client_credentials".to_vec())), Json),
        ("token: Basic with invalid base64", Http(form_post("/auth/o2/token", b"grant_type=client_credentials".to_vec()).header("authorization", "Basic %%%")), Json),
        ("token: Basic without colon", Http(form_post("/auth/o2/token", b"grant_type=client_credentials".to_vec()).header("authorization", format!("Basic {}", base64_encode(id.as_bytes())))), Json),
        ("token: non-UTF-8 Authorization", Http(form_post("/auth/o2/token", format!("grant_type=client_credentials&client_id={}&client_secret={}", machine.client_id, machine.secret.clone().unwrap()).into_bytes()).header("authorization", HeaderValue::from_bytes(b"Basic \xc3\x28\xff").unwrap())), Json),
        ("token: two Authorization headers", Http(form_post("/auth/o2/token", b"grant_type=client_credentials".to_vec()).header("authorization", format!("Basic {}", base64_encode(format!("{}:{}", machine.client_id, machine.secret.clone().unwrap()).as_bytes()))).header("authorization", "Basic eDp5")), Json),
        ("token: GET", Http(http.get(url("/auth/o2/token"))), Json),
        ("token: DELETE", Http(http.delete(url("/auth/o2/token"))), Json),
        ("token: unknown method", Raw(raw_request("BREW", b"/auth/o2/token", &[], b"")), Json),
        ("token: HEAD", Http(http.head(url("/auth/o2/token"))), Any),
        // POST /oauth2/token
        ("oauth2 token: 40 KiB body", Http(form_post("/oauth2/token", big_body.clone())), Json),
        ("oauth2 token: malformed JSON", Http(json_post("/oauth2/token", "{")), Json),
        ("oauth2 token: non-UTF-8 body", Http(form_post("/oauth2/token", b"grant_type=\xc0\xaf".to_vec())), Json),
        ("oauth2 token: PUT", Http(http.put(url("/oauth2/token"))), Json),
        // GET /auth/o2/tokeninfo
        ("tokeninfo: 5000-character token", Http(http.get(url("/auth/o2/tokeninfo")).query(&[("access_token", &long)])), Json),
        ("tokeninfo: 100 parameters", Http(http.get(format!("{}?{hundred_params}", url("/auth/o2/tokeninfo")))), Json),
        ("tokeninfo: 60 KiB query string", Http(http.get(format!("{}?{query_60k}", url("/auth/o2/tokeninfo")))), Json),
        ("tokeninfo: 100 KiB query string", Raw(raw_request("GET", format!("/auth/o2/tokeninfo?{query_100k}").as_bytes(), &[], b"")), Any),
        ("tokeninfo: invalid percent-encoding", Http(http.get(format!("{}?access_token=Atza%7C%ZZ%E0%A4%A", url("/auth/o2/tokeninfo")))), Json),
        ("tokeninfo: percent-encoded non-UTF-8", Http(http.get(format!("{}?access_token=Atza%7C%FF%FE", url("/auth/o2/tokeninfo")))), Json),
        ("tokeninfo: raw non-UTF-8 query bytes", Raw(raw_request("GET", b"/auth/o2/tokeninfo?access_token=Atza|\xff\xfe", &[], b"")), Any),
        ("tokeninfo: NUL in token", Http(http.get(format!("{}?access_token=Atza%7C%00%00", url("/auth/o2/tokeninfo")))), Json),
        ("tokeninfo: non-UTF-8 x-amz-access-token", Http(http.get(url("/auth/o2/tokeninfo")).header("x-amz-access-token", HeaderValue::from_bytes(b"Atza|\xff\xfe").unwrap())), Json),
        ("tokeninfo: duplicate access_token", Http(http.get(format!("{}?access_token=a&access_token=b", url("/auth/o2/tokeninfo")))), Json),
        ("tokeninfo: POST", Http(form_post("/auth/o2/tokeninfo", b"access_token=x".to_vec())), Json),
        // GET /user/profile
        ("profile: 10 000-character Bearer token", Http(http.get(url("/user/profile")).header("authorization", long_bearer.clone())), Json),
        ("profile: Bearer with spaces", Http(http.get(url("/user/profile")).header("authorization", "Bearer Atza|a b c")), Json),
        ("profile: Bearer without token", Http(http.get(url("/user/profile")).header("authorization", "Bearer")), Json),
        ("profile: Bearer with empty token", Http(http.get(url("/user/profile")).header("authorization", "Bearer  ")), Json),
        ("profile: non-UTF-8 Authorization", Http(http.get(url("/user/profile")).header("authorization", HeaderValue::from_bytes(b"Bearer Atza|\xff").unwrap())), Json),
        ("profile: Bearer and x-amz-access-token", Http(http.get(url("/user/profile")).header("authorization", "Bearer Atza|a").header("x-amz-access-token", "Atza|b")), Json),
        ("profile: two Authorization headers", Http(http.get(url("/user/profile")).header("authorization", "Bearer Atza|a").header("authorization", "Bearer Atza|b")), Json),
        ("profile: 5000-character query token", Http(http.get(url("/user/profile")).query(&[("access_token", &long)])), Json),
        ("profile: 100 KiB query string", Raw(raw_request("GET", format!("/user/profile?{query_100k}").as_bytes(), &[], b"")), Any),
        ("profile: 1 MiB header", Raw(raw_request("GET", b"/user/profile", &[&format!("x-amz-access-token: {}", "A".repeat(1024 * 1024))], b"")), Any),
        ("profile: 200 KiB header", Raw(raw_request("GET", b"/user/profile", &[&format!("x-amz-access-token: {}", "A".repeat(200 * 1024))], b"")), Any),
        ("profile: POST", Http(http.post(url("/user/profile"))), Json),
        // GET /ap/oa
        ("authorize: 5000-character state", Http(http.get(format!("{}?client_id={id}&response_type=code&scope=profile&state={long}", url("/ap/oa")))), Any),
        ("authorize: 100 parameters", Http(http.get(format!("{}?client_id={id}&{hundred_params}", url("/ap/oa")))), Any),
        ("authorize: 60 KiB query string", Http(http.get(format!("{}?client_id={id}&{query_60k}", url("/ap/oa")))), Any),
        ("authorize: 100 KiB query string", Raw(raw_request("GET", format!("/ap/oa?client_id={id}&{query_100k}").as_bytes(), &[], b"")), Any),
        ("authorize: invalid percent-encoding in client_id", Http(http.get(format!("{}?client_id=%ZZ%E0%A4%A&response_type=code", url("/ap/oa")))), Any),
        ("authorize: NUL in client_id", Http(http.get(format!("{}?client_id={id}%00&response_type=code", url("/ap/oa")))), Any),
        ("authorize: non-UTF-8 in redirect_uri", Http(http.get(format!("{}?client_id={id}&redirect_uri=http%3A%2F%2F127.0.0.1%2F%FF", url("/ap/oa")))), Any),
        ("authorize: POST", Http(form_post("/ap/oa", b"client_id=x".to_vec())), Any),
        // Pages with forms: CSRF missing or wrong, and oversized bodies.
        ("signin: no CSRF token", Http(form_post("/ap/signin", format!("email={EMAIL}&password={PASSWORD}").into_bytes())), Any),
        ("signin: wrong CSRF token", Http(form_post("/ap/signin", format!("csrf=AAAA&email={EMAIL}&password={PASSWORD}").into_bytes())), Any),
        ("signin: 40 KiB body", Http(form_post("/ap/signin", big_body.clone())), Any),
        ("signin: non-UTF-8 body", Http(form_post("/ap/signin", b"email=\xff\xfe&password=\xc0".to_vec())), Any),
        ("signin: PUT", Http(http.put(url("/ap/signin"))), Any),
        ("register: no CSRF token", Http(form_post("/ap/register", b"name=Bob&email=bob%40example.com&password=long+enough+pw".to_vec())), Any),
        ("register: 40 KiB body", Http(form_post("/ap/register", big_body.clone())), Any),
        ("consent: no CSRF token", Http(form_post("/ap/oa/consent", b"decision=allow&request=client_id%3Dx".to_vec())), Any),
        ("consent: wrong CSRF token", Http(form_post("/ap/oa/consent", b"csrf=nope&decision=allow".to_vec())), Any),
        ("consent: GET", Http(http.get(url("/ap/oa/consent"))), Any),
        ("signout: no CSRF token", Http(form_post("/ap/signout", Vec::new())), Any),
        // Static files: no way out of the one stylesheet.
        ("static: dot-dot traversal", Raw(raw_request("GET", b"/static/../Cargo.toml", &[], b"")), Any),
        ("static: encoded traversal", Raw(raw_request("GET", b"/static/%2e%2e/%2e%2e/Cargo.toml", &[], b"")), Any),
        ("static: encoded slash", Raw(raw_request("GET", b"/static/..%2f..%2fsrc%2fmain.rs", &[], b"")), Any),
        ("static: absolute path", Raw(raw_request("GET", b"/static//etc/passwd", &[], b"")), Any),
    ];
    assert!(cases.len() >= 25);
    for (label, send, shape) in cases {
        let (status, content_type, body) = match send {
            Http(req) => {
                let res = req.send().await.unwrap_or_else(|e| panic!("{label}: {e}"));
                let status = res.status().as_u16();
                let ct = header(res.headers(), "content-type");
                (status, ct, res.bytes().await.unwrap().to_vec())
            }
            Raw(bytes) => {
                let res = raw(app, &bytes).await;
                let ct = res
                    .head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-type")
                            .then(|| v.trim().to_owned())
                    })
                    .unwrap_or_default();
                (res.status, ct, res.body)
            }
        };
        let text = String::from_utf8_lossy(&body);
        assert!(
            (400..500).contains(&status),
            "{label}: expected a 4xx, got {status}: {text}"
        );
        if shape == Json {
            assert!(
                content_type.starts_with("application/json"),
                "{label}: {status} {content_type:?} {text}"
            );
            let v: Value = serde_json::from_slice(&body)
                .unwrap_or_else(|_| panic!("{label}: not JSON: {text}"));
            assert!(v["error"].is_string(), "{label}: {v}");
            assert!(v["error_description"].is_string(), "{label}: {v}");
        }
    }
    // A 405 says which method the endpoint serves.
    let res = http.get(url("/auth/o2/token")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(header(res.headers(), "allow"), "POST");
    let res = http.delete(url("/auth/o2/tokeninfo")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(header(res.headers(), "allow"), "GET, HEAD");
    // HEAD is served wherever GET is: same status, no body.
    let res = http.head(url("/auth/o2/tokeninfo")).send().await.unwrap();
    assert_eq!(res.status(), 400);
    // The server is still healthy after all that.
    let res = http.get(url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

// ---------------------------------------------------------------------------------------------------------------
// SPEC 4: security headers

fn check_security_headers(label: &str, h: &HeaderMap) {
    assert_eq!(header(h, "x-frame-options"), "DENY", "{label}");
    assert!(
        header(h, "content-security-policy").contains("frame-ancestors 'none'"),
        "{label}: {:?}",
        header(h, "content-security-policy")
    );
    assert_eq!(header(h, "referrer-policy"), "no-referrer", "{label}");
    assert_eq!(header(h, "x-content-type-options"), "nosniff", "{label}");
    assert!(!header(h, "x-request-id").is_empty(), "{label}");
}

#[tokio::test]
async fn security_headers_on_pages_and_api_and_no_store_on_tokens() {
    let w = World::new(|_| {}).await;
    let app = &w.app;
    let http = app.api();
    let browser = &w.browser;

    // Pages, including error pages and redirects.
    for path in [
        "/",
        "/ap/signin",
        "/ap/register",
        "/ap/signout",
        "/ap/oa",
        "/nowhere",
    ] {
        let res = http.get(app.url(path)).send().await.unwrap();
        check_security_headers(path, res.headers());
    }
    let page = browser
        .http
        .get(w.authorize_url(&w.shop, &[("scope", "profile")]))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "consent page");
    check_security_headers("consent page", page.headers());
    assert!(
        header(page.headers(), "cache-control").contains("no-store"),
        "consent page must not be cached"
    );

    // Cookies: HttpOnly and SameSite=Lax.
    let res = http.get(app.url("/ap/signin")).send().await.unwrap();
    let cookies: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(!cookies.is_empty());
    for c in &cookies {
        assert!(c.contains("HttpOnly"), "{c}");
        assert!(c.contains("SameSite=Lax"), "{c}");
    }

    // The redirect that carries a code back to the app.
    let res = browser
        .http
        .get(w.authorize_url(&w.shop, &[("scope", "profile:user_id")]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "the code comes back with 303 (SPEC 2.1)");
    assert!(header(res.headers(), "location").contains("code="));
    check_security_headers("redirect with code", res.headers());
    assert_eq!(header(res.headers(), "cache-control"), "no-store");

    // Token responses, success and error: no-store and no-cache.
    let code = w.code(&w.shop, &[]).await;
    let body = form_body(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", &w.shop.redirect_uri),
        ("client_id", &w.shop.client_id),
        ("client_secret", w.shop.secret.as_deref().unwrap()),
    ]);
    for path in ["/auth/o2/token", "/oauth2/token"] {
        let res = post_body(app, path, &body, None).await;
        let ok = res.status() == 200;
        check_security_headers(path, res.headers());
        assert_eq!(header(res.headers(), "cache-control"), "no-store", "{path}");
        assert_eq!(header(res.headers(), "pragma"), "no-cache", "{path}");
        if path == "/auth/o2/token" {
            assert!(ok, "first exchange succeeds");
            let tokens: Value = res.json().await.unwrap();
            assert!(tokens["expires_in"].is_i64());
            let access = tokens["access_token"].as_str().unwrap();
            for res in [
                tokeninfo(app, access).await,
                profile(app, access, Presented::Bearer).await,
            ] {
                assert_eq!(res.status, 200);
                check_security_headers("resource", &res.headers);
                assert_eq!(header(&res.headers, "cache-control"), "no-store");
            }
        } else {
            assert!(!ok, "the replay is refused");
        }
    }
    // Resource errors carry the headers too.
    let res = tokeninfo(app, "Atza|nope").await;
    check_security_headers("tokeninfo error", &res.headers);
}
