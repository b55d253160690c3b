//! Who is asking, behind a real reverse proxy (SPEC 4, 5 `trusted_proxies`): nginx in front of Latchkey, clients
//! from different loopback addresses. One client's failures must never refuse another client's correct requests,
//! and headers from a peer that is not a trusted proxy change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::*;
use latchkey_core::client::{ClientKind, Feature};
use serde_json::Value;
use std::net::IpAddr;
use std::sync::Arc;

const MALLORY: &str = "127.0.0.2";
const ALICE: &str = "127.0.0.3";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A `client_credentials` request for `app` with `secret`, from `client`, optionally with a forged
/// `X-Forwarded-For`; (status, body).
async fn client_token(
    client: &reqwest::Client,
    base: &str,
    app: &RegisteredApp,
    secret: &str,
    forged: Option<&str>,
) -> (u16, Value) {
    let mut req = client.post(format!("{base}/auth/o2/token")).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", &app.client_id),
        ("client_secret", secret),
    ]);
    if let Some(forged) = forged {
        req = req.header("x-forwarded-for", forged);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

async fn service_app(app: &TestApp) -> RegisteredApp {
    app.register_app(|i| i.features.insert(Feature::ClientCredentials))
        .await
}

#[tokio::test]
async fn behind_nginx_one_clients_failures_do_not_refuse_another_client() {
    let app = spawn_app_with(Arc::new(sqlite_db()), |c| {
        c.trusted_proxies = vec!["127.0.0.1".into()];
        c.token_failure_limit = 3;
        c.signin_limit = 2;
    })
    .await;
    let proxy = Nginx::start(&app.base).await;
    let shop = service_app(&app).await;
    let secret = shop.secret.clone().unwrap();
    let (mallory, alice) = (http_client_from(ip(MALLORY)), http_client_from(ip(ALICE)));

    // Mallory guesses the shop's secret, claiming to be Alice: nginx appends the address it saw, and only that
    // entry is believed, so every failure counts against Mallory.
    for _ in 0..3 {
        let (status, body) = client_token(&mallory, &proxy.base, &shop, "wrong", Some(ALICE)).await;
        assert_eq!(status, 401, "{body}");
    }
    let (status, _) = client_token(&mallory, &proxy.base, &shop, "wrong", Some(ALICE)).await;
    assert_eq!(status, 429, "Mallory is past her limit");
    let (status, _) = client_token(&mallory, &proxy.base, &shop, &secret, None).await;
    assert_eq!(status, 429, "and stays refused for the window");
    // The shop's own server, elsewhere, still gets its tokens through the same proxy.
    let (status, body) = client_token(&alice, &proxy.base, &shop, &secret, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].as_str().unwrap().starts_with("Atza|"));

    // Sign-in: Mallory's wrong guesses at Alice's password do not lock Alice out of her account.
    app.create_user("alice@example.com", "Alice", None).await;
    let guesser = Browser::from_address(&proxy.base, Some(ip(MALLORY)));
    for expected in [401, 401, 429] {
        let (status, _, _) = guesser
            .sign_in("alice@example.com", "not her password")
            .await
            .page();
        assert_eq!(status, expected);
    }
    let owner = Browser::from_address(&proxy.base, Some(ip(ALICE)));
    let (status, url, _) = owner.sign_in("alice@example.com", PASSWORD).await.page();
    assert_eq!(status, 200);
    assert!(!url.contains("/ap/signin"), "Alice is signed in: {url}");
}

