//! The `Store` contract, run against both engines: SQLite always, PostgreSQL when it is running (always under
//! `CI=true`). Each test opens a fresh database with `SqlStore::connect` + `migrate` and checks what the trait's
//! documentation promises, including the one-time and rotating operations under parallel callers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::*;
use latchkey::flows::registration;
use latchkey::store::*;
use latchkey_core::client::{ClientKind, Feature, Features};
use latchkey_core::pkce::{Challenge, Method};
use latchkey_core::refresh;
use latchkey_core::secret::{Digest, KeyedHasher, Kind};
use latchkey_core::Timestamp;
use std::sync::Arc;

/// A fixed "now" so that every expiry in these tests is exact.
const NOW: Timestamp = 1_700_000_000;
const TTL: i64 = 3600;

/// A distinct 32-byte hash for a label (the store only ever sees hashes).
fn h(label: &str) -> Digest {
    KeyedHasher::new(&[7u8; 32]).token(Kind::AccessToken, label)
}

async fn open(db: &TestDb) -> Arc<SqlStore> {
    let store = SqlStore::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    Arc::new(store)
}

fn new_user(email: &str) -> User {
    User {
        id: latchkey_core::ids::new_internal_id(&mut rand::thread_rng()),
        email: email.to_owned(),
        email_verified: true,
        name: format!("Name of {email}"),
        postal_code: Some("12345".into()),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        disabled: false,
        created_at: NOW,
    }
}

fn new_client(name: &str, created_at: Timestamp) -> Client {
    let input = registration::AppInput {
        name: name.into(),
        ..default_app_input()
    };
    let (client, _) = registration::new_app(
        &input,
        &KeyedHasher::new(&[1u8; 32]),
        &mut rand::thread_rng(),
        created_at,
    )
    .unwrap();
    client
}

/// The hashes of a grant's tokens, to look them up again.
struct Minted {
    grant: NewGrant,
    access: Digest,
    refresh: Option<Digest>,
}

/// A customer grant in `family` for `user` at `client`, issued at `at`, with tokens named after `label`.
fn grant(family: &str, client: &Client, user: &User, at: Timestamp, label: &str) -> Minted {
    let access = h(&format!("{label}/access"));
    let refresh = h(&format!("{label}/refresh"));
    Minted {
        grant: NewGrant {
            family_id: family.to_owned(),
            access: NewAccessToken {
                token_hash: access,
                client_id: client.policy.client_id.clone(),
                app_id: client.app_id.clone(),
                user_id: Some(user.id.clone()),
                subject: Some(format!("lk1.account.SUBJECT{}", user.id.len())),
                scopes: "profile".into(),
                issued_at: at,
                expires_at: at + TTL,
            },
            refresh: Some(NewRefresh {
                token_hash: refresh,
                scopes: "postal_code profile".into(),
            }),
            auth_time: at - 5,
        },
        access,
        refresh: Some(refresh),
    }
}

fn code_for(label: &str, client: &Client, user: &User, at: Timestamp) -> NewAuthCode {
    NewAuthCode {
        code_hash: h(label),
        client_id: client.policy.client_id.clone(),
        user_id: user.id.clone(),
        subject: "lk1.account.ABCDEFGHIJKLMNOPQRSTUVWXYZ".into(),
        scopes: "postal_code profile".into(),
        redirect_uri: "http://127.0.0.1/callback".into(),
        redirect_uri_sent: true,
        challenge: Some(Challenge {
            challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
            method: Method::S256,
        }),
        nonce: Some("n-0S6_WzA2Mj".into()),
        auth_time: at - 30,
        created_at: at,
        expires_at: at + 300,
    }
}

/// A database with one customer and one app in it.
struct Fx {
    engine: &'static str,
    store: Arc<SqlStore>,
    user: User,
    client: Client,
    _db: TestDb,
}

async fn fixtures() -> Vec<Fx> {
    let mut out = Vec::new();
    for (engine, db) in each_db().await {
        let store = open(&db).await;
        let user = new_user("ada@example.com");
        assert_eq!(store.create_user(&user).await.unwrap(), Created::Created);
        let client = new_client("Shop", NOW);
        assert_eq!(
            store.create_client(&client).await.unwrap(),
            Created::Created
        );
        out.push(Fx {
            engine,
            store,
            user,
            client,
            _db: db,
        });
    }
    out
}

async fn access_live(store: &SqlStore, hash: &Digest, now: Timestamp) -> bool {
    store.find_access_token(hash, now).await.unwrap().is_some()
}

async fn refresh_status(store: &SqlStore, hash: &Digest) -> refresh::Status {
    store
        .find_refresh_token(hash)
        .await
        .unwrap()
        .expect("refresh token stored")
        .status
}

// ---------------------------------------------------------------------------------------------------------------
// Server secrets and health

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_secret_keeps_the_first_value_for_every_caller() {
    for (engine, db) in each_db().await {
        let store = open(&db).await;
        store.ping().await.unwrap();
        let first = store.server_secret("k", b"first").await.unwrap();
        assert_eq!(first, b"first", "{engine}");
        let again = store.server_secret("k", b"second").await.unwrap();
        assert_eq!(
            again, b"first",
            "{engine}: a later candidate must not replace it"
        );
        let other = store.server_secret("other", b"x").await.unwrap();
        assert_eq!(other, b"x", "{engine}: names are independent");

        // A second node (its own pool) racing for a new secret: everyone gets the same one value.
        let node_b = open(&db).await;
        let mut tasks = Vec::new();
        for i in 0..8u8 {
            let s = if i % 2 == 0 {
                store.clone()
            } else {
                node_b.clone()
            };
            tasks.push(tokio::spawn(async move {
                s.server_secret("raced", &[i; 32]).await.unwrap()
            }));
        }
        let mut values = Vec::new();
        for t in tasks {
            values.push(t.await.unwrap());
        }
        assert!(
            values.iter().all(|v| v == &values[0]),
            "{engine}: nodes disagree on a server secret: {values:?}"
        );
        assert_eq!(values[0].len(), 32, "{engine}");
        assert_eq!(
            node_b.server_secret("k", b"third").await.unwrap(),
            b"first",
            "{engine}"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Users

#[tokio::test]
async fn users_are_created_once_found_and_listed() {
    for (engine, db) in each_db().await {
        let store = open(&db).await;
        let ada = new_user("ada@example.com");
        let mut bob = new_user("bob@example.com");
        bob.postal_code = None;
        bob.created_at = NOW + 1;
        assert_eq!(store.create_user(&bob).await.unwrap(), Created::Created);
        assert_eq!(store.create_user(&ada).await.unwrap(), Created::Created);

        let mut same_email = new_user("ada@example.com");
        same_email.name = "Impostor".into();
        assert_eq!(
            store.create_user(&same_email).await.unwrap(),
            Created::AlreadyExists,
            "{engine}: duplicate email"
        );
        let mut same_id = new_user("carol@example.com");
        same_id.id = ada.id.clone();
        assert_eq!(
            store.create_user(&same_id).await.unwrap(),
            Created::AlreadyExists,
            "{engine}: duplicate id"
        );

        assert_eq!(
            store.find_user(&ada.id).await.unwrap().as_ref(),
            Some(&ada),
            "{engine}"
        );
        assert_eq!(
            store.find_user_by_email("ada@example.com").await.unwrap(),
            Some(ada.clone()),
            "{engine}: the first account keeps the email"
        );
        assert_eq!(
            store.find_user_by_email("bob@example.com").await.unwrap(),
            Some(bob.clone()),
            "{engine}: postal code None round-trips"
        );
        assert_eq!(store.find_user("nobody").await.unwrap(), None, "{engine}");
        assert_eq!(
            store.find_user_by_email("carol@example.com").await.unwrap(),
            None,
            "{engine}: the rejected duplicate was not stored"
        );
        // Oldest first.
        assert_eq!(
            store.list_users().await.unwrap(),
            vec![ada, bob],
            "{engine}"
        );
    }
}

#[tokio::test]
async fn disabling_a_user_ends_sessions_and_revokes_tokens() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let other = new_user("bob@example.com");
        s.create_user(&other).await.unwrap();
        s.create_session(&h("ada-session"), &fx.user.id, NOW, NOW + 600)
            .await
            .unwrap();
        s.create_session(&h("bob-session"), &other.id, NOW, NOW + 600)
            .await
            .unwrap();
        let ada = grant("fam-ada", &fx.client, &fx.user, NOW, "ada");
        let bob = grant("fam-bob", &fx.client, &other, NOW, "bob");
        s.insert_grant(&ada.grant).await.unwrap();
        s.insert_grant(&bob.grant).await.unwrap();

        assert!(
            !s.set_user_disabled("nobody@example.com", true, NOW)
                .await
                .unwrap(),
            "{e}: unknown email"
        );
        assert!(s
            .set_user_disabled("ada@example.com", true, NOW + 1)
            .await
            .unwrap());
        assert!(s.find_user(&fx.user.id).await.unwrap().unwrap().disabled);
        assert!(
            s.find_session(&h("ada-session"), NOW + 2)
                .await
                .unwrap()
                .is_none(),
            "{e}"
        );
        assert!(!access_live(s, &ada.access, NOW + 2).await, "{e}");
        assert_eq!(
            refresh_status(s, &ada.refresh.unwrap()).await,
            refresh::Status::Revoked,
            "{e}"
        );

        // Enabling again does not bring back what disabling ended.
        assert!(s
            .set_user_disabled("ada@example.com", false, NOW + 3)
            .await
            .unwrap());
        assert!(!s.find_user(&fx.user.id).await.unwrap().unwrap().disabled);
        assert!(
            s.find_session(&h("ada-session"), NOW + 4)
                .await
                .unwrap()
                .is_none(),
            "{e}: the session must be deleted, not hidden"
        );
        assert!(!access_live(s, &ada.access, NOW + 4).await, "{e}");
        let rotated = grant("fam-ada", &fx.client, &fx.user, NOW + 4, "ada2");
        assert_eq!(
            s.rotate_refresh_token(&ada.refresh.unwrap(), &rotated.grant, NOW + 4, 10)
                .await
                .unwrap(),
            Rotation::Refused,
            "{e}: a revoked refresh token does not rotate"
        );

        // The other customer is untouched.
        assert!(
            s.find_session(&h("bob-session"), NOW + 4)
                .await
                .unwrap()
                .is_some(),
            "{e}"
        );
        assert!(access_live(s, &bob.access, NOW + 4).await, "{e}");
        assert_eq!(
            refresh_status(s, &bob.refresh.unwrap()).await,
            refresh::Status::Active,
            "{e}"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Clients

#[tokio::test]
async fn clients_are_created_once_found_and_listed() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let mut second = new_client("Second", NOW + 10);
        second.policy.kind = ClientKind::Public;
        second.policy.features.insert(Feature::Implicit);
        second.policy.features.insert(Feature::Device);
        second.policy.redirect_uris =
            vec!["https://a.example/cb".into(), "https://b.example/cb".into()];
        second.secret_hash = None;
        second.app_scopes = vec!["alexa::skill_messaging".into(), "reports:write".into()];
        assert_eq!(s.create_client(&second).await.unwrap(), Created::Created);

        let mut dup = new_client("Duplicate", NOW);
        dup.policy.client_id = fx.client.policy.client_id.clone();
        assert_eq!(
            s.create_client(&dup).await.unwrap(),
            Created::AlreadyExists,
            "{e}"
        );
        assert_eq!(
            s.find_client(&fx.client.policy.client_id)
                .await
                .unwrap()
                .as_ref(),
            Some(&fx.client),
            "{e}: the original is kept and every field round-trips"
        );
        assert_eq!(
            s.find_client(&second.policy.client_id).await.unwrap(),
            Some(second.clone()),
            "{e}"
        );
        assert_eq!(s.find_client("lk1.nothing").await.unwrap(), None);
        assert_eq!(
            s.list_clients().await.unwrap(),
            vec![fx.client.clone(), second.clone()],
            "{e}"
        );

        // An edit (the developer console's) neither drops the app scopes the operator allowed nor adds any.
        let mut edited = second.clone();
        edited.name = "Second, renamed".into();
        edited.app_scopes = Vec::new();
        assert!(s.update_client(&edited).await.unwrap(), "{e}");
        let mut claimed = fx.client.clone();
        claimed.app_scopes = vec!["alexa::skill_messaging".into()];
        assert!(s.update_client(&claimed).await.unwrap(), "{e}");
        let found = s.find_client(&second.policy.client_id).await.unwrap();
        assert_eq!(
            found.as_ref().map(|c| c.name.as_str()),
            Some("Second, renamed")
        );
        assert_eq!(found.map(|c| c.app_scopes), Some(second.app_scopes), "{e}");
        let found = s.find_client(&fx.client.policy.client_id).await.unwrap();
        assert_eq!(found.map(|c| c.app_scopes), Some(Vec::new()), "{e}");
    }
}

#[tokio::test]
async fn a_new_client_secret_can_keep_the_previous_one_for_a_while() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let id = &fx.client.policy.client_id;
        let original = fx.client.secret_hash.unwrap();
        assert!(!s
            .set_client_secret("lk1.nothing", &h("x"), None)
            .await
            .unwrap());

        assert!(s
            .set_client_secret(id, &h("second"), Some(NOW + 600))
            .await
            .unwrap());
        let c = s.find_client(id).await.unwrap().unwrap();
        assert_eq!(c.secret_hash, Some(h("second")), "{e}");
        assert_eq!(c.prev_secret_hash, Some(original), "{e}");
        assert_eq!(c.prev_secret_expires_at, Some(NOW + 600), "{e}");

        assert!(s
            .set_client_secret(id, &h("third"), Some(NOW + 900))
            .await
            .unwrap());
        let c = s.find_client(id).await.unwrap().unwrap();
        assert_eq!(c.secret_hash, Some(h("third")), "{e}");
        assert_eq!(c.prev_secret_hash, Some(h("second")), "{e}");
        assert_eq!(c.prev_secret_expires_at, Some(NOW + 900), "{e}");

        // Without a grace period the previous secret is gone at once.
        assert!(s.set_client_secret(id, &h("fourth"), None).await.unwrap());
        let c = s.find_client(id).await.unwrap().unwrap();
        assert_eq!(c.secret_hash, Some(h("fourth")), "{e}");
        assert_eq!(c.prev_secret_hash, None, "{e}");
        assert_eq!(c.prev_secret_expires_at, None, "{e}");
        // Nothing else about the app changed.
        assert_eq!(c.name, fx.client.name);
        assert_eq!(c.policy, fx.client.policy);
    }
}

