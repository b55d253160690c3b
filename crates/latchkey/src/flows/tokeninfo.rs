//! `GET /auth/o2/tokeninfo` (SPEC 2.4): what an access token is, for the app to verify it was issued to it.
//! `exp` is the seconds remaining, as LWA answers. One indexed read; revocation is visible at once.

use crate::app::AppState;
use crate::flows::error::Failure;
use latchkey_core::error::{ErrorCode, OAuthError};
use latchkey_core::secret::{Kind, ACCESS_TOKEN_PREFIX};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct TokenInfo {
    pub iss: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub aud: String,
    pub app_id: String,
    pub exp: i64,
    pub iat: i64,
    pub scope: String,
}

/// `invalid_token`, worded as LWA words it.
pub fn invalid_token() -> OAuthError {
    OAuthError::new(
        ErrorCode::InvalidToken,
        "The request has an invalid parameter : access_token",
    )
}

/// The longest access token we could have issued, with room to spare.
const MAX_TOKEN_LEN: usize = 128;

/// The stored hash of a presented access token, or `invalid_token` if it cannot be one of ours.
pub fn token_hash(
    state: &AppState,
    token: &str,
) -> Result<latchkey_core::secret::Digest, OAuthError> {
    if token.len() > MAX_TOKEN_LEN || !token.starts_with(ACCESS_TOKEN_PREFIX) {
        return Err(invalid_token());
    }
    Ok(state.hasher.token(Kind::AccessToken, token))
}

pub async fn tokeninfo(state: &AppState, token: &str) -> Result<TokenInfo, Failure> {
    let hash = token_hash(state, token)?;
    let now = state.clock.now();
    let t = state
        .store
        .find_access_token(&hash, now)
        .await?
        .ok_or_else(invalid_token)?;
    Ok(TokenInfo {
        iss: state.issuer.clone(),
        user_id: t.subject,
        aud: t.client_id,
        app_id: t.app_id,
        exp: t.expires_at - now,
        iat: t.issued_at,
        scope: t.scopes,
    })
}
