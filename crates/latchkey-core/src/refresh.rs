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

/// What to do with a presented refresh token that is not refused. This is the one place the rule is written: the
/// token flow acts on it, and the store applies it again to what it finds when the token changed meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Issue new tokens in the family and retire the presented refresh token for a new one.
    Rotate,
    /// Issue new access tokens in the family and keep the presented refresh token (a reusable-refresh app).
    Keep,
    /// A token rotated outside the grace window came back: it leaked, and its whole family is revoked.
    RevokeFamily,
}

/// Decides a refresh: an `invalid_grant` error when the token is refused (another client's, revoked, or rotated
/// inside the grace window, a client's parallel refreshes), otherwise what to do. `token_client` is the client
/// the token was issued to; `reusable` whether the presenting app opted into reusable refresh tokens. A token
/// rotated before the app opted in stays rotated.
pub fn decide(
    status: Status,
    token_client: &str,
    client_id: &str,
    reusable: bool,
    now: Timestamp,
    grace: i64,
) -> Result<Verdict, OAuthError> {
    let refused = || Err(OAuthError::grant("refresh_token"));
    if token_client != client_id {
        return refused();
    }
    match status {
        Status::Active if reusable => Ok(Verdict::Keep),
        Status::Active => Ok(Verdict::Rotate),
        Status::Revoked => refused(),
        Status::Rotated { at } if now - at <= grace => refused(),
        Status::Rotated { .. } => Ok(Verdict::RevokeFamily),
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
            Ok(Verdict::Rotate)
        );
        assert!(decide(Status::Active, "c", "d", false, 100, g).is_err());
        assert!(decide(Status::Revoked, "c", "c", false, 100, g).is_err());
        assert!(decide(Status::Rotated { at: 95 }, "c", "c", false, 100, g).is_err());
        assert!(decide(Status::Rotated { at: 90 }, "c", "c", false, 100, g).is_err());
        assert_eq!(
            decide(Status::Rotated { at: 89 }, "c", "c", false, 100, g),
            Ok(Verdict::RevokeFamily)
        );
        // Another client presenting a stolen, rotated token learns nothing and revokes nothing.
        assert!(decide(Status::Rotated { at: 0 }, "c", "d", false, 100, g).is_err());
    }

    #[test]
    fn reusable_tokens_are_kept_until_revoked() {
        let g = REUSE_GRACE_SECS;
        assert_eq!(
            decide(Status::Active, "c", "c", true, 100, g),
            Ok(Verdict::Keep)
        );
        assert!(decide(Status::Revoked, "c", "c", true, 100, g).is_err());
        assert!(decide(Status::Active, "c", "d", true, 100, g).is_err());
        // Rotated while the app still rotated: reuse detection as before.
        assert_eq!(
            decide(Status::Rotated { at: 0 }, "c", "c", true, 100, g),
            Ok(Verdict::RevokeFamily)
        );
    }

    #[test]
    fn every_refusal_is_invalid_grant_and_the_grace_window_ends_exactly_at_grace() {
        let g = REUSE_GRACE_SECS;
        for (status, token_client, reusable) in [
            (Status::Active, "d", false),
            (Status::Revoked, "c", false),
            (Status::Revoked, "c", true),
            (Status::Rotated { at: 100 - g }, "c", false),
            (Status::Rotated { at: 100 }, "c", true),
        ] {
            let e = decide(status, token_client, "c", reusable, 100, g).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidGrant, "{status:?}");
        }
        assert_eq!(
            decide(Status::Rotated { at: 100 - g - 1 }, "c", "c", false, 100, g),
            Ok(Verdict::RevokeFamily)
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
