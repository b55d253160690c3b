//! Outgoing mail (SPEC 2.8): composed here, queued durably in the store ([`MailStore`]) before the page that caused
//! it answers, and delivered by a sender every node runs ([`spawn_sender`]): through SMTP (`smtp_url`, with
//! lettre), or with no `smtp_url` into `<data_dir>/outbox/` as `.eml` files. A page never waits for a mail server.
//! A failed attempt is tried again with jittered, growing back-off for a day; a mail that still cannot be sent,
//! or that the server refuses for good, is given up on: counted in `latchkey_mails_total{outcome="failed"}` and
//! logged at `error`. Queued messages are sealed under the master key (they may carry a code); logs name a mail by
//! its id and kind, never its text.

use crate::config::{check_smtp_url, Config};
use crate::metrics::OutcomeLabels;
use crate::seal::{MasterKey, Row};
use crate::store::{ClaimedMail, QueuedMail, Store, StoreError, StoreResult};
use latchkey_core::Timestamp;
use lettre::address::Envelope;
use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rand::Rng;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How long a sender holds a claimed mail before another may take it (a sender that died mid-send).
const LEASE_SECS: i64 = 120;
/// How long a mail is tried before it is given up on.
const GIVE_UP_AFTER_SECS: i64 = 86_400;
/// The first retry's delay; each further one doubles, up to [`MAX_RETRY_SECS`].
const FIRST_RETRY_SECS: i64 = 2;
const MAX_RETRY_SECS: i64 = 600;
/// How often an idle sender looks for mail another node queued, or a retry that came due.
const POLL: Duration = Duration::from_secs(5);
/// One SMTP conversation at most.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Where this node delivers mail.
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(PathBuf),
}

/// What the sender needs: where mail goes, who it is from, and a bell that rings when a mail was queued here.
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    operator: String,
    issuer: String,
    queued: Notify,
}

impl Mailer {
    pub fn new(config: &Config) -> Result<Mailer, String> {
        let transport = match &config.smtp_url {
            Some(url) => {
                check_smtp_url(url.expose())?;
                Transport::Smtp(
                    AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                        .map_err(|e| format!("smtp_url is not a usable SMTP URL: {e}"))?
                        .timeout(Some(SMTP_TIMEOUT))
                        .build(),
                )
            }
            None => Transport::Outbox(config.data_dir.join("outbox")),
        };
        Ok(Mailer {
            transport,
            from: config.mail_from()?,
            operator: config.operator_name(),
            issuer: config.issuer(),
            queued: Notify::new(),
        })
    }

    /// The outbox directory, when mail is written there instead of sent.
    pub fn outbox(&self) -> Option<&std::path::Path> {
        match &self.transport {
            Transport::Outbox(dir) => Some(dir),
            Transport::Smtp(_) => None,
        }
    }
}

/// A mail to one customer: some paragraphs, then perhaps a code and a link, then some more. Plain text plus the
/// same as simple HTML; no images, no tracking.
pub struct Mail {
    pub to: String,
    /// What it is, for logs and metrics: `verify`, `reset`, `signup_attempt`, ….
    pub kind: &'static str,
    pub subject: String,
    pub before: Vec<String>,
    /// A one-time code, shown large.
    pub code: Option<String>,
    /// A link with the same effect as the code, and what to call it.
    pub link: Option<(String, String)>,
    pub after: Vec<String>,
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

impl Mail {
    fn footer(&self, mailer: &Mailer) -> String {
        format!(
            "Sent by {} ({}), which runs the sign-in you use with {}. You get this mail because of something done \
             with your account there; you cannot unsubscribe from it.",
            mailer.operator, mailer.issuer, mailer.operator
        )
    }

    fn text(&self, mailer: &Mailer) -> String {
        let mut parts: Vec<String> = self.before.clone();
        if let Some(code) = &self.code {
            parts.push(format!("    {code}"));
        }
        if let Some((label, url)) = &self.link {
            parts.push(format!("{label}:\n{url}"));
        }
        parts.extend(self.after.iter().cloned());
        parts.push(format!("-- \n{}", self.footer(mailer)));
        parts.join("\n\n") + "\n"
    }

    fn html(&self, mailer: &Mailer) -> String {
        let mut body = String::new();
        for p in &self.before {
            body.push_str(&format!("<p>{}</p>\n", escape(p)));
        }
        if let Some(code) = &self.code {
            body.push_str(&format!(
                "<p style=\"font-size:28px;letter-spacing:6px;font-family:monospace\"><strong>{}</strong></p>\n",
                escape(code)
            ));
        }
        if let Some((label, url)) = &self.link {
            body.push_str(&format!(
                "<p><a href=\"{}\">{}</a></p>\n",
                escape(url),
                escape(label)
            ));
        }
        for p in &self.after {
            body.push_str(&format!("<p>{}</p>\n", escape(p)));
        }
        format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\n\
             <body style=\"font-family:sans-serif;max-width:36em\">\n{body}<hr>\n<p style=\"color:#555;font-size:13px\">{}</p>\n\
             </body></html>\n",
            escape(&self.subject),
            escape(&self.footer(mailer))
        )
    }
}

