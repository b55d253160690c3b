//! One file per endpoint, named after the spec: parse → load → decide → commit → respond. The protocol decisions
//! are `latchkey_core` functions; these files load what they need, call them, and commit the result.

pub mod account;
pub mod activity;
pub mod allowed_apps;
pub mod authorization_code;
pub mod authorize;
pub mod client_auth;
pub mod client_credentials;
pub mod code_entry;
pub mod codepair;
pub mod codes;
pub mod developer;
pub mod device_code;
pub mod discovery;
pub mod error;
pub mod introspect;
pub mod logo;
pub mod profile;
pub mod recovery;
pub mod refresh_token;
pub mod registration;
pub mod revoke;
pub mod sdk;
pub mod signin;
pub mod token;
pub mod tokeninfo;
pub mod userinfo;
pub mod verify;

use crate::app::AppState;
use crate::store::{NewAccessToken, NewGrant, NewRefresh, StoreError};
use latchkey_core::oidc::{self, IdTokenClaims, SigningAlg};
use latchkey_core::secret::{self, Kind, ACCESS_TOKEN_PREFIX, REFRESH_TOKEN_PREFIX};
use serde::Serialize;

/// A signed-in session (SPEC 2.6) and the keyed hash it is stored under: who a browser flow acts for.
pub struct SignedIn {
    pub id_hash: latchkey_core::secret::Digest,
    pub session: crate::store::Session,
}

/// A successful token response (RFC 6749 5.1; SPEC 2.2).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// What a customer grant is for: who, which app, which scopes, since when.
pub struct GrantSubject<'a> {
    pub client_id: &'a str,
    pub app_id: &'a str,
    pub user_id: &'a str,
    pub subject: &'a str,
    /// Scopes of the access token.
    pub scopes: &'a str,
    /// Scopes the refresh token keeps (the whole grant); `None`: no refresh token.
    pub refresh_scopes: Option<&'a str>,
    pub auth_time: i64,
    /// The authorization request's `nonce`, echoed in the ID token (none on refresh).
    pub nonce: Option<&'a str>,
    /// How the app's ID tokens are signed.
    pub id_token_alg: SigningAlg,
}

/// Mints an access token (and a refresh token if asked, and an ID token when `openid` was granted), returning
/// the stored form and the response.
pub async fn mint_grant(
    state: &AppState,
    family_id: String,
    g: &GrantSubject<'_>,
    now: i64,
) -> Result<(NewGrant, TokenResponse), StoreError> {
    let (access, refresh) = {
        let mut rng = rand::thread_rng();
        let access = secret::mint(&mut rng, ACCESS_TOKEN_PREFIX);
        let refresh = g
            .refresh_scopes
            .map(|scopes| (secret::mint(&mut rng, REFRESH_TOKEN_PREFIX), scopes));
        (access, refresh)
    };
    let ttl = state.config.access_token_ttl;
    let grant = NewGrant {
        family_id,
        access: NewAccessToken {
            token_hash: state.hasher.token(Kind::AccessToken, access.expose()),
            client_id: g.client_id.to_owned(),
            app_id: g.app_id.to_owned(),
            user_id: Some(g.user_id.to_owned()),
            subject: Some(g.subject.to_owned()),
            scopes: g.scopes.to_owned(),
            issued_at: now,
            expires_at: now + ttl,
        },
        refresh: refresh.as_ref().map(|(token, scopes)| NewRefresh {
            token_hash: state.hasher.token(Kind::RefreshToken, token.expose()),
            scopes: (*scopes).to_owned(),
        }),
        auth_time: g.auth_time,
    };
    let id_token = if g.scopes.split(' ').any(|s| s == "openid") {
        let released = latchkey_core::scope::Scopes::from_stored(g.scopes).released();
        // Only grants that release a claim read the account: the customer as they are now.
        let user = if released.name || released.email {
            state.store.find_user(g.user_id).await?
        } else {
            None
        };
        let claims = IdTokenClaims {
            name: user
                .as_ref()
                .filter(|_| released.name)
                .map(|u| u.name.clone()),
            email: user
                .as_ref()
                .filter(|u| released.email && u.email_verified)
                .map(|u| u.email.clone()),
            email_verified: user
                .as_ref()
                .filter(|_| released.email)
                .map(|u| u.email_verified),
            iss: state.issuer.clone(),
            sub: g.subject.to_owned(),
            aud: g.client_id.to_owned(),
            exp: now + state.config.id_token_ttl,
            iat: now,
            auth_time: g.auth_time,
            nonce: g.nonce.map(str::to_owned),
            at_hash: oidc::at_hash(access.expose(), g.id_token_alg),
        };
        Some(
            state
                .keys
                .sign(state.store.as_ref(), g.id_token_alg, &claims, now)
                .await?,
        )
    } else {
        None
    };
    let response = TokenResponse {
        access_token: access.expose().to_owned(),
        token_type: "bearer",
        expires_in: ttl,
        refresh_token: refresh.map(|(t, _)| t.expose().to_owned()),
        scope: Some(g.scopes.to_owned()),
        id_token,
    };
    Ok((grant, response))
}