#[tokio::test]
async fn deleting_a_client_removes_consents_and_revokes_tokens_and_codes() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let other = new_client("Other", NOW);
        s.create_client(&other).await.unwrap();
        let id = &fx.client.policy.client_id;
        s.save_consent(&fx.user.id, id, "profile", NOW)
            .await
            .unwrap();
        s.save_consent(&fx.user.id, &other.policy.client_id, "profile", NOW)
            .await
            .unwrap();
        let doomed = grant("fam-doomed", &fx.client, &fx.user, NOW, "doomed");
        let kept = grant("fam-kept", &other, &fx.user, NOW, "kept");
        s.insert_grant(&doomed.grant).await.unwrap();
        s.insert_grant(&kept.grant).await.unwrap();
        let cc = NewAccessToken {
            token_hash: h("cc"),
            user_id: None,
            subject: None,
            ..doomed.grant.access.clone()
        };
        s.insert_access_token(&cc).await.unwrap();
        s.insert_auth_code(&code_for("doomed-code", &fx.client, &fx.user, NOW))
            .await
            .unwrap();

        assert!(!s.delete_client("lk1.nothing", NOW).await.unwrap(), "{e}");
        assert!(s.delete_client(id, NOW + 1).await.unwrap(), "{e}");
        assert!(!s.delete_client(id, NOW + 2).await.unwrap(), "{e}: twice");
        assert_eq!(s.find_client(id).await.unwrap(), None, "{e}");
        assert_eq!(s.find_consent(&fx.user.id, id).await.unwrap(), None, "{e}");
        let left: Vec<String> = s
            .list_consents(&fx.user.id)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.client_id)
            .collect();
        assert_eq!(left, vec![other.policy.client_id.clone()], "{e}");
        assert!(!access_live(s, &doomed.access, NOW + 2).await, "{e}");
        assert!(
            !access_live(s, &h("cc"), NOW + 2).await,
            "{e}: client credentials token"
        );
        assert_eq!(
            refresh_status(s, &doomed.refresh.unwrap()).await,
            refresh::Status::Revoked,
            "{e}"
        );
        assert!(
            s.find_auth_code(&h("doomed-code"))
                .await
                .unwrap()
                .unwrap()
                .used,
            "{e}: an outstanding code can no longer be redeemed"
        );
        let late = grant("fam-late", &fx.client, &fx.user, NOW + 2, "late");
        assert_eq!(
            s.redeem_auth_code(&h("doomed-code"), &late.grant, NOW + 2)
                .await
                .unwrap(),
            Redeemed::AlreadyUsed,
            "{e}"
        );
        assert!(!access_live(s, &late.access, NOW + 2).await, "{e}");
        // The other app keeps its tokens.
        assert!(access_live(s, &kept.access, NOW + 2).await, "{e}");
        assert_eq!(
            refresh_status(s, &kept.refresh.unwrap()).await,
            refresh::Status::Active,
            "{e}"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Sessions

#[tokio::test]
async fn sessions_live_until_they_expire_or_are_deleted() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        s.create_session(&h("s1"), &fx.user.id, NOW, NOW + 600)
            .await
            .unwrap();
        s.create_session(&h("s2"), &fx.user.id, NOW, NOW + 600)
            .await
            .unwrap();
        let found = s.find_session(&h("s1"), NOW + 599).await.unwrap();
        assert_eq!(
            found,
            Some(Session {
                user: fx.user.clone(),
                auth_time: NOW,
                expires_at: NOW + 600,
            }),
            "{e}"
        );
        assert_eq!(
            s.find_session(&h("s1"), NOW + 600).await.unwrap(),
            None,
            "{e}: expired at expires_at"
        );
        assert_eq!(s.find_session(&h("unknown"), NOW).await.unwrap(), None);
        s.delete_session(&h("s1")).await.unwrap();
        assert_eq!(s.find_session(&h("s1"), NOW).await.unwrap(), None, "{e}");
        assert!(
            s.find_session(&h("s2"), NOW).await.unwrap().is_some(),
            "{e}: deleting one session leaves the others"
        );
        // A disabled account has no live session, even before purging.
        let bob = new_user("bob@example.com");
        s.create_user(&bob).await.unwrap();
        s.create_session(&h("bob"), &bob.id, NOW, NOW + 600)
            .await
            .unwrap();
        let mut disabled = new_user("carol@example.com");
        disabled.disabled = true;
        s.create_user(&disabled).await.unwrap();
        s.create_session(&h("carol"), &disabled.id, NOW, NOW + 600)
            .await
            .unwrap();
        assert!(s.find_session(&h("bob"), NOW).await.unwrap().is_some());
        assert_eq!(s.find_session(&h("carol"), NOW).await.unwrap(), None, "{e}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Consents

#[tokio::test]
async fn consents_are_saved_updated_listed_and_revoked_with_their_tokens() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let id = &fx.client.policy.client_id;
        let other = new_client("Other", NOW);
        s.create_client(&other).await.unwrap();
        let bob = new_user("bob@example.com");
        s.create_user(&bob).await.unwrap();

        assert_eq!(s.find_consent(&fx.user.id, id).await.unwrap(), None);
        s.save_consent(&fx.user.id, id, "profile", NOW)
            .await
            .unwrap();
        s.save_consent(&fx.user.id, id, "postal_code profile", NOW + 50)
            .await
            .unwrap();
        assert_eq!(
            s.find_consent(&fx.user.id, id).await.unwrap(),
            Some(Consent {
                client_id: id.clone(),
                scopes: "postal_code profile".into(),
                created_at: NOW,
                updated_at: NOW + 50,
            }),
            "{e}: saving again updates scopes and updated_at, keeps created_at"
        );
        s.save_consent(&fx.user.id, &other.policy.client_id, "profile", NOW + 10)
            .await
            .unwrap();
        s.save_consent(&bob.id, id, "profile", NOW).await.unwrap();
        let mine: Vec<(String, String)> = s
            .list_consents(&fx.user.id)
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.client_id, c.scopes))
            .collect();
        assert_eq!(
            mine,
            vec![
                (id.clone(), "postal_code profile".into()),
                (other.policy.client_id.clone(), "profile".into()),
            ],
            "{e}: only this customer's consents, oldest first"
        );

        let revoked = grant("fam-1", &fx.client, &fx.user, NOW, "ada-shop");
        let rotated = grant("fam-1", &fx.client, &fx.user, NOW + 1, "ada-shop-2");
        let other_app = grant("fam-2", &other, &fx.user, NOW, "ada-other");
        let other_user = grant("fam-3", &fx.client, &bob, NOW, "bob-shop");
        for g in [&revoked, &other_app, &other_user] {
            s.insert_grant(&g.grant).await.unwrap();
        }
        assert_eq!(
            s.rotate_refresh_token(&revoked.refresh.unwrap(), &rotated.grant, NOW + 1, 10)
                .await
                .unwrap(),
            Rotation::Rotated
        );

        s.revoke_consent(&fx.user.id, id, NOW + 2).await.unwrap();
        assert_eq!(s.find_consent(&fx.user.id, id).await.unwrap(), None, "{e}");
        for gone in [&revoked, &rotated] {
            assert!(!access_live(s, &gone.access, NOW + 3).await, "{e}");
        }
        assert_eq!(
            refresh_status(s, &rotated.refresh.unwrap()).await,
            refresh::Status::Revoked,
            "{e}: the current refresh token of the family"
        );
        for kept in [&other_app, &other_user] {
            assert!(access_live(s, &kept.access, NOW + 3).await, "{e}");
            assert_eq!(
                refresh_status(s, &kept.refresh.unwrap()).await,
                refresh::Status::Active,
                "{e}"
            );
        }
        assert!(s
            .find_consent(&fx.user.id, &other.policy.client_id)
            .await
            .unwrap()
            .is_some());
        assert!(s.find_consent(&bob.id, id).await.unwrap().is_some());
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Authorization codes

#[tokio::test]
async fn an_auth_code_round_trips_and_redeems_once() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let code = code_for("code-1", &fx.client, &fx.user, NOW);
        s.insert_auth_code(&code).await.unwrap();
        let mut plain = code_for("code-plain", &fx.client, &fx.user, NOW);
        plain.challenge = None;
        plain.nonce = None;
        plain.redirect_uri_sent = false;
        s.insert_auth_code(&plain).await.unwrap();

        assert_eq!(
            s.find_auth_code(&h("code-1")).await.unwrap(),
            Some(StoredCode {
                issued: latchkey_core::code::IssuedCode {
                    client_id: code.client_id.clone(),
                    redirect_uri: code.redirect_uri.clone(),
                    redirect_uri_sent: true,
                    challenge: code.challenge.clone(),
                    expires_at: NOW + 300,
                },
                user_id: fx.user.id.clone(),
                subject: code.subject.clone(),
                scopes: code.scopes.clone(),
                nonce: code.nonce.clone(),
                auth_time: NOW - 30,
                used: false,
            }),
            "{e}"
        );
        let p = s.find_auth_code(&h("code-plain")).await.unwrap().unwrap();
        assert_eq!(
            (p.issued.challenge, p.nonce, p.issued.redirect_uri_sent),
            (None, None, false),
            "{e}"
        );
        assert_eq!(s.find_auth_code(&h("nope")).await.unwrap(), None);

        let first = grant("fam-code", &fx.client, &fx.user, NOW + 1, "first");
        assert_eq!(
            s.redeem_auth_code(&h("code-1"), &first.grant, NOW + 1)
                .await
                .unwrap(),
            Redeemed::Issued,
            "{e}"
        );
        assert!(s.find_auth_code(&h("code-1")).await.unwrap().unwrap().used);
        assert!(access_live(s, &first.access, NOW + 2).await, "{e}");
        let stored = s
            .find_refresh_token(&first.refresh.unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            stored,
            StoredRefresh {
                family_id: "fam-code".into(),
                client_id: fx.client.policy.client_id.clone(),
                user_id: fx.user.id.clone(),
                subject: first.grant.access.subject.clone().unwrap(),
                scopes: "postal_code profile".into(),
                auth_time: NOW - 4,
                status: refresh::Status::Active,
            },
            "{e}: the refresh token keeps the whole grant's scopes"
        );

        // The same code again: refused, and everything the first redemption issued is revoked.
        let second = grant("fam-code-2", &fx.client, &fx.user, NOW + 3, "second");
        assert_eq!(
            s.redeem_auth_code(&h("code-1"), &second.grant, NOW + 3)
                .await
                .unwrap(),
            Redeemed::AlreadyUsed,
            "{e}"
        );
        assert!(!access_live(s, &first.access, NOW + 4).await, "{e}");
        assert!(
            !access_live(s, &second.access, NOW + 4).await,
            "{e}: nothing new stored"
        );
        assert_eq!(
            s.find_refresh_token(&second.refresh.unwrap())
                .await
                .unwrap(),
            None,
            "{e}"
        );
        assert_eq!(
            refresh_status(s, &first.refresh.unwrap()).await,
            refresh::Status::Revoked,
            "{e}"
        );
        // The other code is untouched by all this.
        assert!(
            !s.find_auth_code(&h("code-plain"))
                .await
                .unwrap()
                .unwrap()
                .used
        );
    }
}

