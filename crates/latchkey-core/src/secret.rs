//! Secrets in memory and at rest: a redacting newtype, random token minting, the keyed hash (HMAC-SHA-256)
//! under which tokens, codes, sessions and client secrets are stored, and stamped MACs for forms that expire.
//! High-entropy values need no slow hash; the key keeps a stolen database from being used to test guesses
//! offline, because the application stores the key only sealed under a master key that is not in the database.

use crate::Timestamp;
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
    /// A mailed 6-digit code (SPEC 2.8), hashed with the id of the code it belongs to.
    EmailCode,
    /// The token of a mailed link with a code's effect.
    EmailLink,
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
            Kind::EmailCode => b"email-code",
            Kind::EmailLink => b"email-link",
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

/// How far ahead of this node's clock a stamp may be (another node's clock running fast) and still be fresh.
pub const STAMP_CLOCK_SKEW_SECS: i64 = 60;

/// What checking a stamped MAC ([`KeyedHasher::stamp_b64`]) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// Made under this key over these parts at `issued_at`, and still within its lifetime.
    Fresh { issued_at: Timestamp },
    /// Made under this key over these parts, but outside its lifetime: older than allowed, or later than any
    /// node's clock could have said (beyond [`STAMP_CLOCK_SKEW_SECS`]).
    Expired,
    /// Not made under this key over these parts at the time it names (another session or request, a changed
    /// time, a changed MAC), or not a stamp at all.
    Invalid,
}

impl KeyedHasher {
    /// A MAC over `parts` that carries the time it was made: `<unix seconds>.<base64url MAC over (time, parts)>`,
    /// so that a form or marker can be refused after a lifetime the checker chooses ([`KeyedHasher::check_stamp`]).
    pub fn stamp_b64(&self, kind: Kind, now: Timestamp, parts: &[&[u8]]) -> String {
        let at = now.to_string();
        format!(
            "{at}.{}",
            self.mac_b64(kind, &stamped(at.as_bytes(), parts))
        )
    }

    /// Checks a stamp made by [`KeyedHasher::stamp_b64`] over `parts`: fresh if its MAC holds and it was made at
    /// most `lifetime` seconds before `now` (constant-time in the MAC).
    pub fn check_stamp(
        &self,
        kind: Kind,
        parts: &[&[u8]],
        presented: &str,
        now: Timestamp,
        lifetime: i64,
    ) -> Stamp {
        let Some((at, mac)) = presented.split_once('.') else {
            return Stamp::Invalid;
        };
        // Digits only (no sign, no spaces), as `stamp_b64` writes them; an `i64` has at most 19.
        let issued_at = match at.parse::<Timestamp>() {
            Ok(t) if !at.is_empty() && at.len() <= 19 && at.bytes().all(|b| b.is_ascii_digit()) => {
                t
            }
            _ => return Stamp::Invalid,
        };
        if !self.verify_b64(kind, &stamped(at.as_bytes(), parts), mac) {
            return Stamp::Invalid;
        }
        let age = now.saturating_sub(issued_at);
        if age > lifetime || age < -STAMP_CLOCK_SKEW_SECS {
            return Stamp::Expired;
        }
        Stamp::Fresh { issued_at }
    }
}

/// The parts a stamp's MAC covers: its time first, then the caller's.
fn stamped<'a>(at: &'a [u8], parts: &[&'a [u8]]) -> Vec<&'a [u8]> {
    let mut all = Vec::with_capacity(parts.len() + 1);
    all.push(at);
    all.extend_from_slice(parts);
    all
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
    fn stamps_hold_for_their_lifetime_and_only_for_their_input() {
        let h = KeyedHasher::new(&[9; 32]);
        let parts: &[&[u8]] = &[b"session", b"request"];
        let made_at = 1_000_000;
        let stamp = h.stamp_b64(Kind::Consent, made_at, parts);
        assert!(stamp.starts_with("1000000."), "{stamp}");
        let (_, mac) = stamp.split_once('.').unwrap();
        let check = |presented: &str, parts: &[&[u8]], now: i64| {
            h.check_stamp(Kind::Consent, parts, presented, now, 900)
        };
        let fresh = Stamp::Fresh { issued_at: made_at };
        for (presented, parts, now, expected) in [
            // Within its lifetime, to the second; a peer's clock a little behind.
            (stamp.clone(), parts, made_at, fresh),
            (stamp.clone(), parts, made_at + 900, fresh),
            (stamp.clone(), parts, made_at - STAMP_CLOCK_SKEW_SECS, fresh),
            // Out of it.
            (stamp.clone(), parts, made_at + 901, Stamp::Expired),
            (
                stamp.clone(),
                parts,
                made_at - STAMP_CLOCK_SKEW_SECS - 1,
                Stamp::Expired,
            ),
            // Another input: a session, a request, or a time it was not made at.
            (
                stamp.clone(),
                &[b"other", b"request"],
                made_at,
                Stamp::Invalid,
            ),
            (stamp.clone(), &[b"session"], made_at, Stamp::Invalid),
            (
                format!("{}.{mac}", made_at + 600),
                parts,
                made_at + 901,
                Stamp::Invalid,
            ),
            (format!("+{made_at}.{mac}"), parts, made_at, Stamp::Invalid),
            (format!("0{made_at}.{mac}"), parts, made_at, Stamp::Invalid),
            (format!("-{made_at}.{mac}"), parts, made_at, Stamp::Invalid),
            // Not a stamp.
            (mac.to_owned(), parts, made_at, Stamp::Invalid),
            (format!(".{mac}"), parts, made_at, Stamp::Invalid),
            (format!("{made_at}."), parts, made_at, Stamp::Invalid),
            (
                "99999999999999999999.x".to_owned(),
                parts,
                made_at,
                Stamp::Invalid,
            ),
            (String::new(), parts, made_at, Stamp::Invalid),
        ] {
            assert_eq!(
                check(&presented, parts, now),
                expected,
                "{presented} at {now}"
            );
        }
        // Another kind never verifies.
        assert_eq!(
            h.check_stamp(Kind::Reauth, parts, &stamp, made_at, 900),
            Stamp::Invalid
        );
    }

    #[test]
    fn minted_tokens_have_prefix_and_256_bits() {
        let mut rng = StepRng::new(1, 1);
        let t = mint(&mut rng, ACCESS_TOKEN_PREFIX);
        assert!(t.expose().starts_with("Atza|"));
        assert_eq!(t.expose().len(), 5 + 43);
    }
}
