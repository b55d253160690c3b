//! The developer console (SPEC 2.6 `/developer`): a signed-in customer turns on developer access, then creates,
//! edits and deletes security profiles, sees each one's client id and usage, and rotates its secret.
//!
//! - An app's `owner` is the developer's internal user id, so the pairwise `user_id` is per developer. Only the
//!   owner sees an app: for anyone else its pages answer 404, as for an app that does not exist.
//! - Every form is a POST with a CSRF token, checked (by `web::browser::developer`) before any of these is called;
//!   nothing is written before every check has passed, and a refused form is shown again with what was entered
//!   and each problem next to its field.
//! - A secret is shown exactly once, in the response to the POST that made it (never in a URL, never stored in
//!   the clear); the other forms answer with a redirect (post/redirect/get).
//!
//! Each action takes the signed-in customer and the parsed form, and returns a [`ConsoleOutcome`]; the web side
//! turns it into a page or a redirect.

use crate::app::AppState;
use crate::flows::error::Failure;
use crate::flows::logo::{self, LogoError};
use crate::flows::registration::{self, AppInput, Grace, Problem, Registered, Rotated, Updated};
use crate::flows::SignedIn;
use crate::store::{Client, ClientUsage};
use latchkey_core::ids;
use latchkey_core::secret::Secret;

/// How long the previous secret may keep working after a rotation, as offered on the app page: some of what
/// [`Grace`] allows.
pub const GRACE_CHOICES: [(i64, &str); 4] = [
    (0, "None: the old secret stops working now"),
    (3600, "1 hour"),
    (86_400, "24 hours"),
    (604_800, "7 days"),
];

/// Why a console request is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Developer access is not on: the console's front page offers it.
    NotDeveloper,
    /// No such app, or not this developer's.
    NotFound,
    /// A secret rotation asked of a public app, which has none.
    NoSecret,
    /// A secret rotation with a grace period the app page does not offer.
    GraceNotOffered,
}

/// What a console action decided.
#[derive(Debug)]
pub enum ConsoleOutcome {
    /// The console's front page: whether developer access is on, and the developer's apps.
    Console {
        developer: bool,
        apps: Vec<Client>,
    },
    /// Done: go to this path of the console (post/redirect/get).
    Redirect(String),
    /// The app form, for a new app (`editing: None`) or an edit; with `problems` next to their fields and
    /// `general` ones (about no one field) above it. Both empty when the form is first shown.
    Form {
        editing: Option<Client>,
        problems: Vec<Problem>,
        general: Vec<String>,
    },
    /// The app's page; with `logo_error`, a refused upload, the reason next to the file field.
    App {
        client: Client,
        usage: ClientUsage,
        logo_error: Option<String>,
    },
    /// A secret, shown once: of a new app (`created`), or the replacement of a rotated one.
    Secret {
        client: Client,
        created: bool,
        secret: Option<Secret>,
    },
    /// Asks before deleting the app.
    ConfirmDelete(Client),
    Refused(Refused),
}

fn app_path(client_id: &str) -> String {
    format!("/developer/apps/{client_id}")
}

fn user_id(signed_in: &SignedIn) -> &str {
    &signed_in.session.user.id
}

/// The signed-in developer's id; `Err` for customers who have not turned on developer access.
async fn developer(
    state: &AppState,
    signed_in: &SignedIn,
) -> Result<Result<String, Refused>, Failure> {
    let user_id = user_id(signed_in);
    Ok(match state.store.developer_since(user_id).await? {
        Some(_) => Ok(user_id.to_owned()),
        None => Err(Refused::NotDeveloper),
    })
}

/// The signed-in developer and their app `client_id`; any other app answers as if it did not exist.
async fn developers_app(
    state: &AppState,
    signed_in: &SignedIn,
    client_id: &str,
) -> Result<Result<(String, Client), Refused>, Failure> {
    let owner = match developer(state, signed_in).await? {
        Ok(owner) => owner,
        Err(refused) => return Ok(Err(refused)),
    };
    if !ids::is_client_id(client_id) {
        return Ok(Err(Refused::NotFound));
    }
    Ok(match state.store.find_client(client_id).await? {
        Some(c) if c.owner == owner => Ok((owner, c)),
        _ => Err(Refused::NotFound),
    })
}

