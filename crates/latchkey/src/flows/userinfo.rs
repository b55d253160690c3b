//! `GET`/`POST /oauth2/userinfo` (OpenID Connect Core 5.3): the standard claims the token's scopes allow, for a
//! token obtained with `openid`. The claims are `sub` (the pairwise user id), and those the token's scopes release
//! (`Scopes::released`): `name` (`profile`), and `email` with `email_verified` (`email` or `profile`). Latchkey does not verify addresses, so `email_verified` is false.

use super::tokeninfo::{invalid_token, token_hash};
use crate::app::AppState;
use crate::flows::error::Failure;
use latchkey_core::error::{ErrorCode, OAuthError};
use latchkey_core::scope::Scopes;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct UserInfo {
    /// The app the token was issued to (for CORS); not part of the answer.
    #[serde(skip)]
    pub client_id: String,
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

pub async fn userinfo(state: &AppState, token: &str) -> Result<UserInfo, Failure> {
    let hash = token_hash(state, token)?;
    let found = state
        .store
        .find_token_profile(&hash, state.clock.now())
        .await?
        .ok_or_else(invalid_token)?;
    let scopes = Scopes::from_stored(&found.token.scopes);
    if !scopes.contains("openid") {
        return Err(OAuthError::new(
            ErrorCode::InsufficientScope,
            "The access token was not issued for OpenID Connect : scope",
        )
        .into());
    }
    let released = scopes.released();
    Ok(UserInfo {
        client_id: found.token.client_id,
        sub: found.token.subject.unwrap_or_default(),
        name: released.name.then_some(found.name),
        // `find_token_profile` gives the address only once it is verified (SPEC 2.8).
        email_verified: released.email.then_some(found.email.is_some()),
        email: found.email.filter(|_| released.email),
    })
}
