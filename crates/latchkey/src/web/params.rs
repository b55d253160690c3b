//! Reading OAuth parameters from a request body: `application/x-www-form-urlencoded` (with or without a
//! charset) or, on LWA paths, a flat JSON object (SPEC 2). Anything else is `invalid_request`.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use latchkey_core::error::OAuthError;
use latchkey_core::params::Params;

use super::error::{token_error, Failure};

/// The parameters of a POSTed API request.
pub struct BodyParams(pub Params);

fn parse_json(bytes: &[u8]) -> Result<Params, OAuthError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|_| {
        OAuthError::new(
            latchkey_core::error::ErrorCode::InvalidRequest,
            "The request body is not valid JSON",
        )
    })?;
    let obj = value.as_object().ok_or_else(|| {
        OAuthError::new(
            latchkey_core::error::ErrorCode::InvalidRequest,
            "The request body must be a JSON object",
        )
    })?;
    let mut pairs = Vec::with_capacity(obj.len());
    for (k, v) in obj {
        let s = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Null => String::new(),
            // `scope_data` may be sent as an object; everything else must be flat.
            serde_json::Value::Object(_) if k == "scope_data" => v.to_string(),
            _ => return Err(OAuthError::invalid(k)),
        };
        pairs.push((k.clone(), s));
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
}
