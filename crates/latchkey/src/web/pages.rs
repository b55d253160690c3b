//! Server-rendered pages: one struct per template (askama checks them at compile time), and the helpers that
//! turn them into responses.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

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

/// One line of the consent page: what the app will see, with its current value.
pub struct ConsentItem {
    pub scope: String,
    pub label: &'static str,
    pub value: String,
    /// Non-essential (`scope_data`): the customer may untick it.
    pub optional: bool,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub struct Consent {
    pub app_name: String,
    pub logo_url: Option<String>,
    pub privacy_url: String,
    pub user_email: String,
    pub csrf: String,
    /// The original authorization query string, re-validated when the form comes back.
    pub request: String,
    /// Binds the decision to the session that saw this page.
    pub consent_token: String,
    pub items: Vec<ConsentItem>,
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

/// The page shown when storage fails.
pub fn unavailable() -> Response {
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Latchkey is having trouble",
        &["Something went wrong on our side. Please try again in a moment."],
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
    pub app_name: String,
    pub logo_url: Option<String>,
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
    pub logo_url: Option<String>,
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
    pub postal_code: String,
    pub profile_error: Option<String>,
    pub password_error: Option<String>,
    pub sessions: Vec<SessionRow>,
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn times_read_as_utc_dates() {
        assert_eq!(utc(0), "1 January 1970, 00:00 UTC");
        assert_eq!(utc(1_700_000_000), "14 November 2023, 22:13 UTC");
        assert_eq!(utc(951_782_400), "29 February 2000, 00:00 UTC");
        assert_eq!(utc(-1), "31 December 1969, 23:59 UTC");
    }
}
