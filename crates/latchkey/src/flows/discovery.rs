//! `/.well-known/openid-configuration` (OpenID Connect Discovery 1.0) and `/.well-known/oauth-authorization-server`
//! (RFC 8414), and `/jwks.json`. The metadata lists only what this server does: every endpoint named here is
//! served and tested.

use crate::app::AppState;
use crate::store::StoreError;
use jsonwebtoken::jwk::JwkSet;
use latchkey_core::oidc::SigningAlg;
use latchkey_core::token_request::DEVICE_CODE_GRANT;
use serde_json::{json, Value};

/// The metadata document; both well-known paths serve the same one.
pub fn metadata(state: &AppState) -> Value {
    let i = &state.issuer;
    let algs: Vec<&str> = SigningAlg::ALL.iter().map(|a| a.as_str()).collect();
    json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/oauth2/authorize"),
        "token_endpoint": format!("{i}/oauth2/token"),
        "device_authorization_endpoint": format!("{i}/oauth2/device_authorization"),
        "introspection_endpoint": format!("{i}/oauth2/introspect"),
        "revocation_endpoint": format!("{i}/oauth2/revoke"),
        "jwks_uri": format!("{i}/jwks.json"),
        "userinfo_endpoint": format!("{i}/oauth2/userinfo"),
        "scopes_supported": state.known_scopes,
        "response_types_supported": ["code", "token"],
        "response_modes_supported": ["query", "fragment"],
        "grant_types_supported": [
            "authorization_code", "refresh_token", "client_credentials", "implicit", DEVICE_CODE_GRANT,
        ],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": algs,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "name", "email", "email_verified",
        ],
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
    })
}

/// The published signing keys.
pub async fn jwks(state: &AppState) -> Result<JwkSet, StoreError> {
    state
        .keys
        .jwks(state.store.as_ref(), state.clock.now())
        .await
}
