//! Request parameters as received (query string, form body or flat JSON object), with RFC 6749 3.1's rules:
//! a parameter sent without a value is treated as omitted, and a parameter may not be repeated.

use crate::error::OAuthError;

/// The most parameters one request may carry; more is `invalid_request`.
pub const MAX_PARAMS: usize = 64;
/// The longest value any single parameter may have.
pub const MAX_VALUE_LEN: usize = 4096;

/// Raw name/value pairs in the order they arrived.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Bounds-checks the pairs and drops empty values (RFC 6749 3.1).
    pub fn new(pairs: Vec<(String, String)>) -> Result<Self, OAuthError> {
        if pairs.len() > MAX_PARAMS {
            return Err(OAuthError::new(
                crate::error::ErrorCode::InvalidRequest,
                "The request has too many parameters",
            ));
        }
        if let Some((name, _)) = pairs
            .iter()
            .find(|(n, v)| v.len() > MAX_VALUE_LEN || n.len() > 128)
        {
            let name: String = name.chars().take(64).collect();
            return Err(OAuthError::new(
                crate::error::ErrorCode::InvalidRequest,
                format!("The request has a parameter that is too long : {name}"),
            ));
        }
        // No protocol value contains a NUL, and PostgreSQL cannot store one in text: refuse it here, by name.
        if let Some((name, _)) = pairs
            .iter()
            .find(|(n, v)| n.contains('\0') || v.contains('\0'))
        {
            let name: String = name.chars().filter(|c| *c != '\0').take(64).collect();
            return Err(OAuthError::invalid(&name));
        }
        Ok(Params {
            pairs: pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect(),
        })
    }

    /// Parses an `application/x-www-form-urlencoded` string (a query string or a form body).
    pub fn from_urlencoded(input: &[u8]) -> Result<Self, OAuthError> {
        Self::new(url::form_urlencoded::parse(input).into_owned().collect())
    }

    /// The single value of `name`, if present; `invalid_request` if it was sent more than once.
    pub fn get(&self, name: &str) -> Result<Option<&str>, OAuthError> {
        let mut found = None;
        for (n, v) in &self.pairs {
            if n == name {
                if found.is_some() {
                    return Err(OAuthError::duplicate(name));
                }
                found = Some(v.as_str());
            }
        }
        Ok(found)
    }

    /// Like [`Params::get`] but the parameter is required.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)?.ok_or_else(|| OAuthError::missing(name))
    }

    /// Every value of `name`, joined by spaces (LWA accepts a repeated `scope`).
    pub fn joined(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect();
        if values.is_empty() {
            None
        } else {
            Some(values.join(" "))
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_are_omitted_and_duplicates_rejected() {
        let p = Params::from_urlencoded(b"a=1&b=&c=2&c=3").unwrap();
        assert_eq!(p.get("a").unwrap(), Some("1"));
        assert_eq!(p.get("b").unwrap(), None);
        assert_eq!(
            p.get("c").unwrap_err().description,
            "The request has a duplicate parameter : c"
        );
        assert_eq!(
            p.require("z").unwrap_err().description,
            "The request is missing a required parameter : z"
        );
    }

    #[test]
    fn nul_is_refused_by_name() {
        let e = Params::from_urlencoded(b"a=1&nonce=x%00y").unwrap_err();
        assert_eq!(
            e.description,
            "The request has an invalid parameter : nonce"
        );
        assert!(Params::from_urlencoded(b"a%00b=1").is_err());
    }

    #[test]
    fn repeated_scope_is_joined() {
        let p = Params::from_urlencoded(b"scope=profile&scope=postal_code").unwrap();
        assert_eq!(p.joined("scope").as_deref(), Some("profile postal_code"));
        assert!(p.get("scope").is_err());
    }

    #[test]
    fn oversized_inputs_are_rejected() {
        let long = format!("a={}", "x".repeat(MAX_VALUE_LEN + 1));
        assert!(Params::from_urlencoded(long.as_bytes()).is_err());
        let many: Vec<String> = (0..=MAX_PARAMS).map(|i| format!("p{i}=1")).collect();
        assert!(Params::from_urlencoded(many.join("&").as_bytes()).is_err());
    }
}
