//! Scopes (SPEC 1): space-separated, validated against the scopes the server knows, kept as a sorted set;
//! `scope_data` (LWA's per-scope options, e.g. `{"postal_code":{"essential":false}}`); the names an operator may
//! give its own scopes, and which scopes a `client_credentials` token may carry.

use crate::error::{ErrorCode, OAuthError};
use std::collections::BTreeSet;

/// The scopes every Latchkey knows.
pub const STANDARD_SCOPES: &[&str] = &[
    "profile",
    "profile:user_id",
    "postal_code",
    "openid",
    "email",
];

/// What an operator's own scope is for (SPEC 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScopeKind {
    /// Granted by a customer's consent, like `profile`; it releases no profile field (the operator's own APIs
    /// read it from tokeninfo or introspection).
    Customer,
    /// Granted only through `client_credentials`, and only to apps the operator allowed it.
    App,
}

impl ScopeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Customer => "customer",
            ScopeKind::App => "app",
        }
    }
}

/// The longest name an operator may give a scope.
pub const MAX_SCOPE_NAME_LEN: usize = 128;

/// Whether `name` is a scope-token (RFC 6749 3.3): `1*( %x21 / %x23-5B / %x5D-7E )`, i.e. printable ASCII
/// without space, `"` and `\`.
pub fn is_scope_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// Checks the name of an operator's scope: a scope-token of at most [`MAX_SCOPE_NAME_LEN`] characters that is
/// not one of the [`STANDARD_SCOPES`]. The error says what is wrong, in words for the operator.
pub fn check_operator_scope_name(name: &str) -> Result<(), String> {
    let shown: String = name.chars().take(64).collect();
    if !is_scope_token(name) {
        return Err(format!(
            "scope {shown:?} is not a valid scope name: use printable ASCII without spaces, `\"` or `\\` \
             (RFC 6749 3.3), e.g. \"alexa::skill_messaging\""
        ));
    }
    if name.len() > MAX_SCOPE_NAME_LEN {
        return Err(format!(
            "scope {shown:?}… is too long: a scope name has at most {MAX_SCOPE_NAME_LEN} characters"
        ));
    }
    if STANDARD_SCOPES.contains(&name) {
        return Err(format!(
            "scope {name:?} is a standard scope and cannot be redefined: choose another name"
        ));
    }
    Ok(())
}

/// The scopes of a `client_credentials` token (RFC 6749 4.4.2 and 3.3; SPEC 1, 2.2). The token acts for the app
/// alone, so it carries only app scopes: those the operator defines (`app_scopes`) and allowed this app
/// (`allowed`). A customer scope, standard or the operator's, is `invalid_scope` (there is no customer), and so
/// is an app scope the app was not allowed, or an unknown one. With no `scope` asked, the app gets every app
/// scope it is allowed (RFC 6749 3.3's pre-defined default), which may be none.
pub fn client_credentials_scopes(
    asked: Option<&str>,
    customer_scopes: &[impl AsRef<str>],
    app_scopes: &[impl AsRef<str>],
    allowed: &[impl AsRef<str>],
) -> Result<Scopes, OAuthError> {
    fn has(list: &[impl AsRef<str>], s: &str) -> bool {
        list.iter().any(|k| k.as_ref() == s)
    }
    let grantable = |s: &str| has(app_scopes, s) && has(allowed, s);
    let Some(asked) = asked else {
        return Ok(Scopes(
            allowed
                .iter()
                .map(AsRef::as_ref)
                .filter(|s| grantable(s))
                .map(str::to_owned)
                .collect(),
        ));
    };
    let mut set = BTreeSet::new();
    for s in asked.split(' ').filter(|s| !s.is_empty()) {
        let shown: String = s.chars().take(64).collect();
        if has(customer_scopes, s) {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                format!(
                    "A customer scope cannot be granted to an app acting for itself (client_credentials) : {shown}"
                ),
            ));
        }
        if has(app_scopes, s) && !has(allowed, s) {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                format!("The client is not allowed the requested scope : {shown}"),
            ));
        }
        if !grantable(s) {
            return Err(OAuthError::invalid_scope(&shown));
        }
        set.insert(s.to_owned());
    }
    if set.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "The request has an invalid parameter : scope",
        ));
    }
    Ok(Scopes(set))
}

/// A set of known scopes: non-empty when a customer granted it; a `client_credentials` token's may be empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scopes(BTreeSet<String>);

