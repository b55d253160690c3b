//! `latchkey demo`: seeds a demo customer and a demo app, then runs the service beside a tiny relying-party site
//! on its own origin that does the whole code flow (PKCE, state, code exchange with its secret) and shows the
//! profile and tokeninfo answers.

use crate::app::AppState;
use crate::config::Config;
use crate::flows::registration::{self, AppInput};
use crate::flows::signin::{create_user, CreateUser, NewAccount};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use latchkey_core::client::{ClientKind, Feature, Features};
use latchkey_core::pkce;
use latchkey_core::secret::{self, Secret};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

pub const DEMO_EMAIL: &str = "demo@example.com";
pub const DEMO_PASSWORD: &str = "latchkey-demo";
const DEMO_CLIENT_ID: &str = "lk1.application-oa2-client.de0000000000000000000000000000de";
/// The demo TV app: public, with code-based linking, for `latchkey device-login`.
pub const DEMO_TV_CLIENT_ID: &str = "lk1.application-oa2-client.de0000000000000000000000000000dd";
/// The SDK sample site's app: public, its origin allowed, for `/sample` on the demo site.
pub const DEMO_SDK_CLIENT_ID: &str = "lk1.application-oa2-client.de0000000000000000000000000000d5";

#[derive(Template)]
#[template(path = "demo.html")]
struct DemoPage {
    issuer: String,
    error: Option<String>,
    profile: Option<String>,
    tokeninfo: String,
}

struct DemoApp {
    issuer: String,
    base: String,
    client_id: String,
    secret: Secret,
    http: reqwest::Client,
}

/// (Re)creates a demo app under a fixed client id (`…dd…` → app id `lk1.application.…`); returns its secret.
async fn put_app(
    state: &AppState,
    client_id: &str,
    input: AppInput,
) -> anyhow::Result<Option<Secret>> {
    let now = state.clock.now();
    state.store.delete_client(client_id, now).await?;
    let (mut client, secret) =
        registration::new_app(&input, &state.hasher, &mut rand::thread_rng(), now)
            .map_err(|p| anyhow::anyhow!("demo app {} is invalid: {}", input.name, p.join("; ")))?;
    client.app_id = client_id.replace("application-oa2-client", "application");
    client.policy.client_id = client_id.into();
    state.store.create_client(&client).await?;
    Ok(secret)
}

/// Seeds the demo data and returns the demo app's secret. A database that holds other accounts and was not made
/// by `latchkey demo` is refused: the demo customer's password is public, and it must not end up in a real one.
async fn seed(state: &AppState, app_base: &str) -> anyhow::Result<Secret> {
    let others = state
        .store
        .list_users()
        .await?
        .iter()
        .any(|u| u.email != DEMO_EMAIL);
    if others && state.store.find_client(DEMO_CLIENT_ID).await?.is_none() {
        anyhow::bail!(
            "this database already holds accounts that latchkey demo did not make; the demo adds a customer whose \
             password is public, so it runs only on its own database (set LATCHKEY_DATA_DIR to an empty directory)"
        );
    }
    if state.store.find_user_by_email(DEMO_EMAIL).await?.is_none() {
        let password = Secret::new(DEMO_PASSWORD);
        let account = NewAccount {
            verified: true,
            email: DEMO_EMAIL,
            name: "Demo Customer",
            postal_code: "98109",
            password: &password,
        };
        if let CreateUser::Invalid(why) = create_user(state, &account).await? {
            anyhow::bail!(why);
        }
    }
    // The demo apps are recreated on every run so that their return URLs and origins follow --app-listen.
    let web = AppInput {
        name: "Latchkey Demo App".into(),
        description: "The demo relying party started by `latchkey demo`.".into(),
        privacy_url: format!("{app_base}/privacy"),
        redirect_uris: vec![format!("{app_base}/callback")],
        allowed_origins: vec![app_base.to_owned()],
        owner: "demo".into(),
        verified: true,
        ..AppInput::default()
    };
    let secret = put_app(state, DEMO_CLIENT_ID, web).await?;
    let sample = AppInput {
        name: "Sample Shop".into(),
        description: "The SDK sample site served by `latchkey demo` at /sample.".into(),
        privacy_url: format!("{app_base}/privacy"),
        redirect_uris: vec![format!("{app_base}/sample")],
        allowed_origins: vec![app_base.to_owned()],
        kind: ClientKind::Public,
        owner: "demo".into(),
        verified: true,
        ..AppInput::default()
    };
    put_app(state, DEMO_SDK_CLIENT_ID, sample).await?;
    let tv = AppInput {
        name: "Latchkey Demo TV".into(),
        description: "The device started by `latchkey device-login`.".into(),
        privacy_url: format!("{app_base}/privacy"),
        kind: ClientKind::Public,
        features: Features::NONE.with(Feature::Device),
        owner: "demo".into(),
        verified: true,
        ..AppInput::default()
    };
    put_app(state, DEMO_TV_CLIENT_ID, tv).await?;
    secret.ok_or_else(|| anyhow::anyhow!("the demo app has no secret"))
}

