//! Email verification at sign-up (SPEC 2.8): the account is made unverified, the code comes by real SMTP, the
//! code page verifies it and signs the new customer in; a taken address gets the same answer and its owner a mail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::mailbox::*;
use crate::support::*;
use oauth2::TokenResponse;

async fn sign_up(browser: &Browser, email: &str) -> (u16, String, String) {
    let (_, url, html) = browser.open("/ap/register").await.page();
    let fields = [
        ("name", "Bob"),
        ("email", email),
        ("password", "long enough password"),
    ];
    browser
        .submit(&url, &html, "/ap/register", &fields, None, &[])
        .await
        .page()
}

#[tokio::test]
async fn sign_up_mails_a_code_that_verifies_the_address_and_signs_in() {
    let Some(smtp) = SmtpSink::start() else {
        return;
    };
    let app = spawn_app_mailing(&smtp).await;
    let browser = app.browser();
    let (status, url, html) = sign_up(&browser, "bob@example.com").await;
    assert_eq!(status, 200);
    assert!(url.contains("/ap/verify"), "{url}");
    assert!(html.contains("we sent to bob@example.com"), "{html}");
    let user = app
        .store()
        .find_user_by_email("bob@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(!user.email_verified);
    let mail = smtp.nth_to("bob@example.com", 1).await;
    assert!(
        mail.subject.contains("verification code"),
        "{}",
        mail.subject
    );
    assert!(mail.text().contains("15 minutes"));
    let code = mail.code().unwrap();
    // A wrong code first: counted, and said so.
    let res = browser
        .submit_answer(&url, &html, "/ap/verify", &[("code", "000000")], None, &[])
        .await;
    if code != "000000" {
        assert_eq!(res.status().as_u16(), 400);
        assert!(res.text().await.unwrap().contains("4 tries left"));
    }
    let (status, url, html) = browser
        .submit(&url, &html, "/ap/verify", &[("code", &code)], None, &[])
        .await
        .page();
    assert_eq!(status, 200, "{url} {html}");
    assert!(html.contains("Bob"), "signed in: {html}");
    let user = app.store().find_user(&user.id).await.unwrap().unwrap();
    assert!(user.email_verified);
}

#[tokio::test]
async fn sign_up_with_a_taken_address_answers_the_same_and_mails_the_owner() {
    let Some(smtp) = SmtpSink::start() else {
        return;
    };
    let app = spawn_app_mailing(&smtp).await;
    let (status_new, url_new, _) = sign_up(&app.browser(), "new@example.com").await;
    let before = app
        .store()
        .find_user_by_email("new@example.com")
        .await
        .unwrap()
        .unwrap();
    let (status, url, html) = sign_up(&app.browser(), "new@example.com").await;
    assert_eq!(
        (status, url.split('?').next()),
        (status_new, url_new.split('?').next())
    );
    assert!(html.contains("we sent to new@example.com"), "{html}");
    let mail = smtp.nth_to("new@example.com", 2).await;
    assert!(mail.text().contains("/ap/signin"), "{}", mail.text());
    assert!(mail.code().is_none());
    let after = app
        .store()
        .find_user_by_email("new@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.password_hash, before.password_hash);
}

/// An account made before verification existed (or whose owner never entered the code): unverified.
async fn unverified_customer(app: &TestApp, email: &str) {
    let password = latchkey_core::secret::Secret::new(PASSWORD);
    let account = latchkey::flows::signin::NewAccount {
        verified: false,
        email,
        name: "Una Verified",
        postal_code: "",
        password: &password,
    };
    latchkey::flows::signin::create_user(&app.state, &account)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_app_asking_for_the_profile_sends_an_unverified_customer_to_the_code_page_first() {
    let Some(smtp) = SmtpSink::start() else {
        return;
    };
    let app = spawn_app_mailing(&smtp).await;
    let shop = app.register_app(|_| {}).await;
    let client = app.oauth_client(&shop);
    let email = "una@example.com";
    unverified_customer(&app, email).await;
    let browser = app.browser();
    assert_eq!(browser.sign_in(email, PASSWORD).await.page().0, 200);

    // prompt=none cannot ask: interaction_required, at the app.
    let (url, _, _) = pkce_request(&client, "profile", &[("prompt", "none")]);
    let back = browser.open(&url).await.left_to();
    assert!(
        back.query_pairs()
            .any(|(k, v)| k == "error" && v == "interaction_required"),
        "{back}"
    );
    // Only the pairwise id: no address is released, so nothing to verify.
    let (url, _, _) = pkce_request(&client, "profile:user_id", &[]);
    let back = browser.open(&url).await.left_to();
    assert!(back.query_pairs().any(|(k, _)| k == "code"), "{back}");

    // The profile: the code page first, then consent, then the app gets the (now verified) address.
    let (url, _, verifier) = pkce_request(&client, "openid profile", &[]);
    let (status, page_url, html) = browser.open(&url).await.page();
    assert_eq!(status, 200);
    assert!(page_url.contains("/ap/verify"), "{page_url}");
    assert!(html.contains(&format!("Send a code to {email}")), "{html}");
    let (_, page_url, html) = browser
        .submit(&page_url, &html, "/ap/verify/resend", &[], None, &[])
        .await
        .page();
    let code = smtp.nth_to(email, 1).await.code().unwrap();
    let step = browser
        .submit(
            &page_url,
            &html,
            "/ap/verify",
            &[("code", &code)],
            None,
            &[],
        )
        .await;
    let step = if let Step::Page { html, .. } = &step {
        assert!(
            html.contains("would like to use your Latchkey account"),
            "consent comes next: {html}"
        );
        browser.consent_on(step, true, &[]).await
    } else {
        step
    };
    let back = step.left_to();
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let tokens = client
        .exchange_code(oauth2::AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http_client())
        .await
        .unwrap();
    let profile = profile(&app, tokens.access_token().secret(), Presented::Bearer).await;
    assert_eq!(profile.json["email"], email);
    let info = get_with_token(
        &app,
        "/oauth2/userinfo",
        tokens.access_token().secret(),
        Presented::Bearer,
    )
    .await;
    assert_eq!(info.json["email_verified"], true, "{:?}", info.json);
    assert_eq!(info.json["email"], email);
}

#[tokio::test]
async fn new_codes_are_limited_per_address_and_the_newest_code_alone_works() {
    let Some(smtp) = SmtpSink::start() else {
        return;
    };
    let app = spawn_app_mailing(&smtp).await;
    let browser = app.browser();
    let (_, mut url, mut html) = sign_up(&browser, "rae@example.com").await;
    let first = smtp.nth_to("rae@example.com", 1).await.code().unwrap();
    // Three new codes in 15 minutes, then 429 with Retry-After.
    for n in 2..=4 {
        let res = browser
            .submit_answer(&url, &html, "/ap/verify/resend", &[], None, &[])
            .await;
        assert_eq!(res.status().as_u16(), 303, "new code #{n}");
        smtp.nth_to("rae@example.com", n).await;
        (_, url, html) = browser.open("/ap/verify").await.page();
    }
    let res = browser
        .submit_answer(&url, &html, "/ap/verify/resend", &[], None, &[])
        .await;
    assert_eq!(res.status().as_u16(), 429);
    assert!(res.headers().get("retry-after").is_some());
    assert_eq!(
        smtp.to("rae@example.com").len(),
        4,
        "no mail past the limit"
    );
    // The first code was replaced: refused; the newest works.
    let (_, url, html) = browser.open("/ap/verify").await.page();
    if first != smtp.nth_to("rae@example.com", 4).await.code().unwrap() {
        let res = browser
            .submit_answer(&url, &html, "/ap/verify", &[("code", &first)], None, &[])
            .await;
        assert_eq!(res.status().as_u16(), 400);
    }
    let newest = smtp.nth_to("rae@example.com", 4).await.code().unwrap();
    let (_, url, html) = browser.open("/ap/verify").await.page();
    let (status, _, page) = browser
        .submit(&url, &html, "/ap/verify", &[("code", &newest)], None, &[])
        .await
        .page();
    assert_eq!(status, 200, "{page}");
    let user = app
        .store()
        .find_user_by_email("rae@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(user.email_verified);
}
