//! SPEC 4's defences that cut across endpoints: the token endpoints' failure throttle, NUL bytes on both
//! engines, `return_to` that cannot become a header, `Secure` cookies off loopback, sign-in throttling with
//! `Retry-After`, the bounded password-hashing queue, consent bound to the session that saw it, and no secret
//! stored in the clear.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::*;
use latchkey_core::client::Feature;
use serde_json::Value;
use sqlx::{Column, Connection, Row};
use std::sync::Arc;

async fn token_post(
    app: &TestApp,
    form: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let res = app
        .api()
        .post(app.url("/auth/o2/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

#[tokio::test]
async fn failed_token_requests_from_one_address_are_refused_with_429_until_the_window_ends() {
    let app = spawn_app_with(Arc::new(sqlite_db()), |c| {
        c.token_failure_limit = 3;
        c.token_failure_window = 60;
    })
    .await;
    let shop = app
        .register_app(|i| i.features.insert(Feature::ClientCredentials))
        .await;
    let secret = shop.secret.clone().unwrap();
    let good = [
        ("grant_type", "client_credentials"),
        ("client_id", shop.client_id.as_str()),
        ("client_secret", secret.as_str()),
    ];
    let wrong = [
        ("grant_type", "client_credentials"),
        ("client_id", shop.client_id.as_str()),
        ("client_secret", "not-the-secret"),
    ];
    // Successes never count.
    for _ in 0..5 {
        assert_eq!(token_post(&app, &good).await.0, 200);
    }
    for _ in 0..3 {
        let (status, _, body) = token_post(&app, &wrong).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"], "invalid_client");
    }
    // The fourth failure crosses the limit...
    let (status, headers, body) = token_post(&app, &wrong).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(headers["retry-after"], "60");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("60 seconds"));
    // ...and from then on the address is refused even with the right secret, at every client-authenticated endpoint.
    let (status, headers, _) = token_post(&app, &good).await;
    assert_eq!(status, 429);
    assert!(headers.contains_key("retry-after"));
    let res = app
        .api()
        .post(app.url("/oauth2/introspect"))
        .form(&[
            ("token", "Atza|x"),
            ("client_id", &shop.client_id),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    // The window ends: the right secret works again.
    app.state.clock.advance(61);
    assert_eq!(token_post(&app, &good).await.0, 200);
}

#[tokio::test]
async fn wrong_codes_count_as_failures_but_errors_of_form_do_not() {
    let app = spawn_app_with(Arc::new(sqlite_db()), |c| c.token_failure_limit = 2).await;
    let shop = app.register_app(|_| {}).await;
    let secret = shop.secret.clone().unwrap();
    let code = |c: &'static str| {
        [
            ("grant_type", "authorization_code"),
            ("code", c),
            ("redirect_uri", "http://127.0.0.1/callback"),
            ("client_id", shop.client_id.as_str()),
            ("client_secret", secret.as_str()),
        ]
    };
    // Malformed requests (a missing parameter, an unknown grant) are answered, not counted.
    for _ in 0..5 {
        let (status, _, body) = token_post(&app, &[("grant_type", "password")]).await;
        assert_eq!(status, 400, "{body}");
    }
    for _ in 0..2 {
        let (status, _, body) = token_post(&app, &code("guessed-code")).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
    }
    assert_eq!(token_post(&app, &code("guessed-code")).await.0, 429);
}

#[tokio::test]
async fn nul_bytes_are_a_clear_4xx_on_both_engines() {
    for (engine, db) in each_db().await {
        let app = spawn_app_on(Arc::new(db)).await;
        let shop = app.register_app(|_| {}).await;
        app.create_user("nul@example.com", "Nul", None).await;
        let http = app.api();

        // API parameters are refused by name, in the token endpoint's shape (form and JSON alike).
        let (status, _, body) = token_post(
            &app,
            &[
                ("grant_type", "authorization_code"),
                ("code", "a\0b"),
                ("client_id", &shop.client_id),
            ],
        )
        .await;
        assert_eq!(status, 400, "{engine}: {body}");
        assert_eq!(
            body["error_description"], "The request has an invalid parameter : code",
            "{engine}"
        );
        let res = http
            .post(app.url("/auth/o2/create/codepair"))
            .json(&serde_json::json!({"response_type": "device_code", "client_id": shop.client_id, "scope": "profile\u{0}"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{engine}");

        // Addresses: the authorization request, the SDK relay, a console path.
        for path in [
            format!(
                "/ap/oa?client_id={}&response_type=code&scope=profile&redirect_uri=http://127.0.0.1/callback&nonce=%00",
                shop.client_id
            ),
            "/sdk/relay/%00".to_owned(),
            "/developer/apps/lk1.application-oa2-client.%00".to_owned(),
            "/auth/o2/tokeninfo?access_token=Atza%7C%00".to_owned(),
        ] {
            let res = http.get(app.url(&path)).send().await.unwrap();
            assert_eq!(res.status(), 400, "{engine}: {path}");
        }
        let res = http
            .get(app.url("/sdk/relay/not-a-client"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{engine}");

        // Page forms: the sign-in email, whether or not the account exists.
        let browser = app.browser();
        let (_, url, html) = browser.open("/ap/signin").await.page();
        for email in ["nul\0@example.com", "nul@example.com\0"] {
            let step = browser
                .submit(
                    &url,
                    &html,
                    "/ap/signin",
                    &[("email", email), ("password", PASSWORD)],
                    None,
                    &[],
                )
                .await;
            let (status, _, _) = step.page();
            assert_eq!(status, 400, "{engine}: {email:?}");
        }
        // Nothing was half-done: the account still signs in.
        let (status, _, home) = browser.sign_in("nul@example.com", PASSWORD).await.page();
        assert_eq!(status, 200, "{engine}");
        assert!(home.contains("Nul"), "{engine}");
    }
}

#[tokio::test]
async fn a_return_to_that_cannot_be_a_location_header_goes_home() {
    let app = spawn_app().await;
    app.create_user("ret@example.com", "Ret", None).await;
    for return_to in [
        "/\u{1}x",
        "/\u{7f}",
        "/caf\u{e9}",
        "/a b",
        "/\r\nSet-Cookie: x=1",
    ] {
        let browser = app.browser();
        let (_, url, html) = browser.open("/ap/signin").await.page();
        let step = browser
            .submit(
                &url,
                &html,
                "/ap/signin",
                &[
                    ("email", "ret@example.com"),
                    ("password", PASSWORD),
                    ("return_to", return_to),
                ],
                None,
                &[],
            )
            .await;
        let (status, landed, _) = step.page();
        assert_eq!(status, 200, "{return_to:?}");
        assert_eq!(
            url::Url::parse(&landed).unwrap().path(),
            "/",
            "{return_to:?} landed on {landed}"
        );
    }
}

/// The `csrf` field of the first form in `html`.
fn csrf_of(html: &str) -> String {
    scraper::Html::parse_document(html)
        .select(&scraper::Selector::parse("input[name=csrf]").unwrap())
        .next()
        .unwrap()
        .value()
        .attr("value")
        .unwrap()
        .to_owned()
}

/// Every `Set-Cookie` value.
fn set_cookies(headers: &reqwest::header::HeaderMap) -> Vec<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect()
}

/// Signs `email` in by hand, sending cookies back as a browser would over https (reqwest keeps no `Secure` cookie
/// over http). Returns the sign-in page's headers and the `Set-Cookie` that carries the session.
async fn sign_in_by_hand(app: &TestApp, email: &str) -> (reqwest::header::HeaderMap, String) {
    let http = app.api();
    let page = http.get(app.url("/ap/signin")).send().await.unwrap();
    let headers = page.headers().clone();
    let csrf = csrf_of(&page.text().await.unwrap());
    let cookies: Vec<String> = set_cookies(&headers)
        .iter()
        .filter_map(|c| c.split(';').next().map(str::to_owned))
        .collect();
    let res = http
        .post(app.url("/ap/signin"))
        .header("cookie", cookies.join("; "))
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", email),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let session = set_cookies(res.headers())
        .into_iter()
        .find(|v| v.starts_with("__Host-lk_s=") || v.starts_with("lk_s="))
        .unwrap_or_else(|| panic!("no session cookie in {:?}", res.headers()));
    (headers, session)
}

#[tokio::test]
async fn with_an_https_issuer_session_cookies_are_secure_host_only_and_hsts_is_sent() {
    let app = spawn_app_with(Arc::new(sqlite_db()), |c| {
        c.issuer = Some("https://login.example.com".into());
    })
    .await;
    app.create_user("sec@example.com", "Sec", None).await;
    let (page, session) = sign_in_by_hand(&app, "sec@example.com").await;
    assert_eq!(
        page["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    let browser_cookie = set_cookies(&page).remove(0);
    for cookie in [&browser_cookie, &session] {
        assert!(cookie.starts_with("__Host-"), "{cookie}");
        for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(cookie.contains(attr), "{attr} missing: {cookie}");
        }
    }
}

#[tokio::test]
async fn on_plain_http_loopback_the_session_cookie_is_httponly_and_lax() {
    let app = spawn_app().await;
    app.create_user("lax@example.com", "Lax", None).await;
    let (page, session) = sign_in_by_hand(&app, "lax@example.com").await;
    assert!(!page.contains_key("strict-transport-security"));
    assert!(session.starts_with("lk_s="), "{session}");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );
}

#[tokio::test]
async fn too_many_sign_ins_are_refused_with_429_and_retry_after() {
    let app = spawn_app_with(Arc::new(sqlite_db()), |c| {
        c.signin_limit = 2;
        c.signin_window = 300;
    })
    .await;
    app.create_user("busy@example.com", "Busy", None).await;
    let browser = app.browser();
    for _ in 0..2 {
        let (status, _, _) = browser
            .sign_in("busy@example.com", "wrong password")
            .await
            .page();
        assert_eq!(status, 401);
    }
    let (_, url, html) = browser.open("/ap/signin").await.page();
    let res = browser
        .http
        .post(url)
        .form(&[
            ("csrf", csrf_of(&html).as_str()),
            ("email", "busy@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let wait: i64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&wait), "{wait}");
    // Even the right password waits for the window.
    assert!(res.text().await.unwrap().contains("Too many attempts"));
}

/// Asserts a "Latchkey is busy" answer, given at once: 503 with a `Retry-After` of a few seconds.
async fn assert_busy(label: &str, res: impl std::future::Future<Output = reqwest::Response>) {
    let res = tokio::time::timeout(std::time::Duration::from_secs(20), res)
        .await
        .unwrap_or_else(|_| panic!("{label}: the request waited in line instead of being refused"));
    assert_eq!(res.status(), 503, "{label}");
    let wait: u32 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{label}: {wait}");
    let html = res.text().await.unwrap();
    assert!(html.contains("Latchkey is busy"), "{label}:\n{html}");
}

/// SPEC 4: with every hashing slot taken and the line full, sign-in, sign-up and password changes are refused
/// at once with 503 and `Retry-After` instead of waiting; they work again as soon as the queue moves.
#[tokio::test]
async fn past_the_password_hashing_queue_sign_in_register_and_password_change_answer_503() {
    let app = spawn_app_with(Arc::new(sqlite_db()), |c| {
        c.password_hash_concurrency = 1;
        c.password_hash_queue = Some(0);
    })
    .await;
    let ada = app.create_user("ada@example.com", "Ada", None).await;
    let signed_in = app.browser();
    let (status, _, _) = signed_in.sign_in("ada@example.com", PASSWORD).await.page();
    assert_eq!(status, 200);

    // The one hashing slot is taken and no one may wait for it.
    let turn = app.state.passwords.turn().await.unwrap();
    let browser = app.browser();
    let (_, url, html) = browser.open("/ap/signin").await.page();
    let fields = [("email", "ada@example.com"), ("password", PASSWORD)];
    let res = browser.submit_answer(&url, &html, "/ap/signin", &fields, None, &[]);
    assert_busy("sign-in", res).await;
    let (_, url, html) = browser.open("/ap/register").await.page();
    let new_account = [
        ("name", "Bob"),
        ("email", "bob@example.com"),
        ("password", "long enough password"),
    ];
    let res = browser.submit_answer(&url, &html, "/ap/register", &new_account, None, &[]);
    assert_busy("register", res).await;
    let (status, url, html) = signed_in.open("/account").await.page();
    assert_eq!(status, 200);
    let change = [
        ("current_password", PASSWORD),
        ("new_password", "another long password"),
    ];
    let res = signed_in.submit_answer(&url, &html, "/account/password", &change, None, &[]);
    assert_busy("password change", res).await;
    // Nothing was done.
    assert!(app
        .store()
        .find_user_by_email("bob@example.com")
        .await
        .unwrap()
        .is_none());
    let stored = app.store().find_user(&ada.id).await.unwrap().unwrap();
    assert_eq!(stored.password_hash, ada.password_hash);

    // Once the hash in progress finishes, the same sign-in goes through.
    drop(turn);
    let (status, url, _) = browser.sign_in("ada@example.com", PASSWORD).await.page();
    assert_eq!(status, 200);
    assert!(!url.contains("/ap/signin"), "{url}");
}

/// The authorization request of [`consent_page`].
fn url_of_request(shop: &RegisteredApp) -> String {
    format!(
        "/ap/oa?client_id={}&response_type=code&scope=profile&redirect_uri=http://127.0.0.1/callback&state=s",
        shop.client_id
    )
}

/// A consent page for `browser`, signed in as `email`, and its URL.
async fn consent_page(
    app: &TestApp,
    shop: &RegisteredApp,
    browser: &Browser,
    email: &str,
) -> (String, String) {
    let step = browser.open(&url_of_request(shop)).await;
    let step = browser.sign_in_on(step, email, PASSWORD).await;
    let (status, url, html) = step.page();
    assert_eq!(status, 200);
    assert!(
        html.contains("would like to use your Latchkey account"),
        "{html}"
    );
    let _ = app;
    (url, html)
}

#[tokio::test]
async fn consent_is_bound_to_the_session_that_saw_it_and_to_the_exact_request() {
    let app = spawn_app().await;
    let shop = app.register_app(|_| {}).await;
    app.create_user("one@example.com", "One", None).await;

    // The same browser signs out and in again: the old page's consent token belonged to the old session.
    let browser = app.browser();
    let (url, html) = consent_page(&app, &shop, &browser, "one@example.com").await;
    let (_, out_url, out_html) = browser.open("/ap/signout").await.page();
    browser
        .submit(&out_url, &out_html, "/ap/signout", &[], None, &[])
        .await;
    browser.sign_in("one@example.com", PASSWORD).await.page();
    let step = browser
        .submit(
            &url,
            &html,
            "/ap/oa/consent",
            &[],
            Some(("decision", "allow")),
            &[],
        )
        .await;
    let (status, _, page) = step.page();
    assert_eq!(status, 400);
    assert!(page.contains("another session"), "{page}");

    // A fresh page, its request changed (more scopes than the customer was shown): refused as well.
    let (url, html) = {
        let u = format!(
            "/ap/oa?client_id={}&response_type=code&scope=profile&redirect_uri=http://127.0.0.1/callback&state=s",
            shop.client_id
        );
        let (_, url, html) = browser.open(&u).await.page();
        (url, html)
    };
    let request = scraper::Html::parse_document(&html)
        .select(&scraper::Selector::parse("input[name=request]").unwrap())
        .next()
        .unwrap()
        .value()
        .attr("value")
        .unwrap()
        .to_owned();
    let widened = request.replace("scope=profile", "scope=profile%20postal_code");
    assert_ne!(widened, request);
    let step = browser
        .submit(
            &url,
            &html,
            "/ap/oa/consent",
            &[("request", &widened)],
            Some(("decision", "allow")),
            &[],
        )
        .await;
    assert_eq!(step.page().0, 400);

    // The untouched page still works: the refusals above were about the binding, nothing else.
    let back = browser
        .submit(
            &url,
            &html,
            "/ap/oa/consent",
            &[],
            Some(("decision", "allow")),
            &[],
        )
        .await
        .left_to();
    assert!(Step::param(&back, "code").is_some(), "{back}");
}

/// The value of the field `name` in `html`.
fn field(html: &str, name: &str) -> String {
    scraper::Html::parse_document(html)
        .select(&scraper::Selector::parse(&format!("input[name={name}]")).unwrap())
        .next()
        .unwrap_or_else(|| panic!("no {name} in:\n{html}"))
        .value()
        .attr("value")
        .unwrap()
        .to_owned()
}

/// Presses Allow on the consent page `html` (at `url`), with `fields` set over the form's own.
async fn allow(browser: &Browser, url: &str, html: &str, fields: &[(&str, &str)]) -> Step {
    browser
        .submit(
            url,
            html,
            "/ap/oa/consent",
            fields,
            Some(("decision", "allow")),
            &[],
        )
        .await
}

#[tokio::test]
async fn a_consent_page_left_open_too_long_grants_nothing_and_its_time_cannot_be_moved() {
    use latchkey_core::CONSENT_PAGE_TTL_SECS;
    let app = spawn_app().await;
    let shop = app.register_app(|_| {}).await;
    let user = app.create_user("late@example.com", "Late", None).await;
    let browser = app.browser();
    let (url, html) = consent_page(&app, &shop, &browser, "late@example.com").await;
    let shown = app.state.clock.now();

    // Past the limit, Allow is refused with the expired-form page: no code leaves, no consent is stored.
    app.state.clock.advance(CONSENT_PAGE_TTL_SECS + 1);
    let (status, _, page) = allow(&browser, &url, &html, &[]).await.page();
    assert_eq!(status, 400);
    assert!(page.contains("This form has expired"), "{page}");
    assert!(page.contains("open too long"), "{page}");
    // The page's time moved to now, with its MAC: refused, because the MAC covers the time.
    let token = field(&html, "consent_token");
    let (shown_at, mac) = token.split_once('.').unwrap();
    assert!(
        (shown_at.parse::<i64>().unwrap() - shown).abs() <= 5,
        "{token}"
    );
    let moved = format!("{}.{mac}", app.state.clock.now());
    let (status, _, page) = allow(&browser, &url, &html, &[("consent_token", &moved)])
        .await
        .page();
    assert_eq!(status, 400);
    assert!(page.contains("This form has expired"), "{page}");
    assert!(app
        .store()
        .find_consent(&user.id, &shop.client_id)
        .await
        .unwrap()
        .is_none());

    // A page shown now and answered within the limit works.
    let (_, url, html) = browser.open(&url_of_request(&shop)).await.page();
    app.state.clock.advance(CONSENT_PAGE_TTL_SECS - 60);
    let back = allow(&browser, &url, &html, &[]).await.left_to();
    assert!(Step::param(&back, "code").is_some(), "{back}");
    assert!(app
        .store()
        .find_consent(&user.id, &shop.client_id)
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn no_token_code_secret_or_password_is_stored_in_the_clear() {
    let db = Arc::new(sqlite_db());
    let app = spawn_app_on(db.clone()).await;
    let shop = app.register_app(|_| {}).await;
    let secret = shop.secret.clone().unwrap();
    app.create_user("rest@example.com", "Rest", None).await;
    let browser = app.browser();
    let back = login_through(
        &browser,
        &format!(
            "/ap/oa?client_id={}&response_type=code&scope=profile&redirect_uri=http://127.0.0.1/callback",
            shop.client_id
        ),
        "rest@example.com",
    )
    .await;
    let code = Step::param(&back, "code").unwrap();
    let (status, _, tokens) = token_post(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1/callback"),
            ("client_id", &shop.client_id),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    // The random part of each secret: no column of any table may contain it, as text or as bytes.
    let needles: Vec<(&str, String)> = vec![
        ("code", code.clone()),
        ("access token", access["Atza|".len()..].to_owned()),
        ("refresh token", refresh["Atzr|".len()..].to_owned()),
        ("client secret", secret.clone()),
        ("password", PASSWORD.to_owned()),
    ];
    // Nor any key: the hash key and the private signing keys, as the master key opens them.
    let master = latchkey::seal::MasterKey::parse(TEST_MASTER_KEY).unwrap();
    let hash_key = app
        .store()
        .server_secret(latchkey::keys::HASH_KEY, b"")
        .await
        .unwrap();
    let mut key_needles: Vec<(String, Vec<u8>)> = vec![(
        "hash key".into(),
        master
            .open(
                latchkey::seal::Row::ServerSecret(latchkey::keys::HASH_KEY),
                &hash_key,
            )
            .unwrap()
            .to_vec(),
    )];
    for k in app.store().list_signing_keys().await.unwrap() {
        let der = master
            .open(latchkey::seal::Row::SigningKey(&k.kid), &k.sealed_key)
            .unwrap();
        key_needles.push((format!("private key {}", k.kid), der.to_vec()));
    }
    let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    let tables: Vec<String> = sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table'")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
    assert!(tables.iter().any(|t| t == "access_tokens"), "{tables:?}");
    let mut cells = 0;
    for table in &tables {
        let rows = sqlx::query(&format!("SELECT * FROM \"{table}\""))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        for row in rows {
            for (i, column) in row.columns().iter().enumerate() {
                let bytes: Option<Vec<u8>> = row
                    .try_get::<Option<Vec<u8>>, _>(i)
                    .ok()
                    .flatten()
                    .or_else(|| {
                        row.try_get::<Option<String>, _>(i)
                            .ok()
                            .flatten()
                            .map(String::into_bytes)
                    });
                let Some(bytes) = bytes else { continue };
                cells += 1;
                for (what, needle) in &key_needles {
                    assert!(
                        !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                        "the {what} is stored in the clear in {table}.{}",
                        column.name()
                    );
                }
                let text = String::from_utf8_lossy(&bytes);
                for (what, needle) in &needles {
                    assert!(
                        !text.contains(needle.as_str()),
                        "the {what} is stored in the clear in {table}.{}",
                        column.name()
                    );
                }
            }
        }
    }
    assert!(cells > 20, "only {cells} cells were read");
}

#[tokio::test]
async fn a_store_failure_during_revocation_is_an_error_never_a_false_200() {
    let db = Arc::new(sqlite_db());
    let app = spawn_app_on(db.clone()).await;
    let shop = app
        .register_app(|i| i.features.insert(Feature::ClientCredentials))
        .await;
    let secret = shop.secret.clone().unwrap();
    let (status, _, body) = token_post(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &shop.client_id),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let revoke = || {
        app.api()
            .post(app.url("/oauth2/revoke"))
            .form(&[
                ("token", token.as_str()),
                ("client_id", &shop.client_id),
                ("client_secret", &secret),
            ])
            .send()
    };
    let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    sqlx::query("ALTER TABLE access_tokens RENAME TO access_tokens_away")
        .execute(&mut conn)
        .await
        .unwrap();
    let res = revoke().await.unwrap();
    assert!(res.status().is_server_error(), "{}", res.status());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "server_error");
    // With the table back, the same request revokes, and the token is dead.
    sqlx::query("ALTER TABLE access_tokens_away RENAME TO access_tokens")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(revoke().await.unwrap().status(), 200);
    let info = app
        .api()
        .get(app.url("/auth/o2/tokeninfo"))
        .header("x-amz-access-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 400);
}

/// Signs up `email` from `browser`; the answer's status.
async fn sign_up(browser: &Browser, email: &str) -> u16 {
    let (_, url, html) = browser.open("/ap/register").await.page();
    let fields = [
        ("name", "New Customer"),
        ("email", email),
        ("password", "a long enough password"),
    ];
    browser
        .submit_answer(&url, &html, "/ap/register", &fields, None, &[])
        .await
        .status()
        .as_u16()
}

/// SPEC 4 (review M5): sign-ups are counted per address before their password is hashed; past the limit the
/// answer is 429 with `Retry-After`, nothing is created, and another address signs up as usual.
#[tokio::test]
async fn sign_ups_are_limited_per_address() {
    let app = spawn_app_with(Arc::new(sqlite_db()), |c| {
        c.signup_limit = 2;
        c.signup_window = 3600;
    })
    .await;
    let here = Browser::from_address(&app.base, Some("127.0.0.2".parse().unwrap()));
    for n in 0..2 {
        let status = sign_up(&here, &format!("new{n}@example.com")).await;
        assert!((200..400).contains(&status), "{status}");
    }
    let (_, url, html) = here.open("/ap/register").await.page();
    let fields = [
        ("name", "One Too Many"),
        ("email", "new2@example.com"),
        ("password", "a long enough password"),
    ];
    let res = here
        .submit_answer(&url, &html, "/ap/register", &fields, None, &[])
        .await;
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "3600");
    assert!(app
        .store()
        .find_user_by_email("new2@example.com")
        .await
        .unwrap()
        .is_none());
    let elsewhere = Browser::from_address(&app.base, Some("127.0.0.3".parse().unwrap()));
    let status = sign_up(&elsewhere, "new2@example.com").await;
    assert!((200..400).contains(&status), "{status}");
}

/// SPEC 4: new passwords (sign-up, password changes) may take only half of the hashing queue, so a flood of
/// sign-ups cannot keep customers from signing in.
#[tokio::test]
async fn sign_ups_cannot_take_the_whole_hashing_queue() {
    let app = spawn_app_with(Arc::new(sqlite_db()), |c| {
        c.password_hash_concurrency = 1;
        c.password_hash_queue = Some(1);
    })
    .await;
    app.create_user("ada@example.com", "Ada", None).await;
    // One new password is being hashed: that is every place new passwords may take (half of two).
    let _busy = app.state.passwords.turn().await.unwrap();
    let hashing = {
        let passwords = app.state.passwords.clone();
        tokio::spawn(async move {
            passwords
                .hash(&latchkey_core::secret::Secret::new("first new password"))
                .await
                .is_ok()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let second = app
        .state
        .passwords
        .hash(&latchkey_core::secret::Secret::new("second new password"))
        .await;
    assert!(
        second.is_err(),
        "a second new password took the place kept for sign-in"
    );
    drop(_busy);
    assert!(hashing.await.unwrap());
}

/// SPEC 4 and review I1, I2: pages send `form-action 'self'` and COOP `same-origin`, except the pages an app's
/// popup goes through (they must keep their opener); the request id is always the server's own.
#[tokio::test]
async fn pages_isolate_their_window_and_request_ids_are_the_servers_own() {
    let app = spawn_app().await;
    let http = app.api();
    for (path, isolated) in [
        ("/", true),
        ("/account", true),
        ("/code", true),
        ("/developer", true),
        ("/ap/signin", false),
        ("/ap/register", false),
        ("/ap/oa", false),
    ] {
        let res = http.get(app.url(path)).send().await.unwrap();
        let h = res.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("form-action 'self'"), "{path}: {csp}");
        assert_eq!(
            h.get("cross-origin-opener-policy")
                .map(|v| v.to_str().unwrap()),
            isolated.then_some("same-origin"),
            "{path}"
        );
    }
    let res = http
        .get(app.url("/healthz"))
        .header("x-request-id", "forged-id")
        .send()
        .await
        .unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(id, "forged-id");
    assert_eq!(id.len(), 36, "a UUID: {id}");
}