pub async fn run(config: Config, app_listen: SocketAddr) -> anyhow::Result<()> {
    let (state, listener) = super::start(config).await?;
    let app_base = format!("http://{app_listen}");
    let secret = seed(&state, &app_base).await?;
    let demo_listener = tokio::net::TcpListener::bind(app_listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {app_listen} for the demo app: {e}"))?;
    let demo = Arc::new(DemoApp {
        issuer: state.issuer.clone(),
        base: app_base.clone(),
        client_id: DEMO_CLIENT_ID.into(),
        secret,
        http: reqwest::Client::new(),
    });
    let demo_router = Router::new()
        .route("/", get(home))
        .route("/login", get(login))
        .route("/callback", get(callback))
        .route("/sample", get(sample))
        .route("/whoami", get(whoami))
        .route("/privacy", get(|| async { "The demo app keeps nothing." }))
        .with_state(demo);
    println!("Latchkey is running at {} with a demo app.", state.issuer);
    println!();
    println!("  Open {app_base}/ in a browser and click “Login with Latchkey”.");
    println!("  Sign in as {DEMO_EMAIL} with the password {DEMO_PASSWORD}.");
    println!("  The JavaScript SDK sample (popup login) is at {app_base}/sample.");
    println!();
    println!("  To sign in on a device instead, run `latchkey device-login` in another terminal");
    println!(
        "  (with cargo: `cargo run -- device-login`) and enter its code at {}/code.",
        state.issuer
    );
    if let Some(outbox) = state.mailer.outbox() {
        println!();
        println!(
            "  New accounts verify their address with a mailed code. With no smtp_url, mail is written to"
        );
        println!("  {}/ (one .eml file per mail).", outbox.display());
    }
    println!();
    println!("Press Ctrl-C to stop.");
    let demo_server =
        axum::serve(demo_listener, demo_router).with_graceful_shutdown(super::shutdown_signal());
    let main_server = crate::web::serve(listener, state, super::shutdown_signal());
    let (a, b) = tokio::join!(demo_server, main_server);
    a?;
    b?;
    Ok(())
}

#[derive(Template)]
#[template(path = "sample.html")]
struct SamplePage {
    issuer: String,
    client_id: String,
}

/// `/sample`: a website using the JavaScript SDK (popup, PKCE, profile, refresh, logout). `?client_id=` picks
/// another app (one with this origin allowed).
async fn sample(State(demo): State<Arc<DemoApp>>) -> Response {
    match (SamplePage {
        issuer: demo.issuer.clone(),
        client_id: DEMO_SDK_CLIENT_ID.into(),
    })
    .render()
    {
        Ok(html) => Html(html).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response(),
    }
}

/// `/whoami`: the sample shop's server side, as an LWA site's: it reads the `amazon_Login_accessToken` cookie the SDK
/// wrote (`setUseCookie(true)`) and asks `/user/profile` with it. Answers the profile, or 401 and why.
async fn whoami(State(demo): State<Arc<DemoApp>>, headers: HeaderMap) -> Response {
    let unauthorized = |why: String| {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({ "signed_in": false, "why": why })),
        )
            .into_response()
    };
    let Some(token) = crate::web::session::get_cookie(&headers, "amazon_Login_accessToken")
        .filter(|t| !t.is_empty())
    else {
        return unauthorized("no amazon_Login_accessToken cookie".into());
    };
    let answer = demo
        .http
        .get(format!("{}/user/profile", demo.issuer))
        .bearer_auth(token)
        .send()
        .await;
    let res = match answer {
        Ok(r) => r,
        Err(e) => return unauthorized(format!("Latchkey could not be reached: {e}")),
    };
    let ok = res.status().is_success();
    let profile: serde_json::Value = res.json().await.unwrap_or_default();
    if !ok {
        return unauthorized(format!("Latchkey answered {profile}"));
    }
    axum::Json(serde_json::json!({ "signed_in": true, "profile": profile })).into_response()
}

