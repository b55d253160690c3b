//! Proof Key for Code Exchange (RFC 7636): challenge and verifier syntax, and verification.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// `code_challenge_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    S256,
    Plain,
}

impl Method {
    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "S256" => Some(Method::S256),
            "plain" => Some(Method::Plain),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Method::S256 => "S256",
            Method::Plain => "plain",
        }
    }
}

/// A code challenge bound to an authorization code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub challenge: String,
    pub method: Method,
}

/// RFC 7636 4.1: 43 to 128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
/// The same syntax bounds a challenge.
pub fn is_valid_verifier(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The S256 transform: `BASE64URL(SHA256(ASCII(verifier)))`.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

impl Challenge {
    /// Whether `verifier` answers this challenge (constant-time comparison).
    pub fn verify(&self, verifier: &str) -> bool {
        if !is_valid_verifier(verifier) {
            return false;
        }
        let computed = match self.method {
            Method::S256 => s256(verifier),
            Method::Plain => verifier.to_owned(),
        };
        bool::from(computed.as_bytes().ct_eq(self.challenge.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b() {
        assert_eq!(s256(VERIFIER), CHALLENGE);
        let c = Challenge {
            challenge: CHALLENGE.into(),
            method: Method::S256,
        };
        assert!(c.verify(VERIFIER));
        assert!(!c.verify("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK"));
        // The challenge itself is not a valid answer to an S256 challenge.
        assert!(!c.verify(CHALLENGE));
    }

    #[test]
    fn plain_method() {
        let c = Challenge {
            challenge: VERIFIER.into(),
            method: Method::Plain,
        };
        assert!(c.verify(VERIFIER));
        assert!(!c.verify(CHALLENGE));
    }

    #[test]
    fn verifier_syntax() {
        let table = [
            ("", false),
            (&"a".repeat(42)[..], false),
            (&"a".repeat(43)[..], true),
            (&"a".repeat(128)[..], true),
            (&"a".repeat(129)[..], false),
            ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa+", false),
            ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-._~", true),
        ];
        for (v, ok) in table {
            assert_eq!(is_valid_verifier(v), ok, "{v}");
        }
        assert_eq!(Method::parse("S256"), Some(Method::S256));
        assert_eq!(Method::parse("s256"), None);
        assert_eq!(Method::parse("plain"), Some(Method::Plain));
    }
}
