//! The command line (SPEC 5): `serve`, `migrate`, `user …`, `client …`, `config check`, `demo`. Parsing is clap's;
//! each command is a small function over the same `App` the server uses.

mod demo;
mod device_login;

use crate::app::{App, AppState};
use crate::config::Config;
use crate::flows::registration::{self, AppInput};
use crate::flows::signin::{create_user, CreateUser, NewAccount};
use crate::keys;
use crate::seal;
use crate::store::{Client, User};
use clap::{Args, Parser, Subcommand};
use latchkey_core::client::{ClientKind, Feature};
use latchkey_core::oidc::SigningAlg;
use latchkey_core::secret;
use latchkey_core::secret::Secret;
use serde_json::json;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "latchkey",
    version,
    about = "A self-hostable Login with … service (OAuth 2.0, OpenID Connect, Login with Amazon compatible)"
)]
struct Cli {
    /// TOML configuration file (LATCHKEY_* environment variables override it).
    #[arg(long, global = true, env = "LATCHKEY_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve,
    /// Create or update the database schema, then exit.
    Migrate,
    /// Manage customer accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage apps (security profiles) and their client credentials.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// ID-token signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Seed a demo customer and app, and run the service with a demo app to try the login in a browser.
    Demo {
        /// Where the demo app listens (its own origin).
        #[arg(long, default_value = "127.0.0.1:8081")]
        app_listen: std::net::SocketAddr,
    },
    /// An example device client (a TV without a browser): shows a code to enter at /code, polls, prints the profile.
    DeviceLogin {
        /// The Latchkey to sign in with.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        issuer: String,
        /// The client id of an app with code-based linking enabled (`client add --device`).
        #[arg(long, default_value = demo::DEMO_TV_CLIENT_ID)]
        client_id: String,
        #[arg(long, default_value = "profile")]
        scope: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a customer account.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        postal_code: Option<String>,
        /// Read the password from the first line of standard input (otherwise one is generated and printed).
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        json: bool,
    },
    /// List customer accounts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Disable an account: its sessions end and its tokens stop working.
    Disable {
        #[arg(long)]
        email: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete an account and everything it holds (tokens, consents, sessions, device links, activity), at once.
    Delete {
        email: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct ClientAddArgs {
    /// Name shown on the consent page.
    #[arg(long)]
    name: String,
    /// Privacy notice URL shown on the consent page.
    #[arg(long)]
    privacy_url: String,
    /// An allowed return URL (repeat for more); matched exactly.
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// An allowed origin for the JavaScript SDK (repeat for more).
    #[arg(long = "origin")]
    origins: Vec<String>,
    #[arg(long, default_value = "")]
    description: String,
    /// The consent logo: a PNG or JPEG file of at most 1 MB (re-encoded and served by Latchkey).
    #[arg(long)]
    logo: Option<PathBuf>,
    /// A public app: no secret, PKCE S256 only (mobile, single-page, devices).
    #[arg(long)]
    public: bool,
    /// Allow the implicit grant (response_type=token). Not recommended.
    #[arg(long)]
    implicit: bool,
    /// Allow PKCE `plain` and LWA's default-to-plain (LWA compatibility).
    #[arg(long)]
    plain_pkce: bool,
    /// Allow code-based linking (devices).
    #[arg(long)]
    device: bool,
    /// Allow the client_credentials grant.
    #[arg(long)]
    client_credentials: bool,
    /// An app scope (defined with kind = "app" in the config's [scopes]) the app may get through
    /// client_credentials (repeat for more); needs --client-credentials.
    #[arg(long = "app-scope")]
    app_scopes: Vec<String>,
    /// A development app: http://localhost return URLs are allowed.
    #[arg(long)]
    development: bool,
    /// LWA-style reusable refresh tokens (what ask-cli and the ASK SDK expect): not rotated, valid until the
    /// customer removes the app, the app revokes it or the account is disabled. Confidential apps only.
    #[arg(long)]
    reusable_refresh: bool,
    /// The developer who owns the app (apps of one owner see the same user_id for a customer).
    #[arg(long, default_value = "operator")]
    owner: String,
    /// How the app's ID tokens are signed: RS256 (what OpenID Connect relying parties expect unless told
    /// otherwise), ES256 or EdDSA.
    #[arg(long, default_value = "RS256", value_parser = parse_alg)]
    id_token_alg: SigningAlg,
    #[arg(long)]
    json: bool,
}

fn parse_alg(s: &str) -> Result<SigningAlg, String> {
    SigningAlg::parse(s).ok_or_else(|| format!("`{s}` is not one of ES256, EdDSA, RS256"))
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register an app; prints its client id and (once) its secret.
    Add(Box<ClientAddArgs>),
    /// List apps.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one app.
    Show {
        client_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Mark a self-service (developer console) app verified: its request errors are then redirected to its
    /// return URL directly, and its consent page no longer says it is not verified.
    Verify {
        client_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Set an app's consent logo from a PNG or JPEG file of at most 1 MB (re-encoded and served by Latchkey),
    /// or remove it with `--remove`.
    Logo {
        client_id: String,
        #[arg(required_unless_present = "remove", conflicts_with = "remove")]
        file: Option<PathBuf>,
        #[arg(long)]
        remove: bool,
        #[arg(long)]
        json: bool,
    },
    /// Replace an app's secret; prints the new one (once).
    RotateSecret {
        client_id: String,
        /// Keep the old secret valid this many seconds.
        #[arg(long, default_value_t = 0)]
        grace_seconds: i64,
        #[arg(long)]
        json: bool,
    },
    /// Delete an app, its consents, and every token it holds.
    Rm {
        client_id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List the signing keys and which of them sign and are published.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Add a new key for each algorithm. It is published at once and signs after `--delay` seconds
    /// (long enough for every node to reload); older keys stay published until their ID tokens have expired.
    Rotate {
        #[arg(long, default_value_t = keys::ROTATION_DELAY_SECS)]
        delay: i64,
        #[arg(long)]
        json: bool,
    },
    /// Withdraw a (compromised) key at once: no node publishes or signs with it after its next reload (30 s). If
    /// it was signing, a key waiting from `keys rotate` takes over now, or else a new key does.
    Revoke {
        kid: String,
        #[arg(long)]
        json: bool,
    },
    /// Re-seal every stored key (signing keys, hash key) under a new master key.
    Rewrap {
        /// The new master key file; if it does not exist, a new random key is written there (mode 0600). The
        /// current key file is left alone: install the new one on every node. Without this option the new key is
        /// written beside the master key file in force (`<file>.new`) and replaces it once every key is re-sealed;
        /// the old key is kept as `<file>.old` (`.old.1`, … if that exists), mode 0600.
        #[arg(long)]
        new_key_file: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check the configuration and the database connection; print the settings in force.
    Check,
}

/// Runs the command line; the exit code says whether it worked.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("latchkey: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(
        &config,
        matches!(cli.command, Command::Serve | Command::Demo { .. }),
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("latchkey: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("latchkey: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config, serving: bool) {
    let default = if serving {
        config.log_level.as_str()
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("LATCHKEY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if config.log_format == "json" {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            App::build(config).await?;
            println!("database is up to date");
            Ok(())
        }
        Command::User(cmd) => user(App::build(config).await?, cmd).await,
        Command::Client(cmd) => client(App::build(config).await?, cmd).await,
        Command::Config(ConfigCommand::Check) => config_check(config).await,
        Command::Keys(KeysCommand::Rewrap { new_key_file, json }) => {
            keys_rewrap(config, new_key_file, json).await
        }
        Command::Keys(cmd) => keys_command(App::build(config).await?, cmd).await,
        Command::Demo { app_listen } => demo::run(config, app_listen).await,
        Command::DeviceLogin {
            issuer,
            client_id,
            scope,
        } => {
            device_login::run(device_login::DeviceLogin {
                issuer,
                client_id,
                scope,
            })
            .await
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: draining requests");
}

/// Deletes expired rows every few minutes.
fn spawn_purger(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(300));
        loop {
            tick.tick().await;
            let now = state.clock.now();
            match state.store.purge_expired(now).await {
                Ok(n) if n > 0 => tracing::info!(rows = n, "purged expired rows"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purge failed"),
            }
            let kept_since = now - state.config.audit_retention_days * 86_400;
            match state.store.purge_events(kept_since).await {
                Ok(n) if n > 0 => tracing::info!(rows = n, "purged old security activity"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purge of security activity failed"),
            }
        }
    });
}

pub(crate) async fn start(config: Config) -> anyhow::Result<(AppState, tokio::net::TcpListener)> {
    let listen = config.listen;
    let state = App::build(config).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    spawn_purger(state.clone());
    state.spawn_mail_sender();
    Ok((state, listener))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let admin_listen = config.admin_listen;
    let (state, listener) = start(config).await?;
    let admin = match admin_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (admin_listen): {e}"))?,
        ),
        None => None,
    };
    let admin_addr = match &admin {
        Some(l) => l.local_addr()?.to_string(),
        None => "off".into(),
    };
    let scheme = if state.config.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(listen = %listener.local_addr()?, scheme, admin = %admin_addr, issuer = %state.issuer, "latchkey is listening");
    let public = crate::web::serve(listener, state.clone(), shutdown_signal());
    match admin {
        Some(admin) => {
            let (a, b) = tokio::join!(
                public,
                crate::web::serve_admin(admin, state, shutdown_signal())
            );
            a?;
            b?;
        }
        None => public.await?,
    }
    Ok(())
}

fn print_json(value: serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(&value).unwrap_or_default()
    );
}

fn user_json(u: &User) -> serde_json::Value {
    json!({"email": u.email, "name": u.name, "postal_code": u.postal_code, "disabled": u.disabled, "created_at": u.created_at})
}

async fn user(state: AppState, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add {
            email,
            name,
            postal_code,
            password_stdin,
            json,
        } => {
            let email = email.trim().to_lowercase();
            let (password, generated) = if password_stdin {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                (Secret::new(line.trim_end_matches(['\r', '\n'])), false)
            } else {
                (secret::mint(&mut rand::thread_rng(), ""), true)
            };
            let postal = postal_code.unwrap_or_default();
            let account = NewAccount {
                verified: true,
                email: &email,
                name: name.trim(),
                postal_code: &postal,
                password: &password,
            };
            let user = match create_user(&state, &account).await? {
                CreateUser::Created(user) => user,
                CreateUser::Invalid(why) => anyhow::bail!(why),
                CreateUser::AlreadyExists => {
                    anyhow::bail!("an account with email {email} already exists")
                }
            };
            let shown_password = generated.then(|| password.expose().to_owned());
            if json {
                let mut v = user_json(&user);
                if let Some(p) = shown_password {
                    v["password"] = json!(p);
                }
                print_json(v);
            } else {
                println!("created account {}", user.email);
                if let Some(p) = shown_password {
                    println!("password (shown once): {p}");
                }
            }
        }
        UserCommand::List { json } => {
            let users = state.store.list_users().await?;
            if json {
                print_json(json!(users.iter().map(user_json).collect::<Vec<_>>()));
            } else {
                for u in users {
                    println!(
                        "{}\t{}\t{}",
                        u.email,
                        u.name,
                        if u.disabled { "disabled" } else { "active" }
                    );
                }
            }
        }
        UserCommand::Delete { email, json } => {
            let email = email.trim().to_lowercase();
            let Some(user) = state.store.find_user_by_email(&email).await? else {
                anyhow::bail!("no account with email {email}");
            };
            if let crate::flows::account::DeleteOutcome::OwnsApps { count } =
                crate::flows::account::delete_user(&state, &user).await?
            {
                anyhow::bail!(
                    "{email} owns {count} app(s): delete them first (latchkey client rm <client_id>)"
                );
            }
            if json {
                print_json(json!({"email": email, "deleted": true}));
            } else {
                println!(
                    "deleted {email}: its tokens, consents, sessions and device links are gone"
                );
            }
        }
        UserCommand::Disable { email, json } => {
            let email = email.trim().to_lowercase();
            if !state
                .store
                .set_user_disabled(&email, true, state.clock.now())
                .await?
            {
                anyhow::bail!("no account with email {email}");
            }
            if json {
                print_json(json!({"email": email, "disabled": true}));
            } else {
                println!("disabled {email}: its sessions ended and its tokens were revoked");
            }
        }
    }
    Ok(())
}

async fn keys_command(state: AppState, cmd: KeysCommand) -> anyhow::Result<()> {
    let now = state.clock.now();
    let key_json = |k: &crate::store::SigningKeyRecord| json!({"kid": k.kid, "alg": k.alg.as_str(), "created_at": k.created_at, "activate_at": k.activate_at, "revoked_at": k.revoked_at});
    match cmd {
        KeysCommand::List { json } => {
            let all = state.store.list_signing_keys().await?;
            let published = state.keys.jwks(state.store.as_ref(), now).await?;
            let is_published = |kid: &str| {
                published
                    .keys
                    .iter()
                    .any(|k| k.common.key_id.as_deref() == Some(kid))
            };
            if json {
                let list: Vec<_> = all
                    .iter()
                    .map(|k| {
                        let mut v = key_json(k);
                        v["published"] = is_published(&k.kid).into();
                        v
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for k in &all {
                    let when = if k.revoked_at.is_some() {
                        "revoked"
                    } else if k.activate_at > now {
                        "signs later"
                    } else {
                        "active"
                    };
                    let shown = if is_published(&k.kid) {
                        "published"
                    } else {
                        "unpublished"
                    };
                    println!("{:<6} {:<44} {when}, {shown}", k.alg.as_str(), k.kid);
                }
            }
        }
        KeysCommand::Rotate { delay, json } => {
            anyhow::ensure!(delay >= 0, "--delay cannot be negative");
            let added =
                keys::rotate(state.store.as_ref(), state.keys.master_key(), now, delay).await?;
            if json {
                let list: Vec<_> = added.iter().map(key_json).collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for k in &added {
                    println!(
                        "added {} key {} (signs in {delay} s)",
                        k.alg.as_str(),
                        k.kid
                    );
                }
            }
        }
        KeysCommand::Revoke { kid, json } => {
            let revoked = keys::revoke(state.store.as_ref(), state.keys.master_key(), &kid, now)
                .await?
                .ok_or_else(|| {
                    anyhow::anyhow!("no signing key {kid} (or it is already revoked)")
                })?;
            if json {
                print_json(json!({
                    "kid": kid, "alg": revoked.alg.as_str(), "revoked": true,
                    "successor": revoked.successor, "successor_was_published": revoked.successor_was_published,
                }));
            } else {
                println!(
                    "revoked {kid}: every node stops publishing and signing with it within {} s",
                    keys::RELOAD_SECS
                );
                if let Some(successor) = &revoked.successor {
                    let how = if revoked.successor_was_published {
                        "it was already published"
                    } else {
                        "a new key: relying parties may need to fetch the JWKS again"
                    };
                    println!(
                        "{successor} signs {} ID tokens from now ({how})",
                        revoked.alg.as_str()
                    );
                }
            }
        }
        // Handled by `keys_rewrap`, before any app is built.
        KeysCommand::Rewrap { .. } => anyhow::bail!("keys rewrap runs without starting the app"),
    }
    Ok(())
}

/// `latchkey keys rewrap`: works on the store directly, since a half-finished earlier run leaves keys that open
/// only with the new master key, which a normal start refuses.
async fn keys_rewrap(
    config: Config,
    new_key_file: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<()> {
    let (old, source) = seal::MasterKey::load(&config).map_err(anyhow::Error::msg)?;
    let (target, replaces) = match (new_key_file, &source) {
        (Some(path), _) => (path, None),
        (None, seal::KeySource::File(current)) => {
            let mut name = current.file_name().unwrap_or_default().to_os_string();
            name.push(".new");
            (current.with_file_name(name), Some(current.clone()))
        }
        (None, seal::KeySource::Setting) => anyhow::bail!(
            "the master key comes from LATCHKEY_MASTER_KEY: name the file for the new key with --new-key-file"
        ),
    };
    let new = seal::read_or_create_key_file(&target).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        new.id() != old.id(),
        "{} holds the master key already in force ({})",
        target.display(),
        old.id()
    );
    let store = App::open_store(&config).await?;
    let count = keys::rewrap(&store, &old, &new).await?;
    if count > 0 {
        use crate::store::OpsStore as _;
        // The rows sealed under the old key (or in the clear) must not linger in freed pages.
        store.erase_overwritten_rows().await?;
    }
    store.close().await;
    let mut kept = None;
    if let Some(current) = &replaces {
        kept = Some(seal::keep_old_key_file(current).map_err(|e| {
            anyhow::anyhow!(
                "every key is sealed under the new master key in {}, but {e}; nothing was replaced: copy {} \
                 somewhere safe (backups made before now need it), then move the new key over it before starting \
                 Latchkey",
                target.display(),
                current.display()
            )
        })?);
        std::fs::rename(&target, current).map_err(|e| {
            anyhow::anyhow!(
                "every key is sealed under the new master key in {}, but it could not replace {}: {e}; move it \
                 there yourself before starting Latchkey",
                target.display(),
                current.display()
            )
        })?;
    }
    let key_file = replaces.as_ref().unwrap_or(&target);
    if json {
        print_json(json!({
            "rewrapped": count, "old_master_key_id": old.id().to_string(),
            "master_key_id": new.id().to_string(), "master_key_file": key_file.display().to_string(),
            "old_master_key_file": kept.as_ref().map(|k| k.display().to_string()),
        }));
    } else {
        println!(
            "re-sealed {count} keys: every stored key is now sealed under master key {} (was {})",
            new.id(),
            old.id()
        );
        if let Some(kept) = &kept {
            println!(
                "{} now holds the new key; restart Latchkey. The old key is kept in {}: backups made before now \
                 open only with it, so store it apart from them (not in the data directory's backups).",
                key_file.display(),
                kept.display()
            );
        } else {
            println!(
                "install {} as the master key of every node (master_key_file, or its contents as \
                 LATCHKEY_MASTER_KEY) and restart them; a node still on the old key keeps the keys it has loaded but \
                 cannot start again",
                key_file.display()
            );
        }
    }
    Ok(())
}

/// A logo file, re-encoded as the console does (`flows::logo`); the error says why it is refused.
async fn read_logo(path: &std::path::Path) -> anyhow::Result<crate::store::Logo> {
    let cannot =
        |e: std::io::Error| anyhow::anyhow!("cannot read the logo {}: {e}", path.display());
    let size = tokio::fs::metadata(path).await.map_err(cannot)?.len();
    if size > crate::flows::logo::MAX_UPLOAD_BYTES as u64 {
        anyhow::bail!(
            "the logo {} is refused: {}",
            path.display(),
            crate::flows::logo::LogoError::TooLarge
        );
    }
    let bytes = tokio::fs::read(path).await.map_err(cannot)?;
    crate::flows::logo::reencode_blocking(bytes)
        .await
        .map_err(|e| anyhow::anyhow!("the logo {} is refused: {e}", path.display()))
}

fn client_json(c: &Client) -> serde_json::Value {
    let p = &c.policy;
    json!({
        "client_id": p.client_id, "app_id": c.app_id, "name": c.name, "description": c.description,
        "owner": c.owner, "privacy_url": c.privacy_url, "logo": c.logo,
        "redirect_uris": p.redirect_uris, "allowed_origins": c.allowed_origins,
        "confidential": p.is_confidential(), "implicit": p.allows(Feature::Implicit),
        "plain_pkce": p.allows(Feature::PlainPkce), "device": p.allows(Feature::Device),
        "client_credentials": p.allows(Feature::ClientCredentials), "development": p.allows(Feature::Development),
        "id_token_alg": c.id_token_alg.as_str(), "created_at": c.created_at, "verified": c.verified,
        "app_scopes": c.app_scopes, "reusable_refresh": p.allows(Feature::ReusableRefresh),
    })
}

fn print_client(c: &Client) {
    let p = &c.policy;
    println!("name:          {}", c.name);
    println!("client_id:     {}", p.client_id);
    println!("app_id:        {}", c.app_id);
    println!(
        "type:          {}",
        if p.is_confidential() {
            "confidential (has a secret)"
        } else {
            "public (PKCE)"
        }
    );
    println!("return URLs:   {}", p.redirect_uris.join(" "));
    println!("origins:       {}", c.allowed_origins.join(" "));
    println!("privacy URL:   {}", c.privacy_url);
    if !c.app_scopes.is_empty() {
        println!("app scopes:    {}", c.app_scopes.join(" "));
    }
    println!(
        "refresh:       {}",
        if p.allows(Feature::ReusableRefresh) {
            "reusable (not rotated; valid until revoked)"
        } else {
            "rotated at every use (reuse detection)"
        }
    );
    println!(
        "verified:      {}",
        if c.verified {
            "yes"
        } else {
            "no (made in the developer console; `latchkey client verify` after checking it)"
        }
    );
}

async fn client(state: AppState, cmd: ClientCommand) -> anyhow::Result<()> {
    let now = state.clock.now();
    match cmd {
        ClientCommand::Add(a) => {
            let input = AppInput {
                name: a.name,
                description: a.description,
                privacy_url: a.privacy_url,
                redirect_uris: a.redirect_uris,
                allowed_origins: a.origins,
                kind: if a.public {
                    ClientKind::Public
                } else {
                    ClientKind::Confidential
                },
                features: [
                    (a.implicit, Feature::Implicit),
                    (a.plain_pkce, Feature::PlainPkce),
                    (a.device, Feature::Device),
                    (a.client_credentials, Feature::ClientCredentials),
                    (a.development, Feature::Development),
                    (a.reusable_refresh, Feature::ReusableRefresh),
                ]
                .into_iter()
                .filter_map(|(on, feature)| on.then_some(feature))
                .collect(),
                owner: a.owner,
                id_token_alg: a.id_token_alg,
                // The operator made it: verified (SPEC 1).
                verified: true,
                app_scopes: a.app_scopes,
            };
            // The logo is checked before anything is made: a refused file leaves no app behind.
            let logo = match &a.logo {
                Some(path) => Some(read_logo(path).await?),
                None => None,
            };
            let (mut client, secret) = registration::register(&state, &input)
                .await?
                .into_result()
                .map_err(|problems| {
                    anyhow::anyhow!("the app was not created:\n  - {}", problems.join("\n  - "))
                })?;
            if let Some(logo) = logo {
                state
                    .store
                    .set_client_logo(&client.policy.client_id, Some(&logo), false, now)
                    .await?;
                client.logo = Some(logo.version);
            }
            if a.json {
                let mut v = client_json(&client);
                v["client_secret"] = json!(secret.as_ref().map(|s| s.expose()));
                print_json(v);
            } else {
                print_client(&client);
                if let Some(s) = secret {
                    println!("client_secret: {}   (shown once: store it now)", s.expose());
                }
            }
        }
        ClientCommand::List { json } => {
            let clients = state.store.list_clients().await?;
            if json {
                print_json(json!(clients.iter().map(client_json).collect::<Vec<_>>()));
            } else {
                for c in clients {
                    let verified = if c.verified { "verified" } else { "unverified" };
                    println!("{}\t{}\t{verified}", c.policy.client_id, c.name);
                }
            }
        }
        ClientCommand::Show { client_id, json } => {
            let c = state
                .store
                .find_client(&client_id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no app with client id {client_id}"))?;
            if json {
                print_json(client_json(&c));
            } else {
                print_client(&c);
            }
        }
        ClientCommand::Verify { client_id, json } => {
            let c = verify_client(&state, &client_id).await?;
            if json {
                print_json(client_json(&c));
            } else {
                println!("verified {} ({client_id})", c.name);
            }
        }
        ClientCommand::Logo {
            client_id,
            file,
            remove,
            json,
        } => {
            let logo = match (&file, remove) {
                (Some(path), false) => Some(read_logo(path).await?),
                _ => None,
            };
            // The operator sets it: the app stays as verified as it was.
            if !state
                .store
                .set_client_logo(&client_id, logo.as_ref(), false, now)
                .await?
            {
                anyhow::bail!("no app with client id {client_id}");
            }
            let path = logo
                .as_ref()
                .map(|l| crate::flows::logo::path(&client_id, &l.version));
            if json {
                print_json(
                    json!({"client_id": client_id, "logo": logo.map(|l| l.version), "logo_path": path}),
                );
            } else if let Some(path) = path {
                println!("logo of {client_id} saved; served at {path}");
            } else {
                println!("logo of {client_id} removed");
            }
        }
        ClientCommand::RotateSecret {
            client_id,
            grace_seconds,
            json,
        } => {
            let c = state
                .store
                .find_client(&client_id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no app with client id {client_id}"))?;
            let Some(grace) = registration::Grace::from_secs(grace_seconds) else {
                anyhow::bail!(
                    "--grace-seconds must be between 0 and {} (30 days)",
                    registration::Grace::MAX_SECS
                );
            };
            let (secret, keep) = match registration::rotate_secret(&state, &c, grace).await? {
                registration::Rotated::New {
                    secret,
                    previous_valid_until,
                } => (secret, previous_valid_until),
                registration::Rotated::NoSecret => {
                    anyhow::bail!("{client_id} is a public app and has no secret")
                }
                registration::Rotated::Gone => anyhow::bail!("no app with client id {client_id}"),
            };
            if json {
                print_json(
                    json!({"client_id": client_id, "client_secret": secret.expose(), "previous_secret_valid_until": keep}),
                );
            } else {
                println!(
                    "client_secret: {}   (shown once: store it now)",
                    secret.expose()
                );
                if let Some(until) = keep {
                    println!("the previous secret stays valid for {grace_seconds} seconds (until {until})");
                }
            }
        }
        ClientCommand::Rm { client_id, json } => {
            if !state.store.delete_client(&client_id, now).await? {
                anyhow::bail!("no app with client id {client_id}");
            }
            if json {
                print_json(json!({"client_id": client_id, "deleted": true}));
            } else {
                println!("deleted {client_id}; its consents and tokens are revoked");
            }
        }
    }
    Ok(())
}

/// `client verify`: marks the app verified and returns it as it now is.
pub async fn verify_client(state: &AppState, client_id: &str) -> anyhow::Result<Client> {
    if !state.store.set_client_verified(client_id).await? {
        anyhow::bail!("no app with client id {client_id}");
    }
    state
        .store
        .find_client(client_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no app with client id {client_id}"))
}

/// The database URL with any password hidden.
fn redacted_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("redacted"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

async fn config_check(config: Config) -> anyhow::Result<()> {
    println!("listen:        {}", config.listen);
    println!("issuer:        {}", config.issuer());
    println!("database:      {}", redacted_url(&config.database_url()));
    println!("data_dir:      {}", config.data_dir.display());
    println!("token ttl:     {} s", config.access_token_ttl);
    for (name, scope) in &config.scopes {
        println!(
            "scope:         {name} ({}): {}",
            scope.kind.as_str(),
            scope.description
        );
    }
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            crate::web::server::Tls::load(cert, key)?;
            println!(
                "tls:           {} ({} key): ok",
                cert.display(),
                key.display()
            );
        }
        _ => println!("tls:           off (plain http)"),
    }
    let proxies = config.trusted_proxies().map_err(anyhow::Error::msg)?;
    if proxies.is_empty() {
        println!("trusted proxies: none (the TCP peer is the client)");
    } else {
        println!(
            "trusted proxies: {} (client from {})",
            proxies.to_strings().join(", "),
            config.proxy_header
        );
    }
    match config.admin_listen {
        Some(addr) => println!("admin listen:  {addr} (/metrics)"),
        None => println!("admin listen:  off"),
    }
    // A diagnostic creates no key: `MasterKey::load` would write `<data_dir>/master.key` if it is missing.
    match seal::MasterKey::load_existing(&config).map_err(anyhow::Error::msg)? {
        Some((master, source)) => {
            println!("master key:    {} from {source}", master.id());
            App::build(config).await?;
        }
        None => {
            println!(
                "master key:    none yet: the first start creates {}",
                seal::default_key_file(&config).display()
            );
            use crate::store::KeyStore as _;
            let store = App::open_store(&config).await?;
            let sealed = store
                .list_signing_keys()
                .await?
                .into_iter()
                .find_map(|k| seal::sealed_by(&k.sealed_key));
            store.close().await;
            if let Some(id) = sealed {
                anyhow::bail!(
                    "the database's keys are sealed under master key {id}, but there is no master key: install \
                     that key (master_key_file or LATCHKEY_MASTER_KEY) before starting Latchkey"
                );
            }
        }
    }
    println!("database reachable and migrated: ok");
    Ok(())
}
