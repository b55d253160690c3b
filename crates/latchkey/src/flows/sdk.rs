//! The JavaScript SDK's server side (SPEC 2.7): the popup relay page. `authorize` in `/sdk/login1.js` sends the
//! popup back to `{issuer}/sdk/relay/{client_id}`, a return URL every app with allowed origins has implicitly;
//! the relay hands the response to the opener only if the opener is on one of those origins.

use crate::app::AppState;
use crate::flows::error::Failure;
use crate::store::Client;

/// The popup return URL of `client_id`.
pub fn relay_uri(issuer: &str, client_id: &str) -> String {
    format!("{issuer}/sdk/relay/{client_id}")
}

/// `client` with its popup relay among its return URLs, if it has allowed origins and `requested` is the relay.
pub fn with_relay(issuer: &str, mut client: Client, requested: Option<&str>) -> Client {
    let relay = relay_uri(issuer, &client.policy.client_id);
    if !client.allowed_origins.is_empty() && requested == Some(relay.as_str()) {
        client.policy.redirect_uris.push(relay);
    }
    client
}

/// What the relay page needs of an app that uses the SDK.
#[derive(Debug)]
pub struct RelayApp {
    pub app_name: String,
    /// The origins the relay may hand a response to.
    pub origins: Vec<String>,
}

/// `GET /sdk/relay/{client_id}`: the app, if `client_id` names one that uses the SDK (has allowed origins).
pub async fn relay(state: &AppState, client_id: &str) -> Result<Option<RelayApp>, Failure> {
    if !latchkey_core::ids::is_client_id(client_id) {
        return Ok(None);
    }
    Ok(state
        .store
        .find_client(client_id)
        .await?
        .filter(|c| !c.allowed_origins.is_empty())
        .map(|c| RelayApp {
            app_name: c.name,
            origins: c.allowed_origins,
        }))
}
