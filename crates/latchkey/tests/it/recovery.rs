//! "Forgot your password?" (SPEC 2.8) end to end, with the codes read from mail a real SMTP server (aiosmtpd)
//! received: the same answer for every address, a mailed code or link, every session ended, the new password
//! in force, a confirmation mail; five wrong codes lock a code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::mailbox::*;
use crate::support::*;

async fn page(browser: &Browser, path: &str) -> (String, String) {
    match browser.open(path).await {
        Step::Page {
            status: 200,
            url,
            html,
        } => (url, html),
        s => panic!("{path}: {s:?}"),
    }
}

/// Asks for a reset code for `email`; returns the raw answer (status, Location, Set-Cookie names).
async fn ask_for_reset(browser: &Browser, email: &str) -> (u16, String, Vec<String>) {
    let (_, html) = page(browser, "/ap/forgot").await;
    let csrf = scraper::Html::parse_document(&html)
        .select(&scraper::Selector::parse("input[name=csrf]").unwrap())
        .next()
        .unwrap()
        .value()
        .attr("value")
        .unwrap()
        .to_owned();
    let base = browser.base_url();
    let res = browser
        .http
        .post(format!("{base}ap/forgot"))
        .form(&[("csrf", csrf.as_str()), ("email", email)])
        .send()
        .await
        .unwrap();
    let cookies = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split('=').next().unwrap().to_owned())
        .collect();
    let location = res
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (res.status().as_u16(), location, cookies)
}

async fn choose_password(browser: &Browser, fields: &[(&str, &str)]) -> (u16, String, String) {
    let (url, html) = page(browser, "/ap/reset").await;
    browser
        .submit(&url, &html, "/ap/reset", fields, None, &[])
        .await
        .page()
}

#[tokio::test]
async fn a_forgotten_password_is_replaced_by_a_mailed_code_and_every_session_ends() {
    let Some(smtp) = SmtpSink::start() else {
        return;
    };
    let app = spawn_app_mailing(&smtp).await;
    app.create_user(EMAIL, NAME, None).await;
    let elsewhere = app.browser();
    assert_eq!(elsewhere.sign_in(EMAIL, PASSWORD).await.page().0, 200);

    // Known and unknown addresses get the same answer; only the owner gets mail.
    let stranger = app.browser();
    let unknown = ask_for_reset(&stranger, "nobody@example.com").await;
    let browser = app.browser();
    let known = ask_for_reset(&browser, EMAIL).await;
    assert_eq!(known, unknown);
    assert_eq!((known.0, known.1.as_str()), (303, "/ap/reset"));
    let mail = smtp.nth_to(EMAIL, 1).await;
    assert!(
        mail.subject.contains("password reset code"),
        "{}",
        mail.subject
    );
    let code = mail.code().unwrap();
    assert!(smtp.to("nobody@example.com").is_empty());

    // The stranger's decoy never works, whatever is typed.
    let (status, _, html) = choose_password(
        &stranger,
        &[("code", &code), ("new_password", "stranger pass")],
    )
    .await;
    assert_eq!(status, 400, "{html}");
    assert!(html.contains("not right"), "{html}");

    let new_password = "a fresh password";
    let (status, url, html) =
        choose_password(&browser, &[("code", &code), ("new_password", new_password)]).await;
    assert_eq!(status, 200, "{html}");
    assert!(url.ends_with("/account?done=reset"), "{url}");
    assert!(html.contains("Your new password is saved"));
    // Every other session ended; the old password is gone, the new one works.
    let (_, url, _) = elsewhere.open("/account").await.page();
    assert!(url.contains("/ap/signin"), "{url}");
    assert_eq!(app.browser().sign_in(EMAIL, PASSWORD).await.page().0, 401);
    assert_eq!(
        app.browser().sign_in(EMAIL, new_password).await.page().0,
        200
    );
    let confirmation = smtp.nth_to(EMAIL, 2).await;
    assert!(
        confirmation.subject.contains("password was changed"),
        "{}",
        confirmation.subject
    );
    // The code is used up (single use: tests/it/store.rs), and this browser waits for no code any more.
    let (_, url, _) = browser.open("/ap/reset").await.page();
    assert!(url.ends_with("/ap/forgot"), "{url}");
    let (_, html) = page(&browser, "/account").await;
    assert!(
        html.contains("Password reset by a mailed code"),
        "the activity shows it"
    );
}