#[tokio::test]
async fn revoke_code_grant_revokes_only_what_that_code_issued() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        for label in ["c1", "c2"] {
            s.insert_auth_code(&code_for(label, &fx.client, &fx.user, NOW))
                .await
                .unwrap();
        }
        let g1 = grant("fam-c1", &fx.client, &fx.user, NOW, "g1");
        let g1b = grant("fam-c1", &fx.client, &fx.user, NOW + 1, "g1b");
        let g2 = grant("fam-c2", &fx.client, &fx.user, NOW, "g2");
        assert_eq!(
            s.redeem_auth_code(&h("c1"), &g1.grant, NOW).await.unwrap(),
            Redeemed::Issued
        );
        assert_eq!(
            s.redeem_auth_code(&h("c2"), &g2.grant, NOW).await.unwrap(),
            Redeemed::Issued
        );
        // Rotated tokens belong to the code's family too.
        assert_eq!(
            s.rotate_refresh_token(&g1.refresh.unwrap(), &g1b.grant, NOW + 1, 10)
                .await
                .unwrap(),
            Rotation::Rotated
        );
        s.revoke_code_grant(&h("c1"), NOW + 2).await.unwrap();
        assert!(!access_live(s, &g1.access, NOW + 2).await, "{e}");
        assert!(!access_live(s, &g1b.access, NOW + 2).await, "{e}");
        assert_eq!(
            refresh_status(s, &g1b.refresh.unwrap()).await,
            refresh::Status::Revoked,
            "{e}"
        );
        assert!(access_live(s, &g2.access, NOW + 2).await, "{e}");
        assert_eq!(
            refresh_status(s, &g2.refresh.unwrap()).await,
            refresh::Status::Active,
            "{e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_redemptions_of_one_code_issue_exactly_once() {
    const N: usize = 8;
    for fx in fixtures().await {
        let e = fx.engine;
        fx.store
            .insert_auth_code(&code_for("raced", &fx.client, &fx.user, NOW))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..N {
            let s = fx.store.clone();
            let g = grant(
                &format!("fam-{i}"),
                &fx.client,
                &fx.user,
                NOW,
                &format!("t{i}"),
            );
            tasks.push(tokio::spawn(async move {
                let outcome = s.redeem_auth_code(&h("raced"), &g.grant, NOW).await;
                (outcome.unwrap(), g.access)
            }));
        }
        let mut issued = Vec::new();
        for t in tasks {
            let (outcome, access) = t.await.unwrap();
            if outcome == Redeemed::Issued {
                issued.push(access);
            }
        }
        assert_eq!(issued.len(), 1, "{e}: exactly one redemption issues tokens");
        // The others were replays: they revoked what the winner got.
        assert!(!access_live(&fx.store, &issued[0], NOW + 1).await, "{e}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Refresh tokens

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    const GRACE: i64 = 10;
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let g0 = grant("fam", &fx.client, &fx.user, NOW, "g0");
        s.insert_grant(&g0.grant).await.unwrap();
        let unrelated = grant("fam-x", &fx.client, &fx.user, NOW, "x");
        s.insert_grant(&unrelated.grant).await.unwrap();

        let g1 = grant("fam", &fx.client, &fx.user, NOW + 100, "g1");
        assert_eq!(
            s.rotate_refresh_token(&g0.refresh.unwrap(), &g1.grant, NOW + 100, GRACE)
                .await
                .unwrap(),
            Rotation::Rotated,
            "{e}"
        );
        assert_eq!(
            refresh_status(s, &g0.refresh.unwrap()).await,
            refresh::Status::Rotated { at: NOW + 100 },
            "{e}"
        );
        assert_eq!(
            refresh_status(s, &g1.refresh.unwrap()).await,
            refresh::Status::Active,
            "{e}"
        );
        assert!(access_live(s, &g1.access, NOW + 101).await, "{e}");
        assert!(
            access_live(s, &g0.access, NOW + 101).await,
            "{e}: rotation does not revoke the previous access token"
        );

        // Presented again within the grace window: refused, nothing revoked, nothing stored.
        let within = grant("fam", &fx.client, &fx.user, NOW + 100 + GRACE, "within");
        assert_eq!(
            s.rotate_refresh_token(
                &g0.refresh.unwrap(),
                &within.grant,
                NOW + 100 + GRACE,
                GRACE
            )
            .await
            .unwrap(),
            Rotation::Refused,
            "{e}"
        );
        assert!(!access_live(s, &within.access, NOW + 111).await, "{e}");
        assert!(access_live(s, &g1.access, NOW + 111).await, "{e}");
        assert_eq!(
            refresh_status(s, &g1.refresh.unwrap()).await,
            refresh::Status::Active,
            "{e}"
        );

        // Unknown tokens are refused.
        assert_eq!(
            s.rotate_refresh_token(&h("unknown"), &within.grant, NOW + 111, GRACE)
                .await
                .unwrap(),
            Rotation::Refused,
            "{e}"
        );

        // After the grace window: reuse detected, the whole family revoked.
        let late = grant("fam", &fx.client, &fx.user, NOW + 101 + GRACE, "late");
        assert_eq!(
            s.rotate_refresh_token(&g0.refresh.unwrap(), &late.grant, NOW + 101 + GRACE, GRACE)
                .await
                .unwrap(),
            Rotation::ReuseDetected,
            "{e}"
        );
        assert!(!access_live(s, &late.access, NOW + 112).await, "{e}");
        assert!(!access_live(s, &g1.access, NOW + 112).await, "{e}");
        assert!(!access_live(s, &g0.access, NOW + 112).await, "{e}");
        assert_eq!(
            refresh_status(s, &g1.refresh.unwrap()).await,
            refresh::Status::Revoked,
            "{e}"
        );
        let g2 = grant("fam", &fx.client, &fx.user, NOW + 113, "g2");
        assert_eq!(
            s.rotate_refresh_token(&g1.refresh.unwrap(), &g2.grant, NOW + 113, GRACE)
                .await
                .unwrap(),
            Rotation::Refused,
            "{e}: the newest token of a revoked family no longer rotates"
        );
        // Another family is untouched.
        assert!(access_live(s, &unrelated.access, NOW + 113).await, "{e}");
        assert_eq!(
            refresh_status(s, &unrelated.refresh.unwrap()).await,
            refresh::Status::Active,
            "{e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_rotations_of_one_refresh_token_rotate_exactly_once() {
    const N: usize = 8;
    for fx in fixtures().await {
        let e = fx.engine;
        let g0 = grant("fam", &fx.client, &fx.user, NOW, "g0");
        fx.store.insert_grant(&g0.grant).await.unwrap();
        let old = g0.refresh.unwrap();
        let mut tasks = Vec::new();
        for i in 0..N {
            let s = fx.store.clone();
            let g = grant("fam", &fx.client, &fx.user, NOW + 1, &format!("r{i}"));
            tasks.push(tokio::spawn(async move {
                let outcome = s.rotate_refresh_token(&old, &g.grant, NOW + 1, 10).await;
                (outcome.unwrap(), g)
            }));
        }
        let mut rotated = Vec::new();
        for t in tasks {
            let (outcome, g) = t.await.unwrap();
            match outcome {
                Rotation::Rotated => rotated.push(g),
                Rotation::Refused => {
                    assert!(!access_live(&fx.store, &g.access, NOW + 2).await, "{e}");
                }
                Rotation::ReuseDetected => panic!("{e}: a parallel rotation is not a reuse"),
            }
        }
        assert_eq!(rotated.len(), 1, "{e}: exactly one rotation wins");
        let winner = &rotated[0];
        assert!(access_live(&fx.store, &winner.access, NOW + 2).await, "{e}");
        assert_eq!(
            refresh_status(&fx.store, &winner.refresh.unwrap()).await,
            refresh::Status::Active,
            "{e}: losing a race does not revoke the family"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Access tokens

#[tokio::test]
async fn access_tokens_are_found_only_while_live() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let g = grant("fam", &fx.client, &fx.user, NOW, "at");
        s.insert_grant(&g.grant).await.unwrap();
        let expected = AccessToken {
            client_id: fx.client.policy.client_id.clone(),
            app_id: fx.client.app_id.clone(),
            user_id: Some(fx.user.id.clone()),
            subject: g.grant.access.subject.clone(),
            scopes: "profile".into(),
            issued_at: NOW,
            expires_at: NOW + TTL,
        };
        assert_eq!(
            s.find_access_token(&g.access, NOW + TTL - 1).await.unwrap(),
            Some(expected.clone()),
            "{e}"
        );
        assert_eq!(
            s.find_access_token(&g.access, NOW + TTL).await.unwrap(),
            None,
            "{e}: expired at expires_at"
        );
        assert_eq!(s.find_access_token(&h("nope"), NOW).await.unwrap(), None);

        assert_eq!(
            s.find_token_profile(&g.access, NOW).await.unwrap(),
            Some(TokenProfile {
                token: expected,
                name: fx.user.name.clone(),
                email: Some(fx.user.email.clone()),
                postal_code: fx.user.postal_code.clone(),
            }),
            "{e}"
        );
        assert_eq!(
            s.find_token_profile(&g.access, NOW + TTL).await.unwrap(),
            None,
            "{e}"
        );

        // A client-credentials token has no customer, hence no profile.
        let cc = NewAccessToken {
            token_hash: h("cc"),
            user_id: None,
            subject: None,
            scopes: "".into(),
            ..g.grant.access.clone()
        };
        s.insert_access_token(&cc).await.unwrap();
        let found = s.find_access_token(&h("cc"), NOW).await.unwrap().unwrap();
        assert_eq!((found.user_id, found.subject), (None, None), "{e}");
        assert_eq!(
            s.find_token_profile(&h("cc"), NOW).await.unwrap(),
            None,
            "{e}"
        );

        // Revoked tokens are not returned, even before they expire.
        s.revoke_consent(&fx.user.id, &fx.client.policy.client_id, NOW + 1)
            .await
            .unwrap();
        assert_eq!(
            s.find_access_token(&g.access, NOW + 2).await.unwrap(),
            None,
            "{e}"
        );
        assert_eq!(
            s.find_token_profile(&g.access, NOW + 2).await.unwrap(),
            None,
            "{e}"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Rate limits

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limits_count_hits_per_fixed_window() {
    for (engine, db) in each_db().await {
        let s = open(&db).await;
        let e = engine;
        assert_eq!(s.hit_rate_limit("a", 60, NOW).await.unwrap(), 1, "{e}");
        assert_eq!(s.hit_rate_limit("a", 60, NOW + 10).await.unwrap(), 2, "{e}");
        assert_eq!(
            s.hit_rate_limit("b", 60, NOW + 10).await.unwrap(),
            1,
            "{e}: buckets are separate"
        );
        assert_eq!(s.hit_rate_limit("a", 60, NOW + 59).await.unwrap(), 3, "{e}");
        // The window that started at NOW ends at NOW + 60.
        assert_eq!(s.hit_rate_limit("a", 60, NOW + 60).await.unwrap(), 1, "{e}");
        assert_eq!(
            s.hit_rate_limit("a", 60, NOW + 119).await.unwrap(),
            2,
            "{e}"
        );
        assert_eq!(s.hit_rate_limit("b", 60, NOW + 20).await.unwrap(), 2, "{e}");

        // Parallel hits are all counted.
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                s.hit_rate_limit("c", 300, NOW).await.unwrap()
            }));
        }
        let mut counts = Vec::new();
        for t in tasks {
            counts.push(t.await.unwrap());
        }
        counts.sort_unstable();
        assert_eq!(counts, (1..=10).collect::<Vec<i64>>(), "{e}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Purging

#[tokio::test]
async fn purge_deletes_only_expired_things() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let later = NOW + 2 * 86_400;
        // Dead by `later`.
        s.create_session(&h("old-session"), &fx.user.id, NOW, NOW + 600)
            .await
            .unwrap();
        s.insert_auth_code(&code_for("old-code", &fx.client, &fx.user, NOW))
            .await
            .unwrap();
        let old = grant("fam-old", &fx.client, &fx.user, NOW, "old");
        s.insert_grant(&old.grant).await.unwrap();
        s.hit_rate_limit("old-bucket", 60, NOW).await.unwrap();
        let other = new_client("Other", NOW);
        s.create_client(&other).await.unwrap();
        let revoked_long_ago = grant("fam-revoked", &other, &fx.user, NOW, "revoked");
        s.insert_grant(&revoked_long_ago.grant).await.unwrap();
        s.revoke_consent(&fx.user.id, &other.policy.client_id, NOW + 1)
            .await
            .unwrap();
        let mut implicit = grant("fam-implicit", &fx.client, &fx.user, NOW, "implicit");
        implicit.grant.refresh = None;
        s.insert_grant(&implicit.grant).await.unwrap();
        // Live at `later`.
        s.create_session(&h("live-session"), &fx.user.id, NOW, later + 600)
            .await
            .unwrap();
        let mut live_code = code_for("live-code", &fx.client, &fx.user, later - 10);
        live_code.expires_at = later + 290;
        s.insert_auth_code(&live_code).await.unwrap();
        let live = grant("fam-live", &fx.client, &fx.user, later - 10, "live");
        s.insert_grant(&live.grant).await.unwrap();
        let third = new_client("Third", NOW);
        s.create_client(&third).await.unwrap();
        let revoked_lately = grant("fam-lately", &third, &fx.user, later - 10, "lately");
        s.insert_grant(&revoked_lately.grant).await.unwrap();
        s.revoke_consent(&fx.user.id, &third.policy.client_id, later - 5)
            .await
            .unwrap();
        s.hit_rate_limit("live-bucket", 300, later - 10)
            .await
            .unwrap();
        s.hit_rate_limit("live-bucket", 300, later - 5)
            .await
            .unwrap();

        let purged = s.purge_expired(later).await.unwrap();
        assert_eq!(
            purged,
            9,
            "{e}: the old session, code, rate-limit window and three access tokens; the family revoked a day \
             ago with its refresh token; the family left without tokens"
        );
        assert_eq!(
            s.find_refresh_token(&revoked_long_ago.refresh.unwrap())
                .await
                .unwrap(),
            None,
            "{e}: a family revoked long ago is deleted"
        );
        assert_eq!(
            refresh_status(s, &revoked_lately.refresh.unwrap()).await,
            refresh::Status::Revoked,
            "{e}: a family revoked lately is kept"
        );

        assert!(
            s.find_session(&h("live-session"), later)
                .await
                .unwrap()
                .is_some(),
            "{e}"
        );
        assert!(
            s.find_auth_code(&h("live-code")).await.unwrap().is_some(),
            "{e}"
        );
        assert!(access_live(s, &live.access, later).await, "{e}");
        assert_eq!(
            s.hit_rate_limit("live-bucket", 300, later).await.unwrap(),
            3,
            "{e}: a live window keeps counting"
        );
        assert_eq!(s.find_auth_code(&h("old-code")).await.unwrap(), None, "{e}");
        assert_eq!(
            s.hit_rate_limit("old-bucket", 60, later).await.unwrap(),
            1,
            "{e}"
        );
        // The expired access token's grant still refreshes: refresh tokens outlive access tokens.
        let next = grant("fam-old", &fx.client, &fx.user, later, "old-next");
        assert_eq!(
            s.rotate_refresh_token(&old.refresh.unwrap(), &next.grant, later, 10)
                .await
                .unwrap(),
            Rotation::Rotated,
            "{e}"
        );
        let live_next = grant("fam-live", &fx.client, &fx.user, later, "live-next");
        assert_eq!(
            s.rotate_refresh_token(&live.refresh.unwrap(), &live_next.grant, later, 10)
                .await
                .unwrap(),
            Rotation::Rotated,
            "{e}"
        );
        // The customer, app and consent are never purged.
        assert!(s.find_user(&fx.user.id).await.unwrap().is_some());
        assert!(s
            .find_client(&fx.client.policy.client_id)
            .await
            .unwrap()
            .is_some());
        // Purging again finds nothing more to do.
        assert_eq!(s.purge_expired(later).await.unwrap(), 0, "{e}");
    }
}

#[tokio::test]
async fn a_used_code_is_kept_long_enough_for_a_late_replay_to_revoke_its_tokens() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        s.insert_auth_code(&code_for("code", &fx.client, &fx.user, NOW))
            .await
            .unwrap();
        let g = grant("fam", &fx.client, &fx.user, NOW + 1, "g");
        assert_eq!(
            s.redeem_auth_code(&h("code"), &g.grant, NOW + 1)
                .await
                .unwrap(),
            Redeemed::Issued
        );
        // An hour after the code expired, the purge runs, then the code is replayed.
        s.purge_expired(NOW + 3600).await.unwrap();
        assert!(access_live(s, &g.access, NOW + 3600).await, "{e}");
        let replay = grant("fam-2", &fx.client, &fx.user, NOW + 3600, "replay");
        assert_eq!(
            s.redeem_auth_code(&h("code"), &replay.grant, NOW + 3600)
                .await
                .unwrap(),
            Redeemed::AlreadyUsed,
            "{e}"
        );
        assert!(!access_live(s, &g.access, NOW + 3600).await, "{e}");
        assert_eq!(
            refresh_status(s, &g.refresh.unwrap()).await,
            refresh::Status::Revoked,
            "{e}"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Code pairs (code-based linking)

fn pair(label: &str, client: &Client, at: Timestamp) -> NewDeviceCode {
    NewDeviceCode {
        device_hash: h(&format!("{label}/device")),
        user_code_hash: h(&format!("{label}/user")),
        client_id: client.policy.client_id.clone(),
        scopes: "postal_code profile".into(),
        optional_scopes: "postal_code".into(),
        interval: 5,
        created_at: at,
        expires_at: at + 600,
    }
}

fn approval(user: &User) -> DeviceDecision {
    DeviceDecision::Approve {
        user_id: user.id.clone(),
        subject: "lk1.account.SUBJECT".into(),
        scopes: "profile".into(),
        auth_time: NOW - 60,
    }
}

async fn polled(
    s: &SqlStore,
    p: &NewDeviceCode,
    client: Option<&str>,
    at: Timestamp,
) -> DevicePoll {
    match s
        .poll_device_code(&p.device_hash, client, None, at)
        .await
        .unwrap()
    {
        PollOutcome::Polled(polled) => polled,
        other => panic!("expected a recorded poll, got {other:?}"),
    }
}

#[tokio::test]
async fn code_pairs_are_found_by_user_code_and_decided_once() {
    use latchkey_core::device::Status;
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let p = pair("p1", &fx.client, NOW);
        assert_eq!(
            s.insert_device_code(&p).await.unwrap(),
            Created::Created,
            "{e}"
        );
        let mut same_user_code = pair("p2", &fx.client, NOW);
        same_user_code.user_code_hash = p.user_code_hash;
        assert_eq!(
            s.insert_device_code(&same_user_code).await.unwrap(),
            Created::AlreadyExists,
            "{e}: a live user code is never handed out twice"
        );
        let found = s
            .find_device_code(&p.user_code_hash)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            found,
            DeviceRequest {
                client_id: fx.client.policy.client_id.clone(),
                scopes: "postal_code profile".into(),
                optional_scopes: "postal_code".into(),
                status: Status::Pending,
                expires_at: NOW + 600,
            },
            "{e}"
        );
        assert!(
            s.find_device_code(&h("nope")).await.unwrap().is_none(),
            "{e}"
        );

        assert!(
            s.decide_device_code(&p.user_code_hash, &approval(&fx.user), NOW + 10)
                .await
                .unwrap(),
            "{e}"
        );
        assert!(
            !s.decide_device_code(&p.user_code_hash, &DeviceDecision::Deny, NOW + 11)
                .await
                .unwrap(),
            "{e}: a decided pair cannot be decided again"
        );
        let found = s
            .find_device_code(&p.user_code_hash)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.status, Status::Approved, "{e}");

        let late = pair("late", &fx.client, NOW);
        s.insert_device_code(&late).await.unwrap();
        assert!(
            !s.decide_device_code(&late.user_code_hash, &approval(&fx.user), NOW + 600)
                .await
                .unwrap(),
            "{e}: an expired pair cannot be approved"
        );
        let denied = pair("denied", &fx.client, NOW);
        s.insert_device_code(&denied).await.unwrap();
        assert!(s
            .decide_device_code(&denied.user_code_hash, &DeviceDecision::Deny, NOW)
            .await
            .unwrap());
        assert_eq!(
            s.find_device_code(&denied.user_code_hash)
                .await
                .unwrap()
                .unwrap()
                .status,
            Status::Denied,
            "{e}"
        );
    }
}

#[tokio::test]
async fn polls_are_recorded_grow_the_interval_and_respect_the_client_and_user_code() {
    use latchkey_core::device::{Status, MAX_PAIR_FAILURES};
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let own = fx.client.policy.client_id.as_str();
        let p = pair("poll", &fx.client, NOW);
        s.insert_device_code(&p).await.unwrap();

        let first = polled(s, &p, Some(own), NOW).await;
        assert_eq!((first.poll.too_fast, first.interval), (false, 5), "{e}");
        assert_eq!(first.poll.status, Status::Pending, "{e}");
        assert_eq!(first.approval, None, "{e}");
        let second = polled(s, &p, None, NOW + 2).await;
        assert_eq!(
            (second.poll.too_fast, second.interval),
            (true, 10),
            "{e}: too fast grows the interval"
        );
        let third = polled(s, &p, Some(own), NOW + 12).await;
        assert_eq!(
            (third.poll.too_fast, third.interval),
            (false, 10),
            "{e}: a polite poll keeps it"
        );

        // Another client's poll, or an unknown device code, records nothing.
        let other = s
            .poll_device_code(
                &p.device_hash,
                Some("lk1.application-oa2-client.other"),
                None,
                NOW + 13,
            )
            .await
            .unwrap();
        assert_eq!(other, PollOutcome::Unknown, "{e}");
        assert_eq!(
            s.poll_device_code(&h("unknown"), None, None, NOW)
                .await
                .unwrap(),
            PollOutcome::Unknown
        );
        let after = polled(s, &p, Some(own), NOW + 22).await;
        assert!(
            !after.poll.too_fast,
            "{e}: the other client's poll was not counted"
        );

        // A wrong user code is counted; enough of them lock the pair.
        for i in 0..MAX_PAIR_FAILURES {
            let outcome = s
                .poll_device_code(&p.device_hash, None, Some(&h("wrong")), NOW + 40 + i)
                .await
                .unwrap();
            assert_eq!(outcome, PollOutcome::Mismatch, "{e}");
        }
        let locked = s
            .poll_device_code(&p.device_hash, None, Some(&p.user_code_hash), NOW + 100)
            .await
            .unwrap();
        match locked {
            PollOutcome::Polled(d) => assert_eq!(d.poll.status, Status::Locked, "{e}"),
            other => panic!("{e}: {other:?}"),
        }
        assert!(
            !s.decide_device_code(&p.user_code_hash, &approval(&fx.user), NOW + 101)
                .await
                .unwrap(),
            "{e}: a locked pair cannot be approved"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_approved_pair_issues_its_tokens_exactly_once_as_a_secretless_family() {
    const N: usize = 8;
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let p = pair("issue", &fx.client, NOW);
        s.insert_device_code(&p).await.unwrap();
        let early = grant("early", &fx.client, &fx.user, NOW, "early");
        assert!(
            !s.issue_device_grant(&p.device_hash, &early.grant, NOW)
                .await
                .unwrap(),
            "{e}: a pending pair issues nothing"
        );
        assert!(!access_live(s, &early.access, NOW + 1).await, "{e}");
        s.decide_device_code(&p.user_code_hash, &approval(&fx.user), NOW + 5)
            .await
            .unwrap();
        let seen = polled(s, &p, None, NOW + 6).await;
        assert_eq!(seen.approval, Some(approval(&fx.user)), "{e}");

        let mut tasks = Vec::new();
        for i in 0..N {
            let s = fx.store.clone();
            let g = grant(
                &format!("dev{i}"),
                &fx.client,
                &fx.user,
                NOW + 7,
                &format!("dev{i}"),
            );
            let device = p.device_hash;
            tasks.push(tokio::spawn(async move {
                (
                    s.issue_device_grant(&device, &g.grant, NOW + 7)
                        .await
                        .unwrap(),
                    g,
                )
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            let (issued, g) = t.await.unwrap();
            if issued {
                winners.push(g);
            } else {
                assert!(
                    !access_live(s, &g.access, NOW + 8).await,
                    "{e}: a loser stores nothing"
                );
            }
        }
        assert_eq!(winners.len(), 1, "{e}: exactly one issuance");
        let w = &winners[0];
        assert!(access_live(s, &w.access, NOW + 8).await, "{e}");
        assert!(
            s.secretless_refresh(&w.grant.family_id).await.unwrap(),
            "{e}"
        );
        let web = grant("web", &fx.client, &fx.user, NOW, "web");
        s.insert_grant(&web.grant).await.unwrap();
        assert!(
            !s.secretless_refresh("web").await.unwrap(),
            "{e}: other families need the secret"
        );
        assert_eq!(
            polled(s, &p, None, NOW + 20).await.poll.status,
            latchkey_core::device::Status::Issued,
            "{e}"
        );

        // Expired pairs are purged an hour after expiry, not before.
        s.purge_expired(NOW + 600 + 3_599).await.unwrap();
        assert!(
            s.find_device_code(&p.user_code_hash)
                .await
                .unwrap()
                .is_some(),
            "{e}"
        );
        s.purge_expired(NOW + 600 + 3_601).await.unwrap();
        assert!(
            s.find_device_code(&p.user_code_hash)
                .await
                .unwrap()
                .is_none(),
            "{e}"
        );
    }
}

#[tokio::test]
async fn peeking_a_rate_limit_counts_nothing() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        assert_eq!(s.peek_rate_limit("b", 60, NOW).await.unwrap(), 0, "{e}");
        s.hit_rate_limit("b", 60, NOW).await.unwrap();
        s.hit_rate_limit("b", 60, NOW + 1).await.unwrap();
        assert_eq!(s.peek_rate_limit("b", 60, NOW + 2).await.unwrap(), 2, "{e}");
        assert_eq!(
            s.peek_rate_limit("b", 60, NOW + 2).await.unwrap(),
            2,
            "{e}: peeking twice"
        );
        assert_eq!(
            s.peek_rate_limit("b", 60, NOW + 61).await.unwrap(),
            0,
            "{e}: the window passed"
        );
    }
}

#[tokio::test]
async fn revoking_an_access_token_revokes_only_it_and_only_for_its_client() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let other = new_client("Other", NOW);
        s.create_client(&other).await.unwrap();
        let own = fx.client.policy.client_id.as_str();
        let g0 = grant("fam", &fx.client, &fx.user, NOW, "g0");
        s.insert_grant(&g0.grant).await.unwrap();
        let g1 = grant("fam", &fx.client, &fx.user, NOW + 10, "g1");
        assert_eq!(
            s.rotate_refresh_token(&g0.refresh.unwrap(), &g1.grant, NOW + 10, 10)
                .await
                .unwrap(),
            Rotation::Rotated,
            "{e}"
        );

        assert!(
            !s.revoke_access_token(&g1.access, &other.policy.client_id, NOW + 20)
                .await
                .unwrap(),
            "{e}: another client's token"
        );
        assert!(access_live(s, &g1.access, NOW + 21).await, "{e}");

        assert!(
            s.revoke_access_token(&g1.access, own, NOW + 20)
                .await
                .unwrap(),
            "{e}"
        );
        assert!(!access_live(s, &g1.access, NOW + 21).await, "{e}");
        assert!(
            access_live(s, &g0.access, NOW + 21).await,
            "{e}: the family's other access token lives on"
        );
        assert_eq!(
            refresh_status(s, &g1.refresh.unwrap()).await,
            refresh::Status::Active,
            "{e}: the refresh token lives on"
        );
        assert!(
            !s.revoke_access_token(&g1.access, own, NOW + 22)
                .await
                .unwrap(),
            "{e}: already revoked"
        );
        assert!(
            !s.revoke_access_token(&h("unknown"), own, NOW + 22)
                .await
                .unwrap(),
            "{e}"
        );
    }
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_whole_family_for_its_client_only() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let other = new_client("Other", NOW);
        s.create_client(&other).await.unwrap();
        let own = fx.client.policy.client_id.as_str();
        let g0 = grant("fam", &fx.client, &fx.user, NOW, "g0");
        s.insert_grant(&g0.grant).await.unwrap();
        let g1 = grant("fam", &fx.client, &fx.user, NOW + 10, "g1");
        s.rotate_refresh_token(&g0.refresh.unwrap(), &g1.grant, NOW + 10, 10)
            .await
            .unwrap();
        let unrelated = grant("fam-x", &fx.client, &fx.user, NOW, "x");
        s.insert_grant(&unrelated.grant).await.unwrap();
        let machine = h("client-credentials");
        s.insert_access_token(&NewAccessToken {
            token_hash: machine,
            client_id: fx.client.policy.client_id.clone(),
            app_id: fx.client.app_id.clone(),
            user_id: None,
            subject: None,
            scopes: String::new(),
            issued_at: NOW,
            expires_at: NOW + TTL,
        })
        .await
        .unwrap();

        assert!(
            !s.revoke_refresh_family(&g1.refresh.unwrap(), &other.policy.client_id, NOW + 20)
                .await
                .unwrap(),
            "{e}: another client's token"
        );
        assert_eq!(
            refresh_status(s, &g1.refresh.unwrap()).await,
            refresh::Status::Active,
            "{e}"
        );
        assert!(access_live(s, &g1.access, NOW + 21).await, "{e}");

        // Even the rotated token of the grant ends it.
        assert!(
            s.revoke_refresh_family(&g0.refresh.unwrap(), own, NOW + 20)
                .await
                .unwrap(),
            "{e}"
        );
        for access in [g0.access, g1.access] {
            assert!(!access_live(s, &access, NOW + 21).await, "{e}");
        }
        for refresh in [g0.refresh.unwrap(), g1.refresh.unwrap()] {
            assert_eq!(
                refresh_status(s, &refresh).await,
                refresh::Status::Revoked,
                "{e}"
            );
        }
        let g2 = grant("fam", &fx.client, &fx.user, NOW + 30, "g2");
        assert_eq!(
            s.rotate_refresh_token(&g1.refresh.unwrap(), &g2.grant, NOW + 30, 10)
                .await
                .unwrap(),
            Rotation::Refused,
            "{e}"
        );
        // Other grants of the same customer and app, and tokens outside any family, are untouched.
        assert!(access_live(s, &unrelated.access, NOW + 31).await, "{e}");
        assert_eq!(
            refresh_status(s, &unrelated.refresh.unwrap()).await,
            refresh::Status::Active,
            "{e}"
        );
        assert!(access_live(s, &machine, NOW + 31).await, "{e}");

        assert!(
            s.revoke_refresh_family(&g1.refresh.unwrap(), own, NOW + 40)
                .await
                .unwrap(),
            "{e}: revoking again still names this client's token"
        );
        assert!(
            !s.revoke_refresh_family(&h("unknown"), own, NOW + 40)
                .await
                .unwrap(),
            "{e}"
        );
    }
}

#[tokio::test]
async fn origins_are_allowed_only_when_some_app_lists_them_exactly() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let mut second = new_client("Second", NOW);
        second.allowed_origins = vec![
            "https://a.example:8443".into(),
            "http://127.0.0.1:3000".into(),
        ];
        s.create_client(&second).await.unwrap();
        for allowed in [
            "https://shop.example",
            "https://a.example:8443",
            "http://127.0.0.1:3000",
        ] {
            assert!(
                s.origin_allowed(allowed, None).await.unwrap(),
                "{e}: {allowed}"
            );
        }
        for refused in [
            "https://shop.example/",
            "http://shop.example",
            "https://shop.exampl",
            "https://shop_example",
            "https://shop%",
            "https://a.example",
            "http://127.0.0.1",
            "null",
            "",
            "\"",
            "%",
        ] {
            assert!(
                !s.origin_allowed(refused, None).await.unwrap(),
                "{e}: {refused:?}"
            );
        }
        // Asked about one app, only that app's origins count.
        let id = second.policy.client_id.clone();
        assert!(s
            .origin_allowed("https://a.example:8443", Some(&id))
            .await
            .unwrap());
        assert!(
            !s.origin_allowed("https://shop.example", Some(&id))
                .await
                .unwrap(),
            "{e}: another app's origin"
        );
        // Editing the list replaces the app's origins.
        second.allowed_origins = vec!["https://b.example".into()];
        assert!(s.update_client(&second).await.unwrap());
        assert!(!s
            .origin_allowed("https://a.example:8443", Some(&id))
            .await
            .unwrap());
        assert!(s.origin_allowed("https://b.example", None).await.unwrap());
        assert!(s.delete_client(&id, NOW).await.unwrap());
        assert!(
            !s.origin_allowed("https://b.example", None).await.unwrap(),
            "{e}: a deleted app's origins"
        );
    }
}
// ---------------------------------------------------------------------------------------------------------------
// The customer's account page (SPEC 2.6)

