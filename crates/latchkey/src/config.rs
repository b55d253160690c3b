//! Configuration (SPEC 5): defaults that need no setup, an optional TOML file, and `LATCHKEY_*` environment
//! variables over both.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use latchkey_core::scope::ScopeKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (`LATCHKEY_LISTEN`).
    pub listen: SocketAddr,
    /// Where the embedded SQLite database lives (`LATCHKEY_DATA_DIR`).
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…` (`LATCHKEY_DATABASE_URL`); default: SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// The public base URL, used as `iss` and for links (`LATCHKEY_ISSUER`); default `http://<listen>`.
    pub issuer: Option<String>,
    /// Access token lifetime in seconds.
    pub access_token_ttl: i64,
    /// Lifetime of ID tokens, seconds.
    pub id_token_ttl: i64,
    /// Browser session lifetime in seconds.
    pub session_ttl: i64,
    /// Argon2id hashes computed at once; more wait in line.
    pub password_hash_concurrency: usize,
    /// Requests that may wait in line for a hash (`LATCHKEY_PASSWORD_HASH_QUEUE`); past it, sign-in, sign-up and
    /// password changes answer 503 with `Retry-After`. Default: 64 per hash at once.
    pub password_hash_queue: Option<usize>,
    /// Failed sign-ins allowed per account and per address in `signin_window` seconds.
    pub signin_limit: i64,
    pub signin_window: i64,
    /// Wrong device codes allowed per browser session (four times as many per address) in `user_code_window`
    /// seconds before code entry is refused with 429.
    pub user_code_limit: i64,
    pub user_code_window: i64,
    /// Failed token, introspection and revocation requests (wrong secret, code or refresh token) allowed per
    /// address in `token_failure_window` seconds before the address is refused with 429.
    pub token_failure_limit: i64,
    pub token_failure_window: i64,
    /// `json` (default) or `pretty`.
    pub log_format: String,
    /// Tracing filter, e.g. `info` or `latchkey=debug`.
    pub log_level: String,
    /// Reverse proxies (CIDR blocks or addresses) whose `X-Forwarded-For` / `Forwarded` headers name the client
    /// (SPEC 4). Env: comma-separated. Empty: the TCP peer is the client, and headers are ignored.
    #[serde(deserialize_with = "list_or_commas")]
    pub trusted_proxies: Vec<String>,
    /// The one header those proxies write: `x-forwarded-for` (default) or `forwarded` (RFC 7239). The other is
    /// never read (a proxy passes it through as the client sent it).
    pub proxy_header: String,
    /// Sign-ups allowed per address in `signup_window` seconds.
    pub signup_limit: i64,
    pub signup_window: i64,
    /// Device code pairs an app may request per address in `codepair_window` seconds.
    pub codepair_limit: i64,
    pub codepair_window: i64,
    /// PEM files: with both set, Latchkey serves HTTPS itself (HTTP/1.1 and HTTP/2), rereading them on SIGHUP.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Open connections at most; past it, new connections wait in the listen backlog.
    pub max_connections: usize,
    /// Where `/metrics` is served (never on the public listener); `off` serves it nowhere.
    #[serde(deserialize_with = "address_or_off")]
    pub admin_listen: Option<SocketAddr>,
    /// The master key that seals the keys stored in the database (`LATCHKEY_MASTER_KEY`: base64 of 32 bytes).
    /// Over `master_key_file`; with neither, `<data_dir>/master.key` (created on first start).
    pub master_key: Option<SecretSetting>,
    /// A file holding the master key, as `master.key` does (`LATCHKEY_MASTER_KEY_FILE`); it must exist.
    pub master_key_file: Option<PathBuf>,
    /// The operator's own scopes (SPEC 1), by name: `[scopes."alexa::skill_messaging"]`.
    pub scopes: BTreeMap<String, ScopeSetting>,
    /// Where mail goes (SPEC 2.8, 5): `smtp://host:port` (plain), `smtp://host:port?tls=required` (STARTTLS),
    /// `smtps://host:port` (implicit TLS), optionally with `user:password@`. With none, each mail is written to
    /// `<data_dir>/outbox/` as an `.eml` file.
    pub smtp_url: Option<SecretSetting>,
    /// The `From` of every mail, e.g. `Example Login <login@example.com>`; default `Latchkey <no-reply@<issuer's
    /// host>>`.
    pub mail_from: Option<String>,
    /// How many days an account's security activity is kept (`LATCHKEY_AUDIT_RETENTION_DAYS`).
    pub audit_retention_days: i64,
}