#[tokio::test]
async fn behind_nginx_wrong_device_codes_lock_out_only_their_own_address() {
    let app = spawn_app_with(Arc::new(sqlite_db()), |c| {
        c.trusted_proxies = vec!["127.0.0.1".into()];
        c.user_code_limit = 1;
    })
    .await;
    let proxy = Nginx::start(&app.base).await;
    app.create_user("mallory@example.com", "Mallory", None)
        .await;
    app.create_user("alice@example.com", "Alice", None).await;
    let tv = app
        .register_app(|i| {
            i.features.insert(Feature::Device);
            i.kind = ClientKind::Public;
        })
        .await;
    let res = app
        .api()
        .post(app.url("/auth/o2/create/codepair"))
        .form(&[
            ("response_type", "device_code"),
            ("client_id", tv.client_id.as_str()),
            ("scope", "profile"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let pair: Value = res.json().await.unwrap();

    // Mallory guesses from several sessions until her address is refused (1 per session, 4 per address).
    let mut refused = false;
    for _ in 0..5 {
        let guesser = Browser::from_address(&proxy.base, Some(ip(MALLORY)));
        guesser.sign_in("mallory@example.com", PASSWORD).await;
        let (_, url, html) = guesser.open("/code").await.page();
        let (status, _, _) = guesser
            .submit(
                &url,
                &html,
                "/code",
                &[("user_code", "BCDF-GHJK")],
                None,
                &[],
            )
            .await
            .page();
        assert!(status == 400 || status == 429, "{status}");
        refused |= status == 429;
    }
    assert!(refused, "Mallory's address is past its limit");

    // Alice, at home behind the same proxy, links her TV.
    let alice = Browser::from_address(&proxy.base, Some(ip(ALICE)));
    alice.sign_in("alice@example.com", PASSWORD).await;
    let (_, url, html) = alice.open("/code").await.page();
    let (status, _, html) = alice
        .submit(
            &url,
            &html,
            "/code",
            &[("user_code", pair["user_code"].as_str().unwrap())],
            None,
            &[],
        )
        .await
        .page();
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Is this your device?"), "{html}");
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    // A proxy is trusted, but these clients connect directly: what they claim is ignored.
    let app = spawn_app_with(Arc::new(sqlite_db()), |c| {
        c.trusted_proxies = vec!["10.0.0.0/8".into()];
        c.token_failure_limit = 2;
    })
    .await;
    let shop = service_app(&app).await;
    let secret = shop.secret.clone().unwrap();
    let (mallory, alice) = (http_client_from(ip(MALLORY)), http_client_from(ip(ALICE)));
    // Mallory blames Alice, or a fresh address each time, in both header forms: it is all Mallory.
    for forged in [ALICE, "198.51.100.7", "198.51.100.8"] {
        let res = mallory
            .post(app.url("/auth/o2/token"))
            .header("x-forwarded-for", forged)
            .header("forwarded", format!("for={forged}"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", shop.client_id.as_str()),
                ("client_secret", "wrong"),
            ])
            .send()
            .await
            .unwrap();
        assert!(matches!(res.status().as_u16(), 401 | 429));
    }
    let (status, _) = client_token(&mallory, &app.base, &shop, &secret, Some(ALICE)).await;
    assert_eq!(status, 429);
    let (status, body) = client_token(&alice, &app.base, &shop, &secret, None).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn one_apps_failures_do_not_refuse_another_app_from_the_same_address() {
    // One address (a hosting provider's outbound NAT) serves two apps' servers.
    let app = spawn_app_with(Arc::new(sqlite_db()), |c| c.token_failure_limit = 2).await;
    let broken = service_app(&app).await;
    let healthy = service_app(&app).await;
    let client = app.api();
    for _ in 0..3 {
        client_token(&client, &app.base, &broken, "stale secret", None).await;
    }
    let (status, _) = client_token(&client, &app.base, &broken, "stale secret", None).await;
    assert_eq!(status, 429);
    let secret = healthy.secret.clone().unwrap();
    let (status, body) = client_token(&client, &app.base, &healthy, &secret, None).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn behind_a_proxy_that_writes_forwarded_a_clients_own_x_forwarded_for_is_not_read() {
    let app = spawn_app_with(Arc::new(sqlite_db()), |c| {
        c.trusted_proxies = vec!["127.0.0.1".into()];
        c.proxy_header = "forwarded".into();
        c.token_failure_limit = 2;
    })
    .await;
    // This proxy writes RFC 7239 `Forwarded` and passes X-Forwarded-For through untouched.
    let proxy = Nginx::start_with(
        &app.base,
        "proxy_set_header Forwarded \"for=$remote_addr\";",
    )
    .await;
    let shop = service_app(&app).await;
    let secret = shop.secret.clone().unwrap();
    let (mallory, alice) = (http_client_from(ip(MALLORY)), http_client_from(ip(ALICE)));
    // Mallory claims a fresh address each time in X-Forwarded-For: it is not read, so she is refused.
    for n in 0..3 {
        let forged = format!("198.51.100.{n}");
        client_token(&mallory, &proxy.base, &shop, "wrong", Some(&forged)).await;
    }
    let (status, _) =
        client_token(&mallory, &proxy.base, &shop, &secret, Some("198.51.100.9")).await;
    assert_eq!(status, 429);
    let (status, body) = client_token(&alice, &proxy.base, &shop, &secret, None).await;
    assert_eq!(status, 200, "{body}");
}

/// SPEC 4 (review: guesses spread over many addresses): failures also count per account, so guessing one
/// account from many addresses stops; but a browser that signed in to the account before still gets in, so the
/// attack does not lock the owner out.
#[tokio::test]
async fn guesses_from_many_addresses_stop_without_locking_out_the_owners_browser() {
    let app = spawn_app_with(Arc::new(sqlite_db()), |c| c.signin_limit = 1).await;
    app.create_user("alice@example.com", "Alice", None).await;
    let owner = Browser::from_address(&app.base, Some(ip(ALICE)));
    let (status, _, _) = owner.sign_in("alice@example.com", PASSWORD).await.page();
    assert_eq!(status, 200);
    // Eleven addresses guess once each: the account's allowance (10 per window) is spent.
    let mut last = 0;
    for n in 10..21 {
        let guesser = Browser::from_address(&app.base, Some(ip(&format!("127.0.1.{n}"))));
        let (status, _, _) = guesser
            .sign_in("alice@example.com", "a wrong guess")
            .await
            .page();
        last = status;
    }
    assert_eq!(last, 429, "the account's allowance is spent");
    // A browser the account does not know is refused even with the right password, until the window passes…
    let stranger = Browser::from_address(&app.base, Some(ip("127.0.2.1")));
    let (status, _, _) = stranger.sign_in("alice@example.com", PASSWORD).await.page();
    assert_eq!(status, 429);
    // …but the owner's own browser signs in.
    let (status, url, _) = owner.sign_in("alice@example.com", PASSWORD).await.page();
    assert_eq!(status, 200);
    assert!(!url.contains("/ap/signin"), "{url}");
}