#[tokio::test]
async fn a_profile_change_is_the_name_and_postal_code_never_the_address() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        assert!(
            s.update_user_profile(&fx.user.id, "Ada King", None)
                .await
                .unwrap(),
            "{e}"
        );
        let ada = s.find_user(&fx.user.id).await.unwrap().unwrap();
        assert_eq!(
            (
                ada.name.as_str(),
                ada.email.as_str(),
                ada.postal_code.as_deref(),
                ada.email_verified
            ),
            ("Ada King", fx.user.email.as_str(), None, true),
            "{e}"
        );
        assert!(
            !s.update_user_profile("nobody", "X", None).await.unwrap(),
            "{e}"
        );
    }
}

#[tokio::test]
async fn a_password_change_keeps_only_the_session_that_made_it() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let bob = new_user("bob@example.com");
        s.create_user(&bob).await.unwrap();
        for (session, user) in [("mine", &fx.user), ("other", &fx.user), ("bob", &bob)] {
            s.create_session(&h(session), &user.id, NOW, NOW + 600)
                .await
                .unwrap();
        }
        let old = fx.user.password_hash.clone();
        assert!(
            !s.change_password(
                &fx.user.id,
                "$argon2id$stale",
                "$argon2id$new",
                Some(&h("mine"))
            )
            .await
            .unwrap(),
            "{e}: a stale old hash changes nothing"
        );
        assert!(s.find_session(&h("other"), NOW).await.unwrap().is_some());
        assert_eq!(
            s.find_user(&fx.user.id)
                .await
                .unwrap()
                .unwrap()
                .password_hash,
            old
        );
        assert!(s
            .change_password(&fx.user.id, &old, "$argon2id$new", Some(&h("mine")))
            .await
            .unwrap());
        assert_eq!(
            s.find_user(&fx.user.id)
                .await
                .unwrap()
                .unwrap()
                .password_hash,
            "$argon2id$new",
            "{e}"
        );
        assert!(
            s.find_session(&h("mine"), NOW).await.unwrap().is_some(),
            "{e}"
        );
        assert!(
            s.find_session(&h("other"), NOW).await.unwrap().is_none(),
            "{e}"
        );
        assert!(
            s.find_session(&h("bob"), NOW).await.unwrap().is_some(),
            "{e}: other customers keep their sessions"
        );
        // Without a session to keep, every one ends.
        assert!(s
            .change_password(&fx.user.id, "$argon2id$new", "$argon2id$newer", None)
            .await
            .unwrap());
        assert!(
            s.find_session(&h("mine"), NOW).await.unwrap().is_none(),
            "{e}"
        );
        assert!(!s
            .change_password("nobody", "$argon2id$new", "$argon2id$x", None)
            .await
            .unwrap());
    }
}

