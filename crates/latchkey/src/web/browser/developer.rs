//! The developer console's HTTP side (`flows::developer` decides): the forms parsed, the CSRF token checked before
//! any flow is called, and each outcome turned into a page or a redirect.

use crate::app::AppState;
use crate::flows::developer::{self, ConsoleOutcome, Refused, GRACE_CHOICES};
use crate::flows::error::Failure;
use crate::flows::logo::LogoError;
use crate::flows::registration::{AppInput, Field, Problem};
use crate::flows::SignedIn;
use crate::store::Client;
use crate::web::error::page_failure;
use crate::web::extract::ClientIdParam;
use crate::web::pages::{self, AppRow, AppSummary, FieldErrors};
use crate::web::session::Browser;
use axum::body::Bytes;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::client::{ClientKind, Feature, Features};
use latchkey_core::oidc::SigningAlg;
use std::collections::HashMap;

const EXPIRED: &str = "This form has expired or did not come from this browser. Go back, reload the page and try again.";

/// The `flow` checkboxes of the app form: each one's value and the feature it turns on.
const FLOWS: [(&str, Feature); 5] = [
    ("device", Feature::Device),
    ("implicit", Feature::Implicit),
    ("client_credentials", Feature::ClientCredentials),
    ("plain_pkce", Feature::PlainPkce),
    ("reusable_refresh", Feature::ReusableRefresh),
];

/// Every field any console form sends; each form reads the ones it has.
#[derive(Debug, Default, Clone)]
pub struct ConsoleForm {
    pub csrf: Option<String>,
    pub name: String,
    pub description: String,
    pub privacy_url: String,
    /// One per line, as typed.
    pub redirect_uris: String,
    /// One per line, as typed.
    pub allowed_origins: String,
    pub kind: ClientKind,
    /// The `flow` checkboxes and `development`.
    pub features: Features,
    pub id_token_alg: String,
    /// Seconds the previous secret keeps working after a rotation.
    pub grace: String,
}

impl ConsoleForm {
    pub fn parse(body: &[u8]) -> ConsoleForm {
        let mut f = ConsoleForm {
            id_token_alg: SigningAlg::default().as_str().to_owned(),
            ..ConsoleForm::default()
        };
        for (k, v) in url::form_urlencoded::parse(body) {
            match &*k {
                "csrf" => f.csrf = Some(v.into_owned()),
                "name" => f.name = v.into_owned(),
                "description" => f.description = v.into_owned(),
                "privacy_url" => f.privacy_url = v.trim().to_owned(),
                "redirect_uris" => f.redirect_uris = v.into_owned(),
                "allowed_origins" => f.allowed_origins = v.into_owned(),
                "type" if v == "public" => f.kind = ClientKind::Public,
                "type" => f.kind = ClientKind::Confidential,
                "flow" => {
                    if let Some((_, feature)) = FLOWS.iter().find(|(name, _)| *name == v) {
                        f.features.insert(*feature);
                    }
                }
                "development" => f.features.insert(Feature::Development),
                "id_token_alg" => f.id_token_alg = v.into_owned(),
                "grace" => f.grace = v.into_owned(),
                _ => {}
            }
        }
        f
    }

    fn from_client(c: &Client) -> ConsoleForm {
        ConsoleForm {
            csrf: None,
            name: c.name.clone(),
            description: c.description.clone(),
            privacy_url: c.privacy_url.clone(),
            redirect_uris: c.policy.redirect_uris.join("\n"),
            allowed_origins: c.allowed_origins.join("\n"),
            kind: c.policy.kind,
            features: c.policy.features,
            id_token_alg: c.id_token_alg.as_str().to_owned(),
            grace: String::new(),
        }
    }

    /// The registration input this form describes (its owner is the flow's to set), or the problem with its
    /// signing algorithm.
    fn input(&self) -> Result<AppInput, Problem> {
        let alg = SigningAlg::parse(&self.id_token_alg).ok_or_else(|| Problem {
            field: Field::IdTokenAlg,
            message: "choose ES256, EdDSA or RS256".to_owned(),
        })?;
        Ok(AppInput {
            name: self.name.clone(),
            description: self.description.trim().to_owned(),
            privacy_url: self.privacy_url.clone(),
            redirect_uris: lines(&self.redirect_uris),
            allowed_origins: lines(&self.allowed_origins),
            kind: self.kind,
            features: self.features,
            owner: String::new(),
            id_token_alg: alg,
            // A developer's own profile: unverified until the operator runs `latchkey client verify` (SPEC 1).
            verified: false,
            // Only the operator allows app scopes (SPEC 1); an edit keeps the ones the app has.
            app_scopes: Vec::new(),
        })
    }
}

