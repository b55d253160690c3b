//! OpenID Connect with the `openidconnect` crate as the relying party (SPEC 3): discovery, code + PKCE, ID-token
//! verification against the JWKS (signature, iss, aud, exp, nonce, at_hash), userinfo and refresh; and signing-key
//! rotation seen from outside.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::*;
use latchkey_core::client::Feature;
use latchkey_core::oidc::SigningAlg;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenClaims, CoreIdTokenVerifier,
    CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    IntrospectionUrl, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope,
    SignatureVerificationError, TokenIntrospectionResponse, TokenResponse,
};
use serde_json::Value;
use std::collections::BTreeMap;

struct Login {
    id_token: String,
    sub: String,
    /// The app the ID token was issued to (its `aud`), and by which node (its `iss`).
    client_id: String,
    issuer: String,
}

/// The whole relying-party story with the `openidconnect` crate for an app signing with `alg`.
async fn full_flow(app: &TestApp, alg: SigningAlg) -> Login {
    let rp = app
        .register_app(|i| {
            i.id_token_alg = alg;
        })
        .await;
    let email = format!("oidc-{}@example.com", alg.as_str().to_lowercase());
    app.create_user(&email, "Ida Token", None).await;
    let http = http_client();
    let provider =
        CoreProviderMetadata::discover_async(IssuerUrl::new(app.base.clone()).unwrap(), &http)
            .await
            .expect("discovery");
    let client = CoreClient::from_provider_metadata(
        provider,
        ClientId::new(rp.client_id.clone()),
        Some(ClientSecret::new(rp.secret.clone().unwrap())),
    )
    .set_redirect_uri(RedirectUrl::new(rp.redirect_uri.clone()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    let back = login_through(&app.browser(), url.as_str(), &email).await;
    assert_eq!(
        Step::param(&back, "state").as_deref(),
        Some(csrf.secret().as_str())
    );
    assert_eq!(
        Step::param(&back, "iss").as_deref(),
        Some(app.base.as_str())
    );
    let code = Step::param(&back, "code").unwrap();

    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");
    let id_token = token.id_token().expect("an ID token for openid");
    let id_verifier = client.id_token_verifier().set_allowed_algs(vec![match alg {
        SigningAlg::Es256 => CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        SigningAlg::EdDsa => CoreJwsSigningAlgorithm::EdDsa,
        SigningAlg::Rs256 => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    }]);
    let claims = id_token
        .claims(&id_verifier, &nonce)
        .expect("a valid ID token");
    assert_eq!(claims.issuer().as_str(), app.base);
    assert_eq!(claims.audiences()[0].as_str(), rp.client_id);
    assert!(claims.subject().as_str().starts_with("lk1.account."));
    assert!(claims.auth_time().is_some());
    let expected_hash = AccessTokenHash::from_token(
        token.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&id_verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected_hash), "at_hash");

    // A token with another nonce is refused: the verifier really checks it.
    assert!(id_token
        .claims(&id_verifier, &Nonce::new("another".into()))
        .is_err());

    let info: CoreUserInfoClaims = client
        .user_info(token.access_token().clone(), Some(claims.subject().clone()))
        .unwrap()
        .request_async(&http)
        .await
        .expect("userinfo");
    assert_eq!(info.email().map(|e| e.as_str()), Some(email.as_str()));
    assert_eq!(
        info.name().and_then(|n| n.get(None)).map(|n| n.as_str()),
        Some("Ida Token")
    );
    // RFC 6750 2.2: a form POST may carry the token in its body instead; in the body and the header at once is
    // two presentations, refused.
    let access = token.access_token().secret().as_str();
    let posted: Value = http
        .post(app.url("/oauth2/userinfo"))
        .form(&[("access_token", access)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(posted["email"], email.as_str(), "{posted}");
    let both = http
        .post(app.url("/oauth2/userinfo"))
        .bearer_auth(access)
        .form(&[("access_token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(both.status().as_u16(), 400);
    assert!(both.text().await.unwrap().contains("more than once"));

    let refreshed = client
        .exchange_refresh_token(token.refresh_token().unwrap())
        .unwrap()
        .request_async(&http)
        .await
        .expect("refresh");
    let refreshed_id = refreshed.id_token().expect("an ID token on refresh too");
    let again = refreshed_id
        .claims(&id_verifier, |_: Option<&Nonce>| Ok(()))
        .expect("a valid refreshed ID token");
    assert_eq!(again.subject(), claims.subject(), "same customer");
    assert_eq!(
        again.auth_time(),
        claims.auth_time(),
        "the original sign-in time"
    );

    // Introspection and revocation at the endpoints discovery names (RFC 7662, RFC 7009).
    let meta: Value = http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client = client.clone().set_introspection_url(
        IntrospectionUrl::new(meta["introspection_endpoint"].as_str().unwrap().into()).unwrap(),
    );
    let seen = client
        .introspect(refreshed.access_token())
        .request_async(&http)
        .await
        .expect("introspection");
    assert!(seen.active());
    assert_eq!(
        seen.client_id().map(|c| c.as_str()),
        Some(rp.client_id.as_str())
    );
    assert_eq!(seen.sub(), Some(claims.subject().as_str()));
    // (The crate's revoke_token refuses plain-http endpoints, and this test server is plain http on loopback, so
    // the RFC 7009 request is sent as the crate would send it: form body, HTTP Basic.)
    let revoked = http
        .post(meta["revocation_endpoint"].as_str().unwrap())
        .basic_auth(&rp.client_id, rp.secret.as_deref())
        .form(&[
            (
                "token",
                refreshed.refresh_token().unwrap().secret().as_str(),
            ),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status().as_u16(), 200, "revocation");
    let seen = client
        .introspect(refreshed.access_token())
        .request_async(&http)
        .await
        .unwrap();
    assert!(
        !seen.active(),
        "revoking the refresh token ended the grant's access token"
    );
    assert!(client
        .exchange_refresh_token(refreshed.refresh_token().unwrap())
        .unwrap()
        .request_async(&http)
        .await
        .is_err());
    Login {
        id_token: id_token.to_string(),
        sub: claims.subject().to_string(),
        client_id: rp.client_id.clone(),
        issuer: app.base.clone(),
    }
}

#[tokio::test]
async fn the_openidconnect_crate_completes_discovery_login_verification_userinfo_and_refresh() {
    let app = spawn_app().await;
    let login = full_flow(&app, SigningAlg::Es256).await;
    assert!(login.sub.starts_with("lk1.account."));
    // userinfo is the standard shape: 401 for an unknown token, 403 for a token without openid.
    let res = app
        .api()
        .get(app.url("/oauth2/userinfo"))
        .bearer_auth("Atza|nope")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
}

#[tokio::test]
async fn eddsa_and_rs256_apps_get_id_tokens_signed_their_way() {
    let app = spawn_app().await;
    for alg in [SigningAlg::EdDsa, SigningAlg::Rs256] {
        let login = full_flow(&app, alg).await;
        let header = login.id_token.split('.').next().unwrap();
        let header: Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], alg.as_str());
        assert!(!login.sub.is_empty());
    }
}

#[tokio::test]
async fn a_token_without_openid_gets_no_id_token_and_no_userinfo() {
    let app = spawn_app().await;
    let shop = app.register_app(|_| {}).await;
    app.create_user("plain@example.com", "Plain", None).await;
    let client = app.oauth_client(&shop);
    let (url, _) = client
        .authorize_url(oauth2::CsrfToken::new_random)
        .add_scope(oauth2::Scope::new("profile".into()))
        .url();
    let back = login_through(&app.browser(), url.as_str(), "plain@example.com").await;
    let res: Value = app
        .api()
        .post(app.url("/oauth2/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &Step::param(&back, "code").unwrap()),
            ("redirect_uri", &shop.redirect_uri),
            ("client_id", &shop.client_id),
            ("client_secret", shop.secret.as_deref().unwrap()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(res.get("id_token").is_none(), "{res}");
    let info = app
        .api()
        .get(app.url("/oauth2/userinfo"))
        .bearer_auth(res["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(info.status().as_u16(), 403);
}

async fn jwks(app: &TestApp) -> Value {
    app.api()
        .get(app.url("/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn kids(set: &Value) -> Vec<String> {
    let mut kids: Vec<String> = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    kids.sort();
    kids
}

/// A JWKS document as a set of whole keys (every member: kty, crv, x, y, n, e, alg, use, kid), indexed by `kid`.
/// Two documents are equal only if they publish exactly the same key material, in any order.
fn key_set(set: &Value) -> BTreeMap<String, Value> {
    let keys = set["keys"].as_array().unwrap();
    let by_kid: BTreeMap<String, Value> = keys
        .iter()
        .map(|k| (k["kid"].as_str().unwrap().to_owned(), k.clone()))
        .collect();
    assert_eq!(by_kid.len(), keys.len(), "a kid published twice: {set}");
    by_kid
}

fn kid_of(id_token: &str) -> String {
    let header = id_token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// Verifies `login`'s ID token (signature, iss, aud, exp) with the `openidconnect` crate against the JWKS document
/// `jwks`, as a relying party that fetched it would, at the server's time `now`.
fn verify_against(
    jwks: &Value,
    login: &Login,
    now: i64,
) -> Result<CoreIdTokenClaims, ClaimsVerificationError> {
    let keys: CoreJsonWebKeySet = serde_json::from_value(jwks.clone()).unwrap();
    let verifier = CoreIdTokenVerifier::new_public_client(
        ClientId::new(login.client_id.clone()),
        IssuerUrl::new(login.issuer.clone()).unwrap(),
        keys,
    )
    .set_allowed_algs(vec![CoreJwsSigningAlgorithm::EcdsaP256Sha256])
    .set_time_fn(move || chrono::DateTime::from_timestamp(now, 0).unwrap());
    let token: CoreIdToken = login.id_token.parse().unwrap();
    token.claims(&verifier, |_: Option<&Nonce>| Ok(())).cloned()
}

#[tokio::test]
async fn key_rotation_keeps_old_tokens_verifiable_and_both_nodes_publish_the_same_keys() {
    let Some(db) = postgres_db().await else {
        return;
    };
    let db = std::sync::Arc::new(db);
    // One frozen clock for both nodes: advancing it moves them together.
    let clock = frozen_clock();
    let a = spawn_app_clocked(db.clone(), clock.clone(), |_| {}).await;
    let b = spawn_app_clocked(db, clock, |_| {}).await;
    let advance = |secs: i64| a.state.clock.advance(secs);
    let now = || a.state.clock.now();
    assert_eq!(
        key_set(&jwks(&a).await),
        key_set(&jwks(&b).await),
        "same keys before"
    );

    let before = full_flow(&a, SigningAlg::Es256).await;
    let old_kid = kid_of(&before.id_token);
    let issued_before = now();
    verify_against(&jwks(&b).await, &before, now()).expect("verifies against the other node");

    // Rotate (as `latchkey keys rotate` does). The new keys are published by every node once it reloads, before
    // they sign anything.
    let added = latchkey::keys::rotate(
        a.store().as_ref(),
        a.state.keys.master_key(),
        a.state.clock.now(),
        latchkey::keys::ROTATION_DELAY_SECS,
    )
    .await
    .unwrap();
    let new_kid = added
        .iter()
        .find(|k| k.alg == SigningAlg::Es256)
        .unwrap()
        .kid
        .clone();
    advance(latchkey::keys::RELOAD_SECS);
    let (ja, jb) = (jwks(&a).await, jwks(&b).await);
    assert_eq!(
        key_set(&ja),
        key_set(&jb),
        "both nodes publish the same keys"
    );
    assert!(kids(&ja).contains(&new_kid) && kids(&ja).contains(&old_kid));
    let during = full_flow(&b, SigningAlg::Es256).await;
    assert_eq!(
        kid_of(&during.id_token),
        old_kid,
        "the new key does not sign before it activates"
    );
    verify_against(&ja, &during, now()).expect("a token signed during the delay verifies");

    // After activation: new tokens carry the new kid and verify against the published keys; the token signed
    // before the rotation still verifies against the JWKS fetched after it, from either node.
    advance(latchkey::keys::ROTATION_DELAY_SECS);
    let after = full_flow(&b, SigningAlg::Es256).await;
    assert_eq!(kid_of(&after.id_token), new_kid);
    let (ja, jb) = (jwks(&a).await, jwks(&b).await);
    assert_eq!(
        key_set(&ja),
        key_set(&jb),
        "both nodes publish the same keys"
    );
    for (node, set) in [("a", &ja), ("b", &jb)] {
        let old = verify_against(set, &before, now())
            .unwrap_or_else(|e| panic!("the pre-rotation token against node {node}'s JWKS: {e}"));
        assert_eq!(old.subject().as_str(), before.sub);
        let new = verify_against(set, &after, now())
            .unwrap_or_else(|e| panic!("the post-rotation token against node {node}'s JWKS: {e}"));
        assert_eq!(new.subject().as_str(), after.sub);
    }
    // The verification really is the signature: under the old kid, the new key's material does not verify the
    // old token, and a set without the old key has nothing to verify it with.
    let mut swapped = ja.clone();
    let new_key = key_set(&ja)[&new_kid].clone();
    for k in swapped["keys"].as_array_mut().unwrap() {
        if k["kid"] == old_kid.as_str() {
            *k = new_key.clone();
            k["kid"] = old_kid.clone().into();
        }
    }
    assert!(
        matches!(
            verify_against(&swapped, &before, now()),
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::CryptoError(_)
            ))
        ),
        "another key's material under the old kid must not verify"
    );
    let mut without_old = ja.clone();
    without_old["keys"]
        .as_array_mut()
        .unwrap()
        .retain(|k| k["kid"] != old_kid.as_str());
    assert!(matches!(
        verify_against(&without_old, &before, now()),
        Err(ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey
        ))
    ));

    // Once every ID token the old key signed has expired (id_token_ttl 3600 s + margin), it is withdrawn: the
    // pre-rotation token no longer finds its key (checked at its issue time, so only the key is missing).
    advance(3_600 + 300 + latchkey::keys::RELOAD_SECS);
    let (ja, jb) = (jwks(&a).await, jwks(&b).await);
    let published = kids(&ja);
    assert!(!published.contains(&old_kid), "{published:?}");
    assert!(published.contains(&new_kid));
    assert_eq!(
        key_set(&ja),
        key_set(&jb),
        "both nodes publish the same keys"
    );
    assert!(matches!(
        verify_against(&ja, &before, issued_before),
        Err(ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey
        ))
    ));
    verify_against(&ja, &after, now() - 3_600).expect("the new key still verifies its tokens");
}

/// Both discovery documents (OpenID Connect Discovery, RFC 8414), by path.
async fn discovery_documents(app: &TestApp) -> Vec<(&'static str, Value)> {
    let mut docs = Vec::new();
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let meta: Value = app
            .api()
            .get(app.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        docs.push((path, meta));
    }
    docs
}

#[tokio::test]
async fn discovery_lists_only_endpoints_that_answer() {
    let app = spawn_app().await;
    for (_, meta) in discovery_documents(&app).await {
        assert_eq!(meta["issuer"], app.base);
        assert_eq!(
            meta["subject_types_supported"],
            serde_json::json!(["pairwise"])
        );
        assert_eq!(
            meta["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
        let endpoints: Vec<(&str, &str)> = meta
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.ends_with("_endpoint") || *k == "jwks_uri")
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
            .collect();
        assert!(endpoints.len() >= 5, "{endpoints:?}");
        for (name, url) in endpoints {
            assert!(url.starts_with(&app.base), "{name}: {url}");
            // Every listed endpoint exists: whatever the method, it is not a 404.
            let get = app.api().get(url).send().await.unwrap().status().as_u16();
            let post = app.api().post(url).send().await.unwrap().status().as_u16();
            assert!(
                get != 404 && post != 404,
                "{name} {url}: GET {get}, POST {post}"
            );
            assert!(
                get < 500 && post < 500,
                "{name} {url}: GET {get}, POST {post}"
            );
        }
    }
}

/// Every capability the discovery documents claim, pinned to a reviewed list: adding a claim means adding it here,
/// next to the name of the test that shows it works. (The list cannot know whether those tests exist;
/// [`every_advertised_value_is_accepted_where_it_is_used`] asks the endpoints themselves.)
#[tokio::test]
async fn discovery_claims_exactly_the_pinned_capabilities() {
    let app = spawn_app().await;
    let expected = serde_json::json!({
        // scope.rs STANDARD_SCOPES; each is granted in code_flow.rs, and openid/email here and in userinfo.
        "scopes_supported": ["profile", "profile:user_id", "postal_code", "openid", "email"],
        // code: everywhere; token: code_flow::the_implicit_grant_works_for_apps_that_enabled_it.
        "response_types_supported": ["code", "token"],
        // code_flow::response_mode_fragment_returns_the_code_and_every_later_error_in_the_fragment, and
        // code_flow::response_modes_we_do_not_serve_and_query_for_tokens_are_invalid_request.
        "response_modes_supported": ["query", "fragment"],
        // code_flow, standard::client_credentials_tokens_act_for_the_app_only_where_enabled, implicit above,
        // device.rs (RFC 8628 form).
        "grant_types_supported": [
            "authorization_code", "refresh_token", "client_credentials", "implicit",
            "urn:ietf:params:oauth:grant-type:device_code",
        ],
        // The pairwise user_id (SPEC 1): code_flow and the ID tokens here.
        "subject_types_supported": ["pairwise"],
        // full_flow for each algorithm.
        "id_token_signing_alg_values_supported": ["ES256", "EdDSA", "RS256"],
        // Basic (the oauth2 and openidconnect crates), post (form bodies: a_token_without_openid_gets_no_id_token_and_no_userinfo,
        // errors.rs), none (public apps with PKCE, code_flow).
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        // standard.rs: introspection needs the secret; public apps revoke with their client_id alone.
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        // plain exists only as a per-app LWA opt-in, so it is not advertised.
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent"],
        // The ID token's claims (full_flow) and userinfo's.
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "name", "email", "email_verified",
        ],
        // iss in every authorization response, success or error (code_flow::code_from, fragment_only).
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
    });
    for (path, meta) in discovery_documents(&app).await {
        let mut claims = meta.as_object().unwrap().clone();
        claims.retain(|k, _| k != "issuer" && !k.ends_with("_endpoint") && k != "jwks_uri");
        assert_eq!(Value::Object(claims), expected, "{path}");
    }
}

/// The error, if any, the authorization endpoint sends a fresh (signed-out) browser back with for `pairs`.
async fn authorize_error(app: &TestApp, pairs: &[(&str, &str)]) -> Option<String> {
    let url = format!("{}?{}", app.url("/ap/oa"), form_body(pairs));
    match app.browser().open(&url).await {
        Step::LeftTo(back) => Step::param(&back, "error").or_else(|| {
            url::form_urlencoded::parse(back.fragment().unwrap_or("").as_bytes())
                .find(|(k, _)| k == "error")
                .map(|(_, v)| v.into_owned())
        }),
        Step::Page { status, url, html } => {
            assert_eq!(status, 200, "{pairs:?} ended at {url}:\n{html}");
            None
        }
    }
}

/// Each value the discovery documents advertise is read from the documents and tried at the endpoint that uses
/// it: every scope, response type, response mode, PKCE method and prompt value is accepted at `/ap/oa`, and every
/// grant type at the token endpoint (it may fail for want of a code or a secret, never as unsupported). Values
/// that are not advertised are refused the same way, so the checks can tell the two apart.
#[tokio::test]
async fn every_advertised_value_is_accepted_where_it_is_used() {
    let app = spawn_app().await;
    let rp = app
        .register_app(|i| {
            i.features.insert(Feature::Implicit);
            i.features.insert(Feature::ClientCredentials);
            i.features.insert(Feature::Device);
        })
        .await;
    let refused_at_authorize = [
        "invalid_request",
        "invalid_scope",
        "unsupported_response_type",
    ];
    let base = |extra: &[(&'static str, String)]| {
        let mut pairs: Vec<(&str, String)> = vec![
            ("client_id", rp.client_id.clone()),
            ("redirect_uri", rp.redirect_uri.clone()),
            ("state", "s".into()),
            ("nonce", "n".into()),
        ];
        for (k, v) in extra {
            pairs.retain(|(name, _)| name != k);
            pairs.push((k, v.clone()));
        }
        for (k, v) in [
            ("response_type", "code"),
            ("scope", "profile"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ] {
            if !pairs.iter().any(|(name, _)| *name == k) {
                pairs.push((k, v.into()));
            }
        }
        pairs
    };
    let values = |meta: &Value, key: &str| -> Vec<String> {
        meta[key]
            .as_array()
            .unwrap_or_else(|| panic!("{key} is advertised as a list"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    for (path, meta) in discovery_documents(&app).await {
        let mut tried = Vec::new();
        for (key, param) in [
            ("scopes_supported", "scope"),
            ("response_types_supported", "response_type"),
            ("response_modes_supported", "response_mode"),
            ("code_challenge_methods_supported", "code_challenge_method"),
            ("prompt_values_supported", "prompt"),
        ] {
            for value in values(&meta, key) {
                let mut extra = vec![(param, value.clone())];
                if param == "response_type" && value == "token" {
                    // The implicit grant carries no PKCE and answers in the fragment.
                    extra.push(("response_mode", "fragment".into()));
                }
                if param == "response_mode" && value == "query" {
                    extra.push(("response_type", "code".into()));
                }
                let pairs = base(&extra);
                let mut pairs: Vec<(&str, &str)> =
                    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
                if param == "response_type" && value == "token" {
                    pairs.retain(|(k, _)| !k.starts_with("code_challenge"));
                }
                let error = authorize_error(&app, &pairs).await;
                assert!(
                    error
                        .as_deref()
                        .is_none_or(|e| !refused_at_authorize.contains(&e)),
                    "{path}: {key} advertises {value:?}, but /ap/oa refuses it: {error:?}"
                );
                tried.push(key);
            }
        }
        for key in [
            "scopes_supported",
            "response_types_supported",
            "response_modes_supported",
            "code_challenge_methods_supported",
            "prompt_values_supported",
        ] {
            assert!(tried.contains(&key), "{path}: nothing advertised in {key}");
        }
        for grant in values(&meta, "grant_types_supported") {
            if grant == "implicit" {
                continue; // Not a token-endpoint grant: `response_type=token` above.
            }
            let a = post_form(
                &app,
                "/auth/o2/token",
                &[("grant_type", grant.as_str()), ("client_id", &rp.client_id)],
            )
            .await;
            assert_ne!(
                a.json["error"], "unsupported_grant_type",
                "{path}: grant_types_supported advertises {grant}, the token endpoint refuses it"
            );
        }
    }

    // Values nobody advertises are refused in the way the checks above look for.
    let pairs = base(&[("scope", "bogus".into())]);
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        authorize_error(&app, &pairs).await.as_deref(),
        Some("invalid_scope")
    );
    let pairs = base(&[("code_challenge_method", "S512".into())]);
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let error = authorize_error(&app, &pairs).await;
    assert!(
        error
            .as_deref()
            .is_some_and(|e| refused_at_authorize.contains(&e)),
        "an unknown PKCE method is refused: {error:?}"
    );
    let a = post_form(
        &app,
        "/auth/o2/token",
        &[("grant_type", "password"), ("client_id", &rp.client_id)],
    )
    .await;
    assert_eq!(a.json["error"], "unsupported_grant_type", "{}", a.json);
}

#[tokio::test]
async fn login_hint_prefills_the_sign_in_form() {
    let app = spawn_app().await;
    let rp = app.register_app(|_| {}).await;
    let url = format!(
        "{}?client_id={}&response_type=code&scope=openid&redirect_uri={}&nonce=n1&login_hint=hint%40example.com",
        app.url("/oauth2/authorize"),
        rp.client_id,
        rp.redirect_uri
    );
    let (status, page_url, html) = app.browser().open(&url).await.page();
    assert_eq!(status, 200);
    assert!(page_url.contains("/ap/signin?return_to="), "{page_url}");
    assert!(html.contains("value=\"hint@example.com\""), "{html}");
    // Without a hint the field is empty.
    let plain = url.replace("&login_hint=hint%40example.com", "");
    let (_, _, html) = app.browser().open(&plain).await.page();
    assert!(!html.contains("hint@example.com"));
}

// ---------------------------------------------------------------------------------------------------------------
// The default algorithm, and keys published before they sign (SPEC 3)

/// What a relying party learns from discovery (the JWKS included), fetched now and kept.
async fn discover(app: &TestApp) -> CoreProviderMetadata {
    CoreProviderMetadata::discover_async(IssuerUrl::new(app.base.clone()).unwrap(), &http_client())
        .await
        .expect("discovery")
}

/// Signs `email` in to `rp` with the `openidconnect` crate as a relying party that knows only `provider` (discovery
/// and the JWKS as it fetched them, perhaps before `rp` existed), and verifies the first ID token with those keys:
/// with the crate's default verifier, or allowing only `algs`. Returns the outcome and the token's `alg` and `kid`.
async fn first_sign_in(
    app: &TestApp,
    provider: CoreProviderMetadata,
    rp: &RegisteredApp,
    email: &str,
    algs: Option<Vec<CoreJwsSigningAlgorithm>>,
) -> (
    Result<CoreIdTokenClaims, ClaimsVerificationError>,
    String,
    String,
) {
    app.create_user(email, "First Sign-In", None).await;
    let http = http_client();
    let client = CoreClient::from_provider_metadata(
        provider,
        ClientId::new(rp.client_id.clone()),
        Some(ClientSecret::new(rp.secret.clone().unwrap())),
    )
    .set_redirect_uri(RedirectUrl::new(rp.redirect_uri.clone()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    let back = login_through(&app.browser(), url.as_str(), email).await;
    let token = client
        .exchange_code(AuthorizationCode::new(Step::param(&back, "code").unwrap()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");
    let id_token = token.id_token().expect("an ID token for openid");
    let raw = id_token.to_string();
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            raw.split('.').next().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let mut id_verifier = client.id_token_verifier();
    if let Some(algs) = algs {
        id_verifier = id_verifier.set_allowed_algs(algs);
    }
    (
        id_token.claims(&id_verifier, &nonce).cloned(),
        header["alg"].as_str().unwrap().to_owned(),
        kid_of(&raw),
    )
}

#[tokio::test]
async fn the_first_start_publishes_keys_for_every_algorithm_that_sign_at_once() {
    for (engine, db) in each_db().await {
        let before = latchkey::app::Clock::default().now();
        let app = spawn_app_on(std::sync::Arc::new(db)).await;
        let set = jwks(&app).await;
        let mut algs: Vec<&str> = set["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["alg"].as_str().unwrap())
            .collect();
        algs.sort();
        assert_eq!(algs, ["ES256", "EdDSA", "RS256"], "{engine}: {set}");
        // A new installation's first keys sign at once: no JWKS was ever served without them.
        for alg in SigningAlg::ALL {
            let from = app.state.keys.signs_from(alg).unwrap();
            assert!(
                before <= from && from <= app.state.clock.now(),
                "{engine}: {alg:?} signs from {from}"
            );
        }
    }
}

#[tokio::test]
async fn a_relying_party_that_loaded_the_jwks_before_an_rs256_app_existed_verifies_its_first_id_token(
) {
    let app = spawn_app().await;
    // The relying party (one library instance serving several apps, say) fetched discovery and the JWKS first.
    let provider = discover(&app).await;
    let rp = app
        .register_app(|i| i.id_token_alg = SigningAlg::Rs256)
        .await;
    let (claims, alg, kid) = first_sign_in(
        &app,
        provider,
        &rp,
        "first-rs256@example.com",
        Some(vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]),
    )
    .await;
    assert_eq!(alg, "RS256");
    let claims = claims.unwrap_or_else(|e| {
        panic!("the first RS256 ID token ({kid}) against the JWKS fetched before the app: {e}")
    });
    assert_eq!(claims.audiences()[0].as_str(), rp.client_id);
}

#[tokio::test]
async fn a_default_app_signs_what_a_relying_party_with_default_settings_accepts() {
    let app = spawn_app().await;
    let rp = app.register_app(|_| {}).await;
    let stored = app
        .store()
        .find_client(&rp.client_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.id_token_alg, SigningAlg::Rs256, "RS256 by default");
    // The `openidconnect` crate's default `CoreIdTokenVerifier` accepts RS256 only (OIDC Core 3.1.3.7).
    let (claims, alg, _) =
        first_sign_in(&app, discover(&app).await, &rp, "default@example.com", None).await;
    assert_eq!(alg, "RS256");
    let claims = claims.expect("the default verifier accepts a default app's ID token");
    assert_eq!(claims.issuer().as_str(), app.base);
}

#[tokio::test]
async fn an_installation_without_an_rs256_key_publishes_one_at_once_and_signs_with_it_after_the_lead(
) {
    use latchkey::flows::registration;
    for (engine, db) in each_db().await {
        let db = std::sync::Arc::new(db);
        // A database as an earlier version left it: signing keys for ES256 and EdDSA only.
        let store = latchkey::app::App::open_store(&test_config(&db.url))
            .await
            .unwrap();
        let master = latchkey::seal::MasterKey::parse(TEST_MASTER_KEY).unwrap();
        let then = latchkey::app::Clock::default().now() - 600;
        for alg in [SigningAlg::Es256, SigningAlg::EdDsa] {
            let key = latchkey::keys::new_record(alg, then, then, &master)
                .await
                .unwrap();
            latchkey::store::KeyStore::insert_signing_key(&store, &key)
                .await
                .unwrap();
        }
        let before = latchkey::app::Clock::default().now();
        let app = spawn_app_over(db.clone(), std::sync::Arc::new(store)).await;
        let start = app.state.clock.now();
        let lead = latchkey::keys::PUBLISH_LEAD_SECS;

        // Its next start publishes an RS256 key at once, to sign only once every cached JWKS has it.
        let provider = discover(&app).await;
        let set = jwks(&app).await;
        assert!(
            set["keys"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["alg"] == "RS256"),
            "{engine}: {set}"
        );
        let from = app.state.keys.signs_from(SigningAlg::Rs256).unwrap();
        assert!(
            before + lead <= from && from <= start + lead,
            "{engine}: RS256 signs from {from}, started at {start}"
        );

        // Meanwhile an app cannot choose RS256 (it would sign with a kid a relying party may not have yet): a clear
        // refusal; ES256 apps are unaffected.
        let input = registration::AppInput {
            id_token_alg: SigningAlg::Rs256,
            ..default_app_input()
        };
        let refused = registration::register(&app.state, &input)
            .await
            .unwrap()
            .into_result()
            .unwrap_err();
        assert!(
            refused.len() == 1 && refused[0].contains("RS256") && refused[0].contains("try again"),
            "{engine}: {refused:?}"
        );
        let es256 = app
            .register_app(|i| i.id_token_alg = SigningAlg::Es256)
            .await;
        let es256 = app
            .store()
            .find_client(&es256.client_id)
            .await
            .unwrap()
            .unwrap();
        let switched = registration::update(&app.state, &es256, &input)
            .await
            .unwrap()
            .into_result()
            .unwrap_err();
        assert_eq!(
            switched[0].field,
            registration::Field::IdTokenAlg,
            "{engine}: {switched:?}"
        );

        // Once the key has been published for the lead, an RS256 app signs with it, and the relying party that
        // fetched the JWKS at the start verifies its first ID token.
        app.state.clock.advance(lead);
        let rp = app
            .register_app(|i| i.id_token_alg = SigningAlg::Rs256)
            .await;
        let (claims, alg, kid) = first_sign_in(
            &app,
            provider,
            &rp,
            &format!("upgrade-{engine}@example.com"),
            None,
        )
        .await;
        assert_eq!(alg, "RS256", "{engine}");
        claims.unwrap_or_else(|e| {
            panic!("{engine}: {kid} against the JWKS fetched at the start: {e}")
        });
    }
}