/// One operator scope: `description` (what the consent page says) and `kind` (`customer` or `app`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScopeSetting {
    pub description: String,
    pub kind: ScopeKind,
}

/// The longest scope description: a line on the consent page.
pub const MAX_SCOPE_DESCRIPTION_LEN: usize = 200;

/// A list from TOML, or a comma-separated string (an environment variable).
fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        Commas(String),
    }
    Ok(match Either::deserialize(d)? {
        Either::List(list) => list,
        Either::Commas(s) => s
            .split(',')
            .map(|e| e.trim().to_owned())
            .filter(|e| !e.is_empty())
            .collect(),
    })
}

/// `host:port`, or `off`.
fn address_or_off<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    match s.as_deref().map(str::trim) {
        None | Some("off") | Some("") => Ok(None),
        Some(addr) => addr
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("`{addr}` is not host:port or off"))),
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("latchkey-data"),
            database_url: None,
            issuer: None,
            access_token_ttl: 3600,
            id_token_ttl: 3600,
            session_ttl: 14 * 24 * 3600,
            password_hash_concurrency: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            password_hash_queue: None,
            signin_limit: 10,
            signin_window: 300,
            user_code_limit: 5,
            user_code_window: 900,
            token_failure_limit: 30,
            token_failure_window: 60,
            log_format: "json".into(),
            log_level: "info".into(),
            trusted_proxies: Vec::new(),
            proxy_header: "x-forwarded-for".into(),
            signup_limit: 10,
            signup_window: 3600,
            codepair_limit: 30,
            codepair_window: 600,
            tls_cert: None,
            tls_key: None,
            max_connections: 10_000,
            admin_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9480))),
            master_key: None,
            master_key_file: None,
            scopes: BTreeMap::new(),
            smtp_url: None,
            mail_from: None,
            audit_retention_days: 90,
        }
    }
}

/// Checks an `smtp_url` without repeating it: it may hold a password.
pub fn check_smtp_url(url: &str) -> Result<(), String> {
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or_default();
    if !matches!(scheme, "smtp" | "smtps") {
        return Err(
            "smtp_url must start with smtp:// (plain, or ?tls=required for STARTTLS) or smtps:// (implicit TLS)"
                .into(),
        );
    }
    lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url)
        .map(|_| ())
        .map_err(|e| format!("smtp_url is not a usable SMTP URL: {e}"))
}

/// A setting that is a secret: `Debug` prints `[redacted]`.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct SecretSetting(String);

