//! The authorization request (RFC 6749 4.1.1 / 4.2.1, RFC 7636, OpenID Connect Core 3.1.2; SPEC 2.1), parsed in
//! two steps. Step one finds the client and the return URL: its errors can only be shown as a page, because
//! there is no trusted place to redirect to. Step two parses everything else: its errors are redirected to the
//! registered URL with `state` and `iss`.

use crate::client::{ClientPolicy, Feature};
use crate::error::{ErrorCode, OAuthError};
use crate::params::Params;
use crate::pkce::{self, Challenge, Method};
use crate::redirect;
use crate::scope::{self, Scopes};

/// Errors shown on an error page, never redirected (SPEC 2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageError {
    /// `client_id` absent, repeated or malformed.
    BadClientId(String),
    /// No app has this client id.
    UnknownClient,
    /// `redirect_uri` absent while the app has several return URLs, or repeated.
    BadRedirectUri(String),
    /// `redirect_uri` is not one of the app's registered return URLs.
    RedirectUriNotRegistered,
    /// The query string itself could not be parsed (too long, too many parameters).
    Malformed(String),
}

/// `response_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseType {
    Code,
    /// Implicit grant: only for apps that enabled it.
    Token,
}

/// `response_mode` (OAuth 2.0 Multiple Response Type Encoding Practices 2.1): where the authorization response's
/// parameters go. `query` only for `response_type=code` (a token must never travel in a query string); absent, it
/// is the response type's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    Query,
    Fragment,
}

impl ResponseMode {
    /// The default mode of a response type: `query` for `code`, `fragment` for `token`.
    pub fn default_for(response_type: ResponseType) -> ResponseMode {
        match response_type {
            ResponseType::Code => ResponseMode::Query,
            ResponseType::Token => ResponseMode::Fragment,
        }
    }

    /// The mode named by a `response_mode` value, if it is one we serve.
    fn named(value: &str) -> Option<ResponseMode> {
        match value {
            "query" => Some(ResponseMode::Query),
            "fragment" => Some(ResponseMode::Fragment),
            _ => None,
        }
    }

    /// Whether this mode may carry `response_type`'s answer.
    pub fn allowed_for(self, response_type: ResponseType) -> bool {
        !(self == ResponseMode::Query && response_type == ResponseType::Token)
    }
}

/// `prompt` values (OpenID Connect Core 3.1.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
}

/// A fully parsed, valid authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    pub client_id: String,
    /// The registered return URL it resolved to (the requested string itself).
    pub redirect_uri: String,
    /// Whether `redirect_uri` was sent (then the token request must repeat it).
    pub redirect_uri_sent: bool,
    pub response_type: ResponseType,
    /// Where the answer (success or error) goes: always allowed for `response_type`.
    pub response_mode: ResponseMode,
    pub scopes: Scopes,
    /// Scopes the customer may untick (`scope_data` with `essential:false`).
    pub optional_scopes: Vec<String>,
    pub state: Option<String>,
    pub challenge: Option<Challenge>,
    pub nonce: Option<String>,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
}

/// A step-two error: redirected to `redirect_uri` with `state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectError {
    pub redirect_uri: String,
    pub state: Option<String>,
    /// In the query or the fragment: the `response_mode` asked for when it is valid for the response type,
    /// otherwise the response type's default.
    pub response_mode: ResponseMode,
    pub error: OAuthError,
}

/// Step one: the client id (before the client is looked up).
pub fn client_id(params: &Params) -> Result<&str, PageError> {
    match params.get("client_id") {
        Err(_) => Err(PageError::BadClientId(
            "client_id was sent more than once".into(),
        )),
        Ok(None) => Err(PageError::BadClientId(
            "the request has no client_id".into(),
        )),
        Ok(Some(id)) if id.len() > 200 => {
            Err(PageError::BadClientId("client_id is too long".into()))
        }
        Ok(Some(id)) => Ok(id),
    }
}

