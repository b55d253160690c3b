//! `POST /oauth2/introspect` (RFC 7662; SPEC 3): a client, authenticated as at the token endpoint and holding a
//! secret, asks whether a token is active. It sees only its own tokens: another client's, like an unknown,
//! expired or revoked one, is `{"active": false}`.

use super::client_auth;
use crate::app::AppState;
use crate::flows::error::Failure;
use latchkey_core::error::OAuthError;
use latchkey_core::params::Params;
use latchkey_core::refresh::Status;
use latchkey_core::secret::{Digest, Kind, ACCESS_TOKEN_PREFIX, REFRESH_TOKEN_PREFIX};
use serde::Serialize;

/// The longest token we could have issued, with room to spare.
const MAX_TOKEN_LEN: usize = 128;

/// What a presented token can be, told by its prefix (the prefixes are disjoint, so `token_type_hint` adds
/// nothing and is only checked for duplicates).
pub enum Presented {
    Access(Digest),
    Refresh(Digest),
    /// Not one of ours in form: no lookup needed.
    Unknown,
}

pub fn classify(state: &AppState, token: &str) -> Presented {
    if token.len() > MAX_TOKEN_LEN {
        Presented::Unknown
    } else if token.starts_with(ACCESS_TOKEN_PREFIX) {
        Presented::Access(state.hasher.token(Kind::AccessToken, token))
    } else if token.starts_with(REFRESH_TOKEN_PREFIX) {
        Presented::Refresh(state.hasher.token(Kind::RefreshToken, token))
    } else {
        Presented::Unknown
    }
}

/// The `token` parameter of an introspection or revocation request, and its optional hint (any value accepted,
/// RFC 7009 2.1, RFC 7662 2.1).
pub fn token_param(params: &Params) -> Result<&str, OAuthError> {
    params.get("token_type_hint")?;
    params.require("token")
}

/// An introspection response (RFC 7662 2.2).
#[derive(Debug, Serialize, Default)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
}

pub async fn introspect(
    state: &AppState,
    params: &Params,
    authorization: Option<&str>,
) -> Result<Introspection, Failure> {
    let caller = client_auth::from_request(state, params, authorization).await?;
    if !caller.authenticated {
        return Err(OAuthError::invalid_client("client_secret").into());
    }
    let token = token_param(params)?;
    let own = caller.client.policy.client_id;
    let inactive = Introspection::default();
    match classify(state, token) {
        Presented::Access(hash) => {
            let found = state
                .store
                .find_access_token(&hash, state.clock.now())
                .await?;
            Ok(match found {
                Some(t) if t.client_id == own => Introspection {
                    active: true,
                    // An app's own token may carry no scope: then none is stated (RFC 7662 2.2).
                    scope: Some(t.scopes).filter(|s| !s.is_empty()),
                    token_type: Some("Bearer"),
                    exp: Some(t.expires_at),
                    iat: Some(t.issued_at),
                    sub: t.subject,
                    aud: Some(t.client_id.clone()),
                    client_id: Some(t.client_id),
                    iss: Some(state.issuer.clone()),
                },
                _ => inactive,
            })
        }
        Presented::Refresh(hash) => {
            let found = state.store.find_refresh_token(&hash).await?;
            Ok(match found {
                Some(r) if r.client_id == own && r.status == Status::Active => Introspection {
                    active: true,
                    scope: Some(r.scopes),
                    client_id: Some(r.client_id),
                    token_type: Some("refresh_token"),
                    sub: Some(r.subject),
                    iss: Some(state.issuer.clone()),
                    ..Introspection::default()
                },
                _ => inactive,
            })
        }
        Presented::Unknown => Ok(inactive),
    }
}
