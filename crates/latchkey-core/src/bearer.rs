//! How a resource request presents its access token (RFC 6750 2; LWA): in the `Authorization: Bearer` header
//! (2.1), as a form-encoded body parameter (2.2), as the `access_token` query parameter (2.3), or in LWA's
//! `x-amz-access-token` header. Exactly one presentation: a token sent two ways, or twice, is `invalid_request`
//! (RFC 6750 2: "MUST NOT use more than one method").

use crate::error::{ErrorCode, OAuthError};
use crate::params::Params;

/// Which presentations an endpoint reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
    /// `/auth/o2/tokeninfo`: the query and `x-amz-access-token`, as LWA reads them.
    QueryOrAmz,
    /// `/user/profile` and `/oauth2/userinfo`: also `Authorization: Bearer`.
    AlsoBearerHeader,
}

/// What a request carried where a token may be: the raw parts, as the HTTP layer read them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presented<'a> {
    /// The query string, without `?` (empty if none).
    pub query: &'a [u8],
    /// A form-encoded body (RFC 6750 2.2: a non-GET request with `application/x-www-form-urlencoded`), if any.
    pub form: Option<&'a [u8]>,
}

/// The one access token a request presents. `amz` and `authorization` are the values of the
/// `x-amz-access-token` and `Authorization` headers, in order; `Authorization` is read only where the endpoint
/// accepts it, and then must be `Bearer <token>`.
pub fn presented_token<'h>(
    accepts: Accepts,
    parts: Presented<'_>,
    amz: impl IntoIterator<Item = &'h [u8]>,
    authorization: impl IntoIterator<Item = &'h [u8]>,
) -> Result<String, OAuthError> {
    let mut found: Option<String> = None;
    let mut add = |token: String| match found {
        None => {
            found = Some(token);
            Ok(())
        }
        Some(_) => Err(OAuthError::new(
            ErrorCode::InvalidRequest,
            "The request sends the access token more than once : access_token",
        )),
    };
    for source in [Some(parts.query), parts.form].into_iter().flatten() {
        if source.is_empty() {
            continue;
        }
        if let Some(t) = Params::from_urlencoded(source)?.get("access_token")? {
            add(t.to_owned())?;
        }
    }
    for value in amz {
        let v = visible(value).ok_or_else(|| OAuthError::invalid("x-amz-access-token"))?;
        add(v.trim().to_owned())?;
    }
    if accepts == Accepts::AlsoBearerHeader {
        for value in authorization {
            let v = visible(value).ok_or_else(|| OAuthError::invalid("Authorization"))?;
            match v.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                    add(token.trim().to_owned())?
                }
                _ => return Err(OAuthError::invalid("Authorization")),
            }
        }
    }
    found.ok_or_else(|| OAuthError::missing("access_token"))
}

/// A header value of visible ASCII, spaces and tabs only (what HTTP's field values are, less obs-text).
fn visible(value: &[u8]) -> Option<&str> {
    if value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        accepts: Accepts,
        query: &str,
        form: Option<&str>,
        amz: &[&str],
        auth: &[&str],
    ) -> Result<String, String> {
        presented_token(
            accepts,
            Presented {
                query: query.as_bytes(),
                form: form.map(str::as_bytes),
            },
            amz.iter().map(|s| s.as_bytes()),
            auth.iter().map(|s| s.as_bytes()),
        )
        .map_err(|e| e.description)
    }

    #[test]
    fn each_presentation_alone_is_read() {
        use Accepts::*;
        let ok = |r: Result<String, String>| r.unwrap();
        assert_eq!(
            ok(run(QueryOrAmz, "access_token=Atza%7Cq", None, &[], &[])),
            "Atza|q"
        );
        assert_eq!(ok(run(QueryOrAmz, "", None, &[" Atza|h "], &[])), "Atza|h");
        assert_eq!(
            ok(run(AlsoBearerHeader, "", None, &[], &["Bearer Atza|b"])),
            "Atza|b"
        );
        assert_eq!(
            ok(run(AlsoBearerHeader, "", None, &[], &["bearer  Atza|b"])),
            "Atza|b"
        );
        assert_eq!(
            ok(run(
                AlsoBearerHeader,
                "",
                Some("access_token=Atza%7Cf"),
                &[],
                &[]
            )),
            "Atza|f"
        );
        // Another parameter in the query is not a token.
        assert_eq!(ok(run(QueryOrAmz, "x=1", None, &["t"], &[])), "t");
    }

    #[test]
    fn none_or_more_than_one_is_invalid_request() {
        use Accepts::*;
        let missing = "The request is missing a required parameter : access_token";
        let twice = "The request sends the access token more than once : access_token";
        type Case<'a> = (
            Accepts,
            &'a str,
            Option<&'a str>,
            &'a [&'a str],
            &'a [&'a str],
            &'a str,
        );
        let table: [Case; 8] = [
            (QueryOrAmz, "", None, &[], &[], missing),
            // tokeninfo does not read Authorization: a token only there is missing.
            (QueryOrAmz, "", None, &[], &["Bearer t"], missing),
            (QueryOrAmz, "access_token=a", None, &["b"], &[], twice),
            (QueryOrAmz, "", None, &["a", "b"], &[], twice),
            (
                AlsoBearerHeader,
                "access_token=a",
                None,
                &[],
                &["Bearer b"],
                twice,
            ),
            (
                AlsoBearerHeader,
                "",
                Some("access_token=a"),
                &[],
                &["Bearer b"],
                twice,
            ),
            (
                AlsoBearerHeader,
                "",
                None,
                &[],
                &["Bearer a", "Bearer b"],
                twice,
            ),
            (
                AlsoBearerHeader,
                "access_token=a&access_token=b",
                None,
                &[],
                &[],
                "The request has a duplicate parameter : access_token",
            ),
        ];
        for (accepts, query, form, amz, auth, says) in table {
            assert_eq!(
                run(accepts, query, form, amz, auth),
                Err(says.to_owned()),
                "{query} {form:?} {amz:?} {auth:?}"
            );
        }
    }

    #[test]
    fn another_authorization_scheme_is_refused_by_name() {
        assert_eq!(
            run(Accepts::AlsoBearerHeader, "", None, &[], &["Basic abc"]),
            Err("The request has an invalid parameter : Authorization".to_owned())
        );
        assert_eq!(
            presented_token(
                Accepts::QueryOrAmz,
                Presented::default(),
                [&b"\xff"[..]],
                [],
            )
            .map_err(|e| e.description),
            Err("The request has an invalid parameter : x-amz-access-token".to_owned())
        );
    }
}