/// Step one: the return URL, matched exactly against the client's registered URLs.
/// Returns the URL to redirect to and whether it was sent.
pub fn redirect_uri(params: &Params, client: &ClientPolicy) -> Result<(String, bool), PageError> {
    match params.get("redirect_uri") {
        Err(_) => Err(PageError::BadRedirectUri(
            "redirect_uri was sent more than once".into(),
        )),
        Ok(None) => match client.redirect_uris.as_slice() {
            [only] => Ok((only.clone(), false)),
            _ => Err(PageError::BadRedirectUri(
                "the request has no redirect_uri, and the app has more than one return URL".into(),
            )),
        },
        Ok(Some(requested)) => match redirect::find_match(&client.redirect_uris, requested) {
            Some(_) => Ok((requested.to_owned(), true)),
            None => Err(PageError::RedirectUriNotRegistered),
        },
    }
}

/// Step two: everything else. `redirect_uri` is the result of step one.
pub fn parse(
    params: &Params,
    client: &ClientPolicy,
    redirect_uri: String,
    redirect_uri_sent: bool,
    known_scopes: &[impl AsRef<str>],
) -> Result<AuthorizeRequest, Box<RedirectError>> {
    let state = params.get("state").ok().flatten().map(str::to_owned);
    // Where errors go, decided before anything can fail: the mode asked for if it is one we serve and it suits
    // the response type (never a query for a token), otherwise the response type's default. On success this is
    // exactly the `response_mode` parsed below.
    let default_mode = match params.get("response_type") {
        Ok(Some("token")) => ResponseMode::Fragment,
        _ => ResponseMode::Query,
    };
    let error_mode = match params
        .get("response_mode")
        .ok()
        .flatten()
        .and_then(ResponseMode::named)
    {
        Some(ResponseMode::Fragment) => ResponseMode::Fragment,
        Some(ResponseMode::Query) | None => default_mode,
    };
    let fail = |error: OAuthError| {
        Box::new(RedirectError {
            redirect_uri: redirect_uri.clone(),
            state: state.clone(),
            response_mode: error_mode,
            error,
        })
    };
    // A repeated state cannot be echoed: say so without echoing either.
    if let Err(e) = params.get("state") {
        return Err(Box::new(RedirectError {
            redirect_uri,
            state: None,
            response_mode: error_mode,
            error: e,
        }));
    }
    // Every parameter we read may appear at most once (scope excepted, as LWA allows).
    for name in [
        "response_type",
        "response_mode",
        "code_challenge",
        "code_challenge_method",
        "scope_data",
        "nonce",
        "prompt",
        "max_age",
        "login_hint",
    ] {
        params.get(name).map_err(fail)?;
    }
    // Request objects are not served (discovery says `request_parameter_supported: false`): refused rather than
    // ignored, so that an app never believes its signed parameters were honoured (SPEC 3).
    if params.pairs().iter().any(|(k, _)| k == "request") {
        return Err(fail(OAuthError::new(
            ErrorCode::RequestNotSupported,
            "Request objects are not supported : request",
        )));
    }
    if params.pairs().iter().any(|(k, _)| k == "request_uri") {
        return Err(fail(OAuthError::new(
            ErrorCode::RequestUriNotSupported,
            "Request objects by reference are not supported : request_uri",
        )));
    }

    let response_type = match params.get("response_type").map_err(fail)? {
        None => return Err(fail(OAuthError::missing("response_type"))),
        Some("code") => ResponseType::Code,
        Some("token") if client.allows(Feature::Implicit) => ResponseType::Token,
        Some("token") => {
            return Err(fail(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "The client is not authorized to use the implicit grant : response_type",
            )))
        }
        Some(_) => {
            return Err(fail(OAuthError::new(
                ErrorCode::UnsupportedResponseType,
                "The request has an unsupported parameter value : response_type",
            )))
        }
    };

    let response_mode = match params.get("response_mode").map_err(fail)? {
        None => ResponseMode::default_for(response_type),
        Some(value) => match ResponseMode::named(value) {
            Some(mode) if mode.allowed_for(response_type) => mode,
            Some(_) => {
                return Err(fail(OAuthError::new(
                    ErrorCode::InvalidRequest,
                    "The request has an invalid parameter : response_mode (query is not allowed with response_type=token)",
                )))
            }
            None => {
                return Err(fail(OAuthError::new(
                    ErrorCode::InvalidRequest,
                    "The request has an unsupported parameter value : response_mode (query or fragment)",
                )))
            }
        },
    };

    let scope_text = params
        .joined("scope")
        .ok_or_else(|| fail(OAuthError::missing("scope")))?;
    let scopes = Scopes::parse(&scope_text, known_scopes).map_err(fail)?;
    let optional_scopes = match params.get("scope_data").map_err(fail)? {
        Some(data) => scope::parse_scope_data(data, &scopes).map_err(fail)?,
        None => Vec::new(),
    };

    let challenge = match (
        params.get("code_challenge").map_err(fail)?,
        params.get("code_challenge_method").map_err(fail)?,
    ) {
        (None, None) => None,
        (None, Some(_)) => return Err(fail(OAuthError::missing("code_challenge"))),
        (Some(challenge), method) => {
            let method = match method {
                Some(m) => Method::parse(m)
                    .ok_or_else(|| fail(OAuthError::invalid("code_challenge_method")))?,
                // LWA defaults to plain; Latchkey does so only for apps that opted in.
                None if client.allows(Feature::PlainPkce) && client.is_confidential() => {
                    Method::Plain
                }
                None => return Err(fail(OAuthError::new(
                    ErrorCode::InvalidRequest,
                    "The request is missing a required parameter : code_challenge_method (S256)",
                ))),
            };
            // SPEC 2.1: public apps must use S256 whatever they opted into.
            if method == Method::Plain
                && !(client.allows(Feature::PlainPkce) && client.is_confidential())
            {
                return Err(fail(OAuthError::new(
                    ErrorCode::InvalidRequest,
                    "The request has an invalid parameter : code_challenge_method (only S256 is allowed)",
                )));
            }
            if !pkce::is_valid_verifier(challenge) {
                return Err(fail(OAuthError::invalid("code_challenge")));
            }
            Some(Challenge {
                challenge: challenge.to_owned(),
                method,
            })
        }
    };
    if !client.is_confidential() && challenge.is_none() && response_type == ResponseType::Code {
        return Err(fail(OAuthError::new(
            ErrorCode::InvalidRequest,
            "The request is missing a required parameter : code_challenge (public apps must use PKCE S256)",
        )));
    }
    if response_type == ResponseType::Token && challenge.is_some() {
        return Err(fail(OAuthError::invalid("code_challenge")));
    }

    let mut prompt = Prompt::default();
    if let Some(p) = params.get("prompt").map_err(fail)? {
        for value in p.split(' ').filter(|s| !s.is_empty()) {
            match value {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                "select_account" => {}
                _ => return Err(fail(OAuthError::invalid("prompt"))),
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err(fail(OAuthError::invalid("prompt")));
        }
    }
    let max_age = match params.get("max_age").map_err(fail)? {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| fail(OAuthError::invalid("max_age")))?,
        ),
    };
    let nonce = params.get("nonce").map_err(fail)?.map(str::to_owned);
    let login_hint = params.get("login_hint").map_err(fail)?.map(str::to_owned);

    Ok(AuthorizeRequest {
        client_id: client.client_id.clone(),
        redirect_uri,
        redirect_uri_sent,
        response_type,
        response_mode,
        scopes,
        optional_scopes,
        state,
        challenge,
        nonce,
        prompt,
        max_age,
        login_hint,
    })
}

