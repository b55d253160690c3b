//! A real SMTP server for the tests: Python's aiosmtpd (pinned in tests/oidc/requirements.txt, installed by
//! `.ci/run`), run by tests/smtp/sink.py, which writes every message it accepts as JSON into a directory the test
//! reads. Tests read codes and links from the delivered mail, as a customer reads them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::*;
use latchkey::config::SecretSetting;
use serde::Deserialize;
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One delivered message, as the server received it.
#[derive(Debug, Clone, Deserialize)]
pub struct Delivered {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub from: String,
    pub to: String,
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    pub raw: String,
}

impl Delivered {
    /// The plain-text body.
    pub fn text(&self) -> &str {
        self.text
            .as_deref()
            .expect("the mail has a text/plain part")
    }

    /// The 6-digit code in the text, if there is one (on a line of its own).
    pub fn code(&self) -> Option<String> {
        self.text().lines().map(str::trim).find_map(|l| {
            (l.len() == 6 && l.bytes().all(|b| b.is_ascii_digit())).then(|| l.to_owned())
        })
    }

    /// The first link in the text that starts with `base`.
    pub fn link(&self, base: &str) -> Option<String> {
        self.text()
            .split_whitespace()
            .find(|w| w.starts_with(base))
            .map(str::to_owned)
    }
}

/// aiosmtpd listening on 127.0.0.1; killed when dropped.
pub struct SmtpSink {
    child: std::process::Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> String {
    std::env::var("LATCHKEY_TEST_PYTHON").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/latchkey-venv/bin/python")
    })
}

impl SmtpSink {
    /// Starts the server on a free port, or `None` (after saying why) when aiosmtpd is not installed here. Under
    /// `CI=true` that fails the test instead: CI must deliver real mail.
    pub fn start() -> Option<SmtpSink> {
        Self::start_on(0)
    }

    /// [`SmtpSink::start`] on a given port (a server that comes up where Latchkey already tries to send).
    pub fn start_on(port: u16) -> Option<SmtpSink> {
        let dir = tempfile::tempdir().unwrap();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/sink.py");
        let spawned = std::process::Command::new(python())
            .arg(&script)
            .arg("--dir")
            .arg(dir.path())
            .arg("--port")
            .arg(port.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => return unavailable(format!("{} cannot be run: {e}", python())),
        };
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let Some(port) = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
        else {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            return unavailable(format!(
                "the SMTP sink did not start: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        };
        Some(SmtpSink { child, dir, port })
    }

    /// Where the delivered messages are written (`<n>.json`), for a test in another language to read.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The `smtp_url` that delivers here.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message delivered so far, oldest first.
    pub fn all(&self) -> Vec<Delivered> {
        let mut names: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }

    /// The messages delivered to `to` so far, oldest first.
    pub fn to(&self, to: &str) -> Vec<Delivered> {
        self.all()
            .into_iter()
            .filter(|m| m.rcpt_tos.iter().any(|r| r.eq_ignore_ascii_case(to)))
            .collect()
    }

    /// Waits (up to `within`) until `n` messages have come to `to`, and returns the `n`th.
    pub async fn nth_to_within(&self, to: &str, n: usize, within: Duration) -> Delivered {
        let deadline = Instant::now() + within;
        loop {
            let mails = self.to(to);
            if mails.len() >= n {
                return mails[n - 1].clone();
            }
            assert!(
                Instant::now() < deadline,
                "mail #{n} to {to} did not arrive within {within:?}; delivered: {:#?}",
                self.all()
                    .iter()
                    .map(|m| (&m.rcpt_tos, &m.subject))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The `n`th message to `to` (1-based), waiting up to 15 s for it.
    pub async fn nth_to(&self, to: &str, n: usize) -> Delivered {
        self.nth_to_within(to, n, Duration::from_secs(15)).await
    }
}

fn unavailable(problem: String) -> Option<SmtpSink> {
    if under_ci() {
        panic!(
            "the SMTP server (aiosmtpd) is required under CI=true, but {problem}. .ci/run creates the virtualenv \
             (pip install -r crates/latchkey/tests/oidc/requirements.txt) and sets LATCHKEY_TEST_PYTHON."
        );
    }
    eprintln!("skipping: {problem} (run .ci/run once, or set LATCHKEY_TEST_PYTHON)");
    None
}

/// A server on a fresh SQLite database whose mail goes to `smtp`.
pub async fn spawn_app_mailing(smtp: &SmtpSink) -> TestApp {
    spawn_app_mailing_on(Arc::new(sqlite_db()), smtp).await
}

/// A server on `db` whose mail goes to `smtp`.
pub async fn spawn_app_mailing_on(db: Arc<TestDb>, smtp: &SmtpSink) -> TestApp {
    let url = smtp.url();
    spawn_app_with(db, move |c| c.smtp_url = Some(SecretSetting::new(url))).await
}
