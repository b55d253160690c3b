//! The records the store traits take and return.

use latchkey_core::client::ClientPolicy;
use latchkey_core::code::IssuedCode;
use latchkey_core::device;
use latchkey_core::oidc::SigningAlg;
use latchkey_core::pkce::Challenge;
use latchkey_core::refresh;
use latchkey_core::secret::Digest;
use latchkey_core::Timestamp;

/// A customer account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Internal id: never shown to apps (they see the pairwise `user_id`).
    pub id: String,
    /// Lower-cased.
    pub email: String,
    /// The owner proved the address by a mailed code (SPEC 2.8), or the operator vouched for it (`user add`). Apps
    /// never get an unverified address.
    pub email_verified: bool,
    pub name: String,
    pub postal_code: Option<String>,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: Timestamp,
}

/// A security profile (app) and its client registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub policy: ClientPolicy,
    pub app_id: String,
    /// The developer who owns it: the input of the pairwise `user_id`.
    pub owner: String,
    pub name: String,
    pub description: String,
    pub privacy_url: String,
    /// The version of its uploaded consent logo, if it has one (served at `/logos/<client_id>/<version>`). Set
    /// only by [`ClientStore::set_client_logo`](super::ClientStore::set_client_logo); `create_client` and `update_client` ignore it.
    pub logo: Option<String>,
    pub allowed_origins: Vec<String>,
    pub secret_hash: Option<Digest>,
    pub prev_secret_hash: Option<Digest>,
    pub prev_secret_expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
    /// How this app's ID tokens are signed.
    pub id_token_alg: SigningAlg,
    /// Made or vouched for by the operator (SPEC 1): `client add`, or `client verify` of a console profile.
    /// An unverified app's errors before any interaction are shown on a page, never redirected (SPEC 2.1).
    pub verified: bool,
    /// The operator's app scopes this app may get through `client_credentials` (SPEC 1): set by the operator
    /// (`client add --app-scope`), never by a console edit.
    pub app_scopes: Vec<String>,
}

/// One of a customer's sessions, as the account page lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub id_hash: Digest,
    pub created_at: Timestamp,
    pub auth_time: Timestamp,
    pub expires_at: Timestamp,
}

/// A signed-in browser session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: User,
    pub auth_time: Timestamp,
    pub expires_at: Timestamp,
}

/// An authorization code about to be stored.
#[derive(Debug, Clone)]
pub struct NewAuthCode {
    pub code_hash: Digest,
    pub client_id: String,
    pub user_id: String,
    pub subject: String,
    pub scopes: String,
    pub redirect_uri: String,
    pub redirect_uri_sent: bool,
    pub challenge: Option<Challenge>,
    pub nonce: Option<String>,
    pub auth_time: Timestamp,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// An authorization code as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCode {
    pub issued: IssuedCode,
    pub user_id: String,
    pub subject: String,
    pub scopes: String,
    pub nonce: Option<String>,
    pub auth_time: Timestamp,
    pub used: bool,
}

/// An access token about to be stored.
#[derive(Debug, Clone)]
pub struct NewAccessToken {
    pub token_hash: Digest,
    pub client_id: String,
    pub app_id: String,
    pub user_id: Option<String>,
    pub subject: Option<String>,
    pub scopes: String,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Tokens issued for a customer's grant: one access token and, usually, a refresh token, in one family.
#[derive(Debug, Clone)]
pub struct NewGrant {
    pub family_id: String,
    pub access: NewAccessToken,
    pub refresh: Option<NewRefresh>,
    pub auth_time: Timestamp,
}

/// A refresh token about to be stored; it keeps the scopes of the whole grant even when the access token beside
/// it was narrowed (RFC 6749 6).
#[derive(Debug, Clone)]
pub struct NewRefresh {
    pub token_hash: Digest,
    pub scopes: String,
}

/// A refresh token as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRefresh {
    pub family_id: String,
    pub client_id: String,
    pub user_id: String,
    pub subject: String,
    pub scopes: String,
    pub auth_time: Timestamp,
    pub status: refresh::Status,
}

