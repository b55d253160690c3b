//! `/ap/adam` and `/account/apps`: "Apps and websites you've allowed" (SPEC 2.6). The signed-in customer sees each
//! app they consented to, what it can see and since when; **Remove** ends the consent and every token the app
//! holds for them in one store call, so the app's refresh fails with `invalid_grant` and its access token with
//! `invalid_token` at once.

use super::authorize::consent_items;
use super::signin::{expired_form, signin_first};
use crate::app::AppState;
use crate::store::User;
use crate::web::error::page_failure;
use crate::web::pages::{self, AllowedApp, AllowedApps, ConsentItem};
use crate::web::session::Browser;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::ids;
use latchkey_core::scope::Scopes;

/// The Remove form's fields.
#[derive(Default)]
pub struct RemoveForm {
    pub csrf: Option<String>,
    pub client_id: String,
}

impl RemoveForm {
    pub fn parse(body: &[u8]) -> RemoveForm {
        let mut form = RemoveForm::default();
        for (k, v) in url::form_urlencoded::parse(body) {
            match &*k {
                "csrf" => form.csrf = Some(v.into_owned()),
                "client_id" => form.client_id = v.into_owned(),
                _ => {}
            }
        }
        form
    }
}

/// What an app can see, in the consent page's words; an app that was granted only an identifier says so.
fn items(state: &AppState, scopes: &str, user: &User) -> Vec<ConsentItem> {
    let operator = &state.config.scopes;
    let items = consent_items(&Scopes::from_stored(scopes), &[], user, operator);
    if !items.is_empty() {
        return items;
    }
    consent_items(&Scopes::from_stored("profile:user_id"), &[], user, operator)
}

/// `GET /ap/adam`, `GET /account/apps`; `removed` names the app just removed (after Post/Redirect/Get).
pub async fn show(
    state: &AppState,
    browser: &Browser,
    path: &'static str,
    removed: Option<&str>,
) -> Response {
    let Some(signed_in) = &browser.signed_in else {
        return signin_first(path);
    };
    let user = &signed_in.session.user;
    let consents = match state.store.list_consents(&user.id).await {
        Ok(c) => c,
        Err(e) => {
            return page_failure(e.into());
        }
    };
    let mut apps = Vec::with_capacity(consents.len());
    for consent in consents {
        let client = match state.store.find_client(&consent.client_id).await {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => {
                return page_failure(e.into());
            }
        };
        let logo = crate::flows::logo::src(&client);
        apps.push(AllowedApp {
            client_id: client.policy.client_id,
            name: client.name,
            logo,
            privacy_url: client.privacy_url,
            items: items(state, &consent.scopes, user),
            since: pages::utc(consent.created_at),
            changed: (consent.updated_at > consent.created_at)
                .then(|| pages::utc(consent.updated_at)),
        });
    }
    let mut notice = None;
    if let Some(id) = removed.filter(|id| ids::is_client_id(id)) {
        match state.store.find_client(id).await {
            Ok(Some(c)) => {
                notice = Some(format!(
                    "{} can no longer use your Latchkey account. Its access has ended.",
                    c.name
                ));
            }
            Ok(None) => {}
            Err(e) => {
                return page_failure(e.into());
            }
        }
    }
    pages::render(
        StatusCode::OK,
        &AllowedApps {
            path,
            csrf: browser.csrf(state),
            user_email: user.email.clone(),
            notice,
            apps,
        },
    )
}

/// `POST /ap/adam`, `POST /account/apps`: removes one app, then shows the page again.
pub async fn remove(
    state: &AppState,
    browser: &Browser,
    path: &'static str,
    form: RemoveForm,
) -> Response {
    if !browser.csrf_ok(state, form.csrf.as_deref()) {
        return expired_form();
    }
    let Some(signed_in) = &browser.signed_in else {
        return signin_first(path);
    };
    if !ids::is_client_id(&form.client_id) {
        return pages::message(
            StatusCode::BAD_REQUEST,
            "Unknown app",
            &["There is no such app to remove."],
        );
    }
    let user = &signed_in.session.user;
    if let Err(e) = state
        .store
        .revoke_consent(&user.id, &form.client_id, state.clock.now())
        .await
    {
        return page_failure(e.into());
    }
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("removed", &form.client_id)
        .finish();
    Redirect::to(&format!("{path}?{query}")).into_response()
}