impl SecretSetting {
    pub fn new(value: impl Into<String>) -> Self {
        SecretSetting(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The `LATCHKEY_*` variables that are settings: not `LATCHKEY_LOG` (a full log filter, read by the logger) nor
/// `LATCHKEY_TEST_*` (reserved for the test suite). Any other unknown one is an error, so typos are caught.
fn settings_from_env() -> Env {
    Env::prefixed("LATCHKEY_").filter(|key| {
        let key = key.as_str().to_ascii_lowercase();
        key != "log" && !key.starts_with("test_")
    })
}

impl Config {
    /// Defaults, then the file (if given), then `LATCHKEY_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Config, String> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(format!("config file {} does not exist", path.display()));
            }
            fig = fig.merge(Toml::file(path));
        }
        fig = fig.merge(settings_from_env());
        let config: Config = fig.extract().map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types cannot.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(url) = &self.database_url {
            if crate::store::Engine::of(url).is_none() {
                return Err("database_url must start with sqlite: or postgres://".into());
            }
        }
        if let Some(issuer) = &self.issuer {
            let parsed =
                url::Url::parse(issuer).map_err(|_| format!("issuer `{issuer}` is not a URL"))?;
            if !matches!(parsed.scheme(), "http" | "https")
                || parsed.query().is_some()
                || parsed.fragment().is_some()
            {
                return Err("issuer must be an http(s) URL without query or fragment".into());
            }
        }
        if !(60..=86_400).contains(&self.access_token_ttl) {
            return Err("access_token_ttl must be between 60 and 86400 seconds".into());
        }
        if !(60..=86_400).contains(&self.id_token_ttl) {
            return Err("id_token_ttl must be between 60 and 86400 seconds".into());
        }
        if self.session_ttl < 60 {
            return Err("session_ttl must be at least 60 seconds".into());
        }
        if self.password_hash_concurrency == 0 {
            return Err("password_hash_concurrency must be at least 1".into());
        }
        if self.password_hash_concurrency > 4096 {
            return Err("password_hash_concurrency must be at most 4096".into());
        }
        if self.password_hash_queue() > 1_000_000 {
            return Err("password_hash_queue must be at most 1000000".into());
        }
        if self.signin_limit < 1 {
            return Err("signin_limit must be positive".into());
        }
        // The purge deletes rate-limit windows that started over a day ago.
        if !(1..=86_400).contains(&self.signin_window) {
            return Err("signin_window must be between 1 and 86400 seconds".into());
        }
        if self.user_code_limit < 1 {
            return Err("user_code_limit must be positive".into());
        }
        if !(1..=86_400).contains(&self.user_code_window) {
            return Err("user_code_window must be between 1 and 86400 seconds".into());
        }
        if self.token_failure_limit < 1 {
            return Err("token_failure_limit must be positive".into());
        }
        if !(1..=86_400).contains(&self.token_failure_window) {
            return Err("token_failure_window must be between 1 and 86400 seconds".into());
        }
        self.trusted_proxies()?;
        self.proxy_header()?;
        for (name, limit, window) in [
            ("signup", self.signup_limit, self.signup_window),
            ("codepair", self.codepair_limit, self.codepair_window),
        ] {
            if limit < 1 {
                return Err(format!("{name}_limit must be positive"));
            }
            if !(1..=86_400).contains(&window) {
                return Err(format!("{name}_window must be between 1 and 86400 seconds"));
            }
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("tls_cert and tls_key must be set together".into());
        }
        if self.max_connections == 0 {
            return Err("max_connections must be at least 1".into());
        }
        if let Some(url) = &self.smtp_url {
            check_smtp_url(url.expose())?;
        }
        self.mail_from()?;
        if !(1..=3650).contains(&self.audit_retention_days) {
            return Err("audit_retention_days must be between 1 and 3650".into());
        }
        if !matches!(self.log_format.as_str(), "json" | "pretty") {
            return Err("log_format must be json or pretty".into());
        }
        for (name, scope) in &self.scopes {
            latchkey_core::scope::check_operator_scope_name(name)
                .map_err(|e| format!("[scopes]: {e}"))?;
            let description = scope.description.trim();
            if description.is_empty()
                || description.chars().count() > MAX_SCOPE_DESCRIPTION_LEN
                || description.chars().any(char::is_control)
            {
                return Err(format!(
                    "[scopes.{name:?}]: description must be one line of 1 to {MAX_SCOPE_DESCRIPTION_LEN} \
                     characters (the consent page shows it)"
                ));
            }
        }
        Ok(())
    }

