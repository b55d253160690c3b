//! Exchanging an authorization code (RFC 6749 4.1.3, RFC 7636 4.6, RFC 9700 2.1.1): every check on a stored code
//! before anything is written.

use crate::error::OAuthError;
use crate::pkce::{self, Challenge};
use crate::Timestamp;

/// What was recorded when the code was issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub redirect_uri_sent: bool,
    pub challenge: Option<Challenge>,
    pub expires_at: Timestamp,
}

/// Checks a code exchange. The caller has already authenticated the client (secret or public).
pub fn check_exchange(
    code: &IssuedCode,
    client_id: &str,
    redirect_uri: Option<&str>,
    code_verifier: Option<&str>,
    now: Timestamp,
) -> Result<(), OAuthError> {
    if code.client_id != client_id {
        return Err(OAuthError::grant("code"));
    }
    if now >= code.expires_at {
        return Err(OAuthError::grant("code"));
    }
    match redirect_uri {
        Some(r) if r != code.redirect_uri => return Err(OAuthError::grant("redirect_uri")),
        None if code.redirect_uri_sent => return Err(OAuthError::grant("redirect_uri")),
        _ => {}
    }
    match (&code.challenge, code_verifier) {
        (None, None) => Ok(()),
        // PKCE downgrade: a verifier for a code that was not bound to a challenge.
        (None, Some(_)) => Err(OAuthError::grant("code_verifier")),
        (Some(_), None) => Err(OAuthError::grant("code_verifier")),
        (Some(ch), Some(v)) => {
            if !pkce::is_valid_verifier(v) || !ch.verify(v) {
                Err(OAuthError::grant("code_verifier"))
            } else {
                Ok(())
            }
        }
    }
}

/// Whether presenting an already used code revokes what it issued (RFC 6749 4.1.2; SPEC 4): only when the
/// replay comes from the app the code was issued to, proved as strongly as a redemption would prove it: with the
/// app's secret (`authenticated`), or with the PKCE verifier of a PKCE-bound code. A used code that leaked
/// (history, logs, a Referer) is then no way for anyone else, another app or someone holding only the code and a
/// confidential app's public id, to end the customer's grant. Expiry and the return URL do not matter here: a
/// late replay by the app itself still revokes.
pub fn replay_revokes(
    code: &IssuedCode,
    client_id: &str,
    authenticated: bool,
    code_verifier: Option<&str>,
) -> bool {
    if code.client_id != client_id {
        return false;
    }
    authenticated
        || match (&code.challenge, code_verifier) {
            (Some(ch), Some(v)) => pkce::is_valid_verifier(v) && ch.verify(v),
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::pkce::Method;

    const V: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const C: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn code(challenge: bool, sent: bool) -> IssuedCode {
        IssuedCode {
            client_id: "c".into(),
            redirect_uri: "https://a/cb".into(),
            redirect_uri_sent: sent,
            challenge: challenge.then(|| Challenge {
                challenge: C.into(),
                method: Method::S256,
            }),
            expires_at: 1000,
        }
    }

    #[test]
    fn only_the_codes_own_app_revokes_by_replaying_it() {
        // (PKCE-bound, caller, authenticated, verifier) -> revokes
        let table: &[(bool, &str, bool, Option<&str>, bool)] = &[
            (false, "c", true, None, true),
            (true, "c", true, None, true),
            (true, "c", false, Some(V), true),
            // The right app's id without its secret, and no verifier (or a wrong one): not proof.
            (false, "c", false, None, false),
            (true, "c", false, None, false),
            (true, "c", false, Some(C), false),
            (false, "c", false, Some(V), false),
            // Another app, however well it authenticated.
            (false, "other", true, None, false),
            (true, "other", false, Some(V), false),
            (true, "other", true, Some(V), false),
        ];
        for (i, (pkce, client, authenticated, verifier, want)) in table.iter().enumerate() {
            let mut c = code(*pkce, true);
            c.expires_at = 0;
            assert_eq!(
                replay_revokes(&c, client, *authenticated, *verifier),
                *want,
                "row {i}"
            );
        }
    }

    #[test]
    fn exchange_table() {
        #[allow(clippy::type_complexity)]
        let table: &[(
            IssuedCode,
            &str,
            Option<&str>,
            Option<&str>,
            i64,
            Option<&str>,
        )] = &[
            (
                code(true, true),
                "c",
                Some("https://a/cb"),
                Some(V),
                999,
                None,
            ),
            (
                code(true, true),
                "c",
                Some("https://a/cb"),
                Some(V),
                1000,
                Some("code"),
            ),
            (
                code(true, true),
                "other",
                Some("https://a/cb"),
                Some(V),
                1,
                Some("code"),
            ),
            (
                code(true, true),
                "c",
                None,
                Some(V),
                1,
                Some("redirect_uri"),
            ),
            (
                code(true, true),
                "c",
                Some("https://a/cb/"),
                Some(V),
                1,
                Some("redirect_uri"),
            ),
            (code(true, false), "c", None, Some(V), 1, None),
            (
                code(true, false),
                "c",
                Some("https://a/other"),
                Some(V),
                1,
                Some("redirect_uri"),
            ),
            (
                code(true, true),
                "c",
                Some("https://a/cb"),
                None,
                1,
                Some("code_verifier"),
            ),
            (
                code(true, true),
                "c",
                Some("https://a/cb"),
                Some(C),
                1,
                Some("code_verifier"),
            ),
            (
                code(false, true),
                "c",
                Some("https://a/cb"),
                Some(V),
                1,
                Some("code_verifier"),
            ),
            (code(false, true), "c", Some("https://a/cb"), None, 1, None),
        ];
        for (i, (c, client, redirect, verifier, now, expected)) in table.iter().enumerate() {
            let got = check_exchange(c, client, *redirect, *verifier, *now);
            match expected {
                None => assert!(got.is_ok(), "row {i}: {got:?}"),
                Some(param) => {
                    let e = got.unwrap_err();
                    assert_eq!(e.code, ErrorCode::InvalidGrant, "row {i}");
                    assert!(
                        e.description.ends_with(&format!(": {param}")),
                        "row {i}: {}",
                        e.description
                    );
                }
            }
        }
    }
}
