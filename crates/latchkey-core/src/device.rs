//! Code-based linking for devices (LWA code pairs; RFC 8628 device authorization; SPEC 2.3): user codes, and the
//! decision a device poll gets.

use crate::error::{ErrorCode, OAuthError};
use crate::params::Params;
use crate::scope::{self, Scopes};
use crate::Timestamp;
use rand::Rng;

/// User-code letters: consonants only, so no code spells a word and none is mistaken for a digit (SPEC 2.3).
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// 8 letters from 20: about 34.6 bits, against LWA's five digits.
pub const USER_CODE_LEN: usize = 8;
/// A code pair lives this long (SPEC 2.3: `expires_in` 600).
pub const DEVICE_CODE_TTL_SECS: i64 = 600;
/// The polling interval a device starts with.
pub const DEFAULT_INTERVAL_SECS: i64 = 5;
/// How much a `slow_down` adds to that device code's interval (RFC 8628 3.5).
pub const SLOW_DOWN_STEP_SECS: i64 = 5;
/// The interval never grows beyond this, so a misbehaving device is not told to wait for ever.
pub const MAX_INTERVAL_SECS: i64 = 60;
/// A code pair is locked after this many polls that name it with the wrong user code.
pub const MAX_PAIR_FAILURES: i64 = 5;

/// Which endpoint a code pair was asked for at; the parameters differ slightly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /auth/o2/create/codepair`: `response_type=device_code` and `scope` are required (as LWA).
    Lwa,
    /// `POST /oauth2/device_authorization` (RFC 8628 3.1): `scope` is optional and defaults to `profile`.
    Rfc,
}

/// A parsed request for a code pair. The client is authenticated (if it sent a secret) by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodePairRequest {
    pub scopes: Scopes,
    /// Non-essential scopes (`scope_data`), which the customer may untick.
    pub optional_scopes: Vec<String>,
}

/// Parses the scope part of a code-pair request (client identification is the token endpoint's, shared).
pub fn parse_codepair(
    params: &Params,
    endpoint: Endpoint,
    known_scopes: &[impl AsRef<str>],
) -> Result<CodePairRequest, OAuthError> {
    if endpoint == Endpoint::Lwa {
        match params.require("response_type")? {
            "device_code" => {}
            _ => {
                return Err(OAuthError::new(
                    ErrorCode::UnsupportedResponseType,
                    "The request has an unsupported parameter value : response_type",
                ))
            }
        }
    }
    let scope_text = match (params.joined("scope"), endpoint) {
        (Some(s), _) => s,
        (None, Endpoint::Rfc) => "profile".to_owned(),
        (None, Endpoint::Lwa) => return Err(OAuthError::missing("scope")),
    };
    let scopes = Scopes::parse(&scope_text, known_scopes)?;
    let optional_scopes = match params.get("scope_data")? {
        Some(data) => scope::parse_scope_data(data, &scopes)?,
        None => Vec::new(),
    };
    Ok(CodePairRequest {
        scopes,
        optional_scopes,
    })
}

/// A new user code in canonical form (8 letters, no dash).
pub fn new_user_code(rng: &mut impl Rng) -> String {
    (0..USER_CODE_LEN)
        .map(|_| char::from(USER_CODE_ALPHABET[rng.gen_range(0..USER_CODE_ALPHABET.len())]))
        .collect()
}

/// How a user code is shown: `BCDF-GHJK`.
pub fn display(code: &str) -> String {
    match (code.get(..4), code.get(4..)) {
        (Some(a), Some(b)) if !b.is_empty() => format!("{a}-{b}"),
        _ => code.to_owned(),
    }
}

/// A typed user code in canonical form: case, spaces and dashes are ignored. `None` if it cannot be a code.
pub fn normalize(input: &str) -> Option<String> {
    if input.len() > 64 {
        return None;
    }
    let code: String = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-' && *c != '\u{2010}' && *c != '\u{2013}')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)))
        .then_some(code)
}

/// Where a code pair stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Waiting for the customer.
    Pending,
    /// The customer allowed it; the next poll gets the tokens.
    Approved,
    /// The customer declined.
    Denied,
    /// Tokens were issued (once).
    Issued,
    /// Too many wrong user codes were presented with this device code.
    Locked,
    /// Approved, but the customer removed the app or the account was disabled before the device polled.
    Revoked,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Denied => "denied",
            Status::Issued => "issued",
            Status::Locked => "locked",
            Status::Revoked => "revoked",
        }
    }
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "pending" => Status::Pending,
            "approved" => Status::Approved,
            "denied" => Status::Denied,
            "issued" => Status::Issued,
            "locked" => Status::Locked,
            "revoked" => Status::Revoked,
            _ => return None,
        })
    }
}

