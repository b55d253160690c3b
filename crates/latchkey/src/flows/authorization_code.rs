//! The authorization code grant's token leg (RFC 6749 4.1.3, RFC 7636 4.6, RFC 9700 4.2.4; SPEC 2.2). All checks
//! run before the one atomic write that consumes the code and stores the tokens. A code presented again by the app
//! it was issued to revokes everything it issued; presented by anyone else it is only `invalid_grant`.

use super::client_auth::Caller;
use super::{mint_grant, GrantSubject, TokenResponse};
use crate::app::AppState;
use crate::flows::error::Failure;
use crate::metrics::GrantLabels;
use crate::store::Redeemed;
use latchkey_core::code::{check_exchange, replay_revokes};
use latchkey_core::error::OAuthError;
use latchkey_core::ids;
use latchkey_core::secret::{Kind, Secret};

pub async fn exchange(
    state: &AppState,
    caller: &Caller,
    code: &Secret,
    redirect_uri: Option<&str>,
    code_verifier: Option<&str>,
) -> Result<TokenResponse, Failure> {
    let now = state.clock.now();
    let code_hash = state.hasher.token(Kind::AuthCode, code.expose());
    let stored = state
        .store
        .find_auth_code(&code_hash)
        .await?
        .ok_or_else(|| OAuthError::grant("code"))?;
    if stored.used {
        // Revoke only for the code's own app, proved by its secret or the PKCE verifier: a leaked used code in
        // anyone else's hands (another app, or a confidential app's public id without its secret) must not end
        // the customer's grant (SPEC 4).
        if replay_revokes(
            &stored.issued,
            &caller.client.policy.client_id,
            caller.authenticated,
            code_verifier,
        ) {
            state.store.revoke_code_grant(&code_hash, now).await?;
            tracing::warn!(client_id = %caller.client.policy.client_id, "authorization code replayed; its tokens are revoked");
        } else {
            tracing::warn!(client_id = %caller.client.policy.client_id, "used authorization code presented without proof of its app; nothing revoked");
        }
        return Err(OAuthError::grant("code").into());
    }
    check_exchange(
        &stored.issued,
        &caller.client.policy.client_id,
        redirect_uri,
        code_verifier,
        now,
    )?;
    // Without a secret, only a PKCE-bound code proves the caller is the app that asked for it.
    if !caller.authenticated && stored.issued.challenge.is_none() {
        return Err(OAuthError::invalid_client("client_secret").into());
    }
    // Confidential apps that did not authenticate (LWA's browser-side PKCE exchange) get no refresh token.
    let refresh = caller.authenticated || !caller.client.policy.is_confidential();
    let (grant, response) = mint_grant(
        state,
        ids::new_family_id(),
        &GrantSubject {
            client_id: &caller.client.policy.client_id,
            app_id: &caller.client.app_id,
            user_id: &stored.user_id,
            subject: &stored.subject,
            scopes: &stored.scopes,
            refresh_scopes: refresh.then_some(stored.scopes.as_str()),
            auth_time: stored.auth_time,
            nonce: stored.nonce.as_deref(),
            id_token_alg: caller.client.id_token_alg,
        },
        now,
    )
    .await?;
    match state
        .store
        .redeem_auth_code(&code_hash, &grant, now)
        .await?
    {
        Redeemed::Issued => {
            state
                .metrics
                .tokens_issued
                .get_or_create(&GrantLabels {
                    grant: "authorization_code",
                })
                .inc();
            Ok(response)
        }
        Redeemed::AlreadyUsed => Err(OAuthError::grant("code").into()),
    }
}
