//! The shortest complete story: a customer signs up on the real pages, allows an app, and the app (the `oauth2`
//! crate) exchanges the code with PKCE and reads the profile.
#![allow(clippy::unwrap_used)]

use crate::mailbox::*;
use crate::support::*;
use oauth2::{AuthorizationCode, CsrfToken, PkceCodeChallenge, Scope, TokenResponse};

#[tokio::test]
async fn sign_up_consent_exchange_and_read_profile() {
    let Some(smtp) = SmtpSink::start() else {
        return;
    };
    let app = spawn_app_mailing(&smtp).await;
    let shop = app.register_app(|_| {}).await;
    let client = app.oauth_client(&shop);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize_url, csrf) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();

    let browser = app.browser();
    let signin = browser.open(authorize_url.as_str()).await;
    let (_, url, html) = signin.page();
    let register_link = format!("/ap/register?{}", url.split_once('?').unwrap().1);
    assert!(html.contains("Create an account"));
    let (_, reg_url, reg_html) = browser.open(&register_link).await.page();
    let (_, verify_url, verify_html) = browser
        .submit(
            &reg_url,
            &reg_html,
            "/ap/register",
            &[
                ("name", "Ada Lovelace"),
                ("email", "ada@example.com"),
                ("password", PASSWORD),
            ],
            None,
            &[],
        )
        .await
        .page();
    // The address is proved by the mailed code before the app is shown it.
    let code = smtp.nth_to("ada@example.com", 1).await.code().unwrap();
    let consent = browser
        .submit(
            &verify_url,
            &verify_html,
            "/ap/verify",
            &[("code", &code)],
            None,
            &[],
        )
        .await;
    let back = browser.consent_on(consent, true, &[]).await.left_to();
    assert_eq!(
        Step::param(&back, "state").as_deref(),
        Some(csrf.secret().as_str())
    );
    assert_eq!(
        Step::param(&back, "iss").as_deref(),
        Some(app.base.as_str())
    );
    let code = Step::param(&back, "code").unwrap();

    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http_client())
        .await
        .unwrap();
    assert!(token.access_token().secret().starts_with("Atza|"));
    assert!(token.refresh_token().unwrap().secret().starts_with("Atzr|"));

    let profile: serde_json::Value = app
        .api()
        .get(app.url("/user/profile"))
        .bearer_auth(token.access_token().secret())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(profile["name"], "Ada Lovelace");
    assert_eq!(profile["email"], "ada@example.com");
    assert!(profile["user_id"]
        .as_str()
        .unwrap()
        .starts_with("lk1.account."));
}