/// Appends `pairs` to `uri`'s query or its fragment, keeping what the registered URL had.
pub fn append_to_uri(uri: &str, pairs: &[(&str, &str)], mode: ResponseMode) -> String {
    let mut encoder = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        encoder.append_pair(k, v);
    }
    let encoded = encoder.finish();
    let mut out = String::with_capacity(uri.len() + encoded.len() + 1);
    out.push_str(uri);
    if mode == ResponseMode::Fragment {
        out.push('#');
    } else if uri.contains('?') {
        if !uri.ends_with('?') && !uri.ends_with('&') {
            out.push('&');
        }
    } else {
        out.push('?');
    }
    out.push_str(&encoded);
    out
}

/// The redirect for a step-two error (with `iss`, RFC 9207).
pub fn error_redirect(err: &RedirectError, issuer: &str) -> String {
    let mut pairs = vec![
        ("error", err.error.code.as_str()),
        ("error_description", err.error.description.as_str()),
    ];
    if let Some(state) = &err.state {
        pairs.push(("state", state.as_str()));
    }
    pairs.push(("iss", issuer));
    append_to_uri(&err.redirect_uri, &pairs, err.response_mode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{ClientKind, Features};
    use crate::scope::STANDARD_SCOPES;

    fn client(confidential: bool) -> ClientPolicy {
        ClientPolicy {
            client_id: "c".into(),
            kind: if confidential {
                ClientKind::Confidential
            } else {
                ClientKind::Public
            },
            redirect_uris: vec![
                "https://app.example/cb".into(),
                "https://app.example/cb2".into(),
            ],
            features: Features::NONE,
        }
    }

    fn run(query: &str, c: &ClientPolicy) -> Result<AuthorizeRequest, Box<RedirectError>> {
        let p = Params::from_urlencoded(query.as_bytes()).unwrap();
        parse(
            &p,
            c,
            "https://app.example/cb".into(),
            true,
            STANDARD_SCOPES,
        )
    }

    const CH: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn step_one_page_errors() {
        let c = client(true);
        let p = |q: &str| Params::from_urlencoded(q.as_bytes()).unwrap();
        assert!(matches!(
            client_id(&p("client_id=a&client_id=b")),
            Err(PageError::BadClientId(_))
        ));
        assert!(matches!(
            client_id(&p("scope=profile")),
            Err(PageError::BadClientId(_))
        ));
        assert_eq!(
            redirect_uri(&p("redirect_uri=https://evil/cb"), &c),
            Err(PageError::RedirectUriNotRegistered)
        );
        assert!(matches!(
            redirect_uri(&p(""), &c),
            Err(PageError::BadRedirectUri(_))
        ));
        assert!(matches!(
            redirect_uri(
                &p("redirect_uri=https://app.example/cb&redirect_uri=https://app.example/cb2"),
                &c
            ),
            Err(PageError::BadRedirectUri(_))
        ));
        let mut single = c.clone();
        single.redirect_uris.truncate(1);
        assert_eq!(
            redirect_uri(&p(""), &single),
            Ok(("https://app.example/cb".into(), false))
        );
    }

    #[test]
    fn step_two_table() {
        let conf = client(true);
        let public = client(false);
        let mut lwa = client(true);
        lwa.features.insert(Feature::PlainPkce);
        lwa.features.insert(Feature::Implicit);
        let mut public_plain = client(false);
        public_plain.features.insert(Feature::PlainPkce);
        let table: &[(&str, &ClientPolicy, Option<ErrorCode>)] = &[
            ("response_type=code&scope=profile", &conf, None),
            ("response_type=code&scope=profile&scope=postal_code", &conf, None),
            ("scope=profile", &conf, Some(ErrorCode::InvalidRequest)),
            ("response_type=code", &conf, Some(ErrorCode::InvalidRequest)),
            ("response_type=code&scope=bogus", &conf, Some(ErrorCode::InvalidScope)),
            ("response_type=id_token&scope=profile", &conf, Some(ErrorCode::UnsupportedResponseType)),
            ("response_type=token&scope=profile", &conf, Some(ErrorCode::UnauthorizedClient)),
            ("response_type=token&scope=profile", &lwa, None),
            ("response_type=code&response_type=code&scope=profile", &conf, Some(ErrorCode::InvalidRequest)),
            ("response_type=code&scope=profile", &public, Some(ErrorCode::InvalidRequest)),
            (&format!("response_type=code&scope=profile&code_challenge={CH}&code_challenge_method=S256"), &public, None),
            (&format!("response_type=code&scope=profile&code_challenge={CH}"), &public, Some(ErrorCode::InvalidRequest)),
            (&format!("response_type=code&scope=profile&code_challenge={CH}&code_challenge_method=plain"), &conf, Some(ErrorCode::InvalidRequest)),
            (&format!("response_type=code&scope=profile&code_challenge={CH}&code_challenge_method=plain"), &lwa, None),
            (&format!("response_type=code&scope=profile&code_challenge={CH}"), &lwa, None),
            (&format!("response_type=code&scope=profile&code_challenge={CH}&code_challenge_method=plain"), &public_plain, Some(ErrorCode::InvalidRequest)),
            (&format!("response_type=code&scope=profile&code_challenge={CH}"), &public_plain, Some(ErrorCode::InvalidRequest)),
            (&format!("response_type=code&scope=profile&code_challenge={CH}&code_challenge_method=S256"), &public_plain, None),
            (&format!("response_type=code&scope=profile&code_challenge={CH}&code_challenge_method=S512"), &conf, Some(ErrorCode::InvalidRequest)),
            ("response_type=code&scope=profile&code_challenge=short&code_challenge_method=S256", &conf, Some(ErrorCode::InvalidRequest)),
            ("response_type=code&scope=profile&code_challenge_method=S256", &conf, Some(ErrorCode::InvalidRequest)),
            ("response_type=code&scope=profile&scope_data=%7B", &conf, Some(ErrorCode::InvalidRequest)),
            ("response_type=code&scope=profile&prompt=none%20login", &conf, Some(ErrorCode::InvalidRequest)),
            ("response_type=code&scope=profile&prompt=sometimes", &conf, Some(ErrorCode::InvalidRequest)),
            ("response_type=code&scope=profile&max_age=-1", &conf, Some(ErrorCode::InvalidRequest)),
            ("response_type=code&scope=profile&max_age=60&prompt=login&nonce=n", &conf, None),
            ("response_type=code&scope=profile&request=eyJhbGciOiJub25lIn0.e30.", &conf, Some(ErrorCode::RequestNotSupported)),
            ("response_type=code&scope=profile&request_uri=https%3A%2F%2Fapp.example%2Freq", &conf, Some(ErrorCode::RequestUriNotSupported)),
            ("response_type=code&scope=profile&request=a&request=b", &conf, Some(ErrorCode::RequestNotSupported)),
        ];
        for (query, c, expected) in table {
            let got = run(query, c).err().map(|e| e.error.code);
            assert_eq!(got, *expected, "{query}");
        }
    }

    #[test]
    fn parsed_fields_and_state_echo() {
        let conf = client(true);
        let r = run(
            "response_type=code&scope=postal_code%20profile&state=a%20b%26c&scope_data=%7B%22postal_code%22%3A%7B%22essential%22%3Afalse%7D%7D",
            &conf,
        )
        .unwrap();
        assert_eq!(r.state.as_deref(), Some("a b&c"));
        assert_eq!(r.optional_scopes, vec!["postal_code".to_string()]);
        let e = run("response_type=nope&scope=profile&state=xyz", &conf).unwrap_err();
        assert_eq!(e.state.as_deref(), Some("xyz"));
        let url = error_redirect(&e, "https://id.example");
        assert!(
            url.starts_with("https://app.example/cb?error=unsupported_response_type&"),
            "{url}"
        );
        assert!(
            url.ends_with("&state=xyz&iss=https%3A%2F%2Fid.example"),
            "{url}"
        );
        let dup_state = run("response_type=code&scope=profile&state=a&state=b", &conf).unwrap_err();
        assert_eq!(dup_state.state, None);
        assert_eq!(dup_state.error.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn appending_to_uris() {
        assert_eq!(
            append_to_uri("https://a/cb", &[("code", "x y")], ResponseMode::Query),
            "https://a/cb?code=x+y"
        );
        assert_eq!(
            append_to_uri("https://a/cb?k=v", &[("code", "x")], ResponseMode::Query),
            "https://a/cb?k=v&code=x"
        );
        assert_eq!(
            append_to_uri(
                "https://a/cb",
                &[("access_token", "t")],
                ResponseMode::Fragment
            ),
            "https://a/cb#access_token=t"
        );
        // A registered query stays in the query; the answer goes after the `#`.
        assert_eq!(
            append_to_uri("https://a/cb?k=v", &[("code", "x")], ResponseMode::Fragment),
            "https://a/cb?k=v#code=x"
        );
    }

    /// The parsed mode, or the error and the mode it is delivered in.
    type Expected = Result<ResponseMode, (ErrorCode, ResponseMode)>;

    #[test]
    fn response_mode_table() {
        use ResponseMode::{Fragment, Query};
        let conf = client(true);
        let mut implicit = client(true);
        implicit.features.insert(Feature::Implicit);
        #[rustfmt::skip]
        let table: &[(&str, &ClientPolicy, Expected)] = &[
            ("response_type=code&scope=profile", &conf, Ok(Query)),
            ("response_type=code&scope=profile&response_mode=query", &conf, Ok(Query)),
            ("response_type=code&scope=profile&response_mode=fragment", &conf, Ok(Fragment)),
            ("response_type=token&scope=profile", &implicit, Ok(Fragment)),
            ("response_type=token&scope=profile&response_mode=fragment", &implicit, Ok(Fragment)),
            // A token never travels in a query string: refused, and the refusal itself goes in the fragment.
            ("response_type=token&scope=profile&response_mode=query", &implicit, Err((ErrorCode::InvalidRequest, Fragment))),
            // Modes we do not serve.
            ("response_type=code&scope=profile&response_mode=form_post", &conf, Err((ErrorCode::InvalidRequest, Query))),
            ("response_type=code&scope=profile&response_mode=jwt", &conf, Err((ErrorCode::InvalidRequest, Query))),
            ("response_type=code&scope=profile&response_mode=Fragment", &conf, Err((ErrorCode::InvalidRequest, Query))),
            ("response_type=token&scope=profile&response_mode=form_post", &implicit, Err((ErrorCode::InvalidRequest, Fragment))),
            ("response_type=code&scope=profile&response_mode=query&response_mode=query", &conf, Err((ErrorCode::InvalidRequest, Query))),
            ("response_type=code&scope=profile&response_mode=fragment&response_mode=fragment", &conf, Err((ErrorCode::InvalidRequest, Query))),
            // Later errors honour a valid mode.
            ("response_type=code&scope=bogus&response_mode=fragment", &conf, Err((ErrorCode::InvalidScope, Fragment))),
            ("response_type=code&scope=bogus&response_mode=query", &conf, Err((ErrorCode::InvalidScope, Query))),
            ("response_type=token&scope=profile&response_mode=fragment", &conf, Err((ErrorCode::UnauthorizedClient, Fragment))),
            ("response_type=id_token&scope=profile&response_mode=fragment", &conf, Err((ErrorCode::UnsupportedResponseType, Fragment))),
            ("scope=profile&response_mode=fragment", &conf, Err((ErrorCode::InvalidRequest, Fragment))),
        ];
        for (query, c, expected) in table {
            let got = run(query, c)
                .map(|r| r.response_mode)
                .map_err(|e| (e.error.code, e.response_mode));
            assert_eq!(&got, expected, "{query}");
        }
        // The description names the parameter.
        for query in [
            "response_type=code&scope=profile&response_mode=form_post",
            "response_type=token&scope=profile&response_mode=query",
            "response_type=code&scope=profile&response_mode=a&response_mode=b",
        ] {
            let c = if query.contains("token") {
                &implicit
            } else {
                &conf
            };
            let e = run(query, c).unwrap_err();
            assert!(
                e.error.description.contains("response_mode"),
                "{query}: {}",
                e.error.description
            );
        }
    }

    #[test]
    fn error_redirects_in_the_fragment_when_asked() {
        let conf = client(true);
        let e = run(
            "response_type=code&scope=bogus&response_mode=fragment&state=s1",
            &conf,
        )
        .unwrap_err();
        let url = error_redirect(&e, "https://id.example");
        assert!(
            url.starts_with("https://app.example/cb#error=invalid_scope&"),
            "{url}"
        );
        assert!(!url.contains('?'), "{url}");
        assert!(
            url.ends_with("&state=s1&iss=https%3A%2F%2Fid.example"),
            "{url}"
        );
    }
}
