//! ID-token signing keys (SPEC 3). The keys live in the store so that every node signs with, and publishes, the
//! same ones; each node keeps them in memory and reloads them every [`RELOAD_SECS`].
//!
//! A key signs from its `activate_at` until a newer key of its algorithm activates, and stays in the JWKS until
//! every ID token it could have signed has expired. Published before used: a key signs only once it has been in
//! every node's JWKS for longer than a relying party caches it, [`PUBLISH_LEAD_SECS`] after it was stored.
//! `latchkey keys rotate` adds keys that activate after [`ROTATION_DELAY_SECS`], and a node that finds no key for
//! an algorithm makes one that activates after [`PUBLISH_LEAD_SECS`], so no relying party ever sees a `kid` it
//! cannot find. The one exception to the lead, besides [`revoke`], is a new installation's first keys, made
//! before any node has served a JWKS: there is no earlier JWKS they could be missing from, so they sign at once.
//! Keys for every algorithm exist from that first start, so an app choosing an algorithm never waits for a key.
//!
//! Private keys are stored sealed under the master key ([`crate::seal`]); a node opens them when it loads them.
//! `latchkey keys revoke` withdraws a key at once (see [`revoke`]).

use crate::seal::{MasterKey, OpenError, Row};

/// The name of the stored secret that keys every hash and MAC.
pub const HASH_KEY: &str = "hash-key-v1";
use crate::store::{SigningKeyRecord, Store, StoreError, StoreResult};
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use latchkey_core::oidc::{IdTokenClaims, SigningAlg};
use latchkey_core::Timestamp;
use std::sync::{Arc, RwLock};

/// How often a node rereads the keys.
pub const RELOAD_SECS: i64 = 30;
/// How long relying parties may cache the JWKS (its `Cache-Control: max-age`).
pub const JWKS_MAX_AGE_SECS: i64 = 60;
/// How long a key is published before it may sign: until every node has reloaded and published it, and every
/// JWKS fetched before that has expired from relying parties' caches.
pub const PUBLISH_LEAD_SECS: i64 = RELOAD_SECS + JWKS_MAX_AGE_SECS;
/// How long after `keys rotate` new keys start signing (several reloads, longer than [`PUBLISH_LEAD_SECS`]).
pub const ROTATION_DELAY_SECS: i64 = 4 * RELOAD_SECS;
/// Extra time a superseded key stays published beyond the ID-token lifetime (clock skew, caches).
const PUBLISH_MARGIN_SECS: i64 = 300;

fn jws_alg(alg: SigningAlg) -> Algorithm {
    match alg {
        SigningAlg::Es256 => Algorithm::ES256,
        SigningAlg::EdDsa => Algorithm::EdDSA,
        SigningAlg::Rs256 => Algorithm::RS256,
    }
}

fn key_alg(alg: SigningAlg) -> KeyAlgorithm {
    match alg {
        SigningAlg::Es256 => KeyAlgorithm::ES256,
        SigningAlg::EdDsa => KeyAlgorithm::EdDSA,
        SigningAlg::Rs256 => KeyAlgorithm::RS256,
    }
}

/// A new private key in the DER form `jsonwebtoken` signs with.
pub fn generate(alg: SigningAlg) -> Result<Vec<u8>, StoreError> {
    let mut rng = rand::rngs::OsRng;
    let bad = |e: String| StoreError::Corrupt(format!("cannot make a {} key: {e}", alg.as_str()));
    match alg {
        SigningAlg::Es256 => {
            use p256::pkcs8::EncodePrivateKey;
            let key = p256::ecdsa::SigningKey::random(&mut rng);
            Ok(key
                .to_pkcs8_der()
                .map_err(|e| bad(e.to_string()))?
                .as_bytes()
                .to_vec())
        }
        SigningAlg::EdDsa => {
            use ed25519_dalek::pkcs8::{EncodePrivateKey, KeypairBytes};
            let key = ed25519_dalek::SigningKey::generate(&mut rng);
            // PKCS#8 v1 (private key only, 48 bytes): the form `jsonwebtoken` reads.
            let bytes = KeypairBytes {
                secret_key: key.to_bytes(),
                public_key: None,
            };
            Ok(bytes
                .to_pkcs8_der()
                .map_err(|e| bad(e.to_string()))?
                .as_bytes()
                .to_vec())
        }
        SigningAlg::Rs256 => {
            use rsa::pkcs1::EncodeRsaPrivateKey;
            let key = rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(|e| bad(e.to_string()))?;
            Ok(key
                .to_pkcs1_der()
                .map_err(|e| bad(e.to_string()))?
                .as_bytes()
                .to_vec())
        }
    }
}

