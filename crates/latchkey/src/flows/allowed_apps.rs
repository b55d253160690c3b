//! `/ap/adam` and `/account/apps`: "Apps and websites you've allowed" (SPEC 2.6). The signed-in customer sees each
//! app they consented to, what it can see and since when; **Remove** ends the consent and every token the app
//! holds for them in one store call, so the app's refresh fails with `invalid_grant` and its access token with
//! `invalid_token` at once.

use crate::app::AppState;
use crate::flows::error::Failure;
use crate::flows::SignedIn;
use latchkey_core::ids;
use latchkey_core::scope::Scopes;

/// One app the customer allowed, as the page lists it.
pub struct AllowedAppView {
    pub client_id: String,
    pub name: String,
    /// The app's logo, served by Latchkey (`flows::logo`).
    pub logo: Option<String>,
    pub privacy_url: String,
    /// What the app can see, to be described in the consent page's words (`authorize::consent_items`): an app
    /// that was granted only an identifier says so.
    pub scopes: Scopes,
    /// When the customer first allowed it.
    pub since: i64,
    /// When the customer last allowed it more, if later.
    pub changed: Option<i64>,
}

/// What the page shows.
pub struct AllowedAppsView {
    pub apps: Vec<AllowedAppView>,
    /// The app just removed, by name, to say its access has ended.
    pub removed: Option<String>,
}

/// The scopes the page describes: an app that was granted nothing the consent page lists holds an identifier.
fn shown_scopes(state: &AppState, scopes: &str, signed_in: &SignedIn) -> Scopes {
    let scopes = Scopes::from_stored(scopes);
    let user = &signed_in.session.user;
    if super::authorize::consent_items(&scopes, &[], user, &state.config.scopes).is_empty() {
        return Scopes::from_stored("profile:user_id");
    }
    scopes
}

/// `GET /ap/adam`, `GET /account/apps`; `removed` names the app just removed (after Post/Redirect/Get).
pub async fn show(
    state: &AppState,
    signed_in: &SignedIn,
    removed: Option<&str>,
) -> Result<AllowedAppsView, Failure> {
    let user = &signed_in.session.user;
    let consents = state.store.list_consents(&user.id).await?;
    let mut apps = Vec::with_capacity(consents.len());
    for consent in consents {
        let Some(client) = state.store.find_client(&consent.client_id).await? else {
            continue;
        };
        let logo = crate::flows::logo::src(&client);
        apps.push(AllowedAppView {
            client_id: client.policy.client_id,
            name: client.name,
            logo,
            privacy_url: client.privacy_url,
            scopes: shown_scopes(state, &consent.scopes, signed_in),
            since: consent.created_at,
            changed: (consent.updated_at > consent.created_at).then_some(consent.updated_at),
        });
    }
    let mut removed_name = None;
    if let Some(id) = removed.filter(|id| ids::is_client_id(id)) {
        removed_name = state.store.find_client(id).await?.map(|c| c.name);
    }
    Ok(AllowedAppsView {
        apps,
        removed: removed_name,
    })
}

/// How a Remove ended.
pub enum RemoveOutcome {
    /// The consent and every token the app held for the customer are gone.
    Removed { client_id: String },
    /// Not an app id: nothing was done.
    UnknownApp,
}

/// `POST /ap/adam`, `POST /account/apps`: removes one app.
pub async fn remove(
    state: &AppState,
    signed_in: &SignedIn,
    client_id: &str,
    origin: &crate::flows::activity::Origin,
) -> Result<RemoveOutcome, Failure> {
    if !ids::is_client_id(client_id) {
        return Ok(RemoveOutcome::UnknownApp);
    }
    let user_id = &signed_in.session.user.id;
    state
        .store
        .revoke_consent(user_id, client_id, state.clock.now())
        .await?;
    let app = match state.store.find_client(client_id).await? {
        Some(client) => client.name,
        None => client_id.to_owned(),
    };
    crate::flows::activity::record(
        state,
        user_id,
        crate::flows::activity::Activity::AppRemoved { app },
        origin,
    )
    .await?;
    Ok(RemoveOutcome::Removed {
        client_id: client_id.to_owned(),
    })
}
