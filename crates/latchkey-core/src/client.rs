//! What the protocol needs to know about a registered app (security profile, SPEC 1).

/// The settings of a security profile that protocol decisions depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPolicy {
    pub client_id: String,
    /// Confidential apps have a secret; public apps authenticate with PKCE only.
    pub confidential: bool,
    /// Allowed return URLs, exact strings.
    pub redirect_uris: Vec<String>,
    /// Implicit grant (`response_type=token`): off by default.
    pub allow_implicit: bool,
    /// PKCE `plain` (and LWA's default-to-plain): an explicit opt-in for LWA compatibility.
    pub allow_plain_pkce: bool,
    /// Code-based linking for devices.
    pub allow_device: bool,
    /// `client_credentials` grant.
    pub allow_client_credentials: bool,
    /// Development apps may register `http://localhost` return URLs.
    pub development: bool,
    /// LWA-style reusable refresh tokens (SPEC 2.2): not rotated, valid until revoked. Confidential apps only.
    pub reusable_refresh: bool,
}