#[tokio::test]
async fn sessions_are_listed_per_customer_and_ended_one_or_all() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let bob = new_user("bob@example.com");
        s.create_user(&bob).await.unwrap();
        s.create_session(&h("old"), &fx.user.id, NOW, NOW + 600)
            .await
            .unwrap();
        s.create_session(&h("new"), &fx.user.id, NOW + 10, NOW + 610)
            .await
            .unwrap();
        s.create_session(&h("expired"), &fx.user.id, NOW - 700, NOW - 100)
            .await
            .unwrap();
        s.create_session(&h("bob"), &bob.id, NOW, NOW + 600)
            .await
            .unwrap();
        let listed = s.list_sessions(&fx.user.id, NOW + 20).await.unwrap();
        assert_eq!(
            listed,
            vec![
                SessionInfo {
                    id_hash: h("new"),
                    created_at: NOW + 10,
                    auth_time: NOW + 10,
                    expires_at: NOW + 610,
                },
                SessionInfo {
                    id_hash: h("old"),
                    created_at: NOW,
                    auth_time: NOW,
                    expires_at: NOW + 600,
                },
            ],
            "{e}: live ones, newest first, only this customer's"
        );
        assert!(
            !s.delete_user_session(&fx.user.id, &h("bob")).await.unwrap(),
            "{e}: someone else's session cannot be ended"
        );
        assert!(s.find_session(&h("bob"), NOW).await.unwrap().is_some());
        assert!(s.delete_user_session(&fx.user.id, &h("old")).await.unwrap());
        assert!(!s.delete_user_session(&fx.user.id, &h("old")).await.unwrap());
        assert_eq!(
            s.list_sessions(&fx.user.id, NOW + 20).await.unwrap().len(),
            1,
            "{e}"
        );
        s.create_session(&h("again"), &fx.user.id, NOW, NOW + 600)
            .await
            .unwrap();
        assert_eq!(
            s.delete_user_sessions(&fx.user.id).await.unwrap(),
            3,
            "{e}: new, again and the expired one"
        );
        assert!(s.list_sessions(&fx.user.id, NOW).await.unwrap().is_empty());
        assert!(
            s.find_session(&h("bob"), NOW).await.unwrap().is_some(),
            "{e}: other customers keep their sessions"
        );
    }
}

#[tokio::test]
async fn revoking_a_consent_uses_up_the_apps_unredeemed_codes_for_that_customer() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let bob = new_user("bob@example.com");
        s.create_user(&bob).await.unwrap();
        let other = new_client("Other", NOW);
        s.create_client(&other).await.unwrap();
        let pending = code_for("ada-shop", &fx.client, &fx.user, NOW);
        let bobs = code_for("bob-shop", &fx.client, &bob, NOW);
        let elsewhere = code_for("ada-other", &other, &fx.user, NOW);
        for c in [&pending, &bobs, &elsewhere] {
            s.insert_auth_code(c).await.unwrap();
        }
        s.revoke_consent(&fx.user.id, &fx.client.policy.client_id, NOW + 1)
            .await
            .unwrap();
        let later = grant("fam-late", &fx.client, &fx.user, NOW + 2, "late");
        assert_eq!(
            s.redeem_auth_code(&pending.code_hash, &later.grant, NOW + 2)
                .await
                .unwrap(),
            Redeemed::AlreadyUsed,
            "{e}"
        );
        assert!(!access_live(s, &later.access, NOW + 3).await, "{e}");
        for kept in [&bobs, &elsewhere] {
            assert!(
                !s.find_auth_code(&kept.code_hash)
                    .await
                    .unwrap()
                    .unwrap()
                    .used,
                "{e}: other customers' and other apps' codes are untouched"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The developer console

#[tokio::test]
async fn developer_access_is_turned_on_once() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        assert_eq!(s.developer_since(&fx.user.id).await.unwrap(), None, "{e}");
        s.enable_developer(&fx.user.id, NOW).await.unwrap();
        s.enable_developer(&fx.user.id, NOW + 60).await.unwrap();
        assert_eq!(
            s.developer_since(&fx.user.id).await.unwrap(),
            Some(NOW),
            "{e}: turning it on again changes nothing"
        );
        assert_eq!(
            s.developer_since("someone-else").await.unwrap(),
            None,
            "{e}"
        );
    }
}