impl Scopes {
    /// Parses a space-separated list; every scope must be in `known`.
    pub fn parse(input: &str, known: &[impl AsRef<str>]) -> Result<Scopes, OAuthError> {
        let mut set = BTreeSet::new();
        for s in input.split(' ').filter(|s| !s.is_empty()) {
            if !known.iter().any(|k| k.as_ref() == s) {
                let shown: String = s.chars().take(64).collect();
                return Err(OAuthError::invalid_scope(&shown));
            }
            set.insert(s.to_owned());
        }
        if set.is_empty() {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                "The request has an invalid parameter : scope",
            ));
        }
        Ok(Scopes(set))
    }

    /// Scopes read back from storage (already validated when granted).
    pub fn from_stored(stored: &str) -> Scopes {
        Scopes(
            stored
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }

    pub fn is_subset(&self, other: &Scopes) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scopes without `removed` (the customer unticked a non-essential item).
    pub fn without(&self, removed: &[String]) -> Scopes {
        Scopes(
            self.0
                .iter()
                .filter(|s| !removed.contains(s))
                .cloned()
                .collect(),
        )
    }

    /// Whether a consent page is needed at all: `profile:user_id` alone needs none (SPEC 2.1).
    pub fn needs_consent(&self) -> bool {
        self.0
            .iter()
            .any(|s| s != "profile:user_id" && s != "openid")
    }

    /// May this token read the profile endpoint at all?
    pub fn allows_profile(&self) -> bool {
        ["profile", "profile:user_id", "postal_code", "email"]
            .iter()
            .any(|s| self.contains(s))
    }

    /// Which of the account's fields these granted scopes release: the one rule that the profile endpoint and
    /// userinfo follow (the consent page lists each scope in these words) (SPEC 2.5; OpenID Connect Core 5.4). `profile` releases
    /// the name and the address, `email` the address, `postal_code` the postal code; the pairwise id is always
    /// released to a token that may read the profile (`profile:user_id` alone releases nothing else).
    pub fn released(&self) -> Released {
        Released {
            name: self.contains("profile"),
            email: self.contains("profile") || self.contains("email"),
            postal_code: self.contains("postal_code"),
        }
    }

    /// The canonical space-separated form (sorted), used in responses and storage.
    pub fn to_string_sorted(&self) -> String {
        let mut out = String::new();
        for s in &self.0 {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(s);
        }
        out
    }
}

/// The account fields a set of scopes releases ([`Scopes::released`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Released {
    pub name: bool,
    pub email: bool,
    pub postal_code: bool,
}

