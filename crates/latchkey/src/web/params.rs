//! Reading OAuth parameters from a request body: `application/x-www-form-urlencoded` (with or without a
//! charset) or, on LWA paths, a flat JSON object (SPEC 2). Anything else is `invalid_request`. A JSON object's
//! members are kept as sent, repeated names included, so that a name given twice is the same `invalid_request`
//! as a repeated form parameter (RFC 6749 3.1) rather than silently the last value.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use latchkey_core::error::OAuthError;
use latchkey_core::params::Params;

use super::error::token_error;
use crate::flows::error::Failure;

/// The parameters of a POSTed API request.
pub struct BodyParams(pub Params);

/// A JSON object's members in the order sent, repeated names included (`serde_json::Value` would keep only the
/// last of them).
struct Members(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

fn parse_json(bytes: &[u8]) -> Result<Params, OAuthError> {
    let members: Members = serde_json::from_slice(bytes).map_err(|e| {
        let description = if e.is_data() {
            "The request body must be a JSON object"
        } else {
            "The request body is not valid JSON"
        };
        OAuthError::new(latchkey_core::error::ErrorCode::InvalidRequest, description)
    })?;
    let mut pairs = Vec::with_capacity(members.0.len());
    for (k, v) in members.0 {
        let s = match v {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Null => String::new(),
            // `scope_data` may be sent as an object; everything else must be flat.
            serde_json::Value::Object(_) if k == "scope_data" => v.to_string(),
            _ => return Err(OAuthError::invalid(&k)),
        };
        pairs.push((k, s));
    }
    Params::new(pairs)
}

/// Parses a body by its content type.
pub fn parse_body(content_type: Option<&str>, bytes: &[u8]) -> Result<Params, OAuthError> {
    let mime = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/x-www-form-urlencoded" => {
            std::str::from_utf8(bytes).map_err(|_| OAuthError::invalid("body"))?;
            Params::from_urlencoded(bytes)
        }
        "application/json" => parse_json(bytes),
        "" if bytes.is_empty() => Params::new(Vec::new()),
        _ => Err(OAuthError::new(
            latchkey_core::error::ErrorCode::InvalidRequest,
            "The request body must be application/x-www-form-urlencoded or application/json",
        )),
    }
}

impl<S: Send + Sync> FromRequest<S> for BodyParams {
    type Rejection = axum::response::Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            let description = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                "The request body is too large"
            } else {
                "The request body could not be read"
            };
            token_error(Failure::OAuth(OAuthError::new(
                latchkey_core::error::ErrorCode::InvalidRequest,
                description,
            )))
        })?;
        parse_body(content_type.as_deref(), &bytes)
            .map(BodyParams)
            .map_err(|e| token_error(Failure::OAuth(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies() {
        let p = parse_body(
            Some("application/x-www-form-urlencoded;charset=UTF-8"),
            b"a=1&b=2",
        )
        .unwrap();
        assert_eq!(p.get("b").unwrap(), Some("2"));
        let p = parse_body(
            Some("application/json"),
            br#"{"a":"1","n":5,"scope_data":{"x":{}}}"#,
        )
        .unwrap();
        assert_eq!(p.get("n").unwrap(), Some("5"));
        assert_eq!(p.get("scope_data").unwrap(), Some(r#"{"x":{}}"#));
        assert!(parse_body(Some("application/json"), b"[1]").is_err());
        assert!(parse_body(Some("application/json"), br#"{"a":[1]}"#).is_err());
        assert!(parse_body(Some("text/plain"), b"a=1").is_err());
        assert!(parse_body(Some("application/x-www-form-urlencoded"), b"a=\xff").is_err());
    }

    fn json(body: &str) -> Result<Params, OAuthError> {
        parse_body(Some("application/json"), body.as_bytes())
    }

    #[test]
    fn a_repeated_json_member_is_a_duplicate_parameter_like_a_repeated_form_field() {
        let from_json = json(r#"{"grant_type":"refresh_token","code":"a","code":"b"}"#).unwrap();
        let from_form = parse_body(
            Some("application/x-www-form-urlencoded"),
            b"grant_type=refresh_token&code=a&code=b",
        )
        .unwrap();
        for p in [from_json, from_form] {
            assert_eq!(p.get("grant_type").unwrap(), Some("refresh_token"));
            assert_eq!(
                p.get("code").unwrap_err().description,
                "The request has a duplicate parameter : code"
            );
        }
        // The same value twice, or of another type, is still twice.
        for body in [
            r#"{"client_id":"x","client_id":"x"}"#,
            r#"{"client_id":"1","client_id":1}"#,
            r#"{"scope_data":{"a":{}},"scope_data":"{}"}"#,
        ] {
            let p = json(body).unwrap();
            let name = p.pairs()[0].0.clone();
            assert_eq!(
                p.get(&name).unwrap_err().description,
                format!("The request has a duplicate parameter : {name}"),
                "{body}"
            );
        }
        // As in a form, an empty (null) member counts as absent, and a repeated scope is joined.
        let p =
            json(r#"{"code":null,"code":"b","scope":"profile","scope":"postal_code"}"#).unwrap();
        assert_eq!(p.get("code").unwrap(), Some("b"));
        assert_eq!(p.joined("scope").as_deref(), Some("profile postal_code"));
    }

    #[test]
    fn json_that_is_not_one_flat_object_is_refused_with_its_reason() {
        let description = |body: &str| json(body).unwrap_err().description;
        for body in ["[1]", r#""grant_type""#, "null", "5"] {
            assert_eq!(
                description(body),
                "The request body must be a JSON object",
                "{body}"
            );
        }
        for body in ["{", r#"{"a":"1"} {"b":"2"}"#, r#"{"a":"1",}"#, ""] {
            assert_eq!(
                description(body),
                "The request body is not valid JSON",
                "{body}"
            );
        }
        assert_eq!(
            description(r#"{"code":["a"]}"#),
            "The request has an invalid parameter : code"
        );
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(500), "]".repeat(500));
        assert!(json(&deep).is_err());
    }
}