/// The logo upload form (`multipart/form-data`): its CSRF token and the file, or why the file did not arrive.
#[derive(Debug)]
pub struct LogoForm {
    pub csrf: Option<String>,
    pub file: Result<Vec<u8>, LogoError>,
}

impl LogoForm {
    /// Reads the fields the form sends (`csrf` first, then `logo`), within the route's body limit.
    pub async fn read(multipart: Result<Multipart, MultipartRejection>) -> LogoForm {
        let mut form = LogoForm {
            csrf: None,
            file: Err(LogoError::Empty),
        };
        let Ok(mut multipart) = multipart else {
            return form;
        };
        loop {
            let field = match multipart.next_field().await {
                Ok(Some(field)) => field,
                Ok(None) => return form,
                Err(e) => {
                    form.file = Err(too_large_or_broken(e.status()));
                    return form;
                }
            };
            match field.name() {
                Some("csrf") => form.csrf = field.text().await.ok(),
                Some("logo") => {
                    form.file = field
                        .bytes()
                        .await
                        .map(|b| b.to_vec())
                        .map_err(|e| too_large_or_broken(e.status()));
                }
                _ => {}
            }
        }
    }
}

/// A body cut off at the route's limit is a file over 1 MB; anything else, an upload that did not arrive whole.
fn too_large_or_broken(status: StatusCode) -> LogoError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        LogoError::TooLarge
    } else {
        LogoError::Undecodable
    }
}

/// The non-empty lines of a text area, trimmed.
fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// "the app needs a name" → "The app needs a name."
fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    let mut out: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    };
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

fn field_errors(problems: &[Problem], general: &[String]) -> FieldErrors {
    let mut e = FieldErrors::default();
    for p in problems {
        e.summary.push((field_id(p.field), sentence(&p.message)));
        let list = match p.field {
            Field::Name => &mut e.name,
            Field::Description => &mut e.description,
            Field::PrivacyUrl => &mut e.privacy_url,
            Field::RedirectUris => &mut e.redirect_uris,
            Field::AllowedOrigins => &mut e.allowed_origins,
            Field::Flows => &mut e.flows,
            Field::IdTokenAlg => &mut e.id_token_alg,
        };
        list.push(sentence(&p.message));
    }
    for message in general {
        e.summary.push(("name", sentence(message)));
    }
    e
}

/// The `id` of the form control a problem is about (the summary links to it).
fn field_id(field: Field) -> &'static str {
    match field {
        Field::Name => "name",
        Field::Description => "description",
        Field::PrivacyUrl => "privacy_url",
        Field::RedirectUris => "redirect_uris",
        Field::AllowedOrigins => "allowed_origins",
        Field::Flows => "flow-device",
        Field::IdTokenAlg => "id_token_alg",
    }
}

fn notice_text(done: Option<&str>) -> Option<String> {
    let text = match done? {
        "enabled" => {
            "Developer access is on. Create a security profile to let your app sign customers in."
        }
        "saved" => "Your changes are saved.",
        "deleted" => "The security profile is deleted, and every token it held is revoked.",
        "logo" => "The logo is saved. Customers now see it when this app asks them to sign in.",
        "logo-removed" => "The logo is removed.",
        _ => return None,
    };
    Some(text.to_owned())
}

