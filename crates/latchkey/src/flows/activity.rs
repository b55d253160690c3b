//! Security activity (SPEC 2.6): what happened to an account, when, from which address and browser. Each event
//! is stored (the account page lists them; `audit_retention_days` keeps them) and emitted as one JSON log line
//! with `event=<kind>`, the account's internal id and the address: never an email, password, code or token.

use crate::app::AppState;
use crate::flows::error::Failure;
use crate::store::AuditEvent;

/// Who did it, as the web layer saw the request: the client's address (behind trusted proxies) and its
/// `User-Agent`, cut to 200 characters.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: String,
    pub user_agent: String,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activity {
    SignedIn,
    SignInFailed,
    PasswordChanged,
    PasswordReset,
    EmailVerified,
    EmailChanged,
    AppRemoved { app: String },
    SignedOutEverywhere,
}

impl Activity {
    /// The stored and logged name.
    pub fn kind(&self) -> &'static str {
        match self {
            Activity::SignedIn => "signed_in",
            Activity::SignInFailed => "signin_failed",
            Activity::PasswordChanged => "password_changed",
            Activity::PasswordReset => "password_reset",
            Activity::EmailVerified => "email_verified",
            Activity::EmailChanged => "email_changed",
            Activity::AppRemoved { .. } => "app_removed",
            Activity::SignedOutEverywhere => "signed_out_everywhere",
        }
    }

    fn detail(&self) -> Option<String> {
        match self {
            Activity::AppRemoved { app } => Some(app.clone()),
            _ => None,
        }
    }
}

/// What a stored event says, in words for the account page.
pub fn describe(kind: &str, detail: Option<&str>) -> String {
    match (kind, detail) {
        ("signed_in", _) => "Signed in".into(),
        ("signin_failed", _) => "Failed sign-in (wrong password)".into(),
        ("password_changed", _) => "Password changed".into(),
        ("password_reset", _) => "Password reset by a mailed code".into(),
        ("email_verified", _) => "Email address verified".into(),
        ("email_changed", _) => "Email address changed".into(),
        ("app_removed", Some(app)) => format!("Removed the app {app}"),
        ("app_removed", None) => "Removed an app".into(),
        ("signed_out_everywhere", _) => "Signed out everywhere".into(),
        (other, _) => other.replace('_', " "),
    }
}

/// Records `activity` for the account `user_id`: stored, and logged as `event=<kind>`.
pub async fn record(
    state: &AppState,
    user_id: &str,
    activity: Activity,
    origin: &Origin,
) -> Result<(), Failure> {
    let kind = activity.kind();
    tracing::info!(event = kind, user = user_id, ip = %origin.ip, "security activity");
    let id = latchkey_core::ids::new_internal_id(&mut rand::thread_rng());
    state
        .store
        .record_event(&AuditEvent {
            id,
            user_id: user_id.to_owned(),
            kind: kind.to_owned(),
            at: state.clock.now(),
            ip: Some(origin.ip.clone()).filter(|ip| !ip.is_empty()),
            user_agent: Some(origin.user_agent.clone()).filter(|ua| !ua.is_empty()),
            detail: activity.detail(),
        })
        .await?;
    Ok(())
}

/// One event as the account page shows it.
pub struct EventView {
    pub at: i64,
    pub what: String,
    pub ip: String,
    pub browser: String,
}

/// The account's most recent events, newest first.
pub async fn recent(state: &AppState, user_id: &str) -> Result<Vec<EventView>, Failure> {
    Ok(state
        .store
        .list_events(user_id, 20)
        .await?
        .into_iter()
        .map(|e| EventView {
            at: e.at,
            what: describe(&e.kind, e.detail.as_deref()),
            ip: e.ip.unwrap_or_default(),
            browser: e.user_agent.unwrap_or_default(),
        })
        .collect())
}
