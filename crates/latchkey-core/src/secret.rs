//! Secrets in memory and at rest: a redacting newtype, random token minting, and the keyed hash (HMAC-SHA-256)
//! under which tokens, codes, sessions and client secrets are stored. High-entropy values need no slow hash;
//! the key keeps a stolen database from being used to test guesses offline, because the application stores the key
//! only sealed under a master key that is not in the database.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::fmt;
use subtle::ConstantTimeEq;

/// A secret value (token, code, password, client secret). `Debug` and `Display` never print it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself, for the one place that must send or hash it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// What a hashed value is; part of the hash input, so a hash of one kind never matches another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    AccessToken,
    RefreshToken,
    AuthCode,
    Session,
    ClientSecret,
    Csrf,
    Consent,
    Pairwise,
    DeviceCode,
    UserCode,
    /// Proof that a fresh sign-in was asked for an authorization request (`prompt=login`, `max_age`).
    Reauth,
    /// A browser's proof that it signed in to an account before (sign-in limits, SPEC 4).
    KnownBrowser,
}

impl Kind {
    fn tag(self) -> &'static [u8] {
        match self {
            Kind::AccessToken => b"at",
            Kind::RefreshToken => b"rt",
            Kind::AuthCode => b"ac",
            Kind::Session => b"ss",
            Kind::ClientSecret => b"cs",
            Kind::Csrf => b"csrf",
            Kind::Consent => b"consent",
            Kind::Pairwise => b"pairwise",
            Kind::DeviceCode => b"dc",
            Kind::UserCode => b"uc",
            Kind::Reauth => b"reauth",
            Kind::KnownBrowser => b"known-browser",
        }
    }
}

/// 32 bytes of keyed hash.
pub type Digest = [u8; 32];

/// HMAC-SHA-256 under the server's secret key. Cheap to clone: the keyed state is computed once.
#[derive(Clone)]
pub struct KeyedHasher {
    mac: Hmac<Sha256>,
}

impl fmt::Debug for KeyedHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyedHasher([redacted])")
    }
}

impl KeyedHasher {
    pub fn new(key: &[u8; 32]) -> Self {
        // HMAC accepts keys of any length, so this cannot fail; fall back to the default state defensively.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable_key());
        KeyedHasher { mac }
    }

    /// The keyed hash of `parts`, domain-separated by `kind` and by length prefixes.
    pub fn hash(&self, kind: Kind, parts: &[&[u8]]) -> Digest {
        let mut mac = self.mac.clone();
        mac.update(kind.tag());
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// The hash under which a token of `kind` is stored.
    pub fn token(&self, kind: Kind, token: &str) -> Digest {
        self.hash(kind, &[token.as_bytes()])
    }

    /// A MAC over `parts` rendered as base64url, for CSRF and consent tokens.
    pub fn mac_b64(&self, kind: Kind, parts: &[&[u8]]) -> String {
        URL_SAFE_NO_PAD.encode(self.hash(kind, parts))
    }

    /// Constant-time check of a base64url MAC made by [`KeyedHasher::mac_b64`].
    pub fn verify_b64(&self, kind: Kind, parts: &[&[u8]], presented: &str) -> bool {
        let expected = self.hash(kind, parts);
        match URL_SAFE_NO_PAD.decode(presented) {
            Ok(bytes) => bool::from(bytes.as_slice().ct_eq(&expected)),
            Err(_) => false,
        }
    }
}

#[allow(clippy::panic)]
fn unreachable_key() -> Hmac<Sha256> {
    // Hmac::new_from_slice only fails for fixed-size-key MACs; Hmac<Sha256> takes any length.
    panic!("HMAC-SHA-256 rejected a 32-byte key")
}

/// Constant-time equality of two digests.
pub fn digest_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

/// `prefix` followed by 256 random bits in base64url (43 characters).
pub fn mint(rng: &mut impl RngCore, prefix: &str) -> Secret {
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    let mut s = String::with_capacity(prefix.len() + 43);
    s.push_str(prefix);
    URL_SAFE_NO_PAD.encode_string(bytes, &mut s);
    Secret(s)
}

/// Access tokens start with `Atza|` (SPEC 1, as LWA's).
pub const ACCESS_TOKEN_PREFIX: &str = "Atza|";
/// Refresh tokens start with `Atzr|`.
pub const REFRESH_TOKEN_PREFIX: &str = "Atzr|";

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::mock::StepRng;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
    }

    #[test]
    fn hashes_are_keyed_and_kind_separated() {
        let a = KeyedHasher::new(&[1; 32]);
        let b = KeyedHasher::new(&[2; 32]);
        assert_ne!(
            a.token(Kind::AccessToken, "x"),
            b.token(Kind::AccessToken, "x")
        );
        assert_ne!(
            a.token(Kind::AccessToken, "x"),
            a.token(Kind::RefreshToken, "x")
        );
        assert_eq!(
            a.token(Kind::AccessToken, "x"),
            a.clone().token(Kind::AccessToken, "x")
        );
        // Length prefixes keep ("ab","c") and ("a","bc") apart.
        assert_ne!(
            a.hash(Kind::Csrf, &[b"ab", b"c"]),
            a.hash(Kind::Csrf, &[b"a", b"bc"])
        );
    }

    #[test]
    fn macs_verify_only_their_input() {
        let h = KeyedHasher::new(&[7; 32]);
        let m = h.mac_b64(Kind::Csrf, &[b"session"]);
        assert!(h.verify_b64(Kind::Csrf, &[b"session"], &m));
        assert!(!h.verify_b64(Kind::Csrf, &[b"other"], &m));
        assert!(!h.verify_b64(Kind::Consent, &[b"session"], &m));
        assert!(!h.verify_b64(Kind::Csrf, &[b"session"], "not base64!"));
    }

    #[test]
    fn minted_tokens_have_prefix_and_256_bits() {
        let mut rng = StepRng::new(1, 1);
        let t = mint(&mut rng, ACCESS_TOKEN_PREFIX);
        assert!(t.expose().starts_with("Atza|"));
        assert_eq!(t.expose().len(), 5 + 43);
    }
}
