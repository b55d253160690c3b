//! The SQL implementation of [`Store`] for SQLite and PostgreSQL, through sqlx's `Any` driver. The statements
//! are written once in the common dialect (`$n` placeholders, `ON CONFLICT`, `RETURNING`, integer times, byte
//! hashes); only the migrations differ per engine, and one clause: the `FOR SHARE` row lock by which issuing
//! transactions make revocations wait for them ([`SqlStore::share`], which SQLite, with one writer, does not need).
//! Every transaction starts with a write, so SQLite takes its write lock up front and never fails a lock upgrade.
//!
//! **Revocation wins races.** Every transaction that revokes a customer's tokens starts by writing that customer's
//! `users` row ([`LOCK_CUSTOMER`], or the write that disables the account). Every transaction that issues tokens
//! for a customer reads that row `FOR SHARE`, and refuses a disabled customer, in the statement that consumes its
//! code, refresh token or approved pair (or, for the implicit grant, that inserts its family). So on PostgreSQL
//! under READ COMMITTED a revocation either waits for an issuance in flight and then sees its tokens, or the
//! issuance waits for the revocation and then finds its code, token or pair used up or revoked.

use super::*;
use latchkey_core::client::{ClientKind, ClientPolicy, Feature, Features};
use latchkey_core::code::IssuedCode;
use latchkey_core::device;
use latchkey_core::oidc::SigningAlg;
use latchkey_core::pkce::Challenge;
use latchkey_core::refresh;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Row};
use std::time::Duration;

mod accounts;
mod audit;
mod mail;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which engine a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn of(url: &str) -> Option<Engine> {
        if url.starts_with("sqlite:") {
            Some(Engine::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Engine::Postgres)
        } else {
            None
        }
    }
}

/// See [`StoreError::is_transient`]; what each engine says when it cannot take the work now.
pub(super) fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => {
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                // Class 08: connection exception; 53200 out_of_memory, 53300 too_many_connections;
                // 57P01-57P03: admin_shutdown, crash_shutdown, cannot_connect_now (a restart or failover).
                let code = pg.code();
                code.starts_with("08")
                    || matches!(code, "53200" | "53300" | "57P01" | "57P02" | "57P03")
            } else if let Some(sqlite) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                // SQLITE_BUSY in any of its extended forms: locked by another writer for longer than
                // busy_timeout.
                sqlx::error::DatabaseError::code(sqlite)
                    .and_then(|c| c.parse::<i32>().ok())
                    .is_some_and(|c| c & 0xff == 5)
            } else {
                false
            }
        }
        _ => false,
    }
}

/// SQLite or PostgreSQL. Every write, and every read inside a write, goes through `pool`; the hot paths' plain
/// reads (tokens, clients, sessions) through `reader`. On PostgreSQL they are one pool. On SQLite, which has one
/// writer at a time, `pool` is a single connection, so writers queue in the process instead of contending for
/// the file lock (SQLite's busy handler sleeps whole milliseconds), and `reader` has several, which WAL lets read
/// alongside the writer and which always see what it has committed.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    reader: AnyPool,
    engine: Engine,
}

fn digest(bytes: Vec<u8>) -> StoreResult<Digest> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("a stored hash is not 32 bytes".into()))
}

fn opt_digest(bytes: Option<Vec<u8>>) -> StoreResult<Option<Digest>> {
    bytes.map(digest).transpose()
}

