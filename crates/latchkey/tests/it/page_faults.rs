//! Every page answers a store failure through the one page table (`web::error::page_failure`): a failure that
//! passes by itself (here the database's pool closed under the server) is 503 with `Retry-After` and a page that
//! says to wait; a real fault (a table gone) is a 500 page that says nothing of the cause. Each page is asked as
//! a browser asks it: signed in, with its real CSRF token, so that the request reaches the store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::*;
use latchkey::store::SqlStore;
use latchkey_core::client::Feature;
use std::sync::Arc;

/// A server over a store handle the test keeps, a customer who is a developer with an app (with a logo slot
/// and SDK origins), signed in on `browser`, and the CSRF token of that browser's forms.
struct Scene {
    app: TestApp,
    store: SqlStore,
    browser: Browser,
    /// A browser that never signed in (sign-in and sign-up reach the store through their limits).
    stranger: Browser,
    csrf: String,
    stranger_csrf: String,
    client_id: String,
    redirect_uri: String,
}

fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a form with a CSRF token")
        .to_owned()
}

async fn scene() -> Scene {
    let db = Arc::new(sqlite_db());
    let store = SqlStore::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let app = spawn_app_over(db, Arc::new(store.clone())).await;
    let user = app.create_user(EMAIL, NAME, Some(POSTAL_CODE)).await;
    let now = app.state.clock.now();
    app.store().enable_developer(&user.id, now).await.unwrap();
    let owned = app
        .register_app(|i| {
            i.owner = user.id.clone();
            i.features.insert(Feature::Device);
        })
        .await;
    let browser = app.browser();
    let (status, url, _) = browser.sign_in(EMAIL, PASSWORD).await.page();
    assert_eq!(status, 200, "signing in ended at {url}");
    let (status, _, html) = browser.open("/account").await.page();
    assert_eq!(status, 200);
    let csrf = csrf_of(&html);
    let stranger = app.browser();
    let (_, _, html) = stranger.open("/ap/signin").await.page();
    let stranger_csrf = csrf_of(&html);
    Scene {
        app,
        store,
        browser,
        stranger,
        csrf,
        stranger_csrf,
        client_id: owned.client_id,
        redirect_uri: owned.redirect_uri,
    }
}