#[tokio::test]
async fn clients_are_listed_by_owner_oldest_first() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let mut mine_late = new_client("Mine, later", NOW + 20);
        mine_late.owner = "dev-a".into();
        let mut mine_early = new_client("Mine, earlier", NOW + 10);
        mine_early.owner = "dev-a".into();
        let mut theirs = new_client("Theirs", NOW + 15);
        theirs.owner = "dev-b".into();
        for c in [&mine_late, &mine_early, &theirs] {
            s.create_client(c).await.unwrap();
        }
        assert_eq!(
            s.list_clients_by_owner("dev-a").await.unwrap(),
            vec![mine_early, mine_late],
            "{e}"
        );
        assert_eq!(
            s.list_clients_by_owner("dev-b").await.unwrap(),
            vec![theirs],
            "{e}"
        );
        assert_eq!(
            s.list_clients_by_owner("nobody").await.unwrap(),
            Vec::<Client>::new(),
            "{e}"
        );
    }
}

#[tokio::test]
async fn an_update_changes_only_what_a_developer_may_edit_and_only_for_the_owner() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let original = fx.client.clone();
        let mut edit = original.clone();
        edit.name = "Renamed".into();
        edit.description = "New words".into();
        edit.privacy_url = "https://shop.example/new-privacy".into();
        edit.policy.redirect_uris = vec![
            "https://shop.example/a".into(),
            "https://shop.example/b".into(),
        ];
        edit.allowed_origins = vec![];
        edit.policy.features.insert(Feature::Implicit);
        edit.policy.features.insert(Feature::PlainPkce);
        edit.policy.features.insert(Feature::Device);
        edit.policy.features.insert(Feature::ClientCredentials);
        edit.policy.features.insert(Feature::Development);
        edit.id_token_alg = latchkey_core::oidc::SigningAlg::Rs256;

        // Another owner cannot change it.
        let mut stranger = edit.clone();
        stranger.owner = "someone-else".into();
        assert!(!s.update_client(&stranger).await.unwrap(), "{e}");
        let mut unknown = edit.clone();
        unknown.policy.client_id = "lk1.nothing".into();
        assert!(!s.update_client(&unknown).await.unwrap(), "{e}");
        assert_eq!(
            s.find_client(&original.policy.client_id).await.unwrap(),
            Some(original.clone()),
            "{e}"
        );

        // What is not editable stays, whatever the record says.
        let mut tampered = edit.clone();
        tampered.app_id = "other-app-id".into();
        tampered.policy.kind = ClientKind::Public;
        tampered.secret_hash = Some(h("other secret"));
        tampered.prev_secret_hash = Some(h("prev"));
        tampered.prev_secret_expires_at = Some(NOW + 5);
        tampered.created_at = NOW + 99;
        assert!(s.update_client(&tampered).await.unwrap(), "{e}");
        assert_eq!(
            s.find_client(&original.policy.client_id).await.unwrap(),
            Some(edit),
            "{e}"
        );
    }
}

/// Each of a policy's flags, one at a time: exactly that one comes back, from `create_client` and from
/// `update_client`, so no two columns' binds can be swapped unnoticed.
#[tokio::test]
async fn each_policy_flag_alone_is_stored_as_itself_by_create_and_update() {
    let one_flag: Vec<(String, ClientKind, Features)> =
        std::iter::once(("public".to_owned(), ClientKind::Public, Features::NONE))
            .chain(Feature::ALL.into_iter().map(|f| {
                (
                    format!("{f:?}"),
                    ClientKind::Confidential,
                    Features::NONE.with(f),
                )
            }))
            .collect();
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        for (what, kind, features) in &one_flag {
            // Created with it.
            let mut made = new_client(what, NOW);
            made.policy.kind = *kind;
            made.policy.features = *features;
            assert_eq!(s.create_client(&made).await.unwrap(), Created::Created);
            let found = s
                .find_client(&made.policy.client_id)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (found.policy.kind, found.policy.features),
                (*kind, *features),
                "{e} create {what}"
            );

            // An update turns it on alone (the type is not editable: only features are), then off again.
            if *kind == ClientKind::Confidential {
                let mut on = fx.client.clone();
                on.policy.features = *features;
                assert!(s.update_client(&on).await.unwrap(), "{e}");
                let found = s.find_client(&on.policy.client_id).await.unwrap().unwrap();
                assert_eq!(found.policy.features, *features, "{e} update {what}");
                assert_eq!(found.policy.kind, ClientKind::Confidential, "{e}");
                let off = fx.client.clone();
                assert!(s.update_client(&off).await.unwrap(), "{e}");
                let found = s.find_client(&off.policy.client_id).await.unwrap().unwrap();
                assert_eq!(
                    found.policy.features,
                    Features::NONE,
                    "{e} update {what} off"
                );
            }
        }
    }
}

#[tokio::test]
async fn usage_counts_consents_live_tokens_and_the_last_day() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let id = &fx.client.policy.client_id;
        assert_eq!(
            s.client_usage(id, NOW).await.unwrap(),
            ClientUsage::default(),
            "{e}"
        );
        let other = new_client("Other", NOW);
        s.create_client(&other).await.unwrap();
        let bob = new_user("bob@example.com");
        s.create_user(&bob).await.unwrap();
        s.save_consent(&fx.user.id, id, "profile", NOW)
            .await
            .unwrap();
        s.save_consent(&bob.id, id, "profile", NOW).await.unwrap();
        s.save_consent(&bob.id, &other.policy.client_id, "profile", NOW)
            .await
            .unwrap();
        // Two days ago (expired), an hour ago (live), now (live), and one at another app.
        s.insert_grant(&grant("old", &fx.client, &fx.user, NOW - 2 * 86_400, "old").grant)
            .await
            .unwrap();
        s.insert_grant(&grant("hour", &fx.client, &fx.user, NOW - 1800, "hour").grant)
            .await
            .unwrap();
        s.insert_grant(&grant("now", &fx.client, &bob, NOW, "now").grant)
            .await
            .unwrap();
        s.insert_grant(&grant("elsewhere", &other, &bob, NOW, "elsewhere").grant)
            .await
            .unwrap();
        assert_eq!(
            s.client_usage(id, NOW).await.unwrap(),
            ClientUsage {
                consents: 2,
                live_access_tokens: 2,
                issued_last_day: 2
            },
            "{e}"
        );
        // Removing a customer's consent revokes their tokens: live drops, issued does not.
        s.revoke_consent(&bob.id, id, NOW + 1).await.unwrap();
        assert_eq!(
            s.client_usage(id, NOW + 1).await.unwrap(),
            ClientUsage {
                consents: 1,
                live_access_tokens: 1,
                issued_last_day: 2
            },
            "{e}"
        );
        // A day later nothing is live and nothing was issued in the last 24 hours.
        assert_eq!(
            s.client_usage(id, NOW + 86_400).await.unwrap(),
            ClientUsage {
                consents: 1,
                live_access_tokens: 0,
                issued_last_day: 0
            },
            "{e}"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Revocation wins races (SPEC 4): an issuance caught between its writes and its commit

/// On PostgreSQL, makes every later INSERT into `refresh_tokens` sleep 0.3 s inside its transaction, so that an
/// issuance is still in flight when the revocation starts. SQLite has one writer: there the two simply run
/// concurrently, and the same outcome is asserted.
async fn slow_refresh_inserts(fx: &Fx) {
    if fx.engine != "postgres" {
        return;
    }
    use sqlx::{Connection, Executor};
    let mut admin = sqlx::PgConnection::connect(&fx._db.url).await.unwrap();
    admin
        .execute(
            "CREATE FUNCTION lk_test_slow() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN PERFORM pg_sleep(0.3); RETURN NEW; END $$; \
             CREATE TRIGGER lk_test_slow BEFORE INSERT ON refresh_tokens \
             FOR EACH ROW EXECUTE FUNCTION lk_test_slow()",
        )
        .await
        .unwrap();
}

/// Starts `issue`, and 100 ms later (while it sleeps in its INSERT on PostgreSQL) runs `revoke`; returns what
/// the issuance answered, after both have finished.
async fn race<T: Send + 'static>(
    issue: impl std::future::Future<Output = T> + Send + 'static,
    revoke: impl std::future::Future<Output = ()>,
) -> T {
    let issuing = tokio::spawn(issue);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    revoke.await;
    issuing.await.unwrap()
}

/// Unrevoked access and refresh tokens of this customer at this app, counted in the tables themselves.
async fn unrevoked(fx: &Fx, user_id: &str, client_id: &str) -> (i64, i64) {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::AnyConnection::connect(&fx._db.url).await.unwrap();
    let mut counts = Vec::new();
    for table in ["access_tokens", "refresh_tokens"] {
        let row = sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM {table} WHERE user_id = $1 AND client_id = $2 AND revoked_at IS NULL"
        ))
        .bind(user_id)
        .bind(client_id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        counts.push(row.try_get::<i64, _>("n").unwrap());
    }
    (counts[0], counts[1])
}

