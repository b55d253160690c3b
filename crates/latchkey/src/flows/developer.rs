//! The developer console (SPEC 2.6 `/developer`): a signed-in customer turns on developer access, then creates,
//! edits and deletes security profiles, sees each one's client id and usage, and rotates its secret.
//!
//! - An app's `owner` is the developer's internal user id, so the pairwise `user_id` is per developer. Only the
//!   owner sees an app: for anyone else its pages answer 404, as for an app that does not exist.
//! - Every form is a POST with a CSRF token, checked before anything else; nothing is written before every check
//!   has passed, and a refused form is shown again with what was entered and each problem next to its field.
//! - A secret is shown exactly once, in the response to the POST that made it (never in a URL, never stored in
//!   the clear); the other forms answer with a redirect (post/redirect/get).

use crate::app::AppState;
use crate::flows::logo::{self, LogoError};
use crate::flows::registration::{self, AppInput, Field, Problem};
use crate::store::{Client, StoreError};
use crate::web::pages::{self, AppRow, AppSummary, FieldErrors};
use crate::web::session::Browser;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::ids;
use latchkey_core::oidc::SigningAlg;
use latchkey_core::secret::Kind;

/// How long the previous secret may keep working after a rotation, as offered on the app page.
pub const GRACE_CHOICES: [(i64, &str); 4] = [
    (0, "None: the old secret stops working now"),
    (3600, "1 hour"),
    (86_400, "24 hours"),
    (604_800, "7 days"),
];

const EXPIRED: &str = "This form has expired or did not come from this browser. Go back, reload the page and try again.";

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
    pub public: bool,
    pub allow_device: bool,
    pub allow_implicit: bool,
    pub allow_client_credentials: bool,
    pub allow_plain_pkce: bool,
    pub development: bool,
    pub reusable_refresh: bool,
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
                "type" => f.public = v == "public",
                "flow" => match &*v {
                    "device" => f.allow_device = true,
                    "implicit" => f.allow_implicit = true,
                    "client_credentials" => f.allow_client_credentials = true,
                    "plain_pkce" => f.allow_plain_pkce = true,
                    "reusable_refresh" => f.reusable_refresh = true,
                    _ => {}
                },
                "development" => f.development = true,
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
            public: !c.policy.confidential,
            allow_device: c.policy.allow_device,
            allow_implicit: c.policy.allow_implicit,
            allow_client_credentials: c.policy.allow_client_credentials,
            allow_plain_pkce: c.policy.allow_plain_pkce,
            development: c.policy.development,
            reusable_refresh: c.policy.reusable_refresh,
            id_token_alg: c.id_token_alg.as_str().to_owned(),
            grace: String::new(),
        }
    }

    /// The registration input this form describes, or the problem with its signing algorithm.
    fn input(&self, owner: &str) -> Result<AppInput, Problem> {
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
            public: self.public,
            allow_implicit: self.allow_implicit,
            allow_plain_pkce: self.allow_plain_pkce,
            allow_device: self.allow_device,
            allow_client_credentials: self.allow_client_credentials,
            development: self.development,
            reusable_refresh: self.reusable_refresh,
            owner: owner.to_owned(),
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

fn store_failed(e: crate::store::StoreError) -> Response {
    crate::web::error::page_failure(e.into())
}

/// Why a console request is not served, and so what the browser gets instead.
enum Refused {
    /// Not signed in: sign in, then come back to this page.
    SignInFirst(String),
    /// The form's CSRF token is missing or not this browser's.
    Expired,
    /// Developer access is not on: the console's front page offers it.
    NotDeveloper,
    /// No such app, or not this developer's.
    NotFound,
    Store(StoreError),
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::SignInFirst(back) => signin_first(&back),
            Refused::Expired => expired(),
            Refused::NotDeveloper => Redirect::to("/developer").into_response(),
            Refused::NotFound => not_found(),
            Refused::Store(e) => store_failed(e),
        }
    }
}

/// The signed-in customer's internal id. `csrf` is the token a form presented (`None` for a page).
fn customer(
    state: &AppState,
    browser: &Browser,
    back: &str,
    csrf: Option<Option<&str>>,
) -> Result<String, Refused> {
    let Some(signed_in) = &browser.signed_in else {
        return Err(Refused::SignInFirst(back.to_owned()));
    };
    if let Some(presented) = csrf {
        if !browser.csrf_ok(state, presented) {
            return Err(Refused::Expired);
        }
    }
    Ok(signed_in.session.user.id.clone())
}

