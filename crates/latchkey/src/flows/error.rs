//! Why a flow did not succeed: a protocol error the client should see, or an internal cause that is logged and
//! never sent. `web::error` alone turns a [`Failure`] into HTTP, through its exhaustive tables (one for the API's
//! JSON shapes, one for pages). A failure that passes by itself (a full hashing queue, a database that is
//! unreachable or overloaded) is `temporarily_unavailable`; any other internal failure is `server_error`.

use crate::password::PasswordError;
use crate::store::StoreError;
use latchkey_core::error::{ErrorCode, OAuthError};

/// Why a flow did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// A protocol error the client should see.
    #[error("{0}")]
    OAuth(#[from] OAuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// Past an abuse limit (SPEC 4): to try again after this many seconds.
    #[error("too many requests; retry after {0} s")]
    Limited(i64),
}

/// How long a client is told to wait after `temporarily_unavailable`: long enough for a queue to move.
pub const RETRY_AFTER_SECS: u32 = 5;

/// What kind of failure it is, once its internal cause has been logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// A protocol error: the client's request was refused.
    Refused,
    /// Our side, passing by itself: try again in [`RETRY_AFTER_SECS`].
    Transient,
    /// Our side, not passing by itself.
    Fault,
    /// Past an abuse limit: try again after this many seconds.
    Limited(i64),
}

fn server_error() -> OAuthError {
    OAuthError::new(
        ErrorCode::ServerError,
        "The server could not complete the request; try again",
    )
}

fn busy() -> OAuthError {
    OAuthError::new(
        ErrorCode::TemporarilyUnavailable,
        format!("The server is busy; try again in {RETRY_AFTER_SECS} seconds"),
    )
}

impl Failure {
    /// Logs an internal cause (never sent) and says what kind of failure this is.
    fn cause(&self) -> Cause {
        match self {
            Failure::OAuth(_) => Cause::Refused,
            Failure::Store(e) if e.is_transient() => {
                tracing::error!(error = %e, "storage unavailable");
                Cause::Transient
            }
            Failure::Store(e) => {
                tracing::error!(error = %e, "storage failure");
                Cause::Fault
            }
            Failure::Password(PasswordError::Busy) => {
                tracing::warn!("password hashing queue full; request refused");
                Cause::Transient
            }
            Failure::Password(e @ (PasswordError::Hash(_) | PasswordError::Join)) => {
                tracing::error!(error = %e, "password hashing failure");
                Cause::Fault
            }
            Failure::Limited(wait) => Cause::Limited(*wait),
        }
    }

    /// What kind of failure this is, and the error to show the client: an internal cause is logged (once) and
    /// replaced by `temporarily_unavailable` when it passes by itself, by `server_error` otherwise.
    pub fn split(self) -> (Cause, OAuthError) {
        let cause = self.cause();
        let shown = match (cause, self) {
            (_, Failure::OAuth(e)) => e,
            (Cause::Limited(wait), _) => OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                format!("Too many requests from this address; try again in {wait} seconds"),
            ),
            (Cause::Transient, _) => busy(),
            (Cause::Refused | Cause::Fault, _) => server_error(),
        };
        (cause, shown)
    }

    /// The error to show the client (see [`Failure::split`]).
    pub fn into_oauth(self) -> OAuthError {
        self.split().1
    }
}
