//! The application state every handler and flow receives: configuration, store, keys, clock, password hasher and
//! metrics. Built once by [`App::build`]; no globals.

use crate::config::Config;
use crate::keys::{KeyRing, HASH_KEY};
use crate::metrics::Metrics;
use crate::password::Passwords;
use crate::seal::{KeySource, MasterKey, OpenError, Row};
use crate::store::{SqlStore, Store, StoreError};
use latchkey_core::scope::ScopeKind;
use latchkey_core::secret::KeyedHasher;
use latchkey_core::Timestamp;
use rand::RngCore;
use std::ops::Deref;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// The clock flows read `now` from: the system's time (production), or a frozen time that only
/// [`Clock::advance`] moves (tests, so that an expiry is exact and needs no margin). Clones share one clock, so the
/// nodes of a test given clones of one frozen clock agree on `now`.
#[derive(Clone, Default)]
pub struct Clock {
    /// Seconds added to the system's time; for a frozen clock, the time itself.
    offset: Arc<AtomicI64>,
    frozen: bool,
}

impl Clock {
    /// The system's time.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that stays at `at` until advanced (tests).
    pub fn frozen(at: Timestamp) -> Clock {
        Clock {
            offset: Arc::new(AtomicI64::new(at)),
            frozen: true,
        }
    }

    pub fn now(&self) -> Timestamp {
        let offset = self.offset.load(Ordering::Relaxed);
        if self.frozen {
            return offset;
        }
        let system = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        system + offset
    }

    /// Moves this clock, and every clone of it, forward (tests).
    pub fn advance(&self, secs: i64) {
        self.offset.fetch_add(secs, Ordering::Relaxed);
    }
}

pub struct App {
    pub config: Config,
    /// `iss`, without a trailing slash.
    pub issuer: String,
    pub store: Arc<dyn Store>,
    pub hasher: KeyedHasher,
    pub passwords: Passwords,
    pub metrics: Metrics,
    pub clock: Clock,
    /// The scopes a customer can grant: the standard ones and the operator's customer scopes (SPEC 1).
    pub known_scopes: Vec<String>,
    /// The operator's app scopes: granted only through `client_credentials`, to apps allowed them.
    pub app_scopes: Vec<String>,
    pub secure_cookies: bool,
    /// ID-token signing keys, shared with every node through the store.
    pub keys: KeyRing,
    /// Addresses refused at the token endpoints for too many failures.
    pub token_throttle: crate::throttle::Throttle,
    /// Peers whose forwarding header names the client (SPEC 4), and which header that is.
    pub trusted_proxies: latchkey_core::address::TrustedProxies,
    pub proxy_header: latchkey_core::address::ProxyHeader,
    /// Where mail goes (SMTP or the outbox), and how it is queued: [`App::queue_mail`].
    pub mailer: Arc<crate::mail::Mailer>,
}

