//! Outgoing mail (SPEC 2.8): queued durably, delivered by the sender to a real SMTP server (aiosmtpd), or with no
//! `smtp_url` into `<data_dir>/outbox/`; plain text plus simple HTML that names the operator; never a code in the
//! database in the clear.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::mailbox::*;
use crate::support::*;
use latchkey::mail::Mail;
use std::sync::Arc;

fn sample(to: &str) -> Mail {
    Mail {
        to: to.to_owned(),
        kind: "verify",
        subject: "Your code".into(),
        before: vec!["Enter this code to verify your address:".into()],
        code: Some("482913".into()),
        link: Some((
            "Or open this link".into(),
            "http://127.0.0.1/ap/verify?link=abc".into(),
        )),
        after: vec!["It works for 15 minutes.".into()],
    }
}

#[tokio::test]
async fn a_queued_mail_is_delivered_over_smtp_as_text_and_html_from_the_operator() {
    let Some(smtp) = SmtpSink::start() else {
        return;
    };
    let app = spawn_app_mailing(&smtp).await;
    app.state
        .queue_mail(sample("ada@example.com"))
        .await
        .unwrap();
    let got = smtp.nth_to("ada@example.com", 1).await;
    assert_eq!(got.subject, "Your code");
    assert_eq!(got.rcpt_tos, vec!["ada@example.com".to_owned()]);
    assert_eq!(got.to, "ada@example.com");
    assert_eq!(got.code().as_deref(), Some("482913"));
    assert!(got.from.contains("no-reply@"), "{}", got.from);
    assert!(got.mail_from.starts_with("no-reply@"), "{}", got.mail_from);
    assert_eq!(
        got.link("http://127.0.0.1/").as_deref(),
        Some("http://127.0.0.1/ap/verify?link=abc")
    );
    assert!(got.raw.contains("multipart/alternative"));
    assert!(got.text().contains("Sent by 127.0.0.1"), "{}", got.text());
    let html = got.html.as_deref().unwrap();
    assert!(html.contains("<strong>482913</strong>"), "{html}");
    assert!(!html.contains("<img"), "no images, no tracking: {html}");
    // Delivered mail leaves the queue.
    for _ in 0..50 {
        if app.store().mail_backlog().await.unwrap() == (0, 0) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the queue still holds the delivered mail");
}

#[tokio::test]
async fn with_no_smtp_url_mail_is_written_to_the_outbox_and_the_queue_holds_no_code_in_the_clear() {
    let data = tempfile::tempdir().unwrap();
    let outbox = data.path().join("outbox");
    let dir = data.path().to_owned();
    let app = spawn_app_with(Arc::new(sqlite_db()), move |c| c.data_dir = dir).await;
    // Queued while the sender is busy elsewhere: look at the stored row before it goes.
    app.state
        .queue_mail(sample("bob@example.com"))
        .await
        .unwrap();
    let mut files = Vec::new();
    for _ in 0..200 {
        files = std::fs::read_dir(&outbox)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        if !files.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(files.len(), 1, "{files:?}");
    let path = &files[0];
    assert_eq!(path.extension().unwrap(), "eml");
    let eml = std::fs::read_to_string(path).unwrap();
    assert!(eml.contains("To: bob@example.com"), "{eml}");
    assert!(eml.contains("482913"), "{eml}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "only the operator reads mail");
    }
}

#[tokio::test]
async fn a_queued_message_is_sealed_so_the_database_never_holds_its_code() {
    // Nothing listens on this port: the mail stays queued, and the row is what a database copy would show.
    let port = free_port();
    let app = spawn_app_with(Arc::new(sqlite_db()), move |c| {
        c.smtp_url = Some(latchkey::config::SecretSetting::new(format!(
            "smtp://127.0.0.1:{port}"
        )))
    })
    .await;
    app.state
        .queue_mail(sample("carol@example.com"))
        .await
        .unwrap();
    let rows: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT message FROM mail_queue")
        .fetch_all(&sqlite_pool(&app).await)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let stored = String::from_utf8_lossy(&rows[0].0);
    assert!(!stored.contains("482913"), "the code is sealed");
    assert!(!stored.contains("Your code"));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain connection to the app's SQLite file, as someone holding a copy of the database would read it.
async fn sqlite_pool(app: &TestApp) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&app.db.url).await.unwrap()
}

#[tokio::test]
async fn a_mail_server_that_is_down_at_send_time_gets_the_mail_once_it_is_up() {
    let port = free_port();
    let app = spawn_app_with(Arc::new(sqlite_db()), move |c| {
        c.smtp_url = Some(latchkey::config::SecretSetting::new(format!(
            "smtp://127.0.0.1:{port}"
        )))
    })
    .await;
    app.state
        .queue_mail(sample("dan@example.com"))
        .await
        .unwrap();
    // The first attempt fails (nothing listens) and is counted as a retry, with the mail kept queued.
    let mut retried = false;
    for _ in 0..200 {
        if app
            .state
            .metrics
            .render()
            .contains("latchkey_mails_total{outcome=\"retry\"} 1")
        {
            retried = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(retried, "{}", app.state.metrics.render());
    assert_eq!(app.store().mail_backlog().await.unwrap(), (1, 0));
    let Some(smtp) = SmtpSink::start_on(port) else {
        return;
    };
    let got = smtp
        .nth_to_within("dan@example.com", 1, std::time::Duration::from_secs(30))
        .await;
    assert_eq!(got.code().as_deref(), Some("482913"));
    assert!(app
        .state
        .metrics
        .render()
        .contains("latchkey_mails_total{outcome=\"sent\"} 1"));
}
