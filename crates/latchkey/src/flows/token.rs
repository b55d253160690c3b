//! `POST /auth/o2/token` and `/oauth2/token` (RFC 6749 3.2; SPEC 2.2): parse the request into one grant,
//! authenticate the client, and hand over to the grant's own flow.

use super::{
    authorization_code, client_auth, client_credentials, device_code, refresh_token, TokenResponse,
};
use crate::app::AppState;
use crate::flows::error::Failure;
use latchkey_core::error::OAuthError;
use latchkey_core::params::Params;
use latchkey_core::token_request::{self, Grant};

pub async fn token(
    state: &AppState,
    params: &Params,
    authorization: Option<&str>,
) -> Result<TokenResponse, Failure> {
    let request = token_request::parse(params, authorization)?;
    let caller = match &request.client {
        Some(auth) => Some(client_auth::authenticate(state, auth).await?),
        None => None,
    };
    let required = |caller: Option<client_auth::Caller>| {
        caller.ok_or_else(|| Failure::from(OAuthError::invalid_client("client_id")))
    };
    match request.grant {
        Grant::DeviceCode {
            device_code,
            user_code,
            form,
        } => {
            device_code::poll(
                state,
                caller.as_ref(),
                &device_code,
                user_code.as_deref(),
                form,
            )
            .await
        }
        Grant::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
        } => {
            let caller = required(caller)?;
            authorization_code::exchange(
                state,
                &caller,
                &code,
                redirect_uri.as_deref(),
                code_verifier.as_deref(),
            )
            .await
        }
        Grant::RefreshToken {
            refresh_token,
            scope,
        } => {
            let caller = required(caller)?;
            refresh_token::refresh(state, &caller, &refresh_token, scope.as_deref()).await
        }
        Grant::ClientCredentials { scope } => {
            let caller = required(caller)?;
            client_credentials::issue(state, &caller, scope.as_deref()).await
        }
    }
}
