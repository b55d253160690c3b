//! The built `latchkey` binary as an operator runs it (SPEC 5): `serve` with no configuration in an empty
//! directory, the health and metrics endpoints, JSON log lines with request ids and no secrets, the CLI against the
//! same data directory, and a graceful exit on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::*;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge, RedirectUrl,
    Scope, TokenResponse, TokenUrl,
};
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_latchkey");

/// `latchkey <args>` in `dir`, with every `LATCHKEY_*` variable removed: no configuration at all.
fn command(dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(BIN);
    cmd.current_dir(dir);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("LATCHKEY_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// Runs a CLI command to completion, feeding `stdin`; returns (success, stdout, stderr).
fn cli(dir: &Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = command(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Runs a CLI command that must succeed and print JSON.
fn cli_json(dir: &Path, args: &[&str], stdin: &str) -> serde_json::Value {
    let (ok, stdout, stderr) = cli(dir, args, stdin);
    assert!(ok, "latchkey {args:?} failed:\n{stderr}");
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("latchkey {args:?} printed no JSON ({e}):\n{stdout}"))
}

/// A running `latchkey serve` and everything it has written so far.
struct Server {
    child: tokio::process::Child,
    base: String,
    /// The admin listener's base URL (`/metrics`).
    admin: String,
    output: Arc<Mutex<Vec<String>>>,
    /// The tasks reading stdout and stderr into `output`; each ends when its pipe closes.
    collectors: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// What the server has written so far (it may still be writing).
    fn lines(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }

    /// Everything the server ever wrote: call after it exited. Waits until both pipes are closed and drained, so
    /// that a negative check ("no secret appears") sees every line.
    async fn all_lines(&mut self) -> Vec<String> {
        join_collectors(&mut self.collectors).await;
        self.lines()
    }
}

fn collect(
    stream: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    into: Arc<Mutex<Vec<String>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            into.lock().unwrap().push(line);
        }
    })
}

/// Waits for the output collectors of an exited process: its pipes close at exit, so they end.
async fn join_collectors(collectors: &mut Vec<tokio::task::JoinHandle<()>>) {
    for task in collectors.drain(..) {
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("the output pipes close within 20 s of the exit")
            .unwrap();
    }
}

/// Any free port on loopback, chosen by the kernel when the server binds (no bind-drop-reuse race): the server's
/// "listening" log line says which.
fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Starts `latchkey serve` in `dir`; with `listen`, sets only `LATCHKEY_LISTEN`. Waits for the "listening" log
/// line (so that we never talk to some other program on the port), or returns the output if it exited instead.
async fn serve(dir: &Path, listen: Option<SocketAddr>) -> Result<Server, Vec<String>> {
    serve_env(dir, listen, &[]).await
}

