//! Storage: the one `Store` trait every flow talks to, its records, and the SQL implementation that serves both
//! SQLite (the embedded default) and PostgreSQL. Every method is atomic by itself; one-time and rotating things
//! are consumed in SQL (`UPDATE … WHERE used_at IS NULL`), never read-then-written in Rust.

mod sql;

pub use sql::{Engine, SqlStore};

use async_trait::async_trait;
use latchkey_core::client::ClientPolicy;
use latchkey_core::code::IssuedCode;
use latchkey_core::device;
use latchkey_core::oidc::SigningAlg;
use latchkey_core::pkce::Challenge;
use latchkey_core::refresh;
use latchkey_core::secret::Digest;
use latchkey_core::Timestamp;

/// A storage failure. Never shown to clients; flows log it with the request id and answer
/// `temporarily_unavailable` when it [is transient](StoreError::is_transient), `server_error` otherwise.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the database is unreachable or overloaded, so that the same request may well succeed in a few
    /// seconds (or on another node): no connection came free in time, the pool is closing (shutdown), the
    /// connection failed, or the database said it cannot take the work now. Anything else (a failing statement,
    /// inconsistent data) is a fault that retrying does not cure.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(e) => sql::is_transient(e),
            StoreError::Migrate(_) | StoreError::Corrupt(_) => false,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A customer account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Internal id: never shown to apps (they see the pairwise `user_id`).
    pub id: String,
    /// Lower-cased.
    pub email: String,
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
    /// only by [`Store::set_client_logo`]; `create_client` and `update_client` ignore it.
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

/// Result of changing a customer's profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileUpdate {
    Updated,
    /// Another account has the email address: nothing changed.
    EmailTaken,
    UnknownUser,
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
    pub email: String,
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