/// Which request shape the device polls with; the answers differ (SPEC 2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollForm {
    /// `grant_type=device_code` with `device_code` and `user_code` (Login with Amazon).
    Lwa,
    /// `grant_type=urn:ietf:params:oauth:grant-type:device_code` with `client_id` and `device_code` (RFC 8628).
    Rfc,
}

/// A code pair as a poll sees it, after the poll was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Poll {
    pub status: Status,
    pub expires_at: Timestamp,
    /// This poll came sooner than the interval allowed after the previous one.
    pub too_fast: bool,
}

/// What to answer a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Approved: issue the tokens (exactly once: the store decides who wins).
    Issue,
    /// Answer with this error.
    Refuse(Refusal),
}

/// Why a poll gets no tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Pending,
    SlowDown,
    Denied,
    Expired,
    /// Unknown device code, another client's, a user code that does not belong to it, already used, locked or
    /// revoked (RFC 6749 5.2: a revoked grant is `invalid_grant`).
    Invalid,
}

/// The answer to a poll of a known code pair. Expiry wins over everything but issuance already recorded.
pub fn decide(poll: &Poll, now: Timestamp) -> Verdict {
    let refuse = Verdict::Refuse;
    match poll.status {
        Status::Issued | Status::Locked | Status::Revoked => refuse(Refusal::Invalid),
        _ if now >= poll.expires_at => refuse(Refusal::Expired),
        Status::Denied => refuse(Refusal::Denied),
        Status::Approved => Verdict::Issue,
        Status::Pending if poll.too_fast => refuse(Refusal::SlowDown),
        Status::Pending => refuse(Refusal::Pending),
    }
}

/// The error a refused poll gets, in the poll's own shape.
pub fn refusal_error(refusal: Refusal, form: PollForm) -> OAuthError {
    match (refusal, form) {
        (Refusal::Pending, _) => OAuthError::new(
            ErrorCode::AuthorizationPending,
            "The customer has not yet approved this device",
        ),
        (Refusal::SlowDown, _) => OAuthError::new(
            ErrorCode::SlowDown,
            "The device is polling too often; wait the interval before the next request",
        ),
        (Refusal::Denied, _) => OAuthError::new(
            ErrorCode::AccessDenied,
            "The customer declined to link this device",
        ),
        (Refusal::Expired, PollForm::Rfc) => OAuthError::new(
            ErrorCode::ExpiredToken,
            "The device code has expired; start again",
        ),
        (Refusal::Expired, PollForm::Lwa) => OAuthError::new(
            ErrorCode::InvalidCodePair,
            "The code pair has expired; request a new one",
        ),
        (Refusal::Invalid, PollForm::Rfc) => OAuthError::grant("device_code"),
        (Refusal::Invalid, PollForm::Lwa) => OAuthError::new(
            ErrorCode::InvalidCodePair,
            "The device code and user code are not a valid pair",
        ),
    }
}

