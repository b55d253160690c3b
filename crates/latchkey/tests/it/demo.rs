//! The README's first two walkthroughs as a newcomer runs them: the built `latchkey demo` (Latchkey and the demo
//! website), the demo site's own server-side code flow through Latchkey's real pages, and the example device
//! client `latchkey device-login` with its defaults (the demo TV app), approved on the `/code` pages.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::*;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_latchkey");
const DEMO_EMAIL: &str = "demo@example.com";
const DEMO_PASSWORD: &str = "latchkey-demo";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `latchkey demo` in a fresh data directory, up and answering; with Latchkey's and the demo site's base URLs.
pub async fn start_demo(data: &std::path::Path) -> (tokio::process::Child, String, String) {
    start_demo_with(data, &[]).await
}

/// [`start_demo`] with more environment (e.g. `LATCHKEY_SMTP_URL`).
pub async fn start_demo_with(
    data: &std::path::Path,
    env: &[(&str, &str)],
) -> (tokio::process::Child, String, String) {
    let (lk_port, site_port) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{lk_port}");
    let site = format!("http://127.0.0.1:{site_port}");
    let child = tokio::process::Command::new(BIN)
        .args(["demo", "--app-listen", &format!("127.0.0.1:{site_port}")])
        .env("LATCHKEY_DATA_DIR", data)
        .env("LATCHKEY_LISTEN", format!("127.0.0.1:{lk_port}"))
        .env("LATCHKEY_LOG_LEVEL", "warn")
        .env("LATCHKEY_PASSWORD_HASH_CONCURRENCY", "2")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = http_client();
    for _ in 0..150 {
        let lk = http.get(format!("{base}/healthz")).send().await;
        let up = http.get(format!("{site}/")).send().await;
        if lk.is_ok_and(|r| r.status().is_success()) && up.is_ok_and(|r| r.status().is_success()) {
            return (child, base, site);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("latchkey demo did not start");
}

/// The body of a page on the demo site, fetched with the browser's cookies.
async fn text_at(browser: &Browser, url: &str) -> String {
    browser
        .http
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_demo_site_signs_in_through_latchkey_and_shows_the_profile_and_tokeninfo() {
    let data = tempfile::tempdir().unwrap();
    let (mut demo, base, site) = start_demo(data.path()).await;
    // One cookie jar for both origins, as a browser has (cookies are per host, not per port).
    let browser = Browser::new(&base);
    let home = text_at(&browser, &format!("{site}/")).await;
    assert!(home.contains("Login with Latchkey"), "{home}");
    let login = browser
        .http
        .get(format!("{site}/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    let authorize = login.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        authorize.starts_with(&format!("{base}/ap/oa?")),
        "{authorize}"
    );
    assert!(
        authorize.contains("code_challenge_method=S256"),
        "{authorize}"
    );

    let step = browser.open(&authorize).await;
    let step = browser.sign_in_on(step, DEMO_EMAIL, DEMO_PASSWORD).await;
    let back = browser.consent_on(step, true, &[]).await.left_to();
    assert!(
        back.as_str().starts_with(&format!("{site}/callback?")),
        "{back}"
    );

    let page = text_at(&browser, back.as_str()).await;
    assert!(page.contains("Signed in"), "{page}");
    assert!(
        page.contains("Demo Customer") && page.contains(DEMO_EMAIL),
        "{page}"
    );
    assert!(
        page.contains("lk1.account."),
        "the pairwise user_id is shown:\n{page}"
    );
    assert!(
        page.contains("&#34;aud&#34;: &#34;lk1.application-oa2-client."),
        "tokeninfo is shown:\n{page}"
    );
    demo.kill().await.ok();
}

#[tokio::test]
async fn device_login_with_its_defaults_prints_the_profile_once_the_code_is_approved() {
    let data = tempfile::tempdir().unwrap();
    let (mut demo, base, _) = start_demo(data.path()).await;
    let mut device = tokio::process::Command::new(BIN)
        .args(["device-login", "--issuer", &base])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(device.stdout.take().unwrap());
    let mut shown = String::new();
    let code = loop {
        let mut line = String::new();
        let read = tokio::time::timeout(Duration::from_secs(10), out.read_line(&mut line))
            .await
            .expect("device-login printed its code in time")
            .unwrap();
        assert!(
            read > 0,
            "device-login ended before printing a code:\n{shown}"
        );
        shown.push_str(&line);
        if let Some(code) = line
            .split_whitespace()
            .find(|w| w.len() == 9 && w.as_bytes()[4] == b'-')
        {
            break code.to_owned();
        }
    };
    assert!(shown.contains(&format!("{base}/code")), "{shown}");

    let browser = Browser::new(&base);
    browser.sign_in(DEMO_EMAIL, DEMO_PASSWORD).await.page();
    let (_, url, html) = browser.open("/code").await.page();
    let (status, url, html) = browser
        .submit(
            &url,
            &html,
            "/code",
            &[("user_code", &code.to_lowercase())],
            None,
            &[],
        )
        .await
        .page();
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Is this your device?"), "{html}");
    assert!(html.contains("Latchkey Demo TV"), "{html}");
    let (status, _, done) = browser
        .submit(
            &url,
            &html,
            "/code/confirm",
            &[],
            Some(("decision", "allow")),
            &[],
        )
        .await
        .page();
    assert_eq!(status, 200);
    assert!(done.contains("Go back to your device"), "{done}");

    // The device polls every 5 s; it prints the profile and exits 0.
    let mut rest = String::new();
    tokio::time::timeout(Duration::from_secs(30), out.read_to_string(&mut rest))
        .await
        .expect("device-login finished in time")
        .unwrap();
    let status = device.wait().await.unwrap();
    assert!(status.success(), "device-login failed:\n{shown}{rest}");
    assert!(rest.contains("Signed in"), "{rest}");
    assert!(
        rest.contains("Demo Customer") && rest.contains(DEMO_EMAIL),
        "{rest}"
    );
    demo.kill().await.ok();
}

/// `latchkey demo` seeds a customer with a public password: it refuses a database that already holds accounts it
/// did not make, and leaves it untouched.
#[tokio::test]
async fn the_demo_refuses_a_database_that_holds_other_accounts() {
    let data = tempfile::tempdir().unwrap();
    let mut add = std::process::Command::new(BIN)
        .args([
            "user",
            "add",
            "--email",
            "real@example.com",
            "--name",
            "Real Customer",
            "--password-stdin",
        ])
        .env("LATCHKEY_DATA_DIR", data.path())
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    add.stdin
        .take()
        .unwrap()
        .write_all(b"a real customer's password\n")
        .unwrap();
    assert!(add.wait().unwrap().success());
    let out = std::process::Command::new(BIN)
        .args([
            "demo",
            "--app-listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .env("LATCHKEY_DATA_DIR", data.path())
        .env("LATCHKEY_LISTEN", format!("127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already holds accounts"), "{stderr}");
    let list = std::process::Command::new(BIN)
        .args(["user", "list", "--json"])
        .env("LATCHKEY_DATA_DIR", data.path())
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(listed.contains("real@example.com"), "{listed}");
    assert!(!listed.contains(DEMO_EMAIL), "{listed}");
}