/// What makes a new private key (DER) for an algorithm: [`generate`], or a test's stand-in.
pub type KeyMaker = fn(SigningAlg) -> Result<Vec<u8>, StoreError>;

/// A new key record, random `kid`, its private key sealed under `master`.
pub async fn new_record(
    alg: SigningAlg,
    now: Timestamp,
    activate_at: Timestamp,
    master: &MasterKey,
) -> StoreResult<SigningKeyRecord> {
    let private_der = generate_off_thread(alg).await?;
    record(alg, &private_der, now, activate_at, master)
}

/// [`generate`] on a blocking thread (RSA takes up to a second or so).
async fn generate_off_thread(alg: SigningAlg) -> StoreResult<zeroize::Zeroizing<Vec<u8>>> {
    Ok(zeroize::Zeroizing::new(
        tokio::task::spawn_blocking(move || generate(alg))
            .await
            .map_err(|e| StoreError::Corrupt(format!("key generation stopped: {e}")))??,
    ))
}

/// The record of the private key `private_der`, random `kid`, sealed under `master`.
fn record(
    alg: SigningAlg,
    private_der: &[u8],
    now: Timestamp,
    activate_at: Timestamp,
    master: &MasterKey,
) -> StoreResult<SigningKeyRecord> {
    let kid = format!(
        "{}-{}",
        alg.as_str().to_ascii_lowercase(),
        latchkey_core::ids::new_internal_id(&mut rand::thread_rng())
    );
    Ok(SigningKeyRecord {
        sealed_key: master
            .seal(Row::SigningKey(&kid), private_der)
            .map_err(StoreError::Corrupt)?,
        kid,
        alg,
        created_at: now,
        activate_at,
        revoked_at: None,
    })
}

/// Why a stored key cannot be used by this node.
fn unopenable(kid: &str, e: &OpenError, master: &MasterKey) -> StoreError {
    StoreError::Corrupt(match e {
        OpenError::OtherKey(other) => format!(
            "signing key {kid} is sealed under master key {other}, but this node's master key is {}: every node \
             of one service needs the same master key",
            master.id()
        ),
        _ => format!("signing key {kid} does not open with this node's master key ({e})"),
    })
}

/// Whether a key counts in choosing which key signs and which are superseded: not revoked, or revoked only after
/// it had started signing (its tokens still supersede the key before it).
fn has_signed(k: &SigningKeyRecord, now: Timestamp) -> bool {
    k.activate_at <= now && k.revoked_at.is_none_or(|r| k.activate_at < r)
}

/// One key, ready to sign and to publish.
#[derive(Clone)]
struct Loaded {
    kid: String,
    alg: SigningAlg,
    encoding: EncodingKey,
    public: Jwk,
    activate_at: Timestamp,
    /// When a newer key of the same algorithm took over.
    superseded_at: Option<Timestamp>,
}

struct KeySet {
    loaded_at: Timestamp,
    keys: Vec<Loaded>,
}

