//! The real-browser story (issue 5): the built `latchkey demo` (Latchkey plus the SDK sample site), headless
//! Chromium driven by playwright-core (`tests/browser/story.mjs`), and axe-core on every page. `.ci/run` installs
//! Chromium (Debian's package) and the npm packages; without them the test skips, except under `CI=true`.
//! With `LATCHKEY_TEST_SHOTS=dir` the story saves screenshots in `dir` (`docs/screenshots.sh` uses it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the story needs, or why it cannot run here.
fn prerequisites() -> Result<(PathBuf, PathBuf), String> {
    let chromium = PathBuf::from(
        std::env::var("LATCHKEY_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
    );
    if !chromium.exists() {
        return Err(format!("no Chromium at {}", chromium.display()));
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if !dir.join("node_modules/playwright-core").exists() {
        return Err(format!(
            "playwright-core is not installed: run `npm ci` in {}",
            dir.display()
        ));
    }
    Ok((chromium, dir))
}

#[tokio::test]
async fn a_customer_a_developer_and_the_sdk_sample_in_headless_chromium() {
    let (chromium, dir) = match prerequisites() {
        Ok(found) => found,
        Err(why) if crate::support::under_ci() => {
            panic!("the browser tests must run under CI=true: {why}")
        }
        Err(why) => {
            eprintln!("skipping: {why}");
            return;
        }
    };
    let data = tempfile::tempdir().unwrap();
    // The customer reads the codes Latchkey mails from a real SMTP server's deliveries.
    let Some(smtp) = crate::mailbox::SmtpSink::start() else {
        return;
    };
    let smtp_url = smtp.url();
    let (mut server, base, sample) =
        crate::demo::start_demo_with(data.path(), &[("LATCHKEY_SMTP_URL", &smtp_url)]).await;

    let mut story = tokio::process::Command::new("node");
    story
        .arg(dir.join("story.mjs"))
        .current_dir(&dir)
        .env("LK_BASE", &base)
        .env("LK_SAMPLE", &sample)
        .env("CHROMIUM", &chromium)
        .env("LK_MAILDIR", smtp.dir())
        .env_remove("LK_SHOTS")
        .kill_on_drop(true);
    // docs/screenshots.sh: the story also saves the README's screenshots there.
    if let Some(shots) = std::env::var_os("LATCHKEY_TEST_SHOTS") {
        story.env("LK_SHOTS", shots);
    }
    let story = story.output();
    let out = tokio::time::timeout(Duration::from_secs(180), story)
        .await
        .expect("the browser story finished in time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    server.kill().await.ok();
    assert!(
        out.status.success(),
        "the browser story failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("\"ok\":true"), "{stdout}");
    for step in [
        "registered",
        "signed in",
        "device pages",
        "app registered in the console",
        "sample site signed in",
        "sdk cookies read by the site server",
        "app removed",
        "refresh fails after removal",
        "sample site logged out",
        "signed out",
        "password reset",
    ] {
        assert!(
            stdout.contains(&format!("\"step\":\"{step}\"")),
            "missing step {step}:\n{stdout}"
        );
    }
}
