//! Two nodes against one PostgreSQL database form one service (SPEC 5): a login started on one node finishes on
//! the other, codes and refresh tokens move freely between them, reuse detected on one is seen by the other, and
//! both derive the same pairwise `user_id`. Skipped when PostgreSQL is not running (never under `CI=true`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::*;
use oauth2::{
    AuthorizationCode, CsrfToken, PkceCodeChallenge, RequestTokenError, Scope, TokenResponse,
};
use reqwest::cookie::CookieStore;
use std::sync::Arc;

/// Two servers on one fresh PostgreSQL database, or `None` when PostgreSQL is not running here.
async fn two_nodes(tweak: fn(&mut latchkey::config::Config)) -> Option<(TestApp, TestApp)> {
    let db = Arc::new(postgres_db().await?);
    // One frozen clock for both nodes: advancing it moves them together.
    let clock = frozen_clock();
    let a = spawn_app_clocked(db.clone(), clock.clone(), tweak).await;
    let b = spawn_app_clocked(db, clock, tweak).await;
    Some((a, b))
}

/// A browser on `node` that shares `other`'s cookies (one browser, two hosts of one service).
fn same_browser_on(node: &TestApp, other: &Browser) -> Browser {
    let mut b = node.browser();
    b.http = other.http.clone();
    b
}

async fn profile_user_id(node: &TestApp, token: &str) -> String {
    let a = profile(node, token, Presented::Bearer).await;
    assert_eq!(a.status, 200);
    a.json["user_id"].as_str().unwrap().to_owned()
}

fn assert_invalid_grant<E: std::error::Error + 'static>(
    result: Result<
        oauth2::basic::BasicTokenResponse,
        RequestTokenError<E, oauth2::basic::BasicErrorResponse>,
    >,
    what: &str,
) {
    match result {
        Err(RequestTokenError::ServerResponse(r)) => {
            assert_eq!(r.error().as_ref(), "invalid_grant", "{what}: {r:?}")
        }
        other => panic!("{what}: expected invalid_grant, got {other:?}"),
    }
}

#[tokio::test]
async fn a_login_started_on_one_node_finishes_on_the_other() {
    let Some((a, b)) = two_nodes(|_| {}).await else {
        return;
    };
    assert_ne!(a.base, b.base);
    // Created through node A (its secret hashed with A's key), used through node B.
    let shop = a.register_app(|_| {}).await;
    b.create_user("ada@example.com", "Ada Lovelace", None).await;

    // Sign in on node A: the browser lands on A's consent page.
    let client_a = a.oauth_client(&shop);
    let client_b = b.oauth_client(&shop);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize_a, csrf) = client_a
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    let on_a = a.browser();
    let signin = on_a.open(authorize_a.as_str()).await;
    let consent_a = on_a.sign_in_on(signin, "ada@example.com", PASSWORD).await;
    let (status, url_a, _) = consent_a.page();
    assert_eq!(status, 200);
    assert!(url_a.starts_with(&a.base), "{url_a}");

    // The same request on node B: B knows the session A started and shows the consent page; Allow on B.
    let on_b = same_browser_on(&b, &on_a);
    let authorize_b = authorize_a.as_str().replacen(&a.base, &b.base, 1);
    let consent_b = on_b.open(&authorize_b).await;
    let back = on_b.consent_on(consent_b, true, &[]).await.left_to();
    assert_eq!(
        Step::param(&back, "state").as_deref(),
        Some(csrf.secret().as_str())
    );
    assert_eq!(Step::param(&back, "iss").as_deref(), Some(b.base.as_str()));
    let code = Step::param(&back, "code").expect("a code");

    // The code is exchanged at B, the refresh token used at A.
    let first = client_b
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http_client())
        .await
        .expect("node B exchanges the code");
    let refresh = first.refresh_token().expect("a refresh token").clone();
    let second = client_a
        .exchange_refresh_token(&refresh)
        .request_async(&http_client())
        .await
        .expect("node A rotates B's refresh token");
    let access = second.access_token().secret().clone();

    // Tokeninfo and profile work on either node and agree on the pairwise user_id.
    let (sa, info_a) = tokeninfo(&a, &access).await.parts();
    let (sb, info_b) = tokeninfo(&b, &access).await.parts();
    assert_eq!((sa, sb), (200, 200), "{info_a} {info_b}");
    assert_eq!(info_a["user_id"], info_b["user_id"]);
    assert_eq!(info_a["aud"], shop.client_id.as_str());
    let user_id = info_a["user_id"].as_str().unwrap().to_owned();
    assert!(user_id.starts_with("lk1.account."), "{user_id}");
    assert_eq!(profile_user_id(&a, &access).await, user_id);
    assert_eq!(profile_user_id(&b, &access).await, user_id);
    let (s, _) = tokeninfo(&b, first.access_token().secret()).await.parts();
    assert_eq!(s, 200, "A's rotation leaves B's access token working");

    // Another app of the same developer, logged in entirely on node A: the same pairwise user_id.
    let sibling = b.register_app(|_| {}).await;
    let sibling_client = a.oauth_client(&sibling);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _) = sibling_client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    let back = login_through(&on_a, url.as_str(), "ada@example.com").await;
    let token = sibling_client
        .exchange_code(AuthorizationCode::new(Step::param(&back, "code").unwrap()))
        .set_pkce_verifier(verifier)
        .request_async(&http_client())
        .await
        .unwrap();
    assert_eq!(
        profile_user_id(&b, token.access_token().secret()).await,
        user_id,
        "both nodes derive the same pairwise user_id"
    );

    // Reuse of the first refresh token on B, past the grace window: the family dies everywhere.
    a.state.clock.advance(60); // both nodes: they share one clock
    let reuse = client_b
        .exchange_refresh_token(&refresh)
        .request_async(&http_client())
        .await;
    assert_invalid_grant(reuse, "reused refresh token at B");
    let (s, body) = tokeninfo(&a, &access).await.parts();
    assert_eq!(s, 400, "A sees the family revoked by B: {body}");
    assert_eq!(body["error"], "invalid_token");
    let newest = second.refresh_token().unwrap().clone();
    let after = client_a
        .exchange_refresh_token(&newest)
        .request_async(&http_client())
        .await;
    assert_invalid_grant(after, "newest refresh token at A after reuse at B");
    // The sibling app's grant is another family and lives on.
    let (s, _) = tokeninfo(&a, token.access_token().secret()).await.parts();
    assert_eq!(s, 200);
}

