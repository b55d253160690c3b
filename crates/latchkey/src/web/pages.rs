//! Server-rendered pages: one struct per template (askama checks them at compile time), and the helpers that
//! turn them into responses.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use latchkey_core::client::{ClientKind, Feature};

#[derive(Template)]
#[template(path = "home.html")]
pub struct Home {
    pub user_name: Option<String>,
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "signin.html")]
pub struct SignIn {
    pub csrf: String,
    pub return_to: String,
    pub return_to_q: String,
    pub email: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "register.html")]
pub struct Register {
    pub csrf: String,
    pub return_to: String,
    pub return_to_q: String,
    pub name: String,
    pub email: String,
    pub postal_code: String,
    pub error: Option<String>,
}

/// One line of the consent page: plain data the flows build (`flows::authorize`).
pub use crate::flows::authorize::ConsentItem;

#[derive(Template)]
#[template(path = "consent.html")]
pub struct Consent {
    /// "Continue to <app>?": the customer allowed it before (or it asks for nothing that needs consent), but its
    /// return URL cannot prove it is that app (RFC 8252 8.6).
    pub confirm: bool,
    /// Who has not verified the app, if it is unverified (a profile made in the developer console).
    pub unverified_by: Option<String>,
    pub app_name: String,
    /// The app's logo, served by Latchkey (`flows::logo`): never a developer's URL.
    pub logo: Option<String>,
    pub privacy_url: String,
    pub user_email: String,
    pub csrf: String,
    /// The original authorization query string, re-validated when the form comes back.
    pub request: String,
    /// Binds the decision to the session that saw this page.
    pub consent_token: String,
    pub items: Vec<ConsentItem>,
}

/// An unverified app's error, shown instead of redirected (RFC 9700 4.11.2): the customer decides whether to
/// follow the link.
#[derive(Template)]
#[template(path = "redirect_notice.html")]
pub struct RedirectNotice {
    pub app_name: String,
    pub operator: String,
    /// The error in words, completing "<app> sent you here, but …".
    pub what_happened: &'static str,
    pub code: &'static str,
    pub description: String,
    /// The return URL's host (and port), or a native app's scheme.
    pub destination: String,
    /// The exact error redirect.
    pub location: String,
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct Message {
    pub title: String,
    pub paragraphs: Vec<String>,
    pub signout_csrf: Option<String>,
}

/// Renders a page with a status.
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be shown.",
            )
                .into_response()
        }
    }
}

/// A page that explains something (an error, a result).
pub fn message(status: StatusCode, title: &str, paragraphs: &[&str]) -> Response {
    render(
        status,
        &Message {
            title: title.into(),
            paragraphs: paragraphs.iter().map(|p| p.to_string()).collect(),
            signout_csrf: None,
        },
    )
}

/// A page past an abuse limit (SPEC 4): 429, with `Retry-After` of `wait` seconds.
pub fn too_many(title: &str, paragraph: &str, wait: i64) -> Response {
    let mut res = message(StatusCode::TOO_MANY_REQUESTS, title, &[paragraph]);
    res.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from(wait),
    );
    res
}

/// The page shown when storage fails.
pub fn unavailable() -> Response {
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Latchkey is having trouble",
        &["Something went wrong on our side. Please try again in a moment."],
    )
}

/// The page shown when the server is too busy to take the request now (503); nothing was done.
pub fn busy(retry_after_secs: u32) -> Response {
    let wait = format!(
        "Latchkey is very busy right now, so nothing was done. Please try again in {retry_after_secs} seconds."
    );
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Latchkey is busy",
        &[&wait],
    )
}

#[derive(Template)]
#[template(path = "code_entry.html")]
pub struct CodeEntry {
    pub csrf: String,
    pub user_email: String,
    /// What the customer typed (or what `verification_uri_complete` carried).
    pub user_code: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "code_confirm.html")]
pub struct CodeConfirm {
    /// Who has not verified the app, if it is unverified.
    pub unverified_by: Option<String>,
    pub app_name: String,
    /// The app's logo, served by Latchkey (`flows::logo`): never a developer's URL.
    pub logo: Option<String>,
    pub privacy_url: String,
    pub user_email: String,
    pub csrf: String,
    /// The canonical user code, carried to the confirmation.
    pub user_code: String,
    pub user_code_shown: String,
    /// Binds the answer to the session that saw this page and to this code.
    pub confirm_token: String,
    pub items: Vec<ConsentItem>,
}

