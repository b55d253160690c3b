//! Security activity on `/account` (SPEC 2.6): sign-ins with time, address and browser, failed sign-ins,
//! password changes, apps removed, "sign out everywhere"; stored per account, listed newest first, purged after
//! the retention.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::*;
use latchkey::store::AuditEvent;

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
