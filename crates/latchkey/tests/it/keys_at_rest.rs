//! Keys at rest (SPEC 4): the ID-token private keys and the hashing key are stored sealed under a master key that
//! is not in the database. A copy of the database alone holds no private key; rows from before sealing are sealed
//! on the first start without changing the keys; a node with another master key refuses to start; `keys revoke`
//! withdraws a key at once and hands signing to a successor.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::*;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use latchkey::app::App;
use latchkey::config::SecretSetting;
use latchkey::keys;
use latchkey::keys::HASH_KEY;
use latchkey::seal::{self, MasterKey, Row};
use latchkey::store::{KeyStore as _, SigningKeyRecord, SqlStore, Store};
use latchkey_core::oidc::SigningAlg;
use latchkey_core::secret::{KeyedHasher, Kind};
use std::sync::Arc;

fn test_key() -> MasterKey {
    MasterKey::parse(TEST_MASTER_KEY).unwrap()
}

/// The store of `db`, opened and migrated as a node would, without building an app.
async fn raw_store(db: &TestDb) -> SqlStore {
    App::open_store(&test_config(&db.url)).await.unwrap()
}

/// The stored hash key as it is in the database (it exists already: nothing is inserted).
async fn stored_hash_key(store: &dyn Store) -> Vec<u8> {
    store.server_secret(HASH_KEY, b"absent").await.unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The secret parts of a DER private key, each of which must be absent from a database copy: the DER itself and
/// the raw scalar or seed inside it.
fn private_parts(alg: SigningAlg, der: &[u8]) -> Vec<Vec<u8>> {
    let mut parts = vec![der.to_vec()];
    match alg {
        SigningAlg::Es256 => {
            use p256::pkcs8::DecodePrivateKey;
            parts.push(
                p256::SecretKey::from_pkcs8_der(der)
                    .unwrap()
                    .to_bytes()
                    .to_vec(),
            );
        }
        // PKCS#8 v1 Ed25519: the 32-byte seed ends the DER.
        SigningAlg::EdDsa => parts.push(der[der.len() - 32..].to_vec()),
        SigningAlg::Rs256 => {}
    }
    parts
}

/// Whether `bytes` parse as a private key of `alg`, in the forms Latchkey stores.
fn parses_as_private_key(alg: SigningAlg, bytes: &[u8]) -> bool {
    match alg {
        SigningAlg::Es256 => {
            use p256::pkcs8::DecodePrivateKey;
            p256::SecretKey::from_pkcs8_der(bytes).is_ok()
        }
        SigningAlg::EdDsa => {
            use ed25519_dalek::pkcs8::DecodePrivateKey;
            ed25519_dalek::SigningKey::from_pkcs8_der(bytes).is_ok()
        }
        SigningAlg::Rs256 => {
            use rsa::pkcs1::DecodeRsaPrivateKey;
            rsa::RsaPrivateKey::from_pkcs1_der(bytes).is_ok()
        }
    }
}

#[tokio::test]
async fn a_copy_of_the_database_alone_holds_no_private_key_and_cannot_start_a_server() {
    let db = Arc::new(sqlite_db());
    let app = spawn_app_on(db.clone()).await;
    // Keys of all three kinds exist from the first start.
    let jwks: serde_json::Value = app
        .api()
        .get(app.url("/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 3, "{jwks}");

    // What the server holds, opened with the master key the test knows (a thief does not).
    let master = test_key();
    let hash_key = master
        .open(
            Row::ServerSecret(HASH_KEY),
            &stored_hash_key(app.store().as_ref()).await,
        )
        .unwrap();
    let records = app.store().list_signing_keys().await.unwrap();
    assert_eq!(records.len(), 3);
    let mut secrets = vec![("hash key".to_owned(), hash_key.to_vec())];
    for r in &records {
        let der = master.open(Row::SigningKey(&r.kid), &r.sealed_key).unwrap();
        assert!(parses_as_private_key(r.alg, &der), "{}", r.kid);
        for part in private_parts(r.alg, &der) {
            secrets.push((format!("private key {}", r.kid), part));
        }
    }

    // Copy the database files (the main file and its write-ahead log: everything the database holds).
    let path = db
        .url
        .trim_start_matches("sqlite://")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let copy_dir = tempfile::tempdir().unwrap();
    let copy = copy_dir.path().join("latchkey.db");
    let mut bytes = Vec::new();
    for suffix in ["", "-wal"] {
        let from = format!("{path}{suffix}");
        if let Ok(content) = std::fs::read(&from) {
            std::fs::write(format!("{}{suffix}", copy.display()), &content).unwrap();
            bytes.extend(content);
        }
    }
    assert!(bytes.len() > 4096);
    for (what, secret) in &secrets {
        assert!(
            !contains(&bytes, secret),
            "the {what} is in the database file"
        );
    }

    // Opened alone, the copy's key rows are ciphertext: none parses as a private key.
    let copy_url = format!("sqlite://{}?mode=rw", copy.display());
    let stolen = SqlStore::connect(&copy_url).await.unwrap();
    let rows = stolen.list_signing_keys().await.unwrap();
    assert_eq!(rows.len(), 3);
    for r in &rows {
        assert!(!parses_as_private_key(r.alg, &r.sealed_key), "{}", r.kid);
        assert_eq!(seal::sealed_by(&r.sealed_key), Some(master.id()));
    }
    assert_ne!(stored_hash_key(&stolen).await, hash_key.to_vec());

    // A server started on the copy without the master key (a new one is made in its empty data directory)
    // refuses to start rather than make itself new keys.
    let thief_dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&copy_url);
    config.master_key = None;
    config.data_dir = thief_dir.path().to_owned();
    let refused = App::with_store(config, Arc::new(stolen))
        .await
        .err()
        .unwrap();
    let message = refused.to_string();
    assert!(
        message.contains(&format!("sealed under master key {}", master.id())),
        "{message}"
    );
    assert!(thief_dir.path().join("master.key").exists());
    let stolen = SqlStore::connect(&copy_url).await.unwrap();
    assert_eq!(stolen.list_signing_keys().await.unwrap().len(), 3);
}

#[tokio::test]
async fn keys_stored_in_the_clear_are_sealed_on_first_start_and_what_they_made_still_verifies() {
    for (engine, db) in each_db().await {
        let db = Arc::new(db);
        // A database as the previous version left it: the hash key and a signing key in the clear.
        let store = raw_store(&db).await;
        let plain_hash_key = [42u8; 32];
        assert_eq!(
            store
                .server_secret(HASH_KEY, &plain_hash_key)
                .await
                .unwrap(),
            plain_hash_key
        );
        let now = latchkey::app::Clock::default().now();
        let der = keys::generate(SigningAlg::Es256).unwrap();
        let legacy = SigningKeyRecord {
            kid: "es256-legacy".into(),
            alg: SigningAlg::Es256,
            sealed_key: der.clone(),
            created_at: now - 600,
            activate_at: now - 600,
            revoked_at: None,
        };
        store.insert_signing_key(&legacy).await.unwrap();
        // What that version made with them: a token hash and an ID token.
        let old_hash = KeyedHasher::new(&plain_hash_key).token(Kind::AccessToken, "Atza|before");
        let claims = serde_json::json!({"iss": "x", "sub": "amzn1.account.X", "aud": "app", "iat": now, "exp": now + 600});
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(legacy.kid.clone());
        let id_token =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(&der)).unwrap();

        // The first start seals both rows in place.
        let app = spawn_app_over(db.clone(), Arc::new(store)).await;
        let master = test_key();
        let raw = raw_store(&db).await;
        let stored = stored_hash_key(&raw).await;
        assert_ne!(stored, plain_hash_key, "{engine}");
        assert!(!contains(&stored, &plain_hash_key), "{engine}");
        assert_eq!(
            master
                .open(Row::ServerSecret(HASH_KEY), &stored)
                .unwrap()
                .as_slice(),
            plain_hash_key,
            "{engine}: the hash key is the same, only sealed"
        );
        let row = raw
            .list_signing_keys()
            .await
            .unwrap()
            .into_iter()
            .find(|k| k.kid == legacy.kid)
            .unwrap();
        assert_eq!(
            seal::sealed_by(&row.sealed_key),
            Some(master.id()),
            "{engine}"
        );
        assert!(!contains(&row.sealed_key, &der), "{engine}");

        // Hashes made before still match, and the ID token still verifies against the served JWKS.
        assert_eq!(
            app.state.hasher.token(Kind::AccessToken, "Atza|before"),
            old_hash,
            "{engine}"
        );
        let jwks: jsonwebtoken::jwk::JwkSet = app
            .api()
            .get(app.url("/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let jwk = jwks
            .find(&legacy.kid)
            .expect("the old key is still published");
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&["app"]);
        jsonwebtoken::decode::<serde_json::Value>(
            &id_token,
            &DecodingKey::from_jwk(jwk).unwrap(),
            &validation,
        )
        .unwrap_or_else(|e| panic!("{engine}: the pre-sealing ID token: {e}"));

        // A second node with the same master key starts; one with another master key refuses, naming both ids.
        let again = spawn_app_on(db.clone()).await;
        assert!(again
            .state
            .keys
            .jwks(again.store().as_ref(), now)
            .await
            .unwrap()
            .find(&legacy.kid)
            .is_some());
        let other = MasterKey::generate();
        let mut config = test_config(&db.url);
        config.master_key = Some(SecretSetting::new(other.encode().as_str()));
        let refused = App::build(config).await.err().unwrap().to_string();
        assert!(
            refused.contains(&master.id().to_string()),
            "{engine}: {refused}"
        );
        assert!(
            refused.contains(&other.id().to_string()),
            "{engine}: {refused}"
        );
        let keys_after = raw.list_signing_keys().await.unwrap();
        assert_eq!(
            keys_after.len(),
            3,
            "{engine}: nothing new was made after the first start: {keys_after:?}"
        );
    }
}

#[tokio::test]
async fn a_malformed_master_key_is_a_clear_startup_error() {
    let db = sqlite_db();
    for (bad, says) in [("not base64!", "base64"), ("c2hvcnQ=", "5 bytes")] {
        let mut config = test_config(&db.url);
        config.master_key = Some(SecretSetting::new(bad));
        let e = App::build(config).await.err().unwrap().to_string();
        assert!(e.contains("LATCHKEY_MASTER_KEY") && e.contains(says), "{e}");
        assert!(!e.contains(bad), "the key is not echoed: {e}");
    }
    let mut config = test_config(&db.url);
    config.master_key = None;
    config.master_key_file = Some("/nonexistent/master.key".into());
    let e = App::build(config).await.err().unwrap().to_string();
    assert!(e.contains("/nonexistent/master.key"), "{e}");
}

#[tokio::test]
async fn sealed_rows_are_replaced_only_if_unchanged_on_both_engines() {
    for (engine, db) in each_db().await {
        let store = raw_store(&db).await;
        store.server_secret("s", b"one").await.unwrap();
        assert!(
            !store
                .replace_server_secret("s", b"other", b"two")
                .await
                .unwrap(),
            "{engine}"
        );
        assert!(
            store
                .replace_server_secret("s", b"one", b"two")
                .await
                .unwrap(),
            "{engine}"
        );
        assert_eq!(
            store.server_secret("s", b"x").await.unwrap(),
            b"two",
            "{engine}"
        );
        let record = keys::new_record(SigningAlg::EdDsa, 100, 100, &test_key())
            .await
            .unwrap();
        store.insert_signing_key(&record).await.unwrap();
        assert!(
            !store
                .replace_signing_key(&record.kid, b"stale", b"new")
                .await
                .unwrap(),
            "{engine}"
        );
        assert!(
            store
                .replace_signing_key(&record.kid, &record.sealed_key, b"new")
                .await
                .unwrap(),
            "{engine}"
        );
        assert!(
            store.revoke_signing_key(&record.kid, 200).await.unwrap(),
            "{engine}"
        );
        assert!(
            !store.revoke_signing_key(&record.kid, 300).await.unwrap(),
            "{engine}: once"
        );
        let revoked = &store.list_signing_keys().await.unwrap()[0];
        assert_eq!(revoked.revoked_at, Some(200), "{engine}");
        assert!(
            revoked.sealed_key.is_empty(),
            "{engine}: the private key is erased"
        );
    }
}

#[tokio::test]
async fn a_revoked_key_is_unpublished_at_the_next_reload_and_a_published_successor_signs() {
    let app = spawn_app().await;
    let store = app.store().as_ref();
    let master = app.state.keys.master_key();
    let t0 = app.state.clock.now();
    let es256 = |set: &[SigningKeyRecord]| {
        set.iter()
            .filter(|k| k.alg == SigningAlg::Es256)
            .map(|k| k.kid.clone())
            .collect::<Vec<_>>()
    };
    let compromised = es256(&store.list_signing_keys().await.unwrap())[0].clone();
    let rotated = keys::rotate(store, master, t0, keys::ROTATION_DELAY_SECS)
        .await
        .unwrap();
    let waiting = rotated
        .iter()
        .find(|k| k.alg == SigningAlg::Es256)
        .unwrap()
        .kid
        .clone();

    // One reload later every node publishes the waiting key; revoking the signer hands signing to it at once.
    app.state.clock.advance(keys::RELOAD_SECS);
    let now = app.state.clock.now();
    let revoked = keys::revoke(store, master, &compromised, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.successor.as_deref(), Some(waiting.as_str()));
    assert!(revoked.successor_was_published);
    assert!(
        keys::revoke(store, master, &compromised, now)
            .await
            .unwrap()
            .is_none(),
        "once"
    );

    // The next reload drops it from the JWKS and from signing.
    app.state.clock.advance(keys::RELOAD_SECS);
    let now = app.state.clock.now();
    let jwks = app.state.keys.jwks(store, now).await.unwrap();
    assert!(jwks.find(&compromised).is_none());
    assert!(jwks.find(&waiting).is_some());
    let claims = latchkey_core::oidc::IdTokenClaims {
        name: None,
        email: None,
        email_verified: None,
        iss: app.base.clone(),
        sub: "amzn1.account.X".into(),
        aud: "app".into(),
        exp: now + 600,
        iat: now,
        auth_time: now,
        nonce: None,
        at_hash: String::new(),
    };
    let signed = app
        .state
        .keys
        .sign(store, SigningAlg::Es256, &claims, now)
        .await
        .unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(&signed).unwrap().kid.as_deref(),
        Some(waiting.as_str())
    );

    // Revoking a key that was not signing (the EdDSA key waiting from the rotation) needs no successor.
    let eddsa = rotated.iter().find(|k| k.alg == SigningAlg::EdDsa).unwrap();
    let revoked = keys::revoke(store, master, &eddsa.kid, now)
        .await
        .unwrap()
        .unwrap();
    assert!(revoked.successor.is_none());
}

#[tokio::test]
async fn after_a_rewrap_a_node_still_on_the_old_key_keeps_serving_the_keys_it_holds() {
    let db = Arc::new(sqlite_db());
    let app = spawn_app_on(db.clone()).await;
    let store = app.store().as_ref();
    let before = app
        .state
        .keys
        .jwks(store, app.state.clock.now())
        .await
        .unwrap();
    let new = MasterKey::generate();
    assert_eq!(keys::rewrap(store, &test_key(), &new).await.unwrap(), 4);
    assert_eq!(
        keys::rewrap(store, &test_key(), &new).await.unwrap(),
        0,
        "nothing left to do"
    );
    for k in store.list_signing_keys().await.unwrap() {
        assert_eq!(seal::sealed_by(&k.sealed_key), Some(new.id()));
    }

    // The running node reloads: it cannot open the rows any more, but keeps publishing and signing.
    app.state.clock.advance(keys::RELOAD_SECS);
    let now = app.state.clock.now();
    let after = app.state.keys.jwks(store, now).await.unwrap();
    assert_eq!(after.keys.len(), before.keys.len());
    let claims = latchkey_core::oidc::IdTokenClaims {
        name: None,
        email: None,
        email_verified: None,
        iss: app.base.clone(),
        sub: "amzn1.account.X".into(),
        aud: "app".into(),
        exp: now + 600,
        iat: now,
        auth_time: now,
        nonce: None,
        at_hash: String::new(),
    };
    app.state
        .keys
        .sign(store, SigningAlg::Es256, &claims, now)
        .await
        .unwrap();

    // A restart needs the new key: the old one is refused, the new one opens everything.
    assert!(App::build(test_config(&db.url)).await.is_err());
    let mut config = test_config(&db.url);
    config.master_key = Some(SecretSetting::new(new.encode().as_str()));
    let restarted = App::build(config).await.unwrap();
    assert_eq!(
        restarted.keys.jwks(store, now).await.unwrap().keys.len(),
        before.keys.len()
    );
}

#[tokio::test]
async fn on_sqlite_no_cleartext_key_survives_in_the_database_files_after_sealing() {
    let db = Arc::new(sqlite_db());
    let path = std::path::PathBuf::from(
        db.url
            .trim_start_matches("sqlite://")
            .trim_end_matches("?mode=rwc"),
    );
    // A database as the previous version left it, the keys in the clear in its pages and its WAL.
    let store = raw_store(&db).await;
    let mut plain_hash_key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut plain_hash_key);
    store
        .server_secret(HASH_KEY, &plain_hash_key)
        .await
        .unwrap();
    let now = latchkey::app::Clock::default().now();
    let der = keys::generate(SigningAlg::Es256).unwrap();
    store
        .insert_signing_key(&SigningKeyRecord {
            kid: "es256-legacy".into(),
            alg: SigningAlg::Es256,
            sealed_key: der.clone(),
            created_at: now - 600,
            activate_at: now - 600,
            revoked_at: None,
        })
        .await
        .unwrap();
    let mut secrets = private_parts(SigningAlg::Es256, &der);
    secrets.push(plain_hash_key.to_vec());
    let files = [path.clone(), path.with_extension("db-wal")];
    let found = |what: &str| {
        let bytes: Vec<u8> = files
            .iter()
            .flat_map(|f| std::fs::read(f).unwrap_or_default())
            .collect();
        assert!(
            bytes.len() > 4096,
            "{what}: the files were read ({})",
            bytes.len()
        );
        secrets.iter().filter(|s| contains(&bytes, s)).count()
    };
    assert_eq!(
        found("before"),
        secrets.len(),
        "the scan sees cleartext keys"
    );

    // The first start seals them; neither the file nor the WAL keeps the cleartext.
    let app = spawn_app_over(db.clone(), Arc::new(store)).await;
    assert_eq!(found("after the first start"), 0);
    // It keeps working, and a second start (nothing to seal) changes nothing.
    let jwks = app
        .state
        .keys
        .jwks(app.store().as_ref(), now)
        .await
        .unwrap();
    assert!(jwks.find("es256-legacy").is_some());
    let again = spawn_app_on(db.clone()).await;
    assert!(again
        .state
        .keys
        .jwks(again.store().as_ref(), now)
        .await
        .unwrap()
        .find("es256-legacy")
        .is_some());
    assert_eq!(found("after a second start"), 0);
}
