//! "Your apps": the apps a customer allowed, and Remove (`/ap/adam`, `/account/apps`). The Remove form, its CSRF
//! check, and the flows' outcomes as pages and redirects (`flows::allowed_apps` decides).

use super::form_session;
use super::signin::signin_first;
use crate::app::AppState;
use crate::flows::allowed_apps::{self, RemoveOutcome};
use crate::flows::authorize::consent_items;
use crate::web::error::page_failure;
use crate::web::pages::{self, AllowedApp, AllowedApps};
use crate::web::session::Browser;
use axum::body::Bytes;
use axum::extract::{MatchedPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::HashMap;

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

/// `GET /ap/adam`, `GET /account/apps`; `removed` names the app just removed (after Post/Redirect/Get).
async fn show(
    state: &AppState,
    browser: &Browser,
    path: &'static str,
    removed: Option<&str>,
) -> Response {
    let Some(signed_in) = &browser.signed_in else {
        return signin_first(path);
    };
    let view = match allowed_apps::show(state, signed_in, removed).await {
        Ok(view) => view,
        Err(failure) => return page_failure(failure),
    };
    let user = &signed_in.session.user;
    let apps = view
        .apps
        .into_iter()
        .map(|app| AllowedApp {
            items: consent_items(&app.scopes, &[], user, &state.config.scopes),
            client_id: app.client_id,
            name: app.name,
            logo: app.logo,
            privacy_url: app.privacy_url,
            since: pages::utc(app.since),
            changed: app.changed.map(pages::utc),
        })
        .collect();
    let notice = view.removed.map(|name| {
        format!("{name} can no longer use your Latchkey account. Its access has ended.")
    });
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
async fn remove(
    state: &AppState,
    browser: &Browser,
    path: &'static str,
    origin: &crate::flows::activity::Origin,
    body: &[u8],
) -> Response {
    let form = RemoveForm::parse(body);
    let signed_in = match form_session(state, browser, form.csrf.as_deref(), path) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    match allowed_apps::remove(state, signed_in, &form.client_id, origin).await {
        Ok(RemoveOutcome::Removed { client_id }) => {
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("removed", &client_id)
                .finish();
            Redirect::to(&format!("{path}?{query}")).into_response()
        }
        Ok(RemoveOutcome::UnknownApp) => pages::message(
            StatusCode::BAD_REQUEST,
            "Unknown app",
            &["There is no such app to remove."],
        ),
        Err(failure) => page_failure(failure),
    }
}

/// Which of the two addresses of the page was asked (`/ap/adam`, LWA's; `/account/apps`): the page answers
/// and redirects at the one it was reached by.
fn page_path(matched: &MatchedPath) -> &'static str {
    if matched.as_str() == "/ap/adam" {
        "/ap/adam"
    } else {
        "/account/apps"
    }
}

/// `GET /ap/adam`, `GET /account/apps`.
pub async fn apps_page(
    State(state): State<AppState>,
    browser: Browser,
    matched: MatchedPath,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let removed = q.get("removed").map(String::as_str);
    show(&state, &browser, page_path(&matched), removed).await
}

/// `POST /ap/adam`, `POST /account/apps`.
pub async fn apps_remove(
    State(state): State<AppState>,
    browser: Browser,
    matched: MatchedPath,
    crate::web::extract::Seen(origin): crate::web::extract::Seen,
    body: Bytes,
) -> Response {
    remove(&state, &browser, page_path(&matched), &origin, &body).await
}