/// [`serve`], with `env` set too.
async fn serve_env(
    dir: &Path,
    listen: Option<SocketAddr>,
    env: &[(&str, &str)],
) -> Result<Server, Vec<String>> {
    let mut cmd = tokio::process::Command::from(command(dir));
    cmd.envs(env.iter().copied());
    cmd.arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(addr) = listen {
        cmd.env("LATCHKEY_LISTEN", addr.to_string());
        cmd.env("LATCHKEY_ADMIN_LISTEN", any_port().to_string());
    }
    let mut child = cmd.spawn().unwrap();
    let output = Arc::new(Mutex::new(Vec::new()));
    let mut collectors = vec![
        collect(child.stdout.take().unwrap(), output.clone()),
        collect(child.stderr.take().unwrap(), output.clone()),
    ];
    for _ in 0..600 {
        let listening = output
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["message"] == "latchkey is listening");
        if let Some(line) = listening {
            let addr = line["listen"].as_str().unwrap().to_owned();
            let scheme = line["scheme"].as_str().unwrap_or("http").to_owned();
            return Ok(Server {
                admin: format!("http://{}", line["admin"].as_str().unwrap()),
                child,
                base: format!("{scheme}://{addr}"),
                output,
                collectors,
            });
        }
        if child.try_wait().unwrap().is_some() {
            join_collectors(&mut collectors).await;
            return Err(output.lock().unwrap().clone());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "latchkey serve did not start in 30 s:\n{}",
        output.lock().unwrap().join("\n")
    );
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `latchkey serve` with no configuration at all if the default address 127.0.0.1:8080 is free; otherwise (another
/// program has it) with only `LATCHKEY_LISTEN` set.
async fn serve_unconfigured(dir: &Path) -> Server {
    let default: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    if std::net::TcpListener::bind(default).is_ok() {
        match serve(dir, None).await {
            Ok(server) => {
                assert_eq!(server.base, "http://127.0.0.1:8080");
                assert_eq!(server.admin, "http://127.0.0.1:9480");
                return server;
            }
            Err(output) => {
                let text = output.join("\n");
                assert!(
                    text.contains("cannot listen"),
                    "latchkey serve failed:\n{text}"
                );
                eprintln!("127.0.0.1:8080 was taken meanwhile; using LATCHKEY_LISTEN");
            }
        }
    }
    serve(dir, Some(any_port()))
        .await
        .unwrap_or_else(|out| panic!("latchkey serve failed:\n{}", out.join("\n")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_no_configuration_logs_json_without_secrets_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve_unconfigured(dir.path()).await;
    let base = server.base.clone();
    let http = http_client();

    // Health, readiness, metrics.
    let res = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "ready");

    // The embedded database lives in ./latchkey-data of the working directory.
    let db_file = dir.path().join("latchkey-data").join("latchkey.db");
    assert!(db_file.is_file(), "{} was not created", db_file.display());

    // The CLI works on the same data directory while the server runs.
    let password = "a long and secret password 42";
    let user = cli_json(
        dir.path(),
        &[
            "user",
            "add",
            "--email",
            "Ada@Example.com",
            "--name",
            "Ada Lovelace",
            "--password-stdin",
            "--json",
        ],
        &format!("{password}\n"),
    );
    assert_eq!(user["email"], "ada@example.com");
    assert!(
        user.get("password").is_none(),
        "a password read from stdin is not echoed: {user}"
    );
    let app = cli_json(
        dir.path(),
        &[
            "client",
            "add",
            "--name",
            "Shop",
            "--privacy-url",
            "https://shop.example/privacy",
            "--redirect-uri",
            "http://127.0.0.1/callback",
            "--json",
        ],
        "",
    );
    let client_id = app["client_id"].as_str().unwrap().to_owned();
    let client_secret = app["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(client_secret.len(), 64);

    // A whole login against the binary: sign in, allow, exchange the code with the secret, refresh, read.
    let oauth = BasicClient::new(ClientId::new(client_id.clone()))
        .set_client_secret(ClientSecret::new(client_secret.clone()))
        .set_auth_uri(AuthUrl::new(format!("{base}/ap/oa")).unwrap())
        .set_token_uri(TokenUrl::new(format!("{base}/auth/o2/token")).unwrap())
        .set_redirect_uri(RedirectUrl::new("http://127.0.0.1/callback".into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _) = oauth
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    let browser = Browser::new(&base);
    let signin = browser.open(url.as_str()).await;
    let consent = browser
        .sign_in_on(signin, "ada@example.com", password)
        .await;
    let back = browser.consent_on(consent, true, &[]).await.left_to();
    let code = Step::param(&back, "code").unwrap();
    let token = oauth
        .exchange_code(AuthorizationCode::new(code.clone()))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let refresh = token.refresh_token().unwrap().secret().clone();
    let refreshed = oauth
        .exchange_refresh_token(token.refresh_token().unwrap())
        .request_async(&http)
        .await
        .unwrap();
    let access = refreshed.access_token().secret().clone();
    let new_refresh = refreshed.refresh_token().unwrap().secret().clone();
    let res = http
        .get(format!("{base}/auth/o2/tokeninfo"))
        .query(&[("access_token", access.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let info: serde_json::Value = res.json().await.unwrap();
    assert_eq!(info["aud"], client_id.as_str());

    // A bad request gets the standard JSON error, and its request id back.
    let res = http
        .post(format!("{base}/auth/o2/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", client_id.as_str()),
            ("client_secret", "not-the-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let failed_request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert!(body["error_description"].is_string(), "{body}");
    let res = http
        .post(format!("{base}/auth/o2/token"))
        .form(&[("grant_type", "password"), ("username", "ada@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_grant_type");

    // Metrics in the Prometheus text format, counting what just happened, on the admin listener only.
    let res = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 404, "/metrics is not on the public listener");
    let res = http
        .get(format!("{}/metrics", server.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text")
            || content_type.starts_with("text/plain"),
        "{content_type}"
    );
    let metrics = res.text().await.unwrap();
    assert!(
        metrics.contains("# TYPE latchkey_http_requests counter"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"latchkey_tokens_issued_total{grant="authorization_code"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"latchkey_tokens_issued_total{grant="refresh_token"} 1"#),
        "{metrics}"
    );
    assert!(metrics.trim_end().ends_with("# EOF"), "{metrics}");

    // SIGTERM: a graceful exit with status 0.
    let pid = server.child.id().unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), server.child.wait())
        .await
        .expect("latchkey exits within 20 s of SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0), "exit status {status:?}");

    // Every line of output is a JSON object; requests carry their ids; nothing secret appears anywhere. Read after
    // the exit with both pipes drained: a line still in flight would make "nothing secret" vacuous.
    let lines = server.all_lines().await;
    assert!(!lines.is_empty());
    let records: Vec<serde_json::Value> = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {l}"))
        })
        .collect();
    assert!(records
        .iter()
        .all(|r| r.is_object() && r["level"].is_string()));
    let responses: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["message"] == "response")
        .collect();
    assert!(responses.len() >= 10, "{lines:#?}");
    for r in &responses {
        let id = r["span"]["request_id"].as_str().unwrap_or_default();
        assert!(
            id.len() >= 32,
            "a response logged without a request id: {r}"
        );
    }
    assert!(
        responses
            .iter()
            .any(|r| r["span"]["request_id"] == failed_request_id.as_str() && r["status"] == 401),
        "the failed request is logged with the id it was answered with"
    );
    assert!(
        records.iter().any(|r| r["message"]
            .as_str()
            .is_some_and(|m| m.contains("shutting down"))),
        "the shutdown is logged"
    );
    let all = lines.join("\n");
    for (what, secret) in [
        ("password", password),
        ("client secret", client_secret.as_str()),
        ("authorization code", code.as_str()),
        ("access token", token.access_token().secret().as_str()),
        ("refresh token", refresh.as_str()),
        ("rotated access token", access.as_str()),
        ("rotated refresh token", new_refresh.as_str()),
        ("wrong secret", "not-the-secret"),
    ] {
        assert!(
            !all.contains(secret),
            "the {what} appears in the logs:\n{all}"
        );
    }
}

#[test]
fn the_cli_adds_and_lists_users_and_clients_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let added = cli_json(
        d,
        &[
            "client",
            "add",
            "--name",
            "Shop",
            "--privacy-url",
            "https://shop.example/privacy",
            "--redirect-uri",
            "https://shop.example/cb",
            "--redirect-uri",
            "http://127.0.0.1/callback",
            "--origin",
            "https://shop.example",
            "--json",
        ],
        "",
    );
    let client_id = added["client_id"].as_str().unwrap();
    assert!(
        client_id.starts_with("lk1.application-oa2-client."),
        "{added}"
    );
    assert!(added["app_id"]
        .as_str()
        .unwrap()
        .starts_with("lk1.application."));
    assert_eq!(added["confidential"], true);
    assert_eq!(added["client_secret"].as_str().unwrap().len(), 64);
    assert_eq!(added["id_token_alg"], "RS256", "RS256 by default: {added}");
    let public = cli_json(
        d,
        &[
            "client",
            "add",
            "--name",
            "Phone app",
            "--privacy-url",
            "https://shop.example/privacy",
            "--redirect-uri",
            "http://127.0.0.1/callback",
            "--public",
            "--json",
        ],
        "",
    );
    assert_eq!(public["confidential"], false);
    assert!(public["client_secret"].is_null(), "{public}");

    let listed = cli_json(d, &["client", "list", "--json"], "");
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let shop = listed
        .iter()
        .find(|c| c["client_id"] == client_id)
        .expect("the new app is listed");
    assert_eq!(shop["name"], "Shop");
    assert_eq!(
        shop["redirect_uris"],
        serde_json::json!(["https://shop.example/cb", "http://127.0.0.1/callback"])
    );
    assert_eq!(
        shop["allowed_origins"],
        serde_json::json!(["https://shop.example"])
    );
    assert!(
        listed.iter().all(|c| c.get("client_secret").is_none()),
        "a listing never shows a secret"
    );
    let shown = cli_json(d, &["client", "show", client_id, "--json"], "");
    assert_eq!(&shown, shop);
    assert_eq!(
        shop["verified"], true,
        "an app the operator adds is verified"
    );
    let verified = cli_json(d, &["client", "verify", client_id, "--json"], "");
    assert_eq!(&verified, shop, "verifying a verified app changes nothing");
    let (ok, _, stderr) = cli(
        d,
        &[
            "client",
            "verify",
            "lk1.application-oa2-client.00000000000000000000000000000000",
        ],
        "",
    );
    assert!(!ok);
    assert!(stderr.contains("no app with client id"), "{stderr}");

    // An invalid app is refused with the reason, and nothing is stored.
    let (ok, _, stderr) = cli(
        d,
        &[
            "client",
            "add",
            "--name",
            "Bad",
            "--privacy-url",
            "https://shop.example/privacy",
            "--redirect-uri",
            "http://shop.example/cb",
            "--json",
        ],
        "",
    );
    assert!(!ok);
    assert!(stderr.contains("not created"), "{stderr}");
    assert_eq!(
        cli_json(d, &["client", "list", "--json"], "")
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Users: one with a password from stdin, one with a generated password shown once.
    let ada = cli_json(
        d,
        &[
            "user",
            "add",
            "--email",
            "ada@example.com",
            "--name",
            "Ada Lovelace",
            "--postal-code",
            "12345",
            "--password-stdin",
            "--json",
        ],
        "a long and secret password 42\n",
    );
    assert_eq!(ada["email"], "ada@example.com");
    assert!(ada.get("password").is_none());
    let bob = cli_json(
        d,
        &[
            "user",
            "add",
            "--email",
            "bob@example.com",
            "--name",
            "Bob",
            "--json",
        ],
        "",
    );
    assert!(
        bob["password"].as_str().is_some_and(|p| p.len() >= 20),
        "{bob}"
    );
    let (ok, _, stderr) = cli(
        d,
        &[
            "user",
            "add",
            "--email",
            "ADA@example.com",
            "--name",
            "Ada again",
            "--json",
        ],
        "",
    );
    assert!(!ok, "a second account with the same email (any case)");
    assert!(stderr.contains("already exists"), "{stderr}");

    let users = cli_json(d, &["user", "list", "--json"], "");
    let users = users.as_array().unwrap();
    let emails: Vec<&str> = users.iter().map(|u| u["email"].as_str().unwrap()).collect();
    assert_eq!(emails.len(), 2, "{users:?}");
    assert!(emails.contains(&"ada@example.com") && emails.contains(&"bob@example.com"));
    let ada = users
        .iter()
        .find(|u| u["email"] == "ada@example.com")
        .unwrap();
    assert_eq!(ada["name"], "Ada Lovelace");
    assert_eq!(ada["postal_code"], "12345");
    assert_eq!(ada["disabled"], false);
    assert!(
        users
            .iter()
            .all(|u| u.get("password").is_none() && u.get("password_hash").is_none()),
        "{users:?}"
    );

    // Disable, then the listing says so.
    let disabled = cli_json(
        d,
        &["user", "disable", "--email", "Bob@Example.com", "--json"],
        "",
    );
    assert_eq!(
        disabled,
        serde_json::json!({"email": "bob@example.com", "disabled": true})
    );
    let users = cli_json(d, &["user", "list", "--json"], "");
    let bob = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "bob@example.com")
        .unwrap()
        .clone();
    assert_eq!(bob["disabled"], true);

    // Removing an app removes it from the listing.
    let removed = cli_json(d, &["client", "rm", client_id, "--json"], "");
    assert_eq!(removed["deleted"], true);
    let listed = cli_json(d, &["client", "list", "--json"], "");
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let (ok, _, stderr) = cli(d, &["client", "show", client_id], "");
    assert!(!ok);
    assert!(stderr.contains("no app"), "{stderr}");
}

/// SPEC 1, 5: the operator's scopes come from the config file: `config check` lists them, a bad name or kind is
/// refused with the reason before anything starts, and `client add --app-scope` allows an app a defined app scope,
/// which `client show` reports.
#[test]
fn operators_define_scopes_in_the_config_file_and_allow_app_scopes_per_app() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("latchkey.toml"),
        r#"
[scopes."alexa::skill_messaging"]
description = "Send messages to the app's Alexa skill"
kind = "app"

[scopes."orders:read"]
description = "See the orders you placed at the shop"
kind = "customer"
"#,
    )
    .unwrap();
    let (ok, text, stderr) = cli(d, &["--config", "latchkey.toml", "config", "check"], "");
    assert!(ok, "{stderr}");
    assert!(
        text.contains(
            "scope:         alexa::skill_messaging (app): Send messages to the app's Alexa skill"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "scope:         orders:read (customer): See the orders you placed at the shop"
        ),
        "{text}"
    );

    let add = |extra: &[&str]| {
        let mut args = vec![
            "--config",
            "latchkey.toml",
            "client",
            "add",
            "--name",
            "Skill",
            "--privacy-url",
            "https://skill.example/privacy",
            "--json",
        ];
        args.extend_from_slice(extra);
        cli(d, &args, "")
    };
    let (ok, stdout, stderr) = add(&[
        "--client-credentials",
        "--app-scope",
        "alexa::skill_messaging",
    ]);
    assert!(ok, "{stderr}");
    let added: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        added["app_scopes"],
        serde_json::json!(["alexa::skill_messaging"])
    );
    let client_id = added["client_id"].as_str().unwrap();
    let shown = cli_json(
        d,
        &[
            "--config",
            "latchkey.toml",
            "client",
            "show",
            client_id,
            "--json",
        ],
        "",
    );
    assert_eq!(
        shown["app_scopes"],
        serde_json::json!(["alexa::skill_messaging"])
    );
    let (ok, text, _) = cli(
        d,
        &["--config", "latchkey.toml", "client", "show", client_id],
        "",
    );
    assert!(ok);
    assert!(
        text.contains("app scopes:    alexa::skill_messaging"),
        "{text}"
    );
    for (extra, says) in [
        (
            &["--client-credentials", "--app-scope", "orders:read"][..],
            "app scope \"orders:read\" is not defined",
        ),
        (
            &["--client-credentials", "--app-scope", "alexa::undefined"][..],
            "app scope \"alexa::undefined\" is not defined",
        ),
        (
            &["--app-scope", "alexa::skill_messaging"][..],
            "granted only through client credentials",
        ),
    ] {
        let (ok, _, stderr) = add(extra);
        assert!(!ok, "{extra:?}");
        assert!(stderr.contains(says), "{extra:?}: {stderr}");
    }

    for (toml, says) in [
        (
            "[scopes.\"two words\"]\ndescription = \"x\"\nkind = \"app\"\n",
            "scope \"two words\" is not a valid scope name",
        ),
        (
            "[scopes.email]\ndescription = \"x\"\nkind = \"customer\"\n",
            "scope \"email\" is a standard scope",
        ),
        (
            "[scopes.\"orders:read\"]\ndescription = \"x\"\nkind = \"api\"\n",
            "found `api`, expected ``customer` or `app``",
        ),
    ] {
        std::fs::write(d.join("bad.toml"), toml).unwrap();
        let (ok, _, stderr) = cli(d, &["--config", "bad.toml", "config", "check"], "");
        assert!(!ok, "{toml}");
        assert!(stderr.contains(says), "{toml}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// `latchkey keys list --json` as an array of (kid, alg, activate_at, published) rows.
fn list_keys(dir: &Path) -> Vec<serde_json::Value> {
    cli_json(dir, &["keys", "list", "--json"], "")
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_adds_keys_that_keys_list_and_the_server_publish() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // The first start makes one key per algorithm, signing and published.
    let first = list_keys(d);
    let mut algs: Vec<&str> = first.iter().map(|k| k["alg"].as_str().unwrap()).collect();
    algs.sort();
    assert_eq!(algs, ["ES256", "EdDSA", "RS256"], "{first:?}");
    assert!(first.iter().all(|k| k["published"] == true), "{first:?}");

    let added = cli_json(d, &["keys", "rotate", "--json"], "");
    let added = added.as_array().unwrap();
    assert_eq!(added.len(), 3, "one new key per algorithm: {added:?}");
    for k in added {
        let delay = k["activate_at"].as_i64().unwrap() - k["created_at"].as_i64().unwrap();
        assert_eq!(
            delay,
            latchkey::keys::ROTATION_DELAY_SECS,
            "signs after the default delay: {k}"
        );
        assert!(
            first.iter().all(|old| old["kid"] != k["kid"]),
            "a new kid: {k}"
        );
    }

    // The listing shows the new keys, published at once (before they sign), and keeps the old ones.
    let listed = list_keys(d);
    assert_eq!(listed.len(), 6, "{listed:?}");
    for k in added.iter().chain(&first) {
        let row = listed
            .iter()
            .find(|r| r["kid"] == k["kid"])
            .unwrap_or_else(|| panic!("keys list does not show {k}: {listed:?}"));
        assert_eq!(row["alg"], k["alg"]);
        assert_eq!(row["activate_at"], k["activate_at"]);
        assert_eq!(row["published"], true, "{row}");
    }
    let (ok, text, stderr) = cli(d, &["keys", "list"], "");
    assert!(ok, "{stderr}");
    for k in added {
        let kid = k["kid"].as_str().unwrap();
        let line = text
            .lines()
            .find(|l| l.contains(kid))
            .unwrap_or_else(|| panic!("{kid} is not listed:\n{text}"));
        assert!(line.contains("signs later, published"), "{line}");
    }

    // A negative delay is refused and adds nothing.
    let (ok, _, stderr) = cli(d, &["keys", "rotate", "--delay=-5"], "");
    assert!(!ok);
    assert!(stderr.contains("cannot be negative"), "{stderr}");
    assert_eq!(list_keys(d).len(), 6);

    // A server started on the same data directory publishes exactly the listed keys.
    let server = serve(d, Some(any_port()))
        .await
        .unwrap_or_else(|out| panic!("latchkey serve failed:\n{}", out.join("\n")));
    let jwks: serde_json::Value = http_client()
        .get(format!("{}/jwks.json", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut served: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    served.sort();
    let mut expected: Vec<&str> = listed.iter().map(|k| k["kid"].as_str().unwrap()).collect();
    expected.sort();
    assert_eq!(served, expected);
}

/// A client that trusts only `cert_pem` (and no built-in roots).
fn tls_client(cert_pem: &str, http1: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10));
    if http1 {
        builder = builder.http1_only();
    }
    builder.build().unwrap()
}

/// SPEC 5: with `tls_cert` and `tls_key`, `latchkey serve` speaks HTTPS itself (HTTP/1.1 and HTTP/2 by ALPN) with
/// a certificate a verifying client accepts, and rereads the files on SIGHUP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_speaks_https_itself_and_rereads_its_certificate_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let make = || {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        (c.cert.pem(), c.key_pair.serialize_pem())
    };
    let (first_cert, first_key) = make();
    let (cert_path, key_path) = (d.join("cert.pem"), d.join("key.pem"));
    std::fs::write(&cert_path, &first_cert).unwrap();
    std::fs::write(&key_path, &first_key).unwrap();
    // The issuer names the port, so it is chosen before the server starts (the one bind-drop-reuse left).
    let listen = free_port();
    let issuer = format!("https://{listen}");
    let server = serve_env(
        d,
        Some(listen),
        &[
            ("LATCHKEY_TLS_CERT", cert_path.to_str().unwrap()),
            ("LATCHKEY_TLS_KEY", key_path.to_str().unwrap()),
            ("LATCHKEY_ISSUER", &issuer),
        ],
    )
    .await
    .unwrap_or_else(|out| panic!("latchkey serve failed:\n{}", out.join("\n")));
    assert_eq!(server.base, issuer);

    for (http1, version) in [
        (true, reqwest::Version::HTTP_11),
        (false, reqwest::Version::HTTP_2),
    ] {
        let res = tls_client(&first_cert, http1)
            .get(format!("{issuer}/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.version(), version);
        let discovery: serde_json::Value = res.json().await.unwrap();
        assert_eq!(discovery["issuer"], issuer.as_str());
    }
    // Plain HTTP on the TLS port gets no answer, and a client that trusts another certificate refuses it.
    assert!(http_client()
        .get(format!("http://{listen}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true));
    let (second_cert, second_key) = make();
    assert!(tls_client(&second_cert, true)
        .get(format!("{issuer}/healthz"))
        .send()
        .await
        .is_err());

    // A new certificate in the files, then SIGHUP: new connections get it, without a restart.
    std::fs::write(&cert_path, &second_cert).unwrap();
    std::fs::write(&key_path, &second_key).unwrap();
    let pid = server.child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let mut reread = false;
    for _ in 0..50 {
        if let Ok(res) = tls_client(&second_cert, true)
            .get(format!("{issuer}/healthz"))
            .send()
            .await
        {
            assert_eq!(res.status(), 200);
            reread = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reread, "the new certificate was not served after SIGHUP");
    assert!(tls_client(&first_cert, true)
        .get(format!("{issuer}/healthz"))
        .send()
        .await
        .is_err());
    // A broken file on SIGHUP keeps the certificate in use.
    std::fs::write(&key_path, "not a key").unwrap();
    std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let res = tls_client(&second_cert, true)
        .get(format!("{issuer}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(server
        .lines()
        .iter()
        .any(|l| l.contains("TLS certificate not reread")));
}

/// Like [`cli`] with no standard input, with the variables `env` set.
fn cli_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = command(dir)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[cfg(unix)]
fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn keys_revoke_and_rewrap_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let first = list_keys(d);
    // The first start made the master key beside the database, readable by its owner only.
    let key_file = d.join("latchkey-data/master.key");
    let original = std::fs::read_to_string(&key_file).unwrap();
    #[cfg(unix)]
    assert_eq!(mode_of(&key_file), 0o600);

    // Revoking the signing ES256 key unpublishes it and makes a successor that signs from now.
    let es256 = first.iter().find(|k| k["alg"] == "ES256").unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = cli_json(d, &["keys", "revoke", &es256, "--json"], "");
    assert_eq!(revoked["revoked"], true, "{revoked}");
    let successor = revoked["successor"].as_str().unwrap().to_owned();
    assert_eq!(revoked["successor_was_published"], false, "{revoked}");
    let listed = list_keys(d);
    let row = |kid: &str| listed.iter().find(|k| k["kid"] == kid).unwrap().clone();
    assert!(row(&es256)["revoked_at"].is_i64(), "{listed:?}");
    assert_eq!(row(&es256)["published"], false, "{listed:?}");
    assert_eq!(row(&successor)["published"], true, "{listed:?}");
    assert!(row(&successor)["revoked_at"].is_null());
    let (ok, text, _) = cli(d, &["keys", "list"], "");
    assert!(ok);
    assert!(
        text.lines()
            .any(|l| l.contains(&es256) && l.contains("revoked")),
        "{text}"
    );
    let (ok, _, stderr) = cli(d, &["keys", "revoke", &es256], "");
    assert!(!ok && stderr.contains("already revoked"), "{stderr}");

    // `keys rewrap` with no option re-seals every key under a new master key, which then replaces master.key.
    let rewrapped = cli_json(d, &["keys", "rewrap", "--json"], "");
    assert_eq!(
        rewrapped["rewrapped"], 4,
        "hash key and three live signing keys: {rewrapped}"
    );
    let replaced = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(replaced, original);
    assert!(!d.join("latchkey-data/master.key.new").exists());
    #[cfg(unix)]
    assert_eq!(mode_of(&key_file), 0o600);
    let after: Vec<_> = list_keys(d).iter().map(|k| k["kid"].clone()).collect();
    let before: Vec<_> = listed.iter().map(|k| k["kid"].clone()).collect();
    assert_eq!(
        after, before,
        "the same keys, opened with the new master key"
    );
    // `config check` names the key in force by its id, so operators can compare nodes.
    let (ok, text, stderr) = cli(d, &["config", "check"], "");
    assert!(ok, "{stderr}");
    let id = rewrapped["master_key_id"].as_str().unwrap();
    assert!(text.contains(&format!("master key:    {id}")), "{text}");
    assert!(
        !text.contains(replaced.trim()),
        "the key itself is never printed"
    );

    // With --new-key-file the key in force is left alone: until a node is given the new key it refuses to start.
    let other = d.join("other.key");
    let other_arg = other.to_str().unwrap();
    let moved = cli_json(
        d,
        &["keys", "rewrap", "--new-key-file", other_arg, "--json"],
        "",
    );
    assert_eq!(moved["rewrapped"], 4, "{moved}");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), replaced);
    #[cfg(unix)]
    assert_eq!(mode_of(&other), 0o600);
    let (ok, _, stderr) = cli(d, &["keys", "list"], "");
    assert!(!ok);
    let new_id = moved["master_key_id"].as_str().unwrap();
    assert!(
        stderr.contains(&format!("sealed under master key {new_id}")),
        "{stderr}"
    );
    let (ok, _, stderr) = cli_with(
        d,
        &["keys", "list"],
        &[("LATCHKEY_MASTER_KEY_FILE", other_arg)],
    );
    assert!(ok, "{stderr}");
    let text = std::fs::read_to_string(&other).unwrap();
    let (ok, _, stderr) = cli_with(
        d,
        &["keys", "list"],
        &[("LATCHKEY_MASTER_KEY", text.trim())],
    );
    assert!(ok, "{stderr}");

    // A malformed key is a clear error; so is a rewrap that does not say where the new key from a variable goes.
    let (ok, _, stderr) = cli_with(d, &["keys", "list"], &[("LATCHKEY_MASTER_KEY", "abc")]);
    assert!(
        !ok && stderr.contains("LATCHKEY_MASTER_KEY") && stderr.contains("base64"),
        "{stderr}"
    );
    let (ok, _, stderr) = cli_with(
        d,
        &["keys", "rewrap"],
        &[("LATCHKEY_MASTER_KEY", text.trim())],
    );
    assert!(!ok && stderr.contains("--new-key-file"), "{stderr}");
}

/// `config check` shows who is trusted to name the client and where `/metrics` is, and a bad proxy entry is a
/// clear error that names it.
#[test]
fn config_check_shows_trusted_proxies_tls_and_the_admin_listener() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ok, text, stderr) = cli_with(
        d,
        &["config", "check"],
        &[
            ("LATCHKEY_TRUSTED_PROXIES", "10.0.0.0/8, ::1"),
            ("LATCHKEY_ADMIN_LISTEN", "off"),
        ],
    );
    assert!(ok, "{stderr}");
    assert!(
        text.contains("trusted proxies: 10.0.0.0/8, ::1/128 (client from x-forwarded-for)"),
        "{text}"
    );
    assert!(text.contains("admin listen:  off"), "{text}");
    assert!(text.contains("tls:           off"), "{text}");
    let (ok, _, stderr) = cli_with(
        d,
        &["config", "check"],
        &[("LATCHKEY_TRUSTED_PROXIES", "10.0.0.0/33")],
    );
    assert!(!ok);
    assert!(stderr.contains("10.0.0.0/33"), "{stderr}");
    let (ok, _, stderr) = cli_with(
        d,
        &["config", "check"],
        &[("LATCHKEY_TLS_CERT", "/nonexistent/cert.pem")],
    );
    assert!(!ok);
    assert!(stderr.contains("tls_cert and tls_key"), "{stderr}");
}

#[test]
fn keys_rewrap_keeps_the_old_master_key_and_never_overwrites_a_kept_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let keys = list_keys(d).len();
    let key_file = d.join("latchkey-data/master.key");
    let kept = d.join("latchkey-data/master.key.old");
    let original = std::fs::read_to_string(&key_file).unwrap();

    // The key that sealed every backup made so far is kept beside the new one, private, and the output says where.
    let (ok, text, stderr) = cli(d, &["keys", "rewrap"], "");
    assert!(ok, "{stderr}");
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), original);
    #[cfg(unix)]
    assert_eq!(mode_of(&kept), 0o600);
    assert!(
        text.contains("kept in latchkey-data/master.key.old:"),
        "{text}"
    );
    assert!(
        !text.contains(original.trim()),
        "the key itself is never printed"
    );
    let second = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(second, original);

    // A second rewrap keeps the second key under a numbered name: the first kept key is not overwritten.
    let rewrapped = cli_json(d, &["keys", "rewrap", "--json"], "");
    let kept_again = d.join("latchkey-data/master.key.old.1");
    assert_eq!(
        rewrapped["old_master_key_file"], "latchkey-data/master.key.old.1",
        "{rewrapped}"
    );
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), original);
    assert_eq!(std::fs::read_to_string(&kept_again).unwrap(), second);
    #[cfg(unix)]
    assert_eq!(mode_of(&kept_again), 0o600);
    assert_ne!(std::fs::read_to_string(&key_file).unwrap(), second);
    // And the database opens with the key now in master.key.
    assert_eq!(list_keys(d).len(), keys);
}

#[test]
fn config_check_in_an_empty_directory_creates_no_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key_file = d.join("latchkey-data/master.key");
    let (ok, text, stderr) = cli(d, &["config", "check"], "");
    assert!(ok, "{stderr}");
    assert!(
        !key_file.exists(),
        "config check wrote {}",
        key_file.display()
    );
    assert!(
        text.lines().any(
            |l| l.starts_with("master key:    none yet: the first start creates")
                && l.ends_with("master.key")
        ),
        "{text}"
    );
    // Once a start has made the key, config check names it.
    list_keys(d);
    let (ok, text, stderr) = cli(d, &["config", "check"], "");
    assert!(ok, "{stderr}");
    assert!(!text.contains("none yet"), "{text}");
}

/// The sign-up form's CSRF token, from the page a browser gets.
async fn signup_csrf(http: &reqwest::Client, base: &str) -> String {
    let html = http
        .get(format!("{base}/ap/register"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let doc = scraper::Html::parse_document(&html);
    let sel = scraper::Selector::parse("form[action='/ap/register'] input[name=csrf]").unwrap();
    doc.select(&sel)
        .next()
        .and_then(|i| i.value().attr("value"))
        .expect("the sign-up form has a CSRF token")
        .to_owned()
}

#[tokio::test]
async fn a_sign_up_answered_before_a_crash_still_gets_its_mail_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    // The mail server is down: the sign-up is answered, its mail only queued, when the server is killed.
    let smtp_port = free_port().port();
    let smtp_url = format!("smtp://127.0.0.1:{smtp_port}");
    let env = [("LATCHKEY_SMTP_URL", smtp_url.as_str())];
    let server = serve_env(dir.path(), Some(any_port()), &env).await.unwrap();
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let csrf = signup_csrf(&http, &server.base).await;
    let res = http
        .post(format!("{}/ap/register", server.base))
        .form(&[
            ("csrf", csrf.as_str()),
            ("name", "Crash Test"),
            ("email", "crash@example.com"),
            ("password", "correct horse battery"),
            ("postal_code", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303, "the sign-up is accepted");
    let mut server = server;
    server.child.start_kill().unwrap();
    server.child.wait().await.unwrap();
    let lines = server.all_lines().await;
    assert!(
        !lines.iter().any(|l| l.contains("\"mail sent\"")),
        "the mail went before the crash: {lines:#?}"
    );

    let Some(smtp) = crate::mailbox::SmtpSink::start_on(smtp_port) else {
        return;
    };
    let _restarted = serve_env(dir.path(), Some(any_port()), &env).await.unwrap();
    // Within seconds (its retry is due), or, if the kill came while a send was under way, once that send's
    // two-minute lease has run out.
    let mail = smtp
        .nth_to_within("crash@example.com", 1, Duration::from_secs(150))
        .await;
    assert!(mail.code().is_some(), "{}", mail.text());
}
