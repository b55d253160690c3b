//! The client credentials grant (RFC 6749 4.4; SPEC 1, 2.2): for confidential apps that enabled it; an access
//! token that acts for the app itself, with no refresh token. It carries only app scopes the operator allowed the
//! app (a customer scope is `invalid_scope`: there is no customer), and states them in `scope` when there are any.

use super::client_auth::Caller;
use super::TokenResponse;
use crate::app::AppState;
use crate::flows::error::Failure;
use crate::metrics::GrantLabels;
use crate::store::NewAccessToken;
use latchkey_core::client::Feature;
use latchkey_core::error::{ErrorCode, OAuthError};
use latchkey_core::scope;
use latchkey_core::secret::{self, Kind, ACCESS_TOKEN_PREFIX};

pub async fn issue(
    state: &AppState,
    caller: &Caller,
    scope: Option<&str>,
) -> Result<TokenResponse, Failure> {
    let client = &caller.client;
    if !client.policy.is_confidential() || !caller.authenticated {
        return Err(OAuthError::invalid_client("client_secret").into());
    }
    if !client.policy.allows(Feature::ClientCredentials) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "The client is not authorized to use this grant : grant_type",
        )
        .into());
    }
    // The scopes asked for, or when none were, every app scope the app is allowed (RFC 6749 3.3's default).
    // A token with no scope at all states none: an empty `scope` would read as one empty scope (RFC 6749 5.1
    // lets it be left out); tokeninfo reports it as "" and introspection leaves it out too.
    let scopes = scope::client_credentials_scopes(
        scope,
        &state.known_scopes,
        &state.app_scopes,
        &client.app_scopes,
    )?
    .to_string_sorted();
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
        scope: Some(scopes).filter(|s| !s.is_empty()),
        id_token: None,
    })
}
