//! LWA-style reusable refresh tokens (SPEC 2.2), a per-app opt-in: for such an app the refresh grant repeats the
//! same refresh token, which keeps working however often it is used until the customer removes the app, the app
//! revokes it, or the account is disabled; a default app keeps rotation with reuse detection. The apps here talk
//! HTTP to a real server; the ASK SDK's own `LwaClient` (tests/oidc/lwa_client.py, pinned in requirements.txt)
//! plays the Amazon tool that keeps its configured token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::developer::{create_app, developer, submit_new_app, text_of};
use crate::support::*;
use latchkey_core::client::{ClientKind, Feature};
use latchkey_core::refresh::REUSE_GRACE_SECS;
use oauth2::{AuthorizationCode, CsrfToken, PkceCodeChallenge, Scope, TokenResponse};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::process::Command;

// ---------------------------------------------------------------------------------------------------------------
// The vocabulary of this file

/// The world of these tests: its `shop` is "Skill", an app with reusable refresh tokens.
async fn world_on(app: TestApp) -> World {
    World::on(app, |i| {
        i.name = "Skill".into();
        i.features.insert(Feature::ReusableRefresh);
    })
    .await
}

/// The customer allows `app` in the browser; the app exchanges the code. Returns (access, refresh).
async fn login(w: &World, app: &RegisteredApp) -> (String, String) {
    let client = w.app.oauth_client(app);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _) = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge)
        .add_scope(Scope::new("profile".into()))
        .url();
    let back = login_through(&w.browser, url.as_str(), EMAIL).await;
    let code = Step::param(&back, "code").unwrap_or_else(|| panic!("no code in {back}"));
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http_client())
        .await
        .unwrap();
    (
        tokens.access_token().secret().clone(),
        tokens.refresh_token().unwrap().secret().clone(),
    )
}

