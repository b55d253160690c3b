//! Security activity on `/account` (SPEC 2.6): sign-ins with time, address and browser, failed sign-ins,
//! password changes, apps removed, "sign out everywhere"; stored per account, listed newest first, purged after
//! the retention.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::*;
use latchkey::store::AuditEvent;
use oauth2::TokenResponse;

const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) ActivityTest/7.1";

fn activity_items(html: &str) -> Vec<String> {
    let doc = scraper::Html::parse_document(html);
    let sel = scraper::Selector::parse("#activity li").unwrap();
    doc.select(&sel)
        .map(|li| li.text().collect::<String>())
        .collect()
}

#[tokio::test]
async fn sign_ins_failures_password_changes_and_removed_apps_are_listed_with_address_and_browser() {
    let w = World::new(|i| i.name = "Activity Shop".into()).await;
    // A wrong password for the account, from a browser that names itself.
    let other = Browser::with_user_agent(&w.app.base, UA);
    let (status, _, _) = other.sign_in(EMAIL, "not the password").await.page();
    assert_eq!(status, 401);
    // A stranger's wrong password for an address with no account is nobody's activity.
    let (status, _, _) = other
        .sign_in("nobody@example.com", "whatever1")
        .await
        .page();
    assert_eq!(status, 401);
    let (status, _, _) = other.sign_in(EMAIL, PASSWORD).await.page();
    assert_eq!(status, 200);

    let (_, _, html) = other.open("/account").await.page();
    let items = activity_items(&html);
    // (Events of one second are in no particular order: the store test checks newest first.)
    assert_eq!(
        items.len(),
        3,
        "the world's sign-in, the failure, this sign-in: {items:#?}"
    );
    assert!(
        items
            .iter()
            .any(|i| i.starts_with("Signed in") && i.contains("from 127.0.0.1") && i.contains(UA)),
        "{items:#?}"
    );
    assert!(
        items
            .iter()
            .any(|i| i.starts_with("Failed sign-in") && i.contains(UA)),
        "{items:#?}"
    );
    assert!(
        items
            .iter()
            .filter(|i| i.starts_with("Failed sign-in"))
            .count()
            == 1,
        "{items:#?}"
    );

    // A password change and a removed app.
    let (url, html) = match other.open("/account").await {
        Step::Page { url, html, .. } => (url, html),
        s => panic!("{s:?}"),
    };
    let new_password = "a brand new password";
    let (status, _, _) = other
        .submit(
            &url,
            &html,
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", new_password),
            ],
            None,
            &[],
        )
        .await
        .page();
    assert_eq!(status, 200);
    let _tokens = tokens_with_browser(&w, &other).await;
    let (url, html) = match other.open("/ap/adam").await {
        Step::Page { url, html, .. } => (url, html),
        s => panic!("{s:?}"),
    };
    let (status, _, _) = other
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
    assert_eq!(status, 200);
    let (_, _, html) = other.open("/account").await.page();
    let items = activity_items(&html);
    assert!(
        items
            .iter()
            .any(|i| i.starts_with("Removed the app Activity Shop") && i.contains(UA)),
        "{items:#?}"
    );
    assert!(
        items.iter().any(|i| i.starts_with("Password changed")),
        "{items:#?}"
    );
}

/// Signs `browser`'s customer in to the shop (consent included), so that the shop holds a consent to remove.
async fn tokens_with_browser(w: &World, browser: &Browser) -> url::Url {
    let (url, _, _) = pkce_request(&w.client, "profile", &[]);
    login_through(browser, &url, EMAIL).await
}

