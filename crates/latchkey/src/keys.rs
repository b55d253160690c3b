//! ID-token signing keys (SPEC 3). The keys live in the store so that every node signs with, and publishes, the
//! same ones; each node keeps them in memory and reloads them every [`RELOAD_SECS`].
//!
//! A key signs from its `activate_at` until a newer key of its algorithm activates, and stays in the JWKS until
//! every ID token it could have signed has expired. `latchkey keys rotate` adds keys that activate after
//! [`ROTATION_DELAY_SECS`]: by then every node has reloaded and publishes them, so no relying party ever sees a
//! `kid` it cannot find.

use crate::store::{SigningKeyRecord, Store, StoreError, StoreResult};
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use latchkey_core::oidc::{IdTokenClaims, SigningAlg};
use latchkey_core::Timestamp;
use std::sync::{Arc, RwLock};

/// How often a node rereads the keys.
pub const RELOAD_SECS: i64 = 30;
/// How long after `keys rotate` new keys start signing (several reloads).
pub const ROTATION_DELAY_SECS: i64 = 4 * RELOAD_SECS;
/// Extra time a superseded key stays published beyond the ID-token lifetime (clock skew, caches).
const PUBLISH_MARGIN_SECS: i64 = 300;

/// The algorithms every installation has keys for from the first start; RS256 (slow to generate) is created the
/// first time an app needs it.
const EAGER: [SigningAlg; 2] = [SigningAlg::Es256, SigningAlg::EdDsa];

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

/// A new key record, random `kid`.
pub async fn new_record(
    alg: SigningAlg,
    now: Timestamp,
    activate_at: Timestamp,
) -> StoreResult<SigningKeyRecord> {
    let private_der = tokio::task::spawn_blocking(move || generate(alg))
        .await
        .map_err(|e| StoreError::Corrupt(format!("key generation stopped: {e}")))??;
    Ok(SigningKeyRecord {
        kid: format!(
            "{}-{}",
            alg.as_str().to_ascii_lowercase(),
            latchkey_core::ids::new_internal_id(&mut rand::thread_rng())
        ),
        alg,
        private_der,
        created_at: now,
        activate_at,
    })
}

/// One key, ready to sign and to publish.
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

fn load(records: Vec<SigningKeyRecord>, now: Timestamp) -> StoreResult<KeySet> {
    let mut keys: Vec<Loaded> = Vec::with_capacity(records.len());
    for r in records {
        let encoding = match r.alg {
            SigningAlg::Es256 => EncodingKey::from_ec_der(&r.private_der),
            SigningAlg::EdDsa => EncodingKey::from_ed_der(&r.private_der),
            SigningAlg::Rs256 => EncodingKey::from_rsa_der(&r.private_der),
        };
        let mut public = Jwk::from_encoding_key(&encoding, jws_alg(r.alg))
            .map_err(|e| StoreError::Corrupt(format!("signing key {} is unusable: {e}", r.kid)))?;
        public.common.key_id = Some(r.kid.clone());
        public.common.public_key_use = Some(PublicKeyUse::Signature);
        public.common.key_algorithm = Some(key_alg(r.alg));
        keys.push(Loaded {
            kid: r.kid,
            alg: r.alg,
            encoding,
            public,
            activate_at: r.activate_at,
            superseded_at: None,
        });
    }
    // Records come oldest first: each key is superseded when the next of its algorithm activates.
    for i in 0..keys.len() {
        let next = keys[i + 1..]
            .iter()
            .filter(|k| k.alg == keys[i].alg && k.activate_at <= now)
            .map(|k| k.activate_at)
            .min();
        keys[i].superseded_at = next;
    }
    Ok(KeySet {
        loaded_at: now,
        keys,
    })
}

/// The node's view of the signing keys.
pub struct KeyRing {
    set: RwLock<Arc<KeySet>>,
    id_token_ttl: i64,
}

impl KeyRing {
    /// Loads the keys, creating the first ones if the database has none.
    pub async fn open(
        store: &dyn Store,
        now: Timestamp,
        id_token_ttl: i64,
    ) -> StoreResult<KeyRing> {
        let mut records = store.list_signing_keys().await?;
        for alg in EAGER {
            if !records.iter().any(|r| r.alg == alg) {
                store
                    .insert_signing_key(&new_record(alg, now, now).await?)
                    .await?;
            }
        }
        if records.len() < EAGER.len() {
            records = store.list_signing_keys().await?;
        }
        Ok(KeyRing {
            set: RwLock::new(Arc::new(load(records, now)?)),
            id_token_ttl,
        })
    }

    fn current(&self) -> Arc<KeySet> {
        match self.set.read() {
            Ok(set) => set.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Rereads the keys now.
    pub async fn reload(&self, store: &dyn Store, now: Timestamp) -> StoreResult<()> {
        let fresh = Arc::new(load(store.list_signing_keys().await?, now)?);
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

    /// Makes sure a key of `alg` exists (registering an app that uses it calls this, so that the key is in the
    /// store, and soon in every node's JWKS, before it signs anything), and reloads.
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
            .any(|k| k.alg == alg)
        {
            store
                .insert_signing_key(&new_record(alg, now, now).await?)
                .await?;
        }
        self.reload(store, now).await
    }

    /// Signs an ID token with the active key of `alg`, creating the first key of that algorithm if need be.
    pub async fn sign(
        &self,
        store: &dyn Store,
        alg: SigningAlg,
        claims: &IdTokenClaims,
        now: Timestamp,
    ) -> StoreResult<String> {
        self.refresh(store, now).await?;
        if !self.current().keys.iter().any(|k| k.alg == alg) {
            // Another node (or the registration of an app using `alg`) may have made one since the last reload.
            self.ensure(store, alg, now).await?;
        }
        let set = self.current();
        let key = set
            .keys
            .iter()
            .filter(|k| k.alg == alg && k.activate_at <= now)
            .max_by_key(|k| (k.activate_at, k.kid.as_str()))
            .ok_or_else(|| StoreError::Corrupt(format!("no active {} key", alg.as_str())))?;
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

/// `latchkey keys rotate`: a new key for each algorithm in use, signing from `now + delay`.
pub async fn rotate(
    store: &dyn Store,
    now: Timestamp,
    delay: i64,
) -> StoreResult<Vec<SigningKeyRecord>> {
    let existing = store.list_signing_keys().await?;
    let mut added = Vec::new();
    for alg in SigningAlg::ALL {
        if EAGER.contains(&alg) || existing.iter().any(|k| k.alg == alg) {
            let record = new_record(alg, now, now + delay).await?;
            store.insert_signing_key(&record).await?;
            added.push(record);
        }
    }
    Ok(added)
}
