//! `GET /user/profile` (SPEC 2.5): the customer's profile, only the fields the token's scopes release
//! (`Scopes::released`, the one rule userinfo follows too).

use super::tokeninfo::{invalid_token, token_hash};
use crate::app::AppState;
use crate::flows::error::Failure;
use latchkey_core::error::{ErrorCode, OAuthError};
use latchkey_core::scope::Scopes;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Profile {
    /// The app the token was issued to (for CORS); not part of the answer.
    #[serde(skip)]
    pub client_id: String,
    pub user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
}

pub async fn profile(state: &AppState, token: &str) -> Result<Profile, Failure> {
    let hash = token_hash(state, token)?;
    let found = state
        .store
        .find_token_profile(&hash, state.clock.now())
        .await?
        .ok_or_else(invalid_token)?;
    let scopes = Scopes::from_stored(&found.token.scopes);
    if !scopes.allows_profile() {
        return Err(OAuthError::new(
            ErrorCode::InsufficientScope,
            "The access token does not grant access to the profile : scope",
        )
        .into());
    }
    let released = scopes.released();
    Ok(Profile {
        client_id: found.token.client_id,
        user_id: found.token.subject.unwrap_or_default(),
        name: released.name.then_some(found.name),
        email: found.email.filter(|_| released.email),
        postal_code: found.postal_code.filter(|_| released.postal_code),
    })
}
