//! Refresh token rotation with reuse detection (RFC 9700 4.14.2; SPEC 2.2): every use rotates the token; an
//! already-rotated token presented again outside a short grace window means it leaked, and the whole family is
//! revoked. Inside the window (a client's parallel refreshes) it is refused without revoking. An app that opted
//! into LWA-style reusable refresh tokens (SPEC 2.2) keeps its token instead: it is not rotated and stays valid,
//! however often it is used, until it is revoked.

use crate::error::{ErrorCode, OAuthError};
use crate::scope::Scopes;
use crate::Timestamp;

/// How long after rotation a second presentation counts as a race, not a theft.
pub const REUSE_GRACE_SECS: i64 = 10;

/// The stored state of a refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    Rotated { at: Timestamp },
    Revoked,
}

/// What to do with a presented refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Rotate,
    /// Issue new access tokens in the family and keep the presented refresh token (a reusable-refresh app).
    Keep,
    Refuse(OAuthError),
    RevokeFamily,
}

/// Decides a refresh. `token_client` is the client the token was issued to; `reusable` whether the presenting
/// app opted into reusable refresh tokens. A token rotated before the app opted in stays rotated.
pub fn decide(
    status: Status,
    token_client: &str,
    client_id: &str,
    reusable: bool,
    now: Timestamp,
    grace: i64,
) -> Verdict {
    if token_client != client_id {
        return Verdict::Refuse(OAuthError::grant("refresh_token"));
    }
    match status {
        Status::Active if reusable => Verdict::Keep,
        Status::Active => Verdict::Rotate,
        Status::Revoked => Verdict::Refuse(OAuthError::grant("refresh_token")),
        Status::Rotated { at } if now - at <= grace => {
            Verdict::Refuse(OAuthError::grant("refresh_token"))
        }
        Status::Rotated { .. } => Verdict::RevokeFamily,
    }
}

/// The scopes of the new tokens: the granted ones, or a subset the client asked for (RFC 6749 6).
pub fn narrow(
    granted: &Scopes,
    requested: Option<&str>,
    known: &[impl AsRef<str>],
) -> Result<Scopes, OAuthError> {
    match requested {
        None => Ok(granted.clone()),
        Some(r) => {
            let asked = Scopes::parse(r, known)?;
            if asked.is_subset(granted) {
                Ok(asked)
            } else {
                Err(OAuthError::new(
                    ErrorCode::InvalidScope,
                    "The requested scope exceeds the granted scope : scope",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::STANDARD_SCOPES;

    #[test]
    fn rotation_rules() {
        let g = REUSE_GRACE_SECS;
        assert_eq!(
            decide(Status::Active, "c", "c", false, 100, g),
            Verdict::Rotate
        );
        assert!(matches!(
            decide(Status::Active, "c", "d", false, 100, g),
            Verdict::Refuse(_)
        ));
        assert!(matches!(
            decide(Status::Revoked, "c", "c", false, 100, g),
            Verdict::Refuse(_)
        ));
        assert!(matches!(
            decide(Status::Rotated { at: 95 }, "c", "c", false, 100, g),
            Verdict::Refuse(_)
        ));
        assert!(matches!(
            decide(Status::Rotated { at: 90 }, "c", "c", false, 100, g),
            Verdict::Refuse(_)
        ));
        assert_eq!(
            decide(Status::Rotated { at: 89 }, "c", "c", false, 100, g),
            Verdict::RevokeFamily
        );
        // Another client presenting a stolen, rotated token learns nothing and revokes nothing.
        assert!(matches!(
            decide(Status::Rotated { at: 0 }, "c", "d", false, 100, g),
            Verdict::Refuse(_)
        ));
    }

    #[test]
    fn reusable_tokens_are_kept_until_revoked() {
        let g = REUSE_GRACE_SECS;
        assert_eq!(
            decide(Status::Active, "c", "c", true, 100, g),
            Verdict::Keep
        );
        assert!(matches!(
            decide(Status::Revoked, "c", "c", true, 100, g),
            Verdict::Refuse(_)
        ));
        assert!(matches!(
            decide(Status::Active, "c", "d", true, 100, g),
            Verdict::Refuse(_)
        ));
        // Rotated while the app still rotated: reuse detection as before.
        assert_eq!(
            decide(Status::Rotated { at: 0 }, "c", "c", true, 100, g),
            Verdict::RevokeFamily
        );
    }

    #[test]
    fn scope_narrowing() {
        let granted = Scopes::parse("profile postal_code", STANDARD_SCOPES).unwrap();
        assert_eq!(narrow(&granted, None, STANDARD_SCOPES).unwrap(), granted);
        assert_eq!(
            narrow(&granted, Some("profile"), STANDARD_SCOPES)
                .unwrap()
                .to_string_sorted(),
            "profile"
        );
        assert_eq!(
            narrow(&granted, Some("profile email"), STANDARD_SCOPES)
                .unwrap_err()
                .code,
            ErrorCode::InvalidScope
        );
    }
}