fn query(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// Sends the browser to sign in and come back to `back`.
fn signin_first(back: &str) -> Response {
    Redirect::to(&format!("/ap/signin?{}", query(&[("return_to", back)]))).into_response()
}

fn app_path(client_id: &str) -> String {
    format!("/developer/apps/{client_id}")
}

fn not_found() -> Response {
    pages::message(
        StatusCode::NOT_FOUND,
        "Security profile not found",
        &["There is no security profile at this address in your developer account."],
    )
}

fn expired() -> Response {
    pages::message(StatusCode::BAD_REQUEST, "This form has expired", &[EXPIRED])
}

/// Why a console request is answered before any flow is called.
enum Unserved {
    /// Not signed in: sign in, then come back to this page.
    SignInFirst(String),
    /// The form's CSRF token is missing or not this browser's.
    Expired,
}

impl IntoResponse for Unserved {
    fn into_response(self) -> Response {
        match self {
            Unserved::SignInFirst(back) => signin_first(&back),
            Unserved::Expired => expired(),
        }
    }
}

/// The signed-in customer (`back` is where signing in returns to), checking the form's CSRF token when `csrf` is
/// given (the token it presented).
fn signed_in<'a>(
    state: &AppState,
    browser: &'a Browser,
    back: &str,
    csrf: Option<Option<&str>>,
) -> Result<&'a SignedIn, Unserved> {
    let Some(signed_in) = &browser.signed_in else {
        return Err(Unserved::SignInFirst(back.to_owned()));
    };
    if let Some(presented) = csrf {
        if !browser.csrf_ok(state, presented) {
            return Err(Unserved::Expired);
        }
    }
    Ok(signed_in)
}

/// The app form, with `problems` next to their fields and `general` ones (about no one field) above it.
fn form_page(
    state: &AppState,
    browser: &Browser,
    editing: Option<&Client>,
    form: &ConsoleForm,
    problems: &[Problem],
    general: &[String],
) -> Response {
    let status = if problems.is_empty() && general.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    pages::render(
        status,
        &pages::DeveloperAppForm {
            csrf: browser.csrf(state),
            action: editing.map_or_else(
                || "/developer/apps".to_owned(),
                |c| format!("{}/edit", app_path(&c.policy.client_id)),
            ),
            editing: editing.map(AppRow::of),
            name: form.name.clone(),
            description: form.description.clone(),
            privacy_url: form.privacy_url.clone(),
            redirect_uris: form.redirect_uris.clone(),
            allowed_origins: form.allowed_origins.clone(),
            public: form.kind == ClientKind::Public,
            allow_device: form.features.contains(Feature::Device),
            allow_implicit: form.features.contains(Feature::Implicit),
            allow_client_credentials: form.features.contains(Feature::ClientCredentials),
            allow_plain_pkce: form.features.contains(Feature::PlainPkce),
            development: form.features.contains(Feature::Development),
            reusable_refresh: form.features.contains(Feature::ReusableRefresh),
            algs: [SigningAlg::Rs256, SigningAlg::Es256, SigningAlg::EdDsa]
                .map(|alg| (alg.as_str(), alg.as_str() == form.id_token_alg)),
            errors: field_errors(problems, general),
        },
    )
}

fn refused(refused: Refused) -> Response {
    match refused {
        Refused::NotDeveloper => Redirect::to("/developer").into_response(),
        Refused::NotFound => not_found(),
        Refused::NoSecret => pages::message(
            StatusCode::BAD_REQUEST,
            "This app has no secret",
            &["A public app proves itself with PKCE instead of a secret, so there is no secret to replace."],
        ),
        Refused::GraceNotOffered => pages::message(
            StatusCode::BAD_REQUEST,
            "Choose how long the old secret keeps working",
            &["Pick one of the periods offered on the app's page: none, 1 hour, 24 hours or 7 days."],
        ),
    }
}