/// The signed-in developer's id; customers who have not turned on developer access are sent to `/developer`.
async fn developer(
    state: &AppState,
    browser: &Browser,
    back: &str,
    csrf: Option<Option<&str>>,
) -> Result<String, Refused> {
    let user_id = customer(state, browser, back, csrf)?;
    match state.store.developer_since(&user_id).await {
        Ok(Some(_)) => Ok(user_id),
        Ok(None) => Err(Refused::NotDeveloper),
        Err(e) => Err(Refused::Store(e)),
    }
}

/// The app `client_id` if `owner` owns it; 404 otherwise (whether it exists or not).
async fn owned_app(state: &AppState, owner: &str, client_id: &str) -> Result<Client, Refused> {
    if !ids::is_client_id(client_id) {
        return Err(Refused::NotFound);
    }
    match state.store.find_client(client_id).await {
        Ok(Some(c)) if c.owner == owner => Ok(c),
        Ok(_) => Err(Refused::NotFound),
        Err(e) => Err(Refused::Store(e)),
    }
}

/// The signed-in developer (checking the form's CSRF token when `csrf` is given; `back` is where signing in
/// returns to) and their app `client_id`; any other app answers as if it did not exist.
async fn developers_app(
    state: &AppState,
    browser: &Browser,
    back: &str,
    client_id: &str,
    csrf: Option<Option<&str>>,
) -> Result<(String, Client), Refused> {
    let owner = developer(state, browser, back, csrf).await?;
    let client = owned_app(state, &owner, client_id).await?;
    Ok((owner, client))
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

/// `GET /developer`.
pub async fn console(state: &AppState, browser: &Browser, done: Option<&str>) -> Response {
    let user_id = match customer(state, browser, "/developer", None) {
        Ok(id) => id,
        Err(refused) => return refused.into_response(),
    };
    let since = match state.store.developer_since(&user_id).await {
        Ok(since) => since,
        Err(e) => return store_failed(e),
    };
    let apps = if since.is_some() {
        match state.store.list_clients_by_owner(&user_id).await {
            Ok(apps) => apps.iter().map(AppRow::of).collect(),
            Err(e) => return store_failed(e),
        }
    } else {
        Vec::new()
    };
    pages::render(
        StatusCode::OK,
        &pages::Developer {
            csrf: browser.csrf(state),
            developer: since.is_some(),
            apps,
            notice: notice_text(done),
        },
    )
}

/// `POST /developer/enable`.
pub async fn enable(state: &AppState, browser: &Browser, form: ConsoleForm) -> Response {
    let user_id = match customer(state, browser, "/developer", Some(form.csrf.as_deref())) {
        Ok(id) => id,
        Err(refused) => return refused.into_response(),
    };
    match state
        .store
        .enable_developer(&user_id, state.clock.now())
        .await
    {
        Ok(()) => Redirect::to("/developer?done=enabled").into_response(),
        Err(e) => store_failed(e),
    }
}

fn form_page(
    state: &AppState,
    browser: &Browser,
    editing: Option<&Client>,
    form: &ConsoleForm,
    problems: &[Problem],
) -> Response {
    form_page_with(state, browser, editing, form, problems, &[])
}

/// The app form, with `problems` next to their fields and `general` ones (about no one field) above it.
fn form_page_with(
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
            public: form.public,
            allow_device: form.allow_device,
            allow_implicit: form.allow_implicit,
            allow_client_credentials: form.allow_client_credentials,
            allow_plain_pkce: form.allow_plain_pkce,
            development: form.development,
            reusable_refresh: form.reusable_refresh,
            algs: [SigningAlg::Rs256, SigningAlg::Es256, SigningAlg::EdDsa]
                .map(|alg| (alg.as_str(), alg.as_str() == form.id_token_alg)),
            errors: field_errors(problems, general),
        },
    )
}

/// `GET /developer/apps/new`.
pub async fn new_app_form(state: &AppState, browser: &Browser) -> Response {
    if let Err(refused) = developer(state, browser, "/developer/apps/new", None).await {
        return refused.into_response();
    }
    form_page(state, browser, None, &ConsoleForm::parse(b""), &[])
}

