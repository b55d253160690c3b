//! The device code grant's polling (RFC 8628 3.4-3.5; SPEC 2.3), in LWA's shape (`grant_type=device_code` with
//! `device_code` and `user_code`) and RFC 8628's. Every poll is recorded in the store, so any node answers any
//! poll and the interval is kept per device code; the tokens are issued exactly once.

use super::client_auth::Caller;
use super::{mint_grant, GrantSubject, TokenResponse};
use crate::app::AppState;
use crate::flows::error::Failure;
use crate::metrics::GrantLabels;
use crate::store::{DeviceDecision, PollOutcome, StoreError};
use latchkey_core::client::Feature;
use latchkey_core::device::{self, PollForm, Refusal, Verdict};
use latchkey_core::error::{ErrorCode, OAuthError};
use latchkey_core::ids;
use latchkey_core::secret::{Kind, Secret};

pub async fn poll(
    state: &AppState,
    caller: Option<&Caller>,
    device_code: &Secret,
    user_code: Option<&str>,
    form: PollForm,
) -> Result<TokenResponse, Failure> {
    let invalid = || Failure::from(device::refusal_error(Refusal::Invalid, form));
    let not_allowed = || {
        Failure::from(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "The client is not authorized to use code-based linking : client_id",
        ))
    };
    if caller.is_some_and(|c| !c.client.policy.allows(Feature::Device)) {
        return Err(not_allowed());
    }
    let user_hash = match user_code {
        Some(typed) => match device::normalize(typed) {
            Some(code) => Some(state.hasher.token(Kind::UserCode, &code)),
            None => return Err(invalid()),
        },
        None => None,
    };
    let now = state.clock.now();
    let device_hash = state.hasher.token(Kind::DeviceCode, device_code.expose());
    let polled = match state
        .store
        .poll_device_code(
            &device_hash,
            caller.map(|c| c.client.policy.client_id.as_str()),
            user_hash.as_ref(),
            now,
        )
        .await?
    {
        PollOutcome::Polled(p) => p,
        PollOutcome::Unknown | PollOutcome::Mismatch => return Err(invalid()),
    };
    // The LWA form names no client: the pair's own app is loaded, and its switch checked, at every poll, so
    // turning the device flow off stops pairs already pending or approved.
    let loaded;
    let client = match caller {
        Some(c) => &c.client,
        None => {
            loaded = state
                .store
                .find_client(&polled.client_id)
                .await?
                .ok_or_else(invalid)?;
            if !loaded.policy.allows(Feature::Device) {
                return Err(not_allowed());
            }
            &loaded
        }
    };
    if let Verdict::Refuse(refusal) = device::decide(&polled.poll, now) {
        return Err(device::refusal_error(refusal, form).into());
    }
    let Some(DeviceDecision::Approve {
        user_id,
        subject,
        scopes,
        auth_time,
    }) = polled.approval
    else {
        return Err(
            StoreError::Corrupt("an approved code pair without its approval".into()).into(),
        );
    };
    let (grant, response) = mint_grant(
        state,
        ids::new_family_id(),
        &GrantSubject {
            client_id: &client.policy.client_id,
            app_id: &client.app_id,
            user_id: &user_id,
            subject: &subject,
            scopes: &scopes,
            refresh_scopes: Some(&scopes),
            auth_time,
            nonce: None,
            id_token_alg: client.id_token_alg,
        },
        now,
    )
    .await?;
    if !state
        .store
        .issue_device_grant(&device_hash, &grant, now)
        .await?
    {
        return Err(invalid());
    }
    state
        .metrics
        .tokens_issued
        .get_or_create(&GrantLabels {
            grant: "device_code",
        })
        .inc();
    Ok(response)
}
