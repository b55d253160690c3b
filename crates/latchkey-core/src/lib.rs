//! Latchkey's protocol core: OAuth 2.0 / Login with Amazon requests parsed into types, decisions returned as
//! values, identifiers and tokens minted. Nothing here does I/O: the current time, randomness and keys are
//! arguments, so every rule can be tested with a table.

pub mod address;
pub mod authorize;
pub mod bearer;
pub mod client;
pub mod code;
pub mod device;
pub mod error;
pub mod ids;
pub mod oidc;
pub mod params;
pub mod pkce;
pub mod redirect;
pub mod refresh;
pub mod scope;
pub mod secret;
pub mod token_request;

/// Seconds since the Unix epoch. The core never reads the clock: callers pass `now`.
pub type Timestamp = i64;

/// Authorization codes live at most this long (SPEC 1: at most 5 minutes).
pub const AUTH_CODE_TTL_SECS: i64 = 300;

/// A consent page (or its "Continue to <app>?" form) and a device-confirmation page can be answered this long
/// after they were shown: their tokens are stamped MACs ([`secret::KeyedHasher::stamp_b64`]) refused after it.
pub const CONSENT_PAGE_TTL_SECS: i64 = 15 * 60;