/// `POST /developer/apps`: registers the app and shows its secret, once.
pub async fn create(state: &AppState, browser: &Browser, form: ConsoleForm) -> Response {
    let owner = match developer(
        state,
        browser,
        "/developer/apps/new",
        Some(form.csrf.as_deref()),
    )
    .await
    {
        Ok(id) => id,
        Err(refused) => return refused.into_response(),
    };
    let input = match form.input(&owner) {
        Ok(input) => input,
        Err(problem) => return form_page(state, browser, None, &form, &[problem]),
    };
    let problems = registration::validate_fields(&input);
    if !problems.is_empty() {
        return form_page(state, browser, None, &form, &problems);
    }
    match registration::register(state, &input).await {
        Ok(Ok((client, secret))) => pages::render(
            StatusCode::OK,
            &pages::DeveloperSecret {
                app: AppRow::of(&client),
                created: true,
                secret: secret.map(|s| s.expose().to_owned()),
            },
        ),
        // Validated above; a refusal here would be a rule only `register` knows: shown above the form.
        Ok(Err(messages)) => form_page_with(state, browser, None, &form, &[], &messages),
        Err(e) => store_failed(e),
    }
}

/// `GET /developer/apps/{client_id}`.
pub async fn app_page(
    state: &AppState,
    browser: &Browser,
    client_id: &str,
    done: Option<&str>,
) -> Response {
    let (_, client) =
        match developers_app(state, browser, &app_path(client_id), client_id, None).await {
            Ok(found) => found,
            Err(refused) => return refused.into_response(),
        };
    show_app(state, browser, &client, notice_text(done), None).await
}

/// The app's page; with `logo_error`, a refused upload (400), the reason next to the file field.
async fn show_app(
    state: &AppState,
    browser: &Browser,
    client: &Client,
    notice: Option<String>,
    logo_error: Option<String>,
) -> Response {
    let usage = match state
        .store
        .client_usage(&client.policy.client_id, state.clock.now())
        .await
    {
        Ok(u) => u,
        Err(e) => return store_failed(e),
    };
    let status = if logo_error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    pages::render(
        status,
        &pages::DeveloperApp {
            csrf: browser.csrf(state),
            app: AppSummary::of(client, state.clock.now()),
            usage,
            grace_choices: GRACE_CHOICES.to_vec(),
            notice,
            logo_error,
        },
    )
}

/// `POST /developer/apps/{client_id}/logo`: decodes, shrinks and re-encodes the upload (`flows::logo`), then
/// stores it in place of the old logo. The app becomes unverified again: customers see something new.
pub async fn upload_logo(
    state: &AppState,
    browser: &Browser,
    client_id: &str,
    form: LogoForm,
) -> Response {
    let (_, client) = match developers_app(
        state,
        browser,
        &app_path(client_id),
        client_id,
        Some(form.csrf.as_deref()),
    )
    .await
    {
        Ok(found) => found,
        Err(refused) => return refused.into_response(),
    };
    let made = match form.file {
        Ok(bytes) => logo::reencode_blocking(bytes).await,
        Err(e) => Err(e),
    };
    let made = match made {
        Ok(made) => made,
        Err(e) => return show_app(state, browser, &client, None, Some(e.to_string())).await,
    };
    match state
        .store
        .set_client_logo(client_id, Some(&made), true, state.clock.now())
        .await
    {
        Ok(true) => Redirect::to(&format!("{}?done=logo", app_path(client_id))).into_response(),
        Ok(false) => not_found(),
        Err(e) => store_failed(e),
    }
}

/// `POST /developer/apps/{client_id}/logo/remove`: pages show no logo for the app from now on.
pub async fn remove_logo(
    state: &AppState,
    browser: &Browser,
    client_id: &str,
    form: ConsoleForm,
) -> Response {
    if let Err(refused) = developers_app(
        state,
        browser,
        &app_path(client_id),
        client_id,
        Some(form.csrf.as_deref()),
    )
    .await
    {
        return refused.into_response();
    }
    match state
        .store
        .set_client_logo(client_id, None, false, state.clock.now())
        .await
    {
        Ok(true) => {
            Redirect::to(&format!("{}?done=logo-removed", app_path(client_id))).into_response()
        }
        Ok(false) => not_found(),
        Err(e) => store_failed(e),
    }
}

/// `GET /developer/apps/{client_id}/edit`.
pub async fn edit_form(state: &AppState, browser: &Browser, client_id: &str) -> Response {
    let back = format!("{}/edit", app_path(client_id));
    match developers_app(state, browser, &back, client_id, None)
        .await
        .map(|(_, c)| c)
    {
        Ok(c) => form_page(state, browser, Some(&c), &ConsoleForm::from_client(&c), &[]),
        Err(refused) => refused.into_response(),
    }
}