/// What queueing and sending need of the application: the store, the master key (queued messages are sealed
/// under it, so a copy of the database cannot read a code a mail carries), where mail goes, the delivery counter
/// and the clock. `App` builds it once ([`crate::app::App::mail`]).
#[derive(Clone)]
pub struct Outbound {
    pub store: Arc<dyn Store>,
    pub master: MasterKey,
    pub mailer: Arc<Mailer>,
    pub counter: Family<OutcomeLabels, Counter>,
    pub now: Arc<dyn Fn() -> Timestamp + Send + Sync>,
}

impl Outbound {
    /// Queues `mail` durably (committed when this returns) and wakes this node's sender.
    pub async fn queue(&self, mail: Mail) -> StoreResult<()> {
        let mailer = &self.mailer;
        let to: Mailbox = mail.to.parse().map_err(|e| {
            StoreError::Corrupt(format!("a mail's recipient is not an address: {e}"))
        })?;
        let message = lettre::Message::builder()
            .from(mailer.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(mail.text(mailer)),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(mail.html(mailer)),
                    ),
            )
            .map_err(|e| StoreError::Corrupt(format!("a mail could not be built: {e}")))?;
        let id = latchkey_core::ids::new_internal_id(&mut rand::thread_rng());
        let sealed = self
            .master
            .seal(Row::Mail(&id), &message.formatted())
            .map_err(StoreError::Corrupt)?;
        self.store
            .enqueue_mail(&QueuedMail {
                id: id.clone(),
                recipient: mail.to.clone(),
                kind: mail.kind.to_owned(),
                sealed_message: sealed,
                created_at: (self.now)(),
            })
            .await?;
        tracing::info!(mail = %id, kind = mail.kind, "mail queued");
        mailer.queued.notify_one();
        Ok(())
    }

    fn count(&self, outcome: &'static str) {
        self.counter.get_or_create(&OutcomeLabels { outcome }).inc();
    }
}

/// Why one delivery attempt failed, and whether trying again can help.
struct Undelivered {
    error: String,
    permanent: bool,
}

async fn deliver(out: &Outbound, mail: &ClaimedMail) -> Result<Option<PathBuf>, Undelivered> {
    let mailer = &out.mailer;
    let message = out
        .master
        .open(Row::Mail(&mail.id), &mail.sealed_message)
        .map_err(|e| Undelivered {
            error: format!("the queued message does not open with this node's master key ({e})"),
            permanent: false,
        })?;
    match &mailer.transport {
        Transport::Smtp(smtp) => {
            let to = mail.recipient.parse().map_err(|e| Undelivered {
                error: format!("the recipient is not an address: {e}"),
                permanent: true,
            })?;
            let envelope =
                Envelope::new(Some(mailer.from.email.clone()), vec![to]).map_err(|e| {
                    Undelivered {
                        error: format!("no envelope: {e}"),
                        permanent: true,
                    }
                })?;
            smtp.send_raw(&envelope, &message)
                .await
                .map(|_| None)
                .map_err(|e| Undelivered {
                    permanent: e.is_permanent(),
                    error: e.to_string(),
                })
        }
        Transport::Outbox(dir) => write_outbox(dir, mail, &message)
            .await
            .map(Some)
            .map_err(|e| Undelivered {
                error: format!("cannot write to the outbox {}: {e}", dir.display()),
                permanent: false,
            }),
    }
}

/// Writes the message as `<dir>/<created>-<id>.eml`, readable by the operator only, whole or not at all.
async fn write_outbox(
    dir: &std::path::Path,
    mail: &ClaimedMail,
    message: &[u8],
) -> std::io::Result<PathBuf> {
    tokio::fs::create_dir_all(dir).await?;
    let path = dir.join(format!("{}-{}.eml", mail.created_at, mail.id));
    let partial = dir.join(format!(".{}.partial", mail.id));
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(&partial).await?;
    tokio::io::AsyncWriteExt::write_all(&mut file, message).await?;
    file.sync_all().await?;
    drop(file);
    tokio::fs::rename(&partial, &path).await?;
    Ok(path)
}

