//! Registering and editing a security profile (SPEC 1, 2.6): validating what a developer enters (shared by the
//! CLI and the developer console), minting its ids and secret, and applying an edit.

use crate::app::AppState;
use crate::store::{Client, Created, StoreError};
use latchkey_core::client::{ClientKind, ClientPolicy, Feature, Features};
use latchkey_core::ids;
use latchkey_core::oidc::SigningAlg;
use latchkey_core::redirect;
use latchkey_core::secret::{KeyedHasher, Kind, Secret};
use latchkey_core::Timestamp;
use rand::RngCore;

/// What a developer enters for a new app.
#[derive(Debug, Clone, Default)]
pub struct AppInput {
    pub name: String,
    pub description: String,
    pub privacy_url: String,
    pub redirect_uris: Vec<String>,
    pub allowed_origins: Vec<String>,
    /// Confidential (with a secret) unless said otherwise; fixed when the app is created.
    pub kind: ClientKind,
    /// What the app opts into (reusable refresh tokens and plain PKCE: confidential apps only).
    pub features: Features,
    pub owner: String,
    /// How the app's ID tokens are signed.
    pub id_token_alg: SigningAlg,
    /// Made by the operator (the CLI): verified from the start. The console's profiles are not (SPEC 1).
    pub verified: bool,
    /// The operator's app scopes the app may get through `client_credentials` (SPEC 1); only the operator sets
    /// them (`client add --app-scope`): the console never does, and an edit keeps them.
    pub app_scopes: Vec<String>,
}

fn check_web_url(what: &str, value: &str) -> Result<(), String> {
    let url =
        url::Url::parse(value).map_err(|_| format!("{what} \"{value}\" is not an absolute URL"))?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!("{what} \"{value}\" must use https")),
    }
}

/// An allowed origin is `scheme://host[:port]`, nothing more; `http://localhost` only for development apps, as
/// for return URLs (SPEC 2.6): a forgotten development origin would hand relay messages to any local page.
pub fn check_origin(origin: &str, development: bool) -> Result<(), String> {
    let url = url::Url::parse(origin).map_err(|_| format!("origin \"{origin}\" is not a URL"))?;
    if url.origin().ascii_serialization() != origin {
        return Err(format!(
            "origin \"{origin}\" must be just scheme://host[:port], with no path or trailing slash"
        ));
    }
    if !development && url.scheme() == "http" && url.host_str() == Some("localhost") {
        return Err(format!(
            "origin \"{origin}\" uses http://localhost, which is allowed only for apps marked as development; use https or http://127.0.0.1"
        ));
    }
    check_web_url("origin", origin)
}

/// The part of the registration form a problem is about, so the console can show it next to that field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Name,
    Description,
    PrivacyUrl,
    RedirectUris,
    AllowedOrigins,
    Flows,
    /// How ID tokens are signed (checked where the form is parsed: `AppInput` holds a valid algorithm).
    IdTokenAlg,
}

/// One problem with the input, in words for the developer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: Field,
    pub message: String,
}

/// The longest privacy notice or origin URL accepted.
pub const MAX_URL_LEN: usize = 2048;

fn check_length(what: &str, value: &str) -> Result<(), String> {
    if value.len() > MAX_URL_LEN {
        return Err(format!(
            "the {what} may be at most {MAX_URL_LEN} characters"
        ));
    }
    Ok(())
}