/// `POST /developer/apps/{client_id}/edit`.
pub async fn save(
    state: &AppState,
    browser: &Browser,
    client_id: &str,
    mut form: ConsoleForm,
) -> Response {
    let back = format!("{}/edit", app_path(client_id));
    let (owner, client) =
        match developers_app(state, browser, &back, client_id, Some(form.csrf.as_deref())).await {
            Ok(found) => found,
            Err(refused) => return refused.into_response(),
        };
    // The type (and so whether there is a secret) is fixed when the app is created.
    form.public = !client.policy.confidential;
    let input = match form.input(&owner) {
        Ok(input) => input,
        Err(problem) => return form_page(state, browser, Some(&client), &form, &[problem]),
    };
    match registration::update(state, &client, &input).await {
        Ok(Ok(Some(_))) => {
            Redirect::to(&format!("{}?done=saved", app_path(client_id))).into_response()
        }
        Ok(Ok(None)) => not_found(),
        Ok(Err(problems)) => form_page(state, browser, Some(&client), &form, &problems),
        Err(e) => store_failed(e),
    }
}

/// `POST /developer/apps/{client_id}/secret`: a new secret, shown once; the old one works for the chosen grace.
pub async fn rotate(
    state: &AppState,
    browser: &Browser,
    client_id: &str,
    form: ConsoleForm,
) -> Response {
    let (_, client) = match developers_app(
        state,
        browser,
        &app_path(client_id),
        client_id,
        Some(form.csrf.as_deref()),
    )
    .await
    {
        Ok(found) => found,
        Err(refused) => return refused.into_response(),
    };
    if !client.policy.confidential {
        return pages::message(
            StatusCode::BAD_REQUEST,
            "This app has no secret",
            &["A public app proves itself with PKCE instead of a secret, so there is no secret to replace."],
        );
    }
    let Some(grace) = GRACE_CHOICES
        .iter()
        .map(|(secs, _)| *secs)
        .find(|secs| form.grace == secs.to_string())
    else {
        return pages::message(
            StatusCode::BAD_REQUEST,
            "Choose how long the old secret keeps working",
            &["Pick one of the periods offered on the app's page: none, 1 hour, 24 hours or 7 days."],
        );
    };
    let now = state.clock.now();
    let secret = ids::new_client_secret(&mut rand::thread_rng());
    let hash = state.hasher.token(Kind::ClientSecret, secret.expose());
    let keep_previous_until = (grace > 0).then_some(now + grace);
    match state
        .store
        .set_client_secret(client_id, &hash, keep_previous_until)
        .await
    {
        Ok(true) => pages::render(
            StatusCode::OK,
            &pages::DeveloperSecret {
                app: AppRow::of(&client),
                created: false,
                secret: Some(secret.expose().to_owned()),
            },
        ),
        Ok(false) => not_found(),
        Err(e) => store_failed(e),
    }
}

/// `GET /developer/apps/{client_id}/delete`: asks first.
pub async fn delete_page(state: &AppState, browser: &Browser, client_id: &str) -> Response {
    let back = format!("{}/delete", app_path(client_id));
    match developers_app(state, browser, &back, client_id, None)
        .await
        .map(|(_, c)| c)
    {
        Ok(c) => pages::render(
            StatusCode::OK,
            &pages::DeveloperDelete {
                csrf: browser.csrf(state),
                app: AppRow::of(&c),
            },
        ),
        Err(refused) => refused.into_response(),
    }
}

/// `POST /developer/apps/{client_id}/delete`: deletes the app and ends every grant it holds.
pub async fn delete(
    state: &AppState,
    browser: &Browser,
    client_id: &str,
    form: ConsoleForm,
) -> Response {
    let back = format!("{}/delete", app_path(client_id));
    if let Err(refused) =
        developers_app(state, browser, &back, client_id, Some(form.csrf.as_deref())).await
    {
        return refused.into_response();
    }
    match state
        .store
        .delete_client(client_id, state.clock.now())
        .await
    {
        Ok(_) => Redirect::to("/developer?done=deleted").into_response(),
        Err(e) => store_failed(e),
    }
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
        assert_eq!(form.input("dev").unwrap_err().field, Field::IdTokenAlg);
        let form = ConsoleForm::parse(b"name=A&type=public&flow=device&flow=bogus");
        let input = form.input("dev").unwrap();
        assert!(input.public && input.allow_device && !input.allow_implicit);
        assert_eq!(input.id_token_alg, SigningAlg::Rs256, "RS256 by default");
    }
}