/// Returns the refusal as the outcome, or goes on with what was found.
macro_rules! or_refused {
    ($found:expr) => {
        match $found? {
            Ok(found) => found,
            Err(refused) => return Ok(ConsoleOutcome::Refused(refused)),
        }
    };
}

/// `GET /developer`.
pub async fn console(state: &AppState, signed_in: &SignedIn) -> Result<ConsoleOutcome, Failure> {
    let user_id = user_id(signed_in);
    let developer = state.store.developer_since(user_id).await?.is_some();
    let apps = if developer {
        state.store.list_clients_by_owner(user_id).await?
    } else {
        Vec::new()
    };
    Ok(ConsoleOutcome::Console { developer, apps })
}

/// `POST /developer/enable`.
pub async fn enable(state: &AppState, signed_in: &SignedIn) -> Result<ConsoleOutcome, Failure> {
    state
        .store
        .enable_developer(user_id(signed_in), state.clock.now())
        .await?;
    Ok(ConsoleOutcome::Redirect(
        "/developer?done=enabled".to_owned(),
    ))
}

/// `GET /developer/apps/new`.
pub async fn new_app_form(
    state: &AppState,
    signed_in: &SignedIn,
) -> Result<ConsoleOutcome, Failure> {
    or_refused!(developer(state, signed_in).await);
    Ok(ConsoleOutcome::Form {
        editing: None,
        problems: Vec::new(),
        general: Vec::new(),
    })
}

/// `POST /developer/apps`: registers the app and shows its secret, once. `input` is the form's (its owner is set
/// here), or the problem parsing it found.
pub async fn create(
    state: &AppState,
    signed_in: &SignedIn,
    input: Result<AppInput, Problem>,
) -> Result<ConsoleOutcome, Failure> {
    let owner = or_refused!(developer(state, signed_in).await);
    let invalid = |problems: Vec<Problem>, general: Vec<String>| ConsoleOutcome::Form {
        editing: None,
        problems,
        general,
    };
    let input = match input {
        Ok(input) => AppInput { owner, ..input },
        Err(problem) => return Ok(invalid(vec![problem], Vec::new())),
    };
    let problems = registration::validate_fields(&input);
    if !problems.is_empty() {
        return Ok(invalid(problems, Vec::new()));
    }
    Ok(match registration::register(state, &input).await? {
        Registered::Created { client, secret } => ConsoleOutcome::Secret {
            client: *client,
            created: true,
            secret,
        },
        // Validated above; a refusal here would be a rule only `register` knows: shown above the form.
        Registered::Refused(messages) => invalid(Vec::new(), messages),
    })
}

/// The app's page.
async fn show_app(
    state: &AppState,
    client: Client,
    logo_error: Option<String>,
) -> Result<ConsoleOutcome, Failure> {
    let usage = state
        .store
        .client_usage(&client.policy.client_id, state.clock.now())
        .await?;
    Ok(ConsoleOutcome::App {
        client,
        usage,
        logo_error,
    })
}

/// `GET /developer/apps/{client_id}`.
pub async fn app_page(
    state: &AppState,
    signed_in: &SignedIn,
    client_id: &str,
) -> Result<ConsoleOutcome, Failure> {
    let (_, client) = or_refused!(developers_app(state, signed_in, client_id).await);
    show_app(state, client, None).await
}

/// `POST /developer/apps/{client_id}/logo`: decodes, shrinks and re-encodes the upload (`flows::logo`), then
/// stores it in place of the old logo. The app becomes unverified again: customers see something new. `file` is
/// the uploaded file, or why it did not arrive.
pub async fn upload_logo(
    state: &AppState,
    signed_in: &SignedIn,
    client_id: &str,
    file: Result<Vec<u8>, LogoError>,
) -> Result<ConsoleOutcome, Failure> {
    let (_, client) = or_refused!(developers_app(state, signed_in, client_id).await);
    let made = match file {
        Ok(bytes) => logo::reencode_blocking(bytes).await,
        Err(e) => Err(e),
    };
    let made = match made {
        Ok(made) => made,
        Err(e) => return show_app(state, client, Some(e.to_string())).await,
    };
    let saved = state
        .store
        .set_client_logo(client_id, Some(&made), true, state.clock.now())
        .await?;
    Ok(if saved {
        ConsoleOutcome::Redirect(format!("{}?done=logo", app_path(client_id)))
    } else {
        ConsoleOutcome::Refused(Refused::NotFound)
    })
}