/// Opens and parses the keys. Revoked keys are left out. A key that does not open is an error when `previous` is
/// `None` (a node starting); on a reload, the node keeps the copy it already holds (e.g. after `keys rewrap`, until
/// it restarts with the new master key) and otherwise leaves the key out, with a warning.
fn load(
    records: Vec<SigningKeyRecord>,
    now: Timestamp,
    master: &MasterKey,
    previous: Option<&KeySet>,
) -> StoreResult<KeySet> {
    let mut keys: Vec<Loaded> = Vec::with_capacity(records.len());
    for r in &records {
        if r.revoked_at.is_some() {
            continue;
        }
        let der = match master.open(Row::SigningKey(&r.kid), &r.sealed_key) {
            Ok(der) => der,
            Err(e) => {
                let Some(previous) = previous else {
                    return Err(unopenable(&r.kid, &e, master));
                };
                match previous.keys.iter().find(|k| k.kid == r.kid) {
                    Some(held) => {
                        let mut held = held.clone();
                        held.activate_at = r.activate_at;
                        keys.push(held);
                    }
                    None => tracing::warn!(
                        kid = %r.kid,
                        error = %unopenable(&r.kid, &e, master),
                        "a signing key is left out until this node restarts with the right master key"
                    ),
                }
                continue;
            }
        };
        let encoding = match r.alg {
            SigningAlg::Es256 => EncodingKey::from_ec_der(&der),
            SigningAlg::EdDsa => EncodingKey::from_ed_der(&der),
            SigningAlg::Rs256 => EncodingKey::from_rsa_der(&der),
        };
        let mut public = Jwk::from_encoding_key(&encoding, jws_alg(r.alg))
            .map_err(|e| StoreError::Corrupt(format!("signing key {} is unusable: {e}", r.kid)))?;
        public.common.key_id = Some(r.kid.clone());
        public.common.public_key_use = Some(PublicKeyUse::Signature);
        public.common.key_algorithm = Some(key_alg(r.alg));
        keys.push(Loaded {
            kid: r.kid.clone(),
            alg: r.alg,
            encoding,
            public,
            activate_at: r.activate_at,
            superseded_at: None,
        });
    }
    // Each key is superseded when the next of its algorithm activates (a revoked one included if it had signed).
    for key in &mut keys {
        key.superseded_at = records
            .iter()
            .filter(|k| {
                k.alg == key.alg
                    && has_signed(k, now)
                    && (k.activate_at, k.kid.as_str()) > (key.activate_at, key.kid.as_str())
            })
            .map(|k| k.activate_at)
            .min();
    }
    Ok(KeySet {
        loaded_at: now,
        keys,
    })
}

/// Seals under `master`, in place, every signing key stored before keys were sealed (a bare DER key); returns how
/// many this call sealed. If another node seals one first, its copy stands.
pub async fn seal_keys_stored_in_the_clear(
    store: &dyn Store,
    master: &MasterKey,
) -> StoreResult<usize> {
    let mut sealed_here = 0;
    for r in store.list_signing_keys().await? {
        if r.revoked_at.is_none()
            && r.sealed_key.first() == Some(&0x30)
            && crate::seal::sealed_by(&r.sealed_key).is_none()
        {
            let sealed = master
                .seal(Row::SigningKey(&r.kid), &r.sealed_key)
                .map_err(StoreError::Corrupt)?;
            if store
                .replace_signing_key(&r.kid, &r.sealed_key, &sealed)
                .await?
            {
                sealed_here += 1;
            }
        }
    }
    Ok(sealed_here)
}

/// The node's view of the signing keys.
pub struct KeyRing {
    set: RwLock<Arc<KeySet>>,
    id_token_ttl: i64,
    master: MasterKey,
}

impl KeyRing {
    /// Loads the keys, creating one for every algorithm that has none. Fails if a key does not open with `master`
    /// (a key stored before keys were sealed is sealed first: [`seal_keys_stored_in_the_clear`]).
    ///
    /// On a new installation (no key stored yet, revoked ones included) the keys sign at once; a key added to an
    /// existing one (e.g. the first RS256 key of an installation from before keys were made for every algorithm)
    /// signs after [`PUBLISH_LEAD_SECS`]: nodes may have served JWKS documents without it.
    pub async fn open(
        store: &dyn Store,
        now: Timestamp,
        id_token_ttl: i64,
        master: MasterKey,
    ) -> StoreResult<KeyRing> {
        Self::open_with(store, now, id_token_ttl, master, generate).await
    }