/// What an access token grants, as the resource endpoints need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub client_id: String,
    pub app_id: String,
    pub user_id: Option<String>,
    pub subject: Option<String>,
    pub scopes: String,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
}

/// An access token with its customer's profile, read in one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenProfile {
    pub token: AccessToken,
    pub name: String,
    /// The customer's address if it is verified; `None` while it is not (SPEC 2.8: no endpoint releases it).
    pub email: Option<String>,
    pub postal_code: Option<String>,
}

/// A consent a customer gave an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub client_id: String,
    pub scopes: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Result of trying to create something with a unique key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    Created,
    AlreadyExists,
}

/// Result of redeeming an authorization code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redeemed {
    /// The code was unused: it is now used and the grant's tokens are stored.
    Issued,
    /// The code had been used (perhaps a moment ago, by a parallel request): everything it issued is revoked.
    AlreadyUsed,
}

/// Result of rotating a refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The old token is rotated and the new tokens are stored.
    Rotated,
    /// The token had already been rotated outside the grace window: the whole family is revoked.
    ReuseDetected,
    /// The token is unknown, revoked, or was rotated a moment ago by a parallel request: nothing changed.
    Refused,
}

/// A code pair about to be stored (SPEC 2.3).
#[derive(Debug, Clone)]
pub struct NewDeviceCode {
    pub device_hash: Digest,
    pub user_code_hash: Digest,
    pub client_id: String,
    /// Every scope asked for, space-separated.
    pub scopes: String,
    /// The non-essential ones (`scope_data`), which the customer may untick.
    pub optional_scopes: String,
    pub interval: i64,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A code pair as the code-entry page sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRequest {
    pub client_id: String,
    pub scopes: String,
    pub optional_scopes: String,
    pub status: device::Status,
    pub expires_at: Timestamp,
}

/// The customer's answer on the code-entry page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceDecision {
    Approve {
        user_id: String,
        subject: String,
        /// What the customer agreed to share (optional scopes may have been unticked).
        scopes: String,
        auth_time: Timestamp,
    },
    Deny,
}

/// A recorded poll of a code pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePoll {
    pub client_id: String,
    pub poll: device::Poll,
    /// The interval the device must now keep.
    pub interval: i64,
    /// Set once the customer approved.
    pub approval: Option<DeviceDecision>,
}

/// What polling a code pair found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollOutcome {
    /// No such device code, or it belongs to another client: nothing was recorded.
    Unknown,
    /// The user code presented with it is not its own: the failure was counted (and may have locked the pair).
    Mismatch,
    /// The poll was recorded.
    Polled(DevicePoll),
}

/// An ID-token signing key (its private half: the store is the one place every node can read it from).
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub alg: SigningAlg,
    /// The private key, PKCS#8 DER (ES256, EdDSA) or PKCS#1 DER (RS256), sealed under the master key
    /// (`crate::seal`, row `signing_keys/<kid>`). Rows written before keys were sealed hold the bare DER until
    /// the next start seals them.
    pub sealed_key: Vec<u8>,
    pub created_at: Timestamp,
    /// It signs from this time until a newer key of its algorithm activates.
    pub activate_at: Timestamp,
    /// Set by `keys revoke`: neither published nor used again; `sealed_key` is then empty.
    pub revoked_at: Option<Timestamp>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("activate_at", &self.activate_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

/// An app's consent logo: a PNG Latchkey made (`flows::logo`), and the version that names these bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logo {
    pub png: Vec<u8>,
    pub version: String,
}

/// How much an app is used, as its developer sees it in the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientUsage {
    /// Customers who have consented to the app (and not removed it).
    pub consents: i64,
    /// Access tokens that are neither expired nor revoked.
    pub live_access_tokens: i64,
    /// Access tokens issued in the last 24 hours, revoked or not.
    pub issued_last_day: i64,
}

