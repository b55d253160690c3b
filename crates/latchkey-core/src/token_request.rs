//! The token request (RFC 6749 3.2, 4.1.3, 6; SPEC 2.2) parsed into one variant per grant, with client
//! authentication taken from the body or HTTP Basic (never both).

use crate::device::PollForm;
use crate::error::{ErrorCode, OAuthError};
use crate::params::Params;
use crate::secret::Secret;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// RFC 8628's grant type.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// How the client identified itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    pub client_id: String,
    /// `None` for public clients (PKCE or device flow).
    pub secret: Option<Secret>,
    /// Whether the credentials came in an `Authorization: Basic` header (errors then answer 401 with a challenge).
    pub basic: bool,
}

/// One variant per grant type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    AuthorizationCode {
        code: Secret,
        redirect_uri: Option<String>,
        code_verifier: Option<String>,
    },
    RefreshToken {
        refresh_token: Secret,
        scope: Option<String>,
    },
    ClientCredentials {
        scope: Option<String>,
    },
    /// A device polling for its code pair (SPEC 2.3): LWA's form carries `user_code` and may omit `client_id`.
    DeviceCode {
        device_code: Secret,
        user_code: Option<String>,
        form: PollForm,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// `None` only for LWA's device poll, which names no client: the code pair says whose it is.
    pub client: Option<ClientAuth>,
    pub grant: Grant,
}

/// Parses `Authorization: Basic …` (RFC 6749 2.3.1: id and secret are form-urlencoded before base64).
pub fn parse_basic(header: &str) -> Result<(String, Secret), OAuthError> {
    let (scheme, rest) = header
        .trim()
        .split_once(' ')
        .ok_or_else(|| OAuthError::invalid_client("Authorization"))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client("Authorization"));
    }
    let decoded = STANDARD
        .decode(rest.trim())
        .map_err(|_| OAuthError::invalid_client("Authorization"))?;
    let decoded =
        String::from_utf8(decoded).map_err(|_| OAuthError::invalid_client("Authorization"))?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(|| OAuthError::invalid_client("Authorization"))?;
    // `application/x-www-form-urlencoded` decoding of each part on its own: `+` is a space, `%XX` a byte.
    let unescape = |s: &str| -> Result<String, OAuthError> {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|v| v.into_owned())
            .map_err(|_| OAuthError::invalid_client("Authorization"))
    };
    Ok((unescape(id)?, Secret::new(unescape(secret)?)))
}

/// The client's credentials from the body or HTTP Basic; `None` only if `optional` and none were sent.
pub fn client_auth(
    params: &Params,
    authorization: Option<&str>,
    optional: bool,
) -> Result<Option<ClientAuth>, OAuthError> {
    let body_id = params.get("client_id")?;
    let body_secret = params.get("client_secret")?;
    match authorization {
        Some(header) => {
            let (id, secret) = parse_basic(header)?;
            if body_secret.is_some() {
                return Err(OAuthError::new(
                    ErrorCode::InvalidRequest,
                    "The request uses more than one client authentication method : client_secret",
                ));
            }
            if body_id.is_some_and(|b| b != id) {
                return Err(OAuthError::invalid("client_id"));
            }
            Ok(Some(ClientAuth {
                client_id: id,
                secret: Some(secret),
                basic: true,
            }))
        }
        None if optional && body_id.is_none() && body_secret.is_none() => Ok(None),
        None => {
            let client_id = body_id.ok_or_else(|| {
                OAuthError::new(
                    ErrorCode::InvalidClient,
                    "The request is missing a required parameter : client_id",
                )
            })?;
            Ok(Some(ClientAuth {
                client_id: client_id.to_owned(),
                secret: body_secret.map(Secret::new),
                basic: false,
            }))
        }
    }
}