/// Which requested scopes are non-essential (the customer may untick them), from `scope_data`.
pub fn parse_scope_data(input: &str, scopes: &Scopes) -> Result<Vec<String>, OAuthError> {
    let value: serde_json::Value =
        serde_json::from_str(input).map_err(|_| OAuthError::invalid("scope_data"))?;
    let obj = value
        .as_object()
        .ok_or_else(|| OAuthError::invalid("scope_data"))?;
    let mut optional = Vec::new();
    for (scope, opts) in obj {
        if !scopes.contains(scope) {
            return Err(OAuthError::invalid("scope_data"));
        }
        let opts = opts
            .as_object()
            .ok_or_else(|| OAuthError::invalid("scope_data"))?;
        match opts.get("essential") {
            None => {}
            Some(serde_json::Value::Bool(true)) => {}
            Some(serde_json::Value::Bool(false)) => optional.push(scope.clone()),
            Some(_) => return Err(OAuthError::invalid("scope_data")),
        }
    }
    optional.sort();
    Ok(optional)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        let s = Scopes::parse("postal_code  profile", STANDARD_SCOPES).unwrap();
        assert_eq!(s.to_string_sorted(), "postal_code profile");
        assert_eq!(
            Scopes::parse("profile bogus", STANDARD_SCOPES)
                .unwrap_err()
                .code,
            ErrorCode::InvalidScope
        );
        assert_eq!(
            Scopes::parse("   ", STANDARD_SCOPES).unwrap_err().code,
            ErrorCode::InvalidScope
        );
        assert_eq!(
            Scopes::from_stored("profile postal_code"),
            Scopes::parse("postal_code profile", STANDARD_SCOPES).unwrap()
        );
    }

    #[test]
    fn consent_and_profile_rules() {
        let uid = Scopes::parse("profile:user_id", STANDARD_SCOPES).unwrap();
        assert!(!uid.needs_consent());
        assert!(uid.allows_profile());
        assert!(Scopes::parse("profile", STANDARD_SCOPES)
            .unwrap()
            .needs_consent());
        assert!(!Scopes::parse("openid", STANDARD_SCOPES)
            .unwrap()
            .allows_profile());
    }

    #[test]
    fn each_scope_releases_its_fields_and_no_other() {
        let released = |s: &str| Scopes::from_stored(s).released();
        let (none, all) = (
            Released::default(),
            Released {
                name: true,
                email: true,
                postal_code: true,
            },
        );
        assert_eq!(released("profile:user_id"), none);
        assert_eq!(released("openid"), none);
        assert_eq!(
            released("profile"),
            Released {
                name: true,
                email: true,
                postal_code: false
            }
        );
        assert_eq!(
            released("email"),
            Released {
                name: false,
                email: true,
                postal_code: false
            }
        );
        assert_eq!(
            released("postal_code"),
            Released {
                name: false,
                email: false,
                postal_code: true
            }
        );
        assert_eq!(released("openid postal_code profile"), all);
        for s in ["profile", "profile:user_id", "postal_code", "email"] {
            assert!(Scopes::from_stored(s).allows_profile(), "{s}");
        }
        assert!(!Scopes::from_stored("openid").allows_profile());
    }

    #[test]
    fn operator_scope_names_are_scope_tokens_and_not_standard_ones() {
        for good in [
            "alexa::skill_messaging",
            "orders:read",
            "https://api.example/read",
            "a!#[]~",
        ] {
            check_operator_scope_name(good).unwrap();
        }
        for (bad, says) in [
            ("", "not a valid scope name"),
            ("two words", "not a valid scope name"),
            ("quote\"d", "not a valid scope name"),
            ("back\\slash", "not a valid scope name"),
            ("tab\there", "not a valid scope name"),
            ("caf\u{e9}", "not a valid scope name"),
            ("profile", "standard scope"),
            ("profile:user_id", "standard scope"),
            ("openid", "standard scope"),
        ] {
            let e = check_operator_scope_name(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        assert!(check_operator_scope_name(&"x".repeat(MAX_SCOPE_NAME_LEN)).is_ok());
        assert!(
            check_operator_scope_name(&"x".repeat(MAX_SCOPE_NAME_LEN + 1))
                .unwrap_err()
                .contains("too long")
        );
    }

    #[test]
    fn client_credentials_get_only_the_app_scopes_the_app_was_allowed() {
        let customer = ["profile", "postal_code", "orders:read"];
        let app = ["alexa::skill_messaging", "reports:write"];
        let allowed = ["alexa::skill_messaging", "no_longer_defined"];
        let none: [&str; 0] = [];
        let grant = |asked: Option<&str>, allowed: &[&str]| {
            client_credentials_scopes(asked, &customer, &app, allowed)
        };
        assert_eq!(
            grant(Some("alexa::skill_messaging"), &allowed)
                .unwrap()
                .to_string_sorted(),
            "alexa::skill_messaging"
        );
        // Nothing asked: every app scope the app is allowed and that is still defined; or none at all.
        assert_eq!(
            grant(None, &allowed).unwrap().to_string_sorted(),
            "alexa::skill_messaging"
        );
        assert!(grant(None, &none).unwrap().is_empty());
        for (asked, says) in [
            ("profile", "customer scope"),
            ("orders:read", "customer scope"),
            ("alexa::skill_messaging postal_code", "customer scope"),
            ("reports:write", "not allowed"),
            ("no_longer_defined", "unknown scope"),
            ("bogus", "unknown scope"),
            ("  ", ": scope"),
        ] {
            let e = grant(Some(asked), &allowed).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidScope, "{asked}");
            assert!(e.description.contains(says), "{asked}: {}", e.description);
        }
        assert_eq!(
            grant(Some("alexa::skill_messaging"), &none)
                .unwrap_err()
                .code,
            ErrorCode::InvalidScope
        );
    }

    #[test]
    fn scope_data() {
        let s = Scopes::parse("profile postal_code", STANDARD_SCOPES).unwrap();
        assert_eq!(
            parse_scope_data(r#"{"postal_code":{"essential":false}}"#, &s).unwrap(),
            vec!["postal_code"]
        );
        assert!(parse_scope_data(r#"{"profile":{"essential":true}}"#, &s)
            .unwrap()
            .is_empty());
        assert!(parse_scope_data(r#"{"email":{"essential":false}}"#, &s).is_err());
        assert!(parse_scope_data("not json", &s).is_err());
        assert!(parse_scope_data(r#"{"profile":{"essential":"no"}}"#, &s).is_err());
        assert_eq!(
            s.without(&["postal_code".into()]).to_string_sorted(),
            "profile"
        );
    }
}