/// Every problem with the input, each tied to the field it is about.
pub fn validate_fields(input: &AppInput) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut add = |field: Field, message: String| problems.push(Problem { field, message });
    let public = input.kind == ClientKind::Public;
    let development = input.features.contains(Feature::Development);
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        add(
            Field::Name,
            "the app needs a name of 1 to 100 characters".to_owned(),
        );
    }
    if input.description.chars().count() > 1000 {
        add(
            Field::Description,
            "the description may be at most 1000 characters".to_owned(),
        );
    }
    if let Err(e) = check_length("privacy notice URL", &input.privacy_url)
        .and_then(|()| check_web_url("privacy notice URL", &input.privacy_url))
    {
        add(Field::PrivacyUrl, e);
    }
    if input.redirect_uris.is_empty()
        && !input.features.contains(Feature::ClientCredentials)
        && !input.features.contains(Feature::Device)
    {
        add(
            Field::RedirectUris,
            "add at least one allowed return URL".to_owned(),
        );
    }
    if input.redirect_uris.len() > 20 {
        add(Field::RedirectUris, "at most 20 return URLs".to_owned());
    }
    if input.allowed_origins.len() > 20 {
        add(Field::AllowedOrigins, "at most 20 origins".to_owned());
    }
    for uri in &input.redirect_uris {
        if let Err(e) = redirect::validate_registered(uri, development) {
            add(Field::RedirectUris, e);
        }
    }
    for origin in &input.allowed_origins {
        if let Err(e) =
            check_length("origin", origin).and_then(|()| check_origin(origin, development))
        {
            add(Field::AllowedOrigins, e);
        }
    }
    if public && input.features.contains(Feature::ClientCredentials) {
        add(
            Field::Flows,
            "a public app (no secret) cannot use client credentials".to_owned(),
        );
    }
    if !input.app_scopes.is_empty() && !input.features.contains(Feature::ClientCredentials) {
        add(
            Field::Flows,
            "app scopes are granted only through client credentials: allow that grant too"
                .to_owned(),
        );
    }
    if public && input.features.contains(Feature::PlainPkce) {
        add(
            Field::Flows,
            "a public app (no secret) must use PKCE S256; plain PKCE is only for confidential apps"
                .to_owned(),
        );
    }
    if public && input.features.contains(Feature::ReusableRefresh) {
        add(
            Field::Flows,
            "a public app (no secret) cannot have reusable refresh tokens: a stolen one would work until revoked, \
             with nothing to tell the thief from the app; they are only for confidential apps"
                .to_owned(),
        );
    }
    problems
}

/// Every problem with the input, in words for the developer.
pub fn validate(input: &AppInput) -> Vec<String> {
    validate_fields(input)
        .into_iter()
        .map(|p| p.message)
        .collect()
}

/// A validated new app and, for confidential apps, its secret (to be shown once).
pub fn new_app(
    input: &AppInput,
    hasher: &KeyedHasher,
    rng: &mut impl RngCore,
    now: Timestamp,
) -> Result<(Client, Option<Secret>), Vec<String>> {
    let problems = validate(input);
    if !problems.is_empty() {
        return Err(problems);
    }
    let secret = (input.kind == ClientKind::Confidential).then(|| ids::new_client_secret(rng));
    let client = Client {
        policy: ClientPolicy {
            client_id: ids::new_client_id(rng),
            kind: input.kind,
            redirect_uris: input.redirect_uris.clone(),
            features: input.features,
        },
        app_id: ids::new_app_id(rng),
        owner: input.owner.clone(),
        name: input.name.trim().to_owned(),
        description: input.description.clone(),
        privacy_url: input.privacy_url.clone(),
        // Set by uploading one (`flows::logo`), never at registration.
        logo: None,
        allowed_origins: input.allowed_origins.clone(),
        secret_hash: secret
            .as_ref()
            .map(|s| hasher.token(Kind::ClientSecret, s.expose())),
        prev_secret_hash: None,
        prev_secret_expires_at: None,
        created_at: now,
        id_token_alg: input.id_token_alg,
        verified: input.verified,
        app_scopes: {
            let mut scopes = input.app_scopes.clone();
            scopes.sort();
            scopes.dedup();
            scopes
        },
    };
    Ok((client, secret))
}

/// Why an app cannot be given `alg` yet: its keys have not been published long enough to sign (only just after an
/// existing installation gained its first key of `alg`; see `keys`). `None` when it can.
fn not_signing_yet(state: &AppState, alg: SigningAlg, now: Timestamp) -> Option<Problem> {
    let from = state.keys.signs_from(alg)?;
    (from > now).then(|| Problem {
        field: Field::IdTokenAlg,
        message: format!(
            "ID tokens signed with {alg} can be issued in {} s, once every relying party can have fetched the new \
             {alg} key; choose another algorithm, or try again then",
            from - now,
            alg = alg.as_str()
        ),
    })
}

/// What [`register`] did with the input.
#[derive(Debug)]
pub enum Registered {
    /// Stored; for confidential apps, with its secret (to be shown once).
    Created {
        client: Box<Client>,
        secret: Option<Secret>,
    },
    /// The input is refused, for these reasons in words for the developer.
    Refused(Vec<String>),
}

impl Registered {
    /// The app and its secret, or the reasons it was refused.
    pub fn into_result(self) -> Result<(Client, Option<Secret>), Vec<String>> {
        match self {
            Registered::Created { client, secret } => Ok((*client, secret)),
            Registered::Refused(reasons) => Err(reasons),
        }
    }
}

