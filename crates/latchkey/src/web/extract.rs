//! Extractors shared by the handlers: who is asking (behind trusted proxies), a page's `{client_id}`, and the one
//! `Authorization` header of a client-authenticated request.

use crate::app::AppState;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{FromRequestParts, Path, RawPathParams};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use latchkey_core::error::OAuthError;
use std::net::{IpAddr, SocketAddr};

/// Who is asking (SPEC 4): the TCP peer, or the client a trusted proxy forwards for
/// (`latchkey_core::address`). Per-address limits count it by [`ClientIp::key`].
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The key per-address limits count under (the IPv6 /64).
    pub fn key(&self) -> String {
        latchkey_core::address::limit_key(self.0)
    }
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        if state.trusted_proxies.is_empty() {
            return Ok(ClientIp(peer));
        }
        // Lossy: bytes a client put in its own part of the header must not hide the part our proxy appended.
        let header = state.proxy_header;
        let lossy: Vec<std::borrow::Cow<'_, str>> = parts
            .headers
            .get_all(header.name())
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
            .collect();
        let values: Vec<&str> = lossy.iter().map(|c| c.as_ref()).collect();
        Ok(ClientIp(latchkey_core::address::client_address(
            peer,
            &state.trusted_proxies,
            header,
            &values,
        )))
    }
}

/// Who is asking, as the security activity records it (`flows::activity::Origin`): the client's address and its
/// `User-Agent`, cut to 200 characters.
pub struct Seen(pub crate::flows::activity::Origin);

impl FromRequestParts<AppState> for Seen {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Ok(ClientIp(ip)) = ClientIp::from_request_parts(parts, state).await;
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(200)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Seen(crate::flows::activity::Origin {
            ip: ip.to_string(),
            user_agent,
        }))
    }
}

/// The `{client_id}` of a page's path. A segment that does not decode to UTF-8 (`%FF`) is kept as sent, still
/// percent-encoded: no client id contains `%`, so the page answers as for any unknown app (a page, not axum's
/// plain-text rejection).
pub struct ClientIdParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIdParam {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Ok(Path(id)) = Path::<String>::from_request_parts(parts, state).await {
            return Ok(ClientIdParam(id));
        }
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .ok()
            .and_then(|params| {
                params
                    .iter()
                    .find(|(name, _)| *name == "client_id")
                    .map(|(_, value)| value.to_owned())
            })
            .unwrap_or_default();
        Ok(ClientIdParam(raw))
    }
}

/// The one `Authorization` header of a token request, if sent. A header that cannot be read, or a second one,
/// is refused rather than skipped: skipping it would authenticate the client by the body alone.
pub fn authorization_header(headers: &HeaderMap) -> Result<Option<&str>, OAuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(OAuthError::new(
            latchkey_core::error::ErrorCode::InvalidRequest,
            "The request has more than one Authorization header",
        ));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| OAuthError::invalid_client("Authorization"))
}