#[tokio::test]
async fn a_consent_form_from_one_node_is_accepted_by_the_other_and_sign_out_ends_the_session_on_both(
) {
    let Some((a, b)) = two_nodes(|_| {}).await else {
        return;
    };
    let shop = a.register_app(|_| {}).await;
    a.create_user("ada@example.com", "Ada Lovelace", None).await;
    let client = a.oauth_client(&shop);
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let (authorize_a, _) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let shared = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut on_a = a.browser();
    on_a.http = shared;
    let signin = on_a.open(authorize_a.as_str()).await;
    let (status, url, html) = on_a
        .sign_in_on(signin, "ada@example.com", PASSWORD)
        .await
        .page();
    assert_eq!(status, 200);
    assert!(html.contains("would like to use your Latchkey account"));

    // The form A rendered (its CSRF and consent tokens are MACs under A's key) is posted to B.
    let on_b = same_browser_on(&b, &on_a);
    let url_on_b = url.replacen(&a.base, &b.base, 1);
    let back = on_b
        .submit(
            &url_on_b,
            &html,
            "/ap/oa/consent",
            &[],
            Some(("decision", "allow")),
            &[],
        )
        .await
        .left_to();
    assert!(
        Step::param(&back, "code").is_some(),
        "B accepts A's consent form: {back}"
    );
    assert_eq!(Step::param(&back, "iss").as_deref(), Some(b.base.as_str()));

    // Signing out on B deletes, on the server, the session A started: A's session cookie, replayed by hand to
    // A, no longer signs anyone in.
    let cookies = jar
        .cookies(&url::Url::parse(&a.base).unwrap())
        .expect("cookies for A")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookies.contains("lk_s="), "{cookies}");
    let replay = |cookies: String| {
        let url = authorize_a.clone();
        async move {
            http_client()
                .get(url)
                .header("cookie", cookies)
                .send()
                .await
                .unwrap()
        }
    };
    let before = replay(cookies.clone()).await;
    assert_eq!(before.status(), 303);
    let location = before.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with(&shop.redirect_uri) && location.contains("code="),
        "with the saved cookies A completes the login at once (consent is remembered): {location}"
    );
    let (_, out_url, out_html) = on_b.open("/ap/signout").await.page();
    let after = on_b
        .submit(&out_url, &out_html, "/ap/signout", &[], None, &[])
        .await;
    if let Step::Page { status, .. } = &after {
        assert!(*status < 400, "sign-out failed: {after:?}");
    }
    let res = replay(cookies).await;
    assert!(res.status().is_redirection(), "{}", res.status());
    let location = res.headers()["location"].to_str().unwrap();
    assert!(
        location.contains("/ap/signin"),
        "after signing out on B, A asks to sign in again: {location}"
    );
}

#[tokio::test]
async fn sign_in_attempts_are_counted_across_nodes() {
    let Some((a, b)) = two_nodes(|c| c.signin_limit = 3).await else {
        return;
    };
    a.create_user("ada@example.com", "Ada Lovelace", None).await;
    let on_a = a.browser();
    let on_b = same_browser_on(&b, &on_a);
    for (node, browser) in [("A", &on_a), ("A", &on_a), ("B", &on_b)] {
        let (status, _, _) = browser
            .sign_in("ada@example.com", "wrong password")
            .await
            .page();
        assert_eq!(status, 401, "attempt on {node}");
    }
    // The fourth attempt, on either node, is over the shared limit, even with the right password.
    let (status, _, _) = on_b.sign_in("ada@example.com", PASSWORD).await.page();
    assert_eq!(status, 429, "B counts A's attempts");
    let (status, _, _) = on_a.sign_in("ada@example.com", PASSWORD).await.page();
    assert_eq!(status, 429, "A counts B's attempts");
}