/// `POST /developer/apps/{client_id}/logo/remove`: pages show no logo for the app from now on.
pub async fn remove_logo(
    state: &AppState,
    signed_in: &SignedIn,
    client_id: &str,
) -> Result<ConsoleOutcome, Failure> {
    or_refused!(developers_app(state, signed_in, client_id).await);
    let removed = state
        .store
        .set_client_logo(client_id, None, false, state.clock.now())
        .await?;
    Ok(if removed {
        ConsoleOutcome::Redirect(format!("{}?done=logo-removed", app_path(client_id)))
    } else {
        ConsoleOutcome::Refused(Refused::NotFound)
    })
}

/// `GET /developer/apps/{client_id}/edit`.
pub async fn edit_form(
    state: &AppState,
    signed_in: &SignedIn,
    client_id: &str,
) -> Result<ConsoleOutcome, Failure> {
    let (_, client) = or_refused!(developers_app(state, signed_in, client_id).await);
    Ok(ConsoleOutcome::Form {
        editing: Some(client),
        problems: Vec::new(),
        general: Vec::new(),
    })
}

/// `POST /developer/apps/{client_id}/edit`. The type (and so whether there is a secret) is fixed when the app is
/// created: `input`'s is ignored.
pub async fn save(
    state: &AppState,
    signed_in: &SignedIn,
    client_id: &str,
    input: Result<AppInput, Problem>,
) -> Result<ConsoleOutcome, Failure> {
    let (owner, client) = or_refused!(developers_app(state, signed_in, client_id).await);
    let input = match input {
        Ok(input) => AppInput { owner, ..input },
        Err(problem) => {
            return Ok(ConsoleOutcome::Form {
                editing: Some(client),
                problems: vec![problem],
                general: Vec::new(),
            })
        }
    };
    Ok(match registration::update(state, &client, &input).await? {
        Updated::Saved(_) => {
            ConsoleOutcome::Redirect(format!("{}?done=saved", app_path(client_id)))
        }
        Updated::Gone => ConsoleOutcome::Refused(Refused::NotFound),
        Updated::Invalid(problems) => ConsoleOutcome::Form {
            editing: Some(client),
            problems,
            general: Vec::new(),
        },
    })
}

/// `POST /developer/apps/{client_id}/secret`: a new secret, shown once; the old one works for the chosen grace
/// (`grace`, the form's value in seconds: one of [`GRACE_CHOICES`]).
pub async fn rotate(
    state: &AppState,
    signed_in: &SignedIn,
    client_id: &str,
    grace: &str,
) -> Result<ConsoleOutcome, Failure> {
    let (_, client) = or_refused!(developers_app(state, signed_in, client_id).await);
    if !client.policy.is_confidential() {
        return Ok(ConsoleOutcome::Refused(Refused::NoSecret));
    }
    let Some(grace) = GRACE_CHOICES
        .iter()
        .map(|(secs, _)| *secs)
        .find(|secs| grace == secs.to_string())
        .and_then(Grace::from_secs)
    else {
        return Ok(ConsoleOutcome::Refused(Refused::GraceNotOffered));
    };
    Ok(
        match registration::rotate_secret(state, &client, grace).await? {
            Rotated::New { secret, .. } => ConsoleOutcome::Secret {
                client,
                created: false,
                secret: Some(secret),
            },
            Rotated::NoSecret => ConsoleOutcome::Refused(Refused::NoSecret),
            Rotated::Gone => ConsoleOutcome::Refused(Refused::NotFound),
        },
    )
}

/// `GET /developer/apps/{client_id}/delete`: asks first.
pub async fn delete_page(
    state: &AppState,
    signed_in: &SignedIn,
    client_id: &str,
) -> Result<ConsoleOutcome, Failure> {
    let (_, client) = or_refused!(developers_app(state, signed_in, client_id).await);
    Ok(ConsoleOutcome::ConfirmDelete(client))
}

/// `POST /developer/apps/{client_id}/delete`: deletes the app and ends every grant it holds.
pub async fn delete(
    state: &AppState,
    signed_in: &SignedIn,
    client_id: &str,
) -> Result<ConsoleOutcome, Failure> {
    or_refused!(developers_app(state, signed_in, client_id).await);
    state
        .store
        .delete_client(client_id, state.clock.now())
        .await?;
    Ok(ConsoleOutcome::Redirect(
        "/developer?done=deleted".to_owned(),
    ))
}
