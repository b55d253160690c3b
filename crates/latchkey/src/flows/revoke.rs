//! `POST /oauth2/revoke` (RFC 7009; SPEC 3): a client ends one of its tokens. A refresh token ends its whole grant
//! (every access and refresh token of its family); an access token ends only itself. Unknown tokens, and other
//! clients' tokens, are answered like success and change nothing (RFC 7009 2.2: the client cannot act on them,
//! and it learns nothing about them).

use super::client_auth;
use super::introspect::{classify, token_param, Presented};
use crate::app::AppState;
use crate::flows::error::Failure;
use latchkey_core::error::OAuthError;
use latchkey_core::params::Params;

pub async fn revoke(
    state: &AppState,
    params: &Params,
    authorization: Option<&str>,
) -> Result<(), Failure> {
    let caller = client_auth::from_request(state, params, authorization).await?;
    let token = token_param(params)?;
    let client_id = caller.client.policy.client_id.as_str();
    let presented = classify(state, token);
    // A confidential app authenticates, except for a device's refresh token, which it holds without the secret
    // (SPEC 2.3), as the refresh grant allows. Public apps name themselves only (RFC 7009 2.1).
    if caller.client.policy.is_confidential() && !caller.authenticated {
        let secretless = match &presented {
            Presented::Refresh(hash) => match state.store.find_refresh_token(hash).await? {
                Some(r) if r.client_id == client_id => {
                    state.store.secretless_refresh(&r.family_id).await?
                }
                _ => false,
            },
            _ => false,
        };
        if !secretless {
            return Err(OAuthError::invalid_client("client_secret").into());
        }
    }
    let now = state.clock.now();
    let revoked = match presented {
        Presented::Access(hash) => {
            state
                .store
                .revoke_access_token(&hash, client_id, now)
                .await?
        }
        Presented::Refresh(hash) => {
            state
                .store
                .revoke_refresh_family(&hash, client_id, now)
                .await?
        }
        Presented::Unknown => false,
    };
    if revoked {
        tracing::info!(client_id, "token revoked at the client's request");
    }
    Ok(())
}