/// What a race must leave behind: nothing of this customer's at the app is live, and the refresh token the
/// issuance handed out (if it won) does not rotate.
async fn nothing_survives(fx: &Fx, issued: &Minted, what: &str) {
    let (s, e) = (&fx.store, fx.engine);
    assert_eq!(
        unrevoked(fx, &fx.user.id, &fx.client.policy.client_id).await,
        (0, 0),
        "{e}: {what}: a token issued while the revocation ran is still live"
    );
    assert!(
        !access_live(s, &issued.access, NOW + 5).await,
        "{e}: {what}"
    );
    let next = grant("after", &fx.client, &fx.user, NOW + 5, "after");
    let mut next = next.grant;
    if let Some(found) = s
        .find_refresh_token(&issued.refresh.unwrap())
        .await
        .unwrap()
    {
        next.family_id = found.family_id;
    }
    assert_eq!(
        s.rotate_refresh_token(&issued.refresh.unwrap(), &next, NOW + 5, 10)
            .await
            .unwrap(),
        Rotation::Refused,
        "{e}: {what}: the new refresh token must be invalid_grant"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removing_an_app_revokes_a_refresh_rotation_in_flight() {
    for fx in fixtures().await {
        let s = &fx.store;
        let first = grant("fam-1", &fx.client, &fx.user, NOW, "first");
        s.insert_grant(&first.grant).await.unwrap();
        slow_refresh_inserts(&fx).await;
        let rotated = grant("fam-1", &fx.client, &fx.user, NOW + 1, "rotated");
        let (store, old, g) = (s.clone(), first.refresh.unwrap(), rotated.grant.clone());
        race(
            async move { store.rotate_refresh_token(&old, &g, NOW + 1, 10).await },
            async {
                s.revoke_consent(&fx.user.id, &fx.client.policy.client_id, NOW + 2)
                    .await
                    .unwrap()
            },
        )
        .await
        .unwrap();
        nothing_survives(&fx, &rotated, "refresh against Remove").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_an_app_revokes_a_refresh_rotation_in_flight() {
    for fx in fixtures().await {
        let s = &fx.store;
        let first = grant("fam-del", &fx.client, &fx.user, NOW, "first");
        s.insert_grant(&first.grant).await.unwrap();
        slow_refresh_inserts(&fx).await;
        let rotated = grant("fam-del", &fx.client, &fx.user, NOW + 1, "rotated");
        let (store, old, g) = (s.clone(), first.refresh.unwrap(), rotated.grant.clone());
        race(
            async move { store.rotate_refresh_token(&old, &g, NOW + 1, 10).await },
            async {
                assert!(s
                    .delete_client(&fx.client.policy.client_id, NOW + 2)
                    .await
                    .unwrap())
            },
        )
        .await
        .unwrap();
        nothing_survives(&fx, &rotated, "refresh against deleting the app").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removing_an_app_revokes_a_code_redemption_in_flight() {
    for fx in fixtures().await {
        let s = &fx.store;
        let code = code_for("code", &fx.client, &fx.user, NOW);
        s.insert_auth_code(&code).await.unwrap();
        slow_refresh_inserts(&fx).await;
        let redeemed = grant("fam-1", &fx.client, &fx.user, NOW + 1, "redeemed");
        let (store, g) = (s.clone(), redeemed.grant.clone());
        race(
            async move { store.redeem_auth_code(&code.code_hash, &g, NOW + 1).await },
            async {
                s.revoke_consent(&fx.user.id, &fx.client.policy.client_id, NOW + 2)
                    .await
                    .unwrap()
            },
        )
        .await
        .unwrap();
        nothing_survives(&fx, &redeemed, "redemption against Remove").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotation_that_starts_during_a_remove_waits_for_it_and_rotates_nothing() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let first = grant("fam-1", &fx.client, &fx.user, NOW, "first");
        s.insert_grant(&first.grant).await.unwrap();
        if e == "postgres" {
            // This time the revocation is the slow one: it sleeps in its first token UPDATE.
            use sqlx::{Connection, Executor};
            let mut admin = sqlx::PgConnection::connect(&fx._db.url).await.unwrap();
            admin
                .execute(
                    "CREATE FUNCTION lk_test_slow() RETURNS trigger LANGUAGE plpgsql AS \
                     $$ BEGIN PERFORM pg_sleep(0.3); RETURN NEW; END $$; \
                     CREATE TRIGGER lk_test_slow BEFORE UPDATE ON access_tokens \
                     FOR EACH ROW EXECUTE FUNCTION lk_test_slow()",
                )
                .await
                .unwrap();
        }
        let (store, user, client) = (
            s.clone(),
            fx.user.id.clone(),
            fx.client.policy.client_id.clone(),
        );
        let removing =
            tokio::spawn(
                async move { store.revoke_consent(&user, &client, NOW + 1).await.unwrap() },
            );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let rotated = grant("fam-1", &fx.client, &fx.user, NOW + 2, "rotated");
        assert_eq!(
            s.rotate_refresh_token(&first.refresh.unwrap(), &rotated.grant, NOW + 2, 10)
                .await
                .unwrap(),
            Rotation::Refused,
            "{e}: the rotation must wait for the Remove and then find its token revoked"
        );
        removing.await.unwrap();
        nothing_survives(&fx, &rotated, "refresh during Remove").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn disabling_the_account_revokes_a_refresh_rotation_in_flight() {
    for fx in fixtures().await {
        let s = &fx.store;
        let first = grant("fam-1", &fx.client, &fx.user, NOW, "first");
        s.insert_grant(&first.grant).await.unwrap();
        slow_refresh_inserts(&fx).await;
        let rotated = grant("fam-1", &fx.client, &fx.user, NOW + 1, "rotated");
        let (store, old, g) = (s.clone(), first.refresh.unwrap(), rotated.grant.clone());
        race(
            async move { store.rotate_refresh_token(&old, &g, NOW + 1, 10).await },
            async {
                assert!(s
                    .set_user_disabled(&fx.user.email, true, NOW + 2)
                    .await
                    .unwrap())
            },
        )
        .await
        .unwrap();
        nothing_survives(&fx, &rotated, "refresh against user disable").await;
        // Enabled again, the account still gets nothing from what disabling ended.
        s.set_user_disabled(&fx.user.email, false, NOW + 3)
            .await
            .unwrap();
        nothing_survives(&fx, &rotated, "after enabling again").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reuse_detection_revokes_a_rotation_of_the_same_family_in_flight() {
    for fx in fixtures().await {
        let s = &fx.store;
        let first = grant("fam-1", &fx.client, &fx.user, NOW, "first");
        let second = grant("fam-1", &fx.client, &fx.user, NOW + 1, "second");
        s.insert_grant(&first.grant).await.unwrap();
        assert_eq!(
            s.rotate_refresh_token(&first.refresh.unwrap(), &second.grant, NOW + 1, 10)
                .await
                .unwrap(),
            Rotation::Rotated
        );
        slow_refresh_inserts(&fx).await;
        // The legitimate client rotates `second` while a thief presents the long-rotated `first`.
        let third = grant("fam-1", &fx.client, &fx.user, NOW + 100, "third");
        let stolen = grant("fam-1", &fx.client, &fx.user, NOW + 100, "stolen");
        let (store, old, g) = (s.clone(), second.refresh.unwrap(), third.grant.clone());
        race(
            async move { store.rotate_refresh_token(&old, &g, NOW + 100, 10).await },
            async {
                assert_eq!(
                    s.rotate_refresh_token(&first.refresh.unwrap(), &stolen.grant, NOW + 100, 10)
                        .await
                        .unwrap(),
                    Rotation::ReuseDetected
                )
            },
        )
        .await
        .unwrap();
        nothing_survives(&fx, &third, "refresh against reuse detection").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removing_an_app_revokes_a_device_issuance_in_flight_and_ends_approved_pairs() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let (racing, waiting) = (
            pair("racing", &fx.client, NOW),
            pair("waiting", &fx.client, NOW),
        );
        for p in [&racing, &waiting] {
            s.insert_device_code(p).await.unwrap();
            assert!(s
                .decide_device_code(&p.user_code_hash, &approval(&fx.user), NOW + 1)
                .await
                .unwrap());
        }
        slow_refresh_inserts(&fx).await;
        let issued = grant("dev-1", &fx.client, &fx.user, NOW + 2, "dev-1");
        let (store, device, g) = (s.clone(), racing.device_hash, issued.grant.clone());
        race(
            async move { store.issue_device_grant(&device, &g, NOW + 2).await },
            async {
                s.revoke_consent(&fx.user.id, &fx.client.policy.client_id, NOW + 3)
                    .await
                    .unwrap()
            },
        )
        .await
        .unwrap();
        nothing_survives(&fx, &issued, "device issuance against Remove").await;
        // The pair approved before Remove that had not been collected issues nothing at its next poll.
        let seen = polled(s, &waiting, None, NOW + 10).await;
        assert_eq!(
            seen.poll.status,
            latchkey_core::device::Status::Revoked,
            "{e}"
        );
        let late = grant("dev-2", &fx.client, &fx.user, NOW + 10, "dev-2");
        assert!(
            !s.issue_device_grant(&waiting.device_hash, &late.grant, NOW + 10)
                .await
                .unwrap(),
            "{e}"
        );
        assert!(!access_live(s, &late.access, NOW + 11).await, "{e}");
    }
}

#[tokio::test]
async fn a_disabled_account_gets_no_tokens_from_any_grant() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let code = code_for("code", &fx.client, &fx.user, NOW);
        s.insert_auth_code(&code).await.unwrap();
        let p = pair("dev", &fx.client, NOW);
        s.insert_device_code(&p).await.unwrap();
        s.decide_device_code(&p.user_code_hash, &approval(&fx.user), NOW + 1)
            .await
            .unwrap();
        assert!(s
            .set_user_disabled(&fx.user.email, true, NOW + 2)
            .await
            .unwrap());
        let implicit = grant("implicit", &fx.client, &fx.user, NOW + 3, "implicit");
        s.insert_grant(&implicit.grant).await.unwrap();
        assert!(!access_live(s, &implicit.access, NOW + 4).await, "{e}");
        let redeemed = grant("code", &fx.client, &fx.user, NOW + 3, "code");
        assert_eq!(
            s.redeem_auth_code(&code.code_hash, &redeemed.grant, NOW + 3)
                .await
                .unwrap(),
            Redeemed::AlreadyUsed,
            "{e}"
        );
        assert_eq!(
            polled(s, &p, None, NOW + 3).await.poll.status,
            latchkey_core::device::Status::Revoked,
            "{e}"
        );
        let device = grant("device", &fx.client, &fx.user, NOW + 3, "device");
        assert!(
            !s.issue_device_grant(&p.device_hash, &device.grant, NOW + 3)
                .await
                .unwrap(),
            "{e}"
        );
        assert_eq!(
            unrevoked(&fx, &fx.user.id, &fx.client.policy.client_id).await,
            (0, 0),
            "{e}"
        );
    }
}

#[tokio::test]
async fn verification_is_stored_set_by_the_operator_and_only_cleared_by_an_edit() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let mut console = new_client("Console app", NOW);
        console.verified = false;
        s.create_client(&console).await.unwrap();
        let id = console.policy.client_id.clone();
        let stored = |s: Arc<SqlStore>, id: String| async move {
            s.find_client(&id).await.unwrap().unwrap().verified
        };
        assert!(!stored(s.clone(), id.clone()).await, "{e}");
        assert!(
            stored(s.clone(), fx.client.policy.client_id.clone()).await,
            "{e}"
        );

        // An edit claiming `verified` does not verify.
        let mut claimed = console.clone();
        claimed.verified = true;
        assert!(s.update_client(&claimed).await.unwrap(), "{e}");
        assert!(!stored(s.clone(), id.clone()).await, "{e}");

        assert!(s.set_client_verified(&id).await.unwrap(), "{e}");
        assert!(stored(s.clone(), id.clone()).await, "{e}");
        assert!(!s.set_client_verified("lk1.nothing").await.unwrap(), "{e}");
        // An edit that leaves it verified keeps it; one that unverifies clears it.
        assert!(s.update_client(&claimed).await.unwrap(), "{e}");
        assert!(stored(s.clone(), id.clone()).await, "{e}");
        assert!(s.update_client(&console).await.unwrap(), "{e}");
        assert!(!stored(s.clone(), id.clone()).await, "{e}");
    }
}

/// Runs this engine's migrations before `version` on `db`, as a database made by an older Latchkey.
async fn migrate_before(db: &TestDb, engine: &str, version: i64) {
    sqlx::any::install_default_drivers();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(if engine == "postgres" {
            "postgres"
        } else {
            "sqlite"
        });
    let mut migrator = sqlx::migrate::Migrator::new(dir).await.unwrap();
    migrator.migrations = migrator
        .migrations
        .iter()
        .filter(|m| m.version < version)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    migrator.run(&pool).await.unwrap();
    pool.close().await;
}

#[tokio::test]
async fn upgrading_leaves_console_apps_unverified_and_operator_apps_verified() {
    for (engine, db) in each_db().await {
        migrate_before(&db, engine, 7).await;
        let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, disabled, created_at) \
             VALUES ('0123456789abcdef0123456789abcdef', 'dev@example.com', 'Dev', 'x', 0, 1)",
        )
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO developers (user_id, created_at) VALUES ('0123456789abcdef0123456789abcdef', 1)")
            .execute(&pool)
            .await
            .unwrap();
        for (client_id, owner) in [
            (
                "lk1.application-oa2-client.console",
                "0123456789abcdef0123456789abcdef",
            ),
            (
                "lk1.application-oa2-client.gone-dev",
                "fedcba9876543210fedcba9876543210",
            ),
            ("lk1.application-oa2-client.operator", "operator"),
            ("lk1.application-oa2-client.partner", "partner-co"),
        ] {
            sqlx::query(
                "INSERT INTO clients (client_id, app_id, owner, name, description, privacy_url, redirect_uris, \
                   allowed_origins, confidential, allow_implicit, allow_plain_pkce, allow_device, \
                   allow_client_credentials, development, created_at) \
                 VALUES ($1, $2, $3, 'App', '', 'https://a.example/p', '[\"https://a.example/cb\"]', '[]', \
                   1, 0, 0, 0, 0, 0, 1)",
            )
            .bind(client_id)
            .bind(format!("app-of-{client_id}"))
            .bind(owner)
            .execute(&pool)
            .await
            .unwrap();
        }
        // An app of a developer who has no account any more is not the operator's either.
        sqlx::query("INSERT INTO developers (user_id, created_at) VALUES ('fedcba9876543210fedcba9876543210', 1)")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;

        let s = open(&db).await;
        for (client_id, verified) in [
            ("lk1.application-oa2-client.console", false),
            ("lk1.application-oa2-client.gone-dev", false),
            ("lk1.application-oa2-client.operator", true),
            ("lk1.application-oa2-client.partner", true),
        ] {
            let c = s.find_client(client_id).await.unwrap().unwrap();
            assert_eq!(c.verified, verified, "{engine}: {client_id}");
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Mailed codes (SPEC 2.8) and the mail queue

fn email_code(
    id: &str,
    purpose: CodePurpose,
    user: Option<&User>,
    email: &str,
    at: Timestamp,
) -> NewEmailCode {
    NewEmailCode {
        id: id.to_owned(),
        purpose,
        user_id: user.map(|u| u.id.clone()),
        email: email.to_owned(),
        code_hash: h(&format!("{id}-code")),
        link_hash: h(&format!("{id}-link")),
        created_at: at,
        expires_at: at + 900,
    }
}

fn typed<'a>(id: &'a str, hash: &'a Digest) -> CodeProof<'a> {
    CodeProof::Code {
        id,
        code_hash: hash,
    }
}

#[tokio::test]
async fn a_verification_code_counts_wrong_tries_locks_at_five_and_verifies_once() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let mut bob = new_user("bob@example.com");
        bob.email_verified = false;
        s.create_user(&bob).await.unwrap();
        let verify = CodePurpose::Verify;
        s.create_email_code(&email_code("c1", verify, Some(&bob), &bob.email, NOW), NOW)
            .await
            .unwrap();
        let wrong = h("wrong");
        for left in (1..=4).rev() {
            assert_eq!(
                s.redeem_email_code(typed("c1", &wrong), verify, CodeEffect::Apply, NOW)
                    .await
                    .unwrap(),
                CodeRedeemed::Wrong { tries_left: left },
                "{e}"
            );
        }
        assert_eq!(
            s.redeem_email_code(typed("c1", &wrong), verify, CodeEffect::Apply, NOW)
                .await
                .unwrap(),
            CodeRedeemed::Locked,
            "{e}: the fifth wrong code locks it"
        );
        let right = h("c1-code");
        assert_eq!(
            s.redeem_email_code(typed("c1", &right), verify, CodeEffect::Apply, NOW)
                .await
                .unwrap(),
            CodeRedeemed::Locked,
            "{e}: a locked code stays locked, even for the right digits"
        );
        assert!(!s.find_user(&bob.id).await.unwrap().unwrap().email_verified);
        assert_eq!(
            s.live_email_code(&bob.id, verify, NOW).await.unwrap(),
            None,
            "{e}"
        );

        // A new code; the one before it dies with it.
        s.create_email_code(&email_code("c2", verify, Some(&bob), &bob.email, NOW), NOW)
            .await
            .unwrap();
        s.create_email_code(
            &email_code("c3", verify, Some(&bob), &bob.email, NOW + 1),
            NOW + 1,
        )
        .await
        .unwrap();
        assert_eq!(
            s.redeem_email_code(
                typed("c2", &h("c2-code")),
                verify,
                CodeEffect::Apply,
                NOW + 2
            )
            .await
            .unwrap(),
            CodeRedeemed::Gone,
            "{e}: only the newest code works"
        );
        assert_eq!(
            s.live_email_code(&bob.id, verify, NOW + 2)
                .await
                .unwrap()
                .map(|c| c.id),
            Some("c3".to_owned())
        );
        assert_eq!(
            s.redeem_email_code(
                typed("c3", &h("c3-code")),
                CodePurpose::Reset,
                CodeEffect::NewPassword("x"),
                NOW + 2
            )
            .await
            .unwrap(),
            CodeRedeemed::Gone,
            "{e}: a code is for its purpose only"
        );
        let done = s
            .redeem_email_code(
                typed("c3", &h("c3-code")),
                verify,
                CodeEffect::Apply,
                NOW + 2,
            )
            .await
            .unwrap();
        assert!(
            matches!(done, CodeRedeemed::Done(ref c) if c.id == "c3"),
            "{e}: {done:?}"
        );
        assert!(
            s.find_user(&bob.id).await.unwrap().unwrap().email_verified,
            "{e}"
        );
        assert_eq!(
            s.redeem_email_code(
                typed("c3", &h("c3-code")),
                verify,
                CodeEffect::Apply,
                NOW + 3
            )
            .await
            .unwrap(),
            CodeRedeemed::Gone,
            "{e}: single use"
        );
    }
}

#[tokio::test]
async fn a_code_expires_and_its_link_works_like_it() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let mut bob = new_user("bob@example.com");
        bob.email_verified = false;
        s.create_user(&bob).await.unwrap();
        let verify = CodePurpose::Verify;
        s.create_email_code(&email_code("old", verify, Some(&bob), &bob.email, NOW), NOW)
            .await
            .unwrap();
        assert_eq!(
            s.redeem_email_code(
                typed("old", &h("old-code")),
                verify,
                CodeEffect::Apply,
                NOW + 900
            )
            .await
            .unwrap(),
            CodeRedeemed::Gone,
            "{e}: 15 minutes and no more"
        );
        s.create_email_code(
            &email_code("new", verify, Some(&bob), &bob.email, NOW + 900),
            NOW + 900,
        )
        .await
        .unwrap();
        assert_eq!(
            s.redeem_email_code(
                CodeProof::Link {
                    link_hash: &h("nope")
                },
                verify,
                CodeEffect::Apply,
                NOW + 901
            )
            .await
            .unwrap(),
            CodeRedeemed::Gone,
            "{e}"
        );
        let link = h("new-link");
        assert!(matches!(
            s.redeem_email_code(
                CodeProof::Link { link_hash: &link },
                verify,
                CodeEffect::Apply,
                NOW + 901
            )
            .await
            .unwrap(),
            CodeRedeemed::Done(_)
        ));
        assert!(
            s.find_user(&bob.id).await.unwrap().unwrap().email_verified,
            "{e}"
        );
        // An address that changed since the code was sent is not verified by it.
        let mut carol = new_user("carol@example.com");
        carol.email_verified = false;
        s.create_user(&carol).await.unwrap();
        s.create_email_code(
            &email_code("stale", verify, Some(&carol), "carol.old@example.com", NOW),
            NOW,
        )
        .await
        .unwrap();
        assert_eq!(
            s.redeem_email_code(
                typed("stale", &h("stale-code")),
                verify,
                CodeEffect::Apply,
                NOW + 1
            )
            .await
            .unwrap(),
            CodeRedeemed::Gone,
            "{e}"
        );
        assert!(
            !s.find_user(&carol.id)
                .await
                .unwrap()
                .unwrap()
                .email_verified,
            "{e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_at_a_code_get_five_tries_in_all() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let verify = CodePurpose::Verify;
        s.create_email_code(
            &email_code("c", verify, Some(&fx.user), &fx.user.email, NOW),
            NOW,
        )
        .await
        .unwrap();
        let guesses = (0..12).map(|i| {
            let s = s.clone();
            async move {
                let wrong = h(&format!("guess-{i}"));
                s.redeem_email_code(typed("c", &wrong), verify, CodeEffect::Apply, NOW)
                    .await
                    .unwrap()
            }
        });
        let outcomes = futures_join_all(guesses).await;
        let wrong = outcomes
            .iter()
            .filter(|o| matches!(o, CodeRedeemed::Wrong { .. }))
            .count();
        assert_eq!(wrong, 4, "{e}: {outcomes:?}");
        assert!(outcomes
            .iter()
            .all(|o| matches!(o, CodeRedeemed::Wrong { .. } | CodeRedeemed::Locked)));
        assert_eq!(
            s.find_email_code("c").await.unwrap().unwrap().tries,
            5,
            "{e}"
        );
    }
}

#[tokio::test]
async fn a_reset_code_replaces_the_password_ends_every_session_and_proves_the_address() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let mut bob = new_user("bob@example.com");
        bob.email_verified = false;
        s.create_user(&bob).await.unwrap();
        s.create_session(&h("bob-1"), &bob.id, NOW, NOW + 600)
            .await
            .unwrap();
        s.create_session(&h("bob-2"), &bob.id, NOW, NOW + 600)
            .await
            .unwrap();
        s.create_session(&h("ada-1"), &fx.user.id, NOW, NOW + 600)
            .await
            .unwrap();
        let reset = CodePurpose::Reset;
        s.create_email_code(&email_code("r", reset, Some(&bob), &bob.email, NOW), NOW)
            .await
            .unwrap();
        let done = s
            .redeem_email_code(
                typed("r", &h("r-code")),
                reset,
                CodeEffect::NewPassword("$argon2id$new"),
                NOW + 1,
            )
            .await
            .unwrap();
        assert!(matches!(done, CodeRedeemed::Done(_)), "{e}: {done:?}");
        let bob_now = s.find_user(&bob.id).await.unwrap().unwrap();
        assert_eq!(bob_now.password_hash, "$argon2id$new", "{e}");
        assert!(bob_now.email_verified, "{e}");
        assert!(
            s.list_sessions(&bob.id, NOW + 1).await.unwrap().is_empty(),
            "{e}"
        );
        assert_eq!(
            s.list_sessions(&fx.user.id, NOW + 1).await.unwrap().len(),
            1,
            "{e}: nobody else's"
        );
    }
}

#[tokio::test]
async fn an_email_change_applies_only_while_the_new_address_is_free() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let change = CodePurpose::Change;
        s.create_email_code(
            &email_code("x", change, Some(&fx.user), "ada.new@example.com", NOW),
            NOW,
        )
        .await
        .unwrap();
        let taker = new_user("ada.new@example.com");
        s.create_user(&taker).await.unwrap();
        assert_eq!(
            s.redeem_email_code(typed("x", &h("x-code")), change, CodeEffect::Apply, NOW + 1)
                .await
                .unwrap(),
            CodeRedeemed::EmailTaken,
            "{e}"
        );
        assert_eq!(
            s.find_user(&fx.user.id).await.unwrap().unwrap().email,
            fx.user.email,
            "{e}: nothing changed"
        );
        assert!(
            s.find_email_code("x")
                .await
                .unwrap()
                .unwrap()
                .used_at
                .is_none(),
            "{e}"
        );
        s.create_email_code(
            &email_code(
                "y",
                change,
                Some(&fx.user),
                "ada.other@example.com",
                NOW + 2,
            ),
            NOW + 2,
        )
        .await
        .unwrap();
        assert!(matches!(
            s.redeem_email_code(typed("y", &h("y-code")), change, CodeEffect::Apply, NOW + 3)
                .await
                .unwrap(),
            CodeRedeemed::Done(_)
        ));
        let ada = s.find_user(&fx.user.id).await.unwrap().unwrap();
        assert_eq!(
            (ada.email.as_str(), ada.email_verified),
            ("ada.other@example.com", true),
            "{e}"
        );
    }
}