/// Parses a token request. `authorization` is the `Authorization` header, if any.
pub fn parse(params: &Params, authorization: Option<&str>) -> Result<TokenRequest, OAuthError> {
    let grant_type = params.require("grant_type")?;
    let grant = match grant_type {
        "authorization_code" => Grant::AuthorizationCode {
            code: Secret::new(params.require("code")?),
            redirect_uri: params.get("redirect_uri")?.map(str::to_owned),
            code_verifier: params.get("code_verifier")?.map(str::to_owned),
        },
        "refresh_token" => Grant::RefreshToken {
            refresh_token: Secret::new(params.require("refresh_token")?),
            scope: params.joined("scope"),
        },
        "client_credentials" => Grant::ClientCredentials {
            scope: params.joined("scope"),
        },
        "device_code" => Grant::DeviceCode {
            device_code: Secret::new(params.require("device_code")?),
            user_code: Some(params.require("user_code")?.to_owned()),
            form: PollForm::Lwa,
        },
        DEVICE_CODE_GRANT => Grant::DeviceCode {
            device_code: Secret::new(params.require("device_code")?),
            user_code: None,
            form: PollForm::Rfc,
        },
        _ => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "The request has an unsupported parameter value : grant_type",
            ))
        }
    };
    let lwa_device = matches!(
        grant,
        Grant::DeviceCode {
            form: PollForm::Lwa,
            ..
        }
    );
    let client = client_auth(params, authorization, lwa_device)?;
    Ok(TokenRequest { client, grant })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(q: &str) -> Params {
        Params::from_urlencoded(q.as_bytes()).unwrap()
    }

    #[test]
    fn grants() {
        let r = parse(&p("grant_type=authorization_code&code=abc&client_id=c&client_secret=s&redirect_uri=https%3A%2F%2Fa"), None).unwrap();
        assert_eq!(r.client.as_ref().unwrap().client_id, "c");
        assert_eq!(
            r.client
                .as_ref()
                .unwrap()
                .secret
                .as_ref()
                .map(Secret::expose),
            Some("s")
        );
        assert!(
            matches!(r.grant, Grant::AuthorizationCode { ref redirect_uri, .. } if redirect_uri.as_deref() == Some("https://a"))
        );
        let r = parse(
            &p("grant_type=refresh_token&refresh_token=Atzr%7Cx&client_id=c"),
            None,
        )
        .unwrap();
        assert!(matches!(r.grant, Grant::RefreshToken { .. }));
        assert!(r.client.as_ref().unwrap().secret.is_none());
    }

    #[test]
    fn error_table() {
        let table: &[(&str, Option<&str>, ErrorCode, &str)] = &[
            ("", None, ErrorCode::InvalidRequest, "grant_type"),
            (
                "grant_type=password&client_id=c",
                None,
                ErrorCode::UnsupportedGrantType,
                "grant_type",
            ),
            (
                "grant_type=authorization_code&client_id=c",
                None,
                ErrorCode::InvalidRequest,
                "code",
            ),
            (
                "grant_type=authorization_code&code=a&code=b&client_id=c",
                None,
                ErrorCode::InvalidRequest,
                "code",
            ),
            (
                "grant_type=authorization_code&code=a",
                None,
                ErrorCode::InvalidClient,
                "client_id",
            ),
            (
                "grant_type=refresh_token&client_id=c",
                None,
                ErrorCode::InvalidRequest,
                "refresh_token",
            ),
            (
                "grant_type=authorization_code&code=a&client_secret=s",
                Some("Basic Yzpz"),
                ErrorCode::InvalidRequest,
                "client_secret",
            ),
            (
                "grant_type=authorization_code&code=a&client_id=other",
                Some("Basic Yzpz"),
                ErrorCode::InvalidRequest,
                "client_id",
            ),
            (
                "grant_type=authorization_code&code=a",
                Some("Basic !!!"),
                ErrorCode::InvalidClient,
                "authentication",
            ),
            (
                "grant_type=authorization_code&code=a",
                Some("Bearer Yzpz"),
                ErrorCode::InvalidClient,
                "authentication",
            ),
        ];
        let device: &[(&str, Option<&str>, ErrorCode, &str)] = &[
            (
                "grant_type=device_code&user_code=BCDFGHJK",
                None,
                ErrorCode::InvalidRequest,
                "device_code",
            ),
            (
                "grant_type=device_code&device_code=x",
                None,
                ErrorCode::InvalidRequest,
                "user_code",
            ),
            (
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=x",
                None,
                ErrorCode::InvalidClient,
                "client_id",
            ),
        ];
        for (q, auth, code, mentions) in table.iter().chain(device) {
            let e = parse(&p(q), *auth).unwrap_err();
            assert_eq!(e.code, *code, "{q}");
            assert!(e.description.contains(mentions), "{q}: {}", e.description);
        }
    }

    #[test]
    fn device_polls_in_both_shapes() {
        let r = parse(
            &p("grant_type=device_code&device_code=d&user_code=BCDF-GHJK"),
            None,
        )
        .unwrap();
        assert!(r.client.is_none());
        assert!(
            matches!(r.grant, Grant::DeviceCode { form: PollForm::Lwa, ref user_code, .. } if user_code.as_deref() == Some("BCDF-GHJK"))
        );
        let r = parse(
            &p("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=d&client_id=c"),
            None,
        )
        .unwrap();
        assert_eq!(r.client.unwrap().client_id, "c");
        assert!(matches!(
            r.grant,
            Grant::DeviceCode {
                form: PollForm::Rfc,
                user_code: None,
                ..
            }
        ));
    }

    #[test]
    fn basic_auth_is_form_decoded() {
        // "my%3Aid:s%2Bx y" -> id "my:id", secret "s+x y"
        let header = format!("basic {}", STANDARD.encode("my%3Aid:s%2Bx+y"));
        let (id, secret) = parse_basic(&header).unwrap();
        assert_eq!(id, "my:id");
        assert_eq!(secret.expose(), "s+x y");
        let r = parse(
            &p("grant_type=client_credentials&client_id=my%3Aid"),
            Some(&header),
        )
        .unwrap();
        assert!(r.client.unwrap().basic);
    }

    #[test]
    fn basic_auth_decodes_every_character_on_its_own() {
        // RFC 6749 2.3.1: `&`, `=` and `%` are data here, not form syntax.
        let header = format!("Basic {}", STANDARD.encode("a%26b:c&d=e%25"));
        let (id, secret) = parse_basic(&header).unwrap();
        assert_eq!(id, "a&b");
        assert_eq!(secret.expose(), "c&d=e%");
        // A percent-escape that is not UTF-8 is refused, not mangled.
        let header = format!("Basic {}", STANDARD.encode("a%FF:b"));
        assert_eq!(
            parse_basic(&header).unwrap_err().code,
            ErrorCode::InvalidClient
        );
    }
}