/// Registers a new app: validates it, makes sure its ID-token signing algorithm has a key that signs, and
/// stores it.
pub async fn register(state: &AppState, input: &AppInput) -> Result<Registered, StoreError> {
    let undefined: Vec<String> = input
        .app_scopes
        .iter()
        .filter(|s| !state.app_scopes.contains(s))
        .map(|s| {
            format!(
                "app scope {s:?} is not defined: add [scopes.{s:?}] with kind = \"app\" to the config file"
            )
        })
        .collect();
    if !undefined.is_empty() {
        return Ok(Registered::Refused(undefined));
    }
    let now = state.clock.now();
    let made = new_app(input, &state.hasher, &mut rand::thread_rng(), now);
    let (client, secret) = match made {
        Ok(made) => made,
        Err(problems) => return Ok(Registered::Refused(problems)),
    };
    state
        .keys
        .ensure(state.store.as_ref(), client.id_token_alg, now)
        .await?;
    if let Some(problem) = not_signing_yet(state, client.id_token_alg, now) {
        return Ok(Registered::Refused(vec![problem.message]));
    }
    if state.store.create_client(&client).await? == Created::AlreadyExists {
        return Err(StoreError::Corrupt("a new client id collided".into()));
    }
    Ok(Registered::Created {
        client: Box::new(client),
        secret,
    })
}

/// `client` with what a developer may edit replaced by `input` (ids, owner, type and secrets stay), if valid.
/// A change to what customers see of the app or where they are sent (name, privacy notice, return URLs, origins;
/// the logo, through `Store::set_client_logo`) makes it unverified again: the operator vouched for it as it was.
pub fn edited(client: &Client, input: &AppInput) -> Result<Client, Vec<Problem>> {
    let input = AppInput {
        kind: client.policy.kind,
        owner: client.owner.clone(),
        ..input.clone()
    };
    let problems = validate_fields(&input);
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut updated = client.clone();
    updated.policy.redirect_uris = input.redirect_uris;
    updated.policy.features = input.features;
    updated.name = input.name.trim().to_owned();
    updated.description = input.description;
    updated.privacy_url = input.privacy_url;
    updated.allowed_origins = input.allowed_origins;
    updated.id_token_alg = input.id_token_alg;
    let vouched_for = |c: &Client| {
        (
            c.name.clone(),
            c.privacy_url.clone(),
            c.policy.redirect_uris.clone(),
            c.allowed_origins.clone(),
        )
    };
    updated.verified = client.verified && vouched_for(&updated) == vouched_for(client);
    Ok(updated)
}

/// What [`update`] did with an edit.
#[derive(Debug)]
pub enum Updated {
    /// Stored, as this.
    Saved(Box<Client>),
    /// The edit is refused, for these problems.
    Invalid(Vec<Problem>),
    /// The app is gone (deleted meanwhile).
    Gone,
}

impl Updated {
    /// The stored app (`None` when it is gone), or the problems with the edit.
    pub fn into_result(self) -> Result<Option<Client>, Vec<Problem>> {
        match self {
            Updated::Saved(client) => Ok(Some(*client)),
            Updated::Invalid(problems) => Err(problems),
            Updated::Gone => Ok(None),
        }
    }
}

/// Saves an edit of `client` by its owner: validates it, makes sure its (perhaps new) ID-token algorithm has a
/// key that signs, and stores it.
pub async fn update(
    state: &AppState,
    client: &Client,
    input: &AppInput,
) -> Result<Updated, StoreError> {
    let updated = match edited(client, input) {
        Ok(updated) => updated,
        Err(problems) => return Ok(Updated::Invalid(problems)),
    };
    let now = state.clock.now();
    state
        .keys
        .ensure(state.store.as_ref(), updated.id_token_alg, now)
        .await?;
    if updated.id_token_alg != client.id_token_alg {
        if let Some(problem) = not_signing_yet(state, updated.id_token_alg, now) {
            return Ok(Updated::Invalid(vec![problem]));
        }
    }
    Ok(if state.store.update_client(&updated).await? {
        Updated::Saved(Box::new(updated))
    } else {
        Updated::Gone
    })
}

/// How long a replaced client secret keeps working: none, or up to 30 days. The one rule for the CLI (any
/// number of seconds in it) and the console (which offers a few of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grace(i64);

impl Grace {
    /// The longest grace period: 30 days.
    pub const MAX_SECS: i64 = 30 * 86_400;

    /// `secs` as a grace period, if it is one (0 to [`Grace::MAX_SECS`]).
    pub fn from_secs(secs: i64) -> Option<Grace> {
        (0..=Self::MAX_SECS).contains(&secs).then_some(Grace(secs))
    }

    pub fn secs(self) -> i64 {
        self.0
    }
}