fn page(status: StatusCode, p: DemoPage) -> Response {
    match p.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response(),
    }
}

async fn home(State(demo): State<Arc<DemoApp>>) -> Response {
    page(
        StatusCode::OK,
        DemoPage {
            issuer: demo.issuer.clone(),
            error: None,
            profile: None,
            tokeninfo: String::new(),
        },
    )
}

/// Starts a login: a fresh `state` and PKCE verifier, kept in a cookie, and a redirect to `/ap/oa`.
async fn login(State(demo): State<Arc<DemoApp>>) -> Response {
    let mut rng = rand::thread_rng();
    let flow_state = secret::mint(&mut rng, "");
    let verifier = secret::mint(&mut rng, "");
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &demo.client_id)
        .append_pair("scope", "profile postal_code")
        .append_pair("scope_data", r#"{"postal_code":{"essential":false}}"#)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", &format!("{}/callback", demo.base))
        .append_pair("state", flow_state.expose())
        .append_pair("code_challenge", &pkce::s256(verifier.expose()))
        .append_pair("code_challenge_method", "S256")
        .finish();
    let mut res = Redirect::to(&format!("{}/ap/oa?{query}", demo.issuer)).into_response();
    let cookie = format!(
        "demo_flow={}.{}; Path=/; HttpOnly; SameSite=Lax; Max-Age=600",
        flow_state.expose(),
        verifier.expose()
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

async fn callback(
    State(demo): State<Arc<DemoApp>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let fail = |msg: String| {
        page(
            StatusCode::BAD_REQUEST,
            DemoPage {
                issuer: demo.issuer.clone(),
                error: Some(msg),
                profile: None,
                tokeninfo: String::new(),
            },
        )
    };
    if let Some(error) = q.get("error") {
        return fail(format!(
            "Latchkey answered {error}: {}",
            q.get("error_description").map(String::as_str).unwrap_or("")
        ));
    }
    let flow =
        crate::web::session::get_cookie(&headers, "demo_flow").and_then(|v| v.split_once('.'));
    let (Some((expected_state, verifier)), Some(code), Some(got_state)) =
        (flow, q.get("code"), q.get("state"))
    else {
        return fail("The login could not be completed: the state cookie or the code is missing. Start again.".into());
    };
    if expected_state != got_state {
        return fail(
            "The state does not match this browser's login; the response was refused.".into(),
        );
    }
    let token: serde_json::Value = match demo
        .http
        .post(format!("{}/auth/o2/token", demo.issuer))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", &format!("{}/callback", demo.base)),
            ("client_id", &demo.client_id),
            ("client_secret", demo.secret.expose()),
            ("code_verifier", verifier),
        ])
        .send()
        .await
    {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(e) => return fail(format!("The token request failed: {e}")),
    };
    let Some(access_token) = token.get("access_token").and_then(|t| t.as_str()) else {
        return fail(format!("The token endpoint answered: {token}"));
    };
    let get = |path: &str| {
        demo.http
            .get(format!("{}{path}", demo.issuer))
            .header("x-amz-access-token", access_token)
            .send()
    };
    let profile: serde_json::Value = match get("/user/profile").await {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(e) => return fail(format!("The profile request failed: {e}")),
    };
    let info: serde_json::Value = match get("/auth/o2/tokeninfo").await {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(e) => return fail(format!("The tokeninfo request failed: {e}")),
    };
    page(
        StatusCode::OK,
        DemoPage {
            issuer: demo.issuer.clone(),
            error: None,
            profile: Some(serde_json::to_string_pretty(&profile).unwrap_or_default()),
            tokeninfo: serde_json::to_string_pretty(&info).unwrap_or_default(),
        },
    )
}