fn flag(b: bool) -> i64 {
    i64::from(b)
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn parse_list(s: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(s).map_err(|_| StoreError::Corrupt("a stored list is not JSON".into()))
}

const USER_COLUMNS: &str =
    "u.id, u.email, u.email_verified, u.name, u.postal_code, u.password_hash, u.disabled, u.created_at";

fn user_from(row: &AnyRow) -> StoreResult<User> {
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        email_verified: row.try_get::<i64, _>("email_verified")? != 0,
        name: row.try_get("name")?,
        postal_code: row.try_get("postal_code")?,
        password_hash: row.try_get("password_hash")?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

const CLIENT_COLUMNS: &str = "client_id, app_id, owner, name, description, privacy_url, redirect_uris, \
    allowed_origins, confidential, allow_implicit, allow_plain_pkce, allow_device, allow_client_credentials, \
    development, secret_hash, prev_secret_hash, prev_secret_expires_at, created_at, id_token_alg, verified, \
    app_scopes, reusable_refresh";

/// What `SELECT`s of clients read besides [`CLIENT_COLUMNS`]: the version of the app's logo, if any.
const CLIENT_LOGO: &str =
    "(SELECT l.version FROM client_logos l WHERE l.client_id = clients.client_id) AS logo";

/// Makes `client_origins` hold exactly `origins` for `client_id` (inside the caller's transaction).
async fn put_origins(tx: &mut Tx<'_>, client_id: &str, origins: &[String]) -> StoreResult<()> {
    sqlx::query("DELETE FROM client_origins WHERE client_id = $1")
        .bind(client_id)
        .execute(&mut **tx)
        .await?;
    for origin in origins {
        sqlx::query(
            "INSERT INTO client_origins (origin, client_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(origin)
        .bind(client_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The column of `clients` that holds each feature, as a 0/1 flag.
fn feature_column(f: Feature) -> &'static str {
    match f {
        Feature::Implicit => "allow_implicit",
        Feature::PlainPkce => "allow_plain_pkce",
        Feature::Device => "allow_device",
        Feature::ClientCredentials => "allow_client_credentials",
        Feature::Development => "development",
        Feature::ReusableRefresh => "reusable_refresh",
    }
}

/// The policy a `clients` row holds (the one way from its columns to the type; `create_client` and `update_client` bind them back).
fn policy_from(row: &AnyRow) -> StoreResult<ClientPolicy> {
    let b = |name: &str| -> StoreResult<bool> { Ok(row.try_get::<i64, _>(name)? != 0) };
    let mut features = Features::NONE;
    for f in Feature::ALL {
        features.set(f, b(feature_column(f))?);
    }
    Ok(ClientPolicy {
        client_id: row.try_get("client_id")?,
        kind: if b("confidential")? {
            ClientKind::Confidential
        } else {
            ClientKind::Public
        },
        redirect_uris: parse_list(&row.try_get::<String, _>("redirect_uris")?)?,
        features,
    })
}

fn client_from(row: &AnyRow) -> StoreResult<Client> {
    let b = |name: &str| -> StoreResult<bool> { Ok(row.try_get::<i64, _>(name)? != 0) };
    Ok(Client {
        policy: policy_from(row)?,
        app_id: row.try_get("app_id")?,
        owner: row.try_get("owner")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        privacy_url: row.try_get("privacy_url")?,
        logo: row.try_get("logo")?,
        allowed_origins: parse_list(&row.try_get::<String, _>("allowed_origins")?)?,
        secret_hash: opt_digest(row.try_get("secret_hash")?)?,
        prev_secret_hash: opt_digest(row.try_get("prev_secret_hash")?)?,
        prev_secret_expires_at: row.try_get("prev_secret_expires_at")?,
        created_at: row.try_get("created_at")?,
        id_token_alg: signing_alg(&row.try_get::<String, _>("id_token_alg")?)?,
        verified: b("verified")?,
        app_scopes: parse_list(&row.try_get::<String, _>("app_scopes")?)?,
    })
}

fn signing_alg(s: &str) -> StoreResult<SigningAlg> {
    SigningAlg::parse(s)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown signing algorithm {s}")))
}

const TOKEN_COLUMNS: &str =
    "t.client_id, t.app_id, t.user_id, t.subject, t.scopes, t.issued_at, t.expires_at";

fn token_from(row: &AnyRow) -> StoreResult<AccessToken> {
    Ok(AccessToken {
        client_id: row.try_get("client_id")?,
        app_id: row.try_get("app_id")?,
        user_id: row.try_get("user_id")?,
        subject: row.try_get("subject")?,
        scopes: row.try_get("scopes")?,
        issued_at: row.try_get("issued_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// The first statement of every revoking transaction (see the module comment), completed by a condition on `id`:
/// a no-op write of the customer's row, which waits for that customer's issuing transactions in flight.
const LOCK_CUSTOMER: &str = "UPDATE users SET disabled = disabled WHERE id";

/// The customer a grant is for.
fn grant_user(g: &NewGrant) -> StoreResult<&str> {
    g.access
        .user_id
        .as_deref()
        .ok_or_else(|| StoreError::Corrupt("a grant without a customer".into()))
}

/// Stores an access token: inside a grant's transaction, or alone (one statement is atomic by itself).
async fn insert_access<'e>(
    ex: impl sqlx::Executor<'e, Database = sqlx::Any>,
    t: &NewAccessToken,
    family_id: Option<&str>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO access_tokens (token_hash, family_id, client_id, app_id, user_id, subject, scopes, issued_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(t.token_hash.to_vec())
    .bind(family_id)
    .bind(&t.client_id)
    .bind(&t.app_id)
    .bind(t.user_id.as_deref())
    .bind(t.subject.as_deref())
    .bind(&t.scopes)
    .bind(t.issued_at)
    .bind(t.expires_at)
    .execute(ex)
    .await?;
    Ok(())
}

/// Stores a grant's family (if new), access token and refresh token.
async fn insert_grant_rows(
    tx: &mut Tx<'_>,
    g: &NewGrant,
    code_hash: Option<&Digest>,
    new_family: bool,
) -> StoreResult<()> {
    let user_id = grant_user(g)?;
    let subject = g.access.subject.as_deref().unwrap_or_default();
    if new_family {
        sqlx::query("INSERT INTO token_families (id, client_id, user_id, code_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&g.family_id)
            .bind(&g.access.client_id)
            .bind(user_id)
            .bind(code_hash.map(|h| h.to_vec()))
            .bind(g.access.issued_at)
            .execute(&mut **tx)
            .await?;
    }
    insert_access(&mut **tx, &g.access, Some(&g.family_id)).await?;
    if let Some(r) = &g.refresh {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, subject, scopes, auth_time, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(r.token_hash.to_vec())
        .bind(&g.family_id)
        .bind(&g.access.client_id)
        .bind(user_id)
        .bind(subject)
        .bind(&r.scopes)
        .bind(g.auth_time)
        .bind(g.access.issued_at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// What one revocation covers. Every revoking transaction goes through [`revoke`], so each scope revokes the
/// same things in the same order.
#[derive(Clone, Copy)]
enum Revoke<'a> {
    /// One family (a reused refresh token, RFC 7009 on a refresh token).
    Family(&'a str),
    /// The families issued from one authorization code (a replayed code).
    FromCode(&'a Digest),
    /// Everything of one customer at one app (Remove on the account page): also its unredeemed codes and the code
    /// pairs it approved and has not collected.
    UserClient {
        user_id: &'a str,
        client_id: &'a str,
    },
    /// Everything of one customer (a disabled account): also their unredeemed codes and approved code pairs.
    User(&'a str),
    /// Everything an app holds (a deleted app): also its unredeemed codes.
    Client(&'a str),
}

impl<'a> Revoke<'a> {
    /// The condition that picks this scope's rows in `access_tokens` and `refresh_tokens` (`$1`, `$2` the keys).
    fn tokens(self) -> &'static str {
        match self {
            Revoke::Family(_) => "family_id IN (SELECT id FROM token_families WHERE id = $1)",
            Revoke::FromCode(_) => {
                "family_id IN (SELECT id FROM token_families WHERE code_hash = $1)"
            }
            Revoke::UserClient { .. } => "user_id = $1 AND client_id = $2",
            Revoke::User(_) => "user_id = $1",
            Revoke::Client(_) => "client_id = $1",
        }
    }

    /// The condition that picks this scope's rows in `token_families`.
    fn families(self) -> &'static str {
        match self {
            Revoke::Family(_) => "id = $1",
            Revoke::FromCode(_) => "code_hash = $1",
            other => other.tokens(),
        }
    }

    /// The customers whose issuances this revocation must wait for ([`LOCK_CUSTOMER`]'s condition on `id`): every
    /// customer the scope could be issuing tokens for at this moment (from a family, a code or an approved pair).
    fn customers(self) -> &'static str {
        match self {
            Revoke::Family(_) => "IN (SELECT user_id FROM token_families WHERE id = $1)",
            Revoke::FromCode(_) => "IN (SELECT user_id FROM token_families WHERE code_hash = $1)",
            Revoke::UserClient { .. } | Revoke::User(_) => "= $1",
            Revoke::Client(_) => {
                "IN (SELECT user_id FROM token_families WHERE client_id = $1 \
                 UNION SELECT user_id FROM auth_codes WHERE client_id = $1 \
                 UNION SELECT user_id FROM device_codes WHERE client_id = $1 AND user_id IS NOT NULL)"
            }
        }
    }

    /// How many keys the conditions name; the time is the parameter after them.
    fn keys(self) -> usize {
        match self {
            Revoke::UserClient { .. } => 2,
            _ => 1,
        }
    }

    /// Binds exactly the keys the conditions name (PostgreSQL refuses a cached prepared statement given more binds
    /// than it was prepared with).
    fn bind<'q>(
        self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>
    where
        'a: 'q,
    {
        match self {
            Revoke::Family(key) | Revoke::User(key) | Revoke::Client(key) => query.bind(key),
            Revoke::FromCode(code) => query.bind(code.to_vec()),
            Revoke::UserClient { user_id, client_id } => query.bind(user_id).bind(client_id),
        }
    }
}

/// The one revocation: revokes every token and family of `which` (and, for a customer's or an app's grants, uses
/// up their unredeemed codes and ends the approved code pairs not yet collected), inside the caller's
/// transaction. Its first statement writes the customers' `users` rows ([`LOCK_CUSTOMER`]), so an issuance in
/// flight for them either commits first and is revoked here, or waits and then finds what it would consume used
/// up or revoked (see the module comment). A transaction that already consumed something (and so may hold a
/// customer's row `FOR SHARE`) must not call it, or two of them could deadlock: it revokes in a transaction of
/// its own ([`revoke_alone`]).
async fn revoke(tx: &mut Tx<'_>, which: Revoke<'_>, now: Timestamp) -> StoreResult<()> {
    let lock = format!("{LOCK_CUSTOMER} {}", which.customers());
    match which {
        // The customers' condition names only the customer.
        Revoke::UserClient { user_id, .. } => sqlx::query(&lock).bind(user_id),
        _ => which.bind(sqlx::query(&lock)),
    }
    .execute(&mut **tx)
    .await?;
    match which {
        Revoke::UserClient { user_id, client_id } => {
            revoke_approved_pairs(tx, user_id, Some(client_id)).await?
        }
        Revoke::User(user_id) => revoke_approved_pairs(tx, user_id, None).await?,
        Revoke::Family(_) | Revoke::FromCode(_) | Revoke::Client(_) => {}
    }
    let at = which.keys() + 1;
    let mut statements = vec![
        format!(
            "UPDATE access_tokens SET revoked_at = ${at} WHERE {} AND revoked_at IS NULL",
            which.tokens()
        ),
        format!(
            "UPDATE refresh_tokens SET revoked_at = ${at} WHERE {} AND revoked_at IS NULL",
            which.tokens()
        ),
        format!(
            "UPDATE token_families SET revoked_at = ${at} WHERE {} AND revoked_at IS NULL",
            which.families()
        ),
    ];
    if !matches!(which, Revoke::Family(_) | Revoke::FromCode(_)) {
        // No unredeemed code of the scope buys tokens later.
        statements.push(format!(
            "UPDATE auth_codes SET used_at = ${at} WHERE {} AND used_at IS NULL",
            which.tokens()
        ));
    }
    for sql in &statements {
        which
            .bind(sqlx::query(sql))
            .bind(now)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// [`revoke`] in a transaction of its own (after a failed consume, see there).
async fn revoke_alone(pool: &AnyPool, which: Revoke<'_>, now: Timestamp) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    revoke(&mut tx, which, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Ends the code pairs a customer approved (at one app, or at any) whose device has not collected its tokens yet,
/// so that the next poll is refused.
async fn revoke_approved_pairs(
    tx: &mut Tx<'_>,
    user_id: &str,
    client_id: Option<&str>,
) -> StoreResult<()> {
    let sql = match client_id {
        Some(_) => "UPDATE device_codes SET status = $1 WHERE user_id = $3 AND status = $2 AND client_id = $4",
        None => "UPDATE device_codes SET status = $1 WHERE user_id = $3 AND status = $2",
    };
    let query = sqlx::query(sql)
        .bind(device::Status::Revoked.as_str())
        .bind(device::Status::Approved.as_str())
        .bind(user_id);
    match client_id {
        Some(c) => query.bind(c),
        None => query,
    }
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl SqlStore {
    /// Connects to `url` (`sqlite://path?mode=rwc` or `postgres://…`). Does not migrate.
    pub async fn connect(url: &str) -> StoreResult<SqlStore> {
        sqlx::any::install_default_drivers();
        let engine = Engine::of(url).ok_or_else(|| {
            StoreError::Corrupt("the database URL must start with sqlite: or postgres://".into())
        })?;
        let options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        let (pool, reader) = match engine {
            Engine::Sqlite => {
                let sqlite = |options: AnyPoolOptions| {
                    options.after_connect(|conn, _| {
                        Box::pin(async move {
                            use sqlx::Executor as _;
                            for pragma in [
                                "PRAGMA journal_mode = WAL",
                                "PRAGMA synchronous = NORMAL",
                                "PRAGMA busy_timeout = 10000",
                                // Deleted and overwritten content is zeroed, not left in free space: a row a key
                                // was sealed over must not keep the key (it only zeroes what is freed anyway).
                                "PRAGMA secure_delete = ON",
                            ] {
                                conn.execute(pragma).await?;
                            }
                            Ok(())
                        })
                    })
                };
                // The writer first: it creates the file and switches it to WAL before any reader opens it.
                let writer = sqlite(options.clone().max_connections(1).min_connections(1))
                    .connect(url)
                    .await?;
                let reader = sqlite(options.max_connections(8).min_connections(1))
                    .connect(url)
                    .await?;
                (writer, reader)
            }
            Engine::Postgres => {
                let pool = options.max_connections(16).connect(url).await?;
                (pool.clone(), pool)
            }
        };
        Ok(SqlStore {
            pool,
            reader,
            engine,
        })
    }

    /// Applies the embedded migrations for this engine.
    pub async fn migrate(&self) -> StoreResult<()> {
        match self.engine {
            Engine::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Engine::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The row lock an issuing transaction takes on its customer's `users` row (see the module comment): shared,
    /// so issuances do not wait for each other, only revocations for them. SQLite has one writer at a time and
    /// every transaction starts with a write, so it needs none (and has no such syntax).
    fn share(&self) -> &'static str {
        match self.engine {
            Engine::Postgres => " FOR SHARE",
            Engine::Sqlite => "",
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.reader.close().await;
    }
}

#[async_trait]
impl UserStore for SqlStore {
    async fn create_user(&self, u: &User) -> StoreResult<Created> {
        let done = sqlx::query(
            "INSERT INTO users (id, email, email_verified, name, postal_code, password_hash, disabled, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(&u.id)
        .bind(&u.email)
        .bind(flag(u.email_verified))
        .bind(&u.name)
        .bind(u.postal_code.as_deref())
        .bind(&u.password_hash)
        .bind(flag(u.disabled))
        .bind(u.created_at)
        .execute(&self.pool)
        .await?;
        Ok(if done.rows_affected() == 1 {
            Created::Created
        } else {
            Created::AlreadyExists
        })
    }

    async fn find_user(&self, id: &str) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1");
        sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(user_from)
            .transpose()
    }

    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.email = $1");
        sqlx::query(&sql)
            .bind(email)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_from)
            .transpose()
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users u ORDER BY u.created_at, u.email");
        sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(user_from)
            .collect()
    }

    async fn set_user_disabled(
        &self,
        email: &str,
        disabled: bool,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("UPDATE users SET disabled = $1 WHERE email = $2 RETURNING id")
            .bind(flag(disabled))
            .bind(email)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(false) };
        if disabled {
            let id: String = row.try_get("id")?;
            // Exactly the parameters each statement names (see `delete_client`).
            for sql in [
                "DELETE FROM sessions WHERE user_id = $1",
                "DELETE FROM auth_codes WHERE user_id = $1 AND used_at IS NULL",
            ] {
                sqlx::query(sql).bind(&id).execute(&mut *tx).await?;
            }
            // The row is written already (above), so issuances in flight for the customer are ordered before this.
            revoke(&mut tx, Revoke::User(&id), now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn update_user_profile(
        &self,
        user_id: &str,
        name: &str,
        postal_code: Option<&str>,
    ) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE users SET name = $2, postal_code = $3 WHERE id = $1")
            .bind(user_id)
            .bind(name)
            .bind(postal_code)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn change_password(
        &self,
        user_id: &str,
        old_hash: &str,
        new_hash: &str,
        keep_session: Option<&Digest>,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2 RETURNING id",
        )
        .bind(user_id)
        .bind(old_hash)
        .bind(new_hash)
        .fetch_optional(&mut *tx)
        .await?;
        if changed.is_none() {
            return Ok(false);
        }
        match keep_session {
            Some(keep) => {
                sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2")
                    .bind(user_id)
                    .bind(keep.to_vec())
                    .execute(&mut *tx)
                    .await?;
            }
            None => {
                sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn enable_developer(&self, user_id: &str, now: Timestamp) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO developers (user_id, created_at) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING",
        )
        .bind(user_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn developer_since(&self, user_id: &str) -> StoreResult<Option<Timestamp>> {
        let row = sqlx::query("SELECT created_at FROM developers WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get("created_at"))
            .transpose()
            .map_err(Into::into)
    }
}

#[async_trait]
impl ClientStore for SqlStore {
    async fn create_client(&self, c: &Client) -> StoreResult<Created> {
        let sql = format!(
            "INSERT INTO clients ({CLIENT_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22) ON CONFLICT DO NOTHING"
        );
        let p = &c.policy;
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(&sql)
            .bind(&p.client_id)
            .bind(&c.app_id)
            .bind(&c.owner)
            .bind(&c.name)
            .bind(&c.description)
            .bind(&c.privacy_url)
            .bind(json_list(&p.redirect_uris))
            .bind(json_list(&c.allowed_origins))
            .bind(flag(p.is_confidential()))
            .bind(flag(p.allows(Feature::Implicit)))
            .bind(flag(p.allows(Feature::PlainPkce)))
            .bind(flag(p.allows(Feature::Device)))
            .bind(flag(p.allows(Feature::ClientCredentials)))
            .bind(flag(p.allows(Feature::Development)))
            .bind(c.secret_hash.map(|h| h.to_vec()))
            .bind(c.prev_secret_hash.map(|h| h.to_vec()))
            .bind(c.prev_secret_expires_at)
            .bind(c.created_at)
            .bind(c.id_token_alg.as_str())
            .bind(flag(c.verified))
            .bind(json_list(&c.app_scopes))
            .bind(flag(p.allows(Feature::ReusableRefresh)))
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            return Ok(Created::AlreadyExists);
        }
        put_origins(&mut tx, &p.client_id, &c.allowed_origins).await?;
        tx.commit().await?;
        Ok(Created::Created)
    }

    async fn find_client(&self, client_id: &str) -> StoreResult<Option<Client>> {
        let sql =
            format!("SELECT {CLIENT_COLUMNS}, {CLIENT_LOGO} FROM clients WHERE client_id = $1");
        sqlx::query(&sql)
            .bind(client_id)
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(client_from)
            .transpose()
    }

    async fn list_clients(&self) -> StoreResult<Vec<Client>> {
        let sql = format!(
            "SELECT {CLIENT_COLUMNS}, {CLIENT_LOGO} FROM clients ORDER BY created_at, client_id"
        );
        sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(client_from)
            .collect()
    }

    async fn set_client_secret(
        &self,
        client_id: &str,
        secret_hash: &Digest,
        keep_previous_until: Option<Timestamp>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE clients SET \
               prev_secret_hash = CASE WHEN $3 IS NULL THEN NULL ELSE secret_hash END, \
               prev_secret_expires_at = $3, \
               secret_hash = $2 \
             WHERE client_id = $1",
        )
        .bind(client_id)
        .bind(secret_hash.to_vec())
        .bind(keep_previous_until)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_client(&self, client_id: &str, now: Timestamp) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        // Revocation wins (see the module comment): its first statement waits for every customer the app could be
        // issuing tokens for at this moment. If there is no such app, the transaction is dropped (rolled back).
        revoke(&mut tx, Revoke::Client(client_id), now).await?;
        let done = sqlx::query("DELETE FROM clients WHERE client_id = $1")
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        put_origins(&mut tx, client_id, &[]).await?;
        // Each statement gets exactly the parameters it names: PostgreSQL refuses a cached prepared statement given
        // more binds than it was prepared with (the same text is prepared with one bind elsewhere).
        for sql in [
            "DELETE FROM consents WHERE client_id = $1",
            "DELETE FROM client_logos WHERE client_id = $1",
        ] {
            sqlx::query(sql).bind(client_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn origin_allowed(&self, origin: &str, client_id: Option<&str>) -> StoreResult<bool> {
        let row = match client_id {
            Some(client_id) => {
                sqlx::query(
                    "SELECT 1 AS one FROM client_origins WHERE origin = $1 AND client_id = $2",
                )
                .bind(origin)
                .bind(client_id)
                .fetch_optional(&self.reader)
                .await?
            }
            None => {
                sqlx::query("SELECT 1 AS one FROM client_origins WHERE origin = $1 LIMIT 1")
                    .bind(origin)
                    .fetch_optional(&self.reader)
                    .await?
            }
        };
        Ok(row.is_some())
    }

    async fn list_clients_by_owner(&self, owner: &str) -> StoreResult<Vec<Client>> {
        let sql = format!(
            "SELECT {CLIENT_COLUMNS}, {CLIENT_LOGO} FROM clients WHERE owner = $1 ORDER BY created_at, client_id"
        );
        sqlx::query(&sql)
            .bind(owner)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(client_from)
            .collect()
    }

    async fn update_client(&self, c: &Client) -> StoreResult<bool> {
        let p = &c.policy;
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE clients SET name = $3, description = $4, privacy_url = $5, \
               redirect_uris = $6, allowed_origins = $7, allow_implicit = $8, allow_plain_pkce = $9, \
               allow_device = $10, allow_client_credentials = $11, development = $12, id_token_alg = $13, \
               verified = CASE WHEN $14 = 0 THEN 0 ELSE verified END, reusable_refresh = $15 \
             WHERE client_id = $1 AND owner = $2",
        )
        .bind(&p.client_id)
        .bind(&c.owner)
        .bind(&c.name)
        .bind(&c.description)
        .bind(&c.privacy_url)
        .bind(json_list(&p.redirect_uris))
        .bind(json_list(&c.allowed_origins))
        .bind(flag(p.allows(Feature::Implicit)))
        .bind(flag(p.allows(Feature::PlainPkce)))
        .bind(flag(p.allows(Feature::Device)))
        .bind(flag(p.allows(Feature::ClientCredentials)))
        .bind(flag(p.allows(Feature::Development)))
        .bind(c.id_token_alg.as_str())
        .bind(flag(c.verified))
        .bind(flag(p.allows(Feature::ReusableRefresh)))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        put_origins(&mut tx, &p.client_id, &c.allowed_origins).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn set_client_verified(&self, client_id: &str) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE clients SET verified = 1 WHERE client_id = $1")
            .bind(client_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn client_usage(&self, client_id: &str, now: Timestamp) -> StoreResult<ClientUsage> {
        let row = sqlx::query(
            "SELECT \
               (SELECT COUNT(*) FROM consents WHERE client_id = $1) AS consents, \
               (SELECT COUNT(*) FROM access_tokens \
                  WHERE client_id = $1 AND revoked_at IS NULL AND expires_at > $2) AS live_access_tokens, \
               (SELECT COUNT(*) FROM access_tokens \
                  WHERE client_id = $1 AND issued_at > $3 AND issued_at <= $2) AS issued_last_day",
        )
        .bind(client_id)
        .bind(now)
        .bind(now - 24 * 3600)
        .fetch_one(&self.pool)
        .await?;
        Ok(ClientUsage {
            consents: row.try_get("consents")?,
            live_access_tokens: row.try_get("live_access_tokens")?,
            issued_last_day: row.try_get("issued_last_day")?,
        })
    }

    async fn find_client_logo(&self, client_id: &str) -> StoreResult<Option<Logo>> {
        let row = sqlx::query("SELECT png, version FROM client_logos WHERE client_id = $1")
            .bind(client_id)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|row| {
            Ok(Logo {
                png: row.try_get("png")?,
                version: row.try_get("version")?,
            })
        })
        .transpose()
    }

    async fn set_client_logo(
        &self,
        client_id: &str,
        logo: Option<&Logo>,
        unverify: bool,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        // The app's row first: it must exist, and a deletion in flight either waits for this or makes it miss.
        let done = sqlx::query(
            "UPDATE clients SET verified = CASE WHEN $2 = 1 THEN 0 ELSE verified END WHERE client_id = $1",
        )
        .bind(client_id)
        .bind(flag(unverify))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        match logo {
            Some(logo) => {
                sqlx::query(
                    "INSERT INTO client_logos (client_id, png, version, updated_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (client_id) DO UPDATE SET png = $2, version = $3, updated_at = $4",
                )
                .bind(client_id)
                .bind(logo.png.clone())
                .bind(&logo.version)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM client_logos WHERE client_id = $1")
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }
}

#[async_trait]
impl SessionStore for SqlStore {
    async fn create_session(
        &self,
        id_hash: &Digest,
        user_id: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query("INSERT INTO sessions (id_hash, user_id, created_at, auth_time, expires_at) VALUES ($1, $2, $3, $3, $4)")
            .bind(id_hash.to_vec())
            .bind(user_id)
            .bind(now)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn find_session(&self, id_hash: &Digest, now: Timestamp) -> StoreResult<Option<Session>> {
        let sql = format!(
            "SELECT s.auth_time, s.expires_at, {USER_COLUMNS} FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.id_hash = $1 AND s.expires_at > $2 AND u.disabled = 0"
        );
        let row = sqlx::query(&sql)
            .bind(id_hash.to_vec())
            .bind(now)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|row| {
            Ok(Session {
                user: user_from(&row)?,
                auth_time: row.try_get("auth_time")?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    async fn delete_session(&self, id_hash: &Digest) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash.to_vec())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn list_sessions(&self, user_id: &str, now: Timestamp) -> StoreResult<Vec<SessionInfo>> {
        let rows = sqlx::query(
            "SELECT id_hash, created_at, auth_time, expires_at FROM sessions \
             WHERE user_id = $1 AND expires_at > $2 ORDER BY created_at DESC, id_hash",
        )
        .bind(user_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SessionInfo {
                    id_hash: digest(row.try_get("id_hash")?)?,
                    created_at: row.try_get("created_at")?,
                    auth_time: row.try_get("auth_time")?,
                    expires_at: row.try_get("expires_at")?,
                })
            })
            .collect()
    }

    async fn delete_user_session(&self, user_id: &str, id_hash: &Digest) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE id_hash = $1 AND user_id = $2")
            .bind(id_hash.to_vec())
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_user_sessions(&self, user_id: &str) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl ConsentStore for SqlStore {
    async fn find_consent(&self, user_id: &str, client_id: &str) -> StoreResult<Option<Consent>> {
        let row = sqlx::query(
            "SELECT client_id, scopes, created_at, updated_at FROM consents WHERE user_id = $1 AND client_id = $2",
        )
        .bind(user_id)
        .bind(client_id)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| consent_from(&r)).transpose()
    }

    async fn save_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scopes: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO consents (user_id, client_id, scopes, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at",
        )
        .bind(user_id)
        .bind(client_id)
        .bind(scopes)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_consents(&self, user_id: &str) -> StoreResult<Vec<Consent>> {
        sqlx::query("SELECT client_id, scopes, created_at, updated_at FROM consents WHERE user_id = $1 ORDER BY created_at")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(consent_from)
            .collect()
    }

    async fn revoke_consent(
        &self,
        user_id: &str,
        client_id: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        revoke(&mut tx, Revoke::UserClient { user_id, client_id }, now).await?;
        sqlx::query("DELETE FROM consents WHERE user_id = $1 AND client_id = $2")
            .bind(user_id)
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl GrantStore for SqlStore {
    async fn insert_auth_code(&self, c: &NewAuthCode) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO auth_codes (code_hash, client_id, user_id, subject, scopes, redirect_uri, redirect_uri_sent, \
             challenge, challenge_method, nonce, auth_time, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(c.code_hash.to_vec())
        .bind(&c.client_id)
        .bind(&c.user_id)
        .bind(&c.subject)
        .bind(&c.scopes)
        .bind(&c.redirect_uri)
        .bind(flag(c.redirect_uri_sent))
        .bind(c.challenge.as_ref().map(|ch| ch.challenge.clone()))
        .bind(c.challenge.as_ref().map(|ch| ch.method.as_str()))
        .bind(c.nonce.as_deref())
        .bind(c.auth_time)
        .bind(c.created_at)
        .bind(c.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_auth_code(&self, code_hash: &Digest) -> StoreResult<Option<StoredCode>> {
        let row = sqlx::query(
            "SELECT client_id, user_id, subject, scopes, redirect_uri, redirect_uri_sent, challenge, challenge_method, \
             nonce, auth_time, expires_at, used_at FROM auth_codes WHERE code_hash = $1",
        )
        .bind(code_hash.to_vec())
        .fetch_optional(&self.reader)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let challenge = match (
            row.try_get::<Option<String>, _>("challenge")?,
            row.try_get::<Option<String>, _>("challenge_method")?,
        ) {
            (Some(challenge), Some(method)) => Some(Challenge {
                challenge,
                method: latchkey_core::pkce::Method::parse(&method)
                    .ok_or_else(|| StoreError::Corrupt("unknown PKCE method".into()))?,
            }),
            _ => None,
        };
        Ok(Some(StoredCode {
            issued: IssuedCode {
                client_id: row.try_get("client_id")?,
                redirect_uri: row.try_get("redirect_uri")?,
                redirect_uri_sent: row.try_get::<i64, _>("redirect_uri_sent")? != 0,
                challenge,
                expires_at: row.try_get("expires_at")?,
            },
            user_id: row.try_get("user_id")?,
            subject: row.try_get("subject")?,
            scopes: row.try_get("scopes")?,
            nonce: row.try_get("nonce")?,
            auth_time: row.try_get("auth_time")?,
            used: row.try_get::<Option<i64>, _>("used_at")?.is_some(),
        }))
    }

    async fn redeem_auth_code(
        &self,
        code_hash: &Digest,
        grant: &NewGrant,
        now: Timestamp,
    ) -> StoreResult<Redeemed> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(&format!(
            "UPDATE auth_codes SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL \
             AND user_id IN (SELECT id FROM users WHERE id = $3 AND disabled = 0{})",
            self.share()
        ))
        .bind(code_hash.to_vec())
        .bind(now)
        .bind(grant_user(grant)?)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            insert_grant_rows(&mut tx, grant, Some(code_hash), true).await?;
            tx.commit().await?;
            return Ok(Redeemed::Issued);
        }
        // Used (or the account disabled) meanwhile: the winner has committed, so its tokens are there to revoke.
        tx.rollback().await?;
        revoke_alone(&self.pool, Revoke::FromCode(code_hash), now).await?;
        Ok(Redeemed::AlreadyUsed)
    }

    async fn revoke_code_grant(&self, code_hash: &Digest, now: Timestamp) -> StoreResult<()> {
        revoke_alone(&self.pool, Revoke::FromCode(code_hash), now).await
    }

    async fn insert_grant(&self, grant: &NewGrant) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        // The family comes first and only for an enabled customer, whose row it holds `FOR SHARE`.
        let family = sqlx::query(&format!(
            "INSERT INTO token_families (id, client_id, user_id, created_at) \
             SELECT $1, $2, id, $4 FROM users WHERE id = $3 AND disabled = 0{}",
            self.share()
        ))
        .bind(&grant.family_id)
        .bind(&grant.access.client_id)
        .bind(grant_user(grant)?)
        .bind(grant.access.issued_at)
        .execute(&mut *tx)
        .await?;
        if family.rows_affected() == 1 {
            insert_grant_rows(&mut tx, grant, None, false).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn insert_access_token(&self, token: &NewAccessToken) -> StoreResult<()> {
        insert_access(&self.pool, token, None).await
    }

    async fn find_refresh_token(&self, token_hash: &Digest) -> StoreResult<Option<StoredRefresh>> {
        let row = sqlx::query(
            "SELECT family_id, client_id, user_id, subject, scopes, auth_time, rotated_at, revoked_at \
             FROM refresh_tokens WHERE token_hash = $1",
        )
        .bind(token_hash.to_vec())
        .fetch_optional(&self.reader)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let status = refresh_status(&row)?;
        Ok(Some(StoredRefresh {
            family_id: row.try_get("family_id")?,
            client_id: row.try_get("client_id")?,
            user_id: row.try_get("user_id")?,
            subject: row.try_get("subject")?,
            scopes: row.try_get("scopes")?,
            auth_time: row.try_get("auth_time")?,
            status,
        }))
    }

    async fn rotate_refresh_token(
        &self,
        old: &Digest,
        grant: &NewGrant,
        now: Timestamp,
        grace: i64,
    ) -> StoreResult<Rotation> {
        let mut tx = self.pool.begin().await?;
        let rotated = sqlx::query(&format!(
            "UPDATE refresh_tokens SET rotated_at = $2 \
             WHERE token_hash = $1 AND rotated_at IS NULL AND revoked_at IS NULL \
             AND EXISTS (SELECT 1 FROM token_families f WHERE f.id = refresh_tokens.family_id AND f.revoked_at IS NULL) \
             AND user_id IN (SELECT id FROM users WHERE id = $3 AND disabled = 0{}) RETURNING family_id",
            self.share()
        ))
        .bind(old.to_vec())
        .bind(now)
        .bind(grant_user(grant)?)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = rotated {
            let family: String = row.try_get("family_id")?;
            if family != grant.family_id {
                return Err(StoreError::Corrupt("rotation into another family".into()));
            }
            insert_grant_rows(&mut tx, grant, None, false).await?;
            tx.commit().await?;
            return Ok(Rotation::Rotated);
        }
        tx.rollback().await?;
        // Not rotated: core's rule decides what the token's state now means (a race inside the grace window, or a
        // reuse). Once set, `rotated_at` and `revoked_at` never change, so reading them and then revoking is safe.
        let row = sqlx::query(
            "SELECT family_id, client_id, rotated_at, revoked_at FROM refresh_tokens WHERE token_hash = $1",
        )
        .bind(old.to_vec())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(Rotation::Refused);
        };
        let verdict = refresh::decide(
            refresh_status(&row)?,
            &row.try_get::<String, _>("client_id")?,
            &grant.access.client_id,
            false,
            now,
            grace,
        );
        match verdict {
            Ok(refresh::Verdict::RevokeFamily) => {
                let family: String = row.try_get("family_id")?;
                revoke_alone(&self.pool, Revoke::Family(&family), now).await?;
                Ok(Rotation::ReuseDetected)
            }
            // Still active, yet not rotated: its family was revoked or its customer disabled meanwhile.
            Ok(refresh::Verdict::Rotate | refresh::Verdict::Keep) | Err(_) => Ok(Rotation::Refused),
        }
    }

    async fn refresh_without_rotation(
        &self,
        token: &Digest,
        grant: &NewGrant,
        now: Timestamp,
    ) -> StoreResult<bool> {
        if grant.refresh.is_some() {
            return Err(StoreError::Corrupt(
                "a kept refresh token gets no successor".into(),
            ));
        }
        let mut tx = self.pool.begin().await?;
        // The consuming statement of this issuance: it records the use, and holds the customer's row `FOR SHARE`,
        // so a revocation (Remove, /oauth2/revoke, a disabled account) either waits for it or is seen by it.
        let used = sqlx::query(&format!(
            "UPDATE refresh_tokens SET last_used_at = $2 \
             WHERE token_hash = $1 AND rotated_at IS NULL AND revoked_at IS NULL \
             AND EXISTS (SELECT 1 FROM token_families f WHERE f.id = refresh_tokens.family_id AND f.revoked_at IS NULL) \
             AND user_id IN (SELECT id FROM users WHERE id = $3 AND disabled = 0{}) RETURNING family_id",
            self.share()
        ))
        .bind(token.to_vec())
        .bind(now)
        .bind(grant_user(grant)?)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = used else {
            tx.rollback().await?;
            return Ok(false);
        };
        let family: String = row.try_get("family_id")?;
        if family != grant.family_id {
            return Err(StoreError::Corrupt("refresh into another family".into()));
        }
        insert_grant_rows(&mut tx, grant, None, false).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn find_access_token(
        &self,
        token_hash: &Digest,
        now: Timestamp,
    ) -> StoreResult<Option<AccessToken>> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM access_tokens t WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > $2"
        );
        let row = sqlx::query(&sql)
            .bind(token_hash.to_vec())
            .bind(now)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(token_from).transpose()
    }

    async fn find_token_profile(
        &self,
        token_hash: &Digest,
        now: Timestamp,
    ) -> StoreResult<Option<TokenProfile>> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS}, u.name, u.email, u.email_verified, u.postal_code FROM access_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > $2 AND u.disabled = 0"
        );
        let row = sqlx::query(&sql)
            .bind(token_hash.to_vec())
            .bind(now)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|row| {
            Ok(TokenProfile {
                token: token_from(&row)?,
                name: row.try_get("name")?,
                email: Some(row.try_get::<String, _>("email")?).filter(|_| {
                    row.try_get::<i64, _>("email_verified")
                        .is_ok_and(|v| v != 0)
                }),
                postal_code: row.try_get("postal_code")?,
            })
        })
        .transpose()
    }

    async fn secretless_refresh(&self, family_id: &str) -> StoreResult<bool> {
        let row = sqlx::query("SELECT secretless_refresh FROM token_families WHERE id = $1")
            .bind(family_id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(match row {
            Some(row) => row.try_get::<i64, _>("secretless_refresh")? != 0,
            None => false,
        })
    }

    async fn revoke_access_token(
        &self,
        token_hash: &Digest,
        client_id: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE access_tokens SET revoked_at = $3 WHERE token_hash = $1 AND client_id = $2 AND revoked_at IS NULL",
        )
        .bind(token_hash.to_vec())
        .bind(client_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_refresh_family(
        &self,
        token_hash: &Digest,
        client_id: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        // A token's family never changes: find it, then revoke the whole family (this token with it).
        let row = sqlx::query(
            "SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND client_id = $2",
        )
        .bind(token_hash.to_vec())
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(false) };
        let family: String = row.try_get("family_id")?;
        revoke_alone(&self.pool, Revoke::Family(&family), now).await?;
        Ok(true)
    }
}

#[async_trait]
impl DeviceStore for SqlStore {
    async fn insert_device_code(&self, c: &NewDeviceCode) -> StoreResult<Created> {
        let done = sqlx::query(
            "INSERT INTO device_codes (device_hash, user_code_hash, client_id, scopes, optional_scopes, status, \
             poll_interval, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT DO NOTHING",
        )
        .bind(c.device_hash.to_vec())
        .bind(c.user_code_hash.to_vec())
        .bind(&c.client_id)
        .bind(&c.scopes)
        .bind(&c.optional_scopes)
        .bind(device::Status::Pending.as_str())
        .bind(c.interval)
        .bind(c.created_at)
        .bind(c.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(if done.rows_affected() == 1 {
            Created::Created
        } else {
            Created::AlreadyExists
        })
    }

    async fn find_device_code(
        &self,
        user_code_hash: &Digest,
    ) -> StoreResult<Option<DeviceRequest>> {
        let row = sqlx::query(
            "SELECT client_id, scopes, optional_scopes, status, expires_at FROM device_codes WHERE user_code_hash = $1",
        )
        .bind(user_code_hash.to_vec())
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| {
            Ok(DeviceRequest {
                client_id: row.try_get("client_id")?,
                scopes: row.try_get("scopes")?,
                optional_scopes: row.try_get("optional_scopes")?,
                status: device_status(&row)?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    async fn decide_device_code(
        &self,
        user_code_hash: &Digest,
        decision: &DeviceDecision,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let pending = device::Status::Pending.as_str();
        let done = match decision {
            DeviceDecision::Approve {
                user_id,
                subject,
                scopes,
                auth_time,
            } => {
                sqlx::query(
                    "UPDATE device_codes SET status = $3, user_id = $4, subject = $5, granted_scopes = $6, auth_time = $7 \
                     WHERE user_code_hash = $1 AND status = $8 AND expires_at > $2",
                )
                .bind(user_code_hash.to_vec())
                .bind(now)
                .bind(device::Status::Approved.as_str())
                .bind(user_id)
                .bind(subject)
                .bind(scopes)
                .bind(*auth_time)
                .bind(pending)
                .execute(&self.pool)
                .await?
            }
            DeviceDecision::Deny => {
                sqlx::query(
                    "UPDATE device_codes SET status = $3 WHERE user_code_hash = $1 AND status = $4 AND expires_at > $2",
                )
                .bind(user_code_hash.to_vec())
                .bind(now)
                .bind(device::Status::Denied.as_str())
                .bind(pending)
                .execute(&self.pool)
                .await?
            }
        };
        Ok(done.rows_affected() == 1)
    }

    async fn poll_device_code(
        &self,
        device_hash: &Digest,
        client_id: Option<&str>,
        user_code_hash: Option<&Digest>,
        now: Timestamp,
    ) -> StoreResult<PollOutcome> {
        let mut tx = self.pool.begin().await?;
        // A no-op write first: it takes the row's lock (PostgreSQL) or the write lock (SQLite), so two nodes
        // polling one pair at once are ordered and the interval rule sees every poll.
        let locked = sqlx::query(
            "UPDATE device_codes SET pair_failures = pair_failures WHERE device_hash = $1",
        )
        .bind(device_hash.to_vec())
        .execute(&mut *tx)
        .await?;
        if locked.rows_affected() == 0 {
            return Ok(PollOutcome::Unknown);
        }
        let row = sqlx::query(
            "SELECT client_id, user_code_hash, status, poll_interval, last_poll_at, pair_failures, user_id, subject, \
             granted_scopes, auth_time, expires_at FROM device_codes WHERE device_hash = $1",
        )
        .bind(device_hash.to_vec())
        .fetch_one(&mut *tx)
        .await?;
        let owner: String = row.try_get("client_id")?;
        if client_id.is_some_and(|c| c != owner) {
            return Ok(PollOutcome::Unknown);
        }
        if let Some(presented) = user_code_hash {
            let own = digest(row.try_get("user_code_hash")?)?;
            if !latchkey_core::secret::digest_eq(&own, presented) {
                let failures: i64 = row.try_get::<i64, _>("pair_failures")? + 1;
                let status = if failures >= device::MAX_PAIR_FAILURES {
                    device::Status::Locked
                } else {
                    device_status(&row)?
                };
                sqlx::query("UPDATE device_codes SET pair_failures = $2, status = $3 WHERE device_hash = $1")
                    .bind(device_hash.to_vec())
                    .bind(failures)
                    .bind(status.as_str())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                return Ok(PollOutcome::Mismatch);
            }
        }
        let (too_fast, interval) = device::next_interval(
            row.try_get("last_poll_at")?,
            row.try_get("poll_interval")?,
            now,
        );
        sqlx::query(
            "UPDATE device_codes SET last_poll_at = $2, poll_interval = $3 WHERE device_hash = $1",
        )
        .bind(device_hash.to_vec())
        .bind(now)
        .bind(interval)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let approval = match (
            row.try_get::<Option<String>, _>("user_id")?,
            row.try_get::<Option<String>, _>("subject")?,
            row.try_get::<Option<String>, _>("granted_scopes")?,
            row.try_get::<Option<i64>, _>("auth_time")?,
        ) {
            (Some(user_id), Some(subject), Some(scopes), Some(auth_time)) => {
                Some(DeviceDecision::Approve {
                    user_id,
                    subject,
                    scopes,
                    auth_time,
                })
            }
            _ => None,
        };
        Ok(PollOutcome::Polled(DevicePoll {
            client_id: owner,
            poll: device::Poll {
                status: device_status(&row)?,
                expires_at: row.try_get("expires_at")?,
                too_fast,
            },
            interval,
            approval,
        }))
    }

    async fn issue_device_grant(
        &self,
        device_hash: &Digest,
        grant: &NewGrant,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(&format!(
            "UPDATE device_codes SET status = $3 WHERE device_hash = $1 AND status = $4 AND expires_at > $2 \
             AND user_id IN (SELECT id FROM users WHERE id = $5 AND disabled = 0{})",
            self.share()
        ))
        .bind(device_hash.to_vec())
        .bind(now)
        .bind(device::Status::Issued.as_str())
        .bind(device::Status::Approved.as_str())
        .bind(grant_user(grant)?)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        insert_grant_rows(&mut tx, grant, None, true).await?;
        sqlx::query("UPDATE token_families SET secretless_refresh = 1 WHERE id = $1")
            .bind(&grant.family_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}

#[async_trait]
impl KeyStore for SqlStore {
    async fn server_secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>> {
        sqlx::query("INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(candidate.to_vec())
            .execute(&self.pool)
            .await?;
        let row = sqlx::query("SELECT value FROM server_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("value")?)
    }

    async fn replace_server_secret(&self, name: &str, old: &[u8], new: &[u8]) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE server_secrets SET value = $1 WHERE name = $2 AND value = $3")
                .bind(new.to_vec())
                .bind(name)
                .bind(old.to_vec())
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        let rows = sqlx::query(
            "SELECT kid, alg, private_der, created_at, activate_at, revoked_at FROM signing_keys \
             ORDER BY activate_at, kid",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SigningKeyRecord {
                    kid: row.try_get("kid")?,
                    alg: signing_alg(&row.try_get::<String, _>("alg")?)?,
                    sealed_key: row.try_get("private_der")?,
                    created_at: row.try_get("created_at")?,
                    activate_at: row.try_get("activate_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                })
            })
            .collect()
    }

    async fn insert_signing_key(&self, k: &SigningKeyRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_der, created_at, activate_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&k.kid)
        .bind(k.alg.as_str())
        .bind(&k.sealed_key)
        .bind(k.created_at)
        .bind(k.activate_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn replace_signing_key(&self, kid: &str, old: &[u8], new: &[u8]) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE signing_keys SET private_der = $1 WHERE kid = $2 AND private_der = $3",
        )
        .bind(new.to_vec())
        .bind(kid)
        .bind(old.to_vec())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_signing_key(&self, kid: &str, now: Timestamp) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE signing_keys SET revoked_at = $1, private_der = $2 WHERE kid = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(Vec::<u8>::new())
        .bind(kid)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn activate_signing_key(&self, kid: &str, at: Timestamp) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE signing_keys SET activate_at = $1 WHERE kid = $2")
            .bind(at)
            .bind(kid)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl LimitStore for SqlStore {
    async fn hit_rate_limit(
        &self,
        bucket: &str,
        window_secs: i64,
        now: Timestamp,
    ) -> StoreResult<i64> {
        let row = sqlx::query(
            "INSERT INTO rate_limits (bucket, window_start, count) VALUES ($1, $2, 1) \
             ON CONFLICT (bucket) DO UPDATE SET \
               count = CASE WHEN rate_limits.window_start <= $3 THEN 1 ELSE rate_limits.count + 1 END, \
               window_start = CASE WHEN rate_limits.window_start <= $3 THEN $2 ELSE rate_limits.window_start END \
             RETURNING count",
        )
        .bind(bucket)
        .bind(now)
        .bind(now - window_secs)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("count")?)
    }

    async fn refund_rate_limit(
        &self,
        bucket: &str,
        window_secs: i64,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE rate_limits SET count = count - 1 WHERE bucket = $1 AND count > 0 AND window_start > $2",
        )
        .bind(bucket)
        .bind(now - window_secs)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn peek_rate_limit(
        &self,
        bucket: &str,
        window_secs: i64,
        now: Timestamp,
    ) -> StoreResult<i64> {
        let row =
            sqlx::query("SELECT count FROM rate_limits WHERE bucket = $1 AND window_start > $2")
                .bind(bucket)
                .bind(now - window_secs)
                .fetch_optional(&self.pool)
                .await?;
        Ok(match row {
            Some(row) => row.try_get("count")?,
            None => 0,
        })
    }
}

#[async_trait]
impl OpsStore for SqlStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn erase_overwritten_rows(&self) -> StoreResult<()> {
        if self.engine == Engine::Sqlite {
            // On the writer: VACUUM rebuilds every page (freed ones and free space in used ones included) and the
            // checkpoint copies the WAL into the file, then truncates it, so no older page image survives in it.
            sqlx::query("VACUUM").execute(&self.pool).await?;
            let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&self.pool)
                .await?;
            if row.try_get::<i64, _>(0)? != 0 {
                // A reader of another process held the WAL past the busy timeout: its old pages stay until the
                // next checkpoint overwrites them.
                tracing::warn!("the WAL could not be emptied after erasing replaced rows; it is on the next checkpoint");
            }
        }
        Ok(())
    }

    async fn purge_expired(&self, now: Timestamp) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await?;
        let mut purged = 0;
        for (sql, cutoff) in [
            // Used codes are kept a day so that a late replay still revokes what they issued.
            ("DELETE FROM auth_codes WHERE expires_at < $1", now - 86_400),
            ("DELETE FROM sessions WHERE expires_at < $1", now),
            ("DELETE FROM access_tokens WHERE expires_at < $1", now - 60),
            // A family revoked a day ago: nothing in it can be used again.
            (
                "DELETE FROM access_tokens WHERE family_id IN (SELECT id FROM token_families WHERE revoked_at < $1)",
                now - 86_400,
            ),
            (
                "DELETE FROM refresh_tokens WHERE family_id IN (SELECT id FROM token_families WHERE revoked_at < $1)",
                now - 86_400,
            ),
            (
                "DELETE FROM token_families WHERE revoked_at < $1",
                now - 86_400,
            ),
            // A family with no tokens left (a grant without a refresh token, once its access token is gone).
            (
                "DELETE FROM token_families WHERE created_at < $1 \
                 AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.family_id = token_families.id) \
                 AND NOT EXISTS (SELECT 1 FROM access_tokens a WHERE a.family_id = token_families.id)",
                now,
            ),
            (
                "DELETE FROM rate_limits WHERE window_start < $1",
                now - 86_400,
            ),
            // Expired code pairs are kept an hour so that a late poll still hears `expired_token`.
            (
                "DELETE FROM device_codes WHERE expires_at < $1",
                now - 3_600,
            ),
            // Mailed codes are kept a day past their expiry, so that a late try still hears "expired".
            ("DELETE FROM email_codes WHERE expires_at < $1", now - 86_400),
            // Mails given up on stay a week for the operator to see (the message itself is already erased).
            (
                "DELETE FROM mail_queue WHERE failed_at < $1",
                now - 7 * 86_400,
            ),
        ] {
            purged += sqlx::query(sql)
                .bind(cutoff)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(purged)
    }
}

/// A refresh token's state from its `rotated_at` and `revoked_at`.
fn refresh_status(row: &AnyRow) -> StoreResult<refresh::Status> {
    Ok(
        match (
            row.try_get::<Option<i64>, _>("revoked_at")?,
            row.try_get::<Option<i64>, _>("rotated_at")?,
        ) {
            (Some(_), _) => refresh::Status::Revoked,
            (None, Some(at)) => refresh::Status::Rotated { at },
            (None, None) => refresh::Status::Active,
        },
    )
}

fn device_status(row: &AnyRow) -> StoreResult<device::Status> {
    let s: String = row.try_get("status")?;
    device::Status::parse(&s)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown device code status {s}")))
}

fn consent_from(row: &AnyRow) -> StoreResult<Consent> {
    Ok(Consent {
        client_id: row.try_get("client_id")?,
        scopes: row.try_get("scopes")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