    /// [`KeyRing::open`], making any missing key's private key with `make` instead of [`generate`] (tests that
    /// start many fresh databases reuse one pre-made RSA key: generating one takes about a second).
    pub async fn open_with(
        store: &dyn Store,
        now: Timestamp,
        id_token_ttl: i64,
        master: MasterKey,
        make: KeyMaker,
    ) -> StoreResult<KeyRing> {
        let mut changed = false;
        let mut records = store.list_signing_keys().await?;
        let activate_at = if records.is_empty() {
            now
        } else {
            now + PUBLISH_LEAD_SECS
        };
        // The missing keys are made side by side, each on a blocking thread.
        let making: Vec<_> = SigningAlg::ALL
            .into_iter()
            .filter(|alg| {
                !records
                    .iter()
                    .any(|r| r.alg == *alg && r.revoked_at.is_none())
            })
            .map(|alg| (alg, tokio::task::spawn_blocking(move || make(alg))))
            .collect();
        for (alg, made) in making {
            let der = zeroize::Zeroizing::new(
                made.await
                    .map_err(|e| StoreError::Corrupt(format!("key generation stopped: {e}")))??,
            );
            store
                .insert_signing_key(&record(alg, &der, now, activate_at, &master)?)
                .await?;
            changed = true;
        }
        if changed {
            records = store.list_signing_keys().await?;
        }
        Ok(KeyRing {
            set: RwLock::new(Arc::new(load(records, now, &master, None)?)),
            id_token_ttl,
            master,
        })
    }

    /// The master key this node seals and opens keys with.
    pub fn master_key(&self) -> &MasterKey {
        &self.master
    }

    fn current(&self) -> Arc<KeySet> {
        match self.set.read() {
            Ok(set) => set.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Rereads the keys now.
    pub async fn reload(&self, store: &dyn Store, now: Timestamp) -> StoreResult<()> {
        let records = store.list_signing_keys().await?;
        let held = self.current();
        let fresh = Arc::new(load(records, now, &self.master, Some(held.as_ref()))?);
        match self.set.write() {
            Ok(mut set) => *set = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(())
    }

    /// Rereads the keys if the copy in memory is older than [`RELOAD_SECS`].
    pub async fn refresh(&self, store: &dyn Store, now: Timestamp) -> StoreResult<()> {
        if now - self.current().loaded_at >= RELOAD_SECS {
            self.reload(store, now).await?;
        }
        Ok(())
    }

    /// Makes sure a key of `alg` exists, and reloads. Every algorithm has keys from the first start; one found
    /// missing (e.g. deleted from the database) is made to sign after [`PUBLISH_LEAD_SECS`].
    pub async fn ensure(
        &self,
        store: &dyn Store,
        alg: SigningAlg,
        now: Timestamp,
    ) -> StoreResult<()> {
        if !store
            .list_signing_keys()
            .await?
            .iter()
            .any(|k| k.alg == alg && k.revoked_at.is_none())
        {
            store
                .insert_signing_key(
                    &new_record(alg, now, now + PUBLISH_LEAD_SECS, &self.master).await?,
                )
                .await?;
        }
        self.reload(store, now).await
    }

    /// When this node's keys of `alg` start signing (the earliest `activate_at`), `None` if it holds none.
    pub fn signs_from(&self, alg: SigningAlg) -> Option<Timestamp> {
        self.current()
            .keys
            .iter()
            .filter(|k| k.alg == alg)
            .map(|k| k.activate_at)
            .min()
    }

    /// Signs an ID token with the active key of `alg`. Fails if no key of `alg` signs yet.
    pub async fn sign(
        &self,
        store: &dyn Store,
        alg: SigningAlg,
        claims: &IdTokenClaims,
        now: Timestamp,
    ) -> StoreResult<String> {
        self.refresh(store, now).await?;
        if !self
            .current()
            .keys
            .iter()
            .any(|k| k.alg == alg && k.activate_at <= now)
        {
            // Another node may have made or activated one since the last reload.
            self.ensure(store, alg, now).await?;
        }
        let set = self.current();
        let key = set
            .keys
            .iter()
            .filter(|k| k.alg == alg && k.activate_at <= now)
            .max_by_key(|k| (k.activate_at, k.kid.as_str()))
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "no {} key signs yet: a new key signs {PUBLISH_LEAD_SECS} s after it is published",
                    alg.as_str()
                ))
            })?;
        let mut header = Header::new(jws_alg(alg));
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .map_err(|e| StoreError::Corrupt(format!("signing failed: {e}")))
    }

    /// The public keys to publish: every key not yet superseded, and superseded ones until the ID tokens they
    /// signed have expired.
    pub async fn jwks(&self, store: &dyn Store, now: Timestamp) -> StoreResult<JwkSet> {
        self.refresh(store, now).await?;
        let set = self.current();
        let keep = self.id_token_ttl + PUBLISH_MARGIN_SECS;
        Ok(JwkSet {
            keys: set
                .keys
                .iter()
                .filter(|k| k.superseded_at.is_none_or(|at| now < at + keep))
                .map(|k| k.public.clone())
                .collect(),
        })
    }
}