/// A time as people read it, in UTC: `5 May 2024, 14:03 UTC`.
pub fn utc(ts: i64) -> String {
    // Days to a civil date (Howard Hinnant's algorithm, proleptic Gregorian calendar).
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let name = usize::try_from(month - 1)
        .ok()
        .and_then(|m| MONTHS.get(m))
        .copied()
        .unwrap_or("?");
    format!(
        "{day} {name} {year}, {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

/// One app on the "Apps and websites you've allowed" page.
pub struct AllowedApp {
    pub client_id: String,
    pub name: String,
    /// The app's logo, served by Latchkey (`flows::logo`).
    pub logo: Option<String>,
    pub privacy_url: String,
    pub items: Vec<ConsentItem>,
    /// When the customer first allowed it.
    pub since: String,
    /// When the customer last allowed it more, if later.
    pub changed: Option<String>,
}

#[derive(Template)]
#[template(path = "apps.html")]
pub struct AllowedApps {
    /// `/ap/adam` or `/account/apps`: the page posts back to where it was opened.
    pub path: &'static str,
    pub csrf: String,
    pub user_email: String,
    pub notice: Option<String>,
    pub apps: Vec<AllowedApp>,
}

/// One signed-in session on the account page.
pub struct SessionRow {
    /// A MAC of the session's stored hash, naming it in the sign-out form.
    pub handle: String,
    pub started: String,
    pub expires: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountSettings {
    pub csrf: String,
    pub notice: Option<&'static str>,
    pub name: String,
    pub email: String,
    pub email_verified: bool,
    pub postal_code: String,
    pub profile_error: Option<String>,
    pub password_error: Option<String>,
    pub delete_error: Option<String>,
    pub email_error: Option<String>,
    pub sessions: Vec<SessionRow>,
    /// Recent security activity, newest first.
    pub activity: Vec<ActivityRow>,
}

/// One security event on the account page.
pub struct ActivityRow {
    pub at: String,
    pub what: String,
    pub ip: String,
    pub browser: String,
}

#[cfg(test)]
mod tests {
    use super::{duration_words, utc};

    #[test]
    fn durations_read_in_rounded_units() {
        for (secs, words) in [
            (3600, "about 60 minutes"),
            (3590, "about 60 minutes"),
            (3500, "about 58 minutes"),
            (119, "less than 2 minutes"),
            (86_400, "about 24 hours"),
            (7 * 86_400 - 5, "about 7 days"),
        ] {
            assert_eq!(duration_words(secs), words, "{secs}");
        }
    }

    #[test]
    fn times_read_as_utc_dates() {
        assert_eq!(utc(0), "1 January 1970, 00:00 UTC");
        assert_eq!(utc(1_700_000_000), "14 November 2023, 22:13 UTC");
        assert_eq!(utc(951_782_400), "29 February 2000, 00:00 UTC");
        assert_eq!(utc(-1), "31 December 1969, 23:59 UTC");
    }
}
/// One security profile as the console lists it.
pub struct AppRow {
    pub client_id: String,
    pub name: String,
    /// "Confidential" or "Public".
    pub kind: &'static str,
    /// The app's page in the console.
    pub path: String,
    /// The operator verified it (`latchkey client verify`).
    pub verified: bool,
}

impl AppRow {
    pub fn of(c: &crate::store::Client) -> AppRow {
        AppRow {
            client_id: c.policy.client_id.clone(),
            name: c.name.clone(),
            kind: match c.policy.kind {
                ClientKind::Confidential => "Confidential",
                ClientKind::Public => "Public",
            },
            path: format!("/developer/apps/{}", c.policy.client_id),
            verified: c.verified,
        }
    }
}

/// Everything the console shows about one security profile (never its secret).
pub struct AppSummary {
    pub row: AppRow,
    pub app_id: String,
    pub description: String,
    pub privacy_url: String,
    /// Where Latchkey serves its logo, if it has one.
    pub logo: Option<String>,
    pub confidential: bool,
    pub redirect_uris: Vec<String>,
    pub allowed_origins: Vec<String>,
    /// The flows it enabled, in words.
    pub flows: Vec<&'static str>,
    pub id_token_alg: &'static str,
    pub development: bool,
    /// Until when a rotated-out secret is still accepted, in words, if one is.
    pub previous_secret: Option<String>,
}

/// "about N units", rounded to the nearest unit (a grace period of an hour, a second later, is still "about 60
/// minutes").
fn duration_words(secs: i64) -> String {
    let about = |unit: i64| (secs + unit / 2) / unit;
    match secs {
        s if s >= 2 * 86_400 => format!("about {} days", about(86_400)),
        s if s >= 2 * 3600 => format!("about {} hours", about(3600)),
        s if s >= 120 => format!("about {} minutes", about(60)),
        _ => "less than 2 minutes".to_owned(),
    }
}

impl AppSummary {
    pub fn of(c: &crate::store::Client, now: i64) -> AppSummary {
        let p = &c.policy;
        let mut flows = vec!["Authorization code (with PKCE)"];
        for (feature, name) in [
            (Feature::Device, "Device (code-based linking)"),
            (Feature::Implicit, "Implicit"),
            (Feature::ClientCredentials, "Client credentials"),
            (
                Feature::PlainPkce,
                "Plain PKCE (Login with Amazon compatibility)",
            ),
            (
                Feature::ReusableRefresh,
                "Reusable refresh tokens (Login with Amazon compatibility)",
            ),
        ] {
            if p.allows(feature) {
                flows.push(name);
            }
        }
        AppSummary {
            row: AppRow::of(c),
            app_id: c.app_id.clone(),
            description: c.description.clone(),
            privacy_url: c.privacy_url.clone(),
            logo: crate::flows::logo::src(c),
            confidential: p.is_confidential(),
            redirect_uris: p.redirect_uris.clone(),
            allowed_origins: c.allowed_origins.clone(),
            flows,
            id_token_alg: c.id_token_alg.as_str(),
            development: p.allows(Feature::Development),
            previous_secret: match (&c.prev_secret_hash, c.prev_secret_expires_at) {
                (Some(_), Some(until)) if until > now => Some(duration_words(until - now)),
                _ => None,
            },
        }
    }
}

/// Problems with the app form, next to each field, and all of them in a summary above the form.
#[derive(Default)]
pub struct FieldErrors {
    /// (id of the field it is about, message), in order.
    pub summary: Vec<(&'static str, String)>,
    pub name: Vec<String>,
    pub description: Vec<String>,
    pub privacy_url: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub flows: Vec<String>,
    pub id_token_alg: Vec<String>,
}

/// `/developer`: turn on developer access, or the developer's apps.
#[derive(Template)]
#[template(path = "developer.html")]
pub struct Developer {
    pub csrf: String,
    pub developer: bool,
    pub apps: Vec<AppRow>,
    pub notice: Option<String>,
}

/// The form that creates or edits a security profile.
#[derive(Template)]
#[template(path = "developer_app_form.html")]
pub struct DeveloperAppForm {
    pub csrf: String,
    pub action: String,
    /// The app being edited; `None` for a new one.
    pub editing: Option<AppRow>,
    pub name: String,
    pub description: String,
    pub privacy_url: String,
    pub redirect_uris: String,
    pub allowed_origins: String,
    pub public: bool,
    pub allow_device: bool,
    pub allow_implicit: bool,
    pub allow_client_credentials: bool,
    pub allow_plain_pkce: bool,
    pub development: bool,
    pub reusable_refresh: bool,
    /// Each algorithm offered, and whether it is the chosen one.
    pub algs: [(&'static str, bool); 3],
    pub errors: FieldErrors,
}

/// One security profile: its ids, settings, usage, and the secret and delete actions.
#[derive(Template)]
#[template(path = "developer_app.html")]
pub struct DeveloperApp {
    pub csrf: String,
    pub app: AppSummary,
    pub usage: crate::store::ClientUsage,
    pub grace_choices: Vec<(i64, &'static str)>,
    pub notice: Option<String>,
    /// Why the last logo upload was refused.
    pub logo_error: Option<String>,
}

/// A new secret (of a new app, or a rotation), shown this once.
#[derive(Template)]
#[template(path = "developer_secret.html")]
pub struct DeveloperSecret {
    pub app: AppRow,
    /// The app was just created (rather than its secret replaced).
    pub created: bool,
    /// `None` for a public app, which has no secret.
    pub secret: Option<String>,
}

/// "Delete this security profile?"
#[derive(Template)]
#[template(path = "developer_delete.html")]
pub struct DeveloperDelete {
    pub csrf: String,
    pub app: AppRow,
}

#[derive(Template)]
#[template(path = "forgot.html")]
pub struct Forgot {
    pub csrf: String,
    pub email: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "reset.html")]
pub struct Reset {
    pub csrf: String,
    /// The mailed link's token, when the customer came by the link (then no code is asked).
    pub link: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "email_verify.html")]
pub struct EmailVerify {
    pub csrf: String,
    pub link: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "verify.html")]
pub struct Verify {
    pub csrf: String,
    pub return_to: String,
    pub return_to_q: String,
    /// The address the code went to; `None`: no code here and nobody to send one to.
    pub email: Option<String>,
    /// Whether a code is waiting (else a button that sends one).
    pub has_code: bool,
    /// A mailed link's token, to confirm by a button (mail scanners fetch links; they must not verify).
    pub link: Option<String>,
    pub error: Option<String>,
}