enum Ask {
    Get(String),
    Post(String, Vec<(&'static str, String)>),
}

/// Every page and form, as the signed-in browser asks them (and sign-in and sign-up as the stranger does).
fn pages(s: &Scene) -> Vec<(bool, Ask)> {
    let id = &s.client_id;
    let app_path = format!("/developer/apps/{id}");
    let authorize = format!(
        "/ap/oa?client_id={id}&scope=profile&response_type=code&redirect_uri={}&state=s",
        url::form_urlencoded::byte_serialize(s.redirect_uri.as_bytes()).collect::<String>()
    );
    let gets = [
        "/".to_owned(),
        authorize,
        "/ap/signin".into(),
        "/ap/register".into(),
        "/ap/signout".into(),
        "/account".into(),
        "/account/apps".into(),
        "/ap/adam".into(),
        "/code".into(),
        "/code?user_code=BCDF-GHJK".into(),
        "/developer".into(),
        "/developer/apps/new".into(),
        app_path.clone(),
        format!("{app_path}/edit"),
        format!("{app_path}/delete"),
        format!("/sdk/relay/{id}"),
        format!("/logos/{id}/0123456789abcdef"),
    ];
    let signed_in_posts: Vec<(String, Vec<(&'static str, String)>)> = vec![
        ("/ap/signout".into(), vec![]),
        (
            "/account/profile".into(),
            vec![("name", "Ada".into()), ("email", EMAIL.into())],
        ),
        (
            "/account/password".into(),
            vec![
                ("current_password", PASSWORD.into()),
                ("new_password", "another long passphrase".into()),
            ],
        ),
        (
            "/account/sessions/end".into(),
            vec![("session", "x".into())],
        ),
        ("/account/sessions/end-all".into(), vec![]),
        ("/ap/adam".into(), vec![("client_id", id.clone())]),
        ("/account/apps".into(), vec![("client_id", id.clone())]),
        ("/code".into(), vec![("user_code", "BCDF-GHJK".into())]),
        (
            "/code/confirm".into(),
            vec![
                ("user_code", "BCDF-GHJK".into()),
                ("decision", "allow".into()),
            ],
        ),
        (
            "/ap/oa/consent".into(),
            vec![
                ("request", "client_id=x".into()),
                ("decision", "allow".into()),
            ],
        ),
        ("/developer/enable".into(), vec![]),
        ("/developer/apps".into(), vec![("name", "New".into())]),
        (format!("{app_path}/edit"), vec![("name", "Renamed".into())]),
        (format!("{app_path}/secret"), vec![("grace", "0".into())]),
        (format!("{app_path}/delete"), vec![("confirm", id.clone())]),
        (format!("{app_path}/logo/remove"), vec![]),
    ];
    let stranger_posts: Vec<(String, Vec<(&'static str, String)>)> = vec![
        (
            "/ap/signin".into(),
            vec![("email", EMAIL.into()), ("password", PASSWORD.into())],
        ),
        (
            "/ap/register".into(),
            vec![
                ("name", "Bea".into()),
                ("email", "bea@example.com".into()),
                ("password", "a long enough passphrase".into()),
                ("postal_code", "10115".into()),
            ],
        ),
    ];
    let mut all: Vec<(bool, Ask)> = gets.into_iter().map(|p| (true, Ask::Get(p))).collect();
    all.extend(
        signed_in_posts
            .into_iter()
            .map(|(p, f)| (true, Ask::Post(p, f))),
    );
    all.extend(
        stranger_posts
            .into_iter()
            .map(|(p, f)| (false, Ask::Post(p, f))),
    );
    all
}

/// Asks one page; returns what it is called in messages, the status, `Retry-After`, and the body.
async fn ask(s: &Scene, signed_in: bool, what: &Ask) -> (String, u16, Option<String>, String) {
    let (browser, csrf) = if signed_in {
        (&s.browser, &s.csrf)
    } else {
        (&s.stranger, &s.stranger_csrf)
    };
    let (label, req) = match what {
        Ask::Get(path) => (format!("GET {path}"), browser.http.get(s.app.url(path))),
        Ask::Post(path, fields) => {
            let mut form: Vec<(&str, &str)> = vec![("csrf", csrf.as_str())];
            form.extend(fields.iter().map(|(k, v)| (*k, v.as_str())));
            (
                format!("POST {path}"),
                browser.http.post(s.app.url(path)).form(&form),
            )
        }
    };
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (label, status, retry, res.text().await.unwrap())
}

#[tokio::test]
async fn with_the_database_unreachable_every_page_answers_503_with_retry_after() {
    let s = scene().await;
    let asks = pages(&s);
    // Before the fault every page answers without a server failure: the requests are real ones. (Only the GETs:
    // the forms would sign out, delete the app and so on; under the fault they change nothing.)
    for (signed_in, what) in asks.iter().filter(|(_, a)| matches!(a, Ask::Get(_))) {
        let (label, status, _, _) = ask(&s, *signed_in, what).await;
        assert!(status < 500, "{label} answered {status} before the fault");
    }
    s.store.close().await;
    for (signed_in, what) in &asks {
        let (label, status, retry, body) = ask(&s, *signed_in, what).await;
        assert_eq!(status, 503, "{label}: {body}");
        assert_eq!(retry.as_deref(), Some("5"), "{label}");
        assert!(body.contains("try again in 5 seconds"), "{label}: {body}");
    }
}

/// Drops `table` under the running server (a real fault: retrying does not cure it).
async fn drop_table(s: &Scene, table: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&s.app.db.url)
        .await
        .unwrap();
    sqlx::query(&format!("DROP TABLE {table}"))
        .execute(&mut conn)
        .await
        .unwrap();
}

fn assert_fault_page(label: &str, status: u16, retry: Option<String>, body: &str) {
    assert_eq!(status, 500, "{label}: {body}");
    assert_eq!(retry, None, "{label}");
    assert!(
        body.contains("Something went wrong on our side"),
        "{label}: {body}"
    );
    assert!(
        !body.contains("no such table"),
        "{label}: the cause is logged, never shown"
    );
}

#[tokio::test]
async fn with_a_table_gone_every_page_answers_a_500_page_without_the_cause() {
    // The table each page reads first: the session behind every signed-in page, the limits behind sign-in and
    // sign-up, the logos and the apps behind the pages that need no session.
    let s = scene().await;
    let asks = pages(&s);
    drop_table(&s, "sessions").await;
    drop_table(&s, "rate_limits").await;
    drop_table(&s, "client_logos").await;
    for (signed_in, what) in &asks {
        if matches!(what, Ask::Get(p) if p.starts_with("/sdk/relay")) {
            continue; // it reads only the app, dropped below
        }
        let (label, status, retry, body) = ask(&s, *signed_in, what).await;
        assert_fault_page(&label, status, retry, &body);
    }
    drop_table(&s, "clients").await;
    let relay = Ask::Get(format!("/sdk/relay/{}", s.client_id));
    let (label, status, retry, body) = ask(&s, false, &relay).await;
    assert_fault_page(&label, status, retry, &body);
}

/// Past the session, each page's own reads fail the same way: the pages a signed-in customer uses most, with
/// the table that only that page reads gone.
#[tokio::test]
async fn a_signed_in_pages_own_store_fault_is_a_500_page() {
    for (table, asks) in [
        ("consents", vec!["/account/apps", "/ap/adam"]),
        ("developers", vec!["/developer", "/developer/apps/new"]),
    ] {
        let s = scene().await;
        drop_table(&s, table).await;
        for path in asks {
            let (label, status, retry, body) = ask(&s, true, &Ask::Get(path.into())).await;
            assert_fault_page(&format!("{label} without {table}"), status, retry, &body);
        }
    }
    let s = scene().await;
    drop_table(&s, "device_codes").await;
    let code = Ask::Post("/code".into(), vec![("user_code", "BCDF-GHJK".into())]);
    let (label, status, retry, body) = ask(&s, true, &code).await;
    assert_fault_page(
        &format!("{label} without device_codes"),
        status,
        retry,
        &body,
    );
}