#[tokio::test]
async fn a_decoy_code_behaves_like_a_code_and_never_matches() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let reset = CodePurpose::Reset;
        s.create_email_code(
            &email_code("d", reset, None, "nobody@example.com", NOW),
            NOW,
        )
        .await
        .unwrap();
        assert_eq!(
            s.redeem_email_code(
                typed("d", &h("wrong")),
                reset,
                CodeEffect::NewPassword("x"),
                NOW
            )
            .await
            .unwrap(),
            CodeRedeemed::Wrong { tries_left: 4 },
            "{e}"
        );
        assert_eq!(
            s.redeem_email_code(
                typed("d", &h("d-code")),
                reset,
                CodeEffect::NewPassword("x"),
                NOW
            )
            .await
            .unwrap(),
            CodeRedeemed::Gone,
            "{e}: even its own digits change nothing"
        );
        assert!(
            s.find_email_code("d")
                .await
                .unwrap()
                .unwrap()
                .used_at
                .is_none(),
            "{e}"
        );
    }
}

#[tokio::test]
async fn a_token_profile_has_no_address_until_it_is_verified() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        let mut bob = new_user("bob@example.com");
        bob.email_verified = false;
        s.create_user(&bob).await.unwrap();
        let g = grant("fam-bob", &fx.client, &bob, NOW, "bob");
        s.insert_grant(&g.grant).await.unwrap();
        let profile = s.find_token_profile(&g.access, NOW).await.unwrap().unwrap();
        assert_eq!(profile.email, None, "{e}");
        assert_eq!(profile.name, bob.name, "{e}");
    }
}

fn queued(id: &str, at: Timestamp) -> QueuedMail {
    QueuedMail {
        id: id.to_owned(),
        recipient: "ada@example.com".into(),
        kind: "verify".into(),
        sealed_message: format!("sealed {id}").into_bytes(),
        created_at: at,
    }
}

#[tokio::test]
async fn queued_mail_is_claimed_once_retried_when_due_and_given_up_on() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        s.enqueue_mail(&queued("m1", NOW)).await.unwrap();
        s.enqueue_mail(&queued("m2", NOW + 1)).await.unwrap();
        assert_eq!(s.mail_backlog().await.unwrap(), (2, 0), "{e}");
        let first = s.claim_mail(NOW + 1, 120).await.unwrap().unwrap();
        assert_eq!((first.id.as_str(), first.attempts), ("m1", 1), "{e}");
        assert_eq!(first.sealed_message, b"sealed m1".to_vec());
        let second = s.claim_mail(NOW + 1, 120).await.unwrap().unwrap();
        assert_eq!(second.id, "m2", "{e}");
        assert_eq!(
            s.claim_mail(NOW + 1, 120).await.unwrap(),
            None,
            "{e}: both are leased"
        );

        s.mail_failed("m1", "connection refused", Some(NOW + 10), NOW + 2)
            .await
            .unwrap();
        assert_eq!(
            s.claim_mail(NOW + 9, 120).await.unwrap(),
            None,
            "{e}: not due yet"
        );
        let again = s.claim_mail(NOW + 10, 120).await.unwrap().unwrap();
        assert_eq!((again.id.as_str(), again.attempts), ("m1", 2), "{e}");
        s.mail_sent("m1").await.unwrap();

        // A sender that died with m2 leaves its lease to run out; then another takes it.
        let taken_over = s.claim_mail(NOW + 121, 120).await.unwrap().unwrap();
        assert_eq!(
            (taken_over.id.as_str(), taken_over.attempts),
            ("m2", 2),
            "{e}"
        );
        s.mail_failed("m2", "550 no such user", None, NOW + 122)
            .await
            .unwrap();
        assert_eq!(s.mail_backlog().await.unwrap(), (0, 1), "{e}");
        assert_eq!(
            s.claim_mail(NOW + 10_000, 120).await.unwrap(),
            None,
            "{e}: given up"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_senders_claim_a_mail_once() {
    for fx in fixtures().await {
        let (s, e) = (&fx.store, fx.engine);
        s.enqueue_mail(&queued("only", NOW)).await.unwrap();
        let claims = (0..8).map(|_| {
            let s = s.clone();
            async move { s.claim_mail(NOW, 120).await.unwrap() }
        });
        let got = futures_join_all(claims).await;
        assert_eq!(got.iter().flatten().count(), 1, "{e}: {got:?}");
    }
}

/// Runs the futures at once on the test's runtime and collects their outputs in order.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