/// `latchkey keys rotate`: a new key for each algorithm, signing from `now + delay`.
pub async fn rotate(
    store: &dyn Store,
    master: &MasterKey,
    now: Timestamp,
    delay: i64,
) -> StoreResult<Vec<SigningKeyRecord>> {
    let mut added = Vec::new();
    for alg in SigningAlg::ALL {
        let record = new_record(alg, now, now + delay, master).await?;
        store.insert_signing_key(&record).await?;
        added.push(record);
    }
    Ok(added)
}

/// What `keys revoke` did.
#[derive(Debug)]
pub struct Revoked {
    pub alg: SigningAlg,
    /// The key that signs for `alg` from now on, if the revoked key was the one signing.
    pub successor: Option<String>,
    /// Whether the successor was already published (a key from `keys rotate` waiting to sign), rather than new.
    pub successor_was_published: bool,
}

/// `latchkey keys revoke <kid>`: withdraws a compromised key at once. It is marked revoked and its private key
/// erased; every node stops publishing it and signing with it at its next reload (within [`RELOAD_SECS`]).
///
/// If it was the key signing for its algorithm, a successor signs from now: a key from `keys rotate` still
/// waiting to activate if there is one (already published), otherwise a new key. A new key breaks SPEC 3's
/// "published before used" for up to one reload: a relying party that fetched the JWKS from a node that has not
/// reloaded yet may meet an unknown `kid` and must fetch it again. That is the lesser harm: the alternative is to
/// keep signing with a compromised key, or to sign nothing for that algorithm for two minutes.
pub async fn revoke(
    store: &dyn Store,
    master: &MasterKey,
    kid: &str,
    now: Timestamp,
) -> StoreResult<Option<Revoked>> {
    let all = store.list_signing_keys().await?;
    let Some(target) = all.iter().find(|k| k.kid == kid && k.revoked_at.is_none()) else {
        return Ok(None);
    };
    let alg = target.alg;
    let signer = all
        .iter()
        .filter(|k| k.alg == alg && k.revoked_at.is_none() && k.activate_at <= now)
        .max_by_key(|k| (k.activate_at, k.kid.as_str()));
    let was_signing = signer.is_some_and(|k| k.kid == kid);
    if !store.revoke_signing_key(kid, now).await? {
        return Ok(None);
    }
    let mut revoked = Revoked {
        alg,
        successor: None,
        successor_was_published: false,
    };
    if was_signing {
        let waiting = all
            .iter()
            .filter(|k| k.alg == alg && k.revoked_at.is_none() && k.activate_at > now)
            .min_by_key(|k| (k.activate_at, k.kid.clone()));
        // Published keys of a rotation less than one reload old may not be on every node yet: no better than new.
        match waiting.filter(|k| k.created_at + RELOAD_SECS <= now) {
            Some(k) => {
                store.activate_signing_key(&k.kid, now).await?;
                revoked.successor = Some(k.kid.clone());
                revoked.successor_was_published = true;
            }
            None => {
                let fresh = new_record(alg, now, now, master).await?;
                store.insert_signing_key(&fresh).await?;
                revoked.successor = Some(fresh.kid);
            }
        }
    }
    Ok(Some(revoked))
}

