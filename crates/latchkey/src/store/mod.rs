//! Storage: one trait per capability (`UserStore`, `ClientStore`, `SessionStore`, `ConsentStore`, `GrantStore`,
//! `DeviceStore`, `KeyStore`, `LimitStore`, `OpsStore`, `AccountStore`, `MailStore`), their union `Store` (what `AppState` holds), the records
//! (`records.rs`), and the SQL implementation that serves both SQLite (the embedded default) and PostgreSQL. Every method is atomic by itself; one-time and rotating things
//! are consumed in SQL (`UPDATE … WHERE used_at IS NULL`), never read-then-written in Rust.

mod records;
mod sql;

pub use records::*;
pub use sql::{Engine, SqlStore};

use async_trait::async_trait;
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

/// Customer accounts: creation, lookup, profile, password, disabling, developer access.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
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

    /// Changes a customer's name and postal code at once (the address changes only through a verified code,
    /// [`AccountStore::redeem_email_code`]). False if the account is unknown.
    async fn update_user_profile(
        &self,
        user_id: &str,
        name: &str,
        postal_code: Option<&str>,
    ) -> StoreResult<bool>;

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

    /// Turns on developer access for a customer; doing it again changes nothing.
    async fn enable_developer(&self, user_id: &str, now: Timestamp) -> StoreResult<()>;

    /// When the customer turned on developer access, if they did.
    async fn developer_since(&self, user_id: &str) -> StoreResult<Option<Timestamp>>;
}

/// Apps (security profiles): registration, secrets, edits, logos, origins, usage, deletion.
#[async_trait]
pub trait ClientStore: Send + Sync + 'static {
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

    /// Whether app `client_id` (or, with `None`, some registered app) lists exactly `origin` among its allowed
    /// origins (CORS, SPEC 2.7). An index lookup.
    async fn origin_allowed(&self, origin: &str, client_id: Option<&str>) -> StoreResult<bool>;

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

/// Customers' browser sessions.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
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

    /// The customer's live sessions, newest first.
    async fn list_sessions(&self, user_id: &str, now: Timestamp) -> StoreResult<Vec<SessionInfo>>;

    /// Ends one session of this customer (never anyone else's). False if there was no such session.
    async fn delete_user_session(&self, user_id: &str, id_hash: &Digest) -> StoreResult<bool>;

    /// Ends every session of the customer; returns how many there were.
    async fn delete_user_sessions(&self, user_id: &str) -> StoreResult<u64>;
}

/// The consents customers gave apps, and their removal.
#[async_trait]
pub trait ConsentStore: Send + Sync + 'static {
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
}

/// Authorization codes, token families, access and refresh tokens: issuance, rotation, revocation.
#[async_trait]
pub trait GrantStore: Send + Sync + 'static {
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

    /// Whether a token family came from a device, whose refresh tokens need no client secret.
    async fn secretless_refresh(&self, family_id: &str) -> StoreResult<bool>;

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
}

/// Code pairs of the device flow (SPEC 2.3).
#[async_trait]
pub trait DeviceStore: Send + Sync + 'static {
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
}

/// Server secrets and ID-token signing keys, which every node reads from the store.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// The server secret called `name`, storing `candidate` if there is none yet. Every node gets the same value.
    async fn server_secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>>;

    /// Replaces a server secret's stored value with `new` only if it is still `old` (sealing or re-sealing it
    /// under a master key); false, with nothing changed, if another writer changed it first.
    async fn replace_server_secret(&self, name: &str, old: &[u8], new: &[u8]) -> StoreResult<bool>;

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
}

/// Fixed-window rate-limit counters.
#[async_trait]
pub trait LimitStore: Send + Sync + 'static {
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

    /// How many hits `bucket` has in its current window, without counting one.
    async fn peek_rate_limit(
        &self,
        bucket: &str,
        window_secs: i64,
        now: Timestamp,
    ) -> StoreResult<i64>;
}