    /// The operator's scopes of `kind`, by name.
    pub fn scopes_of(&self, kind: ScopeKind) -> impl Iterator<Item = (&str, &ScopeSetting)> {
        self.scopes
            .iter()
            .filter(move |(_, s)| s.kind == kind)
            .map(|(name, s)| (name.as_str(), s))
    }

    /// The proxies whose forwarding headers are believed.
    pub fn trusted_proxies(&self) -> Result<latchkey_core::address::TrustedProxies, String> {
        latchkey_core::address::TrustedProxies::parse(
            self.trusted_proxies.iter().map(String::as_str),
        )
    }

    /// The header the trusted proxies write.
    pub fn proxy_header(&self) -> Result<latchkey_core::address::ProxyHeader, String> {
        latchkey_core::address::ProxyHeader::parse(&self.proxy_header).ok_or_else(|| {
            format!(
                "proxy_header `{}` must be x-forwarded-for or forwarded",
                self.proxy_header
            )
        })
    }

    /// Who runs this Latchkey, as pages and mails name it: the issuer's host.
    pub fn operator_name(&self) -> String {
        let issuer = self.issuer();
        url::Url::parse(&issuer)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or(issuer)
    }

    /// The `From` address of mails: `mail_from`, or `Latchkey <no-reply@<operator>>`.
    pub fn mail_from(&self) -> Result<lettre::message::Mailbox, String> {
        let from = match &self.mail_from {
            Some(from) => from.clone(),
            None => {
                let host = self.operator_name();
                // An address literal (127.0.0.1) is not a domain a mailbox can name.
                let domain = if host.parse::<std::net::IpAddr>().is_ok() || !host.contains('.') {
                    "localhost.localdomain".to_owned()
                } else {
                    host
                };
                format!("Latchkey <no-reply@{domain}>")
            }
        };
        from.parse()
            .map_err(|e| format!("mail_from `{from}` is not a mail address ({e})"))
    }

