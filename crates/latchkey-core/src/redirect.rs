//! Return URL (redirect URI) rules, RFC 9700 2.1 and RFC 8252 7.3: a requested URI must equal a registered
//! string exactly, except that a loopback IP literal over `http` may use any port. Registration accepts `https`,
//! `http` on loopback IP literals, private-use schemes of native apps, and `http://localhost` only for apps marked
//! as development.

use url::{Host, Url};

/// The longest return URL accepted anywhere.
pub const MAX_REDIRECT_URI_LEN: usize = 2000;

/// Why a return URL cannot be registered; the text is shown to the developer.
pub fn validate_registered(uri: &str, development: bool) -> Result<(), String> {
    if uri.len() > MAX_REDIRECT_URI_LEN {
        return Err(format!(
            "a return URL may be at most {MAX_REDIRECT_URI_LEN} characters"
        ));
    }
    if uri.trim() != uri || uri.chars().any(|c| c.is_control() || c == ' ') {
        return Err("a return URL may not contain spaces or control characters".into());
    }
    let url = Url::parse(uri).map_err(|_| format!("\"{uri}\" is not an absolute URL"))?;
    if url.fragment().is_some() || uri.contains('#') {
        return Err(format!(
            "\"{uri}\" has a fragment (#…), which return URLs may not have"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("\"{uri}\" contains a user name or password"));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_ip(&url) => Ok(()),
        "http" if url.host_str() == Some("localhost") => {
            if development {
                Ok(())
            } else {
                Err(format!(
                    "\"{uri}\" uses http://localhost, which is allowed only for apps marked as development; use https or http://127.0.0.1"
                ))
            }
        }
        "http" => Err(format!(
            "\"{uri}\" uses http; return URLs must use https (or http on 127.0.0.1 / [::1])"
        )),
        // RFC 8252 7.1: private-use URI schemes of native apps are reverse domain names.
        scheme if scheme.contains('.') => Ok(()),
        scheme => Err(format!(
            "\"{uri}\" uses the scheme \"{scheme}\", which return URLs may not use"
        )),
    }
}

/// Whether a return URL cannot prove which app receives it (RFC 8252 8.6): a loopback address over `http` (any
/// local process may listen there; an IP literal matches on any port) or a private-use scheme (any installed app
/// may claim it). Such URLs are what native apps register.
pub fn is_native(uri: &str) -> bool {
    let Ok(url) = Url::parse(uri) else {
        return false;
    };
    match url.scheme() {
        "https" => false,
        "http" => is_loopback_ip(&url) || url.host_str() == Some("localhost"),
        scheme => scheme.contains('.'),
    }
}

fn is_loopback_ip(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
        Some(Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
        _ => false,
    }
}

/// The registered URI that `requested` matches, if any. Exact string comparison, plus RFC 8252's any-port rule
/// for `http` loopback IP literals.
pub fn find_match<'a>(registered: &'a [String], requested: &str) -> Option<&'a str> {
    if requested.len() > MAX_REDIRECT_URI_LEN {
        return None;
    }
    if let Some(exact) = registered.iter().find(|r| r.as_str() == requested) {
        return Some(exact.as_str());
    }
    let req = loopback_without_port(requested)?;
    registered
        .iter()
        .map(String::as_str)
        .find(|r| loopback_without_port(r).as_deref() == Some(req.as_str()))
}

/// `http://127.0.0.1:8000/cb?x` -> `http://127.0.0.1/cb?x`, but only if the string is already in the
/// canonical form the URL parser would produce (so no `http://127.1/` or `http://0x7f.1/` tricks).
fn loopback_without_port(uri: &str) -> Option<String> {
    if !uri.starts_with("http://127.0.0.1") && !uri.starts_with("http://[::1]") {
        return None;
    }
    let mut url = Url::parse(uri).ok()?;
    if url.as_str() != uri && format!("{}", url).trim_end_matches('/') != uri {
        return None;
    }
    if !is_loopback_ip(&url)
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    url.set_port(None).ok()?;
    Some(url.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_return_urls() {
        for (uri, native) in [
            ("http://127.0.0.1/cb", true),
            ("http://127.0.0.1:40000/cb", true),
            ("http://[::1]:9000/v6", true),
            ("http://localhost:3000/cb", true),
            ("com.example.app:/oauth", true),
            ("https://app.example.com/cb", false),
            ("https://127.0.0.1/cb", false),
            ("http://app.example.com/cb", false),
            ("not a url", false),
        ] {
            assert_eq!(is_native(uri), native, "{uri}");
        }
    }

    fn regs(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn matching_matrix() {
        let registered = regs(&[
            "https://app.example.com/cb",
            "https://app.example.com/other?x=1",
            "http://127.0.0.1/loop",
            "http://[::1]:9000/v6",
            "com.example.app:/oauth",
        ]);
        let table: &[(&str, Option<&str>)] = &[
            (
                "https://app.example.com/cb",
                Some("https://app.example.com/cb"),
            ),
            ("https://app.example.com/cb/", None),
            ("https://app.example.com/CB", None),
            ("https://APP.example.com/cb", None),
            ("https://app.example.com/cb?x=1", None),
            ("https://app.example.com/cb#frag", None),
            ("http://app.example.com/cb", None),
            ("https://app.example.com:443/cb", None),
            ("https://app.example.com:8443/cb", None),
            ("https://evil.example.com/cb", None),
            ("https://app.example.com.evil.com/cb", None),
            ("https://app.example.com@evil.com/cb", None),
            ("https://app.example.com/cb/../cb", None),
            (
                "https://app.example.com/other?x=1",
                Some("https://app.example.com/other?x=1"),
            ),
            ("https://app.example.com/other?x=2", None),
            ("http://127.0.0.1/loop", Some("http://127.0.0.1/loop")),
            ("http://127.0.0.1:53123/loop", Some("http://127.0.0.1/loop")),
            ("http://127.0.0.1:53123/loop/", None),
            ("http://127.0.0.1:53123/loop?x", None),
            ("http://localhost:53123/loop", None),
            ("http://127.1:53123/loop", None),
            ("https://127.0.0.1:53123/loop", None),
            ("http://[::1]:9000/v6", Some("http://[::1]:9000/v6")),
            ("http://[::1]:1234/v6", Some("http://[::1]:9000/v6")),
            ("com.example.app:/oauth", Some("com.example.app:/oauth")),
            ("com.example.app:/oauth2", None),
            ("", None),
        ];
        for (requested, expected) in table {
            assert_eq!(
                find_match(&registered, requested),
                *expected,
                "requested {requested}"
            );
        }
    }

    #[test]
    fn registration_rules() {
        let table: &[(&str, bool, bool)] = &[
            // (uri, development, accepted)
            ("https://app.example.com/cb", false, true),
            ("http://app.example.com/cb", false, false),
            ("http://127.0.0.1/cb", false, true),
            ("http://[::1]:8080/cb", false, true),
            ("http://localhost:3000/cb", false, false),
            ("http://localhost:3000/cb", true, true),
            ("https://app.example.com/cb#x", false, false),
            ("https://user:pw@app.example.com/cb", false, false),
            ("/relative", false, false),
            ("javascript:alert(1)", false, false),
            ("data:text/html,hi", false, false),
            ("com.example.app:/oauth", false, true),
            ("https://app.example.com/c b", false, false),
        ];
        for (uri, dev, ok) in table {
            assert_eq!(
                validate_registered(uri, *dev).is_ok(),
                *ok,
                "{uri} dev={dev}"
            );
        }
    }
}