#[tokio::test]
async fn the_mailed_link_works_like_the_code_and_five_wrong_codes_lock_one() {
    let Some(smtp) = SmtpSink::start() else {
        return;
    };
    let app = spawn_app_mailing(&smtp).await;
    app.create_user(EMAIL, NAME, None).await;
    let browser = app.browser();
    ask_for_reset(&browser, EMAIL).await;
    let mail = smtp.nth_to(EMAIL, 1).await;
    let code = mail.code().unwrap();
    for _ in 0..4 {
        let (status, _, html) = choose_password(
            &browser,
            &[("code", "000000"), ("new_password", "whatever it is")],
        )
        .await;
        assert_eq!(status, 400);
        assert!(
            html.contains("not right") || html.contains("Too many"),
            "{html}"
        );
    }
    let (_, _, html) = choose_password(
        &browser,
        &[("code", "000001"), ("new_password", "whatever it is")],
    )
    .await;
    assert!(html.contains("Too many wrong codes"), "{html}");
    let (_, _, html) = choose_password(
        &browser,
        &[("code", &code), ("new_password", "whatever it is")],
    )
    .await;
    assert!(
        html.contains("Too many wrong codes"),
        "locked even for the right code: {html}"
    );
    assert_eq!(
        app.browser().sign_in(EMAIL, PASSWORD).await.page().0,
        200,
        "nothing changed"
    );

    // A new code, by its link, opened in another browser.
    ask_for_reset(&browser, EMAIL).await;
    let mail = smtp.nth_to(EMAIL, 2).await;
    let link = mail.link(&app.base).unwrap();
    let other = app.browser();
    let (url, html) = match other.open(&link).await {
        Step::Page {
            status: 200,
            url,
            html,
        } => (url, html),
        s => panic!("{s:?}"),
    };
    assert!(!html.contains("name=\"code\""), "the link needs no code");
    let (status, url, _) = other
        .submit(
            &url,
            &html,
            "/ap/reset",
            &[("new_password", "linked new password")],
            None,
            &[],
        )
        .await
        .page();
    assert_eq!(status, 200);
    assert!(url.ends_with("/account?done=reset"), "{url}");
    assert_eq!(
        app.browser()
            .sign_in(EMAIL, "linked new password")
            .await
            .page()
            .0,
        200
    );
}

#[tokio::test]
async fn an_email_change_needs_the_password_and_takes_effect_only_with_the_code_sent_to_the_new_address(
) {
    let Some(smtp) = SmtpSink::start() else {
        return;
    };
    let app = spawn_app_mailing(&smtp).await;
    let user = app.create_user(EMAIL, NAME, None).await;
    app.create_user("taken@example.com", "Other", None).await;
    let browser = app.browser();
    assert_eq!(browser.sign_in(EMAIL, PASSWORD).await.page().0, 200);
    let new = "ada.new@example.com";

    // The wrong password: refused, nothing sent.
    let (url, html) = page(&browser, "/account").await;
    let (status, _, html) = browser
        .submit(
            &url,
            &html,
            "/account/email",
            &[("new_email", new), ("current_password", "wrong one")],
            None,
            &[],
        )
        .await
        .page();
    assert_eq!(status, 400);
    assert!(html.contains("current password is not correct"), "{html}");

    // The right one: a code to the new address, a notice to the old; nothing changed yet.
    let (url, html) = page(&browser, "/account").await;
    let (status, url2, html2) = browser
        .submit(
            &url,
            &html,
            "/account/email",
            &[("new_email", new), ("current_password", PASSWORD)],
            None,
            &[],
        )
        .await
        .page();
    assert_eq!(status, 200);
    assert!(url2.ends_with("/account/email/verify"), "{url2}");
    let code = smtp.nth_to(new, 1).await.code().unwrap();
    let notice = smtp.nth_to(EMAIL, 1).await;
    assert!(notice.text().contains(new), "{}", notice.text());
    assert_eq!(
        app.store()
            .find_user(&user.id)
            .await
            .unwrap()
            .unwrap()
            .email,
        EMAIL
    );
    assert_eq!(app.browser().sign_in(EMAIL, PASSWORD).await.page().0, 200);

    let (status, url, html) = browser
        .submit(
            &url2,
            &html2,
            "/account/email/verify",
            &[("code", &code)],
            None,
            &[],
        )
        .await
        .page();
    assert_eq!(status, 200, "{html}");
    assert!(url.ends_with("/account?done=email"), "{url}");
    let now = app.store().find_user(&user.id).await.unwrap().unwrap();
    assert_eq!((now.email.as_str(), now.email_verified), (new, true));
    assert_eq!(app.browser().sign_in(new, PASSWORD).await.page().0, 200);
    assert_eq!(app.browser().sign_in(EMAIL, PASSWORD).await.page().0, 401);
    let changed = smtp.nth_to(EMAIL, 2).await;
    assert!(
        changed.subject.contains("address was changed"),
        "{}",
        changed.subject
    );

    // An address another account has: the same answer, its owner is told, nothing changes.
    let (url, html) = page(&browser, "/account").await;
    let (status, url, _) = browser
        .submit(
            &url,
            &html,
            "/account/email",
            &[
                ("new_email", "taken@example.com"),
                ("current_password", PASSWORD),
            ],
            None,
            &[],
        )
        .await
        .page();
    assert_eq!(status, 200);
    assert!(url.ends_with("/account/email/verify"), "{url}");
    let told = smtp.nth_to("taken@example.com", 1).await;
    assert!(told.code().is_none(), "no code for someone else's address");
    assert_eq!(
        app.store()
            .find_user(&user.id)
            .await
            .unwrap()
            .unwrap()
            .email,
        new
    );
}