/// The page (or redirect) for what a console flow decided. `submitted` is the form that was sent, re-shown when
/// the outcome is the app form; `done` is the `?done=` of a page reached by a redirect.
fn respond(
    state: &AppState,
    browser: &Browser,
    outcome: Result<ConsoleOutcome, Failure>,
    submitted: Option<ConsoleForm>,
    done: Option<&str>,
) -> Response {
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(failure) => return page_failure(failure),
    };
    match outcome {
        ConsoleOutcome::Console { developer, apps } => pages::render(
            StatusCode::OK,
            &pages::Developer {
                csrf: browser.csrf(state),
                developer,
                apps: apps.iter().map(AppRow::of).collect(),
                notice: notice_text(done),
            },
        ),
        ConsoleOutcome::Redirect(path) => Redirect::to(&path).into_response(),
        ConsoleOutcome::Form {
            editing,
            problems,
            general,
        } => {
            let mut form = match (submitted, &editing) {
                (Some(form), _) => form,
                (None, Some(client)) => ConsoleForm::from_client(client),
                (None, None) => ConsoleForm::parse(b""),
            };
            // The type (and so whether there is a secret) is fixed when the app is created.
            if let Some(client) = &editing {
                form.kind = client.policy.kind;
            }
            form_page(state, browser, editing.as_ref(), &form, &problems, &general)
        }
        ConsoleOutcome::App {
            client,
            usage,
            logo_error,
        } => {
            let status = if logo_error.is_some() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            pages::render(
                status,
                &pages::DeveloperApp {
                    csrf: browser.csrf(state),
                    app: AppSummary::of(&client, state.clock.now()),
                    usage,
                    grace_choices: GRACE_CHOICES.to_vec(),
                    notice: notice_text(done),
                    logo_error,
                },
            )
        }
        ConsoleOutcome::Secret {
            client,
            created,
            secret,
        } => pages::render(
            StatusCode::OK,
            &pages::DeveloperSecret {
                app: AppRow::of(&client),
                created,
                secret: secret.map(|s| s.expose().to_owned()),
            },
        ),
        ConsoleOutcome::ConfirmDelete(client) => pages::render(
            StatusCode::OK,
            &pages::DeveloperDelete {
                csrf: browser.csrf(state),
                app: AppRow::of(&client),
            },
        ),
        ConsoleOutcome::Refused(r) => refused(r),
    }
}

/// The signed-in customer, or the answer when the browser is not signed in or the form's token is refused.
macro_rules! or_answer {
    ($found:expr) => {
        match $found {
            Ok(found) => found,
            Err(unserved) => return unserved.into_response(),
        }
    };
}

pub async fn developer_console(
    State(state): State<AppState>,
    browser: Browser,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let who = or_answer!(signed_in(&state, &browser, "/developer", None));
    let outcome = developer::console(&state, who).await;
    respond(
        &state,
        &browser,
        outcome,
        None,
        q.get("done").map(String::as_str),
    )
}

pub async fn developer_enable(
    State(state): State<AppState>,
    browser: Browser,
    body: Bytes,
) -> Response {
    let form = ConsoleForm::parse(&body);
    let who = or_answer!(signed_in(
        &state,
        &browser,
        "/developer",
        Some(form.csrf.as_deref())
    ));
    let outcome = developer::enable(&state, who).await;
    respond(&state, &browser, outcome, None, None)
}

pub async fn developer_new_app(State(state): State<AppState>, browser: Browser) -> Response {
    let who = or_answer!(signed_in(&state, &browser, "/developer/apps/new", None));
    let outcome = developer::new_app_form(&state, who).await;
    respond(&state, &browser, outcome, None, None)
}

/// `POST /developer/apps`: registers the app and shows its secret, once.
pub async fn developer_create(
    State(state): State<AppState>,
    browser: Browser,
    body: Bytes,
) -> Response {
    let form = ConsoleForm::parse(&body);
    let who = or_answer!(signed_in(
        &state,
        &browser,
        "/developer/apps/new",
        Some(form.csrf.as_deref())
    ));
    let outcome = developer::create(&state, who, form.input()).await;
    respond(&state, &browser, outcome, Some(form), None)
}

pub async fn developer_app(
    State(state): State<AppState>,
    browser: Browser,
    ClientIdParam(client_id): ClientIdParam,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let who = or_answer!(signed_in(&state, &browser, &app_path(&client_id), None));
    let outcome = developer::app_page(&state, who, &client_id).await;
    respond(
        &state,
        &browser,
        outcome,
        None,
        q.get("done").map(String::as_str),
    )
}

pub async fn developer_edit_form(
    State(state): State<AppState>,
    browser: Browser,
    ClientIdParam(client_id): ClientIdParam,
) -> Response {
    let back = format!("{}/edit", app_path(&client_id));
    let who = or_answer!(signed_in(&state, &browser, &back, None));
    let outcome = developer::edit_form(&state, who, &client_id).await;
    respond(&state, &browser, outcome, None, None)
}