/// Opens a stored key for `keys rewrap`: `None` if `new` already seals it, the plaintext if `old` does (or if it
/// is a key stored before sealing, recognised by `legacy`).
fn open_for_rewrap(
    old: &MasterKey,
    new: &MasterKey,
    row: Row<'_>,
    stored: &[u8],
    legacy: bool,
) -> StoreResult<Option<zeroize::Zeroizing<Vec<u8>>>> {
    if new.open(row, stored).is_ok() {
        return Ok(None);
    }
    match old.open(row, stored) {
        Ok(plain) => Ok(Some(plain)),
        Err(OpenError::NotSealed) if legacy => Ok(Some(zeroize::Zeroizing::new(stored.to_vec()))),
        Err(e) => Err(StoreError::Corrupt(format!(
            "{row} opens with neither the current master key {} nor the new one {} ({e})",
            old.id(),
            new.id()
        ))),
    }
}

/// `latchkey keys rewrap`: seals every stored key (the signing keys and the hash key) under `new` instead of `old`,
/// one row at a time, each only if nobody changed it meanwhile. Rows already under `new` are left alone, so an
/// interrupted run is finished by running it again. Returns how many rows were re-sealed; on success every key
/// opens with `new`.
pub async fn rewrap(store: &dyn Store, old: &MasterKey, new: &MasterKey) -> StoreResult<usize> {
    let hash_row = Row::ServerSecret(HASH_KEY);
    let mut count = 0;
    for _ in 0..3 {
        let mut lost_race = false;
        // The hash key (if the database has never been started, a new one is stored under `new`).
        let mut fresh = zeroize::Zeroizing::new([0u8; 32]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut fresh[..]);
        let candidate = new
            .seal(hash_row, &fresh[..])
            .map_err(StoreError::Corrupt)?;
        let stored = store.server_secret(HASH_KEY, &candidate).await?;
        if let Some(plain) = open_for_rewrap(old, new, hash_row, &stored, stored.len() == 32)? {
            let sealed = new.seal(hash_row, &plain).map_err(StoreError::Corrupt)?;
            if store
                .replace_server_secret(HASH_KEY, &stored, &sealed)
                .await?
            {
                count += 1;
            } else {
                lost_race = true;
            }
        }
        for r in store.list_signing_keys().await? {
            if r.revoked_at.is_some() {
                continue;
            }
            let row = Row::SigningKey(&r.kid);
            let legacy = r.sealed_key.first() == Some(&0x30);
            if let Some(plain) = open_for_rewrap(old, new, row, &r.sealed_key, legacy)? {
                let sealed = new.seal(row, &plain).map_err(StoreError::Corrupt)?;
                if store
                    .replace_signing_key(&r.kid, &r.sealed_key, &sealed)
                    .await?
                {
                    count += 1;
                } else {
                    lost_race = true;
                }
            }
        }
        if !lost_race {
            return Ok(count);
        }
    }
    Err(StoreError::Corrupt(
        "the stored keys kept changing during the rewrap: run it again".into(),
    ))
}