/// When a mail that failed its `attempts`-th attempt is tried again, or `None` to give up.
fn retry_at(mail: &ClaimedMail, now: Timestamp, permanent: bool) -> Option<Timestamp> {
    if permanent || now - mail.created_at >= GIVE_UP_AFTER_SECS {
        return None;
    }
    let doublings = u32::try_from(mail.attempts.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(16);
    let delay = FIRST_RETRY_SECS
        .saturating_mul(1_i64 << doublings)
        .min(MAX_RETRY_SECS);
    // Up to a quarter later, so that mails failed together do not all come back together.
    let jitter = rand::thread_rng().gen_range(0..=delay / 4);
    Some(now + delay + jitter)
}

/// Sends one due mail, if there is one; whether there was.
pub async fn send_one(out: &Outbound) -> StoreResult<bool> {
    let now = (out.now)();
    let Some(mail) = out.store.claim_mail(now, LEASE_SECS).await? else {
        return Ok(false);
    };
    match deliver(out, &mail).await {
        Ok(outbox) => {
            out.store.mail_sent(&mail.id).await?;
            out.count("sent");
            match outbox {
                Some(path) => tracing::info!(
                    mail = %mail.id, kind = %mail.kind, path = %path.display(),
                    "no smtp_url: mail written to the outbox"
                ),
                None => tracing::info!(mail = %mail.id, kind = %mail.kind, "mail sent"),
            }
        }
        Err(failed) => {
            let now = (out.now)();
            let retry = retry_at(&mail, now, failed.permanent);
            out.store
                .mail_failed(&mail.id, &failed.error, retry, now)
                .await?;
            match retry {
                Some(at) => {
                    out.count("retry");
                    tracing::warn!(
                        mail = %mail.id, kind = %mail.kind, attempt = mail.attempts, retry_in = at - now,
                        error = %failed.error, "mail not sent; it will be tried again"
                    );
                }
                None => {
                    out.count("failed");
                    tracing::error!(
                        mail = %mail.id, kind = %mail.kind, attempts = mail.attempts, error = %failed.error,
                        "mail could not be sent and is given up on"
                    );
                }
            }
        }
    }
    Ok(true)
}

/// Runs this node's sender until the runtime ends: sends what is due, then waits for a mail queued here or for
/// the next look at the queue (another node's mail, a retry come due).
pub fn spawn_sender(out: Outbound) {
    if let Some(dir) = out.mailer.outbox() {
        tracing::info!(
            outbox = %dir.display(),
            "no smtp_url is set: mails are written to the outbox directory instead of sent"
        );
    }
    tokio::spawn(async move {
        loop {
            match send_one(&out).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "the mail queue could not be read"),
            }
            tokio::select! {
                _ = out.mailer.queued.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimed(attempts: i64, created_at: Timestamp) -> ClaimedMail {
        ClaimedMail {
            id: "m".into(),
            recipient: "ada@example.com".into(),
            kind: "verify".into(),
            sealed_message: Vec::new(),
            attempts,
            created_at,
        }
    }

    #[test]
    fn retries_back_off_with_jitter_and_stop_after_a_day_or_a_permanent_refusal() {
        let now = 1_000_000;
        for (attempts, base) in [(1, 2), (2, 4), (3, 8), (9, 512), (10, 600), (40, 600)] {
            let at = retry_at(&claimed(attempts, now - 10), now, false).unwrap();
            assert!(
                (now + base..=now + base + base / 4).contains(&at),
                "attempt {attempts}: {}",
                at - now
            );
        }
        assert_eq!(retry_at(&claimed(1, now), now, true), None);
        assert_eq!(
            retry_at(&claimed(3, now - GIVE_UP_AFTER_SECS), now, false),
            None
        );
    }

    #[test]
    fn smtp_urls_are_checked_without_being_repeated() {
        for ok in [
            "smtp://127.0.0.1:2525",
            "smtp://mail.example.com:587?tls=required",
            "smtps://user:secret@mail.example.com",
        ] {
            assert!(check_smtp_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://mail.example.com",
            "mail.example.com:25",
            "smtp://user:hunter2@",
        ] {
            let e = check_smtp_url(bad).unwrap_err();
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn html_escapes_what_it_shows() {
        let config = Config::default();
        let mailer = Mailer::new(&config).unwrap();
        let mail = Mail {
            to: "a@example.com".into(),
            kind: "verify",
            subject: "<b>".into(),
            before: vec!["Hi <script>".into()],
            code: Some("123456".into()),
            link: Some(("Open".into(), "https://x.example/?a=1&b=2".into())),
            after: vec![],
        };
        let html = mail.html(&mailer);
        assert!(html.contains("Hi &lt;script&gt;"));
        assert!(html.contains("href=\"https://x.example/?a=1&amp;b=2\""));
        let text = mail.text(&mailer);
        assert!(text.contains("    123456"));
        assert!(text.contains("https://x.example/?a=1&b=2"));
        assert!(text.contains("Sent by 127.0.0.1"));
    }
}
