//! Client authentication at the token endpoint (RFC 6749 2.3; SPEC 2.2): a secret in the body or HTTP Basic,
//! compared as keyed hashes in constant time, with the previous secret honoured during a rotation's grace
//! period; or no secret at all, which only some grants accept.

use crate::app::AppState;
use crate::flows::error::Failure;
use crate::store::Client;
use latchkey_core::error::OAuthError;
use latchkey_core::ids;
use latchkey_core::params::Params;
use latchkey_core::secret::{digest_eq, Kind};
use latchkey_core::token_request::{self, ClientAuth};

/// The client making a token request, and whether it proved it holds the secret.
pub struct Caller {
    pub client: Client,
    pub authenticated: bool,
}

pub async fn authenticate(state: &AppState, auth: &ClientAuth) -> Result<Caller, Failure> {
    if !ids::is_client_id(&auth.client_id) {
        return Err(OAuthError::invalid_client("client_id").into());
    }
    let client = state
        .store
        .find_client(&auth.client_id)
        .await?
        .ok_or_else(|| OAuthError::invalid_client("client_id"))?;
    let authenticated = match (&auth.secret, &client.secret_hash) {
        (None, _) => false,
        (Some(_), None) => return Err(OAuthError::invalid_client("client_secret").into()),
        (Some(secret), Some(current)) => {
            let presented = state.hasher.token(Kind::ClientSecret, secret.expose());
            let previous_ok = match (&client.prev_secret_hash, client.prev_secret_expires_at) {
                (Some(prev), Some(until)) => {
                    until > state.clock.now() && digest_eq(prev, &presented)
                }
                _ => false,
            };
            if !(digest_eq(current, &presented) || previous_ok) {
                return Err(OAuthError::invalid_client("client_secret").into());
            }
            true
        }
    };
    Ok(Caller {
        client,
        authenticated,
    })
}

/// The client of a request that must name one (introspection, revocation), from the body or HTTP Basic exactly as
/// at the token endpoint.
pub async fn from_request(
    state: &AppState,
    params: &Params,
    authorization: Option<&str>,
) -> Result<Caller, Failure> {
    let auth = token_request::client_auth(params, authorization, false)?
        .ok_or_else(|| OAuthError::invalid_client("client_id"))?;
    authenticate(state, &auth).await
}