/// Everything Latchkey keeps. One implementation serves SQLite and PostgreSQL; both pass `tests/it/store.rs`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Whether the database answers (for `/readyz`).
    async fn ping(&self) -> StoreResult<()>;
    /// The server secret called `name`, storing `candidate` if there is none yet. Every node gets the same value.
    async fn server_secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>>;
    /// Replaces a server secret's stored value with `new` only if it is still `old` (sealing or re-sealing it
    /// under a master key); false, with nothing changed, if another writer changed it first.
    async fn replace_server_secret(&self, name: &str, old: &[u8], new: &[u8]) -> StoreResult<bool>;
    /// Wipes from the database files what replaced rows left behind (after keys stored in the clear were sealed, or
    /// re-sealed under a new master key). SQLite: rewrites the file (`VACUUM`) and empties the WAL into it. Does
    /// nothing on PostgreSQL, whose old row versions only autovacuum removes (see README, "The master key").
    async fn erase_overwritten_rows(&self) -> StoreResult<()>;

    async fn create_user(&self, user: &User) -> StoreResult<Created>;
    async fn find_user(&self, id: &str) -> StoreResult<Option<User>>;
    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    /// Disables or enables an account; disabling ends its sessions, revokes its tokens and ends the code pairs it
    /// approved, including those being issued at the same moment. False if unknown.
    async fn set_user_disabled(
        &self,
        email: &str,
        disabled: bool,
        now: Timestamp,
    ) -> StoreResult<bool>;

    async fn create_client(&self, client: &Client) -> StoreResult<Created>;
    async fn find_client(&self, client_id: &str) -> StoreResult<Option<Client>>;
    async fn list_clients(&self) -> StoreResult<Vec<Client>>;
    /// Replaces the secret; the old one stays valid until `keep_previous_until`, if given. False if unknown.
    async fn set_client_secret(
        &self,
        client_id: &str,
        secret_hash: &Digest,
        keep_previous_until: Option<Timestamp>,
    ) -> StoreResult<bool>;
    /// Deletes an app with its consents, and revokes every token it holds. False if unknown.
    async fn delete_client(&self, client_id: &str, now: Timestamp) -> StoreResult<bool>;

    async fn create_session(
        &self,
        id_hash: &Digest,
        user_id: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<()>;
    /// The live session with this id, with its (enabled) customer.
    async fn find_session(&self, id_hash: &Digest, now: Timestamp) -> StoreResult<Option<Session>>;
    async fn delete_session(&self, id_hash: &Digest) -> StoreResult<()>;

    async fn find_consent(&self, user_id: &str, client_id: &str) -> StoreResult<Option<Consent>>;
    async fn save_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scopes: &str,
        now: Timestamp,
    ) -> StoreResult<()>;
    async fn list_consents(&self, user_id: &str) -> StoreResult<Vec<Consent>>;
    /// Removes an app's consent and revokes all the tokens it holds for this customer, and the codes and code
    /// pairs it has not redeemed yet, at once; tokens being issued at the same moment are revoked too.
    async fn revoke_consent(
        &self,
        user_id: &str,
        client_id: &str,
        now: Timestamp,
    ) -> StoreResult<()>;

    async fn insert_auth_code(&self, code: &NewAuthCode) -> StoreResult<()>;
    async fn find_auth_code(&self, code_hash: &Digest) -> StoreResult<Option<StoredCode>>;
    /// Marks the code used and stores `grant`, atomically, unless the customer is disabled; if it was already used,
    /// revokes what it issued.
    async fn redeem_auth_code(
        &self,
        code_hash: &Digest,
        grant: &NewGrant,
        now: Timestamp,
    ) -> StoreResult<Redeemed>;
    /// Revokes every token issued from this code (a replayed code).
    async fn revoke_code_grant(&self, code_hash: &Digest, now: Timestamp) -> StoreResult<()>;

    /// Stores tokens that come from no code (implicit grant); nothing for a disabled customer.
    async fn insert_grant(&self, grant: &NewGrant) -> StoreResult<()>;
    /// Stores an access token that belongs to no family (client credentials).
    async fn insert_access_token(&self, token: &NewAccessToken) -> StoreResult<()>;

    async fn find_refresh_token(&self, token_hash: &Digest) -> StoreResult<Option<StoredRefresh>>;
    /// Rotates `old` into `grant` (same family), unless the family is revoked or the customer disabled (`Refused`).
    /// If `old` was no longer active, core's rule (`refresh::decide`, with the grace window `grace`) judges what
    /// was found instead: a reuse revokes the family (`ReuseDetected`), anything else is `Refused`.
    async fn rotate_refresh_token(
        &self,
        old: &Digest,
        grant: &NewGrant,
        now: Timestamp,
        grace: i64,
    ) -> StoreResult<Rotation>;
    /// Refreshes with a reusable refresh token (SPEC 2.2): stores `grant`'s access token in `token`'s family and
    /// leaves `token` as it is, valid for the next use. `false`, and nothing stored, when the token is unknown,
    /// rotated or revoked, its family revoked, or its customer disabled. `grant` carries no refresh token.
    async fn refresh_without_rotation(
        &self,
        token: &Digest,
        grant: &NewGrant,
        now: Timestamp,
    ) -> StoreResult<bool>;

    /// A live (unrevoked, unexpired) access token.
    async fn find_access_token(
        &self,
        token_hash: &Digest,
        now: Timestamp,
    ) -> StoreResult<Option<AccessToken>>;
    /// A live access token with its customer's profile.
    async fn find_token_profile(
        &self,
        token_hash: &Digest,
        now: Timestamp,
    ) -> StoreResult<Option<TokenProfile>>;

    /// Counts one hit in a fixed window and returns the count so far in the current window.
    async fn hit_rate_limit(
        &self,
        bucket: &str,
        window_secs: i64,
        now: Timestamp,
    ) -> StoreResult<i64>;

    /// Takes back one hit of `bucket`'s current window (an attempt that turned out not to count, e.g. a correct
    /// password); never below zero.
    async fn refund_rate_limit(
        &self,
        bucket: &str,
        window_secs: i64,
        now: Timestamp,
    ) -> StoreResult<()>;

    /// Deletes expired codes, sessions, access tokens, rate-limit windows and dead token families.
    async fn purge_expired(&self, now: Timestamp) -> StoreResult<u64>;

    /// How many hits `bucket` has in its current window, without counting one.
    async fn peek_rate_limit(
        &self,
        bucket: &str,
        window_secs: i64,
        now: Timestamp,
    ) -> StoreResult<i64>;

    /// Stores a new code pair; `AlreadyExists` if its user code is taken (draw another).
    async fn insert_device_code(&self, code: &NewDeviceCode) -> StoreResult<Created>;
    /// The code pair with this user code, whatever its state.
    async fn find_device_code(&self, user_code_hash: &Digest)
        -> StoreResult<Option<DeviceRequest>>;
    /// Records the customer's answer if the pair is still pending and unexpired; false otherwise.
    async fn decide_device_code(
        &self,
        user_code_hash: &Digest,
        decision: &DeviceDecision,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Records a poll of `device_hash` by `client_id` (any client if `None`), presenting `user_code_hash` if
    /// given (LWA), and grows the interval when the poll came too fast. Atomic, so any node can answer any poll.
    async fn poll_device_code(
        &self,
        device_hash: &Digest,
        client_id: Option<&str>,
        user_code_hash: Option<&Digest>,
        now: Timestamp,
    ) -> StoreResult<PollOutcome>;
    /// Marks an approved, unexpired pair issued and stores its tokens, whose family may refresh without a client
    /// secret; false (nothing stored) if another poll got there first, the approval was revoked or the customer
    /// is disabled.
    async fn issue_device_grant(
        &self,
        device_hash: &Digest,
        grant: &NewGrant,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Whether a token family came from a device, whose refresh tokens need no client secret.
    async fn secretless_refresh(&self, family_id: &str) -> StoreResult<bool>;

    /// Every signing key, oldest first.
    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;
    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<()>;
    /// Replaces a signing key's sealed private key with `new` only if it is still `old`; false, with nothing
    /// changed, if it is not (another writer got there first, or the key is gone).
    async fn replace_signing_key(&self, kid: &str, old: &[u8], new: &[u8]) -> StoreResult<bool>;
    /// Revokes a signing key (`keys revoke`) and erases its private key: every node stops publishing and signing
    /// with it at its next reload. False if there is no such key or it was already revoked.
    async fn revoke_signing_key(&self, kid: &str, now: Timestamp) -> StoreResult<bool>;
    /// Moves a key's `activate_at` to `at` (a key that was to sign later takes over now).
    async fn activate_signing_key(&self, kid: &str, at: Timestamp) -> StoreResult<bool>;

    /// Revokes one access token of `client_id` (RFC 7009). False if it is unknown, another client's or already
    /// revoked; nothing changes then.
    async fn revoke_access_token(
        &self,
        token_hash: &Digest,
        client_id: &str,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Revokes the whole grant a refresh token of `client_id` belongs to: every access and refresh token of its
    /// family, at once (RFC 7009 2.1). True if the token is this client's (its family is now revoked, perhaps
    /// already was); false, with nothing changed, if it is unknown or another client's.
    async fn revoke_refresh_family(
        &self,
        token_hash: &Digest,
        client_id: &str,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Whether app `client_id` (or, with `None`, some registered app) lists exactly `origin` among its allowed
    /// origins (CORS, SPEC 2.7). An index lookup.
    async fn origin_allowed(&self, origin: &str, client_id: Option<&str>) -> StoreResult<bool>;
    /// Changes a customer's name, email (lower-cased) and postal code at once; `EmailTaken`, with nothing
    /// changed, when another account has that email.
    async fn update_user_profile(
        &self,
        user_id: &str,
        name: &str,
        email: &str,
        postal_code: Option<&str>,
    ) -> StoreResult<ProfileUpdate>;
    /// Replaces the password hash if it is still `old_hash`, and ends every session of the customer except
    /// `keep_session`, at once. False, with nothing changed, if the account is unknown or its password changed
    /// meanwhile.
    async fn change_password(
        &self,
        user_id: &str,
        old_hash: &str,
        new_hash: &str,
        keep_session: Option<&Digest>,
    ) -> StoreResult<bool>;
    /// The customer's live sessions, newest first.
    async fn list_sessions(&self, user_id: &str, now: Timestamp) -> StoreResult<Vec<SessionInfo>>;
    /// Ends one session of this customer (never anyone else's). False if there was no such session.
    async fn delete_user_session(&self, user_id: &str, id_hash: &Digest) -> StoreResult<bool>;
    /// Ends every session of the customer; returns how many there were.
    async fn delete_user_sessions(&self, user_id: &str) -> StoreResult<u64>;
    /// Turns on developer access for a customer; doing it again changes nothing.
    async fn enable_developer(&self, user_id: &str, now: Timestamp) -> StoreResult<()>;
    /// When the customer turned on developer access, if they did.
    async fn developer_since(&self, user_id: &str) -> StoreResult<Option<Timestamp>>;
    /// The apps `owner` owns, oldest first.
    async fn list_clients_by_owner(&self, owner: &str) -> StoreResult<Vec<Client>>;
    /// Replaces what a developer may edit (name, description, URLs, origins, flows, development, ID-token
    /// algorithm) of the app with `client`'s client id and owner; ids, type, secrets, app scopes and creation
    /// time stay.
    /// `verified: false` makes it unverified; `true` leaves the flag as it is (an edit never verifies).
    /// False if `owner` has no such app.
    async fn update_client(&self, client: &Client) -> StoreResult<bool>;
    /// Marks the app verified (`latchkey client verify`). False if there is no such app.
    async fn set_client_verified(&self, client_id: &str) -> StoreResult<bool>;
    /// The app's usage counts at `now`, read in one statement.
    async fn client_usage(&self, client_id: &str, now: Timestamp) -> StoreResult<ClientUsage>;
    /// The app's consent logo, if it has one.
    async fn find_client_logo(&self, client_id: &str) -> StoreResult<Option<Logo>>;
    /// Replaces (`Some`) or removes (`None`) the app's consent logo; `unverify` also makes the app unverified
    /// (a developer's change to what customers see). False if there is no such app.
    async fn set_client_logo(
        &self,
        client_id: &str,
        logo: Option<&Logo>,
        unverify: bool,
        now: Timestamp,
    ) -> StoreResult<bool>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions as _, Executor as _};
    use std::str::FromStr as _;

    #[test]
    fn an_unreachable_or_overloaded_database_is_transient_and_nothing_else() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        for e in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(refused),
        ] {
            assert!(StoreError::from(e).is_transient());
        }
        for e in [
            sqlx::Error::RowNotFound,
            sqlx::Error::Protocol("unexpected message".into()),
            sqlx::Error::ColumnNotFound("x".into()),
        ] {
            assert!(!StoreError::from(e).is_transient());
        }
        assert!(!StoreError::Corrupt("a stored hash is not 32 bytes".into()).is_transient());
    }

    #[tokio::test]
    async fn sqlite_busy_past_its_timeout_is_transient_a_missing_table_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::from_str(&format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("busy.db").display()
        ))
        .unwrap()
        .busy_timeout(std::time::Duration::ZERO);
        let mut writer = options.connect().await.unwrap();
        let mut other = options.connect().await.unwrap();
        writer.execute("BEGIN IMMEDIATE").await.unwrap();
        let busy = other.execute("BEGIN IMMEDIATE").await.unwrap_err();
        assert!(StoreError::from(busy).is_transient());
        let missing = other.execute("SELECT * FROM nowhere").await.unwrap_err();
        assert!(!StoreError::from(missing).is_transient());
    }
}