/// How many wrong codes a mailed code allows (SPEC 2.8); the next try finds it locked.
pub const EMAIL_CODE_TRIES: i64 = 5;

/// What a mailed code is for (SPEC 2.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodePurpose {
    /// Proves the account's address (sign-up, or before an app gets it).
    Verify,
    /// Lets the customer choose a new password.
    Reset,
    /// Proves a new address, which then replaces the account's.
    Change,
}

impl CodePurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            CodePurpose::Verify => "verify",
            CodePurpose::Reset => "reset",
            CodePurpose::Change => "change",
        }
    }

    pub fn parse(s: &str) -> Option<CodePurpose> {
        [CodePurpose::Verify, CodePurpose::Reset, CodePurpose::Change]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// A code to store (its 6 digits and its link's token only as keyed hashes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEmailCode {
    /// Random; names the code in the browser that asked for it (a cookie), never enough to use it.
    pub id: String,
    pub purpose: CodePurpose,
    /// `None`: a decoy for an address with no account, which behaves like a code and never matches.
    pub user_id: Option<String>,
    /// The address the code is mailed to (for `Change`, the new one). Lowercase.
    pub email: String,
    pub code_hash: Digest,
    pub link_hash: Digest,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A stored code, whatever its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailCode {
    pub id: String,
    pub purpose: CodePurpose,
    pub user_id: Option<String>,
    pub email: String,
    /// Wrong codes entered so far.
    pub tries: i64,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
}

/// What the customer presents: the code typed on the page the code's id names, or the mailed link.
#[derive(Debug, Clone, Copy)]
pub enum CodeProof<'a> {
    Code { id: &'a str, code_hash: &'a Digest },
    Link { link_hash: &'a Digest },
}

/// What the effect of a redeemed code needs besides the code: the new password's hash for `Reset`.
#[derive(Debug, Clone, Copy)]
pub enum CodeEffect<'a> {
    /// `Verify` and `Change`.
    Apply,
    /// `Reset`: the new password's Argon2id hash.
    NewPassword(&'a str),
}

/// How redeeming a mailed code ended. Every outcome but `Done` changes nothing except the try count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRedeemed {
    /// The code was right and live: it is used up, and its effect is applied in the same transaction (`Verify`:
    /// the address is verified; `Reset`: the password is replaced, every session ended and the address verified;
    /// `Change`: the address is replaced and verified).
    Done(EmailCode),
    /// Wrong code: counted; `tries_left` more are allowed.
    Wrong { tries_left: i64 },
    /// Too many wrong codes: this code is dead (ask for a new one).
    Locked,
    /// Expired, used, replaced by a newer code, unknown, for another purpose, or its account gone or no longer
    /// at that address.
    Gone,
    /// `Change`: another account took the address meanwhile; nothing changed (the code stays unused).
    EmailTaken,
}

/// A mail to queue: the whole message, already sealed under the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMail {
    pub id: String,
    /// Only for logs and metrics; the message names its recipient itself.
    pub recipient: String,
    /// What the mail is (`verify`, `reset`, …): metrics and logs.
    pub kind: String,
    pub sealed_message: Vec<u8>,
    pub created_at: Timestamp,
}

/// A queued mail one sender has claimed for a while.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedMail {
    pub id: String,
    pub recipient: String,
    pub kind: String,
    pub sealed_message: Vec<u8>,
    /// Attempts so far, this one included.
    pub attempts: i64,
    pub created_at: Timestamp,
}

/// One security event of a customer's account (SPEC 2.6, "recent security activity"). No secret in any field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: String,
    pub user_id: String,
    /// What happened, e.g. `signed_in` (`flows::activity::Activity::kind`).
    pub kind: String,
    pub at: Timestamp,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// What the kind needs besides (e.g. the removed app's name).
    pub detail: Option<String>,
}

/// What deleting an account did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteUser {
    /// Gone, with everything it held.
    Deleted,
    /// The account owns this many apps (it is a developer's): nothing was deleted.
    OwnsApps(i64),
    Unknown,
}