/// The interval after a poll: grown by [`SLOW_DOWN_STEP_SECS`] when the poll came too fast, never past
/// [`MAX_INTERVAL_SECS`]. A poll is too fast when it comes less than `interval` after the previous one.
pub fn next_interval(
    previous_poll: Option<Timestamp>,
    interval: i64,
    now: Timestamp,
) -> (bool, i64) {
    let too_fast = previous_poll.is_some_and(|at| now - at < interval);
    let next = if too_fast {
        (interval + SLOW_DOWN_STEP_SECS).min(MAX_INTERVAL_SECS)
    } else {
        interval
    };
    (too_fast, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::mock::StepRng;

    #[test]
    fn user_codes_use_the_alphabet_and_normalize_back() {
        let mut rng = rand::thread_rng();
        for _ in 0..200 {
            let code = new_user_code(&mut rng);
            assert_eq!(code.len(), USER_CODE_LEN);
            assert!(code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)));
            let shown = display(&code);
            assert_eq!(shown.len(), 9);
            assert_eq!(&shown[4..5], "-");
            assert_eq!(normalize(&shown).as_deref(), Some(code.as_str()));
            assert_eq!(
                normalize(&shown.to_lowercase()).as_deref(),
                Some(code.as_str())
            );
        }
        // A fixed generator still yields only alphabet letters.
        let code = new_user_code(&mut StepRng::new(0, 1 << 60));
        assert!(code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)));
    }

    #[test]
    fn normalize_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("BCDF-GHJK", Some("BCDFGHJK")),
            ("bcdf ghjk", Some("BCDFGHJK")),
            ("  b-c-d-f g h j k ", Some("BCDFGHJK")),
            ("BCDFGHJK", Some("BCDFGHJK")),
            ("BCDF–GHJK", Some("BCDFGHJK")),
            ("BCDF-GHJ", None),
            ("BCDF-GHJKL", None),
            ("BCDF-GHJA", None), // a vowel is never in a code
            ("BCDF-GHJ1", None),
            ("", None),
            ("ßCDF-GHJK", None),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).as_deref(), *want, "input {input:?}");
        }
        assert_eq!(normalize(&"B".repeat(100)), None);
    }

    #[test]
    fn codepair_requests() {
        use crate::scope::STANDARD_SCOPES;
        let p = |q: &str| Params::from_urlencoded(q.as_bytes()).unwrap();
        let ok = parse_codepair(
            &p("response_type=device_code&client_id=c&scope=profile%20postal_code&scope_data=%7B%22postal_code%22%3A%7B%22essential%22%3Afalse%7D%7D"),
            Endpoint::Lwa,
            STANDARD_SCOPES,
        )
        .unwrap();
        assert_eq!(ok.scopes.to_string_sorted(), "postal_code profile");
        assert_eq!(ok.optional_scopes, vec!["postal_code".to_owned()]);
        let rfc = parse_codepair(&p("client_id=c"), Endpoint::Rfc, STANDARD_SCOPES).unwrap();
        assert_eq!(rfc.scopes.to_string_sorted(), "profile");
        let errors: &[(&str, Endpoint, &str, &str)] = &[
            (
                "client_id=c&scope=profile",
                Endpoint::Lwa,
                "invalid_request",
                "response_type",
            ),
            (
                "response_type=code&scope=profile",
                Endpoint::Lwa,
                "unsupported_response_type",
                "response_type",
            ),
            (
                "response_type=device_code",
                Endpoint::Lwa,
                "invalid_request",
                "scope",
            ),
            (
                "response_type=device_code&scope=bogus",
                Endpoint::Lwa,
                "invalid_scope",
                "bogus",
            ),
            (
                "scope=profile&scope_data=%7B",
                Endpoint::Rfc,
                "invalid_request",
                "scope_data",
            ),
            (
                "scope=profile&scope_data=%7B%22postal_code%22%3A%7B%7D%7D",
                Endpoint::Rfc,
                "invalid_request",
                "scope_data",
            ),
        ];
        for (q, endpoint, code, mentions) in errors {
            let e = parse_codepair(&p(q), *endpoint, STANDARD_SCOPES).unwrap_err();
            assert_eq!(e.code.as_str(), *code, "{q}");
            assert!(e.description.contains(mentions), "{q}: {}", e.description);
        }
    }

    #[test]
    fn poll_decisions() {
        let at = |status, too_fast| Poll {
            status,
            expires_at: 1_000,
            too_fast,
        };
        use Refusal::*;
        let cases = [
            (at(Status::Pending, false), 10, Verdict::Refuse(Pending)),
            (at(Status::Pending, true), 10, Verdict::Refuse(SlowDown)),
            (at(Status::Approved, false), 10, Verdict::Issue),
            (at(Status::Approved, true), 10, Verdict::Issue),
            (at(Status::Denied, false), 10, Verdict::Refuse(Denied)),
            (at(Status::Issued, false), 10, Verdict::Refuse(Invalid)),
            (at(Status::Locked, false), 10, Verdict::Refuse(Invalid)),
            (at(Status::Revoked, false), 10, Verdict::Refuse(Invalid)),
            (at(Status::Revoked, true), 10, Verdict::Refuse(Invalid)),
            (at(Status::Pending, false), 1_000, Verdict::Refuse(Expired)),
            (at(Status::Approved, false), 1_000, Verdict::Refuse(Expired)),
            (at(Status::Denied, false), 2_000, Verdict::Refuse(Expired)),
            (at(Status::Issued, false), 2_000, Verdict::Refuse(Invalid)),
        ];
        for (poll, now, want) in cases {
            assert_eq!(decide(&poll, now), want, "{poll:?} at {now}");
        }
    }

    #[test]
    fn refusals_in_each_shape() {
        let code = |r, f| refusal_error(r, f).code.as_str();
        assert_eq!(
            code(Refusal::Pending, PollForm::Lwa),
            "authorization_pending"
        );
        assert_eq!(code(Refusal::SlowDown, PollForm::Rfc), "slow_down");
        assert_eq!(code(Refusal::Denied, PollForm::Lwa), "access_denied");
        assert_eq!(code(Refusal::Expired, PollForm::Rfc), "expired_token");
        assert_eq!(code(Refusal::Expired, PollForm::Lwa), "invalid_code_pair");
        assert_eq!(code(Refusal::Invalid, PollForm::Lwa), "invalid_code_pair");
        assert_eq!(code(Refusal::Invalid, PollForm::Rfc), "invalid_grant");
    }

    #[test]
    fn interval_grows_only_when_too_fast() {
        assert_eq!(next_interval(None, 5, 100), (false, 5));
        assert_eq!(next_interval(Some(95), 5, 100), (false, 5));
        assert_eq!(next_interval(Some(96), 5, 100), (true, 10));
        assert_eq!(next_interval(Some(99), 10, 100), (true, 15));
        assert_eq!(next_interval(Some(99), 60, 100), (true, 60));
    }
}