#[tokio::test]
async fn activity_is_kept_per_account_newest_first_and_purged_after_the_retention() {
    for (engine, db) in each_db().await {
        let app = spawn_app_on(std::sync::Arc::new(db)).await;
        let s = app.store();
        for (i, at) in [100, 300, 200].into_iter().enumerate() {
            s.record_event(&AuditEvent {
                id: format!("e{i}"),
                user_id: "u1".into(),
                kind: "signed_in".into(),
                at,
                ip: Some("192.0.2.1".into()),
                user_agent: None,
                detail: None,
            })
            .await
            .unwrap();
        }
        s.record_event(&AuditEvent {
            id: "other".into(),
            user_id: "u2".into(),
            kind: "signed_in".into(),
            at: 50,
            ip: None,
            user_agent: None,
            detail: None,
        })
        .await
        .unwrap();
        let ats: Vec<i64> = s
            .list_events("u1", 10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.at)
            .collect();
        assert_eq!(ats, vec![300, 200, 100], "{engine:?}");
        assert_eq!(s.list_events("u1", 2).await.unwrap().len(), 2, "{engine:?}");
        assert_eq!(s.purge_events(201).await.unwrap(), 3, "{engine:?}");
        let ats: Vec<i64> = s
            .list_events("u1", 10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.at)
            .collect();
        assert_eq!(ats, vec![300], "{engine:?}");
        assert!(
            s.list_events("u2", 10).await.unwrap().is_empty(),
            "{engine:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Download my data, delete my account (SPEC 2.6)

async fn account_page(browser: &Browser) -> (String, String) {
    match browser.open("/account").await {
        Step::Page {
            status: 200,
            url,
            html,
        } => (url, html),
        s => panic!("{s:?}"),
    }
}

#[tokio::test]
async fn the_data_download_has_the_profile_apps_sessions_and_activity_and_no_secret() {
    let w = World::on(spawn_app().await, |i| i.name = "Export Shop".into()).await;
    let tokens = tokens_with(&w, &w.client, "profile").await;
    let (url, html) = account_page(&w.browser).await;
    let (status, _, body) = w
        .browser
        .submit(&url, &html, "/account/export", &[], None, &[])
        .await
        .page();
    assert_eq!(status, 200);
    let data: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(data["profile"]["email"], EMAIL);
    assert_eq!(data["profile"]["name"], NAME);
    assert_eq!(data["profile"]["email_verified"], true);
    assert_eq!(data["allowed_apps"][0]["name"], "Export Shop");
    assert_eq!(data["allowed_apps"][0]["client_id"], w.shop.client_id);
    assert!(data["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["this_browser"] == true));
    assert!(data["activity"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event"] == "signed_in"));
    let user = w.app.store().find_user(&w.user.id).await.unwrap().unwrap();
    for secret in [
        user.password_hash.as_str(),
        PASSWORD,
        tokens.access_token().secret(),
        tokens.refresh_token().unwrap().secret(),
        "password",
        "hash",
    ] {
        assert!(!body.contains(secret), "the export holds {secret:?}");
    }
    // A forged form (no CSRF token) downloads nothing.
    let forged = w
        .browser
        .http
        .post(w.app.url("/account/export"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();
    assert_ne!(forged.status().as_u16(), 200);
}

#[tokio::test]
async fn deleting_the_account_ends_every_token_consent_and_session_at_once_and_the_address_can_start_afresh(
) {
    for (engine, db) in each_db().await {
        let w = World::on(spawn_app_on(std::sync::Arc::new(db)).await, |_| {}).await;
        let tokens = tokens_with(&w, &w.client, "profile").await;
        let access = tokens.access_token().secret().clone();
        let first = profile(&w.app, &access, Presented::Bearer).await;
        assert_eq!(first.status, 200, "{engine:?}");
        let first_id = first.json["user_id"].as_str().unwrap().to_owned();

        // Wrong password, or the box not ticked: nothing happens.
        for (password, confirm, says) in [
            ("not my password", "yes", "not correct"),
            (PASSWORD, "", "Tick the box"),
        ] {
            let (url, html) = account_page(&w.browser).await;
            let (status, _, html) = w
                .browser
                .submit(
                    &url,
                    &html,
                    "/account/delete",
                    &[("current_password", password), ("confirm", confirm)],
                    None,
                    &[],
                )
                .await
                .page();
            assert_eq!(status, 400, "{engine:?}");
            assert!(html.contains(says), "{html}");
            assert!(w.app.store().find_user(&w.user.id).await.unwrap().is_some());
        }

        let (url, html) = account_page(&w.browser).await;
        let (status, _, html) = w
            .browser
            .submit(
                &url,
                &html,
                "/account/delete",
                &[("current_password", PASSWORD), ("confirm", "yes")],
                None,
                &[],
            )
            .await
            .page();
        assert_eq!(status, 200, "{engine:?}: {html}");
        assert!(html.contains("Your account is deleted"));
        let s = w.app.store();
        assert!(
            s.find_user(&w.user.id).await.unwrap().is_none(),
            "{engine:?}"
        );
        assert!(s.find_user_by_email(EMAIL).await.unwrap().is_none());
        assert!(s.list_consents(&w.user.id).await.unwrap().is_empty());
        assert!(s.list_sessions(&w.user.id, 0).await.unwrap().is_empty());
        assert!(s.list_events(&w.user.id, 10).await.unwrap().is_empty());
        let info = tokeninfo(&w.app, &access).await;
        assert_eq!(
            (info.status, info.json["error"].as_str()),
            (400, Some("invalid_token")),
            "{engine:?}"
        );
        let refreshed = w
            .client
            .exchange_refresh_token(tokens.refresh_token().unwrap())
            .request_async(&http_client())
            .await;
        assert!(
            refreshed.is_err(),
            "{engine:?}: the refresh token died with the account"
        );
        // This browser is signed out.
        let (_, url, _) = w.browser.open("/account").await.page();
        assert!(url.contains("/ap/signin"), "{url}");

        // The address signs up afresh: a new account, with a new pairwise id at the same app.
        w.app.create_user(EMAIL, NAME, None).await;
        let fresh = w.app.browser();
        let (status, _, _) = fresh.sign_in(EMAIL, PASSWORD).await.page();
        assert_eq!(status, 200);
        let again = World {
            app: w.app,
            shop: w.shop,
            client: w.client,
            user: w.user,
            browser: fresh,
        };
        let tokens = tokens_with(&again, &again.client, "profile").await;
        let second = profile(
            &again.app,
            tokens.access_token().secret(),
            Presented::Bearer,
        )
        .await;
        assert_eq!(second.status, 200);
        assert_ne!(
            second.json["user_id"].as_str().unwrap(),
            first_id,
            "{engine:?}: pairwise ids are never reused"
        );
    }
}

#[tokio::test]
async fn an_account_that_owns_apps_is_not_deleted() {
    for (engine, db) in each_db().await {
        let app = spawn_app_on(std::sync::Arc::new(db)).await;
        let user = app.create_user("dev@example.com", "Dev", None).await;
        let owner = user.id.clone();
        app.register_app(move |i| i.owner = owner).await;
        assert_eq!(
            app.store().delete_user(&user.id, 0).await.unwrap(),
            latchkey::store::DeleteUser::OwnsApps(1),
            "{engine:?}"
        );
        assert!(app.store().find_user(&user.id).await.unwrap().is_some());
        assert_eq!(
            app.store().delete_user("nobody", 0).await.unwrap(),
            latchkey::store::DeleteUser::Unknown
        );
    }
}