/// What [`rotate_secret`] did.
#[derive(Debug)]
pub enum Rotated {
    /// The app's new secret (to be shown once); the previous one is accepted until `previous_valid_until`, if
    /// the grace period is not zero.
    New {
        secret: Secret,
        previous_valid_until: Option<Timestamp>,
    },
    /// A public app has no secret to replace.
    NoSecret,
    /// The app is gone (deleted meanwhile).
    Gone,
}

/// Replaces `client`'s secret with a new one; the previous one keeps working for `grace`. Used by the console
/// and `latchkey client rotate-secret` alike.
pub async fn rotate_secret(
    state: &AppState,
    client: &Client,
    grace: Grace,
) -> Result<Rotated, StoreError> {
    if !client.policy.is_confidential() {
        return Ok(Rotated::NoSecret);
    }
    let now = state.clock.now();
    let secret = ids::new_client_secret(&mut rand::thread_rng());
    let hash = state.hasher.token(Kind::ClientSecret, secret.expose());
    let previous_valid_until = (grace.secs() > 0).then_some(now + grace.secs());
    Ok(
        if state
            .store
            .set_client_secret(&client.policy.client_id, &hash, previous_valid_until)
            .await?
        {
            Rotated::New {
                secret,
                previous_valid_until,
            }
        } else {
            Rotated::Gone
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> AppInput {
        AppInput {
            name: "Shop".into(),
            privacy_url: "https://shop.example/privacy".into(),
            redirect_uris: vec!["https://shop.example/cb".into()],
            allowed_origins: vec!["https://shop.example".into()],
            owner: "dev".into(),
            ..AppInput::default()
        }
    }

    #[test]
    fn valid_input_makes_an_app_with_a_hashed_secret() {
        let h = KeyedHasher::new(&[9; 32]);
        let (client, secret) = new_app(&input(), &h, &mut rand::thread_rng(), 1).unwrap();
        let secret = secret.unwrap();
        assert_eq!(
            client.secret_hash,
            Some(h.token(Kind::ClientSecret, secret.expose()))
        );
        assert!(ids::is_client_id(&client.policy.client_id));
    }

    #[test]
    fn problems_are_named() {
        let mut bad = input();
        bad.name = " ".into();
        bad.redirect_uris = vec!["http://shop.example/cb".into()];
        bad.allowed_origins = vec!["https://shop.example/".into()];
        bad.privacy_url = "ftp://x".into();
        let problems = validate(&bad);
        assert_eq!(problems.len(), 4, "{problems:?}");
    }

    #[test]
    fn localhost_origins_only_for_development_apps() {
        let mut app = input();
        app.allowed_origins = vec!["http://localhost:3000".into()];
        let problems = validate_fields(&app);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field, Field::AllowedOrigins);
        assert!(problems[0].message.contains("development"), "{problems:?}");
        app.features.insert(Feature::Development);
        assert!(validate(&app).is_empty());
        app.features.remove(Feature::Development);
        app.allowed_origins = vec!["http://127.0.0.1:3000".into()];
        assert!(validate(&app).is_empty());
    }

    #[test]
    fn edits_of_what_customers_see_unverify() {
        let h = KeyedHasher::new(&[9; 32]);
        let made = AppInput {
            verified: true,
            ..input()
        };
        let (client, _) = new_app(&made, &h, &mut rand::thread_rng(), 1).unwrap();
        assert!(client.verified);
        let mut flows = input();
        flows.features.insert(Feature::Device);
        flows.description = "now with devices".into();
        assert!(edited(&client, &flows).unwrap().verified);
        let mut moved = input();
        moved.redirect_uris = vec!["https://elsewhere.example/cb".into()];
        assert!(!edited(&client, &moved).unwrap().verified);
        let mut renamed = input();
        renamed.name = "Latchkey Account Security".into();
        assert!(!edited(&client, &renamed).unwrap().verified);
    }

    #[test]
    fn a_grace_period_is_none_to_thirty_days() {
        assert_eq!(Grace::from_secs(0).map(Grace::secs), Some(0));
        assert_eq!(
            Grace::from_secs(30 * 86_400).map(Grace::secs),
            Some(2_592_000)
        );
        assert_eq!(Grace::from_secs(30 * 86_400 + 1), None);
        assert_eq!(Grace::from_secs(-1), None);
    }

    #[test]
    fn public_apps_cannot_opt_into_plain_pkce() {
        let mut public = input();
        public.kind = ClientKind::Public;
        assert!(validate(&public).is_empty());
        public.features.insert(Feature::PlainPkce);
        let problems = validate_fields(&public);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field, Field::Flows);
        assert!(problems[0].message.contains("S256"));
    }
}
