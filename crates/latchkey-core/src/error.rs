//! The OAuth 2.0 error codes (RFC 6749 4.1.2.1, 5.2; RFC 6750 3.1) and the LWA-style descriptions that name the
//! offending parameter (SPEC 2.2: `The request has an invalid grant parameter : code`).

use std::fmt;

/// An error code from RFC 6749, RFC 6750, RFC 8628 or OpenID Connect Core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    InvalidScope,
    AccessDenied,
    ServerError,
    TemporarilyUnavailable,
    InvalidToken,
    InsufficientScope,
    LoginRequired,
    ConsentRequired,
    /// OpenID Connect Core 3.1.2.6: `prompt=none`, but the customer must confirm (RFC 8252 8.6, SPEC 2.1).
    InteractionRequired,
    /// OpenID Connect Core 3.1.2.6: request objects (`request`) are not served.
    RequestNotSupported,
    /// OpenID Connect Core 3.1.2.6: `request_uri` is not served.
    RequestUriNotSupported,
    AuthorizationPending,
    SlowDown,
    ExpiredToken,
    InvalidCodePair,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::InteractionRequired => "interaction_required",
            ErrorCode::RequestNotSupported => "request_not_supported",
            ErrorCode::RequestUriNotSupported => "request_uri_not_supported",
            ErrorCode::AuthorizationPending => "authorization_pending",
            ErrorCode::SlowDown => "slow_down",
            ErrorCode::ExpiredToken => "expired_token",
            ErrorCode::InvalidCodePair => "invalid_code_pair",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth error with a human description safe to show to the client (never an internal cause).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: String,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        OAuthError {
            code,
            description: description.into(),
        }
    }
    /// `invalid_request`: a required parameter is absent.
    pub fn missing(param: &str) -> Self {
        Self::new(
            ErrorCode::InvalidRequest,
            format!("The request is missing a required parameter : {param}"),
        )
    }
    /// `invalid_request`: a parameter is malformed.
    pub fn invalid(param: &str) -> Self {
        Self::new(
            ErrorCode::InvalidRequest,
            format!("The request has an invalid parameter : {param}"),
        )
    }
    /// `invalid_request`: a parameter was sent more than once.
    pub fn duplicate(param: &str) -> Self {
        Self::new(
            ErrorCode::InvalidRequest,
            format!("The request has a duplicate parameter : {param}"),
        )
    }
    /// `invalid_grant` naming the grant parameter that failed.
    pub fn grant(param: &str) -> Self {
        Self::new(
            ErrorCode::InvalidGrant,
            format!("The request has an invalid grant parameter : {param}"),
        )
    }
    /// `invalid_client`, worded as LWA words it, naming what failed (`client_id`, `client_secret`, `Authorization`).
    pub fn invalid_client(param: &str) -> Self {
        Self::new(
            ErrorCode::InvalidClient,
            format!("Client authentication failed : {param}"),
        )
    }
    pub fn invalid_scope(scope: &str) -> Self {
        Self::new(
            ErrorCode::InvalidScope,
            format!("An unknown scope was requested : {scope}"),
        )
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.description)
    }
}

impl std::error::Error for OAuthError {}
