//! The vocabulary the integration tests are written in: fresh databases, `spawn_app`, `register_app`,
//! `create_user`, a cookie-keeping `Browser` that fills the real forms, and an `oauth2` crate client as the app.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use latchkey::app::{App, AppState, Clock};
use latchkey::config::Config;
use latchkey::flows::registration::{self, AppInput};
use latchkey::flows::signin::{self, CreateUser, NewAccount};
use latchkey::keys;
use latchkey::store::{Store, StoreError, User};
use latchkey_core::oidc::SigningAlg;
use latchkey_core::secret::Secret;
use oauth2::basic::{BasicClient, BasicTokenResponse};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenUrl,
};
use scraper::{Html, Selector};
use serde_json::Value;
use std::sync::Arc;
use url::Url;

// ---------------------------------------------------------------------------------------------------------------
// Databases

/// A fresh, empty database for one test. Dropping it removes it: a SQLite file with its directory, a PostgreSQL
/// database with `DROP DATABASE … WITH (FORCE)` (see [`postgres_db`], which also removes those a crashed run left).
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL database's name, dropped with this handle.
    postgres: Option<String>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.postgres.take() else {
            return;
        };
        // Drop is synchronous and may run inside the test's runtime: a thread with its own small runtime does it,
        // on a fresh admin connection (the server's pool may still hold connections; FORCE ends them).
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async move {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&postgres_admin_url())
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<(), String>(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop a test database: {e}"),
            Err(_) => eprintln!("dropping a test database panicked"),
        }
    }
}

pub fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("latchkey.db").display()
    );
    TestDb {
        url,
        _dir: Some(dir),
        postgres: None,
    }
}