/// A refresh as Amazon's tools send it (form body, client secret in it): (status, JSON).
async fn refresh(w: &World, app: &RegisteredApp, token: &str) -> (u16, Value) {
    let res = w
        .app
        .api()
        .post(w.app.url("/auth/o2/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", &app.client_id),
            ("client_secret", app.secret.as_deref().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn assert_refused(w: &World, app: &RegisteredApp, token: &str, what: &str) {
    let (status, json) = refresh(w, app, token).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (400, Some("invalid_grant")),
        "{what}: {json}"
    );
}

/// `token` works twice, past the grace window, and comes back unchanged: it is a reusable one.
async fn assert_reusable(w: &World, token: &str, what: &str) {
    for _ in 0..2 {
        let (status, json) = refresh(w, &w.shop, token).await;
        assert_eq!(status, 200, "{what}: {json}");
        assert_eq!(json["refresh_token"], token, "{what}");
        w.app.state.clock.advance(REUSE_GRACE_SECS + 1);
    }
}

/// Whether tokeninfo calls `token` valid.
async fn live(w: &World, token: &str) -> bool {
    let res = w
        .app
        .api()
        .get(w.app.url("/auth/o2/tokeninfo"))
        .query(&[("access_token", token)])
        .send()
        .await
        .unwrap();
    res.status() == 200
}

// ---------------------------------------------------------------------------------------------------------------
// The Rust suite

#[tokio::test]
async fn a_reusable_refresh_token_comes_back_unchanged_and_keeps_working() {
    for (engine, db) in each_db().await {
        let w = world_on(spawn_app_on(Arc::new(db)).await).await;
        let (first, token) = login(&w, &w.shop).await;
        let mut seen = vec![first];
        for round in 1..=3 {
            let (status, json) = refresh(&w, &w.shop, &token).await;
            assert_eq!(status, 200, "{engine}: refresh {round}: {json}");
            assert_eq!(json["refresh_token"], token.as_str(), "{engine}: {round}");
            let access = json["access_token"].as_str().unwrap().to_owned();
            assert!(!seen.contains(&access), "{engine}: a new access token");
            assert!(live(&w, &access).await, "{engine}: {round}");
            seen.push(access);
            // Past the grace window each time: a rotating app would call this a theft.
            w.app.state.clock.advance(REUSE_GRACE_SECS + 1);
        }
        // Earlier access tokens are not revoked by later refreshes.
        assert!(live(&w, &seen[1]).await, "{engine}");

        // An hour later every access token so far has expired; the refresh token still works.
        w.app.state.clock.advance(3600);
        assert!(!live(&w, &seen[3]).await, "{engine}: expired");
        let (status, json) = refresh(&w, &w.shop, &token).await;
        assert_eq!(status, 200, "{engine}: after an hour: {json}");
        assert_eq!(json["refresh_token"], token.as_str(), "{engine}");
        assert!(live(&w, json["access_token"].as_str().unwrap()).await);
    }
}

#[tokio::test]
async fn removing_the_app_revoking_the_token_or_disabling_the_account_ends_a_reusable_token() {
    for (engine, db) in each_db().await {
        let w = world_on(spawn_app_on(Arc::new(db)).await).await;

        // Remove on "Apps and websites you've allowed".
        let (_, token) = login(&w, &w.shop).await;
        assert_reusable(&w, &token, engine).await;
        let (status, url, html) = w.browser.open("/ap/adam").await.page();
        assert_eq!(status, 200, "{engine}: {html}");
        let (status, url, _) = w
            .browser
            .submit(
                &url,
                &html,
                "/ap/adam",
                &[("client_id", &w.shop.client_id)],
                None,
                &[],
            )
            .await
            .page();
        assert_eq!(status, 200, "{engine}");
        assert!(url.contains("/ap/adam?removed="), "{engine}: {url}");
        assert_refused(&w, &w.shop, &token, "after Remove").await;

        // The app revokes it (RFC 7009); the customer allows the app again for a new token first.
        let (_, token) = login(&w, &w.shop).await;
        assert_reusable(&w, &token, engine).await;
        let (status, json) = refresh(&w, &w.shop, &token).await;
        assert_eq!(status, 200, "{engine}: a new grant after Remove: {json}");
        let access = json["access_token"].as_str().unwrap().to_owned();
        let res = w
            .app
            .api()
            .post(w.app.url("/oauth2/revoke"))
            .form(&[
                ("token", token.as_str()),
                ("client_id", &w.shop.client_id),
                ("client_secret", w.shop.secret.as_deref().unwrap()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{engine}");
        assert_refused(&w, &w.shop, &token, "after /oauth2/revoke").await;
        assert!(!live(&w, &access).await, "{engine}: its family is revoked");

        // `latchkey user disable` (what the command does to the store).
        let (_, token) = login(&w, &w.shop).await;
        assert_reusable(&w, &token, engine).await;
        assert!(w
            .app
            .store()
            .set_user_disabled(EMAIL, true, w.app.state.clock.now())
            .await
            .unwrap());
        assert_refused(&w, &w.shop, &token, "after user disable").await;
        // Enabling the account again does not bring the token back.
        assert!(w
            .app
            .store()
            .set_user_disabled(EMAIL, false, w.app.state.clock.now())
            .await
            .unwrap());
        assert_refused(&w, &w.shop, &token, "after user enable").await;
    }
}

#[tokio::test]
async fn a_default_app_still_rotates_and_a_second_use_revokes_the_family() {
    for (engine, db) in each_db().await {
        let w = world_on(spawn_app_on(Arc::new(db)).await).await;
        let default = w.app.register_app(|_| {}).await;
        let (_, token) = login(&w, &default).await;
        let (status, json) = refresh(&w, &default, &token).await;
        assert_eq!(status, 200, "{engine}: {json}");
        let rotated = json["refresh_token"].as_str().unwrap().to_owned();
        assert_ne!(rotated, token, "{engine}: rotated");
        let access = json["access_token"].as_str().unwrap().to_owned();
        w.app.state.clock.advance(REUSE_GRACE_SECS + 1);
        assert_refused(&w, &default, &token, "second use").await;
        // Reuse detection: the whole family is gone, the rotated token and its access token too.
        assert_refused(&w, &default, &rotated, "the rotated token after reuse").await;
        assert!(!live(&w, &access).await, "{engine}");
    }
}

#[tokio::test]
async fn reusable_refresh_tokens_are_refused_for_public_apps_and_switched_in_the_console() {
    let app = spawn_app().await;
    // At registration (what `latchkey client add --public --reusable-refresh` calls).
    let mut input = default_app_input();
    input.kind = ClientKind::Public;
    input.features.insert(Feature::ReusableRefresh);
    let problems = latchkey::flows::registration::register(&app.state, &input)
        .await
        .unwrap()
        .into_result()
        .unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("public app") && p.contains("reusable refresh tokens")),
        "{problems:?}"
    );

    // In the console: a new public app with the switch on is refused next to the flows.
    let (b, _) = developer(&app, "dev@example.com").await;
    let (status, _, html) =
        submit_new_app(&b, &[("type", "public"), ("flow", "reusable_refresh")]).await;
    assert_eq!(status, 400, "{html}");
    let message = text_of(&html, "flows-error").unwrap();
    assert!(message.contains("confidential apps"), "{message}");

    // A confidential app switches it on in its edit form; the app's page says so.
    let shop = create_app(&b, &[]).await;
    let edit = format!("/developer/apps/{}/edit", shop.client_id);
    let (status, url, html) = b.open(&edit).await.page();
    assert_eq!(status, 200);
    assert!(html.contains("id=\"flow-reusable_refresh\""), "{html}");
    let (status, _, page) = b
        .submit(
            &url,
            &html,
            &edit,
            &[("flow", "reusable_refresh")],
            None,
            &[],
        )
        .await
        .page();
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Reusable refresh tokens"), "{page}");
    let stored = app
        .store()
        .find_client(&shop.client_id)
        .await
        .unwrap()
        .unwrap();
    assert!(stored.policy.allows(Feature::ReusableRefresh));
    let (_, _, html) = b.open(&edit).await.page();
    assert!(
        html.contains("value=\"reusable_refresh\" checked"),
        "the switch shows as on: {html}"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// The ASK SDK's LwaClient

/// The interpreter with ask-sdk-model installed (see `oidc_authlib`), or `None` outside CI when there is none.
async fn ask_sdk_python() -> Option<String> {
    let python = std::env::var("LATCHKEY_TEST_PYTHON").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/latchkey-venv/bin/python")
    });
    let probe = Command::new(&python)
        .args(["-c", "import ask_sdk_model, ask_sdk_core"])
        .output()
        .await;
    let problem = match probe {
        Ok(out) if out.status.success() => return Some(python),
        Ok(out) => format!(
            "{python} cannot import ask_sdk_model and ask_sdk_core: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => format!("{python} cannot be run: {e}"),
    };
    if crate::support::under_ci() {
        panic!(
            "the ASK SDK's LwaClient is required under CI=true, but {problem}. .ci/run installs \
             crates/latchkey/tests/oidc/requirements.txt and sets LATCHKEY_TEST_PYTHON."
        );
    }
    eprintln!("skipping: {problem} (run .ci/run once, or set LATCHKEY_TEST_PYTHON)");
    None
}

/// Runs `LwaClient` `times` times with the same configured refresh token: one JSON answer per run.
async fn lwa_client(
    python: &str,
    w: &World,
    app: &RegisteredApp,
    token: &str,
    times: u32,
) -> Vec<Value> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc/lwa_client.py");
    let out = Command::new(python)
        .arg(script)
        .args([
            w.app.base.as_str(),
            &app.client_id,
            app.secret.as_deref().unwrap(),
            token,
            &times.to_string(),
        ])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "lwa_client.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn the_ask_sdk_lwa_client_refreshes_twice_with_its_token_only_where_the_app_opted_in() {
    let Some(python) = ask_sdk_python().await else {
        return;
    };
    let w = world_on(spawn_app().await).await;

    let (_, token) = login(&w, &w.shop).await;
    let answers = lwa_client(&python, &w, &w.shop, &token, 2).await;
    assert_eq!(answers.len(), 2, "{answers:?}");
    for a in &answers {
        let access = a["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("{answers:?}"));
        assert!(live(&w, access).await, "{answers:?}");
    }
    assert_ne!(answers[0], answers[1], "two access tokens");

    let default = w.app.register_app(|_| {}).await;
    let (_, token) = login(&w, &default).await;
    let first = lwa_client(&python, &w, &default, &token, 1).await;
    assert!(first[0]["access_token"].is_string(), "{first:?}");
    w.app.state.clock.advance(REUSE_GRACE_SECS + 1);
    let second = lwa_client(&python, &w, &default, &token, 1).await;
    assert_eq!(second[0]["status"], 400, "{second:?}");
    assert_eq!(second[0]["error"], "invalid_grant", "{second:?}");
}