/// Cheap to clone; handlers receive it as axum state.
#[derive(Clone)]
pub struct AppState(Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// The server's hashing key: created by the first node to start, stored sealed under the master key. A key stored
/// in the clear (before keys were sealed) is sealed now; the key itself does not change, so every token, code and
/// session hashed under it stays valid (and the second value is true if this node sealed it). Fails, naming both key ids, if the stored key is sealed under another master
/// key: a node never makes itself new keys because it was given the wrong master key.
async fn hash_key(
    store: &dyn Store,
    master: &MasterKey,
    source: &KeySource,
) -> Result<([u8; 32], bool), StoreError> {
    let row = Row::ServerSecret(HASH_KEY);
    let mut candidate = zeroize::Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(&mut candidate[..]);
    let sealed = master
        .seal(row, &candidate[..])
        .map_err(StoreError::Corrupt)?;
    let mut sealed_here = false;
    for _ in 0..3 {
        let stored = store.server_secret(HASH_KEY, &sealed).await?;
        match master.open(row, &stored) {
            Ok(key) => {
                let key = key.as_slice().try_into().map_err(|_| {
                    StoreError::Corrupt("the stored hash key is not 32 bytes".into())
                })?;
                return Ok((key, sealed_here));
            }
            Err(OpenError::NotSealed) if stored.len() == 32 => {
                // Stored in the clear by an earlier version: seal it in place (another node may race us to it).
                let resealed = master.seal(row, &stored).map_err(StoreError::Corrupt)?;
                sealed_here |= store
                    .replace_server_secret(HASH_KEY, &stored, &resealed)
                    .await?;
            }
            Err(OpenError::OtherKey(other)) => {
                return Err(StoreError::Corrupt(format!(
                    "the database's keys are sealed under master key {other}, but this node's master key \
                     (from {source}) is {}: give every node of one service the same master key (an \
                     interrupted `latchkey keys rewrap` is finished by running it again)",
                    master.id()
                )))
            }
            Err(e) => {
                return Err(StoreError::Corrupt(format!(
                    "the stored hash key does not open with the master key from {source} ({e})"
                )))
            }
        }
    }
    Err(StoreError::Corrupt(
        "the stored hash key kept changing while it was being sealed".into(),
    ))
}

impl App {
    /// What the mail queue and its sender need of this node.
    pub fn mail(&self) -> crate::mail::Outbound {
        let clock = self.clock.clone();
        crate::mail::Outbound {
            store: self.store.clone(),
            master: self.keys.master_key().clone(),
            mailer: self.mailer.clone(),
            counter: self.metrics.mails.clone(),
            now: Arc::new(move || clock.now()),
        }
    }

    /// Queues a mail durably (see [`crate::mail`]); it is sent by a sender on some node, never while a page waits.
    pub async fn queue_mail(&self, mail: crate::mail::Mail) -> Result<(), StoreError> {
        self.mail().queue(mail).await
    }

    /// Starts this node's mail sender ([`crate::mail::spawn_sender`]).
    pub fn spawn_mail_sender(&self) {
        crate::mail::spawn_sender(self.mail());
    }

    /// Opens the database named by `config` (creating the data directory for SQLite), migrates it, and loads or
    /// creates the server key.
    pub async fn build(config: Config) -> Result<AppState, StoreError> {
        let store = Self::open_store(&config).await?;
        Self::with_store(config, Arc::new(store)).await
    }

    /// Opens and migrates the database named by `config` (creating the data directory for SQLite).
    pub async fn open_store(config: &Config) -> Result<SqlStore, StoreError> {
        let url = config.database_url();
        if config.database_url.is_none() {
            std::fs::create_dir_all(&config.data_dir).map_err(|e| {
                StoreError::Corrupt(format!(
                    "cannot create data directory {}: {e}",
                    config.data_dir.display()
                ))
            })?;
        }
        let store = SqlStore::connect(&url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Builds the state around an already migrated store, with the master key the configuration names.
    pub async fn with_store(config: Config, store: Arc<dyn Store>) -> Result<AppState, StoreError> {
        Self::with_store_and_key_maker(config, store, crate::keys::generate).await
    }

    /// [`App::with_store`], making any missing signing key with `make` (see [`KeyRing::open_with`]; for tests).
    pub async fn with_store_and_key_maker(
        config: Config,
        store: Arc<dyn Store>,
        make: crate::keys::KeyMaker,
    ) -> Result<AppState, StoreError> {
        Self::with_store_key_maker_and_clock(config, store, make, Clock::system()).await
    }

    /// [`App::with_store_and_key_maker`], reading `now` from `clock` (tests give a frozen one).
    pub async fn with_store_key_maker_and_clock(
        config: Config,
        store: Arc<dyn Store>,
        make: crate::keys::KeyMaker,
        clock: Clock,
    ) -> Result<AppState, StoreError> {
        let (master, source) = MasterKey::load(&config).map_err(StoreError::Corrupt)?;
        let (key, sealed_hash_key) = hash_key(store.as_ref(), &master, &source).await?;
        let key = zeroize::Zeroizing::new(key);
        let sealed_keys =
            crate::keys::seal_keys_stored_in_the_clear(store.as_ref(), &master).await?;
        if sealed_hash_key || sealed_keys > 0 {
            // The cleartext they replaced must not survive in the database files (free pages, the WAL).
            store.erase_overwritten_rows().await?;
        }
        let trusted_proxies = config.trusted_proxies().map_err(StoreError::Corrupt)?;
        let proxy_header = config.proxy_header().map_err(StoreError::Corrupt)?;
        let mailer = Arc::new(crate::mail::Mailer::new(&config).map_err(StoreError::Corrupt)?);
        let keys = KeyRing::open_with(
            store.as_ref(),
            clock.now(),
            config.id_token_ttl,
            master,
            make,
        )
        .await?;
        Ok(AppState(Arc::new(App {
            keys,
            issuer: config.issuer(),
            secure_cookies: config.secure_cookies(),
            passwords: Passwords::new(
                config.password_hash_concurrency,
                config.password_hash_queue(),
            ),
            hasher: KeyedHasher::new(&key),
            store,
            metrics: Metrics::default(),
            clock,
            known_scopes: latchkey_core::scope::STANDARD_SCOPES
                .iter()
                .copied()
                .chain(config.scopes_of(ScopeKind::Customer).map(|(name, _)| name))
                .map(str::to_owned)
                .collect(),
            app_scopes: config
                .scopes_of(ScopeKind::App)
                .map(|(name, _)| name.to_owned())
                .collect(),
            token_throttle: crate::throttle::Throttle::new(
                config.token_failure_limit,
                config.token_failure_window,
            ),
            trusted_proxies,
            proxy_header,
            mailer,
            config,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::Clock;

    #[test]
    fn a_frozen_clock_moves_only_when_advanced_and_its_clones_move_with_it() {
        let clock = Clock::frozen(1_000);
        let node_b = clock.clone();
        assert_eq!(clock.now(), 1_000);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(clock.now(), 1_000, "real time does not move it");
        node_b.advance(60);
        assert_eq!(clock.now(), 1_060, "a clone's advance moves the original");
        assert_eq!(node_b.now(), 1_060);
    }

    #[test]
    fn the_system_clock_follows_real_time_plus_what_was_advanced() {
        let clock = Clock::system();
        let before = clock.now();
        clock.advance(3_600);
        let after = clock.now();
        assert!(
            (before + 3_600..=before + 3_601).contains(&after),
            "{before} {after}"
        );
    }
}
