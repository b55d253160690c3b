//! `POST /auth/o2/create/codepair` (LWA) and `POST /oauth2/device_authorization` (RFC 8628 3.1-3.2; SPEC 2.3): a
//! device asks for a code pair to show its customer.

use super::client_auth;
use crate::app::AppState;
use crate::flows::error::Failure;
use crate::limits::{self, Bucket};
use crate::store::{Created, NewDeviceCode};
use latchkey_core::client::Feature;
use latchkey_core::device::{self, Endpoint};
use latchkey_core::error::{ErrorCode, OAuthError};
use latchkey_core::params::Params;
use latchkey_core::secret::{self, Kind};
use latchkey_core::token_request;
use serde::Serialize;

/// The code pair (both shapes carry the same fields; RFC 8628 names them so, LWA adds the complete URI too).
#[derive(Debug, Serialize)]
pub struct CodePair {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: i64,
}

pub async fn create(
    state: &AppState,
    params: &Params,
    authorization: Option<&str>,
    endpoint: Endpoint,
    client_ip: &str,
) -> Result<CodePair, Failure> {
    let auth = token_request::client_auth(params, authorization, false)?
        .ok_or_else(|| OAuthError::missing("client_id"))?;
    let caller = client_auth::authenticate(state, &auth).await?;
    if !caller.client.policy.allows(Feature::Device) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "The client is not authorized to use code-based linking : client_id",
        )
        .into());
    }
    let request = device::parse_codepair(params, endpoint, &state.known_scopes)?;
    // Each pair is a stored row: counted per app and address before it is made (SPEC 4).
    let bucket = [Bucket::new(
        format!("codepair:{}|{client_ip}", caller.client.policy.client_id),
        state.config.codepair_limit,
        state.config.codepair_window,
    )];
    if let Some(wait) = limits::hit(state, &bucket).await? {
        return Err(Failure::Limited(wait));
    }
    let now = state.clock.now();
    let device_code = secret::mint(&mut rand::thread_rng(), "");
    // A user code is drawn again in the unlikely event that a live pair already has it.
    for _ in 0..8 {
        let user_code = device::new_user_code(&mut rand::thread_rng());
        let stored = NewDeviceCode {
            device_hash: state.hasher.token(Kind::DeviceCode, device_code.expose()),
            user_code_hash: state.hasher.token(Kind::UserCode, &user_code),
            client_id: caller.client.policy.client_id.clone(),
            scopes: request.scopes.to_string_sorted(),
            optional_scopes: request.optional_scopes.join(" "),
            interval: device::DEFAULT_INTERVAL_SECS,
            created_at: now,
            expires_at: now + device::DEVICE_CODE_TTL_SECS,
        };
        if state.store.insert_device_code(&stored).await? == Created::Created {
            let shown = device::display(&user_code);
            let verification_uri = format!("{}/code", state.issuer);
            return Ok(CodePair {
                device_code: device_code.expose().to_owned(),
                verification_uri_complete: format!("{verification_uri}?user_code={shown}"),
                verification_uri,
                user_code: shown,
                expires_in: device::DEVICE_CODE_TTL_SECS,
                interval: device::DEFAULT_INTERVAL_SECS,
            });
        }
    }
    Err(OAuthError::new(
        ErrorCode::TemporarilyUnavailable,
        "No user code is free right now; try again",
    )
    .into())
}