/// Mailed codes (SPEC 2.8): verification, password reset, email change, each applied in the transaction that
/// uses the code up.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Stores a new code and ends every earlier live code of the same purpose for the same account (or, for a
    /// decoy, the same address), at once: only the newest code mailed works.
    async fn create_email_code(&self, code: &NewEmailCode, now: Timestamp) -> StoreResult<()>;

    /// The code with this id, whatever its state.
    async fn find_email_code(&self, id: &str) -> StoreResult<Option<EmailCode>>;

    /// The account's newest live (unused, unexpired, unlocked) code for `purpose`, if any.
    async fn live_email_code(
        &self,
        user_id: &str,
        purpose: CodePurpose,
        now: Timestamp,
    ) -> StoreResult<Option<EmailCode>>;

    /// Uses up a live code of `purpose` if `proof` matches, applying its effect in the same transaction (see
    /// [`CodeRedeemed::Done`]); a wrong code counts one try, atomically, so parallel guesses cannot pass
    /// [`EMAIL_CODE_TRIES`].
    async fn redeem_email_code(
        &self,
        proof: CodeProof<'_>,
        purpose: CodePurpose,
        effect: CodeEffect<'_>,
        now: Timestamp,
    ) -> StoreResult<CodeRedeemed>;

    /// Deletes an account and everything it holds, at once (SPEC 2.6): its tokens, token families, codes,
    /// consents, sessions, device code pairs, mailed codes and security activity, then the account itself; a
    /// token being issued for it at the same moment is refused. Refused, with nothing deleted, while the account
    /// owns apps.
    async fn delete_user(&self, user_id: &str, now: Timestamp) -> StoreResult<DeleteUser>;
}

/// The durable queue of outgoing mail, which every node's sender drains.
#[async_trait]
pub trait MailStore: Send + Sync + 'static {
    /// Queues a mail, due now.
    async fn enqueue_mail(&self, mail: &QueuedMail) -> StoreResult<()>;

    /// Claims the mail due longest, for `lease` seconds (another sender may take it after that, if this one died
    /// sending it), counting one attempt. `None` if no mail is due.
    async fn claim_mail(&self, now: Timestamp, lease: i64) -> StoreResult<Option<ClaimedMail>>;

    /// The mail was delivered (or written to the outbox): its row goes.
    async fn mail_sent(&self, id: &str) -> StoreResult<()>;

    /// The attempt failed: try again at `retry_at`, or with `None` give up (the message is erased, the error
    /// kept).
    async fn mail_failed(
        &self,
        id: &str,
        error: &str,
        retry_at: Option<Timestamp>,
        now: Timestamp,
    ) -> StoreResult<()>;

    /// How many mails wait to be sent, and how many were given up on (still kept for the operator to see).
    async fn mail_backlog(&self) -> StoreResult<(i64, i64)>;
}

/// Operations: readiness, purging expired rows, erasing overwritten rows.
#[async_trait]
pub trait OpsStore: Send + Sync + 'static {
    /// Whether the database answers (for `/readyz`).
    async fn ping(&self) -> StoreResult<()>;

    /// Wipes from the database files what replaced rows left behind (after keys stored in the clear were sealed, or
    /// re-sealed under a new master key). SQLite: rewrites the file (`VACUUM`) and empties the WAL into it. Does
    /// nothing on PostgreSQL, whose old row versions only autovacuum removes (see README, "The master key").
    async fn erase_overwritten_rows(&self) -> StoreResult<()>;

    /// Deletes expired codes, sessions, access tokens, rate-limit windows and dead token families.
    async fn purge_expired(&self, now: Timestamp) -> StoreResult<u64>;
}

/// Customers' security events (SPEC 2.6, "recent security activity").
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    async fn record_event(&self, event: &AuditEvent) -> StoreResult<()>;

    /// The customer's events, newest first, at most `limit`.
    async fn list_events(&self, user_id: &str, limit: u32) -> StoreResult<Vec<AuditEvent>>;

    /// Deletes every event older than `before` (the retention, `audit_retention_days`); returns how many.
    async fn purge_events(&self, before: Timestamp) -> StoreResult<u64>;
}

/// Everything Latchkey keeps: the union of the capability traits, so that `Arc<dyn Store>` is the whole store. One
/// implementation serves SQLite and PostgreSQL; both pass `tests/it/store.rs`. A flow asks only for the capabilities it
/// calls (`&dyn GrantStore`, or imports just those traits); the blanket impl makes every type with all of them a
/// `Store`.
pub trait Store:
    UserStore
    + ClientStore
    + SessionStore
    + ConsentStore
    + GrantStore
    + DeviceStore
    + KeyStore
    + LimitStore
    + OpsStore
    + AccountStore
    + MailStore
    + AuditStore
{
}

impl<T> Store for T where
    T: UserStore
        + ClientStore
        + SessionStore
        + ConsentStore
        + GrantStore
        + DeviceStore
        + KeyStore
        + LimitStore
        + OpsStore
        + AccountStore
        + MailStore
        + AuditStore
{
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
