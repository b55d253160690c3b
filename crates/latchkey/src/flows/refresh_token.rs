//! The refresh token grant (RFC 6749 6, RFC 9700 4.14.2; SPEC 2.2): every use rotates the token; an old token
//! presented again outside the grace window revokes its whole family. For an app with LWA-style reusable refresh
//! tokens the token is not rotated: the response repeats it and it stays valid until revoked.

use super::client_auth::Caller;
use super::{mint_grant, GrantSubject, TokenResponse};
use crate::app::AppState;
use crate::flows::error::Failure;
use crate::metrics::GrantLabels;
use crate::store::Rotation;
use latchkey_core::client::Feature;
use latchkey_core::error::OAuthError;
use latchkey_core::refresh::{self, Verdict, REUSE_GRACE_SECS};
use latchkey_core::scope::Scopes;
use latchkey_core::secret::{Kind, Secret};

pub async fn refresh(
    state: &AppState,
    caller: &Caller,
    token: &Secret,
    scope: Option<&str>,
) -> Result<TokenResponse, Failure> {
    let client = &caller.client;
    let now = state.clock.now();
    let old_hash = state.hasher.token(Kind::RefreshToken, token.expose());
    let stored = state.store.find_refresh_token(&old_hash).await?;
    // A confidential app must authenticate, except for tokens it got through a device, which cannot keep a
    // secret (SPEC 2.3).
    if client.policy.is_confidential() && !caller.authenticated {
        let secretless = match &stored {
            Some(s) if s.client_id == client.policy.client_id => {
                state.store.secretless_refresh(&s.family_id).await?
            }
            _ => false,
        };
        if !secretless {
            return Err(OAuthError::invalid_client("client_secret").into());
        }
    }
    let stored = stored.ok_or_else(|| OAuthError::grant("refresh_token"))?;
    // Core's rule decides (`refresh::decide`); the store executes it atomically, and applies the same rule to what
    // it finds if the token changed meanwhile (a parallel rotation, or a reuse).
    let verdict = refresh::decide(
        stored.status,
        &stored.client_id,
        &client.policy.client_id,
        client.policy.allows(Feature::ReusableRefresh),
        now,
        REUSE_GRACE_SECS,
    )?;
    let scopes = refresh::narrow(
        &Scopes::from_stored(&stored.scopes),
        scope,
        &state.known_scopes,
    )?
    .to_string_sorted();
    let keep = match verdict {
        Verdict::RevokeFamily => {
            // A rotated state is final, so acting on it as read is safe: no new tokens, the family revoked.
            state
                .store
                .revoke_refresh_family(&old_hash, &client.policy.client_id, now)
                .await?;
            return Err(reuse_detected(client));
        }
        Verdict::Keep => true,
        Verdict::Rotate => false,
    };
    let (grant, response) = mint_grant(
        state,
        stored.family_id.clone(),
        &GrantSubject {
            client_id: &client.policy.client_id,
            app_id: &client.app_id,
            user_id: &stored.user_id,
            subject: &stored.subject,
            scopes: &scopes,
            // A kept token needs no successor.
            refresh_scopes: (!keep).then_some(stored.scopes.as_str()),
            auth_time: stored.auth_time,
            nonce: None,
            id_token_alg: client.id_token_alg,
        },
        now,
    )
    .await?;
    if keep {
        if !state
            .store
            .refresh_without_rotation(&old_hash, &grant, now)
            .await?
        {
            return Err(OAuthError::grant("refresh_token").into());
        }
        state
            .metrics
            .tokens_issued
            .get_or_create(&GrantLabels {
                grant: "refresh_token",
            })
            .inc();
        let mut response = response;
        response.refresh_token = Some(token.expose().to_owned());
        return Ok(response);
    }
    match state
        .store
        .rotate_refresh_token(&old_hash, &grant, now, REUSE_GRACE_SECS)
        .await?
    {
        Rotation::Rotated => {
            state
                .metrics
                .tokens_issued
                .get_or_create(&GrantLabels {
                    grant: "refresh_token",
                })
                .inc();
            Ok(response)
        }
        Rotation::ReuseDetected => Err(reuse_detected(client)),
        Rotation::Refused => Err(OAuthError::grant("refresh_token").into()),
    }
}

/// The answer to a reused refresh token, whose family is now revoked.
fn reuse_detected(client: &crate::store::Client) -> Failure {
    tracing::warn!(client_id = %client.policy.client_id, "refresh token reused; its family is revoked");
    OAuthError::grant("refresh_token").into()
}