    /// The database URL in force.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("latchkey.db").display()
            ),
        }
    }

    /// How many requests may wait in line for a password hash: as configured, or 64 per hash at once.
    pub fn password_hash_queue(&self) -> usize {
        self.password_hash_queue
            .unwrap_or_else(|| self.password_hash_concurrency.saturating_mul(64))
    }

    /// The issuer in force, without a trailing slash.
    pub fn issuer(&self) -> String {
        match &self.issuer {
            Some(i) => i.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }

    /// Cookies are `Secure` unless the issuer is plain http on a loopback host (SPEC 4).
    pub fn secure_cookies(&self) -> bool {
        let loopback = match url::Url::parse(&self.issuer()) {
            Ok(u) if u.scheme() == "http" => match u.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            },
            _ => false,
        };
        !loopback
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail wants its own error type
    fn the_log_filter_and_test_variables_are_not_settings() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("LATCHKEY_LOG", "latchkey=debug");
            jail.set_env("LATCHKEY_TEST_PYTHON", "/usr/bin/python3");
            jail.set_env("LATCHKEY_ACCESS_TOKEN_TTL", "120");
            let c = Config::load(None).map_err(figment::Error::from)?;
            assert_eq!(c.access_token_ttl, 120);
            jail.set_env("LATCHKEY_ACESS_TOKEN_TTL", "120");
            assert!(Config::load(None).unwrap_err().contains("acess_token_ttl"));
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail wants its own error type
    fn operator_scopes_are_read_from_the_file_and_checked() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "good.toml",
                r#"
                [scopes."alexa::skill_messaging"]
                description = "Send messages to your Alexa skill"
                kind = "app"
                [scopes."https://api.example.com/orders.read"]
                description = "See your orders"
                kind = "customer"
                "#,
            )?;
            let c = Config::load(Some(Path::new("good.toml"))).map_err(figment::Error::from)?;
            let app: Vec<_> = c.scopes_of(ScopeKind::App).map(|(n, _)| n).collect();
            assert_eq!(app, ["alexa::skill_messaging"]);
            let customer: Vec<_> = c.scopes_of(ScopeKind::Customer).collect();
            assert_eq!(customer.len(), 1);
            assert_eq!(customer[0].0, "https://api.example.com/orders.read");
            assert_eq!(customer[0].1.description, "See your orders");

            for (toml, says) in [
                (
                    "[scopes.\"two words\"]\ndescription = \"x\"\nkind = \"app\"",
                    "\"two words\" is not a valid scope name",
                ),
                (
                    "[scopes.profile]\ndescription = \"x\"\nkind = \"customer\"",
                    "\"profile\" is a standard scope",
                ),
                (
                    "[scopes.x]\ndescription = \"x\"\nkind = \"machine\"",
                    "found `machine`, expected ``customer` or `app`` for key \"default.scopes.x.kind\"",
                ),
                ("[scopes.x]\ndescription = \"x\"", "missing field `kind`"),
                ("[scopes.x]\nkind = \"app\"", "missing field `description`"),
                (
                    "[scopes.x]\ndescription = \"  \"\nkind = \"app\"",
                    "description must be one line",
                ),
                (
                    "[scopes.x]\ndescription = \"x\"\nkind = \"app\"\nconsent = false",
                    "unknown field: found `consent`",
                ),
            ] {
                jail.create_file("bad.toml", toml)?;
                let e = Config::load(Some(Path::new("bad.toml"))).unwrap_err();
                assert!(e.contains(says), "{toml}: {e}");
            }
            Ok(())
        });
    }

    #[test]
    fn defaults_need_no_setup() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.issuer(), "http://127.0.0.1:8080");
        assert!(c
            .database_url()
            .starts_with("sqlite://latchkey-data/latchkey.db"));
        assert!(!c.secure_cookies());
        assert_eq!(c.password_hash_queue(), 64 * c.password_hash_concurrency);
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail wants its own error type
    fn the_hashing_queue_follows_the_concurrency_unless_set() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("LATCHKEY_PASSWORD_HASH_CONCURRENCY", "3");
            let c = Config::load(None).map_err(figment::Error::from)?;
            assert_eq!(c.password_hash_queue(), 192);
            jail.set_env("LATCHKEY_PASSWORD_HASH_QUEUE", "0");
            let c = Config::load(None).map_err(figment::Error::from)?;
            assert_eq!(c.password_hash_queue, Some(0));
            assert_eq!(c.password_hash_queue(), 0);
            jail.set_env("LATCHKEY_PASSWORD_HASH_QUEUE", "2000000");
            assert!(Config::load(None)
                .unwrap_err()
                .contains("password_hash_queue"));
            Ok(())
        });
    }

    #[test]
    fn only_plain_http_on_loopback_relaxes_secure_cookies() {
        for (issuer, secure) in [
            ("http://127.0.0.1:8080", false),
            ("http://127.8.0.1", false),
            ("http://localhost:3000", false),
            ("http://[::1]:8080", false),
            ("http://auth.example.com", true),
            ("http://10.0.0.5:8080", true),
            ("http://localhost.example.com", true),
            ("https://127.0.0.1:8443", true),
            ("https://login.example.com", true),
        ] {
            let c = Config {
                issuer: Some(issuer.into()),
                ..Config::default()
            };
            assert_eq!(c.secure_cookies(), secure, "{issuer}");
        }
    }

    #[test]
    fn bad_values_are_explained() {
        let c = Config {
            database_url: Some("mysql://x".into()),
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().contains("database_url"));
        let c = Config {
            issuer: Some("ftp://x".into()),
            ..Config::default()
        };
        assert!(c.validate().is_err());
        let c = Config {
            access_token_ttl: 5,
            ..Config::default()
        };
        assert!(c.validate().is_err());
        let c = Config {
            signin_window: 86_401,
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().contains("signin_window"));
    }
}
