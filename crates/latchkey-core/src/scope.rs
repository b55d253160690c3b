//! Scopes (SPEC 1): space-separated, validated against the scopes the server knows, kept as a sorted set, and
//! `scope_data` (LWA's per-scope options, e.g. `{"postal_code":{"essential":false}}`).

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

/// A non-empty set of known scopes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scopes(BTreeSet<String>);

impl Scopes {
    /// Parses a space-separated list; every scope must be in `known`.
    pub fn parse(input: &str, known: &[&str]) -> Result<Scopes, OAuthError> {
        let mut set = BTreeSet::new();
        for s in input.split(' ').filter(|s| !s.is_empty()) {
            if !known.contains(&s) {
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
        self.contains("profile") || self.contains("profile:user_id") || self.contains("postal_code")
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
