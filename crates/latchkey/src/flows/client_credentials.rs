//! The client credentials grant (RFC 6749 4.4; SPEC 2.2): for confidential apps that enabled it; an access token
//! that acts for the app itself, with no refresh token, and always the granted `scope`.

use super::client_auth::Caller;
use super::TokenResponse;
use crate::app::AppState;
use crate::metrics::GrantLabels;
use crate::store::NewAccessToken;
use crate::web::error::Failure;
use latchkey_core::error::{ErrorCode, OAuthError};
use latchkey_core::scope::Scopes;
use latchkey_core::secret::{self, Kind, ACCESS_TOKEN_PREFIX};

pub async fn issue(
    state: &AppState,
    caller: &Caller,
    scope: Option<&str>,
) -> Result<TokenResponse, Failure> {
    let client = &caller.client;
    if !client.policy.confidential || !caller.authenticated {
        return Err(OAuthError::invalid_client("client_secret").into());
    }
    if !client.policy.allow_client_credentials {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "The client is not authorized to use this grant : grant_type",
        )
        .into());
    }
    // The granted scope is always stated (SPEC 2.2): the scopes asked for, or, when none were, the empty scope.
    // The token acts for the app, not for a customer, so there is no default customer scope to give it;
    // tokeninfo and introspection report the same empty string.
    let scopes = match scope {
        Some(s) => Scopes::parse(s, &state.known_scopes)?.to_string_sorted(),
        None => String::new(),
    };
    let now = state.clock.now();
    let token = secret::mint(&mut rand::thread_rng(), ACCESS_TOKEN_PREFIX);
    state
        .store
        .insert_access_token(&NewAccessToken {
            token_hash: state.hasher.token(Kind::AccessToken, token.expose()),
            client_id: client.policy.client_id.clone(),
            app_id: client.app_id.clone(),
            user_id: None,
            subject: None,
            scopes: scopes.clone(),
            issued_at: now,
            expires_at: now + state.config.access_token_ttl,
        })
        .await?;
    state
        .metrics
        .tokens_issued
        .get_or_create(&GrantLabels {
            grant: "client_credentials",
        })
        .inc();
    Ok(TokenResponse {
        access_token: token.expose().to_owned(),
        token_type: "bearer",
        expires_in: state.config.access_token_ttl,
        refresh_token: None,
        scope: Some(scopes),
        id_token: None,
    })
}
