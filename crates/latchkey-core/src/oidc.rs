//! OpenID Connect pieces that need no keys or I/O (OpenID Connect Core 1.0 §2, §3.1.3.6): the ID token's claims,
//! `at_hash`, and the signing algorithms Latchkey offers.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Serialize;
use sha2::{Digest as _, Sha256, Sha512};

/// The JWS algorithms an app's ID tokens can be signed with. RS256 is the default: OpenID Connect Core 3.1.3.7
/// makes it what a relying party expects when it registered none, and libraries' defaults accept only it; ES256
/// and EdDSA (Ed25519) are per-app choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SigningAlg {
    Es256,
    EdDsa,
    #[default]
    Rs256,
}

impl SigningAlg {
    pub const ALL: [SigningAlg; 3] = [SigningAlg::Es256, SigningAlg::EdDsa, SigningAlg::Rs256];
    pub const DEFAULT: SigningAlg = SigningAlg::Rs256;

    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::Es256 => "ES256",
            SigningAlg::EdDsa => "EdDSA",
            SigningAlg::Rs256 => "RS256",
        }
    }

    pub fn parse(s: &str) -> Option<SigningAlg> {
        SigningAlg::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// `at_hash` (OpenID Connect Core 3.1.3.6): the left half of the hash of the access token's ASCII octets,
/// base64url-encoded; the hash is the one the signature uses (SHA-256 for ES256 and RS256, SHA-512 for EdDSA
/// with Ed25519).
pub fn at_hash(access_token: &str, alg: SigningAlg) -> String {
    match alg {
        SigningAlg::Es256 | SigningAlg::Rs256 => {
            let d = Sha256::digest(access_token.as_bytes());
            URL_SAFE_NO_PAD.encode(&d[..16])
        }
        SigningAlg::EdDsa => {
            let d = Sha512::digest(access_token.as_bytes());
            URL_SAFE_NO_PAD.encode(&d[..32])
        }
    }
}

/// The claims of an ID token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdTokenClaims {
    pub iss: String,
    /// The pairwise `user_id`.
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub at_hash: String,
    /// With `profile`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// With `email` or `profile`, and only once the address is verified (SPEC 2.8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// With `email` or `profile`: whether the account's address is verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rs256_is_the_default() {
        assert_eq!(SigningAlg::default(), SigningAlg::Rs256);
        assert_eq!(SigningAlg::DEFAULT, SigningAlg::default());
    }

    #[test]
    fn at_hash_is_the_left_half_of_the_signature_hash() {
        // Expected values computed independently with Python's hashlib.
        let token = "jHkWEdUXMU1BwAsC4vtUsZwnNr1cPjjqDtlKkXO4ttQ";
        assert_eq!(at_hash(token, SigningAlg::Rs256), "sxl7kCxnEuKqOM6lHaXe-g");
        assert_eq!(at_hash(token, SigningAlg::Es256), "sxl7kCxnEuKqOM6lHaXe-g");
        assert_eq!(
            at_hash("Atza|abc", SigningAlg::Es256),
            "DRlS22DoWQcKk1P33fh7Rw"
        );
        assert_eq!(
            at_hash("Atza|abc", SigningAlg::EdDsa),
            "_fXYyXRd7ulmCgNPWZoA8OilVxeFSHlY6OAeaOh8YGA"
        );
    }

    #[test]
    fn algorithms_round_trip() {
        for alg in SigningAlg::ALL {
            assert_eq!(SigningAlg::parse(alg.as_str()), Some(alg));
        }
        assert_eq!(SigningAlg::parse("none"), None);
        assert_eq!(SigningAlg::parse("HS256"), None);
    }

    #[test]
    fn nonce_is_left_out_when_absent() {
        let c = IdTokenClaims {
            name: None,
            email: None,
            email_verified: None,
            iss: "i".into(),
            sub: "s".into(),
            aud: "a".into(),
            exp: 2,
            iat: 1,
            auth_time: 1,
            nonce: None,
            at_hash: "h".into(),
        };
        assert!(!serde_json::to_string(&c).unwrap().contains("nonce"));
    }
}
