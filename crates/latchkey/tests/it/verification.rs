//! Email verification at sign-up (SPEC 2.8): the account is made unverified, the code comes by real SMTP, the
//! code page verifies it and signs the new customer in; a taken address gets the same answer and its owner a mail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::mailbox::*;
use crate::support::*;

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