pub async fn developer_save(
    State(state): State<AppState>,
    browser: Browser,
    ClientIdParam(client_id): ClientIdParam,
    body: Bytes,
) -> Response {
    let form = ConsoleForm::parse(&body);
    let back = format!("{}/edit", app_path(&client_id));
    let who = or_answer!(signed_in(
        &state,
        &browser,
        &back,
        Some(form.csrf.as_deref())
    ));
    let outcome = developer::save(&state, who, &client_id, form.input()).await;
    respond(&state, &browser, outcome, Some(form), None)
}

/// `POST /developer/apps/{client_id}/secret`: a new secret, shown once; the old one works for the chosen grace.
pub async fn developer_rotate(
    State(state): State<AppState>,
    browser: Browser,
    ClientIdParam(client_id): ClientIdParam,
    body: Bytes,
) -> Response {
    let form = ConsoleForm::parse(&body);
    let who = or_answer!(signed_in(
        &state,
        &browser,
        &app_path(&client_id),
        Some(form.csrf.as_deref())
    ));
    let outcome = developer::rotate(&state, who, &client_id, &form.grace).await;
    respond(&state, &browser, outcome, None, None)
}

pub async fn developer_delete_page(
    State(state): State<AppState>,
    browser: Browser,
    ClientIdParam(client_id): ClientIdParam,
) -> Response {
    let back = format!("{}/delete", app_path(&client_id));
    let who = or_answer!(signed_in(&state, &browser, &back, None));
    let outcome = developer::delete_page(&state, who, &client_id).await;
    respond(&state, &browser, outcome, None, None)
}

pub async fn developer_delete(
    State(state): State<AppState>,
    browser: Browser,
    ClientIdParam(client_id): ClientIdParam,
    body: Bytes,
) -> Response {
    let form = ConsoleForm::parse(&body);
    let back = format!("{}/delete", app_path(&client_id));
    let who = or_answer!(signed_in(
        &state,
        &browser,
        &back,
        Some(form.csrf.as_deref())
    ));
    let outcome = developer::delete(&state, who, &client_id).await;
    respond(&state, &browser, outcome, None, None)
}

pub async fn developer_logo_upload(
    State(state): State<AppState>,
    browser: Browser,
    ClientIdParam(client_id): ClientIdParam,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let form = LogoForm::read(multipart).await;
    let who = or_answer!(signed_in(
        &state,
        &browser,
        &app_path(&client_id),
        Some(form.csrf.as_deref())
    ));
    let outcome = developer::upload_logo(&state, who, &client_id, form.file).await;
    respond(&state, &browser, outcome, None, None)
}

pub async fn developer_logo_remove(
    State(state): State<AppState>,
    browser: Browser,
    ClientIdParam(client_id): ClientIdParam,
    body: Bytes,
) -> Response {
    let form = ConsoleForm::parse(&body);
    let who = or_answer!(signed_in(
        &state,
        &browser,
        &app_path(&client_id),
        Some(form.csrf.as_deref())
    ));
    let outcome = developer::remove_logo(&state, who, &client_id).await;
    respond(&state, &browser, outcome, None, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_areas_become_trimmed_lines() {
        assert_eq!(
            lines(" https://a.example/cb \r\n\r\nhttps://b.example/cb\n"),
            vec!["https://a.example/cb", "https://b.example/cb"]
        );
        assert!(lines("  \n ").is_empty());
    }

    #[test]
    fn messages_read_as_sentences() {
        assert_eq!(sentence("add a URL"), "Add a URL.");
        assert_eq!(sentence("Done."), "Done.");
    }

    #[test]
    fn an_unknown_algorithm_is_a_problem_of_its_field() {
        let form = ConsoleForm::parse(b"name=A&id_token_alg=HS256");
        assert_eq!(form.input().unwrap_err().field, Field::IdTokenAlg);
        let form = ConsoleForm::parse(b"name=A&type=public&flow=device&flow=bogus");
        let input = form.input().unwrap();
        assert!(
            input.kind == ClientKind::Public
                && input.features.contains(Feature::Device)
                && !input.features.contains(Feature::Implicit)
        );
        assert_eq!(input.id_token_alg, SigningAlg::Rs256, "RS256 by default");
    }
}