/// Whether this run is CI (`CI=true`): then a missing part (PostgreSQL, Chromium, Authlib, the ASK SDK) fails the
/// tests that need it instead of skipping them (DEVELOPERS.md).
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The PostgreSQL server the tests use (`LATCHKEY_TEST_POSTGRES`, default 127.0.0.1:5432 database `test`).
fn postgres_admin_url() -> String {
    std::env::var("LATCHKEY_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Once per test binary: drops the `lk_test_%` databases created more than an hour ago, which a run that crashed
/// or was killed left behind. Younger ones may belong to a run going on now (another checkout, another binary),
/// so they stay. A database's creation time is its `PG_VERSION` file's (reading it needs superuser or
/// `pg_read_server_files`; without that, nothing is removed).
async fn drop_leftover_databases(conn: &mut sqlx::PgConnection) {
    static ONCE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    ONCE.get_or_init(|| async {
        let old: Result<Vec<(String,)>, _> = sqlx::query_as(
            "SELECT datname::text FROM pg_database WHERE datname LIKE 'lk\\_test\\_%' \
             AND (pg_stat_file('base/' || oid || '/PG_VERSION')).modification < now() - interval '1 hour'",
        )
        .fetch_all(&mut *conn)
        .await;
        match old {
            Ok(old) => {
                for (name,) in old {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut *conn)
                        .await;
                }
            }
            Err(e) => eprintln!("not removing leftover test databases: {e}"),
        }
    })
    .await;
}

/// A fresh PostgreSQL database, or `None` when PostgreSQL is not running here. Under `CI=true` a missing
/// PostgreSQL fails the test instead: CI must exercise both engines.
pub async fn postgres_db() -> Option<TestDb> {
    use sqlx::Connection;
    let admin = postgres_admin_url();
    let mut conn = match sqlx::PgConnection::connect(&admin).await {
        Ok(c) => c,
        Err(e) => {
            if under_ci() {
                panic!("PostgreSQL is required under CI=true but {admin} is unreachable: {e}");
            }
            eprintln!("skipping: PostgreSQL at {admin} is unreachable ({e})");
            return None;
        }
    };
    drop_leftover_databases(&mut conn).await;
    let name = format!(
        "lk_test_{}",
        latchkey_core::ids::new_internal_id(&mut rand::thread_rng())
    );
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let mut url = Url::parse(&admin).unwrap();
    url.set_path(&name);
    Some(TestDb {
        url: url.to_string(),
        _dir: None,
        postgres: Some(name),
    })
}

/// Both engines: SQLite always, PostgreSQL when available (always under CI).
pub async fn each_db() -> Vec<(&'static str, TestDb)> {
    let mut dbs = vec![("sqlite", sqlite_db())];
    if let Some(pg) = postgres_db().await {
        dbs.push(("postgres", pg));
    }
    dbs
}

// ---------------------------------------------------------------------------------------------------------------
// The server

/// A running Latchkey on a real socket.
pub struct TestApp {
    pub base: String,
    pub state: AppState,
    pub db: Arc<TestDb>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The master key of every test server (base64 of 32 bytes).
pub const TEST_MASTER_KEY: &str = "dGVzdC1tYXN0ZXIta2V5LW9mLWxhdGNoa2V5LXRlc3Q=";

pub fn test_config(database_url: &str) -> Config {
    Config {
        database_url: Some(database_url.to_owned()),
        password_hash_concurrency: 2,
        // The error tables send many failures from 127.0.0.1; `hardening.rs` tests the throttle with its own limit.
        token_failure_limit: 10_000,
        // Never the developer's `latchkey-data/master.key`.
        master_key: Some(latchkey::config::SecretSetting::new(TEST_MASTER_KEY)),
        // Mail of servers with no `smtp_url` goes to the outbox here, never into the source tree.
        data_dir: std::env::temp_dir().join("latchkey-test-data"),
        ..Config::default()
    }
}

/// Starts the real router on 127.0.0.1:<random port> against `db`.
pub async fn spawn_app_on(db: Arc<TestDb>) -> TestApp {
    spawn_app_with(db, |_| {}).await
}

/// Like [`spawn_app_on`], with the configuration adjusted by `tweak`.
pub async fn spawn_app_with(db: Arc<TestDb>, tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn(db, None, tweak).await
}

/// Like [`spawn_app_on`], serving from `store` (already migrated, on `db`): a test keeps its own handle to the
/// store, e.g. to close its pool under the running server.
pub async fn spawn_app_over(db: Arc<TestDb>, store: Arc<dyn Store>) -> TestApp {
    spawn(db, Some(store), |_| {}).await
}

/// Like [`spawn_app_with`], reading `now` from `clock`: give the nodes of one test clones of one
/// [`frozen_clock`] and they agree on the time, and one `advance` moves them all.
pub async fn spawn_app_clocked(
    db: Arc<TestDb>,
    clock: Clock,
    tweak: impl FnOnce(&mut Config),
) -> TestApp {
    spawn_full(db, None, clock, tweak).await
}

/// A clock frozen at the present second: it moves only when a test advances it, so expiry is exact.
pub fn frozen_clock() -> Clock {
    Clock::frozen(Clock::system().now())
}

/// A server on a fresh SQLite database whose clock is frozen ([`frozen_clock`]).
pub async fn spawn_frozen() -> TestApp {
    spawn_app_clocked(Arc::new(sqlite_db()), frozen_clock(), |_| {}).await
}

async fn spawn(
    db: Arc<TestDb>,
    store: Option<Arc<dyn Store>>,
    tweak: impl FnOnce(&mut Config),
) -> TestApp {
    spawn_full(db, store, Clock::system(), tweak).await
}

async fn spawn_full(
    db: Arc<TestDb>,
    store: Option<Arc<dyn Store>>,
    clock: Clock,
    tweak: impl FnOnce(&mut Config),
) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut config = test_config(&db.url);
    config.listen = listener.local_addr().unwrap();
    config.issuer = Some(base.clone());
    tweak(&mut config);
    let store = match store {
        Some(store) => store,
        None => Arc::new(App::open_store(&config).await.unwrap()),
    };
    let state = App::with_store_key_maker_and_clock(config, store, test_key_maker, clock)
        .await
        .unwrap();
    state.spawn_mail_sender();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let serving = state.clone();
    tokio::spawn(async move {
        latchkey::web::serve(listener, serving, async move {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    TestApp {
        base,
        state,
        db,
        shutdown: Some(tx),
    }
}

/// How test servers make their first signing keys: every server of this process shares one pre-made RSA key
/// (generating one takes about a second, and the suite starts hundreds of fresh databases); ES256 and EdDSA keys
/// are fresh. `latchkey` itself, `App::build` and key rotation make real new keys.
fn test_key_maker(alg: SigningAlg) -> Result<Vec<u8>, StoreError> {
    static RSA: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    match alg {
        SigningAlg::Rs256 => Ok(RSA.get_or_init(|| keys::generate(alg).unwrap()).clone()),
        _ => keys::generate(alg),
    }
}

/// A server on a fresh SQLite database.
pub async fn spawn_app() -> TestApp {
    spawn_app_on(Arc::new(sqlite_db())).await
}

/// A registered app, as a developer would have it.
#[derive(Clone, Debug)]
pub struct RegisteredApp {
    pub client_id: String,
    pub secret: Option<String>,
    pub redirect_uri: String,
    pub app_id: String,
}

pub fn default_app_input() -> AppInput {
    AppInput {
        name: "Test Shop".into(),
        description: "A shop used in tests".into(),
        privacy_url: "https://shop.example/privacy".into(),
        redirect_uris: vec!["http://127.0.0.1/callback".into()],
        allowed_origins: vec!["https://shop.example".into()],
        owner: "developer-1".into(),
        // As `latchkey client add` makes it; tests of unverified apps register through /developer or unset this.
        verified: true,
        ..AppInput::default()
    }
}

/// The default password of users made by [`TestApp::create_user`].
pub const PASSWORD: &str = "correct horse battery";

impl TestApp {
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.state.store
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Registers an app; `tweak` adjusts the default input (confidential, return URL http://127.0.0.1/callback).
    pub async fn register_app(&self, tweak: impl FnOnce(&mut AppInput)) -> RegisteredApp {
        let mut input = default_app_input();
        tweak(&mut input);
        let (client, secret) = registration::register(&self.state, &input)
            .await
            .unwrap()
            .into_result()
            .unwrap();
        RegisteredApp {
            client_id: client.policy.client_id.clone(),
            secret: secret.map(|s| s.expose().to_owned()),
            redirect_uri: input.redirect_uris.first().cloned().unwrap_or_default(),
            app_id: client.app_id,
        }
    }

    /// Creates a customer with [`PASSWORD`], the way sign-up and `latchkey user add` do (or returns the one with
    /// this email address, made before).
    pub async fn create_user(&self, email: &str, name: &str, postal_code: Option<&str>) -> User {
        let password = Secret::new(PASSWORD);
        let account = NewAccount {
            verified: true,
            email,
            name,
            postal_code: postal_code.unwrap_or(""),
            password: &password,
        };
        match signin::create_user(&self.state, &account).await.unwrap() {
            CreateUser::Created(user) => user,
            CreateUser::Invalid(why) => panic!("create_user({email}): {why}"),
            // Some stories sign in twice with the same account: the one already made is the customer.
            CreateUser::AlreadyExists => self
                .store()
                .find_user_by_email(email)
                .await
                .unwrap()
                .unwrap(),
        }
    }

    /// The `oauth2` crate's client for `app`, pointed at this server's LWA endpoints.
    pub fn oauth_client(&self, app: &RegisteredApp) -> OAuthClient {
        let mut client = BasicClient::new(ClientId::new(app.client_id.clone()))
            .set_auth_uri(AuthUrl::new(self.url("/ap/oa")).unwrap())
            .set_token_uri(TokenUrl::new(self.url("/auth/o2/token")).unwrap())
            .set_redirect_uri(RedirectUrl::new(app.redirect_uri.clone()).unwrap());
        if let Some(secret) = &app.secret {
            client = client.set_client_secret(ClientSecret::new(secret.clone()));
        }
        client
    }

    /// A plain HTTP client (no cookies, no redirects) for API calls.
    pub fn api(&self) -> reqwest::Client {
        http_client()
    }

    /// A new browser.
    pub fn browser(&self) -> Browser {
        Browser::new(&self.base)
    }
}

pub type OAuthClient = oauth2::Client<
    oauth2::basic::BasicErrorResponse,
    oauth2::basic::BasicTokenResponse,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// An HTTP client whose connections come from `local` (see [`Browser::from_address`]).
pub fn http_client_from(local: std::net::IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(local)
        .build()
        .unwrap()
}

/// An HTTP client that follows no redirects (the oauth2 crate requires that too).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------------------------
// The API, spoken directly (no client library in between)

/// An HTTP answer: status, headers, the body as text, and as JSON (`Null` for an empty body).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Answer {
    /// Status and JSON body.
    pub fn parts(self) -> (u16, Value) {
        (self.status, self.json)
    }

    /// A header's value, if present (panics if it is not visible ASCII).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// Reads `res` whole; a non-empty body must be JSON.
pub async fn answer(res: reqwest::Response) -> Answer {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {text}"))
    };
    Answer {
        status,
        headers,
        text,
        json,
    }
}

/// What the `expect_*` checks accept: an [`Answer`], or a response still to be read.
pub trait Answered {
    fn answered(self) -> impl std::future::Future<Output = Answer>;
}

impl Answered for Answer {
    async fn answered(self) -> Answer {
        self
    }
}

impl Answered for reqwest::Response {
    async fn answered(self) -> Answer {
        answer(self).await
    }
}

/// `POST path` with `body` sent as is (`application/x-www-form-urlencoded`), the client optionally
/// authenticated with HTTP Basic.
pub async fn post_body(
    app: &TestApp,
    path: &str,
    body: &str,
    basic: Option<(&str, &str)>,
) -> reqwest::Response {
    let mut req = app
        .api()
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned());
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    req.send().await.unwrap()
}

/// `pairs` as an `application/x-www-form-urlencoded` body (a name given twice is sent twice).
pub fn form_body(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// `POST path` with a form body.
pub async fn post_form(app: &TestApp, path: &str, form: &[(&str, &str)]) -> Answer {
    answer(post_body(app, path, &form_body(form), None).await).await
}

/// How a resource request presents its access token (SPEC 2.4, 2.5).
#[derive(Clone, Copy, Debug)]
pub enum Presented {
    /// `Authorization: Bearer`.
    Bearer,
    /// `?access_token=`.
    Query,
    /// LWA's `x-amz-access-token` header.
    AmzHeader,
}

/// `GET path` on the resource side with `token` presented `how`.
pub async fn get_with_token(app: &TestApp, path: &str, token: &str, how: Presented) -> Answer {
    let api = app.api();
    let request = match how {
        Presented::Bearer => api.get(app.url(path)).bearer_auth(token),
        Presented::Query => {
            api.get(Url::parse_with_params(&app.url(path), [("access_token", token)]).unwrap())
        }
        Presented::AmzHeader => api.get(app.url(path)).header("x-amz-access-token", token),
    };
    answer(request.send().await.unwrap()).await
}

/// `GET /auth/o2/tokeninfo?access_token=…`.
pub async fn tokeninfo(app: &TestApp, token: &str) -> Answer {
    get_with_token(app, "/auth/o2/tokeninfo", token, Presented::Query).await
}

/// `GET /auth/o2/tokeninfo` with the `x-amz-access-token` header.
pub async fn tokeninfo_by_header(app: &TestApp, token: &str) -> Answer {
    get_with_token(app, "/auth/o2/tokeninfo", token, Presented::AmzHeader).await
}

/// `GET /user/profile` with the token presented `how`.
pub async fn profile(app: &TestApp, token: &str, how: Presented) -> Answer {
    get_with_token(app, "/user/profile", token, how).await
}

/// What an error description must be: exactly this, or mention this.
#[derive(Clone, Copy, Debug)]
pub enum Says {
    Exactly(&'static str),
    Mentions(&'static str),
}

pub fn check_description(label: &str, description: &str, says: Says) {
    match says {
        Says::Exactly(d) => assert_eq!(description, d, "{label}"),
        Says::Mentions(d) => assert!(
            description.contains(d),
            "{label}: description {description:?} should mention {d:?}"
        ),
    }
}

/// A header's value as text, or "" when absent.
pub fn header(h: &reqwest::header::HeaderMap, name: &str) -> String {
    h.get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default()
}

/// A token-endpoint error (SPEC 2.2): status, JSON `{error, error_description}`, `no-store`, and for 401 a
/// `WWW-Authenticate` challenge.
pub async fn expect_token_error(
    label: &str,
    res: impl Answered,
    status: u16,
    error: &str,
    says: Says,
) {
    let a = res.answered().await;
    assert_eq!(a.status, status, "{label}: {}", a.text);
    assert!(
        header(&a.headers, "content-type").starts_with("application/json"),
        "{label}: content-type {:?}",
        header(&a.headers, "content-type")
    );
    assert_eq!(header(&a.headers, "cache-control"), "no-store", "{label}");
    assert_eq!(header(&a.headers, "pragma"), "no-cache", "{label}");
    if status == 401 {
        assert!(
            header(&a.headers, "www-authenticate").starts_with("Basic"),
            "{label}: a 401 needs a Basic challenge, got {:?}",
            header(&a.headers, "www-authenticate")
        );
    }
    check_error_body(label, &a, error, says);
}

/// A resource-endpoint error (SPEC 2.4, 2.5).
pub async fn expect_resource_error(
    label: &str,
    res: impl Answered,
    status: u16,
    error: &str,
    says: Says,
) {
    let a = res.answered().await;
    assert_eq!(a.status, status, "{label}: {}", a.text);
    check_error_body(label, &a, error, says);
}

/// The JSON error body both endpoint families send: `error`, and an `error_description` that `says`.
fn check_error_body(label: &str, a: &Answer, error: &str, says: Says) {
    assert_eq!(a.json["error"], error, "{label}: {}", a.json);
    check_description(label, a.json["error_description"].as_str().unwrap(), says);
}

// ---------------------------------------------------------------------------------------------------------------
// One world most API tests start from

/// The customer every [`World`] has signed in.
pub const EMAIL: &str = "ada@example.com";
pub const NAME: &str = "Ada Lovelace";
pub const POSTAL_CODE: &str = "98101";

/// A server, one registered app (`shop`, confidential unless the tweak says otherwise) with its `oauth2` client,
/// and a customer ([`EMAIL`], [`NAME`], [`POSTAL_CODE`], [`PASSWORD`]) signed in on `browser`.
pub struct World {
    pub app: TestApp,
    pub shop: RegisteredApp,
    pub client: OAuthClient,
    pub user: User,
    pub browser: Browser,
}

impl World {
    /// On a fresh SQLite server whose clock is frozen ([`spawn_frozen`]): expiry is exact.
    pub async fn new(tweak: impl FnOnce(&mut AppInput)) -> World {
        World::on(spawn_frozen().await, tweak).await
    }

    /// On `app`, with the shop registered from the default input adjusted by `tweak`.
    pub async fn on(app: TestApp, tweak: impl FnOnce(&mut AppInput)) -> World {
        let shop = app.register_app(tweak).await;
        let client = app.oauth_client(&shop);
        let user = app.create_user(EMAIL, NAME, Some(POSTAL_CODE)).await;
        let browser = app.browser();
        let (status, url, _) = browser.sign_in(EMAIL, PASSWORD).await.page();
        assert_eq!(status, 200, "signing in ended at {url}");
        World {
            app,
            shop,
            client,
            user,
            browser,
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The browser

/// Where a browser ended up after following Latchkey's redirects.
#[derive(Debug)]
pub enum Step {
    /// A page on Latchkey.
    Page {
        status: u16,
        url: String,
        html: String,
    },
    /// A redirect away from Latchkey (back to the app), not followed; Latchkey's are checked to be 303.
    LeftTo(Url),
}

impl Step {
    /// The page, or a panic saying where the browser went instead.
    pub fn page(self) -> (u16, String, String) {
        match self {
            Step::Page { status, url, html } => (status, url, html),
            Step::LeftTo(u) => panic!("expected a Latchkey page, but the browser was sent to {u}"),
        }
    }
    /// The redirect back to the app, or a panic showing the page instead.
    pub fn left_to(self) -> Url {
        match self {
            Step::LeftTo(u) => u,
            Step::Page { status, url, html } => {
                panic!("expected a redirect to the app, got {status} at {url}:\n{html}")
            }
        }
    }
    /// A query parameter of the redirect back to the app.
    pub fn param(url: &Url, name: &str) -> Option<String> {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// A cookie-keeping HTTP client that behaves like a browser on Latchkey's pages: it follows redirects within
/// Latchkey, stops at redirects to the app, and submits the real forms with the fields they contain.
pub struct Browser {
    pub http: reqwest::Client,
    base: Url,
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        Browser::from_address(base, None)
    }

    /// A browser whose connections come from `local` (any 127.0.0.0/8 address on loopback): another customer,
    /// as far as per-address limits can tell.
    pub fn from_address(base: &str, local: Option<std::net::IpAddr>) -> Browser {
        Browser::built(base, local, "latchkey-tests")
    }

    /// A browser that names itself `user_agent` (the security activity shows it).
    pub fn with_user_agent(base: &str, user_agent: &str) -> Browser {
        Browser::built(base, None, user_agent)
    }

    fn built(base: &str, local: Option<std::net::IpAddr>, user_agent: &str) -> Browser {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .user_agent(user_agent.to_owned())
            .redirect(reqwest::redirect::Policy::none())
            .local_address(local)
            .build()
            .unwrap();
        Browser {
            http,
            base: Url::parse(base).unwrap(),
        }
    }

    /// The server's base URL, with its trailing slash.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    async fn settle(&self, mut res: reqwest::Response) -> Step {
        loop {
            let url = res.url().clone();
            if res.status().is_redirection() {
                let location = res
                    .headers()
                    .get("location")
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                let next = url.join(&location).unwrap();
                if next.origin() != self.base.origin() {
                    // Latchkey sends a browser back to an app only with an authorization response: 303 See
                    // Other, whatever the request's method (SPEC 2.1).
                    if url.origin() == self.base.origin() {
                        assert_eq!(
                            res.status().as_u16(),
                            303,
                            "the authorization response to {next} must be a 303 See Other"
                        );
                    }
                    return Step::LeftTo(next);
                }
                res = self.http.get(next).send().await.unwrap();
                continue;
            }
            let status = res.status().as_u16();
            return Step::Page {
                status,
                url: url.to_string(),
                html: res.text().await.unwrap(),
            };
        }
    }

    /// Opens `url` (absolute, or a path on Latchkey) and follows redirects within Latchkey.
    pub async fn open(&self, url: &str) -> Step {
        let url = self.base.join(url).unwrap();
        let res = self.http.get(url).send().await.unwrap();
        self.settle(res).await
    }

    /// Submits the form whose `action` ends with `action`, found in `html` (fetched from `page_url`): the form's
    /// own fields (hidden and visible inputs, checked checkboxes, text areas, selected options), then `fields`
    /// set over them (a name given twice sends both values), then the
    /// `button` (name, value) pressed. Unticks checkboxes whose `value` is in `untick`.
    pub async fn submit(
        &self,
        page_url: &str,
        html: &str,
        action: &str,
        fields: &[(&str, &str)],
        button: Option<(&str, &str)>,
        untick: &[&str],
    ) -> Step {
        let res = self
            .submit_answer(page_url, html, action, fields, button, untick)
            .await;
        self.settle(res).await
    }

    /// Like [`Browser::submit`], but returns the answer to the POST itself (status and headers), unfollowed.
    pub async fn submit_answer(
        &self,
        page_url: &str,
        html: &str,
        action: &str,
        fields: &[(&str, &str)],
        button: Option<(&str, &str)>,
        untick: &[&str],
    ) -> reqwest::Response {
        let (target, pairs) = {
            let doc = Html::parse_document(html);
            let form_sel = Selector::parse("form").unwrap();
            let input_sel = Selector::parse("input").unwrap();
            let form = doc
                .select(&form_sel)
                .find(|f| {
                    f.value()
                        .attr("action")
                        .is_some_and(|a| a.ends_with(action))
                })
                .unwrap_or_else(|| panic!("no form with action {action} in:\n{html}"));
            let mut pairs: Vec<(String, String)> = Vec::new();
            for input in form.select(&input_sel) {
                let v = input.value();
                let (Some(name), kind) = (v.attr("name"), v.attr("type").unwrap_or("text")) else {
                    continue;
                };
                let value = v.attr("value").unwrap_or("").to_owned();
                match kind {
                    "checkbox" | "radio" => {
                        if v.attr("checked").is_some() && !untick.contains(&value.as_str()) {
                            pairs.push((name.to_owned(), value));
                        }
                    }
                    "submit" => {}
                    _ => pairs.push((name.to_owned(), value)),
                }
            }
            let textarea_sel = Selector::parse("textarea").unwrap();
            for area in form.select(&textarea_sel) {
                if let Some(name) = area.value().attr("name") {
                    pairs.push((name.to_owned(), area.text().collect()));
                }
            }
            let select_sel = Selector::parse("select").unwrap();
            let option_sel = Selector::parse("option").unwrap();
            for select in form.select(&select_sel) {
                let Some(name) = select.value().attr("name") else {
                    continue;
                };
                let options: Vec<_> = select.select(&option_sel).collect();
                let chosen = options
                    .iter()
                    .find(|o| o.value().attr("selected").is_some())
                    .or(options.first());
                if let Some(option) = chosen {
                    let value = option.value().attr("value").unwrap_or_default();
                    pairs.push((name.to_owned(), value.to_owned()));
                }
            }
            // A field given here replaces the form's; a name given twice sends both values.
            pairs.retain(|(n, _)| !fields.iter().any(|(name, _)| name == n));
            for (name, value) in fields {
                pairs.push(((*name).to_owned(), (*value).to_owned()));
            }
            if let Some((name, value)) = button {
                pairs.push((name.to_owned(), value.to_owned()));
            }
            let target = Url::parse(page_url)
                .unwrap()
                .join(form.value().attr("action").unwrap())
                .unwrap();
            (target, pairs)
        };
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.http
            .post(target)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// On a sign-in page, signs in; returns where the browser ends up.
    pub async fn sign_in_on(&self, step: Step, email: &str, password: &str) -> Step {
        let (status, url, html) = step.page();
        assert_eq!(status, 200, "expected the sign-in page at {url}");
        assert!(
            url.contains("/ap/signin"),
            "expected the sign-in page, got {url}"
        );
        self.submit(
            &url,
            &html,
            "/ap/signin",
            &[("email", email), ("password", password)],
            None,
            &[],
        )
        .await
    }

    /// Signs in directly at /ap/signin.
    pub async fn sign_in(&self, email: &str, password: &str) -> Step {
        let page = self.open("/ap/signin").await;
        self.sign_in_on(page, email, password).await
    }

    /// On a consent page, presses Allow (unticking `untick`) or Cancel.
    pub async fn consent_on(&self, step: Step, allow: bool, untick: &[&str]) -> Step {
        let (status, url, html) = step.page();
        assert_eq!(status, 200, "expected the consent page at {url}:\n{html}");
        assert!(
            html.contains("would like to use your Latchkey account"),
            "expected the consent page:\n{html}"
        );
        let button = ("decision", if allow { "allow" } else { "cancel" });
        self.submit(&url, &html, "/ap/oa/consent", &[], Some(button), untick)
            .await
    }

    /// On a "Continue to <app>?" page (a native app, RFC 8252 8.6), presses Continue or Cancel.
    pub async fn confirm_on(&self, step: Step, proceed: bool) -> Step {
        assert!(
            is_confirm_page(&step),
            "expected the confirmation page: {step:?}"
        );
        let (_, url, html) = step.page();
        let button = ("decision", if proceed { "allow" } else { "cancel" });
        self.submit(&url, &html, "/ap/oa/consent", &[], Some(button), &[])
            .await
    }
}

impl Browser {
    /// Submits the `multipart/form-data` form whose `action` ends with `action` as a browser does: its hidden
    /// fields in order, then the file input named `file_field` holding `bytes` as `filename` of type `mime`.
    /// Returns the answer to the POST itself, unfollowed.
    pub async fn upload_answer(
        &self,
        page_url: &str,
        html: &str,
        action: &str,
        file_field: &str,
        (filename, mime, bytes): (&str, &str, Vec<u8>),
    ) -> reqwest::Response {
        let (target, hidden) = {
            let doc = Html::parse_document(html);
            let form = doc
                .select(&Selector::parse("form").unwrap())
                .find(|f| {
                    f.value()
                        .attr("action")
                        .is_some_and(|a| a.ends_with(action))
                })
                .unwrap_or_else(|| panic!("no form with action {action} in:\n{html}"));
            assert_eq!(
                form.value().attr("enctype"),
                Some("multipart/form-data"),
                "a file form must be multipart"
            );
            let file_sel =
                Selector::parse(&format!("input[type=file][name={file_field}]")).unwrap();
            assert!(
                form.select(&file_sel).next().is_some(),
                "no file input {file_field}"
            );
            let hidden: Vec<(String, String)> = form
                .select(&Selector::parse("input[type=hidden]").unwrap())
                .filter_map(|i| {
                    let v = i.value();
                    Some((
                        v.attr("name")?.to_owned(),
                        v.attr("value").unwrap_or("").to_owned(),
                    ))
                })
                .collect();
            let target = Url::parse(page_url)
                .unwrap()
                .join(form.value().attr("action").unwrap())
                .unwrap();
            (target, hidden)
        };
        let mut body = reqwest::multipart::Form::new();
        for (name, value) in hidden {
            body = body.text(name, value);
        }
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(filename.to_owned())
            .mime_str(mime)
            .unwrap();
        body = body.part(file_field.to_owned(), part);
        self.http.post(target).multipart(body).send().await.unwrap()
    }

    /// Like [`Browser::upload_answer`], following redirects within Latchkey.
    pub async fn upload(
        &self,
        page_url: &str,
        html: &str,
        action: &str,
        file_field: &str,
        file: (&str, &str, Vec<u8>),
    ) -> Step {
        let res = self
            .upload_answer(page_url, html, action, file_field, file)
            .await;
        self.settle(res).await
    }
}

/// Whether `step` is the "Continue to <app>?" page a native app's sign-in always shows (RFC 8252 8.6).
pub fn is_confirm_page(step: &Step) -> bool {
    matches!(step, Step::Page { status: 200, html, .. } if html.contains("<h1>Continue to "))
}

/// Runs the whole browser part of a login: open `authorize_url`, sign in if asked, allow if asked (and continue
/// if asked to confirm a native app); returns the redirect back to the app.
pub async fn login_through(browser: &Browser, authorize_url: &str, email: &str) -> Url {
    let mut step = browser.open(authorize_url).await;
    if let Step::Page { url, .. } = &step {
        if url.contains("/ap/signin") {
            step = browser.sign_in_on(step, email, PASSWORD).await;
        }
    }
    if let Step::Page { html, .. } = &step {
        if html.contains("would like to use your Latchkey account") {
            step = browser.consent_on(step, true, &[]).await;
        }
    }
    if is_confirm_page(&step) {
        step = browser.confirm_on(step, true).await;
    }
    step.left_to()
}

// ---------------------------------------------------------------------------------------------------------------
// A real reverse proxy

/// nginx (Debian's package, installed by `.ci/run`) in front of a server, as operators deploy it: it appends the
/// client's address to `X-Forwarded-For`. Stopped when dropped.
pub struct Nginx {
    pub base: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    /// nginx appending the client to `X-Forwarded-For`.
    pub async fn start(upstream: &str) -> Nginx {
        Nginx::start_with(
            upstream,
            "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        )
        .await
    }

    /// nginx with `directive` saying how it forwards the client's address.
    pub async fn start_with(upstream: &str, directive: &str) -> Nginx {
        let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("nginx is not installed (.ci/run installs Debian's nginx-light)");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = root.display();
        let upstream = upstream.trim_start_matches("http://");
        let conf = format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               server {{\n    listen 127.0.0.1:{port};\n    location / {{\n\
                 proxy_pass http://{upstream};\n      proxy_set_header Host $http_host;\n\
                 {directive}\n    }}\n  }}\n}}\n"
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = std::process::Command::new(binary)
            .args(["-e", &format!("{d}/error.log"), "-p"])
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let nginx = Nginx {
            base: format!("http://127.0.0.1:{port}"),
            child,
            _dir: dir,
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return nginx;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let log = std::fs::read_to_string(format!("{d}/error.log")).unwrap_or_default();
        panic!("nginx did not start on port {port}:\n{log}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The code flow, as an app runs it

/// An authorization request (PKCE S256) from `client` for space-separated `scopes`, with `extra` parameters.
/// Returns the URL, its `state` and the PKCE verifier.
pub fn pkce_request(
    client: &OAuthClient,
    scopes: &str,
    extra: &[(&str, &str)],
) -> (String, String, PkceCodeVerifier) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge);
    for scope in scopes.split(' ') {
        request = request.add_scope(Scope::new(scope.to_owned()));
    }
    for (k, v) in extra {
        request = request.add_extra_param(k.to_string(), v.to_string());
    }
    let (url, state) = request.url();
    (url.to_string(), state.secret().clone(), verifier)
}

/// The whole code flow (PKCE S256) for `scopes` with `client`, consenting if asked.
pub async fn tokens_with(w: &World, client: &OAuthClient, scopes: &str) -> BasicTokenResponse {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge);
    for scope in scopes.split(' ') {
        request = request.add_scope(Scope::new(scope.to_owned()));
    }
    let (url, state) = request.url();
    let back = login_through(&w.browser, url.as_str(), EMAIL).await;
    assert_eq!(
        Step::param(&back, "state").as_deref(),
        Some(state.secret().as_str())
    );
    let code = Step::param(&back, "code").unwrap_or_else(|| panic!("no code in {back}"));
    client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http_client())
        .await
        .unwrap()
}
